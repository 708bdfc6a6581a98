//! The tenants' quotas on submission: runs pending or running at once
//! (counted in the store, so every server process agrees), and
//! submissions per minute (counted by this process, in one-minute
//! windows). Going over answers 429 with `Retry-After`.

use super::Service;
use super::problem::Problem;
use super::tenants::Caller;
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
        let Some(tenant) = self.tenants.get(&caller.tenant).await.map_err(|e| {
            tracing::error!(error = %e, "a tenant record could not be read");
            Problem::unavailable("the tenant's record could not be read; try again shortly")
        })?
        else {
            return Err(Problem::unauthorized("the token's tenant is gone; ask the operator"));
        };
        let q = &tenant.quotas;
        let limit = q.max_concurrent_runs as usize;
        let mut active = 0;
        for status in [ExecutionStatus::Running, ExecutionStatus::Pending] {
            let filter = RunFilter {
                status: Some(status),
                tenant: Some(caller.tenant.clone()),
                limit: limit + 1,
                ..Default::default()
            };
            active += self.engine.store().list_runs(&filter).await?.len();
        }
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
        Ok(tenant.quotas)
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
