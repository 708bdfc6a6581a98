//! The memo cache of compute steps: a completed step's output, kept under
//! its memo key (see `engine::memo`), so that the same component on the
//! same input under the same limits completes without running, in any run
//! and any process that shares the store.
//!
//! The cache has a size cap: a put evicts the least recently used entries
//! until the cache fits. Every store implements it with the same meaning
//! (the conformance suite checks both).

use crate::contract::EmittedAction;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a memo entry holds: the step's output and the actions it emitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoEntry {
    /// The step's output.
    pub output: Value,
    /// The actions it emitted (delivered again on every hit).
    #[serde(default)]
    pub actions: Vec<EmittedAction>,
}

impl MemoEntry {
    /// The entry as stored, and the bytes it is charged (its text plus its key).
    pub fn encode(&self, key: &str) -> Result<(String, u64), serde_json::Error> {
        let text = serde_json::to_string(self)?;
        let bytes = (text.len() + key.len()) as u64;
        Ok((text, bytes))
    }
}

/// What `weft cache stats` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoStats {
    /// Entries held.
    pub entries: u64,
    /// Bytes they are charged, in all.
    pub bytes: u64,
    /// Hits served since the entries were written.
    pub hits: u64,
}
