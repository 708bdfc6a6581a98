//! [`KeyValue`]: the key-value state effect steps are granted, as the
//! sandbox sees it. The run stores implement it, in the same database as
//! the journal; the sandbox calls it. Keys live in scopes, one per workflow
//! (and tenant), so that two workflows never see each other's keys.

use std::future::Future;
use std::pin::Pin;

/// Why a key-value call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The scope would hold more than its quota.
    #[error("{0}")]
    Quota(String),
    /// The store failed.
    #[error("{0}")]
    Store(String),
}

/// A boxed key-value future.
pub type KvFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, KvError>> + Send + 'a>>;

/// Key-value state in scopes.
pub trait KeyValue: Send + Sync {
    /// The value of `key` in `scope`, if any.
    fn kv_get<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>>;
    /// Stores `value` under `key`, unless the scope's keys and values would
    /// then take more than `max_scope_bytes` ([`KvError::Quota`]).
    fn kv_set<'a>(&'a self, scope: &'a str, key: &'a str, value: &'a [u8], max_scope_bytes: u64) -> KvFuture<'a, ()>;
    /// Removes `key`; true when it was there.
    fn kv_delete<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, bool>;
    /// Up to `limit` keys of `scope` starting with `prefix`, in byte order.
    fn kv_keys<'a>(&'a self, scope: &'a str, prefix: &'a str, limit: usize) -> KvFuture<'a, Vec<String>>;
}

/// The scope of a workflow's keys, from its tenant (empty when
/// single-tenant) and workflow name: `<tenant length>:<tenant>/<workflow>`,
/// so that no two pairs share a scope, whatever characters they hold.
pub fn kv_scope(tenant: &str, workflow: &str) -> String {
    format!("{}:{tenant}/{workflow}", tenant.len())
}

/// The error of a write that would take a scope past its quota.
pub fn quota_message(after: u64, max: u64) -> String {
    format!(
        "the write would make this workflow's key-value scope {after} bytes; its quota is {max} bytes (delete keys, \
         or ask the operator to raise `[kv] max_scope_bytes`)"
    )
}

/// What each stored key costs against its scope's quota beyond its key
/// and value bytes, so that empty values cannot fill a store with rows.
pub const KV_ROW_OVERHEAD: u64 = 64;

/// What one stored key costs against its scope's quota.
pub fn kv_row_cost(key_bytes: usize, value_bytes: usize) -> u64 {
    (key_bytes + value_bytes) as u64 + KV_ROW_OVERHEAD
}
