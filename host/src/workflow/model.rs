//! The validated workflow: what the engine runs.

use super::expr::{Expr, Uses};
use super::yaml::Pos;
use crate::capability::Capabilities;
use crate::contract::{ConfigLayer, FailureKind};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What a node runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeType {
    /// A pure step (world `compute-step`).
    Compute,
    /// A pure aggregation step (world `compute-step`).
    Reducer,
    /// A step with side effects (world `effect-step`).
    Effect,
}

impl NodeType {
    /// The world's name: compute, reducer or effect.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compute => "compute",
            Self::Reducer => "reducer",
            Self::Effect => "effect",
        }
    }

    /// True for effect nodes (which may be compensated).
    pub fn is_effect(self) -> bool {
        self == Self::Effect
    }
}

/// How the scheduler runs the graph (the ONEX orchestrator contract's `EnumExecutionMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    /// One step at a time, in topological order.
    #[default]
    Sequential,
    /// Ready steps run together, up to `max_parallel_steps`.
    Parallel,
    /// One step at a time; `when` conditions pick the branches.
    Conditional,
    /// Ready steps run in waves of at most `batch_size`; each wave ends
    /// before the next starts.
    Batch,
    /// A producer's emitted items flow to its `stream_from` consumers while
    /// it runs.
    Streaming,
}

impl ExecutionMode {
    /// All names, for messages.
    pub const NAMES: &'static [&'static str] = &["sequential", "parallel", "conditional", "batch", "streaming"];

    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sequential => "sequential",
            Self::Parallel => "parallel",
            Self::Conditional => "conditional",
            Self::Batch => "batch",
            Self::Streaming => "streaming",
        }
    }

    /// Parses a mode name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sequential" => Self::Sequential,
            "parallel" => Self::Parallel,
            "conditional" => Self::Conditional,
            "batch" => Self::Batch,
            "streaming" => Self::Streaming,
            _ => return None,
        })
    }
}

/// What happens when a step fails for good (the contract's failure strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailureStrategy {
    /// Stop at the first failed step; interrupt the others.
    #[default]
    FailFast,
    /// Skip the failed step's dependents; run every independent branch.
    ContinueOnError,
    /// Give a failed step `coordination_rules.max_retries` more rounds of its
    /// retry policy, then fail fast.
    Retry,
    /// Stop, then undo every completed effect step in reverse completion order.
    Compensate,
}

impl FailureStrategy {
    /// All names, for messages.
    pub const NAMES: &'static [&'static str] = &["fail_fast", "continue_on_error", "retry", "compensate"];

    /// Parses a strategy name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "fail_fast" => Self::FailFast,
            "continue_on_error" => Self::ContinueOnError,
            "retry" => Self::Retry,
            "compensate" => Self::Compensate,
            _ => return None,
        })
    }
}

/// The ONEX orchestrator contract's workflow types, with their default
/// global timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowType {
    /// Multi-stage data processing.
    #[default]
    DataPipeline,
    /// Bulk operations.
    BatchProcessing,
    /// Conditional branching on events.
    EventDriven,
    /// Distributed transaction with compensation.
    Saga,
    /// Extract-transform-load.
    Etl,
    /// Multi-step approval with gates.
    Approval,
    /// Notification dispatch.
    Notification,
    /// System health validation.
    HealthCheck,
}

impl WorkflowType {
    /// All names, for messages.
    pub const NAMES: &'static [&'static str] = &[
        "data_pipeline",
        "batch_processing",
        "event_driven",
        "saga",
        "etl",
        "approval",
        "notification",
        "health_check",
    ];

    /// Parses a type name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "data_pipeline" => Self::DataPipeline,
            "batch_processing" => Self::BatchProcessing,
            "event_driven" => Self::EventDriven,
            "saga" => Self::Saga,
            "etl" => Self::Etl,
            "approval" => Self::Approval,
            "notification" => Self::Notification,
            "health_check" => Self::HealthCheck,
            _ => return None,
        })
    }

    /// The contract's default timeout for this type, in milliseconds.
    pub fn default_timeout_ms(self) -> u64 {
        match self {
            Self::DataPipeline => 600_000,
            Self::BatchProcessing => 1_800_000,
            Self::EventDriven => 60_000,
            Self::Saga => 300_000,
            Self::Etl => 3_600_000,
            Self::Approval => 86_400_000,
            Self::Notification => 30_000,
            Self::HealthCheck => 10_000,
        }
    }

    /// Saga workflows require compensation on their effect steps.
    pub fn requires_compensation(self) -> bool {
        self == Self::Saga
    }
}

