//! Why an attempt failed: one [`StepFailure`] per failure, and its
//! [`FailureKind`], the name that retry policies, journals, JSON and exit
//! codes all use.

use serde::{Deserialize, Serialize};
use std::fmt;

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
    /// The failure's kind (its snake_case name is used in JSON, policies and exit codes).
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Timeout { .. } => FailureKind::Timeout,
            Self::OutOfFuel { .. } => FailureKind::OutOfFuel,
            Self::MemoryLimit { .. } => FailureKind::MemoryLimit,
            Self::Trap { .. } => FailureKind::Trap,
            Self::PluginError { .. } => FailureKind::PluginError,
            Self::InvalidOutput { .. } => FailureKind::InvalidOutput,
            Self::ComponentInvalid { .. } => FailureKind::ComponentInvalid,
            Self::CircuitOpen { .. } => FailureKind::CircuitOpen,
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

/// The kind of a [`StepFailure`], without its details: what a retry policy's
/// `retry_on` lists, what the journal records as `error_type`, and what picks
/// `weft plugin call`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The wall-time limit passed.
    Timeout,
    /// The fuel budget ran out.
    OutOfFuel,
    /// The memory limit was hit.
    MemoryLimit,
    /// The guest trapped.
    Trap,
    /// The plugin returned an error of its own.
    PluginError,
    /// The plugin's output breaks the contract.
    InvalidOutput,
    /// The component cannot be used.
    ComponentInvalid,
    /// The component's circuit breaker is open.
    CircuitOpen,
}

impl FailureKind {
    /// Every kind, in the enum's order.
    pub const ALL: [Self; 8] = [
        Self::Timeout,
        Self::OutOfFuel,
        Self::MemoryLimit,
        Self::Trap,
        Self::PluginError,
        Self::InvalidOutput,
        Self::ComponentInvalid,
        Self::CircuitOpen,
    ];

    /// The kinds a retry policy retries by default (`plugin_error` means
    /// retryable plugin errors only).
    pub const RETRIED_BY_DEFAULT: [Self; 5] =
        [Self::Timeout, Self::OutOfFuel, Self::MemoryLimit, Self::Trap, Self::PluginError];

    /// The kinds `retry_on` may name: the default ones, and `circuit_open` by choice.
    pub const RETRYABLE: [Self; 6] =
        [Self::Timeout, Self::OutOfFuel, Self::MemoryLimit, Self::Trap, Self::PluginError, Self::CircuitOpen];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::OutOfFuel => "out_of_fuel",
            Self::MemoryLimit => "memory_limit",
            Self::Trap => "trap",
            Self::PluginError => "plugin_error",
            Self::InvalidOutput => "invalid_output",
            Self::ComponentInvalid => "component_invalid",
            Self::CircuitOpen => "circuit_open",
        }
    }

    /// The kind with this snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for FailureKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for FailureKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
