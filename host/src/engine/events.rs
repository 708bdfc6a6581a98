//! What a run tells its watcher: [`RunEvent`]s, in order, each stamped with
//! the instant its transition happened (not when the watcher read it).

use crate::contract::{ExecutionStatus, UndeliveredAction};
use serde::Serialize;
use std::time::Instant;
use tokio::sync::mpsc;

/// Something that happened in a run, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run began.
    RunStarted {
        /// The run id.
        run_id: String,
        /// The workflow's name.
        workflow: String,
    },
    /// An attempt began.
    AttemptStarted {
        /// The step.
        step_id: String,
        /// Its attempt number.
        attempt: u32,
    },
    /// A `for_each` node began (or, after a resume, went on with) its shards.
    FanOutStarted {
        /// The node.
        step_id: String,
        /// Its shards in all.
        shards: u32,
        /// The shards still to run.
        remaining: u32,
    },
    /// An attempt failed and will be retried after `delay_ms`.
    Retrying {
        /// The step.
        step_id: String,
        /// The attempt that failed.
        attempt: u32,
        /// Its failure kind.
        error_type: String,
        /// The wait before the next attempt.
        delay_ms: u64,
    },
    /// An approval gate waits for its signal.
    Waiting {
        /// The gate.
        step_id: String,
        /// When it stops waiting (Unix ms).
        until_ms: u64,
    },
    /// The run waits only on approval gates.
    Paused {
        /// The run.
        run_id: String,
        /// The gates.
        waiting: Vec<String>,
    },
    /// A sub-workflow node started (or reattached to) its child run.
    ChildStarted {
        /// The node.
        step_id: String,
        /// The child run's id.
        run_id: String,
    },
    /// A memoized step was found in the memo cache: it completes without running.
    Memoized {
        /// The step.
        step_id: String,
    },
    /// A step completed.
    StepCompleted {
        /// The step.
        step_id: String,
        /// Attempts it took.
        attempts: u32,
    },
    /// A step failed for good.
    StepFailed {
        /// The step.
        step_id: String,
        /// Failure kind.
        error_type: String,
        /// What happened.
        message: String,
        /// True when `continue_on_error` tolerates it.
        tolerated: bool,
    },
    /// An action named a node that does not depend on its emitter, so it was
    /// not delivered (see [`UndeliveredAction::reason`]).
    ActionNotDelivered {
        /// The action.
        action: UndeliveredAction,
    },
    /// A step did not run.
    StepSkipped {
        /// The step.
        step_id: String,
        /// Why.
        reason: String,
    },
    /// Compensation of a completed effect step began.
    Compensating {
        /// The step being undone.
        step_id: String,
    },
    /// Compensation of a step ended.
    Compensated {
        /// The step.
        step_id: String,
        /// Whether `compensate` succeeded.
        ok: bool,
    },
    /// The run ended.
    RunFinished {
        /// Final status.
        status: ExecutionStatus,
    },
}

/// The sending side, held by the run: stamps each event as it is sent.
#[derive(Clone)]
pub(super) struct EventSender(mpsc::UnboundedSender<(Instant, RunEvent)>);

impl EventSender {
    /// A sender whose events nobody reads (until the run is spawned).
    pub(super) fn detached() -> Self {
        Self(mpsc::unbounded_channel().0)
    }

    /// Sends `event`, stamped now; dropped when nobody listens.
    pub(super) fn send(&self, event: RunEvent) {
        if !self.0.is_closed() {
            let _ = self.0.send((Instant::now(), event));
        }
    }
}

/// A run's events, in order; the stream ends when the run does.
pub struct RunEvents(mpsc::UnboundedReceiver<(Instant, RunEvent)>);

impl RunEvents {
    pub(super) fn channel() -> (EventSender, Self) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventSender(tx), Self(rx))
    }

    /// The next event, or `None` once the run has ended.
    pub async fn recv(&mut self) -> Option<RunEvent> {
        self.0.recv().await.map(|(_, e)| e)
    }

    /// The next event with the instant its transition happened.
    pub async fn recv_timed(&mut self) -> Option<(Instant, RunEvent)> {
        self.0.recv().await
    }

    /// Stops listening: the run goes on, and sends nothing more.
    pub fn close(&mut self) {
        self.0.close();
    }
}
