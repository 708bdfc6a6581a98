//! The orchestrator: runs a [`Workflow`] as a DAG of sandboxed steps.
//!
//! [`Engine`] is the entry point: it validates a run's input, loads the
//! components through its [`StepExecutor`], records the run in its
//! [`RunStore`], and spawns the run. The state machine itself is
//! `run::Run`, which owns one run's state from its first transition to its
//! output contract. Its control flow:
//!
//! 1. **start** ([`Engine::start`]; or **resume**/**replay** in `recovery`,
//!    which fold the journal back into a `Run` first);
//! 2. **drive** (`run/mod.rs`): heartbeat the lease, schedule, compensate if
//!    the strategy says so, dead-letter, finish with the output contract;
//! 3. **schedule** (`run/schedule.rs`): pop ready steps in topological
//!    order, decide each one (`run/binding.rs`: skip, or bind its input),
//!    journal the decisions, launch attempts, collect results;
//! 4. **attempt** (`run/attempts.rs`): one step task per step runs the
//!    retry loop (breaker gate, executor, backoff with jitter);
//! 5. **record** (`run/finish.rs`): a step's final outcome becomes journal
//!    entries, and every entry goes through
//! 6. **apply** (`run/state.rs`): the journal fold, the one place state
//!    changes, used alike by a live run and by a resume.
//!
//! Actions are delivered in `run/actions.rs`, compensation runs in
//! `run/compensation.rs`, and `run/output.rs` builds the output contract.
//!
//! Around the run: `settings.rs` resolves the contract's config from its
//! layers (profile, `--config`, the workflow's), `input.rs` and
//! `input_steps.rs` the run input; `children.rs` starts, reattaches and
//! undoes sub-workflows' child runs, and `signal.rs` delivers approval
//! gates' decisions.
//!
//! A new execution mode plugs in at `run/schedule.rs`: the mode decides how
//! many steps may be in flight (`Run::concurrency`), whether a scheduling
//! round counts as a parallel execution, and when the loop waits for what is
//! in flight before it starts more. Nothing else in the engine knows modes.

mod blobs;
pub mod breaker;
mod cancel;
mod children;
mod environment;
mod events;
mod executor;
mod grants;
mod handle;
mod health;
mod heartbeat;
mod input;
mod input_steps;
mod memo;
mod observer;
mod options;
mod recovery;
mod run;
mod sandbox_executor;
pub mod scripted;
mod settings;
mod signal;
#[cfg(test)]
mod tests;
mod worker;

pub use crate::contract::{ActionRecord, ErrorRecord, ExecutionStatus, RunOutput, UndeliveredAction};
pub use blobs::default_blob_dir;
pub use breaker::{BreakerPolicy, Gate};
pub use cancel::CancelOutcome;
pub use environment::Environment;
pub use events::{RunEvent, RunEvents};
pub use executor::{AttemptFuture, Held, StepExecutor};
pub use grants::{check_capabilities, default_scratch_root};
pub use handle::RunHandle;
pub use health::{HealthReport, check_health};
pub use heartbeat::DEFAULT_LEASE_MS;

/// The error type of the output a process returns for a run whose lease
/// another process took over: the run goes on there; nothing of its end was
/// written here.
pub const LEASE_LOST: &str = "lease_lost";
pub use input::{RunConfig, RunInput};
pub use input_steps::{InputStep, StepTuning, workflow_from_steps};
pub use observer::{ObservedRun, Observers, RunObserver, StepMark, new_traceparent};
pub use options::{Ceiling, ResumeOptions, RunOptions, StartError};
pub use recovery::ResumedRuns;
pub use sandbox_executor::SandboxExecutor;
pub use settings::Settings;
pub use signal::{SignalError, Signalled};
pub use worker::{WorkerEvent, WorkerOptions};

use crate::capability::Policy;
use crate::store::{Lease, MemoryStore, NewRun, RunStore, process_owner};
use crate::workflow::Workflow;
use grants::RunGrants;
use options::StoredOptions;
use run::{Parts, Run};
use serde_json::Value;
use std::sync::Arc;

/// The tenant of a run (its `metadata.tenant`; '' on a single-tenant host).
fn tenant_of(config: &RunConfig) -> &str {
    config.metadata.get("tenant").and_then(Value::as_str).unwrap_or_default()
}

