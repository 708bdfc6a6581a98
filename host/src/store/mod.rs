//! Run persistence: the write-ahead journal behind durable runs.
//!
//! A [`RunStore`] keeps, for every run, one row (definition, input, pinned
//! component digests, status, owner lease, cancel flag) and an append-only
//! journal of [`JournalEntry`]s. The engine appends each transition before it
//! acts on it, so a run can be rebuilt from its journal after a crash.
//!
//! Two implementations: [`MemoryStore`] (per process) and [`SqliteStore`] (the
//! embedded default: one file, WAL). Every implementation must pass the
//! conformance suite in `tests/store.rs`. The trait is asynchronous and every
//! write is fenced by the owner's lease, so that a server-backed store
//! (PostgreSQL with leases) can implement it unchanged.

mod memory;
mod sqlite;

pub use memory::MemoryStore;
pub use sqlite::{SCHEMA_VERSION, SqliteStore, SyncMode};

use crate::engine::{ActionRecord, ErrorRecord, ExecutionStatus, RunOutput};
use crate::sandbox::AttemptReport;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a store call returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No run has this id.
    #[error("no run has the id `{0}`; `weft runs list` shows the runs in this store")]
    NotFound(String),
    /// A run with this id exists already.
    #[error(
        "a run with the id `{0}` already exists in this store (a workflow_id names one run): omit `workflow_id` \
         from the input to get a fresh one, or look at that run with `weft runs show {0}`"
    )]
    Duplicate(String),
    /// Another process owns the run.
    #[error("run `{run_id}` is owned by `{owner}` (lease valid for {remaining_ms} ms more); wait for it or cancel it")]
    Owned {
        /// The run.
        run_id: String,
        /// Who holds the lease.
        owner: String,
        /// How long the lease still runs.
        remaining_ms: u64,
    },
    /// The run has finished: it cannot be claimed or driven again.
    #[error("run `{0}` has already finished; `weft runs show {0}` shows how")]
    Finished(String),
    /// This process no longer holds the run's lease (another took it over).
    #[error("run `{0}` is no longer owned by this process: its lease was taken over; stopping without writing")]
    LeaseLost(String),
    /// The database file is not one Weft can use.
    #[error("{0}")]
    Incompatible(String),
    /// The backend failed (I/O, disk full, corruption, ...).
    #[error("the run store failed: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Backend(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Backend(format!("a stored record is not valid JSON: {e}"))
    }
}

/// A component a run uses, pinned by digest when the run was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedComponent {
    /// The resolved path of the component file.
    pub path: String,
    /// Its `sha256:` digest.
    pub digest: String,
}

/// Everything needed to start (or restart) a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    /// The run id (the input's `workflow_id`).
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The file the workflow came from, when it came from a file.
    pub workflow_path: Option<String>,
    /// The workflow's YAML text, as run.
    pub definition: String,
    /// The directory relative component paths are resolved against.
    pub base_dir: String,
    /// The run input, as given.
    pub input: Value,
    /// Engine options (environment, jitter seed), as JSON.
    pub options: Value,
    /// Per node id, the component it runs.
    pub components: BTreeMap<String, PinnedComponent>,
    /// The run this one replays (a dead-letter replay), if any.
    pub replay_of: Option<String>,
    /// The process that will drive the run.
    pub owner: String,
    /// How long the owner's lease lasts, in milliseconds.
    pub lease_ms: u64,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// How it was started.
    #[serde(flatten)]
    pub run: NewRun,
    /// Its status (`running` until it finishes).
    pub status: ExecutionStatus,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// The output contract, once finished.
    pub output: Option<Arc<RunOutput>>,
    /// Whether a cancel was requested.
    pub cancel_requested: bool,
    /// Unix milliseconds until which `run.owner` holds the lease (0: none).
    pub lease_until_ms: u64,
}

/// A line of `weft runs list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// Its status.
    pub status: ExecutionStatus,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// The current owner, if a lease is held.
    pub owner: Option<String>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// Only runs with this status.
    pub status: Option<ExecutionStatus>,
    /// Only runs of this workflow (name).
    pub workflow: Option<String>,
    /// At most this many, newest first (0: all).
    pub limit: usize,
}

