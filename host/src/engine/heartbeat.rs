//! Holding a run: the lease a driving process keeps renewed in the store (the
//! heartbeat, which also carries cancel requests from other processes), and
//! the runs this process drives, so that it never drives one twice.

use crate::store::{Lease, RunStore, StoreError};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a process's lease on a run lasts without a heartbeat.
pub const DEFAULT_LEASE_MS: u64 = 10_000;
/// How often a driving process renews its lease and looks for a cancel request.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(200);

/// The ids of the runs this process is driving now.
fn driven_here() -> MutexGuard<'static, HashSet<String>> {
    static DRIVEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    DRIVEN.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks a run as driven by this process for as long as it lives (also when
/// its task is dropped mid-run).
pub(super) struct DrivenHere(String);

impl DrivenHere {
    /// Marks `run_id` as driven here; `None` when it is already (checked and
    /// marked at once, so that two resumes in one process cannot both pass).
    pub(super) fn try_enter(run_id: &str) -> Option<Self> {
        driven_here().insert(run_id.to_string()).then(|| Self(run_id.to_string()))
    }
}

impl Drop for DrivenHere {
    fn drop(&mut self) {
        driven_here().remove(&self.0);
    }
}

/// What the heartbeat of one run needs.
pub(super) struct Heartbeat {
    pub(super) store: Arc<dyn RunStore>,
    pub(super) lease: Arc<Lease>,
    pub(super) lease_ms: u64,
    /// Cancelled when another process asks for a cancel, or takes the run over.
    pub(super) cancel: CancellationToken,
}

impl Heartbeat {
    /// Renews the lease every [`HEARTBEAT_EVERY`] until aborted, and turns a
    /// cancel request in the store into a cancellation of the run.
    pub(super) fn spawn(self) -> tokio::task::JoinHandle<()> {
        let Self { store, lease, lease_ms, cancel } = self;
        let run_id = lease.run_id.clone();
        // A lease of under a second is renewed more often than every 200 ms.
        let every = HEARTBEAT_EVERY.min(Duration::from_millis((lease_ms / 3).max(10)));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match store.heartbeat(&lease, lease_ms).await {
                    Ok(true) => cancel.cancel(),
                    Ok(false) => {}
                    Err(StoreError::LeaseLost(_)) => {
                        tracing::error!(run_id, "another process took over this run; stopping it here");
                        cancel.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(run_id, error = %e, "the run's lease could not be renewed"),
                }
            }
        })
    }
}