/// The orchestrator. Cloning it is cheap: the clones share the executor,
/// the store and the policy.
#[derive(Clone)]
pub struct Engine {
    executor: Arc<dyn StepExecutor>,
    store: Arc<dyn RunStore>,
    owner: String,
    lease_ms: u64,
    policy: Arc<Policy>,
    /// Tenants whose runs are under a policy of their own instead.
    tenant_policies: Arc<std::collections::HashMap<String, Arc<Policy>>>,
    scratch_root: std::path::PathBuf,
    /// Where components fetched from the store are kept (None: not fetched).
    blob_dir: Option<std::path::PathBuf>,
    /// The component digests this engine has stored.
    stored_blobs: Arc<blobs::StoredBlobs>,
    /// Cancelled when the process shuts down: runs stop starting steps, let
    /// the ones in flight finish, and give their leases up.
    drain: tokio_util::sync::CancellationToken,
    /// Hears every run, attempt and end (metrics, traces).
    observer: Arc<dyn RunObserver>,
}

impl Engine {
    /// An engine that runs steps with `executor`, journaling to an in-memory store.
    pub fn new(executor: Arc<dyn StepExecutor>) -> Self {
        Self {
            executor,
            store: Arc::new(MemoryStore::new()),
            owner: process_owner(),
            lease_ms: DEFAULT_LEASE_MS,
            policy: Arc::new(Policy::operator()),
            tenant_policies: Default::default(),
            scratch_root: default_scratch_root(),
            blob_dir: blobs::default_blob_dir(),
            stored_blobs: Default::default(),
            drain: Default::default(),
            observer: observer::unobserved(),
        }
    }

    /// The same engine telling `observer` about every run it drives.
    pub fn with_observer(mut self, observer: Arc<dyn RunObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Who hears this engine's runs.
    pub fn observer(&self) -> &Arc<dyn RunObserver> {
        &self.observer
    }

    /// The same engine keeping components fetched from the store in `dir`
    /// (default: [`default_blob_dir`]).
    pub fn with_blob_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.blob_dir = Some(dir);
        self
    }

    /// The same engine with its owner name (default: [`process_owner`]).
    /// Two engines in one process with different names fence each other
    /// as two processes would.
    pub fn with_owner(mut self, owner: String) -> Self {
        self.owner = owner;
        self
    }

    /// The owner name this engine claims runs as.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The same engine with leases of `lease_ms` (default [`DEFAULT_LEASE_MS`]).
    pub fn with_lease_ms(mut self, lease_ms: u64) -> Self {
        self.lease_ms = lease_ms.max(1);
        self
    }

    /// Starts a graceful drain: no run of this engine starts another step;
    /// the attempts in flight may finish for up to the run's
    /// `shutdown_timeout_ms` (the contract's config, 10 s by default), and
    /// are interrupted then; each run journals what finished, gives its
    /// lease up and ends as [`ExecutionStatus::Paused`] (resumable, not
    /// cancelled), so that another process can take it over at once.
    pub fn drain(&self) {
        self.drain.cancel();
    }

    /// Resolves once [`Engine::drain`] is called.
    pub fn drained(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let token = self.drain.clone();
        async move { token.cancelled().await }
    }

