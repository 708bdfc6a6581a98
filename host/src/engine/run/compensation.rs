//! Compensation (sagas): completed effect steps are undone with their
//! `compensate` export, in reverse completion order. A `for_each` effect is
//! undone shard by shard, newest shard first, and a fan-out that failed
//! has its completed shards undone before anything older. Each one is
//! journaled before and after, so a resumed run skips those already done.

use super::Run;
use super::fan_out::shard_input;
use super::state::State;
use crate::engine::events::RunEvent;
use crate::sandbox::{CallKind, StepCall};
use crate::store::JournalEntry;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

impl Run {
    /// What compensation undoes, newest first: (node, shard of a fan-out).
    fn to_compensate(&self) -> Vec<(usize, Option<u32>)> {
        let undoable = |i: usize| self.wf.nodes[i].node_type.is_effect() && self.wf.nodes[i].compensate;
        // Fan-outs that failed (or whose failure was tolerated) may have
        // completed shards: they are undone first, as the newest work.
        let failed_fan_outs = self.failed.iter().rev().copied().filter(|&i| self.wf.nodes[i].for_each.is_some());
        let tolerated = (0..self.wf.nodes.len())
            .rev()
            .filter(|&i| self.state[i] == State::Tolerated && self.wf.nodes[i].for_each.is_some());
        let order = failed_fan_outs.chain(tolerated).chain(self.completion_order.iter().rev().copied());
        let mut units = Vec::new();
        for i in order.filter(|&i| undoable(i)) {
            match (&self.wf.nodes[i].for_each, &self.fans[i]) {
                (Some(_), Some(fan)) => {
                    units.extend(fan.done.keys().rev().filter(|k| !fan.compensated.contains(k)).map(|&k| (i, Some(k))))
                }
                (Some(_), None) => {}
                (None, _) if !self.compensated[i] => units.push((i, None)),
                (None, _) => {}
            }
        }
        units
    }

    /// Undoes the run's completed effect steps, newest first.
    pub(super) async fn compensate(&mut self) -> Result<(), String> {
        for (i, shard) in self.to_compensate() {
            let node = self.wf.nodes[i].clone();
            let step_id = node.id.clone();
            self.record(JournalEntry::CompensationStarted { step_id: step_id.clone(), shard });
            self.flush().await?;
            self.emit(RunEvent::Compensating { step_id: step_id.clone() });
            if self.is_child(i) {
                let (ok, error) = self.compensate_child(i).await;
                self.record(JournalEntry::CompensationFinished {
                    step_id: step_id.clone(),
                    shard,
                    ok,
                    attempts: 1,
                    error,
                });
                self.flush().await?;
                self.emit(RunEvent::Compensated { step_id, ok });
                continue;
            }
            let policy = self.policy(i);
            let limits = self.limits(&node);
            let node_input = self.inputs[i].clone().unwrap_or_default();
            let (input, output, starts, mut ctx) = match shard {
                Some(k) => {
                    let batch_size = node.for_each.as_ref().map_or(1, |f| f.batch_size);
                    let fan = self.fans[i].as_ref();
                    let output = fan.and_then(|f| f.done.get(&k)).map_or(Value::Null, |(out, _)| out.clone());
                    let starts = fan.and_then(|f| f.compensation_starts.get(&k)).copied().unwrap_or(1);
                    let mut ctx = self.ctx(&node, 1);
                    ctx.idempotency_key = format!("{}/shard-{k}", ctx.idempotency_key);
                    (Arc::new(shard_input(&node_input, batch_size, k as usize)), output, starts, ctx)
                }
                None => {
                    let output = self.outputs[i].clone().unwrap_or(Value::Null);
                    (node_input, output, self.compensation_starts[i], self.ctx(&node, 1))
                }
            };
            let input: Arc<Map<String, Value>> = input;
            let mut attempts = 0;
            let mut last_error = None;
            // After a crash mid-compensation, attempt numbers go on from where
            // the interrupted round's could have reached.
            let base = starts.saturating_sub(1).saturating_mul(policy.max_attempts.max(1));
            for attempt in 1..=policy.max_attempts.max(1) {
                attempts = attempt;
                ctx.attempt = base + attempt;
                let call = StepCall {
                    ctx: ctx.clone(),
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
                step_id: step_id.clone(),
                shard,
                ok,
                attempts,
                error: last_error.map(|f| f.to_string()),
            });
            self.flush().await?;
            self.emit(RunEvent::Compensated { step_id, ok });
        }
        Ok(())
    }
}
