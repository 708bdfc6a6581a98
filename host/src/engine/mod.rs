//! The orchestrator: runs a [`Workflow`] as a DAG of sandboxed steps.
//!
//! [`Engine::start`] schedules the graph in the run's mode, executes each
//! attempt through a [`StepExecutor`] (the sandbox, in production), applies
//! retry policies and the failure strategy, delivers actions, enforces the
//! global timeout, honours cancellation, compensates where asked, and ends
//! with the seed's output contract.

pub mod breaker;
mod input;
mod output;

pub use breaker::{BreakerPolicy, Gate};

pub use input::{Environment, RunConfig, RunInput};
pub use output::{ActionRecord, ErrorRecord, ExecutionStatus, RunOutput, UndeliveredAction};

use crate::sandbox::{
    AttemptReport, CallKind, Limits, LoadedComponent, Sandbox, StepCall, StepContext, StepFailure, StepWorld,
};
use crate::store::{
    JournalEntry, MemoryStore, NewRun, PinnedComponent, RunRecord, RunStore, StoreError, now_ms, now_rfc3339,
    owner_is_dead, process_owner,
};
use crate::workflow::expr::{Bound, Uses, bind_with};
use crate::workflow::{ComponentCheck, FailureStrategy, InputMapping, NodeSpec, NodeType, RetryPolicy, Workflow};
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
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
    /// Per node id, the component it runs and its digest (pinned by durable
    /// runs). Call after [`StepExecutor::prepare`]. None by default.
    fn pins(&self, _wf: &Workflow) -> BTreeMap<String, PinnedComponent> {
        BTreeMap::new()
    }
    /// Whether the component at `path` can run as `node_type` (used when a
    /// journaled workflow is loaded again). Accepts everything by default.
    fn check_component(&self, _path: &Path, _node_type: NodeType) -> Result<(), String> {
        Ok(())
    }
}

/// Lets workflow validation ask a [`StepExecutor`] about components.
struct CheckWith<'a>(&'a dyn StepExecutor);

impl ComponentCheck for CheckWith<'_> {
    fn check(&self, path: &Path, node_type: NodeType) -> Result<(), String> {
        self.0.check_component(path, node_type)
    }
}

/// Runs steps in a [`Sandbox`]. A component file is read again when it
/// changes on disk (checked when a run starts or a workflow is validated), so
/// a long-lived engine picks up a new version for its next runs.
pub struct SandboxExecutor {
    sandbox: Arc<Sandbox>,
    /// Per file, what it held for each world (compute, effect).
    components: Mutex<HashMap<PathBuf, [Option<KnownFile>; 2]>>,
}

/// What a component file held when it was last read (for one world).
#[derive(Clone)]
struct KnownFile {
    stamp: Option<FileStamp>,
    digest: String,
    /// Weak: the sandbox decides how long a component stays in memory.
    component: std::sync::Weak<LoadedComponent>,
}

/// Size, modification time, inode and device: a file replaced or rewritten
/// differs in at least one.
type FileStamp = (u64, Option<std::time::SystemTime>, u64, u64);

fn world_slot(world: StepWorld) -> usize {
    match world {
        StepWorld::Compute => 0,
        StepWorld::Effect => 1,
    }
}

fn file_stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok(), m.ino(), m.dev()))
}

impl SandboxExecutor {
    /// An executor on `sandbox`.
    pub fn new(sandbox: Arc<Sandbox>) -> Self {
        Self { sandbox, components: Mutex::new(HashMap::new()) }
    }

    fn world(t: NodeType) -> StepWorld {
        if t.is_effect() { StepWorld::Effect } else { StepWorld::Compute }
    }

    /// The component at `path`, read again if the file changed since.
    fn load(&self, path: &Path, t: NodeType) -> Result<Arc<LoadedComponent>, String> {
        let world = Self::world(t);
        // Taken before reading: a change while reading shows up next time.
        let stamp = file_stamp(path);
        let slot = world_slot(world);
        let known =
            self.components.lock().unwrap_or_else(PoisonError::into_inner).get(path).and_then(|w| w[slot].clone());
        if let Some(k) = known
            && stamp.is_some()
            && k.stamp == stamp
            && let Some(c) = self.sandbox.loaded(&k.digest, world)
        {
            return Ok(c);
        }
        let c = self.sandbox.load_file(path, Some(world)).map_err(|e| e.to_string())?;
        let known = KnownFile { stamp, digest: c.digest.clone(), component: Arc::downgrade(&c) };
        self.components.lock().unwrap_or_else(PoisonError::into_inner).entry(path.to_path_buf()).or_default()[slot] =
            Some(known);
        Ok(c)
    }

    /// The component an attempt runs: the version last read (no file check
    /// per attempt), or the file read again if the sandbox dropped it from memory.
    fn for_attempt(&self, path: &Path, t: NodeType) -> Result<Arc<LoadedComponent>, String> {
        let cached = {
            let known = self.components.lock().unwrap_or_else(PoisonError::into_inner);
            known.get(path).and_then(|w| w[world_slot(Self::world(t))].as_ref()).and_then(|k| k.component.upgrade())
        };
        match cached {
            Some(c) => Ok(c),
            None => self.load(path, t),
        }
    }
}

impl ComponentCheck for SandboxExecutor {
    fn check(&self, path: &Path, node_type: NodeType) -> Result<(), String> {
        self.load(path, node_type).map(|_| ())
    }
}

