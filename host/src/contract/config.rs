//! The ONEX orchestrator contract's config (`OrchestratorConfig`), as one
//! layer: every field optional, so that a config file, a workflow's
//! `coordination_rules.config` and the environment profiles stack. Unknown
//! keys are refused (the contract's `extra="forbid"`), and [`ConfigLayer::check`]
//! reports every value outside the contract's bounds.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One layer of the contract's config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    /// Retry behaviour (`RetryConfig`).
    pub retry_config: Option<RetryLayer>,
    /// Parallel execution (`ParallelConfig`).
    pub parallel_config: Option<ParallelLayer>,
    /// Timeouts (`TimeoutConfig`).
    pub timeout_config: Option<TimeoutLayer>,
    /// fail_fast, continue_on_error, retry or compensate.
    pub failure_strategy: Option<String>,
    /// `false`: steps run in the order listed, and a step listed before one
    /// of its dependencies is an error.
    pub dependency_resolution_enabled: Option<bool>,
    /// Cycles are always refused (a cycle cannot run); `false` is accepted
    /// and changes nothing.
    pub cycle_detection_enabled: Option<bool>,
    /// `false`: the output's `actions_emitted` is left empty (actions are
    /// still delivered and journaled).
    pub track_actions: Option<bool>,
    /// Most actions one run may emit, 1..=100000: the step that would pass
    /// it fails with `action_limit`.
    pub max_actions_per_workflow: Option<u64>,
    /// Free-form settings, visible to expressions as `config`.
    pub domain_specific_config: Option<Map<String, Value>>,
}

/// The contract's `RetryConfig`, as a layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryLayer {
    /// Retries after the first attempt, 0..=10.
    pub max_retries: Option<u32>,
    /// Delay before the first retry, 100..=60000 ms.
    pub retry_delay_ms: Option<u64>,
    /// `false`: every retry waits `retry_delay_ms`.
    pub exponential_backoff: Option<bool>,
    /// Growth of each further delay, 1..=5.
    pub backoff_multiplier: Option<f64>,
    /// Cap on any one delay, 1000..=300000 ms.
    pub max_retry_delay_ms: Option<u64>,
}

/// The contract's `ParallelConfig`, as a layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParallelLayer {
    /// Steps in flight at once in the parallel modes, 1..=100.
    pub max_parallel_steps: Option<u32>,
    /// Steps per wave in batch mode, 1..=1000.
    pub batch_size: Option<u32>,
    /// Accepted: one process runs one run's steps; spreading runs over
    /// workers is the store's job, not a per-run switch.
    pub load_balancing_enabled: Option<bool>,
    /// Accepted: every step always runs in its own sandbox; isolation is the
    /// host's guarantee, not a workflow's choice.
    pub step_isolation: Option<bool>,
}

/// The contract's `TimeoutConfig`, as a layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutLayer {
    /// Whole-run timeout, 1000..=3600000 ms.
    pub global_timeout_ms: Option<u64>,
    /// Per-attempt timeout of nodes without `timeout_ms`, 100..=300000 ms.
    pub step_timeout_ms: Option<u64>,
    /// Graceful shutdown budget, 1000..=60000 ms (checked and kept; the
    /// drain on SIGTERM that spends it belongs to the workers).
    pub shutdown_timeout_ms: Option<u64>,
}

