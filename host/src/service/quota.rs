//! The tenants' quotas. On submission: runs pending or running at once
//! (counted in the store, so every server process agrees), submissions per
//! minute (counted by this process, in one-minute windows), and fuel per
//! clock hour (counted by every worker, in the store: `usage.rs`). The
//! bytes a tenant keeps are charged where they are stored (`stored.rs`).
//! Going over answers 429 with `Retry-After`.

use super::Service;
use super::problem::Problem;
use super::tenants::{Caller, Quotas};
use super::usage;
use crate::contract::ExecutionStatus;
use crate::store::RunFilter;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Submissions per tenant in the current minute.
#[derive(Default)]
pub(super) struct Windows(Mutex<HashMap<String, (u64, u32)>>);

impl Windows {
    /// Counts a submission of `tenant`; `Err(seconds)` until the next
    /// window when it already made `per_minute`.
    fn admit(&self, tenant: &str, per_minute: u32, now_ms: u64) -> Result<(), u64> {
        let minute = now_ms / 60_000;
        let mut g = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = g.entry(tenant.to_string()).or_insert((minute, 0));
        if slot.0 != minute {
            *slot = (minute, 0);
        }
        if slot.1 >= per_minute {
            return Err(60 - (now_ms / 1000) % 60);
        }
        slot.1 += 1;
        Ok(())
    }
}

impl Service {
    /// `Err(429)` when a new run of the caller's would break a quota of its
    /// tenant; else the tenant's quotas (its per-attempt ceilings too).
    pub(super) async fn admit_run(&self, caller: &Caller) -> Result<super::tenants::Quotas, Problem> {
        let q = &self.quotas_of(caller).await?;
        let limit = q.max_concurrent_runs as usize;
        let active = self.active_runs(&caller.tenant, limit).await?;
        if active >= limit {
            self.metrics.quota_rejected(&caller.tenant, "concurrent_runs");
            return Err(Problem::quota(
                format!(
                    "the tenant has {active} runs pending or running, its quota `max_concurrent_runs` is {limit}; \
                     wait for some to finish, or ask the operator to raise it"
                ),
                5,
            ));
        }
        if let Some(max) = q.max_fuel_per_hour {
            let used = usage::fuel_this_hour(self.engine.store().as_ref(), &caller.tenant).await?;
            if used >= max {
                self.metrics.quota_rejected(&caller.tenant, "fuel_per_hour");
                let wait = usage::seconds_to_next_hour(crate::store::now_ms());
                return Err(Problem::quota(
                    format!(
                        "the tenant's attempts consumed {used} fuel this hour, its quota `max_fuel_per_hour` is {max}; \
                         try again in {wait} s, when the next hour starts, or ask the operator to raise it"
                    ),
                    wait,
                ));
            }
        }
        if let Err(wait) = self.quotas.admit(&caller.tenant, q.submissions_per_minute, crate::store::now_ms()) {
            self.metrics.quota_rejected(&caller.tenant, "submissions_per_minute");
            return Err(Problem::quota(
                format!(
                    "the tenant submitted {} runs this minute, its quota `submissions_per_minute`; try again in {wait} s",
                    q.submissions_per_minute
                ),
                wait,
            ));
        }
        Ok(q.clone())
    }

    /// How many runs of `tenant` are pending or running, counted up to `limit + 1`.
    pub(super) async fn active_runs(&self, tenant: &str, limit: usize) -> Result<usize, Problem> {
        let mut active = 0;
        for status in [ExecutionStatus::Running, ExecutionStatus::Pending] {
            let filter =
                RunFilter { status: Some(status), tenant: Some(tenant.into()), limit: limit + 1, ..Default::default() };
            active += self.engine.store().list_runs(&filter).await?.len();
        }
        Ok(active.min(limit + 1))
    }

    /// The quotas of the caller's tenant.
    pub(super) async fn quotas_of(&self, caller: &Caller) -> Result<Quotas, Problem> {
        match self.tenants.get(&caller.tenant).await {
            Ok(Some(tenant)) => Ok(tenant.quotas),
            Ok(None) => Err(Problem::unauthorized("the token's tenant is gone; ask the operator")),
            Err(e) => {
                tracing::error!(error = %e, "a tenant record could not be read");
                Err(Problem::unavailable("the tenant's record could not be read; try again shortly"))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::Windows;

    #[test]
    fn a_window_admits_its_quota_then_waits_for_the_next_minute() {
        let w = Windows::default();
        let t0 = 10 * 60_000 + 15_000;
        assert!(w.admit("a", 2, t0).is_ok());
        assert!(w.admit("a", 2, t0 + 1).is_ok());
        assert_eq!(w.admit("a", 2, t0 + 2), Err(45));
        // Another tenant has its own window.
        assert!(w.admit("b", 2, t0 + 3).is_ok());
        assert!(w.admit("a", 2, t0 + 60_000).is_ok());
    }
}
