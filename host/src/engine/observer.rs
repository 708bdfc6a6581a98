//! What an engine tells whoever watches all of its runs at once (metrics,
//! traces): a [`RunObserver`] hears every run that starts or resumes here,
//! every attempt that ends, and every run that ends. The calls are made
//! inline on the run's task, so an observer only counts and returns.

use crate::contract::{AttemptReport, RunOutput};
use std::sync::Arc;

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

/// Hears the runs of an engine. Every method has a default that ignores it.
pub trait RunObserver: Send + Sync + 'static {
    /// A run starts (or resumes) in this process.
    fn run_started(&self, _run: ObservedRun<'_>) {}
    /// Attempt `attempt` of `step_id` ended with `report`.
    fn attempt_finished(&self, _run: ObservedRun<'_>, _step_id: &str, _attempt: u32, _report: &AttemptReport) {}
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
