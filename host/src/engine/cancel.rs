//! Cancelling a run from anywhere: the process that drives it stops it
//! within a heartbeat; a run nobody drives any more (its process died) is
//! stopped here, compensating if its strategy says so.

use super::{Engine, ResumeOptions, RunHandle, StartError};
use crate::contract::{ExecutionStatus, RunOutput};
use crate::store::{StoreError, owner_is_dead};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What [`Engine::cancel`] did.
pub enum CancelOutcome {
    /// The run had already finished, with this status.
    AlreadyFinished(ExecutionStatus),
    /// A live process drives the run and was asked to stop it (see
    /// [`Engine::wait_for_output`]).
    Requested {
        /// The process that drives it.
        owner: String,
    },
    /// No live process drives the run: this engine is stopping it.
    Orphaned(RunHandle),
}

/// How often [`Engine::wait_for_output`] looks at the store.
const POLL_EVERY: Duration = Duration::from_millis(100);

impl Engine {
    /// Asks run `run_id` to stop, wherever it is driven.
    pub async fn cancel(&self, run_id: &str, opts: ResumeOptions) -> Result<CancelOutcome, StartError> {
        let record = self.store.get_run(run_id).await?;
        if !self.store.request_cancel(run_id).await? {
            return Ok(CancelOutcome::AlreadyFinished(record.status));
        }
        let orphaned = !record.lease_live || owner_is_dead(&record.run.owner);
        if !orphaned {
            return Ok(CancelOutcome::Requested { owner: record.run.owner });
        }
        let handle = self.resume(run_id, ResumeOptions { cancelled: true, ..opts }).await?;
        Ok(CancelOutcome::Orphaned(handle))
    }

    /// The output of run `run_id` once it has finished, waiting at most
    /// `timeout` for it; `None` if it is still going then.
    pub async fn wait_for_output(&self, run_id: &str, timeout: Duration) -> Result<Option<Arc<RunOutput>>, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(out) = self.store.get_run(run_id).await?.output {
                return Ok(Some(out));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}
