//! The SQLite store's usage counters: table `usage`, one row per tenant and
//! counter, changed inside an IMMEDIATE transaction so that concurrent
//! processes add to one total.

use super::{SqliteStore, StoreError, UsageAdd};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

impl SqliteStore {
    /// Adds `delta` unless a positive one would pass `limit`.
    pub(super) fn usage_add_now(
        &self,
        tenant: &str,
        counter: &str,
        delta: i64,
        limit: u64,
    ) -> Result<UsageAdd, StoreError> {
        let mut c = self.lock();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now: i64 = tx
            .query_row("SELECT amount FROM usage WHERE tenant = ?1 AND counter = ?2", params![tenant, counter], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0);
        let Some(after) = super::usage_after(now.max(0) as u64, delta, limit) else {
            return Ok(UsageAdd::Over(now.max(0) as u64));
        };
        tx.execute(
            "INSERT INTO usage (tenant, counter, amount) VALUES (?1, ?2, ?3) \
             ON CONFLICT (tenant, counter) DO UPDATE SET amount = excluded.amount",
            params![tenant, counter, after.min(i64::MAX as u64) as i64],
        )?;
        tx.commit()?;
        Ok(UsageAdd::Added(after))
    }

    /// The counter's total.
    pub(super) fn usage_get_now(&self, tenant: &str, counter: &str) -> Result<u64, StoreError> {
        let c = self.lock();
        let n: Option<i64> = c
            .query_row("SELECT amount FROM usage WHERE tenant = ?1 AND counter = ?2", params![tenant, counter], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// Drops the tenant's counters in `[prefix, before)` that start with `prefix`.
    pub(super) fn usage_prune_now(&self, tenant: &str, prefix: &str, before: &str) -> Result<u64, StoreError> {
        let c = self.lock();
        let n = c.execute(
            "DELETE FROM usage WHERE tenant = ?1 AND counter >= ?2 AND counter < ?3 AND substr(counter, 1, length(?2)) = ?2",
            params![tenant, prefix, before],
        )?;
        Ok(n as u64)
    }
}