    /// Whether [`Engine::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.drain.is_cancelled()
    }

    /// The same engine under the operator's `policy`: every node's
    /// capabilities must lie within it, or a run does not start. Without
    /// one ([`Policy::operator`]), nodes get what they declare. A host that
    /// runs other people's workflows must set one.
    pub fn with_policy(mut self, policy: Arc<Policy>) -> Self {
        self.policy = policy;
        self
    }

    /// The same engine with runs' scratch directories under `root`
    /// (default: [`default_scratch_root`]).
    pub fn with_scratch_root(mut self, root: std::path::PathBuf) -> Self {
        self.scratch_root = root;
        self
    }

    /// The same engine with the runs of `tenant` under `policy` instead of
    /// the one of [`Engine::with_policy`] (the operator policy can differ
    /// per tenant). The tenant is the run's `metadata.tenant`.
    pub fn with_tenant_policy(mut self, tenant: &str, policy: Arc<Policy>) -> Self {
        Arc::make_mut(&mut self.tenant_policies).insert(tenant.to_string(), policy);
        self
    }

    /// The operator policy runs are checked against (a tenant's own, if it
    /// has one, takes its place: [`Engine::policy_for`]).
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The policy the runs of `tenant` are checked against.
    pub fn policy_for(&self, tenant: &str) -> &Arc<Policy> {
        self.tenant_policies.get(tenant).unwrap_or(&self.policy)
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
        let mut opts = opts;
        opts.traceparent.get_or_insert_with(new_traceparent);
        let (new, config, held) = self.new_run(&wf, input, &opts)?;
        let run_pins = Run::pins_by_node(&wf, &new.components);
        let blobs = self.blobs_for(&new.components);
        let lease = self.store.create_run(&new, &[], &blobs).await?;
        self.blobs_stored(&blobs);
        let parts = self.parts(&wf, &config, run_pins, held, lease);
        let run = Run::new(wf, config, opts, parts);
        Ok(self.spawn(run))
    }

    /// Validates the input, loads the components (which also checks them),
    /// and stores the run, its spec and its components for a worker to
    /// claim (`weft worker`). Returns the run's id.
    pub async fn submit(&self, wf: Arc<Workflow>, input: &RunInput, opts: RunOptions) -> Result<String, StartError> {
        let mut opts = opts;
        opts.traceparent.get_or_insert_with(new_traceparent);
        let (new, _, _) = self.new_run(&wf, input, &opts)?;
        let blobs = self.blobs_for(&new.components);
        self.store.submit_run(&new, &blobs).await?;
        self.blobs_stored(&blobs);
        Ok(new.run_id)
    }

    /// The stored spec of a new run of `wf`: its input resolved, its
    /// capabilities checked, its components loaded and pinned.
    fn new_run(
        &self,
        wf: &Arc<Workflow>,
        input: &RunInput,
        opts: &RunOptions,
    ) -> Result<(NewRun, RunConfig, Held), StartError> {
        let wf = wf.as_ref();
        let config = input.resolve(wf, opts.environment, opts.config.as_deref()).map_err(StartError::Input)?;
        self.check_capabilities(wf, tenant_of(&config))?;
        self.executor.prepare(wf).map_err(StartError::Components)?;
        let pins = self.executor.pins(wf);
        let held = self.executor.hold(wf);
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
                config: opts.config.as_deref().cloned(),
                keys_of: opts.keys_of.clone(),
                request_digest: opts.request_digest.clone(),
                ceiling: opts.ceiling,
                traceparent: opts.traceparent.clone(),
            })
            .unwrap_or(Value::Null),
            components: pins,
            replay_of: None,
            parent: opts.parent.clone(),
            sub_definitions: wf.nested_texts(10_000, crate::workflow::MAX_NESTED_BYTES as usize),
            owner: self.owner.clone(),
            lease_ms: self.lease_ms,
        };
        Ok((new, config, held))
    }

    /// Starts a run and waits for its output, dropping the events.
    pub async fn run(&self, wf: Arc<Workflow>, input: &RunInput, opts: RunOptions) -> Result<RunOutput, StartError> {
        let mut handle = self.start(wf, input, opts).await?;
        handle.events.close();
        Ok(handle.wait().await)
    }

    /// What a run of this engine shares with it, and the component digests
    /// its nodes are pinned to.
    fn parts(&self, wf: &Workflow, config: &RunConfig, pins: Vec<Option<String>>, held: Held, lease: Lease) -> Parts {
        let tenant = tenant_of(config);
        let policy = self.policy_for(tenant);
        let run_id = config.workflow_id.to_string();
        let kv: Arc<dyn crate::contract::KeyValue> = self.store.clone();
        Parts {
            grants: RunGrants::new(wf, policy, kv, &self.scratch_root, &run_id, tenant),
            executor: self.executor.clone(),
            store: self.store.clone(),
            lease: Arc::new(lease),
            lease_ms: self.lease_ms,
            drain: self.drain.clone(),
            pins,
            held,
            expr_budget: policy.expressions,
            fan_out_limits: policy.fan_out,
            memo_max_bytes: policy.memo_max_bytes,
            engine: self.clone(),
        }
    }

    /// `Err` lists every node whose capabilities the policy of `tenant`
    /// does not allow.
    fn check_capabilities(&self, wf: &Workflow, tenant: &str) -> Result<(), StartError> {
        let problems = check_capabilities(wf, self.policy_for(tenant));
        if problems.is_empty() { Ok(()) } else { Err(StartError::Capabilities(problems)) }
    }

    /// Drives `run` on the current tokio runtime.
    fn spawn(&self, mut run: Run) -> RunHandle {
        let (sender, events) = RunEvents::channel();
        run.events = sender;
        let cancel = run.cancel.clone();
        let run_id = run.ids.run_id.clone();
        let task = tokio::spawn(run.drive());
        RunHandle { run_id, events, cancel, task }
    }
}
