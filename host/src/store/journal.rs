//! The journal: every transition of a run, in the order it happened. The
//! engine folds it back into a run's state on resume (see `engine::run`).

use crate::contract::{ActionRecord, AttemptReport, ErrorRecord, ExecutionStatus, RunOutput};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// One transition of a run, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JournalEntry {
    /// The run was created.
    RunCreated {
        /// When.
        start_time: String,
    },
    /// A process began (or resumed) driving the run.
    RunResumed {
        /// The process.
        owner: String,
        /// The epoch of its lease (0 in journals from before epochs).
        #[serde(default)]
        epoch: u64,
    },
    /// A step was decided to run, with this input.
    StepScheduled {
        /// The step.
        step_id: String,
        /// Its input object (shared with the run's state, not copied).
        input: Arc<Map<String, Value>>,
    },
    /// An attempt is about to run.
    AttemptStarted {
        /// The step.
        step_id: String,
        /// The attempt number, from 1.
        attempt: u32,
    },
    /// An attempt ended.
    AttemptFinished {
        /// The step.
        step_id: String,
        /// The attempt number.
        attempt: u32,
        /// The typed outcome, fuel, time, memory and log lines. For the
        /// attempt that completed its step, the output and actions are not
        /// repeated here (null and empty): they are in the `step_completed`
        /// entry written in the same transaction.
        report: AttemptReport,
    },
    /// A step completed.
    StepCompleted {
        /// The step.
        step_id: String,
        /// Its output.
        output: Value,
        /// The actions it emitted, with their ids.
        actions: Vec<ActionRecord>,
    },
    /// A memoized step was completed from the memo cache, without running
    /// (its `step_completed` follows in the same transaction).
    StepMemoized {
        /// The step.
        step_id: String,
        /// The memo key it was found under.
        key: String,
    },
    /// A micro-batch of a producer's items, journaled before a consumer is
    /// invoked on it (its invocation's attempts are `shard_*` entries with
    /// `shard` = `batch`).
    StreamBatch {
        /// The consumer.
        step_id: String,
        /// The micro-batch, from 0.
        batch: u32,
        /// The position of its first item in the producer's stream.
        first_item: u64,
        /// Its items.
        items: Vec<Value>,
    },
    /// A step failed for good.
    StepFailed {
        /// The step.
        step_id: String,
        /// The failure kind.
        error_type: String,
        /// What happened.
        message: String,
        /// Tolerated by `continue_on_error`.
        tolerated: bool,
        /// What it produced anyway: a fan-out's results, with its failed shards.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
    },
    /// An attempt of one shard of a `for_each` node is about to run.
    ShardStarted {
        /// The node.
        step_id: String,
        /// The shard, from 0.
        shard: u32,
        /// The shard's attempt number, from 1.
        attempt: u32,
    },
    /// An attempt of one shard ended. The shard completed when `report` is
    /// a success, and failed for good when it is a failure and `last`.
    ShardFinished {
        /// The node.
        step_id: String,
        /// The shard.
        shard: u32,
        /// The attempt number.
        attempt: u32,
        /// The typed outcome, with the shard's output on success.
        report: AttemptReport,
        /// No further attempt of this shard follows.
        last: bool,
    },
    /// An approval gate began to wait for its signal, until `until_ms`
    /// (Unix ms; kept across restarts).
    GateOpened {
        /// The gate.
        step_id: String,
        /// When it stops waiting and fails with `timeout`.
        until_ms: u64,
    },
    /// An approval gate took its signal (its `step_completed` follows, with
    /// the signal's data as output).
    SignalReceived {
        /// The gate.
        step_id: String,
        /// The signal's id.
        signal_id: String,
    },
    /// A sub-workflow node's child run (its id is derived from the parent's
    /// and the node's, so a resume finds the same child).
    ChildLinked {
        /// The node.
        step_id: String,
        /// The child run.
        child_run_id: String,
        /// In a dead-letter replay: the failed child that the new child
        /// replays (its completed steps are kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replay_of: Option<String>,
    },
    /// Everything in flight is an approval gate, and nothing else can start:
    /// the run waits for a person (listed as `paused` until its next entry).
    RunPaused {
        /// The gates it waits on.
        waiting: Vec<String>,
    },
    /// A step was skipped.
    StepSkipped {
        /// The step.
        step_id: String,
        /// Why.
        reason: String,
    },
    /// The run stopped scheduling with this status; compensation may follow.
    RunStopping {
        /// The status it will end with.
        status: ExecutionStatus,
        /// Run-level errors (timeout, cancel).
        errors: Vec<ErrorRecord>,
        /// Parallel batches launched so far (for the output after a resume).
        #[serde(default)]
        parallel_executions: u64,
    },
    /// Compensation of a step is about to run.
    CompensationStarted {
        /// The step.
        step_id: String,
        /// The shard, for a `for_each` node (each shard is undone on its own).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<u32>,
    },
    /// Compensation of a step ended.
    CompensationFinished {
        /// The step.
        step_id: String,
        /// The shard, for a `for_each` node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<u32>,
        /// Whether `compensate` succeeded.
        ok: bool,
        /// Attempts it took.
        attempts: u32,
        /// The last error, if it failed.
        error: Option<String>,
    },
    /// The run failed terminally and went to the dead-letter queue.
    DeadLettered {
        /// The first step that failed.
        step_id: String,
        /// Its failure kind.
        error_type: String,
        /// Its message.
        message: String,
    },
    /// The run finished with this output.
    RunFinished {
        /// The output contract.
        output: Arc<RunOutput>,
    },
}

