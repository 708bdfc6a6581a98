//! Where a node's component is: a path relative to the workflow file, or a
//! name looked up in the workflow's folder and on `$WEFT_PLUGIN_PATH`; and
//! the [`ComponentCheck`] a loader asks whether it fits its node (the
//! workflow module itself knows nothing of wasm).

use super::NodeType;
use std::path::{Path, PathBuf};

/// Environment variable with extra directories to look for components in.
pub const PLUGIN_PATH_ENV: &str = "WEFT_PLUGIN_PATH";

/// Checks that a component file fits a node type (implemented on top of the
/// sandbox by the engine).
pub trait ComponentCheck {
    /// The component's acting imports (see
    /// [`ACTING_IMPORTS`](crate::capability::ACTING_IMPORTS)) when the
    /// component at `path` can run as `node_type`; `Err(reason)` when not.
    fn check(&self, path: &Path, node_type: NodeType) -> Result<Vec<String>, String>;

    /// Where the component a node names is ([`resolve_component`] unless the
    /// checker knows better: a resumed run's pinned component may be kept
    /// elsewhere than its path).
    fn resolve(&self, name: &str, base: &Path) -> Result<PathBuf, String> {
        resolve_component(name, base)
    }

    /// `Err(reason)` when this load may not read sub-workflow files (a
    /// workflow that came over the network names no files of the host).
    fn may_nest_files(&self) -> Result<(), String> {
        Ok(())
    }

    /// Where a node's `dirs` capability may take host directories from:
    /// `Unrestricted` on the operator's own host, `Within(dir)` for a
    /// workflow that came over the network (relative paths inside its
    /// tenant's directory only), `Nowhere` when it may take none.
    fn host_dirs(&self) -> HostDirs<'_> {
        HostDirs::Unrestricted
    }
}

/// Where a load may take the host directories of `dirs` capabilities from
/// (see [`ComponentCheck::host_dirs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostDirs<'a> {
    /// Anywhere (the operator's policy still caps them).
    Unrestricted,
    /// Relative paths, inside this directory (also once symlinks are resolved).
    Within(&'a Path),
    /// Nowhere.
    Nowhere,
}

/// `path` with `.` and `..` resolved lexically (for a file that may no longer exist).
pub fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Finds a component: a path relative to the workflow file, or a name looked
/// up (as NAME and NAME.wasm) in the workflow's folder and in `$WEFT_PLUGIN_PATH`.
/// The path is canonical, so every spelling of one file (`./a.wasm`,
/// `../dir/a.wasm`, a symlink) is the same component (one circuit breaker,
/// one pin).
pub fn resolve_component(name: &str, base: &Path) -> Result<PathBuf, String> {
    find_component(name, base).map(|p| std::fs::canonicalize(&p).unwrap_or(p))
}

fn find_component(name: &str, base: &Path) -> Result<PathBuf, String> {
    let direct = base.join(name);
    if direct.is_file() {
        return Ok(direct);
    }
    let plain_name = !name.contains('/') && !name.contains('\\');
    // A plain name may still be found as NAME.wasm below; a path names one thing.
    if !plain_name && direct.exists() {
        return Err(format!(
            "component `{name}` ({}) is not a regular file; a component is a .wasm file built for wasm32-wasip2",
            direct.display()
        ));
    }
    let mut looked = vec![direct.display().to_string()];
    if plain_name {
        let mut dirs = vec![base.to_path_buf()];
        if let Some(extra) = std::env::var_os(PLUGIN_PATH_ENV) {
            dirs.extend(std::env::split_paths(&extra));
        }
        for d in dirs {
            for candidate in [d.join(name), d.join(format!("{name}.wasm"))] {
                if candidate.is_file() {
                    return Ok(candidate);
                }
                looked.push(candidate.display().to_string());
            }
        }
    }
    looked.dedup();
    Err(format!(
        "component `{name}` not found (looked at {}); give a path relative to the workflow file, or put it on ${PLUGIN_PATH_ENV}",
        looked.join(", ")
    ))
}
