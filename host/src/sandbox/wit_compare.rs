//! Why a component whose interface names are Weft's does not link: the
//! types of its `weft:step` functions, compared one by one with the
//! contract's (the WIT embedded in [`crate::contract::wit`]).
//!
//! wasmtime's own link error names the function but not what it expected
//! (`type mismatch with parameters: expected 2-tuple, found 1-tuple`). A
//! plugin author needs the two signatures side by side, and the world the
//! host wanted, to see that the component was built against another WIT.
//! This runs only when linking has already failed.

use super::StepWorld;
use std::sync::OnceLock;
use wit_parser::{Function, Resolve, Type, TypeDefKind, WorldId, WorldItem};

/// The contract's WIT, parsed once, with its two worlds.
struct Contract {
    resolve: Resolve,
    compute: WorldId,
    effect: WorldId,
}

fn contract() -> Option<&'static Contract> {
    static CONTRACT: OnceLock<Option<Contract>> = OnceLock::new();
    CONTRACT
        .get_or_init(|| {
            // wit-parser resolves a package's `deps/` from a directory.
            let dir = tempfile::tempdir().ok()?;
            crate::contract::wit::write_wit(dir.path()).ok()?;
            let mut resolve = Resolve::default();
            let (pkg, _) = resolve.push_dir(dir.path()).ok()?;
            let compute = resolve.select_world(&[pkg], Some("compute-step")).ok()?;
            let effect = resolve.select_world(&[pkg], Some("effect-step")).ok()?;
            Some(Contract { resolve, compute, effect })
        })
        .as_ref()
}

/// One line per `weft:step` function of the component (`bytes`) whose type
/// differs from the contract's in `world`; empty when none does, or when the
/// component cannot be decoded.
pub fn signature_mismatches(bytes: &[u8], world: StepWorld) -> Vec<String> {
    let Some(contract) = contract() else { return Vec::new() };
    let decoded = std::panic::catch_unwind(|| wit_component::decode(bytes));
    let Ok(Ok(wit_component::DecodedWasm::Component(found, found_world))) = decoded else { return Vec::new() };
    let want_world = match world {
        StepWorld::Compute => contract.compute,
        StepWorld::Effect => contract.effect,
    };
    let mut out = Vec::new();
    let found_items = found.worlds[found_world].imports.values().map(|i| ("import", i));
    let found_items = found_items.chain(found.worlds[found_world].exports.values().map(|i| ("export", i)));
    for (direction, item) in found_items {
        let WorldItem::Interface { id, .. } = item else { continue };
        let Some(name) = interface_name(&found, *id) else { continue };
        if !name.starts_with("weft:step/") {
            continue;
        }
        let want = &contract.resolve.worlds[want_world];
        let wanted = if direction == "import" { &want.imports } else { &want.exports };
        let Some(want_id) = wanted.values().find_map(|i| match i {
            WorldItem::Interface { id, .. } if interface_name(&contract.resolve, *id).as_deref() == Some(&name) => {
                Some(*id)
            }
            _ => None,
        }) else {
            continue;
        };
        let version = found.interfaces[*id]
            .package
            .and_then(|p| found.packages[p].name.version.as_ref().map(|v| format!("@{v}")))
            .unwrap_or_default();
        for (fname, f) in &found.interfaces[*id].functions {
            let Some(w) = contract.resolve.interfaces[want_id].functions.get(fname) else { continue };
            let (found_shape, want_shape) = (shape(&found, f), shape(&contract.resolve, w));
            if found_shape != want_shape {
                let (mut found_sig, mut want_sig) = (signature(&found, f), signature(&contract.resolve, w));
                if found_sig == want_sig {
                    // The difference is inside a named type: spell the types out.
                    (found_sig, want_sig) =
                        (format!("{fname}: func{found_shape}"), format!("{fname}: func{want_shape}"));
                }
                out.push(format!(
                    "{direction} `{name}{version}` function `{fname}` has the type `{found_sig}`, but the {world} \
                     world ({}) gives it `{want_sig}`: the component was built against another WIT; rebuild it \
                     against the contract's (`weft plugin new` writes it into wit/)",
                    world.wit_name(),
                ));
            }
        }
    }
    out
}

