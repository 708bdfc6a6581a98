//! Child runs: what the engine does for an `orchestrator` node. A child is
//! a run of its own in the same store, with a deterministic id (a UUIDv5 of
//! the parent's id and the node's), so that a resumed parent finds the
//! child it started instead of starting a second one: it reattaches to a
//! child still running (resuming it when its driver died), or takes the
//! output of one that finished.
//!
//! A completed child is compensated by a run of its own too: its journal's
//! completed steps are copied into a new run (`replay_of` the child) that
//! starts stopped, so that only its compensation runs, newest effect first.
//! Its id is derived from the child's, so that a crash mid-compensation
//! resumes it rather than undoing anything twice.

use super::{Engine, ResumeOptions, RunHandle, RunInput, RunOptions, StartError};
use crate::contract::{ExecutionStatus, RunOutput};
use crate::store::{JournalEntry, StoreError};
use crate::workflow::Workflow;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A child run, as found or started.
pub(crate) enum Attached {
    /// Driven by this process now.
    Running(RunHandle),
    /// Finished already, with this output.
    Finished(Box<RunOutput>),
}

/// What a child's start or reattachment returns (boxed: a run's future
/// contains its children's).
pub(crate) type AttachFuture = Pin<Box<dyn Future<Output = Result<Attached, String>> + Send>>;

/// How often a child driven by another process is looked at.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// The namespace of the ids of runs that undo a completed child: apart
/// from the ids of children (derived from their parent's id and a node id),
/// so that no node id can name one.
const UNDO_NAMESPACE: Uuid = Uuid::from_u128(0x5c1e_57a1_7e0d_4f3b_9a2c_6b1d_0e4f_7a21);

/// The id of the run that undoes the completed child `child`.
pub(crate) fn undo_run_id(child: &Uuid) -> Uuid {
    Uuid::new_v5(&UNDO_NAMESPACE, child.as_bytes())
}

impl Engine {
    /// Starts the child run `input.workflow_id` of `wf`, or reattaches to it:
    /// a child another live process drives is watched until it ends, or
    /// until its driver is gone, when it is taken over here.
    pub(crate) fn attach_child(
        &self,
        wf: Arc<Workflow>,
        input: RunInput,
        opts: RunOptions,
        cancelled: bool,
        replays: Option<String>,
    ) -> AttachFuture {
        let engine = self.clone();
        Box::pin(async move {
            let id = input.workflow_id.map(|u| u.to_string()).unwrap_or_default();
            loop {
                match engine.store.get_run(&id).await {
                    // A dead-letter replay's new child replays the failed one: its
                    // completed steps are kept, not done again. An old child still
                    // running (its parent stopped without it) is stopped first; one
                    // that was never created leaves nothing to keep.
                    Err(StoreError::NotFound(_))
                        if let (Some(old), Some(new_id), Some(parent)) =
                            (&replays, input.workflow_id, &opts.parent) =>
                    {
                        match engine.store.get_run(old).await {
                            Ok(rec) if rec.status == ExecutionStatus::Running => {
                                engine.cancel_child(old.clone(), Duration::from_secs(10)).await;
                                tokio::time::sleep(WATCH_EVERY).await;
                                continue;
                            }
                            Ok(_) => {
                                let resume = ResumeOptions { upgrade: false, limits: opts.limits.clone(), cancelled };
                                return engine
                                    .replay_as(old, new_id, Some(parent.clone()), resume)
                                    .await
                                    .map(Attached::Running)
                                    .map_err(|e| format!("the failed child run `{old}` could not be replayed: {e}"));
                            }
                            Err(StoreError::NotFound(_)) => {
                                return engine
                                    .start(wf, &input, opts)
                                    .await
                                    .map(Attached::Running)
                                    .map_err(|e| e.to_string());
                            }
                            Err(e) => return Err(format!("child run `{old}` could not be read: {e}")),
                        }
                    }
                    Err(StoreError::NotFound(_)) => {
                        return engine.start(wf, &input, opts).await.map(Attached::Running).map_err(|e| e.to_string());
                    }
                    Ok(rec) if rec.status != ExecutionStatus::Running => {
                        return rec
                            .output
                            .map(|o| Attached::Finished(Box::new((*o).clone())))
                            .ok_or_else(|| format!("child run `{id}` finished without an output"));
                    }
                    Ok(_) => {
                        let resume = ResumeOptions { upgrade: false, limits: opts.limits.clone(), cancelled };
                        match engine.resume(&id, resume).await {
                            Ok(h) => return Ok(Attached::Running(h)),
                            // Driven by a live process (or this one), or finished
                            // meanwhile: look again (a dead driver's lease is taken over).
                            Err(
                                StartError::Store(StoreError::Owned { .. } | StoreError::Finished(_))
                                | StartError::Finished { .. },
                            ) => tokio::time::sleep(WATCH_EVERY).await,
                            Err(e) => return Err(format!("child run `{id}` could not be resumed: {e}")),
                        }
                    }
                    Err(e) => return Err(format!("child run `{id}` could not be read: {e}")),
                }
            }
        })
    }

