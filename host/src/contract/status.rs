//! A run's overall status.

use serde::{Deserialize, Serialize};

/// Overall status (the ONEX orchestrator contract's `execution_status` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Not started.
    Pending,
    /// In progress.
    Running,
    /// Suspended.
    Paused,
    /// Every step completed or was skipped.
    Completed,
    /// A step failed for good, or the run timed out.
    Failed,
    /// Cancelled by the caller.
    Cancelled,
}

impl ExecutionStatus {
    /// Every status, in the enum's order.
    pub const ALL: [Self; 6] =
        [Self::Pending, Self::Running, Self::Paused, Self::Completed, Self::Failed, Self::Cancelled];

    /// The snake_case name used in JSON and in the run store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status with this snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}
