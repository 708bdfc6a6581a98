//! The orchestrator: runs a [`Workflow`] as a DAG of sandboxed steps.
//!
//! [`Engine::start`] schedules the graph in the run's mode, executes each
//! attempt through a [`StepExecutor`] (the sandbox, in production), applies
//! retry policies and the failure strategy, delivers actions, enforces the
//! global timeout, honours cancellation, compensates where asked, and ends
//! with the seed's output contract.

mod input;
mod output;

pub use input::{Environment, RunConfig, RunInput};
pub use output::{ActionRecord, ErrorRecord, ExecutionStatus, RunOutput};

use crate::sandbox::{
    AttemptReport, CallKind, Limits, LoadedComponent, Sandbox, StepCall, StepContext, StepFailure, StepWorld,
};
use crate::workflow::expr::Scope;
use crate::workflow::{ComponentCheck, FailureStrategy, InputMapping, NodeSpec, NodeType, RetryPolicy, Workflow};
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A boxed attempt future.
pub type AttemptFuture = Pin<Box<dyn Future<Output = AttemptReport> + Send>>;

/// Executes one attempt of one step. The engine knows nothing of wasm: the
/// sandbox implements this ([`SandboxExecutor`]); tests may too.
pub trait StepExecutor: Send + Sync + 'static {
    /// Loads everything the workflow's nodes need; `Err` lists what failed.
    fn prepare(&self, wf: &Workflow) -> Result<(), Vec<String>>;
    /// Runs one attempt.
    fn execute(&self, node: &NodeSpec, call: StepCall, limits: Limits) -> AttemptFuture;
}

/// Runs steps in a [`Sandbox`], one pre-linked component per file.
pub struct SandboxExecutor {
    sandbox: Arc<Sandbox>,
    components: Mutex<HashMap<PathBuf, Arc<LoadedComponent>>>,
}

impl SandboxExecutor {
    /// An executor on `sandbox`.
    pub fn new(sandbox: Arc<Sandbox>) -> Self {
        Self { sandbox, components: Mutex::new(HashMap::new()) }
    }

    fn world(t: NodeType) -> StepWorld {
        if t.is_effect() { StepWorld::Effect } else { StepWorld::Compute }
    }

    fn load(&self, path: &Path, t: NodeType) -> Result<Arc<LoadedComponent>, String> {
        let known = self.components.lock().unwrap_or_else(PoisonError::into_inner).get(path).cloned();
        if let Some(c) = known
            && c.world == Self::world(t)
        {
            return Ok(c);
        }
        let c = self.sandbox.load_file(path, Some(Self::world(t))).map_err(|e| e.to_string())?;
        self.components.lock().unwrap_or_else(PoisonError::into_inner).insert(path.to_path_buf(), c.clone());
        Ok(c)
    }
}

impl ComponentCheck for SandboxExecutor {
    fn check(&self, path: &Path, node_type: NodeType) -> Result<(), String> {
        self.load(path, node_type).map(|_| ())
    }
}

impl StepExecutor for SandboxExecutor {
    fn prepare(&self, wf: &Workflow) -> Result<(), Vec<String>> {
        let problems: Vec<String> = wf
            .nodes
            .iter()
            .filter_map(|n| self.load(&n.component, n.node_type).err().map(|e| format!("node `{}`: {e}", n.id)))
            .collect();
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    fn execute(&self, node: &NodeSpec, call: StepCall, limits: Limits) -> AttemptFuture {
        let sandbox = self.sandbox.clone();
        let loaded = self.components.lock().unwrap_or_else(PoisonError::into_inner).get(&node.component).cloned();
        let component = match loaded {
            Some(c) => Ok(c),
            None => self.load(&node.component, node.node_type),
        };
        Box::pin(async move {
            match component {
                Ok(c) => sandbox.execute(&c, &call, &limits).await,
                Err(reason) => AttemptReport {
                    outcome: Err(StepFailure::ComponentInvalid { reason }),
                    stats: Default::default(),
                    logs: Vec::new(),
                },
            }
        })
    }
}

/// Something that happened in a run, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run began.
    RunStarted {
        /// The run id.
        run_id: String,
        /// The workflow's name.
        workflow: String,
    },
    /// An attempt began.
    AttemptStarted {
        /// The step.
        step_id: String,
        /// Its attempt number.
        attempt: u32,
    },
    /// An attempt failed and will be retried after `delay_ms`.
    Retrying {
        /// The step.
        step_id: String,
        /// The attempt that failed.
        attempt: u32,
        /// Its failure kind.
        error_type: String,
        /// The wait before the next attempt.
        delay_ms: u64,
    },
    /// A step completed.
    StepCompleted {
        /// The step.
        step_id: String,
        /// Attempts it took.
        attempts: u32,
    },
    /// A step failed for good.
    StepFailed {
        /// The step.
        step_id: String,
        /// Failure kind.
        error_type: String,
        /// What happened.
        message: String,
        /// True when `continue_on_error` tolerates it.
        tolerated: bool,
    },
    /// A step did not run.
    StepSkipped {
        /// The step.
        step_id: String,
        /// Why.
        reason: String,
    },
    /// Compensation of a completed effect step began.
    Compensating {
        /// The step being undone.
        step_id: String,
    },
    /// Compensation of a step ended.
    Compensated {
        /// The step.
        step_id: String,
        /// Whether `compensate` succeeded.
        ok: bool,
    },
    /// The run ended.
    RunFinished {
        /// Final status.
        status: ExecutionStatus,
    },
}

