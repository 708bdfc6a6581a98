//! Key-value state for effect steps (`weft:step/kv`): durable, kept in the
//! host's run store, one scope per workflow. The step's node must declare
//! `kv: true` under `capabilities`.
//!
//! ```ignore
//! let seen = weft_plugin::kv::get("last-order")?;
//! weft_plugin::kv::set("last-order", b"o-42")?;
//! ```

use crate::StepError;
use crate::effect_bindings::weft::step::kv as wit;

/// Why a key-value call failed.
pub use wit::KvError;

impl From<KvError> for StepError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Denied(m) => StepError::fatal(format!("key-value state denied: {m}")),
            KvError::Limit(m) => StepError::fatal(format!("key-value limit: {m}")),
            KvError::Store(m) => StepError::retryable(format!("key-value store: {m}")),
        }
    }
}

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    wit::get(key)
}

/// The value under `key` as UTF-8 text, if any (lossy).
pub fn get_string(key: &str) -> Result<Option<String>, KvError> {
    Ok(wit::get(key)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// Stores `value` under `key`.
pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
    wit::set(key, value)
}

/// Removes `key`; true when it was there.
pub fn delete(key: &str) -> Result<bool, KvError> {
    wit::delete(key)
}

/// Up to `limit` keys starting with `prefix`, in byte order.
pub fn list_keys(prefix: &str, limit: u32) -> Result<Vec<String>, KvError> {
    wit::list_keys(prefix, limit)
}
