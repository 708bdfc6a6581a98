//! [`ScriptedExecutor`]: a [`StepExecutor`] that plays a script instead of
//! running wasm, so that the engine (modes, strategies, retries, timeouts,
//! cancellation, compensation, actions, resume) can be tested in
//! milliseconds, and so that an embedder can test a workflow's routing
//! without building its components.
//!
//! Per step, attempt `n` plays the `n`-th [`Reply`] of the step's script (the
//! last one repeats); a step without a script echoes its input. Every call is
//! recorded ([`ScriptedExecutor::calls`]).
//!
//! ```
//! use weft::engine::scripted::{Reply, ScriptedExecutor};
//! use weft::contract::FailureKind;
//! use serde_json::json;
//!
//! let exec = ScriptedExecutor::new()
//!     .on("charge", [Reply::fail(FailureKind::Timeout), Reply::output(json!({"receipt": "r-1"}))]);
//! assert!(exec.calls().is_empty());
//! ```

use super::executor::{AttemptFuture, StepExecutor};
use crate::contract::{
    ActionKind, AttemptReport, AttemptStats, EmittedAction, FailureKind, PluginErrorKind, StepFailure, StepSuccess,
};
use crate::sandbox::{CallKind, Grants, Limits, StepCall};
use crate::store::PinnedComponent;
use crate::workflow::{NodeSpec, Workflow};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What one scripted attempt does: optionally wait, then succeed or fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    wait: Duration,
    outcome: Outcome,
    /// Items emitted to the step's stream before it ends.
    items: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Echo,
    Output(Value, Vec<EmittedAction>),
    Fail(StepFailure),
    /// A stream consumer's fold: `{"sum", "count"}` of the numbers in
    /// `items`, added to `state`'s.
    Sum,
}

impl Reply {
    /// Succeeds with the step's own input as its output.
    pub fn echo() -> Self {
        Self { wait: Duration::ZERO, outcome: Outcome::Echo, items: Vec::new() }
    }

    /// Succeeds with `output`.
    pub fn output(output: Value) -> Self {
        Self { wait: Duration::ZERO, outcome: Outcome::Output(output, Vec::new()), items: Vec::new() }
    }

    /// Fails with `failure`.
    pub fn failure(failure: StepFailure) -> Self {
        Self { wait: Duration::ZERO, outcome: Outcome::Fail(failure), items: Vec::new() }
    }

    /// Fails with a typical failure of `kind` (a plugin error is retryable;
    /// use [`Reply::failure`] for a fatal one).
    pub fn fail(kind: FailureKind) -> Self {
        let failure = match kind {
            FailureKind::Timeout => StepFailure::Timeout { limit_ms: 1000 },
            FailureKind::OutOfFuel => StepFailure::OutOfFuel { budget: 1000 },
            FailureKind::MemoryLimit => StepFailure::MemoryLimit { limit_bytes: 1 << 20, requested_bytes: 2 << 20 },
            FailureKind::Trap => StepFailure::Trap { message: "scripted trap".into(), stack_overflow: false },
            FailureKind::PluginError => {
                StepFailure::PluginError { error_kind: PluginErrorKind::Retryable, message: "scripted failure".into() }
            }
            FailureKind::InvalidOutput => StepFailure::InvalidOutput { reason: "scripted".into() },
            FailureKind::ComponentInvalid => StepFailure::ComponentInvalid { reason: "scripted".into() },
            FailureKind::CircuitOpen => StepFailure::CircuitOpen { component: "scripted".into(), retry_after_ms: 1000 },
        };
        Self::failure(failure)
    }

    /// Fails with a fatal plugin error saying `message`.
    pub fn fatal(message: &str) -> Self {
        Self::failure(StepFailure::PluginError { error_kind: PluginErrorKind::Fatal, message: message.into() })
    }