/// One transition of a run, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JournalEntry {
    /// The run was created.
    RunCreated {
        /// When.
        start_time: String,
    },
    /// A process began (or resumed) driving the run.
    RunResumed {
        /// The process.
        owner: String,
    },
    /// A step was decided to run, with this input.
    StepScheduled {
        /// The step.
        step_id: String,
        /// Its input object (shared with the run's state, not copied).
        input: Arc<Map<String, Value>>,
    },
    /// An attempt is about to run.
    AttemptStarted {
        /// The step.
        step_id: String,
        /// The attempt number, from 1.
        attempt: u32,
    },
    /// An attempt ended.
    AttemptFinished {
        /// The step.
        step_id: String,
        /// The attempt number.
        attempt: u32,
        /// The typed outcome, fuel, time, memory and log lines. For the
        /// attempt that completed its step, the output and actions are not
        /// repeated here (null and empty): they are in the `step_completed`
        /// entry written in the same transaction.
        report: AttemptReport,
    },
    /// A step completed.
    StepCompleted {
        /// The step.
        step_id: String,
        /// Its output.
        output: Value,
        /// The actions it emitted, with their ids.
        actions: Vec<ActionRecord>,
    },
    /// A step failed for good.
    StepFailed {
        /// The step.
        step_id: String,
        /// The failure kind.
        error_type: String,
        /// What happened.
        message: String,
        /// Tolerated by `continue_on_error`.
        tolerated: bool,
    },
    /// A step was skipped.
    StepSkipped {
        /// The step.
        step_id: String,
        /// Why.
        reason: String,
    },
    /// The run stopped scheduling with this status; compensation may follow.
    RunStopping {
        /// The status it will end with.
        status: ExecutionStatus,
        /// Run-level errors (timeout, cancel).
        errors: Vec<ErrorRecord>,
        /// Parallel batches launched so far (for the output after a resume).
        #[serde(default)]
        parallel_executions: u64,
    },
    /// Compensation of a step is about to run.
    CompensationStarted {
        /// The step.
        step_id: String,
    },
    /// Compensation of a step ended.
    CompensationFinished {
        /// The step.
        step_id: String,
        /// Whether `compensate` succeeded.
        ok: bool,
        /// Attempts it took.
        attempts: u32,
        /// The last error, if it failed.
        error: Option<String>,
    },
    /// The run failed terminally and went to the dead-letter queue.
    DeadLettered {
        /// The first step that failed.
        step_id: String,
        /// Its failure kind.
        error_type: String,
        /// Its message.
        message: String,
    },
    /// The run finished with this output.
    RunFinished {
        /// The output contract.
        output: Arc<RunOutput>,
    },
}

impl JournalEntry {
    /// The entry's kind, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RunCreated { .. } => "run_created",
            Self::RunResumed { .. } => "run_resumed",
            Self::StepScheduled { .. } => "step_scheduled",
            Self::AttemptStarted { .. } => "attempt_started",
            Self::AttemptFinished { .. } => "attempt_finished",
            Self::StepCompleted { .. } => "step_completed",
            Self::StepFailed { .. } => "step_failed",
            Self::StepSkipped { .. } => "step_skipped",
            Self::RunStopping { .. } => "run_stopping",
            Self::CompensationStarted { .. } => "compensation_started",
            Self::CompensationFinished { .. } => "compensation_finished",
            Self::DeadLettered { .. } => "dead_lettered",
            Self::RunFinished { .. } => "run_finished",
        }
    }

    /// The step the entry is about, if any.
    pub fn step_id(&self) -> Option<&str> {
        match self {
            Self::StepScheduled { step_id, .. }
            | Self::AttemptStarted { step_id, .. }
            | Self::AttemptFinished { step_id, .. }
            | Self::StepCompleted { step_id, .. }
            | Self::StepFailed { step_id, .. }
            | Self::StepSkipped { step_id, .. }
            | Self::CompensationStarted { step_id }
            | Self::CompensationFinished { step_id, .. }
            | Self::DeadLettered { step_id, .. } => Some(step_id),
            _ => None,
        }
    }
}

/// A journal entry as stored: its sequence number and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journaled {
    /// 1, 2, 3, ... within the run.
    pub seq: u64,
    /// When it was written (RFC 3339).
    pub at: String,
    /// The entry.
    #[serde(flatten)]
    pub entry: JournalEntry,
}

/// A run in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DlqEntry {
    /// The failed run.
    pub run_id: String,
    /// Its workflow.
    pub workflow: String,
    /// The first step that failed.
    pub step_id: String,
    /// Its failure kind.
    pub error_type: String,
    /// Its message.
    pub message: String,
    /// When the run went to the queue.
    pub at: String,
    /// The run that replayed it, once replayed.
    pub replayed_as: Option<String>,
}

/// A component's circuit breaker as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerRecord {
    /// `closed`, `open` or `half_open`.
    pub state: BreakerState,
    /// Consecutive failures while closed.
    pub failures: u32,
    /// Unix ms when it opened, or when the half-open probe began.
    pub since_ms: u64,
    /// Bumped on every write (compare-and-swap).
    pub version: u64,
}

/// The three states of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls fail at once until the cooldown ends.
    Open,
    /// One probe call is in flight; the rest fail at once.
    HalfOpen,
}

impl BreakerState {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "closed" => Self::Closed,
            "open" => Self::Open,
            "half_open" => Self::HalfOpen,
            _ => return None,
        })
    }
}