    /// Cancels the child run `run_id` that its parent let go, and waits for
    /// it to journal its end: to the end when this process drives it (its
    /// cancellation and compensation would die with the process), at most
    /// `within` when another one does. An orphaned child is stopped here.
    pub(crate) fn cancel_child(&self, run_id: String, within: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let engine = self.clone();
        Box::pin(async move {
            match engine.cancel(&run_id, ResumeOptions::default()).await {
                Ok(super::CancelOutcome::Orphaned(mut handle)) => {
                    handle.events.close();
                    handle.wait().await;
                }
                Ok(super::CancelOutcome::Requested { owner }) => {
                    let within = if owner == engine.owner { Duration::MAX } else { within };
                    engine.settle(&run_id, within).await;
                }
                Ok(super::CancelOutcome::AlreadyFinished(_)) => {}
                Err(e) => tracing::warn!(run_id = %run_id, error = %e, "a child run could not be cancelled"),
            }
        })
    }

    /// Waits, at most `within`, until the run `run_id` has finished.
    async fn settle(&self, run_id: &str, within: Duration) {
        let deadline = std::time::Instant::now().checked_add(within);
        while deadline.is_none_or(|d| std::time::Instant::now() < d) {
            match self.store.get_run(run_id).await {
                Ok(rec) if rec.status == ExecutionStatus::Running => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                _ => return,
            }
        }
    }

    /// Undoes the completed child run `child_id` as run `undo_id`: started
    /// now, resumed, or (finished already) just read. Its output.
    pub(crate) fn compensate_child(&self, child_id: String, undo_id: String, opts: ResumeOptions) -> AttachFuture {
        let engine = self.clone();
        Box::pin(async move {
            loop {
                let handle = match engine.store.get_run(&undo_id).await {
                    Ok(rec) if rec.run.replay_of.as_deref() != Some(child_id.as_str()) => {
                        return Err(format!("run `{undo_id}` exists and does not undo child run `{child_id}`"));
                    }
                    Ok(rec) if rec.status != ExecutionStatus::Running => {
                        return rec
                            .output
                            .map(|o| Attached::Finished(Box::new((*o).clone())))
                            .ok_or_else(|| format!("the compensation run `{undo_id}` finished without an output"));
                    }
                    Ok(_) => match engine.resume(&undo_id, opts.clone()).await {
                        Ok(h) => h,
                        // Still held by another driver (a lease not yet expired): look again.
                        Err(
                            StartError::Store(StoreError::Owned { .. } | StoreError::Finished(_))
                            | StartError::Finished { .. },
                        ) => {
                            tokio::time::sleep(WATCH_EVERY).await;
                            continue;
                        }
                        Err(e) => return Err(e.to_string()),
                    },
                    Err(StoreError::NotFound(_)) => {
                        engine.start_undo(&child_id, &undo_id, opts).await.map_err(|e| e.to_string())?
                    }
                    Err(e) => return Err(e.to_string()),
                };
                return Ok(Attached::Running(handle));
            }
        })
    }

    /// Creates the run that undoes `child_id`, and starts it.
    async fn start_undo(&self, child_id: &str, undo_id: &str, opts: ResumeOptions) -> Result<RunHandle, StartError> {
        let record = self.store.get_run(child_id).await?;
        let journal = self.store.journal(child_id).await?;
        let mut first: Vec<JournalEntry> = journal
            .into_iter()
            .map(|j| j.entry)
            .filter(|e| {
                matches!(
                    e,
                    JournalEntry::StepScheduled { .. }
                        | JournalEntry::AttemptStarted { .. }
                        | JournalEntry::AttemptFinished { .. }
                        | JournalEntry::StepCompleted { .. }
                        | JournalEntry::StepSkipped { .. }
                        | JournalEntry::ShardStarted { .. }
                        | JournalEntry::ShardFinished { .. }
                        | JournalEntry::StepFailed { .. }
                        | JournalEntry::ChildLinked { .. }
                )
            })
            .collect();
        first.push(JournalEntry::RunStopping {
            status: ExecutionStatus::Cancelled,
            errors: Vec::new(),
            parallel_executions: 0,
        });
        let mut new = record.run.clone();
        new.run_id = undo_id.to_string();
        new.replay_of = Some(child_id.to_string());
        new.owner = self.owner.clone();
        new.lease_ms = self.lease_ms;
        // Its effects' idempotency keys are the child's: `compensate` undoes what the child did.
        if let Some(obj) = new.options.as_object_mut() {
            obj.insert("keys_of".into(), Value::String(child_id.to_string()));
        }
        if let Some(obj) = new.input.as_object_mut() {
            obj.insert("workflow_id".into(), Value::String(undo_id.to_string()));
            obj.insert("failure_strategy".into(), Value::String("compensate".into()));
            obj.remove("continue_on_error");
        }
        let lease = self.store.create_run(&new, &first, &[]).await?;
        let record = self.store.get_run(undo_id).await?;
        let run = self.rebuild(&record, opts, lease).await?;
        Ok(self.spawn(run))
    }
}