impl JournalEntry {
    /// The entry's kind, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RunCreated { .. } => "run_created",
            Self::RunResumed { .. } => "run_resumed",
            Self::StepScheduled { .. } => "step_scheduled",
            Self::AttemptStarted { .. } => "attempt_started",
            Self::AttemptFinished { .. } => "attempt_finished",
            Self::StepCompleted { .. } => "step_completed",
            Self::StepFailed { .. } => "step_failed",
            Self::StepSkipped { .. } => "step_skipped",
            Self::StepMemoized { .. } => "step_memoized",
            Self::GateOpened { .. } => "gate_opened",
            Self::SignalReceived { .. } => "signal_received",
            Self::RunPaused { .. } => "run_paused",
            Self::ChildLinked { .. } => "child_linked",
            Self::StreamBatch { .. } => "stream_batch",
            Self::ShardStarted { .. } => "shard_started",
            Self::ShardFinished { .. } => "shard_finished",
            Self::RunStopping { .. } => "run_stopping",
            Self::CompensationStarted { .. } => "compensation_started",
            Self::CompensationFinished { .. } => "compensation_finished",
            Self::DeadLettered { .. } => "dead_lettered",
            Self::RunFinished { .. } => "run_finished",
        }
    }

    /// Whether the entry moves the run forward: an attempt or a step that
    /// reached an end, a signal taken, an undo done, the run's end. A run
    /// claimed again and again with none of these in between is poison.
    pub fn is_progress(&self) -> bool {
        matches!(
            self,
            Self::AttemptFinished { .. }
                | Self::StepCompleted { .. }
                | Self::StepFailed { .. }
                | Self::StepSkipped { .. }
                | Self::StepMemoized { .. }
                | Self::SignalReceived { .. }
                | Self::StreamBatch { .. }
                | Self::ShardFinished { .. }
                | Self::CompensationFinished { .. }
                | Self::RunFinished { .. }
        )
    }

    /// The step the entry is about, if any.
    pub fn step_id(&self) -> Option<&str> {
        match self {
            Self::StepScheduled { step_id, .. }
            | Self::AttemptStarted { step_id, .. }
            | Self::AttemptFinished { step_id, .. }
            | Self::StepCompleted { step_id, .. }
            | Self::StepFailed { step_id, .. }
            | Self::StepSkipped { step_id, .. }
            | Self::StepMemoized { step_id, .. }
            | Self::GateOpened { step_id, .. }
            | Self::SignalReceived { step_id, .. }
            | Self::ChildLinked { step_id, .. }
            | Self::StreamBatch { step_id, .. }
            | Self::ShardStarted { step_id, .. }
            | Self::ShardFinished { step_id, .. }
            | Self::CompensationStarted { step_id, .. }
            | Self::CompensationFinished { step_id, .. }
            | Self::DeadLettered { step_id, .. } => Some(step_id),
            _ => None,
        }
    }
}

/// A journal entry as stored: its sequence number and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journaled {
    /// 1, 2, 3, ... within the run.
    pub seq: u64,
    /// When it was written (RFC 3339).
    pub at: String,
    /// The entry.
    #[serde(flatten)]
    pub entry: JournalEntry,
}
