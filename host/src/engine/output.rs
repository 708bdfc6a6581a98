//! The run's output: the seed's output subcontract, field for field.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Overall status (the seed's `execution_status` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Not started.
    Pending,
    /// In progress.
    Running,
    /// Suspended.
    Paused,
    /// Every step completed or was skipped.
    Completed,
    /// A step failed for good, or the run timed out.
    Failed,
    /// Cancelled by the caller.
    Cancelled,
}

impl ExecutionStatus {
    /// Every status, in the enum's order.
    pub const ALL: [Self; 6] =
        [Self::Pending, Self::Running, Self::Paused, Self::Completed, Self::Failed, Self::Cancelled];

    /// The snake_case name used in JSON and in the run store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status with this snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One emitted action (the seed's ModelAction shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Unique id.
    pub action_id: String,
    /// compute, effect, reduce, orchestrate or custom.
    pub action_type: String,
    /// The node it is for.
    pub target_node: String,
    /// Its data (an object).
    pub payload: Value,
}

/// An action that was not delivered: it named a node that does not depend on
/// the step that emitted it, or no node of the workflow at all (listed under
/// `output_variables.undelivered_actions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndeliveredAction {
    /// The action's id (as in `actions_emitted`).
    pub action_id: String,
    /// The step that emitted it.
    pub source_node: String,
    /// The node it named.
    pub target_node: String,
    /// Why it was not delivered and what to do, in one sentence.
    pub reason: String,
}

/// One error (the seed's `{step_id, error_type, message}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The step, or `workflow` for run-level errors.
    pub step_id: String,
    /// A failure kind (`timeout`, `trap`, `plugin_error`, ...) or a run-level
    /// error (`cancelled`, `expression`, `compensation_failed`).
    pub error_type: String,
    /// What happened.
    pub message: String,
}

/// The run's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutput {
    /// Overall status.
    pub execution_status: ExecutionStatus,
    /// Wall time of the whole run.
    pub execution_time_ms: u64,
    /// RFC 3339 start time.
    pub start_time: String,
    /// RFC 3339 end time.
    pub end_time: String,
    /// Steps that completed, in completion order.
    pub completed_steps: Vec<String>,
    /// Steps that failed for good (and were not tolerated).
    pub failed_steps: Vec<String>,
    /// Steps that did not run.
    pub skipped_steps: Vec<String>,
    /// Output of every completed step (non-object outputs under `value`).
    pub step_outputs: Map<String, Value>,
    /// The output of the graph's sink: the one completed node nothing depends
    /// on, or a map of them when there are several.
    pub final_result: Option<Value>,
    /// Run identity, and the compensation record when one ran.
    pub output_variables: Map<String, Value>,
    /// Every action steps emitted.
    pub actions_emitted: Vec<ActionRecord>,
    /// Every error.
    pub errors: Vec<ErrorRecord>,
    /// Counts, times, and fuel/wall time/peak memory per step.
    pub metrics: BTreeMap<String, f64>,
    /// Scheduling rounds that launched steps in parallel mode.
    pub parallel_executions: u64,
}

impl RunOutput {
    /// The seed's `status_consistency` rule: completed ⇒ no failed steps;
    /// failed ⇒ some failed step or error.
    pub fn status_is_consistent(&self) -> bool {
        match self.execution_status {
            ExecutionStatus::Completed => self.failed_steps.is_empty(),
            ExecutionStatus::Failed => !self.failed_steps.is_empty() || !self.errors.is_empty(),
            _ => true,
        }
    }
}
