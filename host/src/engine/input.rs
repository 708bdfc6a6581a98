//! The run's input (the ONEX orchestrator contract's input subcontract), and
//! the settings it resolves to once defaults and bounds are applied.

use super::environment::Environment;
use super::input_steps::{InputStep, StepTuning, tune};
use super::settings::Settings;
use crate::contract::ConfigLayer;
use crate::workflow::{ExecutionMode, FailureStrategy, Workflow, WorkflowType};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The run input, field for field as the ONEX orchestrator contract's input
/// subcontract. Every
/// field is optional; missing ones take the workflow's and the environment's
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// Unique workflow (run) identifier; a fresh UUID when absent.
    pub workflow_id: Option<Uuid>,
    /// One of the contract's workflow types.
    pub workflow_type: Option<String>,
    /// For tracing across services; a fresh UUID when absent.
    pub correlation_id: Option<Uuid>,
    /// sequential, parallel, conditional, batch or streaming.
    pub execution_mode: Option<String>,
    /// 1..=100.
    pub max_parallel_steps: Option<u32>,
    /// Steps per wave in batch mode, 1..=1000 (the contract's `ParallelConfig.batch_size`).
    pub batch_size: Option<u32>,
    /// 1000..=3600000.
    pub global_timeout_ms: Option<u64>,
    /// fail_fast, continue_on_error, retry, compensate.
    pub failure_strategy: Option<String>,
    /// Contract field: `true` means `failure_strategy: continue_on_error`, `false`
    /// any other (fail_fast unless given); contradicting `failure_strategy` is refused.
    pub continue_on_error: Option<bool>,
    /// Contract field: `false` runs the steps in the order listed, which must
    /// then respect every dependency (nothing is reordered).
    pub dependency_resolution_enabled: Option<bool>,
    /// Contract field: accepted, no effect on one host.
    pub load_balancing_enabled: Option<bool>,
    /// Contract field: the caller's creation time (ISO 8601); informational.
    pub timestamp: Option<String>,
    /// The contract's step definitions: with a workflow file, the nodes to
    /// run (and what they depend on) and their tuning; without one, the
    /// workflow itself.
    pub steps: Option<Vec<InputStep>>,
    /// The workflow's input data, visible to expressions as `context`.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Free-form metadata, visible to expressions as `metadata`.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// The run's settings after defaults and bounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunConfig {
    /// The run's id.
    pub workflow_id: Uuid,
    /// The workflow type.
    pub workflow_type: WorkflowType,
    /// Correlation id.
    pub correlation_id: Uuid,
    /// Scheduling mode.
    pub execution_mode: ExecutionMode,
    /// Concurrency bound (1 in sequential and conditional modes).
    pub max_parallel_steps: u32,
    /// Steps per wave in batch mode.
    pub batch_size: u32,
    /// Shards of one `for_each` node run at once: `max_parallel_steps`, in every mode.
    pub shard_parallelism: u32,
    /// Whole-run timeout.
    pub global_timeout_ms: u64,
    /// What to do on failure.
    pub failure_strategy: FailureStrategy,
    /// The environment profile in use.
    pub environment: Environment,
    /// The run's context.
    pub context: Map<String, Value>,
    /// The run's metadata.
    pub metadata: Map<String, Value>,
    /// The contract's config, resolved from its layers.
    pub settings: Settings,
    /// Per node, what the input's `steps` select and tune (empty: every
    /// node runs as defined).
    pub tuning: Vec<StepTuning>,
}

impl RunConfig {
    /// Whether node `i` runs in this run (the input's `steps` may leave it out).
    pub fn selected(&self, i: usize) -> bool {
        self.tuning.get(i).is_none_or(|t| t.selected)
    }
}

