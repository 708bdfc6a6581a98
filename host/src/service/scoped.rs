//! The one place the API reaches stored objects, each scoped by the
//! caller's tenant: a run, workflow or component of another tenant answers
//! exactly as one that does not exist (404), so that ids cannot be probed.

use super::Service;
use super::problem::Problem;
use super::tenants::Caller;
use crate::store::{RunRecord, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The key-value scope of one tenant's `kind` of records
/// (`weft.service/<kind>/<len>:<tenant>`).
pub(super) fn tenant_scope(kind: &str, tenant: &str) -> String {
    format!("weft.service/{kind}/{}:{tenant}", tenant.len())
}

impl Service {
    /// The caller's run `run_id`; 404 when it is missing or another tenant's.
    pub(super) async fn own_run(&self, caller: &Caller, run_id: &str) -> Result<RunRecord, Problem> {
        match self.engine.store().get_run(run_id).await {
            Ok(record) if record.run.tenant() == caller.tenant => Ok(record),
            Ok(_) | Err(StoreError::NotFound(_)) => Err(Problem::not_found("run")),
            Err(e) => Err(e.into()),
        }
    }

    /// The caller's record `key` of `kind`, if any.
    pub(super) async fn own_record<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        kind: &str,
        key: &str,
    ) -> Result<Option<T>, Problem> {
        let scope = tenant_scope(kind, &caller.tenant);
        match self.engine.store().kv_get(&scope, key).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                tracing::error!(kind, key, error = %e, "a stored service record does not parse");
                Problem::unavailable("a stored record is damaged; the operator's log has the cause")
            }),
            None => Ok(None),
        }
    }

    /// Stores the caller's record `key` of `kind`.
    pub(super) async fn put_own_record<T: Serialize>(
        &self,
        caller: &Caller,
        kind: &str,
        key: &str,
        value: &T,
    ) -> Result<(), Problem> {
        let scope = tenant_scope(kind, &caller.tenant);
        let bytes = serde_json::to_vec(value).map_err(|e| Problem::bad_request(e.to_string()))?;
        Ok(self.engine.store().kv_set(&scope, key, &bytes, u64::MAX).await?)
    }

    /// Deletes the caller's record `key` of `kind`; whether it existed.
    pub(super) async fn delete_own_record(&self, caller: &Caller, kind: &str, key: &str) -> Result<bool, Problem> {
        let scope = tenant_scope(kind, &caller.tenant);
        Ok(self.engine.store().kv_delete(&scope, key).await?)
    }

    /// The keys of the caller's records of `kind`, in byte order, at most `limit`.
    pub(super) async fn own_keys(&self, caller: &Caller, kind: &str, limit: usize) -> Result<Vec<String>, Problem> {
        let scope = tenant_scope(kind, &caller.tenant);
        Ok(self.engine.store().kv_keys(&scope, "", limit).await?)
    }
}
