//! A worker: [`Engine::work`] claims runnable runs from a shared store and
//! drives them, up to a number at once, until the engine drains.
//!
//! Each turn claims as many runs as there are free slots
//! ([`RunStore::claim_next`](crate::store::RunStore::claim_next), which skips
//! what other workers are claiming at that moment), then waits for a slot
//! to free up, a wake-up hint from the store, or the poll interval: the
//! poll is the authority, the hint only makes a claim sooner. A run's steps
//! all run in the worker that holds its lease; different runs spread over
//! the workers.
//!
//! On [`Engine::drain`] the worker claims nothing more, and every run it
//! drives drains too: steps in flight finish (up to the run's shutdown
//! timeout), the leases are given up, and another worker continues those
//! runs at once.

use super::handle::failure_output;
use super::{Engine, ResumeOptions, StartError};
use crate::contract::{ExecutionStatus, RunOutput};
use crate::store::{JournalEntry, Lease, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// How many runs it drives at once.
    pub concurrency: usize,
    /// How often it looks for work without a hint.
    pub poll_every: Duration,
    /// How runs are resumed (component upgrades, limits).
    pub resume: ResumeOptions,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self { concurrency: 4, poll_every: Duration::from_secs(1), resume: ResumeOptions::default() }
    }
}

/// What a worker reports as it goes.
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    /// It claimed a run and drives it now.
    Claimed {
        /// The run.
        run_id: String,
        /// The lease's epoch.
        epoch: u64,
    },
    /// A run it drove ended here: finished, or drained (`paused`).
    Ended {
        /// The run.
        run_id: String,
        /// How it ended.
        status: ExecutionStatus,
    },
    /// Another worker took a run over from this one (this one was paused or
    /// cut off past its lease): its late writes were refused, and it stopped
    /// driving the run.
    LeaseLost {
        /// The run.
        run_id: String,
    },
    /// A run it claimed could not be driven here.
    Refused {
        /// The run.
        run_id: String,
        /// Why.
        reason: String,
    },
    /// The store could not be reached; the worker tries again.
    StoreError(String),
}

/// What a run's end here means to the worker.
fn ended(run_id: String, out: &RunOutput) -> WorkerEvent {
    if out.errors.iter().any(|e| e.error_type == super::LEASE_LOST) {
        WorkerEvent::LeaseLost { run_id }
    } else {
        WorkerEvent::Ended { run_id, status: out.execution_status }
    }
}

impl Engine {
    /// Claims and drives runnable runs from the store until [`Engine::drain`],
    /// then waits for its runs to drain. `report` hears about each run.
    pub async fn work(&self, opts: WorkerOptions, report: impl Fn(WorkerEvent) + Send + Sync) {
        let concurrency = opts.concurrency.max(1);
        let mut running: JoinSet<(String, RunOutput)> = JoinSet::new();
        let drain = self.drain.clone();
        loop {
            if drain.is_cancelled() {
                break;
            }
            let free = concurrency.saturating_sub(running.len());
            if free > 0 {
                match self.store.claim_next(&self.owner, self.lease_ms, free).await {
                    Ok(leases) => {
                        for lease in leases {
                            self.take_up(lease, &opts.resume, &mut running, &report).await;
                        }
                    }
                    Err(e) => report(WorkerEvent::StoreError(e.to_string())),
                }
            }
            let full = running.len() >= concurrency;
            tokio::select! {
                _ = drain.cancelled() => {}
                Some(done) = running.join_next(), if !running.is_empty() => {
                    if let Ok((run_id, out)) = done {
                        report(ended(run_id, &out));
                    }
                }
                _ = self.store.wait_for_work(opts.poll_every), if !full => {}
            }
        }
        while let Some(done) = running.join_next().await {
            if let Ok((run_id, out)) = done {
                report(ended(run_id, &out));
            }
        }
    }

    /// Drives a run just claimed; one that cannot be driven here gives its
    /// lease back (and goes to the dead-letter queue once it is poison).
    async fn take_up(
        &self,
        lease: Lease,
        resume: &ResumeOptions,
        running: &mut JoinSet<(String, RunOutput)>,
        report: &(impl Fn(WorkerEvent) + Send + Sync),
    ) {
        let run_id = lease.run_id.clone();
        let epoch = lease.epoch;
        match self.resume_claimed(lease.clone(), resume.clone()).await {
            Ok(mut handle) => {
                report(WorkerEvent::Claimed { run_id: run_id.clone(), epoch });
                handle.events.close();
                running.spawn(async move { (run_id, handle.wait().await) });
            }
            Err(e) => {
                let reason = e.to_string();
                report(WorkerEvent::Refused { run_id: run_id.clone(), reason: reason.clone() });
                if !matches!(e, StartError::Store(StoreError::LeaseLost(_) | StoreError::Finished(_))) {
                    self.give_back(&lease, &reason).await;
                }
            }
        }
    }

    /// Gives the lease of a run that cannot be driven here back, so that a
    /// worker that can (another machine, the component's file) takes it; a
    /// run claimed too often this way is sent to the dead-letter queue as
    /// `poison`, with the reason.
    async fn give_back(&self, lease: &Lease, reason: &str) {
        let result = if lease.is_poison() {
            let message = format!(
                "no worker could drive the run in {} claims in a row (the last said: {reason}); it was sent to the \
                 dead-letter queue",
                lease.idle_claims
            );
            let output = Arc::new(failure_output("poison", &message));
            let entries = vec![
                JournalEntry::DeadLettered { step_id: "workflow".into(), error_type: "poison".into(), message },
                JournalEntry::RunFinished { output },
            ];
            self.store.append(lease, entries).await
        } else {
            self.store.release(lease).await
        };
        if let Err(e) = result {
            tracing::warn!(run_id = %lease.run_id, error = %e, "the lease of a run that cannot be driven here stays until it expires");
        }
    }
}
