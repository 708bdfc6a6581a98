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
}

/// Hears the runs of an engine. Every method has a default that ignores it.
pub trait RunObserver: Send + Sync + 'static {
    /// A run starts (or resumes) in this process.
    fn run_started(&self, _run: ObservedRun<'_>) {}
    /// An attempt of `step_id` ended with `report`.
    fn attempt_finished(&self, _run: ObservedRun<'_>, _step_id: &str, _report: &AttemptReport) {}
    /// A run this process drove ended here (finished, drained, or cut off).
    fn run_finished(&self, _run: ObservedRun<'_>, _output: &RunOutput, _steps: usize) {}
}

/// The observer of an engine nobody watches.
pub(super) struct Unobserved;

impl RunObserver for Unobserved {}

/// The default observer.
pub(super) fn unobserved() -> Arc<dyn RunObserver> {
    Arc::new(Unobserved)
}
