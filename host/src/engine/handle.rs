//! [`RunHandle`]: what a caller holds while a run goes on.

use super::events::RunEvents;
use crate::contract::{ErrorRecord, ExecutionStatus, RunOutput, now_rfc3339};
use serde_json::Map;
use std::collections::BTreeMap;
use tokio_util::sync::CancellationToken;

/// A running workflow: watch its events, cancel it, await its output.
pub struct RunHandle {
    /// The run's id (`workflow_id`).
    pub run_id: String,
    /// Events, in order; the channel closes when the run ends.
    pub events: RunEvents,
    pub(super) cancel: CancellationToken,
    pub(super) task: tokio::task::JoinHandle<RunOutput>,
}

impl RunHandle {
    /// Asks the run to stop: scheduling stops, in-flight steps are
    /// interrupted, compensation runs if the strategy says so.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A token that cancels the run when cancelled (for signal handlers).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits for the run's output.
    pub async fn wait(self) -> RunOutput {
        match self.task.await {
            Ok(out) => out,
            Err(e) => failure_output("internal", &format!("the run task ended abnormally: {e}")),
        }
    }
}

/// The output of a run that failed with no state to show: one error of
/// `error_type`.
pub(super) fn failure_output(error_type: &str, message: &str) -> RunOutput {
    let now = now_rfc3339();
    RunOutput {
        execution_status: ExecutionStatus::Failed,
        execution_time_ms: 0,
        start_time: now.clone(),
        end_time: now,
        completed_steps: vec![],
        failed_steps: vec![],
        skipped_steps: vec![],
        step_outputs: Map::new(),
        final_result: None,
        output_variables: Map::new(),
        actions_emitted: vec![],
        errors: vec![ErrorRecord {
            step_id: "workflow".into(),
            error_type: error_type.into(),
            message: message.into(),
        }],
        metrics: BTreeMap::new(),
        parallel_executions: 0,
    }
}
