//! On-disk cache of compiled components, keyed by content digest and engine.
//!
//! wasmtime's own cache (`wasmtime-cache`) compresses its entries, which makes
//! a load cost a decompression; this cache stores the native artifact as is so
//! that a load is an `mmap`. Entries are written to a temporary file and renamed
//! into place, so a crash never leaves a torn entry under a valid name.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The content digest of a component: `sha256:` and 64 hex digits.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A directory of compiled components.
pub struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Loaded from the disk cache.
    Cache,
    /// Compiled now (and stored in the cache, if there is one).
    Compiled,
}

impl ComponentCache {
    /// A cache in `dir` for artifacts of `engine` (its configuration and the
    /// wasmtime version are part of every key).
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self { dir, engine_key: format!("{:016x}", h.finish()) }
    }

    fn path_for(&self, digest: &str) -> PathBuf {
        let hexpart = digest.trim_start_matches("sha256:");
        self.dir.join(format!("{hexpart}-{}.cwasm", self.engine_key))
    }

    /// Loads the compiled form of `bytes` from the cache, or compiles it and
    /// stores it. A corrupt or incompatible entry is replaced.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, Origin)> {
        let path = self.path_for(digest);
        if path.is_file() && self.dir_is_private() {
            match load(engine, &path) {
                Ok(c) => return Ok((c, Origin::Cache)),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "discarding unusable cache entry"),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&component, &path) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not write the component cache; continuing without it");
        }
        Ok((component, Origin::Compiled))
    }

    /// Artifacts are native code: they are loaded only from a directory that
    /// no other user can write to.
    fn dir_is_private(&self) -> bool {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(&self.dir) {
            Ok(m) if m.permissions().mode() & 0o022 == 0 => true,
            Ok(m) => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    mode = format!("{:o}", m.permissions().mode() & 0o777),
                    "not loading compiled components from a cache directory that group or others can write; \
                     run `chmod go-w` on it"
                );
                false
            }
            Err(_) => false,
        }
    }

    fn store(&self, component: &Component, path: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let artifact = component.serialize().map_err(anyhow::Error::from)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(&artifact)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path)?;
        Ok(())
    }
}

/// Maps a cached artifact. The cache directory must be writable only by the
/// operator: an artifact is native code.
#[allow(unsafe_code)]
fn load(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was produced by `Component::serialize` for an engine
    // with the same compatibility hash (it is in the file name, and wasmtime
    // re-checks its header), and the cache directory belongs to the operator.
    unsafe { Component::deserialize_file(engine, path) }
}
