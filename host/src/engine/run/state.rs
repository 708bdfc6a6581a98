//! A run's state and `apply`, the journal fold: every transition, live or
//! replayed from the journal, changes the state here and nowhere else.

use super::Run;
use crate::contract::{ErrorRecord, now_ms, parse_rfc3339_ms};
use crate::store::JournalEntry;
use serde_json::json;

/// Where one step is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum State {
    /// Not decided yet.
    Pending,
    /// Scheduled: an attempt is running or about to.
    Running,
    /// Completed, with an output.
    Completed,
    /// Failed, and the failure stops its dependents.
    Failed,
    /// Failed, tolerated by `continue_on_error`: dependents run.
    Tolerated,
    /// Did not run.
    Skipped,
}

impl State {
    /// Whether the step is decided for good.
    pub(super) fn is_final(self) -> bool {
        !matches!(self, State::Pending | State::Running)
    }
}

/// What one step's attempts cost, summed.
#[derive(Default, Clone, Copy)]
pub(super) struct Totals {
    pub(super) fuel: u64,
    pub(super) wall_us: u64,
    pub(super) peak: u64,
    pub(super) attempts: u32,
}

impl Totals {
    /// Adds one attempt's cost. Journals come from the store: no number in
    /// them may overflow.
    pub(super) fn add(&mut self, report: &crate::contract::AttemptReport) {
        self.fuel = self.fuel.saturating_add(report.stats.fuel_consumed);
        self.wall_us = self.wall_us.saturating_add(report.stats.wall_time_us);
        self.peak = self.peak.max(report.stats.peak_memory_bytes);
        self.attempts = self.attempts.saturating_add(1);
    }
}

impl Run {
    /// Applies a transition to the run's state (live, or replayed from the
    /// journal on resume): the only place a run's state changes.
    pub(in crate::engine) fn apply(&mut self, e: &JournalEntry) {
        let i = e.step_id().and_then(|s| self.index(s));
        match (e, i) {
            (JournalEntry::RunCreated { start_time }, _) => {
                self.start_time = start_time.clone();
                self.started_ms = parse_rfc3339_ms(start_time).unwrap_or_else(now_ms);
            }
            (JournalEntry::StepScheduled { input, .. }, Some(i)) => {
                self.state[i] = State::Running;
                self.inputs[i] = Some(input.clone());
            }
            (JournalEntry::AttemptStarted { attempt, .. }, Some(i)) => {
                self.attempts_used[i] = self.attempts_used[i].max(*attempt);
            }
            (JournalEntry::AttemptFinished { attempt, report, .. }, Some(i)) => {
                self.attempts_used[i] = self.attempts_used[i].max(*attempt);
                self.totals[i].add(report);
            }
            (JournalEntry::StepCompleted { step_id, output, actions }, Some(i)) => {
                self.state[i] = State::Completed;
                self.completion_order.push(i);
                self.outputs[i] = Some(output.clone());
                self.deliver(i, step_id, actions);
            }
            (JournalEntry::StepFailed { step_id, error_type, message, tolerated, output }, Some(i)) => {
                if output.is_some() {
                    self.outputs[i] = output.clone();
                }
                self.errors.push(ErrorRecord {
                    step_id: step_id.clone(),
                    error_type: error_type.clone(),
                    message: message.clone(),
                });
                if *tolerated {
                    self.state[i] = State::Tolerated;
                } else {
                    self.state[i] = State::Failed;
                    self.failed.push(i);
                }
            }
            (JournalEntry::StepSkipped { .. }, Some(i)) => {
                self.state[i] = State::Skipped;
                self.skipped.push(i);
            }
            (JournalEntry::RunStopping { status, errors, parallel_executions }, _) => {
                self.errors.extend(errors.iter().cloned());
                self.stopping = Some(*status);
                self.parallel_executions = self.parallel_executions.max(*parallel_executions);
            }
            (
                JournalEntry::ShardStarted { .. }
                | JournalEntry::ShardFinished { .. }
                | JournalEntry::StreamBatch { .. },
                Some(i),
            ) => self.apply_shard(i, e),
            (JournalEntry::StepMemoized { .. }, Some(i)) => self.memoized[i] = true,
            (JournalEntry::GateOpened { until_ms, .. }, Some(i)) => self.gate_until[i] = Some(*until_ms),
            (JournalEntry::ChildLinked { child_run_id, replay_of, .. }, Some(i)) => {
                self.child_ids[i] = uuid::Uuid::parse_str(child_run_id).ok();
                self.child_replays[i] = replay_of.clone();
            }
            (JournalEntry::CompensationStarted { shard: Some(k), .. }, Some(i)) => {
                let fan = self.fans[i].get_or_insert_with(Default::default);
                *fan.compensation_starts.entry(*k).or_default() += 1;
            }
            (JournalEntry::CompensationStarted { .. }, Some(i)) => {
                self.compensation_starts[i] = self.compensation_starts[i].saturating_add(1);
            }
            (JournalEntry::CompensationFinished { step_id, shard, ok, attempts, error }, Some(i)) => {
                match shard {
                    Some(k) => {
                        self.fans[i].get_or_insert_with(Default::default).compensated.insert(*k);
                    }
                    None => self.compensated[i] = true,
                }
                if let Some(message) = error.as_ref().filter(|_| !ok) {
                    self.errors.push(ErrorRecord {
                        step_id: step_id.clone(),
                        error_type: "compensation_failed".into(),
                        message: message.clone(),
                    });
                }
                let mut record = json!({
                    "step_id": step_id,
                    "status": if *ok { "compensated" } else { "failed" },
                    "attempts": attempts,
                    "error": error,
                });
                if let Some(k) = shard {
                    record["shard"] = json!(k);
                }
                self.compensation.push(record);
            }
            _ => {}
        }
    }
}
