//! The run's output contract, built once as the run ends, and the output of
//! a run whose journal could not be written.

use super::Run;
use crate::contract::{ErrorRecord, ExecutionStatus, RunOutput, now_ms, now_rfc3339};
use crate::engine::events::RunEvent;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

impl Run {
    /// The run's output contract. Called once, as the run ends: completed
    /// steps' outputs move into it rather than being copied.
    pub(super) fn output(&mut self, status: ExecutionStatus) -> RunOutput {
        let ids = |v: &[usize]| -> Vec<String> { v.iter().map(|&i| self.wf.nodes[i].id.clone()).collect() };
        let sinks: Vec<usize> =
            self.completion_order.iter().copied().filter(|&i| self.wf.graph.dependents[i].is_empty()).collect();
        let final_result = match sinks.as_slice() {
            [] => None,
            [one] => self.outputs[*one].clone(),
            many => Some(Value::Object(
                many.iter()
                    .map(|&i| (self.wf.nodes[i].id.clone(), self.outputs[i].clone().unwrap_or(Value::Null)))
                    .collect(),
            )),
        };
        let mut step_outputs = Map::new();
        for &i in &self.completion_order {
            let out = match self.outputs[i].take() {
                Some(Value::Object(m)) => Value::Object(m),
                Some(other) => json!({ "value": other }),
                None => json!({}),
            };
            step_outputs.insert(self.wf.nodes[i].id.clone(), out);
        }
        // A failed step that produced something anyway (a fan-out's partial results).
        for i in 0..self.outputs.len() {
            let out = match self.outputs[i].take() {
                Some(Value::Object(m)) => Value::Object(m),
                Some(other) => json!({ "value": other }),
                None => continue,
            };
            step_outputs.insert(self.wf.nodes[i].id.clone(), out);
        }
        let mut output_variables = Map::new();
        output_variables.insert("run".into(), self.run_json());
        // Failures that `continue_on_error` tolerated: in none of the three lists.
        let tolerated: Vec<String> = (0..self.wf.nodes.len())
            .filter(|&i| self.state[i] == super::state::State::Tolerated)
            .map(|i| self.wf.nodes[i].id.clone())
            .collect();
        let tolerated_count = tolerated.len();
        if !tolerated.is_empty() {
            output_variables.insert("tolerated_failures".into(), json!(tolerated));
        }
        output_variables.insert("failure_strategy".into(), json!(self.config.failure_strategy));
        output_variables.insert("execution_mode".into(), json!(self.config.execution_mode));
        if !self.compensation.is_empty() {
            output_variables.insert("compensation".into(), Value::Array(self.compensation.clone()));
        }
        if !self.undelivered.is_empty() {
            output_variables.insert("undelivered_actions".into(), json!(self.undelivered));
        }
        let completed = self.completion_order.len();
        let mut metrics = BTreeMap::new();
        let total_wall_us: u64 = self.totals.iter().fold(0u64, |sum, t| sum.saturating_add(t.wall_us));
        let ran = self.totals.iter().filter(|t| t.attempts > 0).count();
        metrics.insert("completed_count".into(), completed as f64);
        metrics.insert("failed_count".into(), self.failed.len() as f64);
        metrics.insert("skipped_count".into(), self.skipped.len() as f64);
        metrics.insert("tolerated_count".into(), tolerated_count as f64);
        metrics.insert("actions_count".into(), self.actions.len() as f64);
        metrics.insert("attempts_count".into(), self.totals.iter().map(|t| t.attempts as f64).sum());
        metrics
            .insert("avg_step_time_ms".into(), if ran == 0 { 0.0 } else { total_wall_us as f64 / 1000.0 / ran as f64 });
        metrics.insert("total_fuel_consumed".into(), self.totals.iter().map(|t| t.fuel as f64).sum());
        // Built as a list and collected once: inserting 4 keys per step one by
        // one into a large map costs more than the step itself.
        let mut per_step = Vec::with_capacity(self.totals.len() * 4);
        for (i, t) in self.totals.iter().enumerate() {
            if t.attempts == 0 {
                continue;
            }
            let id = &self.wf.nodes[i].id;
            let key = |name: &str| ["step.", id, ".", name].concat();
            per_step.push((key("attempts"), t.attempts as f64));
            per_step.push((key("fuel_consumed"), t.fuel as f64));
            per_step.push((key("wall_time_ms"), t.wall_us as f64 / 1000.0));
            per_step.push((key("peak_memory_bytes"), t.peak as f64));
        }
        per_step.extend(self.shard_metrics());
        per_step.extend(self.stream_metrics());
        for (i, _) in self.memoized.iter().enumerate().filter(|(_, hit)| **hit) {
            per_step.push((["step.", &self.wf.nodes[i].id, ".memoized"].concat(), 1.0));
        }
        let mut all: BTreeMap<String, f64> = per_step.into_iter().collect();
        all.append(&mut metrics);
        let metrics = all;
        RunOutput {
            execution_status: status,
            execution_time_ms: now_ms().saturating_sub(self.started_ms),
            start_time: self.start_time.clone(),
            end_time: now_rfc3339(),
            completed_steps: ids(&self.completion_order),
            failed_steps: ids(&self.failed),
            skipped_steps: ids(&self.skipped),
            step_outputs,
            final_result,
            output_variables,
            actions_emitted: if self.config.settings.track_actions { self.actions.clone() } else { Vec::new() },
            errors: self.errors.clone(),
            metrics,
            parallel_executions: self.parallel_executions,
        }
    }

    /// The output when the journal cannot be written: the run stays
    /// `running` in the store, resumable from its last durable transition.
    pub(super) fn store_failure(&mut self, message: String) -> RunOutput {
        self.pending.clear();
        let out = self.output(ExecutionStatus::Failed);
        self.store_failure_with(out, message)
    }

    /// [`Self::store_failure`] for an output already built (its step outputs
    /// have moved into it).
    pub(super) fn store_failure_with(&mut self, mut out: RunOutput, message: String) -> RunOutput {
        out.execution_status = ExecutionStatus::Failed;
        if message == crate::store::StoreError::LeaseLost(self.ids.run_id.clone()).to_string() {
            // Another process holds the run now: it is not this one's to end.
            out.errors.push(ErrorRecord {
                step_id: "workflow".into(),
                error_type: crate::engine::LEASE_LOST.into(),
                message,
            });
            self.emit(RunEvent::RunFinished { status: ExecutionStatus::Failed });
            return out;
        }
        out.errors.push(ErrorRecord {
            step_id: "workflow".into(),
            error_type: "store".into(),
            message: format!(
                "the run's journal could not be written ({message}); the run stopped here and can be resumed from \
                 its last durable step with `weft runs resume {}`",
                self.ids.run_id
            ),
        });
        self.emit(RunEvent::RunFinished { status: ExecutionStatus::Failed });
        out
    }
}
