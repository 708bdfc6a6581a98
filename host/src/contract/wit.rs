//! The plugin contract's WIT (`wit/` at the repository root), embedded in
//! the binary: `weft plugin new` writes it into a new plugin, the C bindings
//! are generated from it, and the sandbox compares a misfit component's
//! functions with it, all without the source tree.

use std::path::Path;

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
pub fn write_wit(dir: &Path) -> std::io::Result<()> {
    for (rel, text) in WIT_FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    Ok(())
}
