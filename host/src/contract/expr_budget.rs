//! [`ExprBudget`]: how much work one CEL evaluation (`when`, `input`,
//! `for_each`) may do. The operator sets it in the policy's `[expressions]`
//! section; the engine enforces it on every evaluation.

use serde::{Deserialize, Serialize};

/// The bounds of one expression evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExprBudget {
    /// Most comprehension iterations (`map`, `filter`, `all`, `exists`, ...),
    /// summed over every comprehension of the evaluation.
    pub max_steps: u64,
    /// Most bytes the evaluation may build, estimated as 16 bytes per value
    /// plus the length of every string and byte string.
    pub max_built_bytes: u64,
    /// Longest one evaluation may take, in milliseconds (the run's global
    /// timeout and a cancel stop it sooner).
    pub max_time_ms: u64,
}

impl ExprBudget {
    /// The budget's bounds as the policy may set them: a typo cannot make
    /// the budget meaningless.
    pub const MAX_STEPS: u64 = 1_000_000_000;
    /// Upper bound of `max_built_bytes` in a policy.
    pub const MAX_BUILT_BYTES: u64 = 4 << 30;
    /// Upper bound of `max_time_ms` in a policy.
    pub const MAX_TIME_MS: u64 = 600_000;
}

impl Default for ExprBudget {
    fn default() -> Self {
        Self { max_steps: 1_000_000, max_built_bytes: 64 << 20, max_time_ms: 2_000 }
    }
}