/// When and how a step is retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (retry_count + 1).
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds.
    pub initial_delay_ms: u64,
    /// Each further delay is the previous one times this.
    pub multiplier: f64,
    /// Cap on any one delay, in milliseconds.
    pub max_delay_ms: u64,
    /// Random spread: a delay d becomes a value in [d·(1−jitter), d].
    pub jitter: f64,
    /// Failure kinds that are retried (`plugin_error` means retryable plugin
    /// errors only).
    pub retry_on: Vec<FailureKind>,
}

impl RetryPolicy {
    /// The contract's `RetryConfig` defaults with `retries` retries.
    pub fn with_retries(retries: u32) -> Self {
        Self {
            max_attempts: retries + 1,
            initial_delay_ms: 1000,
            multiplier: 2.0,
            max_delay_ms: 30_000,
            jitter: 0.0,
            retry_on: FailureKind::RETRIED_BY_DEFAULT.to_vec(),
        }
    }

    /// The delay before retry number `n` (1-based), before jitter.
    pub fn base_delay_ms(&self, n: u32) -> u64 {
        let exp = self.multiplier.powi(n.saturating_sub(1).min(64) as i32);
        let d = (self.initial_delay_ms as f64) * exp;
        (d.min(self.max_delay_ms as f64)).max(0.0) as u64
    }
}

/// Where a node's input comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum InputMapping {
    /// Not given: the run's context for a root node, the output of the only
    /// dependency, or a map from dependency id to output.
    Default,
    /// One expression that must give an object.
    Whole(Expr),
    /// Key by key.
    Fields(Vec<(String, Expr)>),
}

/// What a node does when it runs, beyond its world.
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// Runs its component: compute, reducer and effect nodes, and `custom`
    /// nodes in the world they declare.
    Component,
    /// `node_type: conditional`: runs no component; the first case whose
    /// `when` holds picks which of its dependents run.
    Switch(Vec<SwitchCase>),
    /// `node_type: parallel`: runs no component; a fork/join point whose
    /// output is its input (by default, its dependencies' outputs).
    Join,
    /// `node_type: effect` with `wait_for: signal`: runs no component; waits,
    /// durably, for a signal from outside (an approval gate).
    Gate(GateSpec),
    /// `node_type: orchestrator`: runs another workflow as a child run.
    SubWorkflow(Arc<SubWorkflow>),
}

impl NodeKind {
    /// Whether the node runs a component.
    pub fn has_component(&self) -> bool {
        matches!(self, Self::Component)
    }
}

/// One case of a `conditional` node.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchCase {
    /// The condition (None: the `default` case, taken when no other holds).
    pub when: Option<Expr>,
    /// The dependents it lets run.
    pub then: Vec<String>,
}

/// An approval gate's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSpec {
    /// How long it waits for its signal (None: until the run's global timeout).
    pub wait_timeout_ms: Option<u64>,
}

/// The workflow an `orchestrator` node runs.
#[derive(Debug, Clone)]
pub struct SubWorkflow {
    /// The file, as resolved against the parent's directory.
    pub path: PathBuf,
    /// The file as written in the parent (for messages and graphs).
    pub written: String,
    /// The child workflow, validated.
    pub workflow: Arc<Workflow>,
}

