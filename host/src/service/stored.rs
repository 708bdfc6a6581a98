//! What a tenant keeps, against its `max_stored_bytes`: the bytes of its
//! components and of its registered workflows, in the store's usage
//! counter `stored_bytes` (so every server agrees).
//!
//! - Registering a workflow charges its growth (a new one its size, a
//!   replacement the difference); deleting one gives its size back.
//! - Uploading a component charges its size once. Deleting it hides it
//!   from the tenant's new workflows but gives nothing back: the store
//!   keeps its bytes by digest, for the runs that pinned it (there is no
//!   collection of blobs yet), so a quota that gave them back would not
//!   bound what the tenant can make the host keep. A tombstone remembers
//!   that it was charged: uploading it again is free.
//! - The charge and the write of one tenant take turns in this process
//!   ([`Service::write_turn`]), so that concurrent requests cannot count a
//!   replacement or an upload twice.
//! - A tenant from before the counter is counted once, from its records,
//!   on its first charge or view.

use super::Service;
use super::components::{COMPONENTS, ComponentInfo};
use super::problem::Problem;
use super::tenants::Caller;
use super::usage::{self, STORED_BYTES};
use super::workflows::{RegisteredWorkflow, WORKFLOWS};
use crate::store::UsageAdd;

/// The tombstones of a tenant's deleted components (still charged).
pub(super) const DELETED_COMPONENTS: &str = "components-deleted";
/// The counter that says a tenant's records were counted into `stored_bytes`.
const COUNTED: &str = "stored_bytes_counted";
/// The most records a count reads.
const MAX_COUNTED: usize = 100_000;

impl Service {
    /// Waits for the caller's tenant's turn to change what it keeps.
    pub(super) async fn write_turn(&self, caller: &Caller) -> tokio::sync::OwnedMutexGuard<()> {
        self.write_turns.take(&caller.tenant).await
    }

    /// The bytes the caller's tenant keeps (its records are counted first,
    /// the first time).
    pub(super) async fn stored_bytes(&self, caller: &Caller) -> Result<u64, Problem> {
        let store = self.engine.store();
        if store.usage_get(&caller.tenant, COUNTED).await? == 0
            && store.usage_add(&caller.tenant, COUNTED, 1, 1).await? == UsageAdd::Added(1)
        {
            let mut total: u64 = 0;
            for digest in self.own_keys(caller, COMPONENTS, MAX_COUNTED).await? {
                let info: Option<ComponentInfo> = self.own_record(caller, COMPONENTS, &digest).await?;
                total = total.saturating_add(info.map_or(0, |i| i.size_bytes));
            }
            for name in self.own_keys(caller, WORKFLOWS, MAX_COUNTED).await? {
                let wf: Option<RegisteredWorkflow> = self.own_record(caller, WORKFLOWS, &name).await?;
                total = total.saturating_add(wf.map_or(0, |w| w.definition.len() as u64));
            }
            store.usage_add(&caller.tenant, STORED_BYTES, total.min(i64::MAX as u64) as i64, u64::MAX).await?;
        }
        Ok(store.usage_get(&caller.tenant, STORED_BYTES).await?)
    }

    /// Charges `bytes` more to what the caller's tenant keeps, for `what`
    /// (its size in the message: `size`); `Err(429)` when that would pass
    /// its `max_stored_bytes`. Call it in the tenant's [`Service::write_turn`].
    pub(super) async fn charge_stored(
        &self,
        caller: &Caller,
        bytes: u64,
        size: u64,
        what: &str,
    ) -> Result<(), Problem> {
        self.stored_bytes(caller).await?;
        let limit = self.quotas_of(caller).await?.max_stored_bytes;
        let bytes = bytes.min(i64::MAX as u64) as i64;
        match usage::charge_stored(self.engine.store().as_ref(), &caller.tenant, bytes, limit).await? {
            Ok(_) => Ok(()),
            Err(used) => {
                self.metrics.quota_rejected(&caller.tenant, "stored_bytes");
                Err(Problem::quota(
                    format!(
                        "{what} of {size} bytes would take the tenant past its quota `max_stored_bytes` of {} bytes \
                         ({used} are used); delete workflows it no longer needs (DELETE /v1/workflows/{{name}}), or \
                         ask the operator to raise it (`weft tenant quotas`)",
                        limit.unwrap_or(u64::MAX)
                    ),
                    60,
                ))
            }
        }
    }

    /// Gives `bytes` back to the caller's tenant.
    pub(super) async fn give_back_stored(&self, caller: &Caller, bytes: u64) -> Result<(), Problem> {
        let bytes = bytes.min(i64::MAX as u64) as i64;
        // A negative amount always applies (down to 0).
        self.engine.store().usage_add(&caller.tenant, STORED_BYTES, -bytes, u64::MAX).await?;
        Ok(())
    }
}
