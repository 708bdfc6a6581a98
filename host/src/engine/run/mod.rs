//! [`Run`]: the state machine of one run, from its first transition to its
//! output contract.
//!
//! Every change of state goes through [`Run::record`], which applies a
//! journal entry (`state.rs`) and queues it; [`Run::flush`] writes the queue
//! in one transaction before anything it enables starts. A resume folds the
//! stored journal with the same `apply`, so a live run and a resumed one
//! cannot disagree.
//!
//! The files of this folder, in the order a run meets them: `schedule.rs`
//! (the scheduling loop), `binding.rs` (skip decisions and inputs),
//! `attempts.rs` (the retry loop of one step), `finish.rs` (recording a
//! step's end), `actions.rs` (delivery), `compensation.rs` and `output.rs`.
//! The nodes that run no component have a file each: `switch.rs`
//! (`conditional` and `parallel`, done as soon as they are decided),
//! `gate.rs` (approval gates, which wait for a signal) and `child.rs`
//! (sub-workflows, which run a child run through the engine's
//! `children.rs`); `fan_out.rs` and `streaming.rs` are the data modes.

mod actions;
mod attempts;
mod binding;
mod child;
mod compensation;
mod fan_out;
mod finish;
mod gate;
mod in_flight;
mod output;
mod schedule;
mod state;
mod streaming;
mod switch;

use super::events::{EventSender, RunEvent};
use super::executor::{Held, StepExecutor};
use super::grants::RunGrants;
use super::heartbeat::{DrivenHere, Heartbeat};
use super::{RunConfig, RunOptions};
use crate::contract::{ActionRecord, ErrorRecord, ExecutionStatus, RunOutput, UndeliveredAction, now_ms, now_rfc3339};
use crate::sandbox::Grants;
use crate::store::{JournalEntry, Lease, PinnedComponent, RunStore};
use crate::workflow::{FailureStrategy, RetryPolicy, Workflow};
use serde_json::{Map, Value, json};
use state::{State, Totals};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(super) use gate::wake as wake_gate;

/// A step's input, shared by the run's state and its journal entry.
type SharedInput = Arc<Map<String, Value>>;

/// What a run shares with its engine.
pub(super) struct Parts {
    pub(super) executor: Arc<dyn StepExecutor>,
    pub(super) store: Arc<dyn RunStore>,
    /// The run's lease: every write names it.
    pub(super) lease: Arc<Lease>,
    pub(super) lease_ms: u64,
    /// The engine's drain: cancelled when the process shuts down.
    pub(super) drain: CancellationToken,
    /// Per node index, the digest of the component version the run pinned.
    pub(super) pins: Vec<Option<String>>,
    /// What the executor keeps loaded for the run's attempts.
    pub(super) held: Held,
    /// What each node's attempts are granted, and the run's scratch directory.
    pub(super) grants: RunGrants,
    /// The budget of each expression evaluation.
    pub(super) expr_budget: crate::contract::ExprBudget,
    /// The limits of `for_each`.
    pub(super) fan_out_limits: crate::capability::FanOutLimits,
    /// The memo cache's size cap.
    pub(super) memo_max_bytes: u64,
    /// The engine, for sub-workflows' child runs.
    pub(super) engine: super::Engine,
}