/// One node of the graph.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Unique id.
    pub id: String,
    /// The world it runs in (compute, reducer or effect semantics).
    pub node_type: NodeType,
    /// The `node_type` as the file gives it: compute, reducer, effect,
    /// custom, conditional, parallel or orchestrator.
    pub type_name: &'static str,
    /// What it does when it runs.
    pub kind: NodeKind,
    /// Free text.
    pub description: String,
    /// Per-attempt wall-time limit (None: the run's `step_timeout_ms`).
    pub timeout_ms: Option<u64>,
    /// Retry policy given in the file (`retry`); `None` takes the run's
    /// retry settings.
    pub retry: Option<RetryPolicy>,
    /// `retry_count` without a `retry` block: the run's retry settings with
    /// this many retries.
    pub retry_count: Option<u32>,
    /// Ids of the nodes it waits for.
    pub depends_on: Vec<String>,
    /// A failure of this node does not fail the workflow.
    pub continue_on_error: bool,
    /// The component file, resolved (empty for a node without a component).
    pub component: PathBuf,
    /// Fuel budget per attempt (None: the host default).
    pub fuel: Option<u64>,
    /// Memory limit per attempt in MiB (None: the host default).
    pub memory_mb: Option<u64>,
    /// Input mapping.
    pub input: InputMapping,
    /// Run only when this is true.
    pub when: Option<Expr>,
    /// Effect nodes: undo with `compensate` when the run is compensated.
    pub compensate: bool,
    /// Run only when some action targets this node.
    pub requires_action: bool,
    /// Run even when a dependency was skipped.
    pub run_if_dependency_skipped: bool,
    /// What an effect node declares it needs (compute nodes: nothing).
    pub capabilities: Capabilities,
    /// Fan-out: a CEL expression giving the list whose shards each run as
    /// one execution of the step.
    pub for_each: Option<FanOut>,
    /// Complete from the memo cache when the same component has run on the
    /// same input under the same limits (compute and reducer nodes only).
    pub memoize: bool,
    /// Streaming mode: the node whose emitted items this one folds, in
    /// micro-batches, while that node runs.
    pub stream_from: Option<StreamFrom>,
    /// What the node's `when` and `input` expressions read (None: it has none).
    pub uses: Option<Uses>,
    /// Where the node starts in the file.
    pub pos: Pos,
}

/// A node's `for_each`: the list, and how many items each shard takes.
#[derive(Debug, Clone, PartialEq)]
pub struct FanOut {
    /// The CEL expression that gives the list.
    pub items: Expr,
    /// Items per shard (`batch_size` on the node; default 1).
    pub batch_size: u32,
}

/// A consumer's `stream_from`: its producer, and how it takes the items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFrom {
    /// The producer's node id.
    pub producer: String,
    /// Most items per micro-batch (`batch_size` on the node; default 100).
    pub batch_size: u32,
    /// Most items waiting between the producer and this consumer
    /// (`stream_buffer`; default 1024): `emit` blocks past it.
    pub buffer: u32,
}

/// The ONEX orchestrator contract's `coordination_rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordinationRules {
    /// Whether parallel execution is allowed at all.
    pub parallel_execution_allowed: bool,
    /// The default failure strategy, when the file gives one.
    pub failure_recovery_strategy: Option<FailureStrategy>,
    /// Default retries for nodes without `retry_count` or `retry`, when given.
    pub max_retries: Option<u32>,
    /// Default global timeout, when given.
    pub timeout_ms: Option<u64>,
    /// Per-component circuit breakers, kept in the run store across runs.
    pub circuit_breaker_enabled: bool,
    /// Dead-letter queue for failed runs (kept in the run store).
    pub dead_letter_queue_enabled: bool,
    /// Consecutive failures of a component that open its breaker.
    pub circuit_breaker_failure_threshold: u32,
    /// How long an open breaker refuses calls before letting a probe through.
    pub circuit_breaker_cooldown_ms: u64,
    /// Steps per wave in batch mode (the contract's `ParallelConfig.batch_size`), when given.
    pub batch_size: Option<u32>,
    /// Whether compute nodes are memoized unless they say otherwise.
    pub memoize: bool,
    /// The contract's config for this workflow (`coordination_rules.config`),
    /// layered over the host's.
    pub config: Option<ConfigLayer>,
}

impl Default for CoordinationRules {
    fn default() -> Self {
        Self {
            parallel_execution_allowed: true,
            failure_recovery_strategy: None,
            max_retries: None,
            timeout_ms: None,
            circuit_breaker_enabled: false,
            dead_letter_queue_enabled: false,
            circuit_breaker_failure_threshold: 5,
            circuit_breaker_cooldown_ms: 30_000,
            batch_size: None,
            memoize: false,
            config: None,
        }
    }
}

/// The DAG of a workflow's nodes, by node index (the position in
/// [`Workflow::nodes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// Node id -> index.
    pub index: HashMap<String, usize>,
    /// For each node, the indices of its dependencies.
    pub dependencies: Vec<Vec<usize>>,
    /// For each node, the indices of the nodes that depend on it.
    pub dependents: Vec<Vec<usize>>,
    /// Node indices in a topological order (ties in file order).
    pub topo_order: Vec<usize>,
}

impl Graph {
    /// The number of dependency edges.
    pub fn edges(&self) -> usize {
        self.dependencies.iter().map(Vec::len).sum()
    }
}

