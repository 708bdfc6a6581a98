//! The `kv` capability: `weft:step/kv`, answered by the run store in the
//! workflow's scope. Keys, values and the scope's total are limited; every
//! refusal is the interface's own `kv-error`, never a trap.

use super::Grants;
use super::capability::{AttemptWasi, Capability};
use super::denials::Denials;
use crate::capability::KvLimits;
use crate::contract::{KeyValue, KvError};
use crate::sandbox::bindings::effect::weft::step::kv as wit;
use crate::sandbox::state::StepState;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// The `kv` capability.
pub struct Kv;

/// Most keys one `list-keys` call returns.
pub const MAX_LISTED_KEYS: u32 = 1000;

/// Most key-value calls one attempt may make.
pub const MAX_KV_CALLS: u32 = 10_000;

impl Capability for Kv {
    fn name(&self) -> &'static str {
        "kv"
    }

    fn link(&self, linker: &mut Linker<StepState>) -> anyhow::Result<()> {
        wit::add_to_linker::<StepState, HasSelf<StepState>>(linker, |s| s).map_err(anyhow::Error::from)
    }

    fn prepare(&self, attempt: &mut AttemptWasi<'_>, grants: &Grants) -> Result<(), String> {
        if grants.capabilities.kv {
            let Some(binding) = &grants.kv else {
                return Err("the node is granted `kv`, but this host has no key-value store".into());
            };
            attempt.kv = KvSession {
                binding: Some((binding.store.clone(), binding.scope.clone())),
                limits: grants.kv_limits,
                denials: attempt.denials.clone(),
                calls: 0,
            };
        }
        Ok(())
    }
}

/// Where `kv` calls of one attempt go: the store and scope, when granted.
pub struct KvSession {
    binding: Option<(Arc<dyn KeyValue>, String)>,
    limits: KvLimits,
    denials: Denials,
    calls: u32,
}

impl KvSession {
    /// A session that refuses every call.
    pub fn closed(denials: Denials) -> Self {
        Self { binding: None, limits: KvLimits::default(), denials, calls: 0 }
    }

    /// The store and scope, or the error for an ungranted call or one past
    /// the attempt's [`MAX_KV_CALLS`].
    fn open(&mut self, op: &str) -> Result<(Arc<dyn KeyValue>, String), wit::KvError> {
        self.calls = self.calls.saturating_add(1);
        if self.calls > MAX_KV_CALLS {
            return Err(wit::KvError::Limit(format!("an attempt may make at most {MAX_KV_CALLS} key-value calls")));
        }
        match &self.binding {
            Some((store, scope)) => Ok((store.clone(), scope.clone())),
            None => {
                self.denials.record("kv", format!("{op}: the node is granted no key-value state (declare `kv: true`)"));
                Err(wit::KvError::Denied("the node is not granted `kv`; declare `kv: true` on it".into()))
            }
        }
    }

    fn check_key(&self, key: &str) -> Result<(), wit::KvError> {
        if key.is_empty() {
            return Err(wit::KvError::Limit("a key must not be empty".into()));
        }
        if key.len() as u64 > self.limits.max_key_bytes {
            return Err(wit::KvError::Limit(format!(
                "the key is {} bytes; keys are at most {} bytes",
                key.len(),
                self.limits.max_key_bytes
            )));
        }
        Ok(())
    }
}

fn from_store(e: KvError) -> wit::KvError {
    match e {
        KvError::Quota(m) => wit::KvError::Limit(m),
        KvError::Store(m) => wit::KvError::Store(m),
    }
}

impl wit::Host for StepState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, wit::KvError> {
        let (store, scope) = self.kv.open("get")?;
        self.kv.check_key(&key)?;
        store.kv_get(&scope, &key).await.map_err(from_store)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), wit::KvError> {
        let (store, scope) = self.kv.open("set")?;
        self.kv.check_key(&key)?;
        let max = self.kv.limits.max_value_bytes;
        if value.len() as u64 > max {
            return Err(wit::KvError::Limit(format!(
                "the value is {} bytes; values are at most {max} bytes",
                value.len()
            )));
        }
        store.kv_set(&scope, &key, &value, self.kv.limits.max_scope_bytes).await.map_err(from_store)
    }

    async fn delete(&mut self, key: String) -> Result<bool, wit::KvError> {
        let (store, scope) = self.kv.open("delete")?;
        self.kv.check_key(&key)?;
        store.kv_delete(&scope, &key).await.map_err(from_store)
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> Result<Vec<String>, wit::KvError> {
        let (store, scope) = self.kv.open("list-keys")?;
        let limit = limit.min(MAX_LISTED_KEYS) as usize;
        store.kv_keys(&scope, &prefix, limit).await.map_err(from_store)
    }
}
