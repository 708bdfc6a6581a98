//! The plugin contract's WIT (`wit/` at the repository root), embedded in
//! the binary so that an installed `weft` can write it into a new plugin and
//! generate bindings from it without the source tree.

use anyhow::Context as _;
use std::path::Path;
use wit_parser::{Resolve, WorldId};

/// Every file of `wit/`, by its path inside that directory.
pub const WIT_FILES: &[(&str, &str)] = &[
    ("step.wit", include_str!("../../../wit/step.wit")),
    ("deps/README.md", include_str!("../../../wit/deps/README.md")),
    ("deps/cli/cli.wit", include_str!("../../../wit/deps/cli/cli.wit")),
    ("deps/clocks/clocks.wit", include_str!("../../../wit/deps/clocks/clocks.wit")),
    ("deps/filesystem/filesystem.wit", include_str!("../../../wit/deps/filesystem/filesystem.wit")),
    ("deps/http/http.wit", include_str!("../../../wit/deps/http/http.wit")),
    ("deps/io/io.wit", include_str!("../../../wit/deps/io/io.wit")),
    ("deps/random/random.wit", include_str!("../../../wit/deps/random/random.wit")),
    ("deps/sockets/sockets.wit", include_str!("../../../wit/deps/sockets/sockets.wit")),
];

/// Writes the embedded `wit/` into `dir` (creating it).
pub fn write_wit(dir: &Path) -> anyhow::Result<()> {
    for (rel, text) in WIT_FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Parses a WIT directory (a package with its `deps/`) and finds `world`
/// (`compute-step` or `effect-step`) in its main package.
pub fn resolve_world(wit_dir: &Path, world: &str) -> anyhow::Result<(Resolve, WorldId)> {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve
        .push_dir(wit_dir)
        .with_context(|| format!("cannot parse the WIT in {}", wit_dir.display()))?;
    let id = resolve.select_world(&[pkg], Some(world)).with_context(|| {
        format!("{} has no world `{world}`; a Weft step targets `compute-step` or `effect-step`", wit_dir.display())
    })?;
    Ok((resolve, id))
}
