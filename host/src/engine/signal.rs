//! Delivering an approval gate's decision: [`Engine::signal`] checks that
//! the run is unfinished and that the gate is waiting (from the run's
//! journal), then stores the signal, once per gate. The process that drives
//! the run takes it within a second; a run nobody drives any more is left
//! for the caller to resume ([`Signalled::orphaned`]).

use super::Engine;
use crate::contract::{ExecutionStatus, now_ms, now_rfc3339};
use crate::store::{JournalEntry, Signal, SignalPut, StoreError, owner_is_dead};
use serde_json::Value;

/// What [`Engine::signal`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Signalled {
    /// False when this signal id had been delivered before (nothing changed).
    pub stored: bool,
    /// No live process drives the run: resume it to let the gate take the signal.
    pub orphaned: bool,
}

/// Why a signal was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The run has finished.
    #[error("run `{run_id}` has already finished (`{}`); a signal can only reach a running run", .status.as_str())]
    Finished {
        /// The run.
        run_id: String,
        /// How it ended.
        status: ExecutionStatus,
    },
    /// The step is not an approval gate that waits now.
    #[error("step `{step_id}` of run `{run_id}` is not waiting for a signal: {why}")]
    NotWaiting {
        /// The run.
        run_id: String,
        /// The step.
        step_id: String,
        /// What it is doing instead.
        why: String,
    },
    /// The gate already took another decision.
    #[error(
        "step `{step_id}` already has a decision (signal `{existing}`); a gate takes one signal, and sending the same \
         signal id again is what retries do"
    )]
    Conflict {
        /// The gate.
        step_id: String,
        /// The signal it has.
        existing: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// Delivers `data` as signal `signal_id` to the approval gate `step_id`
    /// of run `run_id`.
    pub async fn signal(
        &self,
        run_id: &str,
        step_id: &str,
        signal_id: &str,
        data: Value,
    ) -> Result<Signalled, SignalError> {
        let record = self.store.get_run(run_id).await?;
        let orphaned =
            record.status == ExecutionStatus::Running && (!record.lease_live || owner_is_dead(&record.run.owner));
        // The same signal again is a no-op, also once the run has gone on
        // (a retry after a crash may still have a run to resume).
        if let Some(existing) = self.store.signal_get(run_id, step_id).await? {
            if existing.signal_id == signal_id {
                return Ok(Signalled { stored: false, orphaned });
            }
            return Err(SignalError::Conflict { step_id: step_id.into(), existing: existing.signal_id });
        }
        if record.status != ExecutionStatus::Running {
            return Err(SignalError::Finished { run_id: run_id.into(), status: record.status });
        }
        let journal = self.store.journal(run_id).await?;
        let (mut opened, mut ended) = (None, None);
        for j in &journal {
            match &j.entry {
                JournalEntry::GateOpened { step_id: s, until_ms } if s == step_id => opened = Some(*until_ms),
                JournalEntry::StepCompleted { step_id: s, .. } if s == step_id => ended = Some("it has completed"),
                JournalEntry::StepFailed { step_id: s, .. } if s == step_id => ended = Some("it has failed"),
                JournalEntry::StepSkipped { step_id: s, .. } if s == step_id => ended = Some("it was skipped"),
                _ => {}
            }
        }
        let why = match (ended, opened) {
            (Some(why), _) => Some(why.to_string()),
            (None, None) => Some(
                "it is not an approval gate (`wait_for: signal`), or the run has not reached it yet; `weft runs show` \
                 lists the steps that wait"
                    .to_string(),
            ),
            (None, Some(until)) if now_ms() > until => Some(format!(
                "its deadline passed {} s ago; it fails with `timeout` as its run goes on",
                (now_ms() - until) / 1000
            )),
            _ => None,
        };
        if let Some(why) = why {
            return Err(SignalError::NotWaiting { run_id: run_id.into(), step_id: step_id.into(), why });
        }
        let signal = Signal { signal_id: signal_id.into(), data, at: now_rfc3339() };
        let stored = match self.store.signal_put(run_id, step_id, &signal).await? {
            SignalPut::Stored => {
                super::run::wake_gate(run_id, step_id);
                true
            }
            SignalPut::Duplicate => false,
            SignalPut::Conflict(existing) => {
                return Err(SignalError::Conflict { step_id: step_id.into(), existing });
            }
        };
        Ok(Signalled { stored, orphaned })
    }
}
