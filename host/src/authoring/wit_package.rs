//! Parsing a plugin's WIT directory and finding its world in it.

use anyhow::Context as _;
use std::path::Path;
use wit_parser::{Resolve, WorldId};

/// A plugin's WIT, parsed once per build, and the world it targets in it.
#[derive(Debug, Clone)]
pub struct World {
    /// Every package of the WIT directory.
    pub resolve: Resolve,
    /// The world in its main package.
    pub id: WorldId,
    /// The world's name (`compute-step` or `effect-step`).
    pub name: String,
}

impl World {
    /// Parses `wit_dir` and finds `world` in it.
    pub fn resolve(wit_dir: &Path, world: &str) -> anyhow::Result<Self> {
        let (resolve, id) = resolve_world(wit_dir, world)?;
        Ok(Self { resolve, id, name: world.to_string() })
    }
}

/// Parses a WIT directory (a package with its `deps/`) and finds `world`
/// (`compute-step` or `effect-step`) in its main package.
fn resolve_world(wit_dir: &Path, world: &str) -> anyhow::Result<(Resolve, WorldId)> {
    let mut resolve = Resolve::default();
    let (pkg, _) =
        resolve.push_dir(wit_dir).with_context(|| format!("cannot parse the WIT in {}", wit_dir.display()))?;
    let id = resolve.select_world(&[pkg], Some(world)).with_context(|| {
        format!("{} has no world `{world}`; a Weft step targets `compute-step` or `effect-step`", wit_dir.display())
    })?;
    Ok((resolve, id))
}
