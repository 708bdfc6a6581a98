//! A run's settings: the contract's config resolved from its layers, lowest
//! first: the contract's defaults, the environment profile, the host's config
//! file (`--config`), then the workflow's `coordination_rules.config`. The
//! run input and the workflow's own `coordination_rules` keys then win over
//! all of them (`input.rs`).

use super::environment::Environment;
use crate::contract::ConfigLayer;
use crate::workflow::{FailureStrategy, RetryPolicy};
use serde::Serialize;
use serde_json::{Map, Value};

/// Every field of the contract's config, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// Retries of a node without its own policy.
    pub max_retries: u32,
    /// Delay before the first retry.
    pub retry_delay_ms: u64,
    /// Whether each further delay grows by `backoff_multiplier`.
    pub exponential_backoff: bool,
    /// Growth of each further delay.
    pub backoff_multiplier: f64,
    /// Cap on any one delay.
    pub max_retry_delay_ms: u64,
    /// Steps in flight at once in the parallel modes.
    pub max_parallel_steps: u32,
    /// Steps per wave in batch mode.
    pub batch_size: u32,
    /// Accepted and reported; no per-run effect (see [`crate::contract::ParallelLayer`]).
    pub load_balancing_enabled: bool,
    /// Accepted and reported; every step is always isolated.
    pub step_isolation: bool,
    /// The whole-run timeout, when a layer gives one (else the workflow type's default).
    pub global_timeout_ms: Option<u64>,
    /// Per-attempt timeout of nodes without `timeout_ms`.
    pub step_timeout_ms: u64,
    /// Graceful shutdown budget.
    pub shutdown_timeout_ms: u64,
    /// The default failure strategy.
    pub failure_strategy: FailureStrategy,
    /// `false`: steps run in the order listed.
    pub dependency_resolution_enabled: bool,
    /// Always on in effect: a cycle cannot run.
    pub cycle_detection_enabled: bool,
    /// Whether the output lists the actions emitted.
    pub track_actions: bool,
    /// Most actions one run may emit.
    pub max_actions_per_workflow: u64,
    /// Free-form settings, visible to expressions as `config`.
    pub domain_specific_config: Map<String, Value>,
}

impl Settings {
    /// The settings of `env` with `layers` on top (later ones win), or every
    /// value out of bounds. The profile's own values are within them.
    pub fn resolve(env: Environment, layers: &[&ConfigLayer]) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut merged = env.profile();
        for layer in layers {
            problems.extend(layer.check());
            merged = merged.with(layer);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let retry = merged.retry_config.unwrap_or_default();
        let parallel = merged.parallel_config.unwrap_or_default();
        let timeout = merged.timeout_config.unwrap_or_default();
        Ok(Self {
            max_retries: retry.max_retries.unwrap_or(3),
            retry_delay_ms: retry.retry_delay_ms.unwrap_or(1000),
            exponential_backoff: retry.exponential_backoff.unwrap_or(true),
            backoff_multiplier: retry.backoff_multiplier.unwrap_or(2.0),
            max_retry_delay_ms: retry.max_retry_delay_ms.unwrap_or(30_000),
            max_parallel_steps: parallel.max_parallel_steps.unwrap_or(5),
            batch_size: parallel.batch_size.unwrap_or(10),
            load_balancing_enabled: parallel.load_balancing_enabled.unwrap_or(false),
            step_isolation: parallel.step_isolation.unwrap_or(true),
            global_timeout_ms: timeout.global_timeout_ms,
            step_timeout_ms: timeout.step_timeout_ms.unwrap_or(30_000),
            shutdown_timeout_ms: timeout.shutdown_timeout_ms.unwrap_or(10_000),
            failure_strategy: merged
                .failure_strategy
                .as_deref()
                .and_then(FailureStrategy::parse)
                .unwrap_or(FailureStrategy::FailFast),
            dependency_resolution_enabled: merged.dependency_resolution_enabled.unwrap_or(true),
            cycle_detection_enabled: merged.cycle_detection_enabled.unwrap_or(true),
            track_actions: merged.track_actions.unwrap_or(true),
            max_actions_per_workflow: merged.max_actions_per_workflow.unwrap_or(1000),
            domain_specific_config: merged.domain_specific_config.unwrap_or_default(),
        })
    }

    /// The retry policy of a node without its own: `retries` (the
    /// workflow's `coordination_rules.max_retries`) or the settings' count.
    pub fn retry_policy(&self, retries: Option<u32>) -> RetryPolicy {
        let mut p = RetryPolicy::with_retries(retries.unwrap_or(self.max_retries));
        p.initial_delay_ms = self.retry_delay_ms;
        p.multiplier = if self.exponential_backoff { self.backoff_multiplier } else { 1.0 };
        p.max_delay_ms = self.max_retry_delay_ms.max(self.retry_delay_ms);
        p
    }
}
