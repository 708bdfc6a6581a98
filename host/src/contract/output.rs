//! The run's output: the ONEX orchestrator contract's output subcontract,
//! field for field.

use super::{ActionRecord, ErrorRecord, ExecutionStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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
    /// The contract's `status_consistency` rule: completed ⇒ no failed steps;
    /// failed ⇒ some failed step or error.
    pub fn status_is_consistent(&self) -> bool {
        match self.execution_status {
            ExecutionStatus::Completed => self.failed_steps.is_empty(),
            ExecutionStatus::Failed => !self.failed_steps.is_empty() || !self.errors.is_empty(),
            _ => true,
        }
    }
}
