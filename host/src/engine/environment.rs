//! The environment profiles (development, staging, production): the
//! contract's `for_environment`, as the bottom [`ConfigLayer`] of a run's
//! settings (see `settings.rs`).

use crate::contract::{ConfigLayer, ParallelLayer, RetryLayer, TimeoutLayer};
use serde::{Deserialize, Serialize};

/// The ONEX orchestrator contract's environment profiles (`for_environment`):
/// host defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// Fast feedback: 1 retry after 100 ms (no backoff), 2 parallel steps,
    /// 60 s steps, fail fast.
    #[default]
    Development,
    /// 3 retries from 1 s, 5 parallel steps, continue on error.
    Staging,
    /// 5 retries from 500 ms, 10 parallel steps, 20 s steps, retry.
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

    /// The profile's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }

    /// The profile as the contract's `for_environment` gives it. Its
    /// `global_timeout_ms` is left out: the workflow type's default timeout
    /// (24 h for approval, 10 s for health checks) is the more specific one.
    pub fn profile(self) -> ConfigLayer {
        let (retries, delay, exponential, parallel, balanced, step_timeout, strategy) = match self {
            Self::Development => (1, 100, false, 2, false, Some(60_000), "fail_fast"),
            Self::Staging => (3, 1000, true, 5, false, None, "continue_on_error"),
            Self::Production => (5, 500, true, 10, true, Some(20_000), "retry"),
        };
        ConfigLayer {
            retry_config: Some(RetryLayer {
                max_retries: Some(retries),
                retry_delay_ms: Some(delay),
                exponential_backoff: Some(exponential),
                ..Default::default()
            }),
            parallel_config: Some(ParallelLayer {
                max_parallel_steps: Some(parallel),
                load_balancing_enabled: Some(balanced),
                ..Default::default()
            }),
            timeout_config: Some(TimeoutLayer { step_timeout_ms: step_timeout, ..Default::default() }),
            failure_strategy: Some(strategy.into()),
            ..Default::default()
        }
    }
}
