//! Per-component circuit breakers, kept in the run store so that they hold
//! across runs and processes.
//!
//! Closed: calls pass and consecutive failures are counted; at the threshold
//! the breaker opens. Open: calls fail at once with `circuit_open` until the
//! cooldown ends. Then one call passes as a probe (half-open): success closes
//! the breaker, failure opens it for another cooldown. A probe that never
//! reports (its process died) is replaced after one cooldown.

use crate::store::{BreakerRecord, BreakerState, RunStore, StoreError, now_ms};

/// Thresholds of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before a probe, in milliseconds.
    pub cooldown_ms: u64,
}

/// Whether an attempt may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Run it; `probe` when it is the half-open probe.
    Pass {
        /// This attempt decides whether the breaker closes.
        probe: bool,
    },
    /// Fail it at once.
    Reject {
        /// Until the next probe, in milliseconds.
        retry_after_ms: u64,
    },
}

const CAS_TRIES: usize = 16;

fn closed() -> BreakerRecord {
    BreakerRecord { state: BreakerState::Closed, failures: 0, since_ms: 0, version: 0 }
}

/// Asks the breaker of `component` whether an attempt may run.
pub async fn gate(store: &dyn RunStore, component: &str, policy: BreakerPolicy) -> Result<Gate, StoreError> {
    for _ in 0..CAS_TRIES {
        let current = store.breaker_load(component).await?.unwrap_or_else(closed);
        let now = now_ms();
        let until = current.since_ms.saturating_add(policy.cooldown_ms);
        match current.state {
            BreakerState::Closed => return Ok(Gate::Pass { probe: false }),
            BreakerState::Open | BreakerState::HalfOpen if now < until => {
                return Ok(Gate::Reject { retry_after_ms: until - now });
            }
            BreakerState::Open | BreakerState::HalfOpen => {
                let next = BreakerRecord { state: BreakerState::HalfOpen, since_ms: now, ..current.clone() };
                if store.breaker_cas(component, current.version, &next).await? {
                    return Ok(Gate::Pass { probe: true });
                }
            }
        }
    }
    Err(StoreError::Backend(format!("the circuit breaker of {component} is contended; try again")))
}

/// Tells the breaker of `component` how an attempt that passed its gate
/// ended; returns its new state when that changed it.
pub async fn report(
    store: &dyn RunStore,
    component: &str,
    policy: BreakerPolicy,
    ok: bool,
    probe: bool,
) -> Result<Option<BreakerState>, StoreError> {
    for _ in 0..CAS_TRIES {
        let current = store.breaker_load(component).await?;
        let version = current.as_ref().map_or(0, |c| c.version);
        let current = current.unwrap_or_else(closed);
        let now = now_ms();
        let next = match (ok, current.state) {
            // Nothing to change: avoids a write per successful attempt.
            (true, BreakerState::Closed) if current.failures == 0 => return Ok(None),
            (true, BreakerState::Closed) => BreakerRecord { failures: 0, ..current.clone() },
            (true, BreakerState::HalfOpen) if probe => closed(),
            // A late success from before the breaker opened changes nothing.
            (true, _) => return Ok(None),
            (false, BreakerState::Closed) => {
                let failures = current.failures.saturating_add(1);
                if failures >= policy.failure_threshold {
                    BreakerRecord { state: BreakerState::Open, failures, since_ms: now, version }
                } else {
                    BreakerRecord { failures, ..current.clone() }
                }
            }
            (false, BreakerState::HalfOpen) if probe => {
                BreakerRecord { state: BreakerState::Open, failures: current.failures, since_ms: now, version }
            }
            (false, _) => return Ok(None),
        };
        if store.breaker_cas(component, version, &next).await? {
            return Ok((next.state != current.state).then_some(next.state));
        }
    }
    Err(StoreError::Backend(format!("the circuit breaker of {component} is contended; try again")))
}