/// A parsed, validated workflow.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// `metadata.name`.
    pub name: String,
    /// `workflow_metadata.workflow_name`.
    pub workflow_name: String,
    /// `major.minor.patch`.
    pub version: String,
    /// Free text.
    pub description: String,
    /// The default execution mode.
    pub execution_mode: ExecutionMode,
    /// The default workflow type.
    pub workflow_type: WorkflowType,
    /// The nodes, in file order.
    pub nodes: Vec<NodeSpec>,
    /// Coordination rules.
    pub rules: CoordinationRules,
    /// The DAG over `nodes`, by node index.
    pub graph: Graph,
    /// `metadata.labels`.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The file it came from (None when built in memory).
    pub source: Option<PathBuf>,
    /// The YAML text it was loaded from (journaled with each durable run).
    pub definition: std::sync::Arc<str>,
    /// The directory relative component paths were resolved against.
    pub base_dir: PathBuf,
}

impl Workflow {
    /// The workflow itself (prefix `""`), then every distinct sub-workflow
    /// it nests, at any depth, each once, with the path of nodes that first
    /// reaches it as the prefix of its node ids (`outer/inner/`).
    pub fn levels(&self) -> Vec<(String, &Workflow)> {
        let mut seen: std::collections::HashSet<*const Workflow> = std::collections::HashSet::new();
        let mut out: Vec<(String, &Workflow)> = vec![(String::new(), self)];
        let mut next = 0;
        while let Some(&(ref at, wf)) = out.get(next) {
            let at = at.clone();
            next += 1;
            for n in &wf.nodes {
                if let NodeKind::SubWorkflow(sub) = &n.kind
                    && seen.insert(Arc::as_ptr(&sub.workflow))
                {
                    out.push((format!("{at}{}/", n.id), &*sub.workflow));
                }
            }
        }
        out
    }

    /// The text of every sub-workflow it nests, by key: the `workflow:`
    /// values that lead to it, joined by [`SUB_WORKFLOW_KEY_SEPARATOR`], as the loader looks
    /// them up in a journaled run. At most `max` keys and `max_bytes` of
    /// text (a workflow that names its files in more ways than that has the
    /// rest read from disk when its run resumes).
    pub fn nested_texts(&self, max: usize, max_bytes: usize) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        let mut bytes = 0usize;
        let mut stack: Vec<(String, &Workflow)> = vec![(String::new(), self)];
        while let Some((prefix, wf)) = stack.pop() {
            for n in &wf.nodes {
                let NodeKind::SubWorkflow(sub) = &n.kind else { continue };
                let key = sub_workflow_key(&prefix, &sub.written);
                if out.contains_key(&key) {
                    continue;
                }
                bytes = bytes.saturating_add(sub.workflow.definition.len());
                if out.len() >= max || bytes > max_bytes {
                    return out;
                }
                out.insert(key.clone(), sub.workflow.definition.to_string());
                stack.push((key, &sub.workflow));
            }
        }
        out
    }

    /// How deep its sub-workflows nest: 1 for a workflow without any (each
    /// distinct sub-workflow measured once).
    pub fn depth(&self) -> usize {
        fn measure(wf: &Workflow, memo: &mut HashMap<*const Workflow, usize>) -> usize {
            if let Some(&d) = memo.get(&(wf as *const Workflow)) {
                return d;
            }
            let below = wf.nodes.iter().filter_map(|n| match &n.kind {
                NodeKind::SubWorkflow(s) => Some(&*s.workflow),
                _ => None,
            });
            let d = 1 + below.map(|w| measure(w, memo)).max().unwrap_or(0);
            memo.insert(wf as *const Workflow, d);
            d
        }
        measure(self, &mut HashMap::new())
    }
}

/// What joins the `workflow:` values of a sub-workflow's key in a run's
/// journaled sub-workflow texts.
pub const SUB_WORKFLOW_KEY_SEPARATOR: &str = " >> ";

/// The key of the sub-workflow named `written` inside the one with key
/// `prefix` (`""`: the top workflow).
pub fn sub_workflow_key(prefix: &str, written: &str) -> String {
    if prefix.is_empty() { written.to_string() } else { [prefix, SUB_WORKFLOW_KEY_SEPARATOR, written].concat() }
}

/// The manifest's `max_workflow_depth`: a workflow and its sub-workflows
/// nest at most this deep.
pub const MAX_WORKFLOW_DEPTH: usize = 10;