impl ConfigLayer {
    /// Every value outside the contract's bounds, each naming its field.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut range = |field: &str, v: Option<f64>, lo: f64, hi: f64| {
            if let Some(v) = v
                && !(lo..=hi).contains(&v)
            {
                problems.push(format!("{field} is {v}; it must be between {lo} and {hi}"));
            }
        };
        if let Some(r) = &self.retry_config {
            range("retry_config.max_retries", r.max_retries.map(f64::from), 0.0, 10.0);
            range("retry_config.retry_delay_ms", r.retry_delay_ms.map(|v| v as f64), 100.0, 60_000.0);
            range("retry_config.backoff_multiplier", r.backoff_multiplier, 1.0, 5.0);
            range("retry_config.max_retry_delay_ms", r.max_retry_delay_ms.map(|v| v as f64), 1000.0, 300_000.0);
        }
        if let Some(p) = &self.parallel_config {
            range("parallel_config.max_parallel_steps", p.max_parallel_steps.map(f64::from), 1.0, 100.0);
            range("parallel_config.batch_size", p.batch_size.map(f64::from), 1.0, 1000.0);
        }
        if let Some(t) = &self.timeout_config {
            range("timeout_config.global_timeout_ms", t.global_timeout_ms.map(|v| v as f64), 1000.0, 3_600_000.0);
            range("timeout_config.step_timeout_ms", t.step_timeout_ms.map(|v| v as f64), 100.0, 300_000.0);
            range("timeout_config.shutdown_timeout_ms", t.shutdown_timeout_ms.map(|v| v as f64), 1000.0, 60_000.0);
        }
        range("max_actions_per_workflow", self.max_actions_per_workflow.map(|v| v as f64), 1.0, 100_000.0);
        if let Some(s) = &self.failure_strategy
            && !["fail_fast", "continue_on_error", "retry", "compensate"].contains(&s.as_str())
        {
            problems.push(format!(
                "failure_strategy is `{s}`; it must be one of fail_fast, continue_on_error, retry, compensate"
            ));
        }
        problems
    }

    /// This layer with `over`'s fields on top (a field `over` gives wins).
    pub fn with(&self, over: &ConfigLayer) -> ConfigLayer {
        fn pick<T: Clone>(over: &Option<T>, under: &Option<T>) -> Option<T> {
            over.clone().or_else(|| under.clone())
        }
        let retry = match (&self.retry_config, &over.retry_config) {
            (Some(u), Some(o)) => Some(RetryLayer {
                max_retries: pick(&o.max_retries, &u.max_retries),
                retry_delay_ms: pick(&o.retry_delay_ms, &u.retry_delay_ms),
                exponential_backoff: pick(&o.exponential_backoff, &u.exponential_backoff),
                backoff_multiplier: pick(&o.backoff_multiplier, &u.backoff_multiplier),
                max_retry_delay_ms: pick(&o.max_retry_delay_ms, &u.max_retry_delay_ms),
            }),
            (u, o) => pick(o, u),
        };
        let parallel = match (&self.parallel_config, &over.parallel_config) {
            (Some(u), Some(o)) => Some(ParallelLayer {
                max_parallel_steps: pick(&o.max_parallel_steps, &u.max_parallel_steps),
                batch_size: pick(&o.batch_size, &u.batch_size),
                load_balancing_enabled: pick(&o.load_balancing_enabled, &u.load_balancing_enabled),
                step_isolation: pick(&o.step_isolation, &u.step_isolation),
            }),
            (u, o) => pick(o, u),
        };
        let timeout = match (&self.timeout_config, &over.timeout_config) {
            (Some(u), Some(o)) => Some(TimeoutLayer {
                global_timeout_ms: pick(&o.global_timeout_ms, &u.global_timeout_ms),
                step_timeout_ms: pick(&o.step_timeout_ms, &u.step_timeout_ms),
                shutdown_timeout_ms: pick(&o.shutdown_timeout_ms, &u.shutdown_timeout_ms),
            }),
            (u, o) => pick(o, u),
        };
        ConfigLayer {
            retry_config: retry,
            parallel_config: parallel,
            timeout_config: timeout,
            failure_strategy: pick(&over.failure_strategy, &self.failure_strategy),
            dependency_resolution_enabled: pick(
                &over.dependency_resolution_enabled,
                &self.dependency_resolution_enabled,
            ),
            cycle_detection_enabled: pick(&over.cycle_detection_enabled, &self.cycle_detection_enabled),
            track_actions: pick(&over.track_actions, &self.track_actions),
            max_actions_per_workflow: pick(&over.max_actions_per_workflow, &self.max_actions_per_workflow),
            domain_specific_config: match (&self.domain_specific_config, &over.domain_specific_config) {
                (Some(u), Some(o)) => {
                    let mut m = u.clone();
                    m.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
                    Some(m)
                }
                (u, o) => pick(o, u),
            },
        }
    }

    /// Parses a config document (JSON, or YAML through the caller), naming
    /// the unknown or mistyped key by its path (`retry_config.max_retries`).
    pub fn from_json(v: Value) -> Result<Self, String> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            if path == "." { e.inner().to_string() } else { format!("`{path}`: {}", e.inner()) }
        })
    }
}
