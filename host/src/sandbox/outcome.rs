//! What one attempt produced: typed successes and failures, stats and logs.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The kind of work an emitted action asks for (the seed's `action_type` enum).
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

/// How a plugin classified its own failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginErrorKind {
    /// Transient: a retry may succeed.
    Retryable,
    /// Permanent: never retried.
    Fatal,
    /// The input breaks the step's contract: never retried.
    InvalidInput,
}

/// Why an attempt failed. Exactly one kind per failure; retry policies match on
/// [`StepFailure::kind`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepFailure {
    /// The attempt ran past its wall-time limit (host calls included).
    Timeout {
        /// The limit that was exceeded, in milliseconds.
        limit_ms: u64,
    },
    /// The attempt used up its fuel budget.
    OutOfFuel {
        /// The budget, in fuel units (about one per wasm instruction).
        budget: u64,
    },
    /// The guest asked for more linear memory (or table space) than allowed.
    MemoryLimit {
        /// The limit, in bytes.
        limit_bytes: u64,
        /// The size the guest asked to grow to, in bytes.
        requested_bytes: u64,
    },
    /// The guest trapped: a panic, an `unreachable`, a stack overflow, ...
    Trap {
        /// The trap's message, with the guest's panic message when it printed one.
        message: String,
        /// True when the trap is a stack overflow.
        stack_overflow: bool,
    },
    /// The plugin returned an error of its own.
    PluginError {
        /// How the plugin classified it.
        error_kind: PluginErrorKind,
        /// The plugin's message.
        message: String,
    },
    /// The plugin returned something that breaks the contract: not JSON, too
    /// large, an action without a target, ...
    InvalidOutput {
        /// What is wrong with it.
        reason: String,
    },
    /// The component could not be used: not a component, wrong world, ...
    ComponentInvalid {
        /// Why.
        reason: String,
    },
    /// The component's circuit breaker is open: the attempt was not run.
    CircuitOpen {
        /// The component.
        component: String,
        /// When the breaker lets a probe through, in milliseconds from now.
        retry_after_ms: u64,
    },
}

impl StepFailure {
    /// The failure's kind as the snake_case name used in JSON, policies and exit codes.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::OutOfFuel { .. } => "out_of_fuel",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::Trap { .. } => "trap",
            Self::PluginError { .. } => "plugin_error",
            Self::InvalidOutput { .. } => "invalid_output",
            Self::ComponentInvalid { .. } => "component_invalid",
            Self::CircuitOpen { .. } => "circuit_open",
        }
    }

    /// Whether a retry could possibly help. Fatal and invalid-input plugin
    /// errors, invalid components and invalid outputs are never retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::PluginError { error_kind, .. } => *error_kind == PluginErrorKind::Retryable,
            Self::ComponentInvalid { .. } | Self::InvalidOutput { .. } => false,
            Self::Timeout { .. }
            | Self::OutOfFuel { .. }
            | Self::MemoryLimit { .. }
            | Self::Trap { .. }
            | Self::CircuitOpen { .. } => true,
        }
    }
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { limit_ms } => write!(
                f,
                "timeout: the step ran longer than its {limit_ms} ms wall-time limit; raise timeout_ms or make the step faster"
            ),
            Self::OutOfFuel { budget } => write!(
                f,
                "out_of_fuel: the step used up its budget of {budget} fuel units; raise fuel or make the step cheaper"
            ),
            Self::MemoryLimit { limit_bytes, requested_bytes } => write!(
                f,
                "memory_limit: the step asked for {} MiB of memory but its limit is {} MiB; raise memory_mb or use less",
                requested_bytes.div_ceil(1 << 20),
                limit_bytes / (1 << 20)
            ),
            Self::Trap { message, stack_overflow: true } => write!(f, "trap: stack overflow ({message})"),
            Self::Trap { message, .. } => write!(f, "trap: {message}"),
            Self::PluginError { error_kind, message } => {
                let k = match error_kind {
                    PluginErrorKind::Retryable => "retryable",
                    PluginErrorKind::Fatal => "fatal",
                    PluginErrorKind::InvalidInput => "invalid input",
                };
                write!(f, "plugin_error ({k}): {message}")
            }
            Self::InvalidOutput { reason } => write!(f, "invalid_output: {reason}"),
            Self::ComponentInvalid { reason } => write!(f, "component_invalid: {reason}"),
            Self::CircuitOpen { component, retry_after_ms } => write!(
                f,
                "circuit_open: the circuit breaker of {component} is open after repeated failures; it lets a probe \
                 through in {retry_after_ms} ms"
            ),
        }
    }
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
