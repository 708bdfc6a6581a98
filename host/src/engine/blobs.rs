//! Components stored with the runs: a run's pinned components go into its
//! store by digest when it is created or submitted, and a process that
//! picks the run up where the file is not (a worker on another machine, a
//! file since removed) runs the pinned version from the store.
//!
//! A component fetched from the store is kept in a local directory named by
//! digest (checked before it is written), so each machine fetches each
//! version once; the compiled artifact is cached under the same digest by
//! the sandbox.

use super::Engine;
use crate::store::{ComponentBlob, PinnedComponent, StoreError};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Where fetched components are kept by default: `blobs/` in the
/// compiled-component cache's directory ($WEFT_CACHE_DIR, else
/// ~/.cache/weft/components).
pub fn default_blob_dir() -> Option<PathBuf> {
    crate::sandbox::default_cache_dir().map(|d| d.join("blobs"))
}

/// The digests this engine has stored in its store already.
#[derive(Default)]
pub(super) struct StoredBlobs(Mutex<HashSet<String>>);

impl StoredBlobs {
    fn contains(&self, digest: &str) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains(digest)
    }

    fn insert(&self, digests: impl IntoIterator<Item = String>) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend(digests);
    }
}

/// Whether `digest` is `sha256:` and 64 lowercase hex digits (it names a file).
fn well_formed(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

impl Engine {
    /// The components of `pins` this engine has not stored yet, read from
    /// their files; a file that no longer holds its pinned version is left
    /// out (the run still runs from the file's loaded version here).
    pub(super) fn blobs_for(&self, pins: &BTreeMap<String, PinnedComponent>) -> Vec<ComponentBlob> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for pin in pins.values() {
            if !seen.insert(pin.digest.as_str()) || self.stored_blobs.contains(&pin.digest) {
                continue;
            }
            match std::fs::read(&pin.path) {
                Ok(bytes) if crate::sandbox::digest(&bytes) == pin.digest => {
                    out.push(ComponentBlob { digest: pin.digest.clone(), bytes: Arc::new(bytes) })
                }
                Ok(_) => {
                    tracing::warn!(path = %pin.path, "the component changed on disk; its pinned version is not stored")
                }
                Err(e) => tracing::warn!(path = %pin.path, error = %e, "the component could not be read to store it"),
            }
        }
        out
    }

    /// Notes that `blobs` are in the store now.
    pub(super) fn blobs_stored(&self, blobs: &[ComponentBlob]) {
        self.stored_blobs.insert(blobs.iter().map(|b| b.digest.clone()));
    }

    /// Per pinned component path that has no file here (another machine,
    /// a file since removed), the local file that holds its pinned version
    /// from the store. Components the store does not hold (runs from before
    /// components were stored) are not in the map.
    pub(super) async fn fetch_pinned(
        &self,
        pins: &BTreeMap<String, PinnedComponent>,
    ) -> Result<BTreeMap<PathBuf, PathBuf>, StoreError> {
        let mut map = BTreeMap::new();
        let Some(dir) = self.blob_dir.as_deref() else { return Ok(map) };
        for pin in pins.values() {
            // A file at the pinned path is loaded from there: if it holds
            // another version now, the resume is refused (or upgraded) as it
            // always was, so that a changed component never goes unnoticed.
            if !well_formed(&pin.digest) || map.contains_key(Path::new(&pin.path)) || Path::new(&pin.path).exists() {
                continue;
            }
            let Some(file) = self.kept_or_fetched(dir, &pin.digest).await? else { continue };
            map.insert(PathBuf::from(&pin.path), file);
        }
        Ok(map)
    }

    /// The local file of the component `digest`: kept in the blob
    /// directory, or fetched from the store into it. None when the store
    /// does not hold it (or the engine keeps no blobs).
    pub async fn component_file(&self, digest: &str) -> Result<Option<PathBuf>, StoreError> {
        match self.blob_dir.as_deref() {
            Some(dir) if well_formed(digest) => self.kept_or_fetched(dir, digest).await,
            _ => Ok(None),
        }
    }

    /// Keeps an uploaded component: in the store by its digest (for every
    /// worker), and in the blob directory (for this process). Returns its
    /// digest, its local file, and whether the store did not hold it yet.
    pub async fn put_component(&self, bytes: Vec<u8>) -> Result<(String, PathBuf, bool), StoreError> {
        let Some(dir) = self.blob_dir.as_deref() else {
            return Err(StoreError::Backend("this engine keeps no components (it has no blob directory)".into()));
        };
        let digest = crate::sandbox::digest(&bytes);
        let file = blob_file(dir, &digest);
        write_atomically(dir, &file, &bytes).map_err(|e| {
            StoreError::Backend(format!("cannot keep the component {digest} in {}: {e}", dir.display()))
        })?;
        let blob = ComponentBlob { digest: digest.clone(), bytes: Arc::new(bytes) };
        let new = self.store.blob_put(&blob).await?;
        self.blobs_stored(std::slice::from_ref(&blob));
        Ok((digest, file, new))
    }

    /// The file in `dir` that holds `digest`, fetched from the store when it
    /// is not kept there (or no longer holds that digest).
    async fn kept_or_fetched(&self, dir: &Path, digest: &str) -> Result<Option<PathBuf>, StoreError> {
        let file = blob_file(dir, digest);
        // A kept file is used only if it still holds that digest.
        if std::fs::read(&file).is_ok_and(|bytes| crate::sandbox::digest(&bytes) == digest) {
            return Ok(Some(file));
        }
        let Some(bytes) = self.store.blob_get(digest).await? else { return Ok(None) };
        if crate::sandbox::digest(&bytes) != digest {
            return Err(StoreError::Backend(format!(
                "the stored component {digest} does not match its digest; the store is damaged"
            )));
        }
        write_atomically(dir, &file, &bytes).map_err(|e| {
            StoreError::Backend(format!("cannot keep the component {digest} in {}: {e}", dir.display()))
        })?;
        Ok(Some(file))
    }
}

/// The file in `dir` named by a well-formed `digest`.
fn blob_file(dir: &Path, digest: &str) -> PathBuf {
    dir.join(format!("{}.wasm", digest.trim_start_matches("sha256:")))
}

/// Writes `bytes` to `file` in `dir` by way of a temporary file, so that no
/// reader ever sees a partial component under its digest's name.
fn write_atomically(dir: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}
