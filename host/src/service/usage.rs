//! What each tenant has used, in the store's usage counters
//! ([`RunStore::usage_add`]), so that every server and worker adds to one
//! total: the fuel its attempts consumed in each clock hour
//! (`fuel/<hour>`) and the bytes of components and workflows it keeps
//! (`stored_bytes`).
//!
//! Fuel is counted where attempts run: the [`FuelMeter`] is a
//! [`RunObserver`] of every engine that drives tenants' runs (`weft serve`
//! and `weft worker`). It adds up attempts in memory and writes the sums
//! once a second, and at the end. Quotas read the counters when a tenant
//! submits (`quota.rs`) or uploads (`components.rs`, `workflows.rs`).

use crate::contract::AttemptReport;
use crate::engine::{ObservedRun, RunObserver};
use crate::store::{RunStore, StoreError, UsageAdd};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The counter of the bytes a tenant keeps.
pub(super) const STORED_BYTES: &str = "stored_bytes";
/// How fuel counters' names start.
const FUEL: &str = "fuel/";

/// The clock hour `now_ms` falls in (hours since the Unix epoch).
pub(super) fn hour_of(now_ms: u64) -> u64 {
    now_ms / 3_600_000
}

/// The counter of the fuel consumed in `hour` (zero-padded, so that the
/// names sort as the hours do).
pub(super) fn fuel_counter(hour: u64) -> String {
    format!("{FUEL}{hour:012}")
}

/// Seconds from `now_ms` to the next clock hour (at least 1).
pub(super) fn seconds_to_next_hour(now_ms: u64) -> u64 {
    (3_600_000 - now_ms % 3_600_000).div_ceil(1000).max(1)
}

/// Counts the fuel of tenants' attempts and writes it to the store.
pub struct FuelMeter {
    store: Arc<dyn RunStore>,
    /// Fuel not yet written, by (tenant, hour).
    pending: Mutex<HashMap<(String, u64), u64>>,
    /// The hour each tenant's older counters were last dropped in.
    pruned: Mutex<HashMap<String, u64>>,
    /// Held by a flush, so that the last one waits for one in flight.
    flushing: tokio::sync::Mutex<()>,
}

impl FuelMeter {
    /// A meter writing to `store`.
    pub fn new(store: Arc<dyn RunStore>) -> Arc<Self> {
        Arc::new(Self { store, pending: Default::default(), pruned: Default::default(), flushing: Default::default() })
    }

    /// Writes what was counted since the last flush (what fails to be
    /// written is kept for the next one), and drops counters older than the
    /// previous hour.
    pub async fn flush(&self) {
        let _turn = self.flushing.lock().await;
        let batch: Vec<((String, u64), u64)> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner)).into_iter().collect();
        for ((tenant, hour), fuel) in batch {
            let delta = fuel.min(i64::MAX as u64) as i64;
            if let Err(e) = self.store.usage_add(&tenant, &fuel_counter(hour), delta, u64::MAX).await {
                tracing::warn!(tenant, error = %e, "fuel usage could not be written; trying again");
                *self.pending.lock().unwrap_or_else(PoisonError::into_inner).entry((tenant, hour)).or_default() += fuel;
                continue;
            }
            self.prune(&tenant, hour).await;
        }
    }

    /// Drops `tenant`'s fuel counters older than two hours before `hour`,
    /// once per hour (the margin covers clocks of workers that run ahead).
    async fn prune(&self, tenant: &str, hour: u64) {
        let done = self.pruned.lock().unwrap_or_else(PoisonError::into_inner).insert(tenant.to_string(), hour);
        if done != Some(hour)
            && let Err(e) = self.store.usage_prune(tenant, FUEL, &fuel_counter(hour.saturating_sub(2))).await
        {
            tracing::warn!(tenant, error = %e, "old fuel counters could not be dropped");
        }
    }

    /// Flushes once a second until `stop` resolves (the caller flushes
    /// once more when its runs have ended).
    pub fn spawn(
        self: &Arc<Self>,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => me.flush().await,
                }
            }
        })
    }
}

impl RunObserver for FuelMeter {
    fn attempt_finished(&self, run: ObservedRun<'_>, _step_id: &str, _attempt: u32, report: &AttemptReport) {
        let fuel = report.stats.fuel_consumed;
        if run.tenant.is_empty() || fuel == 0 {
            return;
        }
        let hour = hour_of(crate::store::now_ms());
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = pending.entry((run.tenant.to_string(), hour)).or_default();
        *slot = slot.saturating_add(fuel);
    }
}

/// The fuel `tenant`'s attempts consumed this clock hour (as written so
/// far: up to a second behind).
pub(super) async fn fuel_this_hour(store: &dyn RunStore, tenant: &str) -> Result<u64, StoreError> {
    store.usage_get(tenant, &fuel_counter(hour_of(crate::store::now_ms()))).await
}

/// Charges `bytes` more to what `tenant` keeps, within `limit`:
/// `Err(used)` when it would pass it.
pub(super) async fn charge_stored(
    store: &dyn RunStore,
    tenant: &str,
    bytes: i64,
    limit: Option<u64>,
) -> Result<Result<u64, u64>, StoreError> {
    Ok(match store.usage_add(tenant, STORED_BYTES, bytes, limit.unwrap_or(u64::MAX)).await? {
        UsageAdd::Added(total) => Ok(total),
        UsageAdd::Over(used) => Err(used),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hours_sort_as_their_counters_and_the_wait_ends_at_the_next_hour() {
        assert!(fuel_counter(9) < fuel_counter(10));
        assert_eq!(hour_of(7_200_000 + 5), 2);
        assert_eq!(seconds_to_next_hour(7_200_000), 3600);
        assert_eq!(seconds_to_next_hour(7_200_000 + 3_599_500), 1);
    }

    #[tokio::test]
    async fn a_tenants_fuel_is_summed_and_written_once_per_flush() {
        use crate::contract::{AttemptStats, StepSuccess};
        let store: Arc<dyn RunStore> = Arc::new(crate::store::MemoryStore::new());
        let meter = FuelMeter::new(store.clone());
        let report = |fuel| AttemptReport {
            outcome: Ok(StepSuccess { output: serde_json::Value::Null, actions: vec![] }),
            stats: AttemptStats { fuel_consumed: fuel, ..Default::default() },
            logs: vec![],
        };
        let run = |tenant| ObservedRun { run_id: "r", workflow: "w", tenant, traceparent: None };
        meter.attempt_finished(run("acme"), "a", 1, &report(100));
        meter.attempt_finished(run("acme"), "b", 1, &report(50));
        meter.attempt_finished(run(""), "a", 1, &report(1000));
        assert_eq!(fuel_this_hour(store.as_ref(), "acme").await.unwrap(), 0, "nothing before the flush");
        meter.flush().await;
        assert_eq!(fuel_this_hour(store.as_ref(), "acme").await.unwrap(), 150);
        assert_eq!(fuel_this_hour(store.as_ref(), "").await.unwrap(), 0, "a single-tenant host's runs are not metered");
        meter.flush().await;
        assert_eq!(fuel_this_hour(store.as_ref(), "acme").await.unwrap(), 150, "a flush writes each sum once");
    }
}
