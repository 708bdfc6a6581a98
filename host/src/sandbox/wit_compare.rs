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
            if shape(&found, f) != shape(&contract.resolve, w) {
                out.push(format!(
                    "{direction} `{name}{version}` function `{fname}` has the type `{}`, but the {world} world \
                     ({}) gives it `{}`: the component was built against another WIT; rebuild it against the \
                     contract's (`weft plugin new` writes it into wit/)",
                    signature(&found, f),
                    world.wit_name(),
                    signature(&contract.resolve, w),
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

/// The function as WIT shows it, with named types by name.
fn signature(resolve: &Resolve, f: &Function) -> String {
    let params: Vec<String> = f.params.iter().map(|p| format!("{}: {}", p.name, ty(resolve, &p.ty, true))).collect();
    let result = f.result.as_ref().map(|r| format!(" -> {}", ty(resolve, r, true))).unwrap_or_default();
    format!("{}: func({}){result}", f.name, params.join(", "))
}

/// The function's type with every named type spelled out, for comparison.
fn shape(resolve: &Resolve, f: &Function) -> String {
    let params: Vec<String> = f.params.iter().map(|p| ty(resolve, &p.ty, false)).collect();
    let result = f.result.as_ref().map(|r| ty(resolve, r, false)).unwrap_or_default();
    format!("({}) -> {result}", params.join(", "))
}

fn ty(resolve: &Resolve, t: &Type, by_name: bool) -> String {
    let Type::Id(id) = t else { return format!("{t:?}").to_lowercase() };
    let def = &resolve.types[*id];
    if by_name && let Some(name) = &def.name {
        return name.clone();
    }
    let inner = |t: &Type| ty(resolve, t, by_name);
    let opt = |t: &Option<Type>| t.as_ref().map(inner).unwrap_or_else(|| "_".into());
    match &def.kind {
        TypeDefKind::Record(r) => {
            let fields: Vec<String> = r.fields.iter().map(|f| format!("{}: {}", f.name, inner(&f.ty))).collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        TypeDefKind::Variant(v) => {
            let cases: Vec<String> = v
                .cases
                .iter()
                .map(|c| format!("{}({})", c.name, c.ty.as_ref().map(inner).unwrap_or_default()))
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        TypeDefKind::Enum(e) => {
            let cases: Vec<&str> = e.cases.iter().map(|c| c.name.as_str()).collect();
            format!("enum {{ {} }}", cases.join(", "))
        }
        TypeDefKind::Flags(f) => {
            let flags: Vec<&str> = f.flags.iter().map(|c| c.name.as_str()).collect();
            format!("flags {{ {} }}", flags.join(", "))
        }
        TypeDefKind::Tuple(t) => format!("tuple<{}>", t.types.iter().map(inner).collect::<Vec<_>>().join(", ")),
        TypeDefKind::Option(t) => format!("option<{}>", inner(t)),
        TypeDefKind::Result(r) => format!("result<{}, {}>", opt(&r.ok), opt(&r.err)),
        TypeDefKind::List(t) => format!("list<{}>", inner(t)),
        TypeDefKind::Type(t) => inner(t),
        // Resources and the rest: compared by name, which is all a step's
        // contract needs.
        _ => def.name.clone().unwrap_or_else(|| format!("{:?}", def.kind).chars().take(40).collect()),
    }
}