/// Engine-wide options.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The environment profile for defaults.
    pub environment: Environment,
    /// Seed for retry jitter (deterministic delays); random when `None`.
    pub jitter_seed: Option<u64>,
    /// Default per-attempt limits (each node's `timeout_ms`, `fuel` and
    /// `memory_mb` override them).
    pub limits: Limits,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The run input breaks the input contract.
    #[error("the run input is invalid:\n  - {}", .0.join("\n  - "))]
    Input(Vec<String>),
    /// A component could not be loaded.
    #[error("the workflow's components cannot be loaded:\n  - {}", .0.join("\n  - "))]
    Components(Vec<String>),
}

/// A running workflow: watch its events, cancel it, await its output.
pub struct RunHandle {
    /// The run's id (`workflow_id`).
    pub run_id: String,
    /// Events, in order; the channel closes when the run ends.
    pub events: mpsc::UnboundedReceiver<RunEvent>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<RunOutput>,
}

impl RunHandle {
    /// Asks the run to stop: scheduling stops, in-flight steps are
    /// interrupted, compensation runs if the strategy says so.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A token that cancels the run when cancelled (for signal handlers).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits for the run's output.
    pub async fn wait(self) -> RunOutput {
        match self.task.await {
            Ok(out) => out,
            Err(e) => internal_failure(&format!("the run task ended abnormally: {e}")),
        }
    }
}