    /// A stream consumer's fold: its output is `{"sum", "count"}` of the
    /// numbers in its input's `items`, added to its input's `state`.
    pub fn sum() -> Self {
        Self { wait: Duration::ZERO, outcome: Outcome::Sum, items: Vec::new() }
    }

    /// The same reply, emitting `items` to the step's stream first (each
    /// `emit` waits while its consumers' buffers are full).
    pub fn emitting(mut self, items: impl IntoIterator<Item = Value>) -> Self {
        self.items = items.into_iter().collect();
        self
    }

    /// The same reply, after waiting `wait` (an attempt whose wait is past its
    /// wall-time limit fails with `timeout` at the limit, as in the sandbox).
    pub fn after(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The same reply, emitting an action of `kind` for `target` with `payload`
    /// (only a successful reply emits actions).
    pub fn emit(mut self, kind: ActionKind, target: &str, payload: Value) -> Self {
        let action = EmittedAction { action_type: kind, target_node: target.into(), payload };
        match &mut self.outcome {
            Outcome::Output(_, actions) => actions.push(action),
            Outcome::Echo => self.outcome = Outcome::Output(Value::Object(Map::new()), vec![action]),
            Outcome::Fail(_) | Outcome::Sum => {}
        }
        self
    }
}

/// One call the engine made, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedCall {
    /// The step.
    pub step_id: String,
    /// The attempt number the engine gave it.
    pub attempt: u32,
    /// `run`, or `compensate`.
    pub compensate: bool,
    /// The step's input.
    pub input: Map<String, Value>,
    /// The idempotency key the engine gave it.
    pub idempotency_key: String,
    /// The component digest the engine asked for (the one its run pinned).
    pub pinned: Option<String>,
    /// The attempt's wall-time limit, in milliseconds.
    pub timeout_ms: u64,
}

/// A [`StepExecutor`] that plays scripted replies (see the module docs).
#[derive(Default)]
pub struct ScriptedExecutor {
    runs: HashMap<String, Vec<Reply>>,
    /// Per step and shard of a `for_each` node: its own script.
    shard_runs: HashMap<(String, u64), Vec<Reply>>,
    compensations: HashMap<String, Vec<Reply>>,
    pins: BTreeMap<String, PinnedComponent>,
    calls: Arc<Mutex<Vec<ScriptedCall>>>,
    /// Attempts running now, and the most that ever ran at once.
    in_flight: Arc<(std::sync::atomic::AtomicUsize, std::sync::atomic::AtomicUsize)>,
}

impl ScriptedExecutor {
    /// An executor under which every step echoes its input.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scripts `run` of `step`: attempt `n` plays reply `n` (the last repeats).
    pub fn on(mut self, step: &str, replies: impl IntoIterator<Item = Reply>) -> Self {
        self.runs.insert(step.into(), replies.into_iter().collect());
        self
    }

    /// Scripts `run` of shard `shard` of the `for_each` node `step` (the
    /// other shards play the node's own script).
    pub fn on_shard(mut self, step: &str, shard: u64, replies: impl IntoIterator<Item = Reply>) -> Self {
        self.shard_runs.insert((step.into(), shard), replies.into_iter().collect());
        self
    }

    /// Scripts `compensate` of `step` (by default it succeeds).
    pub fn on_compensate(mut self, step: &str, replies: impl IntoIterator<Item = Reply>) -> Self {
        self.compensations.insert(step.into(), replies.into_iter().collect());
        self
    }

    /// Pins `step` to the component version `digest` (what
    /// [`StepExecutor::pins`] reports for it).
    pub fn pin(mut self, step: &str, digest: &str) -> Self {
        let component = PinnedComponent { path: format!("scripted/{step}.wasm"), digest: digest.into() };
        self.pins.insert(step.into(), component);
        self
    }

