//! Sub-workflow nodes (`node_type: orchestrator`): the node's input becomes
//! the child run's `context`, and the child's output contract becomes the
//! node's output. The child is found or started through the engine
//! (`engine/children.rs`). Letting go of a child (the parent stopped or was
//! cancelled) cancels it; the parent then waits for the child to journal
//! its end. Compensating a completed child runs the child's own
//! compensation, as a run of its own.

use super::schedule::StepResult;
use super::{Run, SharedInput};
use crate::contract::{ExecutionStatus, RunOutput};
use crate::engine::children::Attached;
use crate::engine::events::RunEvent;
use crate::engine::{ResumeOptions, RunInput, RunOptions};
use crate::store::ParentRun;
use crate::workflow::{FailureStrategy, NodeKind};
use serde_json::Value;
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

impl Run {
    /// Whether node `i` runs a sub-workflow.
    pub(super) fn is_child(&self, i: usize) -> bool {
        matches!(self.wf.nodes[i].kind, NodeKind::SubWorkflow(_))
    }

    /// The id of node `i`'s child run: the same on every resume (and, in
    /// the run that compensates a child, the id of the child's own child).
    pub(super) fn child_run_id(&self, i: usize) -> Uuid {
        if let Some(linked) = self.child_ids[i] {
            return linked;
        }
        let base =
            self.opts.keys_of.as_deref().and_then(|k| Uuid::parse_str(k).ok()).unwrap_or(self.config.workflow_id);
        Uuid::new_v5(&base, self.wf.nodes[i].id.as_bytes())
    }

    /// Runs node `i`'s child to its end (or reattaches to it).
    pub(super) fn child_task(&self, i: usize, input: SharedInput) -> impl Future<Output = StepResult> + Send + 'static {
        let node = &self.wf.nodes[i];
        let sub = match &node.kind {
            NodeKind::SubWorkflow(sub) => Some(sub.workflow.clone()),
            _ => None,
        };
        let child_id = self.child_run_id(i);
        // Under `compensate`, a failing child undoes itself as well.
        let failure_strategy =
            (self.config.failure_strategy == FailureStrategy::Compensate).then(|| "compensate".to_string());
        let child_input = RunInput {
            workflow_id: Some(child_id),
            correlation_id: Some(self.config.correlation_id),
            failure_strategy,
            context: (*input).clone(),
            metadata: self.config.metadata.clone(),
            ..Default::default()
        };
        let opts = RunOptions {
            environment: self.config.environment,
            jitter_seed: self.opts.jitter_seed,
            limits: self.opts.limits.clone(),
            config: self.opts.config.clone(),
            parent: Some(ParentRun { run_id: self.ids.run_id.clone(), step_id: node.id.clone() }),
            keys_of: None,
            request_digest: None,
            ceiling: self.opts.ceiling,
            traceparent: self.opts.traceparent.clone(),
        };
        let engine = self.engine.clone();
        let cancelled = self.cancel.is_cancelled();
        let events = self.events.clone();
        let step_id = node.id.clone();
        let replays = self.child_replays[i].clone();
        async move {
            let mut result = StepResult::empty(i);
            let Some(wf) = sub else {
                result.child = Some(Err("internal error: not a sub-workflow node".into()));
                return result;
            };
            let attached = engine.attach_child(wf, child_input, opts, cancelled, replays).await;
            result.child = Some(match attached {
                Ok(Attached::Finished(out)) => Ok(*out),
                Ok(Attached::Running(handle)) => {
                    events.send(RunEvent::ChildStarted { step_id, run_id: handle.run_id.clone() });
                    // Dropped with this task (the parent let go): the child is cancelled.
                    let _cancel_child = handle.cancel_token().drop_guard();
                    Ok(handle.wait().await)
                }
                Err(message) => Err(message),
            });
            result
        }
    }

    /// Records how node `i`'s child ended. Returns true when the run must stop.
    pub(super) fn finish_child(&mut self, i: usize, end: Result<RunOutput, String>) -> bool {
        let child = self.child_run_id(i);
        match end {
            Ok(out) if out.execution_status == ExecutionStatus::Completed => {
                let output = serde_json::to_value(&out).unwrap_or(Value::Null);
                self.complete_step(i, output, &[])
            }
            Ok(out) => {
                let first = out.errors.iter().find(|e| e.step_id != "workflow").or(out.errors.first());
                let why = first.map(|e| format!(": step `{}`: {}", e.step_id, e.message)).unwrap_or_default();
                let message = format!(
                    "the sub-workflow's run {child} ended `{}`{why}; `weft runs show {child}` shows it",
                    out.execution_status.as_str()
                );
                let output = serde_json::to_value(&out).ok();
                self.fail_step_with(i, "sub_workflow", message, output)
            }
            Err(message) => self.fail_step(i, "sub_workflow", message),
        }
    }

    /// After the parent let its children go: waits (bounded by the
    /// contract's shutdown timeout) for each interrupted child to journal
    /// its end, and asks the ones not driven here to cancel.
    pub(super) fn settle_children(&self, interrupted: &[usize]) -> impl Future<Output = ()> + Send + 'static {
        let within = Duration::from_millis(self.config.settings.shutdown_timeout_ms);
        let ids: Vec<String> =
            interrupted.iter().filter(|&&i| self.is_child(i)).map(|&i| self.child_run_id(i).to_string()).collect();
        let engine = self.engine.clone();
        async move {
            for id in ids {
                engine.cancel_child(id, within).await;
            }
        }
    }

    /// Undoes node `i`'s completed child. Returns (ok, error).
    pub(super) fn compensate_child(&self, i: usize) -> impl Future<Output = (bool, Option<String>)> + Send + 'static {
        let child = self.child_run_id(i);
        let undo = crate::engine::children::undo_run_id(&child).to_string();
        let opts = ResumeOptions { upgrade: false, limits: self.opts.limits.clone(), cancelled: false };
        let engine = self.engine.clone();
        async move { undo_outcome(&engine, child, undo, opts).await }
    }
}

/// Runs (or reads) the compensation of the completed child run `child` as
/// run `undo`: (ok, error).
async fn undo_outcome(
    engine: &crate::engine::Engine,
    child: Uuid,
    undo: String,
    opts: ResumeOptions,
) -> (bool, Option<String>) {
    {
        let out = match engine.compensate_child(child.to_string(), undo.clone(), opts).await {
            Ok(Attached::Finished(out)) => *out,
            Ok(Attached::Running(handle)) => handle.wait().await,
            Err(e) => return (false, Some(format!("the compensation of child run {child} could not start: {e}"))),
        };
        // An undo run ends `cancelled`, its compensation done; any other end
        // (its journal failed, its task died) undid nothing for sure.
        let broken = out.errors.iter().find(|e| e.step_id == "workflow" && e.error_type != "cancelled");
        if out.execution_status != ExecutionStatus::Cancelled || broken.is_some() {
            let why = broken.map(|e| e.message.clone()).unwrap_or_else(|| out.execution_status.as_str().to_string());
            return (false, Some(format!("the compensation of child run {child} (run {undo}) did not finish: {why}")));
        }
        let records = out.output_variables.get("compensation").and_then(Value::as_array).cloned().unwrap_or_default();
        let failed: Vec<String> = records
            .iter()
            .filter(|r| r.get("status").and_then(Value::as_str) != Some("compensated"))
            .map(|r| r.get("step_id").and_then(Value::as_str).unwrap_or("?").to_string())
            .collect();
        if failed.is_empty() {
            (true, None)
        } else {
            (false, Some(format!("child run {child}: compensation failed for {} (run {undo})", failed.join(", "))))
        }
    }
}