fn internal_failure(message: &str) -> RunOutput {
    let now = now_rfc3339();
    RunOutput {
        execution_status: ExecutionStatus::Failed,
        execution_time_ms: 0,
        start_time: now.clone(),
        end_time: now,
        completed_steps: vec![],
        failed_steps: vec![],
        skipped_steps: vec![],
        step_outputs: Map::new(),
        final_result: None,
        output_variables: Map::new(),
        actions_emitted: vec![],
        errors: vec![ErrorRecord {
            step_id: "workflow".into(),
            error_type: "internal".into(),
            message: message.into(),
        }],
        metrics: BTreeMap::new(),
        parallel_executions: 0,
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The orchestrator.
pub struct Engine {
    executor: Arc<dyn StepExecutor>,
}

impl Engine {
    /// An engine that runs steps with `executor`.
    pub fn new(executor: Arc<dyn StepExecutor>) -> Self {
        Self { executor }
    }

    /// Validates the input, loads the components and starts the run on the
    /// current tokio runtime.
    pub fn start(&self, wf: Arc<Workflow>, input: &RunInput, opts: RunOptions) -> Result<RunHandle, StartError> {
        let config = input.resolve(&wf, opts.environment).map_err(StartError::Input)?;
        self.executor.prepare(&wf).map_err(StartError::Components)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let run_id = config.workflow_id.to_string();
        let run = Run::new(wf, config, opts, self.executor.clone(), tx, cancel.clone());
        let task = tokio::spawn(run.drive());
        Ok(RunHandle { run_id, events: rx, cancel, task })
    }

    /// Starts a run and waits for its output, dropping the events.
    pub async fn run(&self, wf: Arc<Workflow>, input: &RunInput, opts: RunOptions) -> Result<RunOutput, StartError> {
        let mut handle = self.start(wf, input, opts)?;
        handle.events.close();
        Ok(handle.wait().await)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Pending,
    Running,
    Completed,
    /// Failed, and the failure stops its dependents.
    Failed,
    /// Failed, tolerated by `continue_on_error`: dependents run.
    Tolerated,
    Skipped,
}

/// What a step task reports back.
struct StepResult {
    index: usize,
    attempts: Vec<AttemptReport>,
}

impl StepResult {
    fn last(&self) -> Option<&AttemptReport> {
        self.attempts.last()
    }
}

/// Steps in flight: spawned tasks when several run at once (so that they use
/// every core), or one future polled in place when steps run one at a time
/// (no hand-off between threads per step).
enum InFlight {
    Spawned(JoinSet<StepResult>),
    Inline(Option<Pin<Box<dyn Future<Output = StepResult> + Send>>>),
}

impl InFlight {
    fn push(&mut self, f: impl Future<Output = StepResult> + Send + 'static) {
        match self {
            Self::Spawned(set) => {
                set.spawn(f);
            }
            Self::Inline(slot) => *slot = Some(Box::pin(f)),
        }
    }

    /// The next finished step; `Err` when a spawned task panicked.
    async fn next(&mut self) -> Option<Result<StepResult, String>> {
        match self {
            Self::Spawned(set) => set.join_next().await.map(|r| r.map_err(|e| e.to_string())),
            Self::Inline(slot) => {
                let f = slot.as_mut()?;
                let r = f.as_mut().await;
                *slot = None;
                Some(Ok(r))
            }
        }
    }

    /// A step that has already finished, without waiting.
    fn try_next(&mut self) -> Option<Result<StepResult, String>> {
        match self {
            Self::Spawned(set) => set.try_join_next().map(|r| r.map_err(|e| e.to_string())),
            Self::Inline(_) => None,
        }
    }

    /// Interrupts every step in flight.
    async fn abort(&mut self) {
        match self {
            Self::Spawned(set) => {
                set.abort_all();
                while set.join_next().await.is_some() {}
            }
            Self::Inline(slot) => *slot = None,
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Totals {
    fuel: u64,
    wall_us: u64,
    peak: u64,
    attempts: u32,
}

struct Run {
    wf: Arc<Workflow>,
    config: RunConfig,
    opts: RunOptions,
    executor: Arc<dyn StepExecutor>,
    events: mpsc::UnboundedSender<RunEvent>,
    cancel: CancellationToken,
    state: Vec<State>,
    outputs: Vec<Option<Value>>,
    inputs: Vec<Option<Map<String, Value>>>,
    totals: Vec<Totals>,
    delivered: Vec<Vec<Value>>,
    completion_order: Vec<usize>,
    actions: Vec<ActionRecord>,
    errors: Vec<ErrorRecord>,
    skipped: Vec<usize>,
    failed: Vec<usize>,
    parallel_executions: u64,
    compensation: Vec<Value>,
    /// Each node's retry policy, resolved once.
    policies: Vec<Arc<RetryPolicy>>,
    /// Identity strings, formatted once.
    ids: RunIds,
}

struct RunIds {
    run_id: String,
    correlation_id: String,
    tenant: String,
}

enum Stop {
    Failed,
    Cancelled,
    TimedOut,
}

impl Run {
    fn new(
        wf: Arc<Workflow>,
        config: RunConfig,
        opts: RunOptions,
        executor: Arc<dyn StepExecutor>,
        events: mpsc::UnboundedSender<RunEvent>,
        cancel: CancellationToken,
    ) -> Self {
        let n = wf.nodes.len();
        let default_policy = Arc::new(config.environment.retry_policy(wf.rules.max_retries));
        let policies =
            wf.nodes.iter().map(|nd| nd.retry.clone().map_or_else(|| default_policy.clone(), Arc::new)).collect();
        let ids = RunIds {
            run_id: config.workflow_id.to_string(),
            correlation_id: config.correlation_id.to_string(),
            tenant: config.metadata.get("tenant").and_then(Value::as_str).unwrap_or_default().to_string(),
        };
        Self {
            policies,
            ids,
            wf,
            config,
            opts,
            executor,
            events,
            cancel,
            state: vec![State::Pending; n],
            outputs: vec![None; n],
            inputs: vec![None; n],
            totals: vec![Totals::default(); n],
            delivered: vec![Vec::new(); n],
            completion_order: Vec::new(),
            actions: Vec::new(),
            errors: Vec::new(),
            skipped: Vec::new(),
            failed: Vec::new(),
            parallel_executions: 0,
            compensation: Vec::new(),
        }
    }

    fn emit(&self, e: RunEvent) {
        if !self.events.is_closed() {
            let _ = self.events.send(e);
        }
    }

    fn run_json(&self) -> Value {
        json!({
            "run_id": self.ids.run_id,
            "workflow_id": self.ids.run_id,
            "correlation_id": self.ids.correlation_id,
            "workflow_type": self.config.workflow_type,
            "workflow": self.wf.name,
        })
    }

    fn scope(&self, i: usize) -> Scope {
        let mut steps = Map::new();
        for (j, out) in self.outputs.iter().enumerate() {
            if let Some(o) = out {
                steps.insert(self.wf.nodes[j].id.clone(), o.clone());
            }
        }
        Scope {
            context: Value::Object(self.config.context.clone()),
            steps,
            actions: self.delivered[i].clone(),
            run: self.run_json(),
            metadata: Value::Object(self.config.metadata.clone()),
        }
    }

    /// The input object of node `i`, or why it could not be computed.
    fn input_for(&self, i: usize, scope: &Scope) -> Result<Map<String, Value>, String> {
        let node = &self.wf.nodes[i];
        let mut input = match &node.input {
            InputMapping::Default => {
                let deps = &self.wf.dependencies[i];
                match deps.as_slice() {
                    [] => self.config.context.clone(),
                    [only] => match self.outputs[*only].clone() {
                        Some(Value::Object(m)) => m,
                        Some(other) => Map::from_iter([("value".to_string(), other)]),
                        None => Map::new(),
                    },
                    many => many
                        .iter()
                        .map(|&d| (self.wf.nodes[d].id.clone(), self.outputs[d].clone().unwrap_or(Value::Null)))
                        .collect(),
                }
            }
            InputMapping::Whole(e) => match e.eval(scope).map_err(|m| format!("`input`: {m}"))? {
                Value::Object(m) => m,
                other => return Err(format!("`input` gave {other}, not an object")),
            },
            InputMapping::Fields(fields) => {
                let mut m = Map::new();
                for (k, e) in fields {
                    m.insert(k.clone(), e.eval(scope).map_err(|msg| format!("`input.{k}`: {msg}"))?);
                }
                m
            }
        };
        // With the default mapping, delivered actions arrive under `actions`;
        // an explicit mapping reads them from the `actions` variable itself.
        if matches!(node.input, InputMapping::Default)
            && !self.delivered[i].is_empty()
            && !input.contains_key("actions")
        {
            input.insert("actions".into(), Value::Array(self.delivered[i].clone()));
        }
        Ok(input)
    }

    fn policy(&self, i: usize) -> Arc<RetryPolicy> {
        self.policies[i].clone()
    }

    fn limits(&self, node: &NodeSpec) -> Limits {
        let mut l = self.opts.limits.clone();
        l.timeout = Duration::from_millis(node.timeout_ms);
        if let Some(f) = node.fuel {
            l.fuel = f;
        }
        if let Some(m) = node.memory_mb {
            l.memory_bytes = m << 20;
        }
        l
    }

    fn ctx(&self, node: &NodeSpec, attempt: u32) -> StepContext {
        StepContext {
            idempotency_key: format!("{}/{}", self.ids.run_id, node.id),
            run_id: self.ids.run_id.clone(),
            workflow: self.wf.name.clone(),
            step_id: node.id.clone(),
            attempt,
            correlation_id: self.ids.correlation_id.clone(),
            tenant: self.ids.tenant.clone(),
        }
    }

    /// Why node `i` must be skipped, if it must.
    fn skip_reason(&self, i: usize, scope: &Scope) -> Result<Option<String>, String> {
        let node = &self.wf.nodes[i];
        for &d in &self.wf.dependencies[i] {
            match self.state[d] {
                State::Failed => return Ok(Some(format!("dependency `{}` failed", self.wf.nodes[d].id))),
                State::Skipped if !node.run_if_dependency_skipped => {
                    return Ok(Some(format!("dependency `{}` was skipped", self.wf.nodes[d].id)));
                }
                _ => {}
            }
        }
        if node.requires_action && self.delivered[i].is_empty() {
            return Ok(Some("no action targeted this node (requires_action)".into()));
        }
        if let Some(w) = &node.when
            && !w.eval_bool(scope).map_err(|m| format!("`when`: {m}"))?
        {
            return Ok(Some(format!("`when` is false: {}", w.source())));
        }
        Ok(None)
    }

    /// Runs one step to its end: attempts, retries, backoff.
    fn step_task(
        &self,
        i: usize,
        input: Map<String, Value>,
        rounds: u32,
    ) -> impl Future<Output = StepResult> + Send + 'static {
        let wf = self.wf.clone();
        let node = &wf.nodes[i];
        let policy = self.policy(i);
        let limits = self.limits(node);
        let executor = self.executor.clone();
        let events = self.events.clone();
        let max_attempts = policy.max_attempts.saturating_mul(rounds.max(1));
        let first_ctx = self.ctx(node, 1);
        let jitter_seed = self.opts.jitter_seed;
        async move {
            let node = &wf.nodes[i];
            let mut rng: Option<rand::rngs::StdRng> = None;
            let mut attempts = Vec::new();
            for attempt in 1..=max_attempts {
                if !events.is_closed() {
                    let _ = events.send(RunEvent::AttemptStarted { step_id: node.id.clone(), attempt });
                }
                let ctx = StepContext { attempt, ..first_ctx.clone() };
                let call = StepCall { ctx, input: input.clone(), kind: CallKind::Run };
                let report = executor.execute(node, call, limits.clone()).await;
                let retry = match report.failure() {
                    None => false,
                    Some(f) => {
                        attempt < max_attempts && f.is_retryable() && policy.retry_on.iter().any(|k| k == f.kind())
                    }
                };
                if !retry {
                    attempts.push(report);
                    break;
                }
                // The n-th retry within a round waits the n-th delay.
                let n = (attempt - 1) % policy.max_attempts.max(1) + 1;
                let base = policy.base_delay_ms(n);
                let spread: f64 = if policy.jitter > 0.0 {
                    let rng = rng.get_or_insert_with(|| match jitter_seed {
                        Some(seed) => rand::rngs::StdRng::seed_from_u64(seed ^ fnv(&node.id)),
                        None => rand::rngs::StdRng::from_rng(&mut rand::rng()),
                    });
                    rng.random::<f64>() * policy.jitter
                } else {
                    0.0
                };
                let delay = ((base as f64) * (1.0 - spread)) as u64;
                let kind = report.failure().map(StepFailure::kind).unwrap_or_default().to_string();
                let _ = events.send(RunEvent::Retrying {
                    step_id: node.id.clone(),
                    attempt,
                    error_type: kind,
                    delay_ms: delay,
                });
                attempts.push(report);
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            StepResult { index: i, attempts }
        }
    }

    async fn drive(mut self) -> RunOutput {
        let started = Instant::now();
        let start_time = now_rfc3339();
        self.emit(RunEvent::RunStarted { run_id: self.config.workflow_id.to_string(), workflow: self.wf.name.clone() });
        let n = self.wf.nodes.len();
        // Topological position of each node, to order the ready queue.
        let mut topo_pos = vec![0usize; n];
        for (pos, &i) in self.wf.topo_order.iter().enumerate() {
            topo_pos[i] = pos;
        }
        let mut waiting: Vec<usize> = self.wf.dependencies.iter().map(Vec::len).collect();
        let mut ready: BinaryHeap<std::cmp::Reverse<(usize, usize)>> =
            (0..n).filter(|&i| waiting[i] == 0).map(|i| std::cmp::Reverse((topo_pos[i], i))).collect();
        let mut running = 0usize;
        let limit = self.config.max_parallel_steps.max(1) as usize;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.config.global_timeout_ms);
        let mut tasks = if self.config.max_parallel_steps <= 1 {
            InFlight::Inline(None)
        } else {
            InFlight::Spawned(JoinSet::new())
        };
        // Both are created once: a fresh timer per loop turn costs as much as a step.
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        let cancelled = self.cancel.clone().cancelled_owned();
        tokio::pin!(cancelled);
        let rounds = if self.config.failure_strategy == FailureStrategy::Retry {
            1 + self.wf.rules.max_retries.unwrap_or(1)
        } else {
            1
        };
        let mut stop: Option<Stop> = None;

        'outer: loop {
            let mut launched = 0;
            while running < limit && stop.is_none() {
                let Some(std::cmp::Reverse((_, i))) = ready.pop() else { break };
                // Expressions need the scope; nodes without any skip building it.
                let node = &self.wf.nodes[i];
                let needs_scope = node.when.is_some() || !matches!(node.input, InputMapping::Default);
                let scope = if needs_scope { self.scope(i) } else { Scope::default() };
                let decision = self.skip_reason(i, &scope).and_then(|skip| match skip {
                    Some(reason) => Ok(Err(reason)),
                    None => self.input_for(i, &scope).map(Ok),
                });
                let finished_now = match decision {
                    Ok(Ok(input)) => {
                        self.state[i] = State::Running;
                        let task = self.step_task(i, input.clone(), rounds);
                        self.inputs[i] = Some(input);
                        tasks.push(task);
                        running += 1;
                        launched += 1;
                        false
                    }
                    Ok(Err(reason)) => {
                        self.state[i] = State::Skipped;
                        self.skipped.push(i);
                        self.emit(RunEvent::StepSkipped { step_id: self.wf.nodes[i].id.clone(), reason });
                        true
                    }
                    Err(message) => {
                        if self.fail_step(i, "expression", message) {
                            stop = Some(Stop::Failed);
                        }
                        true
                    }
                };
                if finished_now {
                    let wf = self.wf.clone();
                    for &d in &wf.dependents[i] {
                        waiting[d] -= 1;
                        if waiting[d] == 0 {
                            ready.push(std::cmp::Reverse((topo_pos[d], d)));
                        }
                    }
                }
            }
            if launched > 0 && self.config.execution_mode == crate::workflow::ExecutionMode::Parallel {
                self.parallel_executions += 1;
            }
            if running == 0 && (ready.is_empty() || stop.is_some()) {
                break;
            }
            if running == 0 {
                continue;
            }
            tokio::select! {
                biased;
                _ = &mut cancelled, if stop.is_none() => { stop = Some(Stop::Cancelled); }
                _ = &mut sleep, if stop.is_none() => { stop = Some(Stop::TimedOut); }
                joined = tasks.next() => {
                    let Some(first) = joined else { break 'outer };
                    // Take every step that has finished, not just the first.
                    let mut batch = vec![first];
                    while let Some(more) = tasks.try_next() {
                        batch.push(more);
                    }
                    for joined in batch {
                        running -= 1;
                        match joined {
                            Ok(result) => {
                                let i = result.index;
                                if self.finish_step(result) {
                                    stop = Some(Stop::Failed);
                                }
                                let wf = self.wf.clone();
                                for &d in &wf.dependents[i] {
                                    waiting[d] -= 1;
                                    if waiting[d] == 0 {
                                        ready.push(std::cmp::Reverse((topo_pos[d], d)));
                                    }
                                }
                            }
                            Err(e) => {
                                self.errors.push(ErrorRecord {
                                    step_id: "workflow".into(),
                                    error_type: "internal".into(),
                                    message: format!("a step task ended abnormally: {e}"),
                                });
                                stop = Some(Stop::Failed);
                            }
                        }
                    }
                }
            }
            if stop.is_some() {
                break;
            }
        }

        // Interrupt whatever is still running.
        let interrupted: Vec<usize> = (0..n).filter(|&i| self.state[i] == State::Running).collect();
        tasks.abort().await;
        let status = match stop {
            Some(Stop::Cancelled) => {
                for &i in &interrupted {
                    self.state[i] = State::Failed;
                    self.failed.push(i);
                    self.errors.push(ErrorRecord {
                        step_id: self.wf.nodes[i].id.clone(),
                        error_type: "cancelled".into(),
                        message: "interrupted: the run was cancelled".into(),
                    });
                }
                self.errors.push(ErrorRecord {
                    step_id: "workflow".into(),
                    error_type: "cancelled".into(),
                    message: "the run was cancelled".into(),
                });
                ExecutionStatus::Cancelled
            }
            Some(Stop::TimedOut) => {
                for &i in &interrupted {
                    self.state[i] = State::Failed;
                    self.failed.push(i);
                }
                self.errors.push(ErrorRecord {
                    step_id: "workflow".into(),
                    error_type: "timeout".into(),
                    message: format!("Workflow exceeded {}ms timeout", self.config.global_timeout_ms),
                });
                ExecutionStatus::Failed
            }
            Some(Stop::Failed) => {
                for &i in &interrupted {
                    self.state[i] = State::Skipped;
                    self.skipped.push(i);
                    self.emit(RunEvent::StepSkipped {
                        step_id: self.wf.nodes[i].id.clone(),
                        reason: "interrupted: another step failed and the strategy stops the run".into(),
                    });
                }
                ExecutionStatus::Failed
            }
            None if self.failed.is_empty() => ExecutionStatus::Completed,
            None => ExecutionStatus::Failed,
        };
        // Steps never reached are skipped.
        for i in 0..n {
            if self.state[i] == State::Pending {
                self.state[i] = State::Skipped;
                self.skipped.push(i);
                let reason = match status {
                    ExecutionStatus::Cancelled => "the run was cancelled",
                    _ => "the run stopped before this step",
                };
                self.emit(RunEvent::StepSkipped { step_id: self.wf.nodes[i].id.clone(), reason: reason.into() });
            }
        }
        if self.config.failure_strategy == FailureStrategy::Compensate && status != ExecutionStatus::Completed {
            self.compensate().await;
        }
        self.emit(RunEvent::RunFinished { status });
        self.output(status, started, start_time)
    }

    /// Records a step's final result. Returns true when the run must stop.
    fn finish_step(&mut self, result: StepResult) -> bool {
        let i = result.index;
        let wf = self.wf.clone();
        let node = &wf.nodes[i];
        let t = &mut self.totals[i];
        for a in &result.attempts {
            t.fuel += a.stats.fuel_consumed;
            t.wall_us += a.stats.wall_time_us;
            t.peak = t.peak.max(a.stats.peak_memory_bytes);
            t.attempts += 1;
        }
        let attempts = t.attempts;
        match result.last().map(|r| &r.outcome) {
            Some(Ok(success)) => {
                self.state[i] = State::Completed;
                self.completion_order.push(i);
                self.outputs[i] = Some(success.output.clone());
                for a in &success.actions {
                    let record = ActionRecord {
                        action_id: uuid::Uuid::new_v4().to_string(),
                        action_type: serde_json::to_value(a.action_type)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_default(),
                        target_node: a.target_node.clone(),
                        payload: a.payload.clone(),
                    };
                    if let Some(&t) = self.wf.index.get(&a.target_node) {
                        self.delivered[t].push(json!({
                            "action_id": record.action_id,
                            "action_type": record.action_type,
                            "source_node": node.id,
                            "payload": record.payload,
                        }));
                    }
                    self.actions.push(record);
                }
                self.emit(RunEvent::StepCompleted { step_id: node.id.clone(), attempts });
                false
            }
            Some(Err(f)) => {
                let f = f.clone();
                self.fail_step(i, f.kind(), f.to_string())
            }
            None => self.fail_step(i, "internal", "the step made no attempt".into()),
        }
    }

    /// Marks a step failed (or tolerated). Returns true when the run must stop.
    fn fail_step(&mut self, i: usize, error_type: &str, message: String) -> bool {
        let node = &self.wf.nodes[i];
        let tolerated = node.continue_on_error;
        self.errors.push(ErrorRecord {
            step_id: node.id.clone(),
            error_type: error_type.into(),
            message: message.clone(),
        });
        self.emit(RunEvent::StepFailed { step_id: node.id.clone(), error_type: error_type.into(), message, tolerated });
        if tolerated {
            self.state[i] = State::Tolerated;
            return false;
        }
        self.state[i] = State::Failed;
        self.failed.push(i);
        !matches!(self.config.failure_strategy, FailureStrategy::ContinueOnError)
    }

    /// Undoes completed effect steps in reverse completion order.
    async fn compensate(&mut self) {
        let order: Vec<usize> = self.completion_order.iter().rev().copied().collect();
        for i in order {
            let node = self.wf.nodes[i].clone();
            if !node.node_type.is_effect() || !node.compensate {
                continue;
            }
            self.emit(RunEvent::Compensating { step_id: node.id.clone() });
            let policy = self.policy(i);
            let limits = self.limits(&node);
            let input = self.inputs[i].clone().unwrap_or_default();
            let output = self.outputs[i].clone().unwrap_or(Value::Null);
            let mut attempts = 0;
            let mut last_error = None;
            for attempt in 1..=policy.max_attempts.max(1) {
                attempts = attempt;
                let call = StepCall {
                    ctx: self.ctx(&node, attempt),
                    input: input.clone(),
                    kind: CallKind::Compensate { output: output.clone() },
                };
                let report = self.executor.execute(&node, call, limits.clone()).await;
                match report.failure() {
                    None => {
                        last_error = None;
                        break;
                    }
                    Some(f) => {
                        let retry = attempt < policy.max_attempts && f.is_retryable();
                        last_error = Some(f.clone());
                        if !retry {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(policy.base_delay_ms(attempt))).await;
                    }
                }
            }
            let ok = last_error.is_none();
            if let Some(f) = &last_error {
                self.errors.push(ErrorRecord {
                    step_id: node.id.clone(),
                    error_type: "compensation_failed".into(),
                    message: f.to_string(),
                });
            }
            self.compensation.push(json!({
                "step_id": node.id,
                "status": if ok { "compensated" } else { "failed" },
                "attempts": attempts,
                "error": last_error.map(|f| f.to_string()),
            }));
            self.emit(RunEvent::Compensated { step_id: node.id.clone(), ok });
        }
    }

    fn output(&self, status: ExecutionStatus, started: Instant, start_time: String) -> RunOutput {
        let ids = |v: &[usize]| -> Vec<String> { v.iter().map(|&i| self.wf.nodes[i].id.clone()).collect() };
        let mut step_outputs = Map::new();
        for &i in &self.completion_order {
            let out = match self.outputs[i].clone() {
                Some(Value::Object(m)) => Value::Object(m),
                Some(other) => json!({ "value": other }),
                None => json!({}),
            };
            step_outputs.insert(self.wf.nodes[i].id.clone(), out);
        }
        let sinks: Vec<usize> =
            self.completion_order.iter().copied().filter(|&i| self.wf.dependents[i].is_empty()).collect();
        let final_result = match sinks.as_slice() {
            [] => None,
            [one] => self.outputs[*one].clone(),
            many => Some(Value::Object(
                many.iter()
                    .map(|&i| (self.wf.nodes[i].id.clone(), self.outputs[i].clone().unwrap_or(Value::Null)))
                    .collect(),
            )),
        };
        let mut output_variables = Map::new();
        output_variables.insert("run".into(), self.run_json());
        output_variables.insert("failure_strategy".into(), json!(self.config.failure_strategy));
        output_variables.insert("execution_mode".into(), json!(self.config.execution_mode));
        if !self.compensation.is_empty() {
            output_variables.insert("compensation".into(), Value::Array(self.compensation.clone()));
        }
        let completed = self.completion_order.len();
        let mut metrics = BTreeMap::new();
        let total_wall_us: u64 = self.totals.iter().map(|t| t.wall_us).sum();
        let ran = self.totals.iter().filter(|t| t.attempts > 0).count();
        metrics.insert("completed_count".into(), completed as f64);
        metrics.insert("failed_count".into(), self.failed.len() as f64);
        metrics.insert("skipped_count".into(), self.skipped.len() as f64);
        metrics.insert("actions_count".into(), self.actions.len() as f64);
        metrics.insert("attempts_count".into(), self.totals.iter().map(|t| t.attempts as f64).sum());
        metrics
            .insert("avg_step_time_ms".into(), if ran == 0 { 0.0 } else { total_wall_us as f64 / 1000.0 / ran as f64 });
        metrics.insert("total_fuel_consumed".into(), self.totals.iter().map(|t| t.fuel as f64).sum());
        // Built as a list and collected once: inserting 4 keys per step one by
        // one into a large map costs more than the step itself.
        let mut per_step = Vec::with_capacity(self.totals.len() * 4);
        for (i, t) in self.totals.iter().enumerate() {
            if t.attempts == 0 {
                continue;
            }
            let id = &self.wf.nodes[i].id;
            per_step.push((format!("step.{id}.attempts"), t.attempts as f64));
            per_step.push((format!("step.{id}.fuel_consumed"), t.fuel as f64));
            per_step.push((format!("step.{id}.wall_time_ms"), t.wall_us as f64 / 1000.0));
            per_step.push((format!("step.{id}.peak_memory_bytes"), t.peak as f64));
        }
        let mut all: BTreeMap<String, f64> = per_step.into_iter().collect();
        all.append(&mut metrics);
        let metrics = all;
        RunOutput {
            execution_status: status,
            execution_time_ms: started.elapsed().as_millis() as u64,
            start_time,
            end_time: now_rfc3339(),
            completed_steps: ids(&self.completion_order),
            failed_steps: ids(&self.failed),
            skipped_steps: ids(&self.skipped),
            step_outputs,
            final_result,
            output_variables,
            actions_emitted: self.actions.clone(),
            errors: self.errors.clone(),
            metrics,
            parallel_executions: self.parallel_executions,
        }
    }
}

/// FNV-1a of a string (to derive per-step jitter seeds).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}