/// `namespace:package/interface`, without the version.
fn interface_name(resolve: &Resolve, id: wit_parser::InterfaceId) -> Option<String> {
    let iface = &resolve.interfaces[id];
    let pkg = &resolve.packages[iface.package?].name;
    Some(format!("{}:{}/{}", pkg.namespace, pkg.name, iface.name.as_ref()?))
}

/// The most characters one rendering of a function's type may take: the
/// component is untrusted, and a type DAG can spell out to gigabytes.
const RENDER_BUDGET: usize = 4096;

/// The function as WIT shows it, with named types by name.
fn signature(resolve: &Resolve, f: &Function) -> String {
    render(resolve, f, true, true)
}

/// The function's type with every named type spelled out, for comparison.
fn shape(resolve: &Resolve, f: &Function) -> String {
    render(resolve, f, false, false)
}

fn render(resolve: &Resolve, f: &Function, by_name: bool, with_names: bool) -> String {
    let mut r = Renderer { resolve, by_name, left: RENDER_BUDGET };
    let params: Vec<String> = f
        .params
        .iter()
        .map(|p| if with_names { format!("{}: {}", r.name(&p.name), r.ty(&p.ty)) } else { r.ty(&p.ty) })
        .collect();
    let result = f.result.as_ref().map(|t| format!(" -> {}", r.ty(t))).unwrap_or_default();
    let head = if with_names { format!("{}: func", r.name(&f.name)) } else { String::new() };
    format!("{head}({}){result}", params.join(", "))
}

/// Renders types into at most [`RENDER_BUDGET`] characters; past it, `…`.
struct Renderer<'a> {
    resolve: &'a Resolve,
    by_name: bool,
    left: usize,
}

impl Renderer<'_> {
    fn spend(&mut self, n: usize) -> bool {
        if self.left < n {
            self.left = 0;
            return false;
        }
        self.left -= n;
        true
    }

    fn name(&mut self, name: &str) -> String {
        let shown: String = name.chars().take(64).collect();
        if self.spend(shown.len() + 2) { shown } else { "…".into() }
    }

    fn ty(&mut self, t: &Type) -> String {
        if !self.spend(8) {
            return "…".into();
        }
        let Type::Id(id) = t else { return format!("{t:?}").to_lowercase() };
        let def = &self.resolve.types[*id];
        if self.by_name
            && let Some(name) = &def.name
        {
            return self.name(name);
        }
        match &def.kind {
            TypeDefKind::Record(rec) => {
                let fields: Vec<String> =
                    rec.fields.iter().map(|f| format!("{}: {}", self.name(&f.name), self.ty(&f.ty))).collect();
                format!("record {{ {} }}", fields.join(", "))
            }
            TypeDefKind::Variant(v) => {
                let cases: Vec<String> = v
                    .cases
                    .iter()
                    .map(|c| {
                        let ty = c.ty.as_ref().map(|t| self.ty(t)).unwrap_or_default();
                        format!("{}({ty})", self.name(&c.name))
                    })
                    .collect();
                format!("variant {{ {} }}", cases.join(", "))
            }
            TypeDefKind::Enum(e) => {
                let cases: Vec<String> = e.cases.iter().map(|c| self.name(&c.name)).collect();
                format!("enum {{ {} }}", cases.join(", "))
            }
            TypeDefKind::Flags(f) => {
                let flags: Vec<String> = f.flags.iter().map(|c| self.name(&c.name)).collect();
                format!("flags {{ {} }}", flags.join(", "))
            }
            TypeDefKind::Tuple(t) => {
                let types: Vec<String> = t.types.iter().map(|t| self.ty(t)).collect();
                format!("tuple<{}>", types.join(", "))
            }
            TypeDefKind::Option(t) => format!("option<{}>", self.ty(t)),
            TypeDefKind::Result(res) => {
                let ok = res.ok.as_ref().map(|t| self.ty(t)).unwrap_or_else(|| "_".into());
                let err = res.err.as_ref().map(|t| self.ty(t)).unwrap_or_else(|| "_".into());
                format!("result<{ok}, {err}>")
            }
            TypeDefKind::List(t) => format!("list<{}>", self.ty(t)),
            TypeDefKind::Type(t) => self.ty(t),
            // Resources and the rest: compared by name, which is all a step's
            // contract needs.
            _ => match &def.name {
                Some(name) => self.name(name),
                None => "?".into(),
            },
        }
    }
}