impl StepExecutor for SandboxExecutor {
    fn prepare(&self, wf: &Workflow) -> Result<(), Vec<String>> {
        // Each file is checked once, however many nodes use it.
        let mut seen: HashMap<(&Path, bool), Option<String>> = HashMap::new();
        let problems: Vec<String> = wf
            .nodes
            .iter()
            .filter_map(|n| {
                seen.entry((n.component.as_path(), n.node_type.is_effect()))
                    .or_insert_with(|| self.load(&n.component, n.node_type).err())
                    .as_ref()
                    .map(|e| format!("node `{}`: {e}", n.id))
            })
            .collect();
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    fn pins(&self, wf: &Workflow) -> BTreeMap<String, PinnedComponent> {
        let known = self.components.lock().unwrap_or_else(PoisonError::into_inner);
        wf.nodes
            .iter()
            .filter_map(|n| {
                let k = known.get(&n.component)?[world_slot(Self::world(n.node_type))].as_ref()?;
                Some((
                    n.id.clone(),
                    PinnedComponent { path: n.component.display().to_string(), digest: k.digest.clone() },
                ))
            })
            .collect()
    }

    fn check_component(&self, path: &Path, node_type: NodeType) -> Result<(), String> {
        self.load(path, node_type).map(|_| ())
    }

    fn execute(&self, node: &NodeSpec, call: StepCall, limits: Limits) -> AttemptFuture {
        let sandbox = self.sandbox.clone();
        let component = self.for_attempt(&node.component, node.node_type);
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
    /// An action named a node that does not depend on its emitter, so it was
    /// not delivered (see [`UndeliveredAction::reason`]).
    ActionNotDelivered {
        /// The action.
        action: UndeliveredAction,
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

/// The part of [`RunOptions`] journaled with a run (limits come from the
/// resuming process).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct StoredOptions {
    environment: Environment,
    jitter_seed: Option<u64>,
}

/// How to resume a run.
#[derive(Debug, Clone, Default)]
pub struct ResumeOptions {
    /// Run with components whose digest changed since the run started,
    /// instead of refusing.
    pub upgrade: bool,
    /// Default per-attempt limits.
    pub limits: Limits,
    /// Start with the run already cancelled (to stop an orphaned run:
    /// compensation runs if its strategy says so).
    pub cancelled: bool,
}

/// Why a run could not start or resume.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The run input breaks the input contract.
    #[error("the run input is invalid:\n  - {}", .0.join("\n  - "))]
    Input(Vec<String>),
    /// A component could not be loaded.
    #[error("the workflow's components cannot be loaded:\n  - {}", .0.join("\n  - "))]
    Components(Vec<String>),
    /// A component changed since the run started.
    #[error(
        "components changed since the run started (a run pins the digest of every component it uses):\n  - {}\n\
         Resume with --upgrade to run the remaining steps on the new components.",
        .0.join("\n  - ")
    )]
    ComponentChanged(Vec<String>),
    /// The journaled workflow no longer loads.
    #[error("the run's journaled workflow does not load any more:\n{0}")]
    Workflow(String),
    /// The run has already finished.
    #[error("run `{run_id}` has already finished with status `{}`; nothing to resume", .status.as_str())]
    Finished {
        /// The run.
        run_id: String,
        /// How it ended.
        status: ExecutionStatus,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// How long a process's lease on a run lasts without a heartbeat.
pub const DEFAULT_LEASE_MS: u64 = 10_000;
/// How often a driving process renews its lease and looks for a cancel request.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(200);

/// The orchestrator.
pub struct Engine {
    executor: Arc<dyn StepExecutor>,
    store: Arc<dyn RunStore>,
    owner: String,
    lease_ms: u64,
}

impl Engine {
    /// An engine that runs steps with `executor`, journaling to an in-memory store.
    pub fn new(executor: Arc<dyn StepExecutor>) -> Self {
        Self { executor, store: Arc::new(MemoryStore::new()), owner: process_owner(), lease_ms: DEFAULT_LEASE_MS }
    }

    /// The same engine journaling to `store` (runs become resumable from it).
    pub fn with_store(mut self, store: Arc<dyn RunStore>) -> Self {
        self.store = store;
        self
    }

    /// The run store.
    pub fn store(&self) -> &Arc<dyn RunStore> {
        &self.store
    }

    /// Validates the input, loads the components, records the run in the
    /// store and starts it on the current tokio runtime.
    pub async fn start(&self, wf: Arc<Workflow>, input: &RunInput, opts: RunOptions) -> Result<RunHandle, StartError> {
        let config = input.resolve(&wf, opts.environment).map_err(StartError::Input)?;
        self.executor.prepare(&wf).map_err(StartError::Components)?;
        // The journaled input carries the resolved ids so that a resume
        // continues the same run.
        let mut stored_input = input.clone();
        stored_input.workflow_id = Some(config.workflow_id);
        stored_input.correlation_id = Some(config.correlation_id);
        let new = NewRun {
            run_id: config.workflow_id.to_string(),
            workflow: wf.name.clone(),
            workflow_path: wf.source.as_ref().map(|p| p.display().to_string()),
            definition: wf.definition.to_string(),
            // Absolute, so that a resume from another directory finds the components.
            base_dir: std::fs::canonicalize(&wf.base_dir).unwrap_or_else(|_| wf.base_dir.clone()).display().to_string(),
            input: serde_json::to_value(&stored_input).unwrap_or(Value::Null),
            options: serde_json::to_value(StoredOptions {
                environment: opts.environment,
                jitter_seed: opts.jitter_seed,
            })
            .unwrap_or(Value::Null),
            components: self.executor.pins(&wf),
            replay_of: None,
            owner: self.owner.clone(),
            lease_ms: self.lease_ms,
        };
        self.store.create_run(&new, &[]).await?;
        let mut run = Run::new(wf, config, opts, self.clone_parts());
        run.started_ms = now_ms();
        run.start_time = now_rfc3339();
        Ok(self.spawn(run))
    }

    /// Starts a run and waits for its output, dropping the events.
    pub async fn run(&self, wf: Arc<Workflow>, input: &RunInput, opts: RunOptions) -> Result<RunOutput, StartError> {
        let mut handle = self.start(wf, input, opts).await?;
        handle.events.close();
        Ok(handle.wait().await)
    }

    /// Continues an interrupted run from its journal: completed steps keep
    /// their journaled outputs and are not run again; a step that was in
    /// flight runs again with the next attempt number and the same
    /// idempotency key.
    pub async fn resume(&self, run_id: &str, opts: ResumeOptions) -> Result<RunHandle, StartError> {
        let record = self.store.get_run(run_id).await?;
        if record.status != ExecutionStatus::Running {
            return Err(StartError::Finished { run_id: run_id.into(), status: record.status });
        }
        if active_runs().contains(run_id) {
            return Err(StartError::Store(StoreError::Owned {
                run_id: run_id.into(),
                owner: format!("{} (this process)", self.owner),
                remaining_ms: self.lease_ms,
            }));
        }
        let steal = owner_is_dead(&record.run.owner).then_some(record.run.owner.as_str());
        self.store.claim(run_id, &self.owner, self.lease_ms, now_ms(), steal).await?;
        let run = self.rebuild(&record, opts).await?;
        self.store.append(run_id, &self.owner, vec![JournalEntry::RunResumed { owner: self.owner.clone() }]).await?;
        Ok(self.spawn(run))
    }

    /// Every run of the store that is `running` and not owned by a live
    /// process, resumed. Returns the handles and, per run that could not be
    /// resumed, why.
    pub async fn resume_all(
        &self,
        opts: ResumeOptions,
    ) -> Result<(Vec<RunHandle>, Vec<(String, StartError)>), StoreError> {
        let runs = self
            .store
            .list_runs(&crate::store::RunFilter { status: Some(ExecutionStatus::Running), ..Default::default() })
            .await?;
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        for r in runs.into_iter().rev() {
            match self.resume(&r.run_id, opts.clone()).await {
                Ok(h) => ok.push(h),
                // Driven by a live process, or finished meanwhile: not interrupted.
                Err(StartError::Store(StoreError::Owned { .. }) | StartError::Finished { .. }) => {}
                Err(e) => failed.push((r.run_id, e)),
            }
        }
        Ok((ok, failed))
    }

    /// Re-runs a run from the dead-letter queue as a new run: its completed
    /// steps keep their journaled outputs, and the steps that failed run
    /// again with their journaled inputs.
    pub async fn replay(&self, run_id: &str, opts: ResumeOptions) -> Result<RunHandle, StartError> {
        let record = self.store.get_run(run_id).await?;
        let journal = self.store.journal(run_id).await?;
        // Refuse before anything is written (changed components, a workflow
        // that no longer loads): a refused replay leaves no new run behind.
        self.rebuild(&record, opts.clone()).await?;
        let mut completed = std::collections::HashSet::new();
        let mut failed = std::collections::HashSet::new();
        let mut kept_final = std::collections::HashSet::new();
        for j in &journal {
            match &j.entry {
                JournalEntry::StepCompleted { step_id, .. } => {
                    completed.insert(step_id.clone());
                }
                JournalEntry::StepFailed { step_id, tolerated: false, .. } => {
                    failed.insert(step_id.clone());
                }
                // Decisions that stand: tolerated failures and skips by `when`.
                JournalEntry::StepFailed { step_id, tolerated: true, .. } => {
                    kept_final.insert(step_id.clone());
                }
                JournalEntry::StepSkipped { step_id, reason } if reason.starts_with("`when` is false") => {
                    kept_final.insert(step_id.clone());
                }
                // An undone effect is not done: it runs again.
                JournalEntry::CompensationFinished { step_id, ok: true, .. } => {
                    completed.remove(step_id);
                }
                _ => {}
            }
        }
        let mut first = Vec::new();
        for j in journal {
            let keep = match &j.entry {
                JournalEntry::StepScheduled { step_id, .. } => completed.contains(step_id) || failed.contains(step_id),
                JournalEntry::AttemptStarted { step_id, .. }
                | JournalEntry::AttemptFinished { step_id, .. }
                | JournalEntry::StepCompleted { step_id, .. } => completed.contains(step_id),
                JournalEntry::StepFailed { step_id, tolerated: true, .. }
                | JournalEntry::StepSkipped { step_id, .. } => kept_final.contains(step_id),
                _ => false,
            };
            if keep {
                first.push(j.entry);
            }
        }
        let new_id = uuid::Uuid::new_v4();
        let mut new = record.run.clone();
        new.run_id = new_id.to_string();
        new.replay_of = Some(run_id.to_string());
        new.owner = self.owner.clone();
        new.lease_ms = self.lease_ms;
        if let Some(obj) = new.input.as_object_mut() {
            obj.insert("workflow_id".into(), Value::String(new.run_id.clone()));
        }
        self.store.create_run(&new, &first).await?;
        let record = self.store.get_run(&new.run_id).await?;
        let run = self.rebuild(&record, opts).await?;
        // Marked only once the replay is durable and about to run.
        if let Err(e) = self.store.dlq_mark_replayed(run_id, &new.run_id).await {
            tracing::warn!(run_id, error = %e, "the dead-letter entry could not be marked as replayed");
        }
        Ok(self.spawn(run))
    }

    /// Loads a stored run's workflow, checks its pins and folds its journal.
    async fn rebuild(&self, record: &RunRecord, opts: ResumeOptions) -> Result<Run, StartError> {
        let spec = &record.run;
        let label = spec.workflow_path.clone().unwrap_or_else(|| format!("run {}", spec.run_id));
        let checker = CheckWith(self.executor.as_ref());
        let mut wf = crate::workflow::load_str(&spec.definition, Path::new(&spec.base_dir), &label, Some(&checker))
            .map_err(|e| StartError::Workflow(e.to_string()))?;
        wf.source = spec.workflow_path.as_ref().map(PathBuf::from);
        let wf = Arc::new(wf);
        self.executor.prepare(&wf).map_err(StartError::Components)?;
        let now = self.executor.pins(&wf);
        let mut changed = Vec::new();
        for (node, pin) in &spec.components {
            match now.get(node) {
                Some(cur) if cur.digest == pin.digest => {}
                Some(cur) => changed.push(format!(
                    "node `{node}`: {} was {} when the run started and is {} now",
                    cur.path, pin.digest, cur.digest
                )),
                None => changed.push(format!("node `{node}`: its component {} is gone", pin.path)),
            }
        }
        if !changed.is_empty() {
            if !opts.upgrade {
                return Err(StartError::ComponentChanged(changed));
            }
            tracing::warn!(run_id = %spec.run_id, changed = ?changed, "resuming on upgraded components");
        }
        let input: RunInput = serde_json::from_value(spec.input.clone())
            .map_err(|e| StartError::Input(vec![format!("the journaled run input cannot be read: {e}")]))?;
        let stored: StoredOptions = serde_json::from_value(spec.options.clone()).map_err(|e| {
            StartError::Input(vec![format!(
                "the journaled run options (environment, jitter seed) cannot be read: {e}; the run cannot be resumed \
                 as it was started"
            )])
        })?;
        let run_opts =
            RunOptions { environment: stored.environment, jitter_seed: stored.jitter_seed, limits: opts.limits };
        let config = input.resolve(&wf, run_opts.environment).map_err(StartError::Input)?;
        let mut run = Run::new(wf, config, run_opts, self.clone_parts());
        for j in self.store.journal(&spec.run_id).await? {
            run.apply(&j.entry);
        }
        if opts.cancelled || record.cancel_requested {
            run.cancel.cancel();
        }
        Ok(run)
    }

    fn clone_parts(&self) -> Parts {
        Parts { executor: self.executor.clone(), store: self.store.clone(), owner: self.owner.clone() }
    }

    fn spawn(&self, mut run: Run) -> RunHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        run.events = tx;
        run.lease_ms = self.lease_ms;
        let cancel = run.cancel.clone();
        let run_id = run.ids.run_id.clone();
        let task = tokio::spawn(run.drive());
        RunHandle { run_id, events: rx, cancel, task }
    }
}

/// The runs this process is driving now (so that it never drives one twice).
fn active_runs() -> std::sync::MutexGuard<'static, std::collections::HashSet<String>> {
    static ACTIVE: std::sync::OnceLock<Mutex<std::collections::HashSet<String>>> = std::sync::OnceLock::new();
    ACTIVE.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks a run as driven by this process for as long as it lives.
struct ActiveRun(String);

impl ActiveRun {
    fn enter(run_id: &str) -> Self {
        active_runs().insert(run_id.to_string());
        Self(run_id.to_string())
    }
}

impl Drop for ActiveRun {
    fn drop(&mut self) {
        active_runs().remove(&self.0);
    }
}

/// What a run shares with its engine.
struct Parts {
    executor: Arc<dyn StepExecutor>,
    store: Arc<dyn RunStore>,
    owner: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
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

impl State {
    fn is_final(self) -> bool {
        !matches!(self, State::Pending | State::Running)
    }
}

/// What a step task reports back.
struct StepResult {
    index: usize,
    /// The number of the first attempt in `attempts`.
    first_attempt: u32,
    attempts: Vec<AttemptReport>,
    /// The journal (or breaker store) failed: the run must stop.
    store_error: Option<String>,
}

/// Steps in flight: spawned tasks when several run at once (so that they use
/// every core), or one future polled in place when steps run one at a time
/// (no hand-off between threads per step).
enum InFlight {
    /// The tasks, and which step each task runs.
    Spawned(JoinSet<StepResult>, HashMap<tokio::task::Id, usize>),
    Inline(Option<Pin<Box<dyn Future<Output = StepResult> + Send>>>),
}

/// A step task that ended without a result (it panicked): its step, if known.
type Abnormal = (Option<usize>, String);

impl InFlight {
    fn push(&mut self, i: usize, f: impl Future<Output = StepResult> + Send + 'static) {
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
            Err(e) => Err((ids.remove(&e.id()), e.to_string())),
        }
    }