    /// Every call so far, in the order the engine made them.
    pub fn calls(&self) -> Vec<ScriptedCall> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The most attempts that were running at once.
    pub fn most_in_flight(&self) -> usize {
        self.in_flight.1.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The steps whose `run` was called, in order, once per attempt.
    pub fn run_order(&self) -> Vec<String> {
        self.calls().into_iter().filter(|c| !c.compensate).map(|c| c.step_id).collect()
    }

    /// The steps whose `compensate` was called, in order.
    pub fn compensation_order(&self) -> Vec<String> {
        self.calls().into_iter().filter(|c| c.compensate).map(|c| c.step_id).collect()
    }
}

impl StepExecutor for ScriptedExecutor {
    fn prepare(&self, _wf: &Workflow) -> Result<(), Vec<String>> {
        Ok(())
    }

    fn pins(&self, _wf: &Workflow) -> BTreeMap<String, PinnedComponent> {
        self.pins.clone()
    }

    fn execute(
        &self,
        node: &NodeSpec,
        pinned: Option<&str>,
        call: StepCall,
        limits: Limits,
        granted: Arc<Grants>,
    ) -> AttemptFuture {
        let compensate = matches!(call.kind, CallKind::Compensate { .. });
        let shard = call.input.get("shard").and_then(Value::as_u64).filter(|_| node.for_each.is_some());
        let script = match shard {
            _ if compensate => self.compensations.get(&node.id),
            Some(k) => self.shard_runs.get(&(node.id.clone(), k)).or_else(|| self.runs.get(&node.id)),
            None => self.runs.get(&node.id),
        };
        let index = usize::try_from(call.ctx.attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        let reply = script
            .and_then(|s| s.get(index).or_else(|| s.last()))
            .cloned()
            .unwrap_or_else(|| if compensate { Reply::output(Value::Null) } else { Reply::echo() });
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).push(ScriptedCall {
            step_id: node.id.clone(),
            attempt: call.ctx.attempt,
            compensate,
            input: call.input.clone(),
            idempotency_key: call.ctx.idempotency_key.clone(),
            pinned: pinned.map(str::to_string),
            timeout_ms: limits.timeout.as_millis() as u64,
        });
        let in_flight = self.in_flight.clone();
        let sink = granted.stream.clone();
        Box::pin(async move {
            use std::sync::atomic::Ordering::SeqCst;
            let now = in_flight.0.fetch_add(1, SeqCst) + 1;
            in_flight.1.fetch_max(now, SeqCst);
            if let Some(sink) = &sink {
                for item in reply.items.iter().cloned() {
                    let bytes = item.to_string().len();
                    if sink.emit(item, bytes).await.is_err() {
                        break;
                    }
                }
            }
            let waited = reply.wait.min(limits.timeout);
            tokio::time::sleep(waited).await;
            in_flight.0.fetch_sub(1, SeqCst);
            let stats = AttemptStats {
                fuel_consumed: 1,
                wall_time_us: u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
                peak_memory_bytes: 0,
                instantiate_us: 0,
                capability_denials: 0,
            };
            let outcome = if reply.wait > limits.timeout {
                Err(StepFailure::Timeout { limit_ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX) })
            } else {
                match reply.outcome {
                    Outcome::Echo => Ok(StepSuccess { output: Value::Object(call.input), actions: Vec::new() }),
                    Outcome::Output(output, actions) => Ok(StepSuccess { output, actions }),
                    Outcome::Fail(f) => Err(f),
                    Outcome::Sum => Ok(StepSuccess { output: sum(&call.input), actions: Vec::new() }),
                }
            };
            AttemptReport { outcome, stats, logs: Vec::new() }
        })
    }
}

/// A consumer's fold of one micro-batch: the numbers in `items` added to `state`.
fn sum(input: &Map<String, Value>) -> Value {
    let state = input.get("state");
    let field = |k: &str| state.and_then(|s| s.get(k)).and_then(Value::as_f64).unwrap_or(0.0);
    let items = input.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let sum: f64 = items.iter().filter_map(Value::as_f64).sum();
    serde_json::json!({ "sum": field("sum") + sum, "count": field("count") + items.len() as f64 })
}
