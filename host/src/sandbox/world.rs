//! Which `weft:step` world a component fits, and why not.

use crate::capability::acting_capability;
use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

/// The two worlds a step component can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepWorld {
    /// `weft:step/compute-step`: a pure step.
    Compute,
    /// `weft:step/effect-step`: a step with side effects and `compensate`.
    Effect,
}

impl StepWorld {
    /// The world's WIT name.
    pub fn wit_name(self) -> &'static str {
        match self {
            Self::Compute => "weft:step/compute-step@0.1.2",
            Self::Effect => "weft:step/effect-step@0.1.2",
        }
    }

    /// The interface the world exports, without version.
    fn export_interface(self) -> &'static str {
        match self {
            Self::Compute => "weft:step/compute",
            Self::Effect => "weft:step/effect",
        }
    }

    fn functions(self) -> &'static [&'static str] {
        match self {
            Self::Compute => &["run"],
            Self::Effect => &["run", "compensate"],
        }
    }
}

impl std::fmt::Display for StepWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Compute => "compute-step",
            Self::Effect => "effect-step",
        })
    }
}

/// The WASI 0.2 packages a step may import (they are satisfied, and grant
/// only what the step's world allows).
const WASI_PACKAGES: &[&str] = &["cli", "clocks", "filesystem", "io", "random", "sockets"];

/// Splits `ns:pkg/iface@1.2.3` into (`ns:pkg/iface`, `1.2.3`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (name, None),
    }
}

fn version_is(v: Option<&str>, major_minor: &str) -> bool {
    v.is_some_and(|v| v == major_minor || v.starts_with(&format!("{major_minor}.")))
}

/// Whether a host for `world` provides the import `name`.
fn import_allowed(world: StepWorld, name: &str) -> bool {
    let (iface, version) = split_version(name);
    if let Some(rest) = iface.strip_prefix("wasi:") {
        let pkg = rest.split('/').next().unwrap_or("");
        let effect_only =
            world == StepWorld::Effect && matches!(iface, "wasi:http/types" | "wasi:http/outgoing-handler");
        return (WASI_PACKAGES.contains(&pkg) || effect_only) && version_is(version, "0.2");
    }
    let shared = matches!(iface, "weft:step/log" | "weft:step/types" | "weft:step/stream");
    let effect_only = world == StepWorld::Effect && iface == "weft:step/kv";
    (shared || effect_only) && version_is(version, "0.1")
}

/// What the host provides to a `world` step, for error messages.
fn provided(world: StepWorld) -> String {
    let wasi = WASI_PACKAGES.iter().map(|p| format!("wasi:{p}")).collect::<Vec<_>>().join(", ");
    match world {
        StepWorld::Compute => {
            format!("weft:step/log@0.1, weft:step/types@0.1, weft:step/stream@0.1 and WASI 0.2 ({wasi})")
        }
        StepWorld::Effect => format!(
            "weft:step/log@0.1, weft:step/types@0.1, weft:step/stream@0.1, weft:step/kv@0.1, \
             wasi:http/outgoing-handler@0.2, wasi:http/types@0.2 and WASI 0.2 ({wasi})"
        ),
    }
}

/// Why a compute component's import cannot be had, when it is one an
/// effect step could be granted.
fn compute_hint(name: &str) -> &'static str {
    if acting_capability(name).is_some() || name.starts_with("wasi:http/") {
        "; compute steps have no authority: build the component for the effect-step world and run it on an \
         effect node that declares the capability"
    } else {
        ""
    }
}

/// The acting imports of `component` (see
/// [`ACTING_IMPORTS`](crate::capability::ACTING_IMPORTS)), by full name.
pub fn acting_imports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .filter(|(name, _)| acting_capability(name).is_some())
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Every reason `component` does not fit `world`; empty when it fits.
pub fn misfits(engine: &Engine, component: &Component, world: StepWorld) -> Vec<String> {
    let ty = component.component_type();
    let mut problems = Vec::new();
    for (name, _) in ty.imports(engine) {
        if !import_allowed(world, name) {
            let hint = if world == StepWorld::Compute { compute_hint(name) } else { "" };
            problems
                .push(format!("unexpected import `{name}`: a {world} host provides only {}{hint}", provided(world)));
        }
    }
    let want = world.export_interface();
    let export = ty.exports(engine).find(|(name, _)| {
        let (iface, version) = split_version(name);
        iface == want && version_is(version, "0.1")
    });
    match export {
        None => {
            let names: Vec<String> = ty.exports(engine).map(|(n, _)| format!("`{n}`")).collect();
            problems.push(format!(
                "missing export `{want}@0.1.2` (any 0.1.x fits), which the {world} world requires; the component exports {}",
                if names.is_empty() { "nothing".to_string() } else { names.join(", ") }
            ));
        }
        Some((name, ext)) => match &ext.ty {
            ComponentItem::ComponentInstance(inst) => {
                for f in world.functions() {
                    match inst.get_export(engine, f) {
                        Some(e) if matches!(e.ty, ComponentItem::ComponentFunc(_)) => {}
                        _ => problems
                            .push(format!("export `{name}` has no function `{f}`, which the {world} world requires")),
                    }
                }
            }
            _ => problems.push(format!("export `{name}` is not an interface instance")),
        },
    }
    problems
}

/// The component's imports and exports printed as a WIT world.
pub fn component_wit(bytes: &[u8]) -> Result<String, String> {
    // The bytes are untrusted: a decoder bug must be an error here, not a crash.
    std::panic::catch_unwind(|| print_wit(bytes))
        .unwrap_or_else(|_| Err("the WIT decoder failed on this component (a bug in wit-component)".into()))
}

fn print_wit(bytes: &[u8]) -> Result<String, String> {
    match wit_component::decode(bytes) {
        Ok(wit_component::DecodedWasm::Component(resolve, world)) => {
            let Some(pkg) = resolve.worlds[world].package else {
                return Err("the decoded world has no package".into());
            };
            let mut printer = wit_component::WitPrinter::default();
            printer.print(&resolve, pkg, &[]).map_err(|e| format!("{e:#}"))?;
            Ok(printer.output.to_string())
        }
        Ok(wit_component::DecodedWasm::WitPackage(..)) => Err("this is a WIT package, not a component".into()),
        Err(e) => Err(format!("{e:#}")),
    }
}
