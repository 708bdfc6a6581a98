//! What one attempt produced: a typed success or [`StepFailure`], what it
//! cost, and the lines the guest logged.

use super::failure::StepFailure;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kind of work an emitted action asks for (the ONEX orchestrator contract's `action_type` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Pure computation.
    Compute,
    /// A side effect on an external system.
    Effect,
    /// Aggregation of earlier results.
    Reduce,
    /// Coordination of further steps.
    Orchestrate,
    /// Anything else.
    Custom,
}

impl ActionKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compute => "compute",
            Self::Effect => "effect",
            Self::Reduce => "reduce",
            Self::Orchestrate => "orchestrate",
            Self::Custom => "custom",
        }
    }
}

/// An action a step emitted for another node (ModelAction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmittedAction {
    /// The kind of work.
    pub action_type: ActionKind,
    /// The node that should receive it.
    pub target_node: String,
    /// The action's data, always a JSON object.
    pub payload: Value,
}

/// A successful attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSuccess {
    /// The step's output (for `compensate`, `null`).
    pub output: Value,
    /// Actions the step emitted for other nodes.
    pub actions: Vec<EmittedAction>,
}

/// What an attempt cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptStats {
    /// Fuel units consumed (about one per wasm instruction).
    pub fuel_consumed: u64,
    /// Wall time from instantiation to the end of the call, in microseconds.
    pub wall_time_us: u64,
    /// The largest total linear memory the instance held, in bytes.
    pub peak_memory_bytes: u64,
    /// How long instantiating the component took, in microseconds (part
    /// of `wall_time_us`; 0 when it never got that far).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub instantiate_us: u64,
    /// How many times a capability refused the step something (each one is
    /// a `capability_denied` line in its log).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub capability_denials: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// The `weft:step/log` import.
    Log,
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
    /// The host, about the guest's logging (for example, lines dropped).
    Host,
}

/// Severity of a log line (the WIT `log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Very detailed diagnostics.
    Trace,
    /// Diagnostics for developers.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that was recovered from.
    Warn,
    /// Something failed.
    Error,
}

/// One line the guest logged during the attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// Where it came from.
    pub source: LogSource,
    /// The text (truncated to the per-line limit).
    pub message: String,
}

/// Everything the host knows about one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptReport {
    /// Success or the typed failure (flattened: a `status` field, then the
    /// success's fields or a `failure` object).
    #[serde(flatten, with = "outcome_serde")]
    pub outcome: Result<StepSuccess, StepFailure>,
    /// Fuel, wall time and peak memory.
    pub stats: AttemptStats,
    /// Log lines, in the order the guest wrote them (stdout/stderr last).
    pub logs: Vec<LogLine>,
}

impl AttemptReport {
    /// An attempt that failed before the guest ran (no cost, no logs).
    pub fn failed_early(failure: StepFailure) -> Self {
        Self { outcome: Err(failure), stats: AttemptStats::default(), logs: Vec::new() }
    }

    /// The failure, if the attempt failed.
    pub fn failure(&self) -> Option<&StepFailure> {
        self.outcome.as_ref().err()
    }
}

/// Serializes the outcome as `{"status": "succeeded", ...}` or
/// `{"status": "failed", "failure": {...}}`.
mod outcome_serde {
    use super::{StepFailure, StepSuccess};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(tag = "status", rename_all = "snake_case")]
    enum Repr {
        Succeeded(StepSuccess),
        Failed { failure: StepFailure },
    }

    pub fn serialize<S: Serializer>(v: &Result<StepSuccess, StepFailure>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Ok(ok) => Repr::Succeeded(ok.clone()),
            Err(e) => Repr::Failed { failure: e.clone() },
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Result<StepSuccess, StepFailure>, D::Error> {
        Ok(match Repr::deserialize(d)? {
            Repr::Succeeded(ok) => Ok(ok),
            Repr::Failed { failure } => Err(failure),
        })
    }
}
