//! What an engine tells whoever watches all of its runs at once (metrics,
//! traces): a [`RunObserver`] hears every run that starts or resumes here,
//! every attempt that ends, every batch of journal entries committed (and
//! how long the commit took), every change of a circuit breaker, and every
//! run that ends. The calls are made inline on the run's task, so an
//! observer only counts and returns.

use crate::contract::{AttemptReport, RunOutput};
use crate::store::{BreakerState, JournalEntry};
use std::sync::Arc;
use std::time::Duration;

/// The run an observation belongs to.
#[derive(Debug, Clone, Copy)]
pub struct ObservedRun<'a> {
    /// The run id.
    pub run_id: &'a str,
    /// The workflow's name.
    pub workflow: &'a str,
    /// The run's tenant ('' on a single-tenant host).
    pub tenant: &'a str,
    /// The run's W3C trace context (`traceparent`), kept with the run so
    /// that every process that drives it continues one trace.
    pub traceparent: Option<&'a str>,
}

/// A step's transition, as journaled: scheduled, or ended (`completed`,
/// `failed` or `skipped`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepMark {
    /// The step.
    pub step_id: String,
    /// None: scheduled; else how it ended.
    pub ended: Option<&'static str>,
}

impl StepMark {
    /// The step transitions among `entries`.
    pub fn of(entries: &[JournalEntry]) -> Vec<StepMark> {
        let mark = |step_id: &str, ended| StepMark { step_id: step_id.to_string(), ended };
        entries
            .iter()
            .filter_map(|e| match e {
                JournalEntry::StepScheduled { step_id, .. } => Some(mark(step_id, None)),
                JournalEntry::StepCompleted { step_id, .. } => Some(mark(step_id, Some("completed"))),
                JournalEntry::StepFailed { step_id, .. } => Some(mark(step_id, Some("failed"))),
                JournalEntry::StepSkipped { step_id, .. } => Some(mark(step_id, Some("skipped"))),
                _ => None,
            })
            .collect()
    }
}

/// Hears the runs of an engine. Every method has a default that ignores it.
pub trait RunObserver: Send + Sync + 'static {
    /// A run starts (or resumes) in this process.
    fn run_started(&self, _run: ObservedRun<'_>) {}
    /// Attempt `attempt` of `step_id` ended with `report`.
    fn attempt_finished(&self, _run: ObservedRun<'_>, _step_id: &str, _attempt: u32, _report: &AttemptReport) {}
    /// A batch of the run's journal entries was committed, in `commit`;
    /// `steps` are the step transitions among them.
    fn journaled(&self, _run: ObservedRun<'_>, _steps: &[StepMark], _commit: Duration) {}
    /// The circuit breaker of `component` (its digest where it is pinned)
    /// is now in `state`.
    fn breaker_changed(&self, _component: &str, _state: BreakerState) {}
    /// A run this process drove ended here (finished, drained, or cut off).
    fn run_finished(&self, _run: ObservedRun<'_>, _output: &RunOutput, _steps: usize) {}
}

/// Several observers, each told everything in turn.
pub struct Observers(pub Vec<Arc<dyn RunObserver>>);

impl RunObserver for Observers {
    fn run_started(&self, run: ObservedRun<'_>) {
        self.0.iter().for_each(|o| o.run_started(run));
    }

    fn attempt_finished(&self, run: ObservedRun<'_>, step_id: &str, attempt: u32, report: &AttemptReport) {
        self.0.iter().for_each(|o| o.attempt_finished(run, step_id, attempt, report));
    }

    fn journaled(&self, run: ObservedRun<'_>, steps: &[StepMark], commit: Duration) {
        self.0.iter().for_each(|o| o.journaled(run, steps, commit));
    }

    fn breaker_changed(&self, component: &str, state: BreakerState) {
        self.0.iter().for_each(|o| o.breaker_changed(component, state));
    }

    fn run_finished(&self, run: ObservedRun<'_>, output: &RunOutput, steps: usize) {
        self.0.iter().for_each(|o| o.run_finished(run, output, steps));
    }
}

/// A fresh W3C `traceparent` (version 00, random trace and span ids,
/// sampled): the trace context of a run that came without one.
pub fn new_traceparent() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    let trace: u128 = rng.random::<u128>().max(1);
    let span: u64 = rng.random::<u64>().max(1);
    format!("00-{trace:032x}-{span:016x}-01")
}

/// The observer of an engine nobody watches.
pub(super) struct Unobserved;

impl RunObserver for Unobserved {}

/// The default observer.
pub(super) fn unobserved() -> Arc<dyn RunObserver> {
    Arc::new(Unobserved)
}
