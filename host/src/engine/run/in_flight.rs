//! The steps in flight, and how the scheduler waits for them.

use super::schedule::StepResult;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use tokio::task::JoinSet;

/// Steps in flight: spawned tasks when several run at once (so that they use
/// every core), or one future polled in place when steps run one at a time
/// (no hand-off between threads per step).
pub(super) enum InFlight {
    /// The tasks, and which step each task runs.
    Spawned(JoinSet<StepResult>, HashMap<tokio::task::Id, usize>),
    /// The one step running, polled by the scheduler itself.
    Inline(Option<Pin<Box<dyn Future<Output = StepResult> + Send>>>),
}

/// A step task that ended without a result (it panicked).
pub(super) struct Abnormal {
    /// Its step, if known.
    pub(super) index: Option<usize>,
    /// What the runtime said.
    pub(super) message: String,
}

impl InFlight {
    /// Where `concurrency` steps at a time will run.
    pub(super) fn for_concurrency(concurrency: usize) -> Self {
        if concurrency <= 1 { Self::Inline(None) } else { Self::Spawned(JoinSet::new(), HashMap::new()) }
    }

    pub(super) fn push(&mut self, i: usize, f: impl Future<Output = StepResult> + Send + 'static) {
        match self {
            Self::Spawned(set, ids) => {
                let handle = set.spawn(f);
                ids.insert(handle.id(), i);
            }
            Self::Inline(slot) => *slot = Some(Box::pin(f)),
        }
    }

    fn joined(
        ids: &mut HashMap<tokio::task::Id, usize>,
        r: Result<(tokio::task::Id, StepResult), tokio::task::JoinError>,
    ) -> Result<StepResult, Abnormal> {
        match r {
            Ok((id, result)) => {
                ids.remove(&id);
                Ok(result)
            }
            Err(e) => Err(Abnormal { index: ids.remove(&e.id()), message: e.to_string() }),
        }
    }

    /// The next finished step; `Err` when a spawned task panicked.
    pub(super) async fn next(&mut self) -> Option<Result<StepResult, Abnormal>> {
        match self {
            Self::Spawned(set, ids) => set.join_next_with_id().await.map(|r| Self::joined(ids, r)),
            Self::Inline(slot) => {
                let f = slot.as_mut()?;
                let r = f.as_mut().await;
                *slot = None;
                Some(Ok(r))
            }
        }
    }

    /// A step that has already finished, without waiting.
    pub(super) fn try_next(&mut self) -> Option<Result<StepResult, Abnormal>> {
        match self {
            Self::Spawned(set, ids) => set.try_join_next_with_id().map(|r| Self::joined(ids, r)),
            Self::Inline(_) => None,
        }
    }

    /// Interrupts every step in flight.
    pub(super) async fn abort(&mut self) {
        match self {
            Self::Spawned(set, ids) => {
                set.abort_all();
                while set.join_next().await.is_some() {}
                ids.clear();
            }
            Self::Inline(slot) => *slot = None,
        }
    }
}
