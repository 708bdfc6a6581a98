//! Wake-ups for the requests that wait on a run (`?wait=` and event
//! streams): [`RunWakers`] is an observer of the service's engine that
//! wakes whoever watches a run when this process journals for it or ends
//! it. Runs driven by other processes are still found by polling, at a
//! slower pace; a wake-up only makes the answer sooner.

use crate::contract::RunOutput;
use crate::engine::{ObservedRun, RunObserver, StepMark};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// How many watched runs the map holds before it drops the unwatched ones.
const SWEEP_AT: usize = 1024;

/// The runs someone waits on, each with its wake-up.
#[derive(Default)]
pub(super) struct RunWakers {
    watched: Mutex<HashMap<String, Weak<Notify>>>,
}

impl RunWakers {
    /// The wake-up of `run_id`, shared by everyone who watches it (it is
    /// forgotten once nobody holds it).
    pub(super) fn watch(&self, run_id: &str) -> Arc<Notify> {
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = watched.get(run_id).and_then(Weak::upgrade) {
            return live;
        }
        if watched.len() >= SWEEP_AT {
            watched.retain(|_, w| w.strong_count() > 0);
        }
        let fresh = Arc::new(Notify::new());
        watched.insert(run_id.to_string(), Arc::downgrade(&fresh));
        fresh
    }

    fn wake(&self, run_id: &str) {
        let watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = watched.get(run_id).and_then(Weak::upgrade) {
            n.notify_waiters();
        }
    }
}

impl RunObserver for RunWakers {
    fn journaled(&self, run: ObservedRun<'_>, _steps: &[StepMark], _commit: Duration) {
        self.wake(run.run_id);
    }

    fn run_finished(&self, run: ObservedRun<'_>, _output: &RunOutput, _steps: usize) {
        self.wake(run.run_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watcher_is_woken_by_its_runs_journal_and_the_map_forgets_unwatched_runs() {
        let wakers = RunWakers::default();
        let n = wakers.watch("r1");
        assert!(Arc::ptr_eq(&n, &wakers.watch("r1")), "watchers of one run share a wake-up");
        {
            let notified = n.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let run = ObservedRun { run_id: "r1", workflow: "w", tenant: "", traceparent: None };
            wakers.journaled(run, &[], Duration::ZERO);
            let woke = tokio::time::timeout(Duration::from_secs(5), notified).await;
            assert!(woke.is_ok(), "the journal write woke the watcher");
        }
        drop(n);
        for k in 0..SWEEP_AT + 1 {
            drop(wakers.watch(&format!("x{k}")));
        }
        assert!(wakers.watched.lock().unwrap_or_else(PoisonError::into_inner).len() <= SWEEP_AT);
    }
}
