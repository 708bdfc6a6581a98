//! Recording a step's end: its last attempt, then `step_completed` (with its
//! actions) or `step_failed`, and whether the failure strategy stops the run.

use super::Run;
use super::actions::action_records;
use super::schedule::StepResult;
use crate::contract::EmittedAction;
use crate::engine::events::RunEvent;
use crate::store::JournalEntry;
use crate::workflow::FailureStrategy;
use serde_json::Value;

impl Run {
    /// Records a step's final result. Returns true when the run must stop.
    pub(super) fn finish_step(&mut self, mut result: StepResult) -> bool {
        let i = result.index;
        if !result.consumers.is_empty() {
            // A stream group: the producer first, so its consumers know how it ended.
            let consumers = std::mem::take(&mut result.consumers);
            let mut stop = self.finish_step(result);
            for c in consumers {
                stop |= self.finish_consumer(c, i);
            }
            return stop;
        }
        if self.wf.nodes[i].for_each.is_some() {
            return self.finish_fan_out(result);
        }
        if let Some(end) = result.gate.take() {
            return self.finish_gate(i, end);
        }
        if let Some(end) = result.child.take() {
            return self.finish_child(i, end);
        }
        if let Some(key) = result.memo_hit.clone() {
            self.record(JournalEntry::StepMemoized { step_id: self.wf.nodes[i].id.clone(), key });
            self.emit(RunEvent::Memoized { step_id: self.wf.nodes[i].id.clone() });
            return match result.attempts.into_iter().next().map(|r| r.outcome) {
                Some(Ok(success)) => self.complete_step(i, success.output, &success.actions),
                _ => self.fail_step(i, "internal", "a memo hit without its output".into()),
            };
        }
        let step_id = self.wf.nodes[i].id.clone();
        let mut attempts = result.attempts;
        let last = attempts.pop();
        let last_number = result.first_attempt.saturating_add(attempts.len() as u32);
        // Earlier attempts were journaled by the step task before its retry.
        for (k, report) in attempts.into_iter().enumerate() {
            let attempt = result.first_attempt.saturating_add(k as u32);
            self.apply(&JournalEntry::AttemptFinished { step_id: step_id.clone(), attempt, report });
        }
        let outcome = last.map(|mut report| {
            // The completing attempt's output and actions are journaled once,
            // in `step_completed` (same transaction), not twice.
            let outcome = match &mut report.outcome {
                Ok(success) => Ok((std::mem::take(&mut success.output), std::mem::take(&mut success.actions))),
                Err(f) => Err(f.clone()),
            };
            self.record(JournalEntry::AttemptFinished { step_id: step_id.clone(), attempt: last_number, report });
            outcome
        });
        match outcome {
            Some(Ok((output, emitted))) => self.complete_step(i, output, &emitted),
            Some(Err(f)) => self.fail_step(i, f.kind().as_str(), f.to_string()),
            None => self.fail_step(i, "internal", "the step made no attempt".into()),
        }
    }

    /// Records that step `i` completed with `output`, delivering the actions
    /// it `emitted`. Returns false: a completion never stops the run.
    pub(super) fn complete_step(&mut self, i: usize, output: Value, emitted: &[EmittedAction]) -> bool {
        let step_id = self.wf.nodes[i].id.clone();
        let max = self.config.settings.max_actions_per_workflow;
        let total = self.actions.len() as u64 + emitted.len() as u64;
        if !emitted.is_empty() && total > max {
            let message = format!(
                "the step emitted {} action(s), which would make {total} in this run; max_actions_per_workflow is \
                 {max} (raise it in the config, or emit fewer actions)",
                emitted.len()
            );
            return self.fail_step(i, "action_limit", message);
        }
        let actions = action_records(emitted);
        let before = self.undelivered.len();
        self.record(JournalEntry::StepCompleted { step_id: step_id.clone(), output, actions });
        self.emit(RunEvent::StepCompleted { step_id, attempts: self.totals[i].attempts });
        for k in before..self.undelivered.len() {
            self.emit(RunEvent::ActionNotDelivered { action: self.undelivered[k].clone() });
        }
        false
    }

    /// Completes (or fails) the inline node `i` (a conditional or a join)
    /// decided with `input`. Returns true when the run must stop.
    pub(super) fn finish_inline(&mut self, i: usize, input: &serde_json::Map<String, Value>) -> bool {
        let bound = self.wf.nodes[i].uses.as_ref().map(|uses| self.bind(i, uses));
        let output = self.inline_output(i, input, bound.as_ref());
        drop(bound);
        match output {
            Ok(v) => self.complete_step(i, v, &[]),
            Err(message) => self.fail_step(i, "expression", message),
        }
    }

    /// Marks a step failed (or tolerated). Returns true when the run must stop.
    pub(super) fn fail_step(&mut self, i: usize, error_type: &str, message: String) -> bool {
        self.fail_step_with(i, error_type, message, None)
    }

    /// [`Self::fail_step`], keeping what the step produced anyway.
    pub(super) fn fail_step_with(
        &mut self,
        i: usize,
        error_type: &str,
        message: String,
        output: Option<Value>,
    ) -> bool {
        let node = &self.wf.nodes[i];
        let tolerated = node.continue_on_error;
        let step_id = node.id.clone();
        self.record(JournalEntry::StepFailed {
            step_id: step_id.clone(),
            error_type: error_type.into(),
            message: message.clone(),
            tolerated,
            output,
        });
        self.emit(RunEvent::StepFailed { step_id, error_type: error_type.into(), message, tolerated });
        !tolerated && !matches!(self.config.failure_strategy, FailureStrategy::ContinueOnError)
    }
}