    /// The next finished step; `Err` when a spawned task panicked.
    async fn next(&mut self) -> Option<Result<StepResult, Abnormal>> {
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
    fn try_next(&mut self) -> Option<Result<StepResult, Abnormal>> {
        match self {
            Self::Spawned(set, ids) => set.try_join_next_with_id().map(|r| Self::joined(ids, r)),
            Self::Inline(_) => None,
        }
    }

    /// Interrupts every step in flight.
    async fn abort(&mut self) {
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
    store: Arc<dyn RunStore>,
    owner: String,
    lease_ms: u64,
    events: mpsc::UnboundedSender<RunEvent>,
    cancel: CancellationToken,
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
    Store(String),
}

impl Run {
    fn new(wf: Arc<Workflow>, config: RunConfig, opts: RunOptions, parts: Parts) -> Self {
        let n = wf.nodes.len();
        let default_policy = Arc::new(config.environment.retry_policy(wf.rules.max_retries));
        let policies =
            wf.nodes.iter().map(|nd| nd.retry.clone().map_or_else(|| default_policy.clone(), Arc::new)).collect();
        let mut topo_pos = vec![0usize; n];
        for (pos, &i) in wf.topo_order.iter().enumerate() {
            topo_pos[i] = pos;
        }
        let ids = RunIds {
            run_id: config.workflow_id.to_string(),
            correlation_id: config.correlation_id.to_string(),
            tenant: config.metadata.get("tenant").and_then(Value::as_str).unwrap_or_default().to_string(),
        };
        let (events, _) = mpsc::unbounded_channel();
        Self {
            policies,
            ids,
            wf,
            config,
            opts,
            executor: parts.executor,
            store: parts.store,
            owner: parts.owner,
            lease_ms: DEFAULT_LEASE_MS,
            events,
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

    fn emit(&self, e: RunEvent) {
        if !self.events.is_closed() {
            let _ = self.events.send(e);
        }
    }

    fn index(&self, step_id: &str) -> Option<usize> {
        self.wf.index.get(step_id).copied()
    }

    /// Applies a transition to the run's state (live, or replayed from the journal).
    fn apply(&mut self, e: &JournalEntry) {
        let i = e.step_id().and_then(|s| self.index(s));
        match (e, i) {
            (JournalEntry::RunCreated { start_time }, _) => {
                self.start_time = start_time.clone();
                self.started_ms = chrono::DateTime::parse_from_rfc3339(start_time)
                    .ok()
                    .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
                    .unwrap_or_else(now_ms);
            }
            (JournalEntry::StepScheduled { input, .. }, Some(i)) => {
                self.state[i] = State::Running;
                self.inputs[i] = Some(input.clone());
            }
            (JournalEntry::AttemptStarted { attempt, .. }, Some(i)) => {
                self.attempts_used[i] = self.attempts_used[i].max(*attempt);
            }
            (JournalEntry::AttemptFinished { attempt, report, .. }, Some(i)) => {
                self.attempts_used[i] = self.attempts_used[i].max(*attempt);
                let t = &mut self.totals[i];
                // Journals come from the store: no number in them may overflow.
                t.fuel = t.fuel.saturating_add(report.stats.fuel_consumed);
                t.wall_us = t.wall_us.saturating_add(report.stats.wall_time_us);
                t.peak = t.peak.max(report.stats.peak_memory_bytes);
                t.attempts = t.attempts.saturating_add(1);
            }
            (JournalEntry::StepCompleted { step_id, output, actions }, Some(i)) => {
                self.state[i] = State::Completed;
                self.completion_order.push(i);
                self.outputs[i] = Some(output.clone());
                // Only nodes downstream of the emitter receive its actions: they
                // are decided after it completes, in every mode, so delivery
                // never depends on timing. Actions to other nodes are listed
                // (and kept in `actions_emitted`) but not delivered.
                for record in actions {
                    let target = &record.target_node;
                    let reason = match self.index(target) {
                        Some(t) if self.is_downstream(i, t) => {
                            self.delivered[t].push(json!({
                                "action_id": record.action_id,
                                "action_type": record.action_type,
                                "source_node": step_id,
                                "payload": record.payload,
                            }));
                            None
                        }
                        Some(_) => Some(format!(
                            "`{target}` does not depend on `{step_id}`, so it may already have been decided when the \
                             action came; add `{step_id}` to the `depends_on` of `{target}` (directly or through \
                             other nodes) to deliver it"
                        )),
                        None => {
                            // A suggestion scans every id: only the first few get one.
                            let hint = (self.undelivered.len() < 10)
                                .then(|| {
                                    let ids: Vec<&str> = self.wf.nodes.iter().map(|n| n.id.as_str()).collect();
                                    crate::workflow::closest(target, &ids).map(|c| format!(" (did you mean `{c}`?)"))
                                })
                                .flatten()
                                .unwrap_or_default();
                            Some(format!("no node of this workflow is named `{target}`{hint}"))
                        }
                    };
                    if let Some(reason) = reason {
                        self.undelivered.push(UndeliveredAction {
                            action_id: record.action_id.clone(),
                            source_node: step_id.clone(),
                            target_node: target.clone(),
                            reason,
                        });
                    }
                    self.actions.push(record.clone());
                }
            }
            (JournalEntry::StepFailed { step_id, error_type, message, tolerated }, Some(i)) => {
                self.errors.push(ErrorRecord {
                    step_id: step_id.clone(),
                    error_type: error_type.clone(),
                    message: message.clone(),
                });
                if *tolerated {
                    self.state[i] = State::Tolerated;
                } else {
                    self.state[i] = State::Failed;
                    self.failed.push(i);
                }
            }
            (JournalEntry::StepSkipped { .. }, Some(i)) => {
                self.state[i] = State::Skipped;
                self.skipped.push(i);
            }
            (JournalEntry::RunStopping { status, errors, parallel_executions }, _) => {
                self.errors.extend(errors.iter().cloned());
                self.stopping = Some(*status);
                self.parallel_executions = self.parallel_executions.max(*parallel_executions);
            }
            (JournalEntry::CompensationStarted { .. }, Some(i)) => {
                self.compensation_starts[i] = self.compensation_starts[i].saturating_add(1);
            }
            (JournalEntry::CompensationFinished { step_id, ok, attempts, error }, Some(i)) => {
                self.compensated[i] = true;
                if let Some(message) = error.as_ref().filter(|_| !ok) {
                    self.errors.push(ErrorRecord {
                        step_id: step_id.clone(),
                        error_type: "compensation_failed".into(),
                        message: message.clone(),
                    });
                }
                self.compensation.push(json!({
                    "step_id": step_id,
                    "status": if *ok { "compensated" } else { "failed" },
                    "attempts": attempts,
                    "error": error,
                }));
            }
            _ => {}
        }
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
        self.store.append(&self.ids.run_id, &self.owner, entries).await.map_err(|e| e.to_string())
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

    /// The variables node `i`'s expressions read, bound for CEL. Only what
    /// they read is copied: a step's expressions cost the size of the outputs
    /// they name, not of every output so far.
    fn bind(&self, i: usize, uses: &Uses) -> Bound {
        let steps: Vec<(&str, &Value)> = if uses.all_steps {
            let named = self.outputs.iter().enumerate();
            named.filter_map(|(j, out)| Some((self.wf.nodes[j].id.as_str(), out.as_ref()?))).collect()
        } else {
            let outputs = uses.steps.iter().filter_map(|id| Some((id, self.index(id)?)));
            outputs.filter_map(|(id, j)| Some((id.as_str(), self.outputs[j].as_ref()?))).collect()
        };
        let object = |read: bool, m: &Map<String, Value>| if read { Value::Object(m.clone()) } else { Value::Null };
        let none: &[Value] = &[];
        bind_with(
            &object(uses.reads("context"), &self.config.context),
            &steps,
            if uses.reads("actions") { &self.delivered[i] } else { none },
            &if uses.reads("run") { self.run_json() } else { Value::Null },
            &object(uses.reads("metadata"), &self.config.metadata),
        )
    }

    /// The input object of node `i`, or why it could not be computed.
    fn input_for(&self, i: usize, bound: Option<&Bound>) -> Result<Map<String, Value>, String> {
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
            InputMapping::Whole(e) => match e.eval_in(bound_for(bound)?).map_err(|m| format!("`input`: {m}"))? {
                Value::Object(m) => m,
                other => return Err(format!("`input` gave {other}, not an object")),
            },
            InputMapping::Fields(fields) => {
                let mut m = Map::new();
                let bound = bound_for(bound)?;
                for (k, e) in fields {
                    m.insert(k.clone(), e.eval_in(bound).map_err(|msg| format!("`input.{k}`: {msg}"))?);
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

    /// Whether node `to` depends on node `from`, directly or through others.
    /// Walks up from `to` and never below `from` in topological order, so an
    /// action to a nearby dependent costs a step or two, not the whole graph.
    fn is_downstream(&self, from: usize, to: usize) -> bool {
        if self.topo_pos[to] <= self.topo_pos[from] {
            return false;
        }
        let mut stack = vec![to];
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = stack.pop() {
            for &d in &self.wf.dependencies[k] {
                if d == from {
                    return true;
                }
                if self.topo_pos[d] > self.topo_pos[from] && seen.insert(d) {
                    stack.push(d);
                }
            }
        }
        false
    }

    fn breaker(&self) -> Option<BreakerPolicy> {
        self.wf.rules.circuit_breaker_enabled.then_some(BreakerPolicy {
            failure_threshold: self.wf.rules.circuit_breaker_failure_threshold,
            cooldown_ms: self.wf.rules.circuit_breaker_cooldown_ms,
        })
    }

    /// Why node `i` must be skipped, if it must.
    fn skip_reason(&self, i: usize, bound: Option<&Bound>) -> Result<Option<String>, String> {
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
            && !w.eval_bool_in(bound_for(bound)?).map_err(|m| format!("`when`: {m}"))?
        {
            return Ok(Some(format!("`when` is false: {}", w.source())));
        }
        Ok(None)
    }

    /// Runs one step to its end: attempts, retries, backoff. Attempt
    /// `first_attempt` is already journaled as started; later ones are
    /// journaled here before they run.
    fn step_task(
        &self,
        i: usize,
        input: SharedInput,
        rounds: u32,
        first_attempt: u32,
    ) -> impl Future<Output = StepResult> + Send + 'static {
        let wf = self.wf.clone();
        let node = &wf.nodes[i];
        let policy = self.policy(i);
        let limits = self.limits(node);
        let executor = self.executor.clone();
        let events = self.events.clone();
        // A resumed step always gets one more attempt than it had.
        let max_attempts = policy.max_attempts.saturating_mul(rounds.max(1)).max(first_attempt);
        let first_ctx = self.ctx(node, first_attempt);
        let jitter_seed = self.opts.jitter_seed;
        let store = self.store.clone();
        let (run_id, owner) = (self.ids.run_id.clone(), self.owner.clone());
        let breaker = self.breaker();
        async move {
            let node = &wf.nodes[i];
            // Only the breaker needs the component's name as a string.
            let component = breaker.map(|_| node.component.display().to_string()).unwrap_or_default();
            let mut rng: Option<rand::rngs::StdRng> = None;
            let mut attempts = Vec::new();
            let mut store_error = None;
            for attempt in first_attempt..=max_attempts {
                if attempt > first_attempt {
                    let started = vec![JournalEntry::AttemptStarted { step_id: node.id.clone(), attempt }];
                    if let Err(e) = store.append(&run_id, &owner, started).await {
                        store_error = Some(e.to_string());
                        break;
                    }
                }
                if !events.is_closed() {
                    let _ = events.send(RunEvent::AttemptStarted { step_id: node.id.clone(), attempt });
                }
                let ctx = StepContext { attempt, ..first_ctx.clone() };
                let call = StepCall { ctx, input: (*input).clone(), kind: CallKind::Run };
                let report = match breaker {
                    None => executor.execute(node, call, limits.clone()).await,
                    Some(policy) => match breaker::gate(store.as_ref(), &component, policy).await {
                        Err(e) => {
                            store_error = Some(e.to_string());
                            break;
                        }
                        Ok(Gate::Reject { retry_after_ms }) => AttemptReport {
                            outcome: Err(StepFailure::CircuitOpen { component: component.clone(), retry_after_ms }),
                            stats: Default::default(),
                            logs: Vec::new(),
                        },
                        Ok(Gate::Pass { probe }) => {
                            let report = executor.execute(node, call, limits.clone()).await;
                            let ok = report.failure().is_none();
                            if let Err(e) = breaker::report(store.as_ref(), &component, policy, ok, probe).await {
                                tracing::warn!(component, error = %e, "the circuit breaker could not be updated");
                            }
                            report
                        }
                    },
                };
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
                let finished =
                    vec![JournalEntry::AttemptFinished { step_id: node.id.clone(), attempt, report: report.clone() }];
                if let Err(e) = store.append(&run_id, &owner, finished).await {
                    store_error = Some(e.to_string());
                    break;
                }
                attempts.push(report);
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            StepResult { index: i, first_attempt, attempts, store_error }
        }
    }

    /// Renews the lease and turns a cancel request in the store into a
    /// cancellation of this run.
    fn heartbeat(&self) -> tokio::task::JoinHandle<()> {
        let (store, cancel) = (self.store.clone(), self.cancel.clone());
        let (run_id, owner, lease) = (self.ids.run_id.clone(), self.owner.clone(), self.lease_ms);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT_EVERY).await;
                match store.heartbeat(&run_id, &owner, lease, now_ms()).await {
                    Ok(true) => cancel.cancel(),
                    Ok(false) => {}
                    Err(StoreError::LeaseLost(_)) => {
                        tracing::error!(run_id, "another process took over this run; stopping it here");
                        cancel.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(run_id, error = %e, "the run's lease could not be renewed"),
                }
            }
        })
    }

    async fn drive(mut self) -> RunOutput {
        self.emit(RunEvent::RunStarted { run_id: self.ids.run_id.clone(), workflow: self.wf.name.clone() });
        // Removed on every exit, also when the task is dropped mid-run.
        let _active = ActiveRun::enter(&self.ids.run_id);
        let heartbeat = self.heartbeat();
        let out = self.drive_inner().await;
        heartbeat.abort();
        out
    }

    async fn drive_inner(&mut self) -> RunOutput {
        let status = match self.stopping {
            // Resumed after scheduling had stopped: only compensation and the end remain.
            Some(status) => status,
            None => match self.schedule().await {
                Ok(status) => status,
                Err(message) => return self.store_failure(message),
            },
        };
        if self.config.failure_strategy == FailureStrategy::Compensate
            && status != ExecutionStatus::Completed
            && let Err(message) = self.compensate().await
        {
            return self.store_failure(message);
        }
        if status == ExecutionStatus::Failed && self.wf.rules.dead_letter_queue_enabled {
            let first = self
                .errors
                .iter()
                .find(|e| e.step_id != "workflow")
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
        self.emit(RunEvent::RunFinished { status });
        output
    }

    /// The output when the journal cannot be written: the run stays
    /// `running` in the store, resumable from its last durable transition.
    fn store_failure(&mut self, message: String) -> RunOutput {
        self.pending.clear();
        let out = self.output(ExecutionStatus::Failed);
        self.store_failure_with(out, message)
    }

    /// [`Self::store_failure`] for an output already built (its step outputs
    /// have moved into it).
    fn store_failure_with(&mut self, mut out: RunOutput, message: String) -> RunOutput {
        out.execution_status = ExecutionStatus::Failed;
        out.errors.push(ErrorRecord {
            step_id: "workflow".into(),
            error_type: "store".into(),
            message: format!(
                "the run's journal could not be written ({message}); the run stopped here and can be resumed from \
                 its last durable step with `weft runs resume {}`",
                self.ids.run_id
            ),
        });
        self.emit(RunEvent::RunFinished { status: ExecutionStatus::Failed });
        out
    }

    /// Schedules the graph until every step is final or the run stops.
    /// Journals `run_stopping` and returns the status the run ends with.
    async fn schedule(&mut self) -> Result<ExecutionStatus, String> {
        let n = self.wf.nodes.len();
        // On resume, final steps are done and count as met dependencies.
        let mut waiting: Vec<usize> =
            (0..n).map(|i| self.wf.dependencies[i].iter().filter(|&&d| !self.state[d].is_final()).count()).collect();
        let mut ready: ReadyQueue = (0..n)
            .filter(|&i| waiting[i] == 0 && !self.state[i].is_final())
            .map(|i| std::cmp::Reverse((self.topo_pos[i], i)))
            .collect();
        let mut running = 0usize;
        let limit = self.config.max_parallel_steps.max(1) as usize;
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(
                self.config.global_timeout_ms.saturating_sub(now_ms().saturating_sub(self.started_ms)),
            );
        let mut tasks = if self.config.max_parallel_steps <= 1 {
            InFlight::Inline(None)
        } else {
            InFlight::Spawned(JoinSet::new(), HashMap::new())
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
        let mut launches: Vec<(usize, SharedInput, u32)> = Vec::new();

        'outer: loop {
            while running + launches.len() < limit && stop.is_none() {
                // Nothing new starts once the run is cancelled or out of time.
                if self.cancel.is_cancelled() {
                    stop = Some(Stop::Cancelled);
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    stop = Some(Stop::TimedOut);
                    break;
                }
                let Some(std::cmp::Reverse((_, i))) = ready.pop() else { break };
                // Already final (a replay keeps some steps' results): never again.
                if self.state[i].is_final() {
                    continue;
                }
                // A step that was in flight when the run was interrupted runs
                // again with its journaled input and the next attempt number.
                if self.state[i] == State::Running
                    && let Some(input) = self.inputs[i].clone()
                {
                    let attempt = self.attempts_used[i].saturating_add(1);
                    self.record(JournalEntry::AttemptStarted { step_id: self.wf.nodes[i].id.clone(), attempt });
                    launches.push((i, input, attempt));
                    continue;
                }
                // Expressions need the scope; nodes without any skip building it.
                let bound = self.wf.nodes[i].uses.as_ref().map(|uses| self.bind(i, uses));
                let decision = self.skip_reason(i, bound.as_ref()).and_then(|skip| match skip {
                    Some(reason) => Ok(Err(reason)),
                    None => self.input_for(i, bound.as_ref()).map(Ok),
                });
                drop(bound);
                let step_id = self.wf.nodes[i].id.clone();
                match decision {
                    Ok(Ok(input)) => {
                        let input = Arc::new(input);
                        self.record(JournalEntry::StepScheduled { step_id: step_id.clone(), input: input.clone() });
                        self.record(JournalEntry::AttemptStarted { step_id, attempt: 1 });
                        launches.push((i, input, 1));
                        continue;
                    }
                    Ok(Err(reason)) => {
                        self.record(JournalEntry::StepSkipped { step_id: step_id.clone(), reason: reason.clone() });
                        self.emit(RunEvent::StepSkipped { step_id, reason });
                    }
                    Err(message) => {
                        if self.fail_step(i, "expression", message) {
                            stop = Some(Stop::Failed);
                        }
                    }
                }
                // Final without running: its dependents may be ready now.
                release(&self.wf, i, &mut waiting, &mut ready, &self.topo_pos);
            }
            // Every transition so far is durable before any step it enables starts.
            if let Err(message) = self.flush().await {
                stop = Some(Stop::Store(message));
                break;
            }
            let launched = launches.len();
            for (i, input, attempt) in launches.drain(..) {
                let task = self.step_task(i, input, rounds, attempt);
                tasks.push(i, task);
                running += 1;
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
                                if let Some(message) = result.store_error {
                                    stop = Some(Stop::Store(message));
                                    continue;
                                }
                                let i = result.index;
                                if self.finish_step(result) {
                                    stop = Some(Stop::Failed);
                                }
                                release(&self.wf, i, &mut waiting, &mut ready, &self.topo_pos);
                            }
                            // Journaled as the step's failure, so a resume sees the same run.
                            Err((Some(i), e)) => {
                                self.fail_step(i, "internal", format!("the step's task ended abnormally: {e}"));
                                stop = Some(Stop::Failed);
                            }
                            Err((None, e)) => {
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
        let wf = self.wf.clone();
        let id = |i: usize| wf.nodes[i].id.clone();
        let mut run_errors = Vec::new();
        let status = match stop {
            Some(Stop::Store(message)) => return Err(message),
            Some(Stop::Cancelled) => {
                for &i in &interrupted {
                    self.record(JournalEntry::StepFailed {
                        step_id: id(i),
                        error_type: "cancelled".into(),
                        message: "interrupted: the run was cancelled".into(),
                        tolerated: false,
                    });
                }
                run_errors.push(ErrorRecord {
                    step_id: "workflow".into(),
                    error_type: "cancelled".into(),
                    message: "the run was cancelled".into(),
                });
                ExecutionStatus::Cancelled
            }
            Some(Stop::TimedOut) => {
                for &i in &interrupted {
                    self.record(JournalEntry::StepFailed {
                        step_id: id(i),
                        error_type: "timeout".into(),
                        message: "interrupted: the workflow's global timeout expired".into(),
                        tolerated: false,
                    });
                }
                run_errors.push(ErrorRecord {
                    step_id: "workflow".into(),
                    error_type: "timeout".into(),
                    message: format!("Workflow exceeded {}ms timeout", self.config.global_timeout_ms),
                });
                ExecutionStatus::Failed
            }
            Some(Stop::Failed) => {
                for &i in &interrupted {
                    let reason = "interrupted: another step failed and the strategy stops the run".to_string();
                    self.record(JournalEntry::StepSkipped { step_id: id(i), reason: reason.clone() });
                    self.emit(RunEvent::StepSkipped { step_id: id(i), reason });
                }
                ExecutionStatus::Failed
            }
            None if self.failed.is_empty() => ExecutionStatus::Completed,
            None => ExecutionStatus::Failed,
        };
        // Steps never reached are skipped.
        for i in 0..n {
            if self.state[i] == State::Pending {
                let reason = match status {
                    ExecutionStatus::Cancelled => "the run was cancelled",
                    _ => "the run stopped before this step",
                };
                self.record(JournalEntry::StepSkipped { step_id: id(i), reason: reason.into() });
                self.emit(RunEvent::StepSkipped { step_id: id(i), reason: reason.into() });
            }
        }
        self.record(JournalEntry::RunStopping {
            status,
            errors: run_errors,
            parallel_executions: self.parallel_executions,
        });
        self.flush().await?;
        Ok(status)
    }

    /// Records a step's final result. Returns true when the run must stop.
    fn finish_step(&mut self, result: StepResult) -> bool {
        let i = result.index;
        let step_id = self.wf.nodes[i].id.clone();
        let mut attempts = result.attempts;
        let last = attempts.pop();
        let last_number = result.first_attempt.saturating_add(attempts.len() as u32);
        // Earlier attempts were journaled by the step task before its retry.
        for (k, report) in attempts.into_iter().enumerate() {
            let attempt = result.first_attempt.saturating_add(k as u32);
            self.apply(&JournalEntry::AttemptFinished { step_id: step_id.clone(), attempt, report });
        }
        let outcome = last.map(|mut report| {
            // The completing attempt's output and actions are journaled once,
            // in `step_completed` (same transaction), not twice.
            let outcome = match &mut report.outcome {
                Ok(success) => Ok((std::mem::take(&mut success.output), std::mem::take(&mut success.actions))),
                Err(f) => Err(f.clone()),
            };
            self.record(JournalEntry::AttemptFinished { step_id: step_id.clone(), attempt: last_number, report });
            outcome
        });
        match outcome {
            Some(Ok((output, emitted))) => {
                let actions = emitted
                    .iter()
                    .map(|a| ActionRecord {
                        action_id: uuid::Uuid::new_v4().to_string(),
                        action_type: serde_json::to_value(a.action_type)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_default(),
                        target_node: a.target_node.clone(),
                        payload: a.payload.clone(),
                    })
                    .collect();
                let before = self.undelivered.len();
                self.record(JournalEntry::StepCompleted { step_id: step_id.clone(), output, actions });
                self.emit(RunEvent::StepCompleted { step_id, attempts: self.totals[i].attempts });
                for k in before..self.undelivered.len() {
                    self.emit(RunEvent::ActionNotDelivered { action: self.undelivered[k].clone() });
                }
                false
            }
            Some(Err(f)) => self.fail_step(i, f.kind(), f.to_string()),
            None => self.fail_step(i, "internal", "the step made no attempt".into()),
        }
    }

    /// Marks a step failed (or tolerated). Returns true when the run must stop.
    fn fail_step(&mut self, i: usize, error_type: &str, message: String) -> bool {
        let node = &self.wf.nodes[i];
        let tolerated = node.continue_on_error;
        let step_id = node.id.clone();
        self.record(JournalEntry::StepFailed {
            step_id: step_id.clone(),
            error_type: error_type.into(),
            message: message.clone(),
            tolerated,
        });
        self.emit(RunEvent::StepFailed { step_id, error_type: error_type.into(), message, tolerated });
        !tolerated && !matches!(self.config.failure_strategy, FailureStrategy::ContinueOnError)
    }

    /// Undoes completed effect steps in reverse completion order; each one
    /// is journaled before and after, so a resumed run skips those done.
    async fn compensate(&mut self) -> Result<(), String> {
        let order: Vec<usize> = self.completion_order.iter().rev().copied().collect();
        for i in order {
            let node = self.wf.nodes[i].clone();
            if !node.node_type.is_effect() || !node.compensate || self.compensated[i] {
                continue;
            }
            self.record(JournalEntry::CompensationStarted { step_id: node.id.clone() });
            self.flush().await?;
            self.emit(RunEvent::Compensating { step_id: node.id.clone() });
            let policy = self.policy(i);
            let limits = self.limits(&node);
            let input = self.inputs[i].clone().unwrap_or_default();
            let output = self.outputs[i].clone().unwrap_or(Value::Null);
            let mut attempts = 0;
            let mut last_error = None;
            // After a crash mid-compensation, attempt numbers go on from where
            // the interrupted round's could have reached.
            let base = (self.compensation_starts[i].saturating_sub(1)).saturating_mul(policy.max_attempts.max(1));
            for attempt in 1..=policy.max_attempts.max(1) {
                attempts = attempt;
                let call = StepCall {
                    ctx: self.ctx(&node, base + attempt),
                    input: (*input).clone(),
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
            self.record(JournalEntry::CompensationFinished {
                step_id: node.id.clone(),
                ok,
                attempts,
                error: last_error.map(|f| f.to_string()),
            });
            self.flush().await?;
            self.emit(RunEvent::Compensated { step_id: node.id.clone(), ok });
        }
        Ok(())
    }

    /// The run's output contract. Called once, as the run ends: completed
    /// steps' outputs move into it rather than being copied.
    fn output(&mut self, status: ExecutionStatus) -> RunOutput {
        let ids = |v: &[usize]| -> Vec<String> { v.iter().map(|&i| self.wf.nodes[i].id.clone()).collect() };
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
        let mut step_outputs = Map::new();
        for &i in &self.completion_order {
            let out = match self.outputs[i].take() {
                Some(Value::Object(m)) => Value::Object(m),
                Some(other) => json!({ "value": other }),
                None => json!({}),
            };
            step_outputs.insert(self.wf.nodes[i].id.clone(), out);
        }
        let mut output_variables = Map::new();
        output_variables.insert("run".into(), self.run_json());
        output_variables.insert("failure_strategy".into(), json!(self.config.failure_strategy));
        output_variables.insert("execution_mode".into(), json!(self.config.execution_mode));
        if !self.compensation.is_empty() {
            output_variables.insert("compensation".into(), Value::Array(self.compensation.clone()));
        }
        if !self.undelivered.is_empty() {
            output_variables.insert("undelivered_actions".into(), json!(self.undelivered));
        }
        let completed = self.completion_order.len();
        let mut metrics = BTreeMap::new();
        let total_wall_us: u64 = self.totals.iter().fold(0u64, |sum, t| sum.saturating_add(t.wall_us));
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
            let key = |name: &str| ["step.", id, ".", name].concat();
            per_step.push((key("attempts"), t.attempts as f64));
            per_step.push((key("fuel_consumed"), t.fuel as f64));
            per_step.push((key("wall_time_ms"), t.wall_us as f64 / 1000.0));
            per_step.push((key("peak_memory_bytes"), t.peak as f64));
        }
        let mut all: BTreeMap<String, f64> = per_step.into_iter().collect();
        all.append(&mut metrics);
        let metrics = all;
        RunOutput {
            execution_status: status,
            execution_time_ms: now_ms().saturating_sub(self.started_ms),
            start_time: self.start_time.clone(),
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

/// A step's input, shared by the run's state and its journal entry.
type SharedInput = Arc<Map<String, Value>>;

/// The ready queue: steps by topological position.
type ReadyQueue = BinaryHeap<std::cmp::Reverse<(usize, usize)>>;

/// Node `i` is final: every dependent it was the last unfinished dependency of
/// becomes ready.
fn release(wf: &Workflow, i: usize, waiting: &mut [usize], ready: &mut ReadyQueue, topo_pos: &[usize]) {
    for &d in &wf.dependents[i] {
        waiting[d] -= 1;
        if waiting[d] == 0 {
            ready.push(std::cmp::Reverse((topo_pos[d], d)));
        }
    }
}

/// FNV-1a of a string (to derive per-step jitter seeds).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The bound scope an expression needs (always there when the node has expressions).
fn bound_for(bound: Option<&Bound>) -> Result<&Bound, String> {
    bound.ok_or_else(|| "internal error: an expression was evaluated without a scope".to_string())
}
