//! The `dirs` capability: WASI preopens, read-only or read-write. wasmtime's
//! filesystem opens every guest path through cap-std beneath its preopen,
//! so `..`, absolute paths and symlinks cannot leave it. The host path was
//! resolved when the workflow was loaded and is resolved again per attempt:
//! if a symlink now leads elsewhere, the attempt is refused. A `scratch`
//! directory is the run's own, created on first use and removed by the
//! engine when the run finishes.

use super::Grants;
use super::capability::{AttemptWasi, Capability};
use crate::capability::{DirMode, DirSource};
use wasmtime_wasi::FsPerms;

/// The `dirs` capability.
pub struct Dirs;

impl Capability for Dirs {
    fn name(&self) -> &'static str {
        "dirs"
    }

    fn prepare(&self, attempt: &mut AttemptWasi<'_>, grants: &Grants) -> Result<(), String> {
        for dir in &grants.capabilities.dirs {
            let host = match &dir.host {
                // Resolved when the workflow was loaded; a symlink swapped in
                // since must not move the grant.
                DirSource::Path(p) => match std::fs::canonicalize(p) {
                    Ok(now) if now == *p => now,
                    Ok(now) => {
                        return Err(format!(
                            "directory {} now resolves to {}: a symlink changed since the run started, so it is \
                             not opened",
                            p.display(),
                            now.display()
                        ));
                    }
                    Err(e) => return Err(format!("directory {} cannot be opened: {e}", p.display())),
                },
                DirSource::Scratch => {
                    let Some(scratch) = &grants.scratch_dir else {
                        return Err(format!("`{}` is a scratch directory, but this host gives none", dir.guest));
                    };
                    std::fs::create_dir_all(scratch)
                        .map_err(|e| format!("the scratch directory {} cannot be created: {e}", scratch.display()))?;
                    scratch.clone()
                }
            };
            let perms = match dir.mode {
                DirMode::Ro => FsPerms::ReadOnly,
                DirMode::Rw => FsPerms::ReadWrite,
            };
            attempt
                .builder
                .preopened_dir(&host, &dir.guest, perms)
                .map_err(|e| format!("directory {} cannot be opened for `{}`: {e:#}", host.display(), dir.guest))?;
        }
        Ok(())
    }
}
