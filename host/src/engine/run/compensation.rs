//! Compensation (sagas): completed effect steps are undone with their
//! `compensate` export, in reverse completion order. Each one is journaled
//! before and after, so a resumed run skips those already done.

use super::Run;
use crate::engine::events::RunEvent;
use crate::sandbox::{CallKind, StepCall};
use crate::store::JournalEntry;
use serde_json::Value;
use std::time::Duration;

impl Run {
    /// Undoes the run's completed effect steps, newest first.
    pub(super) async fn compensate(&mut self) -> Result<(), String> {
        let order: Vec<usize> = self.completion_order.iter().rev().copied().collect();
        for i in order {
            let node = self.wf.nodes[i].clone();
            if !node.node_type.is_effect() || !node.compensate || self.compensated[i] {
                continue;
            }
            self.record(JournalEntry::CompensationStarted { step_id: node.id.clone() });
            self.flush().await?;
            self.emit(RunEvent::Compensating { step_id: node.id.clone() });
            let policy = self.policy(i);
            let limits = self.limits(&node);
            let input = self.inputs[i].clone().unwrap_or_default();
            let output = self.outputs[i].clone().unwrap_or(Value::Null);
            let mut attempts = 0;
            let mut last_error = None;
            // After a crash mid-compensation, attempt numbers go on from where
            // the interrupted round's could have reached.
            let base = (self.compensation_starts[i].saturating_sub(1)).saturating_mul(policy.max_attempts.max(1));
            for attempt in 1..=policy.max_attempts.max(1) {
                attempts = attempt;
                let call = StepCall {
                    ctx: self.ctx(&node, base + attempt),
                    input: (*input).clone(),
                    kind: CallKind::Compensate { output: output.clone() },
                };
                let granted = self.grants[i].clone();
                let report = self.executor.execute(&node, self.pins[i].as_deref(), call, limits.clone(), granted).await;
                match report.failure() {
                    None => {
                        last_error = None;
                        break;
                    }
                    Some(f) => {
                        let retry = attempt < policy.max_attempts && f.is_retryable();
                        last_error = Some(f.clone());
                        if !retry {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(policy.base_delay_ms(attempt))).await;
                    }
                }
            }
            let ok = last_error.is_none();
            self.record(JournalEntry::CompensationFinished {
                step_id: node.id.clone(),
                ok,
                attempts,
                error: last_error.map(|f| f.to_string()),
            });
            self.flush().await?;
            self.emit(RunEvent::Compensated { step_id: node.id.clone(), ok });
        }
        Ok(())
    }
}