/// One run.
pub(super) struct Run {
    wf: Arc<Workflow>,
    config: RunConfig,
    opts: RunOptions,
    executor: Arc<dyn StepExecutor>,
    store: Arc<dyn RunStore>,
    /// The run's lease: every write names it.
    pub(super) lease: Arc<Lease>,
    lease_ms: u64,
    /// The engine's drain.
    drain: CancellationToken,
    /// The run was claimed too often without progress: it goes to the
    /// dead-letter queue as `poison` instead of running again.
    pub(super) poisoned: bool,
    /// Per node index, the digest of the component version the run pinned.
    pins: Vec<Option<String>>,
    /// Kept for as long as the run lives: its pinned components stay loaded.
    _held: Held,
    /// Per node index, what its attempts are granted.
    grants: Vec<Arc<Grants>>,
    /// The run's scratch directory, removed when the run finishes.
    scratch: Option<std::path::PathBuf>,
    /// The budget of each expression evaluation.
    expr_budget: crate::contract::ExprBudget,
    /// The limits of `for_each`.
    fan_out_limits: crate::capability::FanOutLimits,
    /// Per `for_each` node, what its shards did (None: not fanned out yet).
    fans: Vec<Option<fan_out::FanState>>,
    /// Per running `for_each` node, the shard results gathered so far.
    fan_finished: Vec<Option<fan_out::Finished>>,
    /// The memo cache's size cap.
    memo_max_bytes: u64,
    /// Per node: completed from the memo cache.
    memoized: Vec<bool>,
    /// Per node, the `stream_from` consumers that name it.
    consumers_of: Vec<Vec<usize>>,
    /// Per consumer, its buffer and latency statistics (live only).
    stream_stats: Vec<Option<streaming::StreamStats>>,
    /// The run's context and metadata as CEL, converted on first use.
    context_cel: std::cell::OnceCell<crate::workflow::expr::CelValue>,
    metadata_cel: std::cell::OnceCell<crate::workflow::expr::CelValue>,
    /// CEL null, for what a node's expressions do not read.
    null: crate::workflow::expr::CelValue,
    /// The settings' `domain_specific_config` as CEL, converted on first use.
    config_cel: std::cell::OnceCell<crate::workflow::expr::CelValue>,
    /// The engine, for sub-workflows' child runs.
    engine: super::Engine,
    /// Per approval gate that opened: when it stops waiting (Unix ms).
    gate_until: Vec<Option<u64>>,
    /// Per sub-workflow node, the child run its journal links it to.
    child_ids: Vec<Option<uuid::Uuid>>,
    /// Per sub-workflow node of a dead-letter replay: the failed child its new child replays.
    child_replays: Vec<Option<String>>,
    /// This process's mark on the run, taken before it was claimed (a resume).
    pub(super) driven: Option<DrivenHere>,
    pub(super) events: EventSender,
    pub(super) cancel: CancellationToken,
    state: Vec<State>,
    outputs: Vec<Option<Value>>,
    inputs: Vec<Option<SharedInput>>,
    totals: Vec<Totals>,
    /// The highest attempt number journaled per step.
    attempts_used: Vec<u32>,
    delivered: Vec<Vec<Value>>,
    /// Actions that named a node of the workflow not downstream of their emitter.
    undelivered: Vec<UndeliveredAction>,
    /// Each node's position in the topological order.
    topo_pos: Vec<usize>,
    completion_order: Vec<usize>,
    actions: Vec<ActionRecord>,
    errors: Vec<ErrorRecord>,
    skipped: Vec<usize>,
    failed: Vec<usize>,
    parallel_executions: u64,
    compensation: Vec<Value>,
    compensated: Vec<bool>,
    /// How many times compensation of each step began (a crash may interrupt one).
    compensation_starts: Vec<u32>,
    /// Set once the run stopped scheduling (journaled `run_stopping`).
    stopping: Option<ExecutionStatus>,
    /// Entries applied but not yet written.
    pending: Vec<JournalEntry>,
    started_ms: u64,
    start_time: String,
    /// Each node's retry policy, resolved once.
    policies: Vec<Arc<RetryPolicy>>,
    /// Identity strings, formatted once.
    pub(super) ids: RunIds,
}

/// A run's identity, formatted once.
pub(super) struct RunIds {
    pub(super) run_id: String,
    correlation_id: String,
    tenant: String,
}

