//! The per-step view of a run (`weft runs show`, and the API's run
//! document): the run's row, and per step its state, input, output, actions
//! and every attempt, folded from the journal.

use super::{JournalEntry, Journaled, PinnedComponent, RunRecord, owner_is_dead};
use crate::contract::{AttemptStats, ExecutionStatus, RunOutput};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A run as a person reads it.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// The run id.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The workflow file, when it came from one.
    pub workflow_path: Option<String>,
    /// Its status.
    pub status: ExecutionStatus,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Who holds its lease, if anyone.
    pub owner: Option<String>,
    /// Whether its owner is gone (its lease expired, or its process died).
    pub orphaned: bool,
    /// Whether a cancel was requested.
    pub cancel_requested: bool,
    /// The run this one replays, if any.
    pub replay_of: Option<String>,
    /// The run and node this one is a sub-workflow of, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<super::ParentRun>,
    /// Whether it waits only on approval gates (`paused`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Per node, the component version the run pinned.
    pub components: BTreeMap<String, PinnedComponent>,
    /// How many journal entries it has.
    pub journal_entries: usize,
    /// The output contract, once finished.
    pub output: Option<Arc<RunOutput>>,
    /// Its steps, in the order they were first journaled.
    pub steps: Vec<StepView>,
}

/// One step of a [`RunView`].
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// The step.
    pub step_id: String,
    /// `scheduled`, `running`, `waiting` (an approval gate), `completed`,
    /// `failed`, `failed (tolerated)` or `skipped`.
    pub state: String,
    /// Its input, once scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// The highest attempt number started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_started: Option<u32>,
    /// Every finished attempt: its number, its kind (`succeeded` or the
    /// failure kind), outcome, stats and logs. The completing attempt's
    /// output is the step's, shown once, on the step.
    pub attempts: Vec<Value>,
    /// Its output, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The actions it emitted, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<Value>,
    /// The failure kind, once failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `compensated` or `failed`, once compensation ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compensation: Option<String>,
    /// A `for_each` node's shards: how many completed and failed, and their attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardsView>,
    /// A sub-workflow node's child run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_run_id: Option<String>,
    /// An approval gate: when it stops waiting (Unix ms), while it waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_until_ms: Option<u64>,
    /// An approval gate: the signal it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal_id: Option<String>,
    /// True when the step completed from the memo cache without running.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub memoized: bool,
    /// What its attempts cost, summed (fuel and time) or at most (memory).
    #[serde(skip)]
    pub totals: AttemptStats,
}

/// What the journal says of a `for_each` node's shards.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShardsView {
    /// Shards that completed.
    pub completed: u32,
    /// Shards that failed for good.
    pub failed: u32,
    /// Shard attempts finished, retries included.
    pub attempts: u32,
}

impl RunView {
    /// The view of `record` with its `journal`.
    pub fn build(record: RunRecord, journal: &[Journaled]) -> Result<Self, serde_json::Error> {
        let mut steps: Vec<StepView> = Vec::new();
        let mut slots: HashMap<&str, usize> = HashMap::new();
        for j in journal {
            let Some(step) = j.entry.step_id() else { continue };
            let k = *slots.entry(step).or_insert_with(|| {
                steps.push(StepView::new(step));
                steps.len() - 1
            });
            steps[k].apply(&j.entry)?;
        }
        let owner = (record.lease_until_ms > 0).then(|| record.run.owner.clone());
        let orphaned = owner.as_deref().is_some_and(|o| !record.lease_live || owner_is_dead(o));
        Ok(Self {
            run_id: record.run.run_id,
            workflow: record.run.workflow,
            workflow_path: record.run.workflow_path,
            status: record.status,
            created_at: record.created_at,
            updated_at: record.updated_at,
            owner,
            orphaned,
            cancel_requested: record.cancel_requested,
            replay_of: record.run.replay_of,
            parent: record.run.parent,
            paused: record.paused,
            components: record.run.components,
            journal_entries: journal.len(),
            output: record.output,
            steps,
        })
    }
}

impl StepView {
    fn new(step_id: &str) -> Self {
        Self {
            step_id: step_id.to_string(),
            state: "scheduled".into(),
            input: None,
            attempts_started: None,
            attempts: Vec::new(),
            output: None,
            actions: None,
            error_type: None,
            reason: None,
            compensation: None,
            shards: None,
            child_run_id: None,
            waiting_until_ms: None,
            signal_id: None,
            memoized: false,
            totals: AttemptStats::default(),
        }
    }

    /// Adds one attempt's cost to the step's totals.
    fn add_cost(&mut self, report: &crate::contract::AttemptReport) {
        let t = &mut self.totals;
        t.fuel_consumed = t.fuel_consumed.saturating_add(report.stats.fuel_consumed);
        t.wall_time_us = t.wall_time_us.saturating_add(report.stats.wall_time_us);
        t.peak_memory_bytes = t.peak_memory_bytes.max(report.stats.peak_memory_bytes);
    }

    fn apply(&mut self, entry: &JournalEntry) -> Result<(), serde_json::Error> {
        match entry {
            JournalEntry::StepScheduled { input, .. } => self.input = Some(Value::Object((**input).clone())),
            JournalEntry::AttemptStarted { attempt, .. } => {
                self.state = "running".into();
                self.attempts_started = Some(*attempt);
            }
            JournalEntry::AttemptFinished { attempt, report, .. } => {
                let mut a = serde_json::to_value(report)?;
                if let Some(fields) = a.as_object_mut()
                    && fields.get("output").is_some_and(Value::is_null)
                {
                    fields.remove("output");
                    fields.remove("actions");
                }
                a["attempt"] = json!(attempt);
                a["kind"] = json!(report.failure().map_or("succeeded", |f| f.kind().as_str()));
                self.attempts.push(a);
                self.add_cost(report);
            }
            JournalEntry::StepCompleted { output, actions, .. } => {
                self.state = "completed".into();
                self.output = Some(output.clone());
                self.actions = Some(serde_json::to_value(actions)?);
            }
            JournalEntry::StepFailed { tolerated, error_type, .. } => {
                self.waiting_until_ms = None;
                self.state = if *tolerated { "failed (tolerated)" } else { "failed" }.into();
                self.error_type = Some(error_type.clone());
            }
            JournalEntry::StepSkipped { reason, .. } => {
                self.state = "skipped".into();
                self.reason = Some(reason.clone());
            }
            JournalEntry::StepMemoized { .. } => self.memoized = true,
            JournalEntry::ChildLinked { child_run_id, .. } => {
                self.state = "running".into();
                self.child_run_id = Some(child_run_id.clone());
            }
            JournalEntry::GateOpened { until_ms, .. } => {
                self.state = "waiting".into();
                self.waiting_until_ms = Some(*until_ms);
            }
            JournalEntry::SignalReceived { signal_id, .. } => {
                self.waiting_until_ms = None;
                self.signal_id = Some(signal_id.clone());
            }
            JournalEntry::ShardStarted { .. } => self.state = "running".into(),
            JournalEntry::ShardFinished { report, last, .. } => {
                let shards = self.shards.get_or_insert_with(ShardsView::default);
                shards.attempts += 1;
                match report.failure() {
                    None => shards.completed += 1,
                    Some(_) if *last => shards.failed += 1,
                    Some(_) => {}
                }
                self.add_cost(report);
            }
            JournalEntry::CompensationFinished { ok, .. } => {
                self.compensation = Some(if *ok { "compensated" } else { "failed" }.into());
            }
            _ => {}
        }
        Ok(())
    }
}
