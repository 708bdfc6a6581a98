//! What a store keeps besides the journal: the run's row and spec, list
//! lines and filters, dead-letter entries, circuit breakers, and the store's
//! own description for health checks.

use crate::contract::{ExecutionStatus, RunOutput};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A component a run uses, pinned by digest when the run was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedComponent {
    /// The resolved path of the component file.
    pub path: String,
    /// Its `sha256:` digest.
    pub digest: String,
}

/// A component's bytes, stored by digest with the runs that pin it, so that
/// a worker on another machine runs the step without the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentBlob {
    /// Its `sha256:` digest.
    pub digest: String,
    /// The component.
    pub bytes: std::sync::Arc<Vec<u8>>,
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
    /// The run this one replays (a dead-letter replay, or the compensation
    /// of a completed sub-workflow), if any.
    pub replay_of: Option<String>,
    /// The run and node this one is a sub-workflow of, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRun>,
    /// The text of every sub-workflow file the workflow nests, by key (the
    /// `workflow:` values that lead to it), as run: a resume nests what the
    /// run started with.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sub_definitions: BTreeMap<String, String>,
    /// The process that will drive the run.
    pub owner: String,
    /// How long the owner's lease lasts, in milliseconds.
    pub lease_ms: u64,
}

impl NewRun {
    /// The tenant the run belongs to: its input's `metadata.tenant`, or ''
    /// on a single-tenant host.
    pub fn tenant(&self) -> &str {
        self.input.get("metadata").and_then(|m| m.get("tenant")).and_then(Value::as_str).unwrap_or_default()
    }
}

/// Where a child run comes from: the parent run and its `orchestrator` node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRun {
    /// The parent run's id.
    pub run_id: String,
    /// The node that runs the child.
    pub step_id: String,
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
    /// Unix milliseconds until which `run.owner` holds the lease (0: none),
    /// by the store's clock.
    pub lease_until_ms: u64,
    /// Whether the lease is live now, by the store's clock.
    #[serde(default)]
    pub lease_live: bool,
    /// The lease's fencing epoch (0: never claimed).
    #[serde(default)]
    pub lease_epoch: u64,
    /// The run waits only on approval gates (its status stays `running`).
    #[serde(default)]
    pub paused: bool,
}

/// A signal delivered to an approval gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Its id: delivering the same id again changes nothing.
    pub signal_id: String,
    /// The decision, which becomes the gate's output.
    pub data: serde_json::Value,
    /// When it was delivered (RFC 3339).
    pub at: String,
}

/// What [`RunStore::signal_put`](super::RunStore::signal_put) did.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalPut {
    /// Stored: the gate will take it.
    Stored,
    /// A signal with this id was stored before: nothing changed.
    Duplicate,
    /// The gate already has another signal (its id): nothing changed.
    Conflict(String),
}

/// What [`RunStore::usage_add`](super::RunStore::usage_add) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageAdd {
    /// Added: the counter's total after.
    Added(u64),
    /// Not added, since the total would pass the limit: the total as it is.
    Over(u64),
}

/// A line of `weft runs list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// Its status: `paused` for a running run that waits only on approval gates.
    pub status: ExecutionStatus,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// The current owner, if a lease is held.
    pub owner: Option<String>,
    /// Its place in creation order (larger is newer): the keyset cursor of
    /// [`RunFilter::before`].
    #[serde(default)]
    pub seq: u64,
}

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// Only runs with this status.
    pub status: Option<ExecutionStatus>,
    /// Only runs of this workflow (name).
    pub workflow: Option<String>,
    /// Only runs of this tenant ('' is the single-tenant host's).
    pub tenant: Option<String>,
    /// Only runs older than the one with this [`RunSummary::seq`] (the next
    /// page of a keyset listing).
    pub before: Option<u64>,
    /// At most this many, newest first (0: all).
    pub limit: usize,
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

    pub(super) fn parse(s: &str) -> Option<Self> {
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