impl Run {
    /// A run of `wf` with nothing done yet (a resume then applies its journal).
    pub(super) fn new(wf: Arc<Workflow>, config: RunConfig, opts: RunOptions, parts: Parts) -> Self {
        let n = wf.nodes.len();
        let default_policy = Arc::new(config.settings.retry_policy(wf.rules.max_retries));
        let policies = wf
            .nodes
            .iter()
            .enumerate()
            .map(|(i, nd)| match (&nd.retry, config.tuning.get(i).and_then(|t| t.retry_count).or(nd.retry_count)) {
                (Some(own), Some(n)) if config.tuning.get(i).is_some_and(|t| t.retry_count.is_some()) => {
                    Arc::new(RetryPolicy { max_attempts: n + 1, ..own.clone() })
                }
                (Some(own), _) => Arc::new(own.clone()),
                (None, Some(n)) => Arc::new(config.settings.retry_policy(Some(n))),
                (None, None) => default_policy.clone(),
            })
            .collect();
        let mut topo_pos = vec![0usize; n];
        for (pos, &i) in wf.graph.topo_order.iter().enumerate() {
            topo_pos[i] = pos;
        }
        let ids = RunIds {
            run_id: config.workflow_id.to_string(),
            correlation_id: config.correlation_id.to_string(),
            tenant: config.metadata.get("tenant").and_then(Value::as_str).unwrap_or_default().to_string(),
        };
        let mut pins = parts.pins;
        pins.resize(n, None);
        let consumers_of = Self::consumers_by_producer(&wf);
        Self {
            policies,
            ids,
            wf,
            config,
            opts,
            executor: parts.executor,
            store: parts.store,
            lease: parts.lease,
            lease_ms: parts.lease_ms,
            drain: parts.drain,
            poisoned: false,
            pins,
            _held: parts.held,
            grants: parts.grants.by_node,
            scratch: parts.grants.scratch,
            expr_budget: parts.expr_budget,
            fan_out_limits: parts.fan_out_limits,
            fans: vec![None; n],
            fan_finished: vec![None; n],
            memo_max_bytes: parts.memo_max_bytes,
            memoized: vec![false; n],
            consumers_of,
            stream_stats: vec![None; n],
            context_cel: Default::default(),
            metadata_cel: Default::default(),
            null: crate::workflow::expr::CelValue::from_json(&Value::Null),
            config_cel: Default::default(),
            engine: parts.engine,
            gate_until: vec![None; n],
            child_ids: vec![None; n],
            child_replays: vec![None; n],
            driven: None,
            events: EventSender::detached(),
            cancel: CancellationToken::new(),
            state: vec![State::Pending; n],
            outputs: vec![None; n],
            inputs: vec![None; n],
            totals: vec![Totals::default(); n],
            attempts_used: vec![0; n],
            delivered: vec![Vec::new(); n],
            undelivered: Vec::new(),
            topo_pos,
            completion_order: Vec::new(),
            actions: Vec::new(),
            errors: Vec::new(),
            skipped: Vec::new(),
            failed: Vec::new(),
            parallel_executions: 0,
            compensation: Vec::new(),
            compensated: vec![false; n],
            compensation_starts: vec![0; n],
            stopping: None,
            pending: Vec::new(),
            started_ms: now_ms(),
            start_time: now_rfc3339(),
        }
    }

    /// Per node index of `wf`, the digest `pins` gives its node.
    pub(super) fn pins_by_node(wf: &Workflow, pins: &BTreeMap<String, PinnedComponent>) -> Vec<Option<String>> {
        wf.nodes.iter().map(|n| pins.get(&n.id).map(|p| p.digest.clone())).collect()
    }

    fn emit(&self, e: RunEvent) {
        self.events.send(e);
    }

    fn index(&self, step_id: &str) -> Option<usize> {
        self.wf.graph.index.get(step_id).copied()
    }

    /// Applies a transition now and queues it for the journal.
    fn record(&mut self, e: JournalEntry) {
        self.apply(&e);
        self.pending.push(e);
    }

    /// Writes the queued transitions in one transaction.
    async fn flush(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let entries = std::mem::take(&mut self.pending);
        let steps = crate::engine::StepMark::of(&entries);
        let start = std::time::Instant::now();
        self.store.append(&self.lease, entries).await.map_err(|e| e.to_string())?;
        self.engine.observer.journaled(self.observed(), &steps, start.elapsed());
        Ok(())
    }

    /// Gives up on a run claimed too often without progress: it stops now
    /// as failed, and goes to the dead-letter queue as `poison` (whatever
    /// the workflow says about the queue), so that it no longer holds the
    /// head of every worker's queue.
    fn poison(&mut self) {
        let message = format!(
            "the run was claimed {} times in a row without progress (its driver died each time); it was sent to the \
             dead-letter queue instead of running again: look at its journal, then replay it with `weft dlq replay {}`",
            self.lease.idle_claims, self.ids.run_id
        );
        let error = ErrorRecord { step_id: "workflow".into(), error_type: "poison".into(), message };
        self.record(JournalEntry::RunStopping {
            status: ExecutionStatus::Failed,
            errors: vec![error],
            parallel_executions: self.parallel_executions,
        });
    }