impl RunInput {
    /// Applies defaults (input, then the workflow file, then the host's
    /// `config` file, then the environment profile, then the contract's
    /// defaults) and checks bounds, reporting every problem.
    pub fn resolve(
        &self,
        wf: &Workflow,
        env: Environment,
        config: Option<&ConfigLayer>,
    ) -> Result<RunConfig, Vec<String>> {
        let mut problems = Vec::new();
        let layers: Vec<&ConfigLayer> = config.into_iter().chain(wf.rules.config.as_ref()).collect();
        let settings = match Settings::resolve(env, &layers) {
            Ok(s) => s,
            Err(p) => {
                problems.extend(p);
                Settings::resolve(env, &[]).map_err(|_| problems.clone())?
            }
        };
        let workflow_type = match &self.workflow_type {
            None => wf.workflow_type,
            Some(s) => WorkflowType::parse(s).unwrap_or_else(|| {
                problems.push(format!("workflow_type `{s}` is not one of {}", WorkflowType::NAMES.join(", ")));
                wf.workflow_type
            }),
        };
        let execution_mode = match &self.execution_mode {
            None => wf.execution_mode,
            Some(s) => ExecutionMode::parse(s).unwrap_or_else(|| {
                problems.push(format!("execution_mode `{s}` is not one of {}", ExecutionMode::NAMES.join(", ")));
                wf.execution_mode
            }),
        };
        if matches!(execution_mode, ExecutionMode::Parallel | ExecutionMode::Batch | ExecutionMode::Streaming)
            && !wf.rules.parallel_execution_allowed
        {
            problems.push(format!(
                "execution_mode `{}` is refused: the workflow's coordination_rules set parallel_execution_allowed: \
                 false",
                execution_mode.as_str()
            ));
        }
        if execution_mode != ExecutionMode::Streaming
            && let Some(n) = wf.nodes.iter().find(|n| n.stream_from.is_some())
        {
            problems.push(format!(
                "node `{}` has `stream_from`, which runs only in execution_mode `streaming` (this run's mode is `{}`)",
                n.id,
                execution_mode.as_str()
            ));
        }
        let batch_size = self.batch_size.or(wf.rules.batch_size).unwrap_or(settings.batch_size);
        if !(1..=1000).contains(&batch_size) {
            problems.push(format!("batch_size is {batch_size}; it must be between 1 and 1000"));
        }
        let max_parallel_steps = self.max_parallel_steps.unwrap_or(settings.max_parallel_steps);
        if !(1..=100).contains(&max_parallel_steps) {
            problems.push(format!("max_parallel_steps is {max_parallel_steps}; it must be between 1 and 100"));
        }
        let global_timeout_ms = self.global_timeout_ms.or(wf.rules.timeout_ms).or(settings.global_timeout_ms);
        // Not given anywhere: the workflow type's default, which for an
        // approval (24 h) lies past the bound on a given value.
        let explicit_timeout = global_timeout_ms.is_some();
        let global_timeout_ms = global_timeout_ms.unwrap_or_else(|| workflow_type.default_timeout_ms());
        if explicit_timeout && !(1000..=3_600_000).contains(&global_timeout_ms) {
            problems.push(format!("global_timeout_ms is {global_timeout_ms}; it must be between 1000 and 3600000"));
        }
        let mut failure_strategy = match &self.failure_strategy {
            None => wf.rules.failure_recovery_strategy.unwrap_or(settings.failure_strategy),
            Some(s) => FailureStrategy::parse(s).unwrap_or_else(|| {
                problems.push(format!("failure_strategy `{s}` is not one of {}", FailureStrategy::NAMES.join(", ")));
                FailureStrategy::FailFast
            }),
        };
        // The contract's boolean and its strategy name the same thing: an explicit
        // boolean wins over defaults, and contradicting an explicit strategy is an error.
        let explicit = self.failure_strategy.as_deref().is_some_and(|s| FailureStrategy::parse(s).is_some());
        match (self.continue_on_error, explicit) {
            (Some(true), false) => failure_strategy = FailureStrategy::ContinueOnError,
            (Some(false), false) if failure_strategy == FailureStrategy::ContinueOnError => {
                failure_strategy = FailureStrategy::FailFast;
            }
            (Some(flag), true) if flag != (failure_strategy == FailureStrategy::ContinueOnError) => {
                problems.push(format!(
                    "continue_on_error: {flag} contradicts failure_strategy `{}`; give one of them",
                    self.failure_strategy.as_deref().unwrap_or_default()
                ));
            }
            _ => {}
        }
        // Without dependency resolution, nothing is reordered: the steps run
        // in the order listed, which must then already respect every dependency.
        if !self.dependency_resolution_enabled.unwrap_or(settings.dependency_resolution_enabled) {
            for (i, deps) in wf.graph.dependencies.iter().enumerate() {
                if let Some(&d) = deps.iter().find(|&&d| d > i) {
                    problems.push(format!(
                        "dependency_resolution_enabled is false, so steps run in the order listed, but `{}` depends \
                         on `{}`, which is listed after it; list `{}` first, or enable dependency resolution",
                        wf.nodes[i].id, wf.nodes[d].id, wf.nodes[d].id
                    ));
                }
            }
        }
        if workflow_type.requires_compensation()
            && let Some(n) = wf.nodes.iter().find(|n| {
                n.node_type.is_effect() && !n.compensate && !matches!(n.kind, crate::workflow::NodeKind::Gate(_))
            })
        {
            problems.push(format!(
                "workflow_type saga requires compensation, but effect node `{}` has compensate: false",
                n.id
            ));
        }
        let tuning = match &self.steps {
            Some(steps) => tune(wf, steps, &mut problems),
            None => Vec::new(),
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(RunConfig {
            workflow_id: self.workflow_id.unwrap_or_else(Uuid::new_v4),
            workflow_type,
            correlation_id: self.correlation_id.unwrap_or_else(Uuid::new_v4),
            execution_mode,
            max_parallel_steps: if matches!(
                execution_mode,
                ExecutionMode::Parallel | ExecutionMode::Batch | ExecutionMode::Streaming
            ) {
                max_parallel_steps
            } else {
                1
            },
            batch_size,
            shard_parallelism: max_parallel_steps,
            global_timeout_ms,
            failure_strategy,
            environment: env,
            context: self.context.clone(),
            metadata: self.metadata.clone(),
            settings,
            tuning,
        })
    }
}