/// What `weft health` reports about a store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreInfo {
    /// `sqlite` or `memory`.
    pub kind: String,
    /// Where it is (`:memory:` for the in-memory store).
    pub location: String,
    /// The schema version.
    pub schema_version: u32,
    /// Runs with status `running`.
    pub active_runs: u64,
}

/// Run persistence. Every method is atomic; writes to a run are fenced by the
/// owner's lease (a write by a process whose lease was taken over fails with
/// [`StoreError::LeaseLost`]).
pub trait RunStore: Send + Sync + 'static {
    /// Reachability and identity, for health checks.
    fn info(&self) -> StoreFuture<'_, StoreInfo>;
    /// Creates a run (status `running`, leased to `run.owner`) and journals
    /// [`JournalEntry::RunCreated`] plus `first` in the same transaction.
    fn create_run<'a>(&'a self, run: &'a NewRun, first: &'a [JournalEntry]) -> StoreFuture<'a, ()>;
    /// Appends entries atomically, after the run's last one. A
    /// [`JournalEntry::RunFinished`] also sets the run's status and output and
    /// releases the lease; a [`JournalEntry::DeadLettered`] also adds the run
    /// to the dead-letter queue.
    fn append<'a>(&'a self, run_id: &'a str, owner: &'a str, entries: Vec<JournalEntry>) -> StoreFuture<'a, ()>;
    /// The run's journal, in order.
    fn journal<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<Journaled>>;
    /// The run.
    fn get_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, RunRecord>;
    /// Runs, newest first.
    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> StoreFuture<'a, Vec<RunSummary>>;
    /// Takes the run's lease for `owner` until `now_ms + lease_ms`. Succeeds
    /// when the run is unowned, owned by `owner`, its lease expired, or
    /// `steal_from` names the current owner (known to be dead). Fails with
    /// [`StoreError::Owned`] otherwise.
    fn claim<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        lease_ms: u64,
        now_ms: u64,
        steal_from: Option<&'a str>,
    ) -> StoreFuture<'a, ()>;
    /// Extends the lease; returns whether a cancel was requested.
    fn heartbeat<'a>(&'a self, run_id: &'a str, owner: &'a str, lease_ms: u64, now_ms: u64) -> StoreFuture<'a, bool>;
    /// Asks whoever drives the run to cancel it. Returns false when the run
    /// has already finished.
    fn request_cancel<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool>;
    /// The dead-letter queue, oldest first.
    fn dlq_list(&self) -> StoreFuture<'_, Vec<DlqEntry>>;
    /// Records that `run_id` was replayed as `new_run_id`.
    fn dlq_mark_replayed<'a>(&'a self, run_id: &'a str, new_run_id: &'a str) -> StoreFuture<'a, ()>;
    /// A component's breaker, if it has one.
    fn breaker_load<'a>(&'a self, component: &'a str) -> StoreFuture<'a, Option<BreakerRecord>>;
    /// Writes `next` if the stored version is still `expected` (0: absent).
    /// Returns false when another writer got there first.
    fn breaker_cas<'a>(&'a self, component: &'a str, expected: u64, next: &'a BreakerRecord) -> StoreFuture<'a, bool>;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// The current time as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// This process's owner name: `host:pid:random`.
pub fn process_owner() -> String {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER
        .get_or_init(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "localhost".into());
            let tag = uuid::Uuid::new_v4().simple().to_string();
            format!("{host}:{}:{}", std::process::id(), &tag[..8])
        })
        .clone()
}

/// Whether an owner name (from [`process_owner`]) is a process on this host
/// that no longer exists: its lease can be taken over at once.
pub fn owner_is_dead(owner: &str) -> bool {
    let mine = process_owner();
    let host = |o: &str| o.rsplitn(3, ':').nth(2).map(str::to_string);
    if owner == mine || host(owner) != host(&mine) {
        return false;
    }
    match owner.rsplit(':').nth(1).and_then(|p| p.parse::<u32>().ok()) {
        Some(pid) if cfg!(target_os = "linux") => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        _ => false,
    }
}

/// The status a batch of entries moves a run to, with its output.
fn finished_in(entries: &[JournalEntry]) -> Option<&Arc<RunOutput>> {
    entries.iter().find_map(|e| match e {
        JournalEntry::RunFinished { output } => Some(output),
        _ => None,
    })
}

/// The dead-letter record in a batch, if any.
fn dead_letter_in(entries: &[JournalEntry]) -> Option<(&str, &str, &str)> {
    entries.iter().find_map(|e| match e {
        JournalEntry::DeadLettered { step_id, error_type, message } => {
            Some((step_id.as_str(), error_type.as_str(), message.as_str()))
        }
        _ => None,
    })
}

fn parse_status(s: &str) -> Result<ExecutionStatus, StoreError> {
    ExecutionStatus::parse(s).ok_or_else(|| StoreError::Backend(format!("a stored run has the unknown status `{s}`")))
}

/// A store call whose work is already done.
fn ready<'a, T: Send + 'a>(r: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(r))
}