    /// What a drained run returns: it is not finished (nothing about its end
    /// is journaled), and whoever claims it next continues it.
    fn drained_output(&mut self) -> RunOutput {
        self.pending.clear();
        let mut out = self.output(ExecutionStatus::Paused);
        out.errors.push(ErrorRecord {
            step_id: "workflow".into(),
            error_type: "drained".into(),
            message: format!(
                "this process shut down before the run finished; the run is left resumable, not cancelled: a worker \
                 takes it over, or `weft runs resume {}` continues it",
                self.ids.run_id
            ),
        });
        self.emit(RunEvent::RunFinished { status: ExecutionStatus::Paused });
        out
    }

    /// The run's identity as expressions and the output see it (`run`).
    fn run_json(&self) -> Value {
        json!({
            "run_id": self.ids.run_id,
            "workflow_id": self.ids.run_id,
            "correlation_id": self.ids.correlation_id,
            "workflow_type": self.config.workflow_type,
            "workflow": self.wf.name,
        })
    }

    /// Drives the run to its end and returns its output contract.
    pub(super) async fn drive(mut self) -> RunOutput {
        self.emit(RunEvent::RunStarted { run_id: self.ids.run_id.clone(), workflow: self.wf.name.clone() });
        // Removed on every exit, also when the task is dropped mid-run.
        let _driven = self.driven.take().or_else(|| DrivenHere::try_enter(&self.ids.run_id));
        let heartbeat = Heartbeat {
            store: self.store.clone(),
            lease: self.lease.clone(),
            lease_ms: self.lease_ms,
            cancel: self.cancel.clone(),
        }
        .spawn();
        let observer = self.engine.observer.clone();
        observer.run_started(self.observed());
        let out = self.drive_inner().await;
        observer.run_finished(self.observed(), &out, self.wf.nodes.len());
        heartbeat.abort();
        // Stopped before the lease is given up: a late renewal cannot take it back.
        let _ = heartbeat.await;
        if out.execution_status == ExecutionStatus::Paused
            && let Err(e) = self.store.release(&self.lease).await
        {
            tracing::warn!(run_id = %self.ids.run_id, error = %e, "the drained run's lease could not be given up");
        }
        out
    }

    /// The run, as an observer sees it.
    pub(super) fn observed(&self) -> crate::engine::ObservedRun<'_> {
        crate::engine::ObservedRun {
            run_id: &self.ids.run_id,
            workflow: &self.wf.name,
            tenant: &self.ids.tenant,
            traceparent: self.opts.traceparent.as_deref(),
        }
    }

    async fn drive_inner(&mut self) -> RunOutput {
        if self.poisoned && self.stopping.is_none() {
            self.poison();
        }
        let status = match self.stopping {
            // Resumed after scheduling had stopped: only compensation and the end remain.
            Some(status) => status,
            None => match self.schedule().await {
                Ok(status) => status,
                Err(schedule::Halt::Store(message)) => return self.store_failure(message),
                Err(schedule::Halt::Drained) => return self.drained_output(),
            },
        };
        if self.config.failure_strategy == FailureStrategy::Compensate
            && !self.poisoned
            && status != ExecutionStatus::Completed
            && let Err(message) = self.compensate().await
        {
            return self.store_failure(message);
        }
        if status == ExecutionStatus::Failed && (self.wf.rules.dead_letter_queue_enabled || self.poisoned) {
            let first = self
                .errors
                .iter()
                .find(|e| if self.poisoned { e.error_type == "poison" } else { e.step_id != "workflow" })
                .or_else(|| self.errors.first())
                .cloned()
                .unwrap_or_else(|| ErrorRecord {
                    step_id: "workflow".into(),
                    error_type: "failed".into(),
                    message: "the run failed".into(),
                });
            self.record(JournalEntry::DeadLettered {
                step_id: first.step_id,
                error_type: first.error_type,
                message: first.message,
            });
        }
        // Shared with the journal entry; copied back only where the store keeps it (in memory).
        let output = Arc::new(self.output(status));
        self.record(JournalEntry::RunFinished { output: output.clone() });
        let written = self.flush().await;
        self.pending.clear();
        let output = Arc::try_unwrap(output).unwrap_or_else(|shared| (*shared).clone());
        if let Err(message) = written {
            return self.store_failure_with(output, message);
        }
        if let Some(dir) = &self.scratch
            && let Err(e) = std::fs::remove_dir_all(dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(run_id = %self.ids.run_id, dir = %dir.display(), error = %e, "the scratch directory could not be removed");
        }
        self.emit(RunEvent::RunFinished { status });
        output
    }
}
