//! The environment profiles (development, staging, production): the
//! defaults a run takes where neither its input nor its workflow says.

use crate::workflow::{FailureStrategy, RetryPolicy};
use serde::{Deserialize, Serialize};

/// The ONEX orchestrator contract's environment profiles (`for_environment`):
/// host defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// Fast feedback: 1 retry after 100 ms, 2 parallel steps, fail fast.
    #[default]
    Development,
    /// 3 retries from 1 s, 5 parallel steps, continue on error.
    Staging,
    /// 5 retries from 500 ms, 10 parallel steps, retry.
    Production,
}

impl Environment {
    /// Parses a profile name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "development" | "dev" => Self::Development,
            "staging" => Self::Staging,
            "production" | "prod" => Self::Production,
            _ => return None,
        })
    }

    /// The profile's default retry policy.
    pub fn retry_policy(self, retries: Option<u32>) -> RetryPolicy {
        let mut p = RetryPolicy::with_retries(retries.unwrap_or(match self {
            Self::Development => 1,
            Self::Staging => 3,
            Self::Production => 5,
        }));
        match self {
            Self::Development => {
                p.initial_delay_ms = 100;
                p.multiplier = 1.0;
            }
            Self::Staging => p.initial_delay_ms = 1000,
            Self::Production => p.initial_delay_ms = 500,
        }
        p
    }

    pub(super) fn max_parallel_steps(self) -> u32 {
        match self {
            Self::Development => 2,
            Self::Staging => 5,
            Self::Production => 10,
        }
    }

    /// Steps per wave in batch mode: the contract's `ParallelConfig.batch_size`
    /// default, which no profile changes.
    pub(super) fn batch_size(self) -> u32 {
        10
    }

    pub(super) fn failure_strategy(self) -> FailureStrategy {
        match self {
            Self::Development => FailureStrategy::FailFast,
            Self::Staging => FailureStrategy::ContinueOnError,
            Self::Production => FailureStrategy::Retry,
        }
    }
}
