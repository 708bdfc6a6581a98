//! How a run is started or resumed ([`RunOptions`], [`ResumeOptions`]), and
//! why it could not be ([`StartError`]).

use super::environment::Environment;
use crate::contract::{ConfigLayer, ExecutionStatus};
use crate::sandbox::Limits;
use crate::store::StoreError;
use serde::{Deserialize, Serialize};

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
    /// The host's config file (`--config`), layered over the environment profile.
    pub config: Option<std::sync::Arc<ConfigLayer>>,
    /// Set for a sub-workflow's run: its parent run and node.
    pub parent: Option<crate::store::ParentRun>,
    /// The run whose effects this one's idempotency keys name (set for the
    /// run that compensates a completed child: it undoes the child's effects).
    pub keys_of: Option<String>,
    /// A digest of the request that submitted the run, journaled with it:
    /// the service answers the same request again with the same run, and
    /// another request under the same id with a conflict.
    pub request_digest: Option<String>,
    /// Per-attempt ceilings (a tenant's quota): each attempt gets the
    /// smaller of what its node asks for and these.
    pub ceiling: Option<Ceiling>,
    /// The run's W3C trace context (`traceparent`): the parent of its
    /// spans in every process that drives it. A fresh one when None.
    pub traceparent: Option<String>,
}

/// The most one attempt may be granted, whatever its node asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ceiling {
    /// Fuel per attempt.
    pub fuel: Option<u64>,
    /// Linear memory per attempt, in bytes.
    pub memory_bytes: Option<u64>,
    /// Wall time per attempt, in milliseconds.
    pub timeout_ms: Option<u64>,
}

impl Ceiling {
    /// `limits`, lowered to this ceiling.
    pub fn apply(&self, mut limits: Limits) -> Limits {
        if let Some(f) = self.fuel {
            limits.fuel = limits.fuel.min(f);
        }
        if let Some(m) = self.memory_bytes {
            limits.memory_bytes = limits.memory_bytes.min(m);
        }
        if let Some(t) = self.timeout_ms {
            limits.timeout = limits.timeout.min(std::time::Duration::from_millis(t));
        }
        limits
    }
}

/// The part of [`RunOptions`] journaled with a run (limits come from the
/// resuming process).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct StoredOptions {
    pub(super) environment: Environment,
    pub(super) jitter_seed: Option<u64>,
    pub(super) config: Option<ConfigLayer>,
    pub(super) keys_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) request_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ceiling: Option<Ceiling>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) traceparent: Option<String>,
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
    /// A node declares capabilities the operator's policy does not allow.
    #[error("the workflow's capabilities are not allowed:\n  - {}", .0.join("\n  - "))]
    Capabilities(Vec<String>),
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
