//! One call into a step: who is calling ([`StepContext`]), with what input,
//! and which export ([`CallKind`]).

use serde::Serialize;
use serde_json::{Map, Value};

/// Who is calling: the identity of one attempt, passed to the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepContext {
    /// The run's id.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The node id of the step.
    pub step_id: String,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// Stable across retries of this step in this run.
    pub idempotency_key: String,
    /// The run's correlation id.
    pub correlation_id: String,
    /// The owning tenant (empty when single-tenant).
    pub tenant: String,
    /// What a compute step's random source is seeded from, when not its
    /// idempotency key: a memoized step's memo key, so that a hit and a miss
    /// compute the same thing.
    pub seed_key: Option<String>,
}

impl StepContext {
    /// A context for a one-off call outside any workflow (a fresh run id).
    pub fn adhoc(step_id: &str) -> Self {
        let run_id = uuid::Uuid::new_v4().to_string();
        Self {
            idempotency_key: format!("{run_id}/{step_id}"),
            correlation_id: run_id.clone(),
            run_id,
            workflow: "adhoc".into(),
            step_id: step_id.into(),
            attempt: 1,
            tenant: String::new(),
            seed_key: None,
        }
    }
}

/// Which export an attempt calls.
#[derive(Debug, Clone, PartialEq)]
pub enum CallKind {
    /// `run` (compute or effect).
    Run,
    /// `compensate` of an effect step, with the output `run` returned.
    Compensate {
        /// The output of the `run` being undone.
        output: Value,
    },
}

/// One call into a step: its context, its input object, and which export.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCall {
    /// The attempt's identity.
    pub ctx: StepContext,
    /// The step's input: always a JSON object.
    pub input: Map<String, Value>,
    /// `run` or `compensate`.
    pub kind: CallKind,
}

impl StepCall {
    /// A `run` call with an ad-hoc context.
    pub fn run(input: Map<String, Value>) -> Self {
        Self { ctx: StepContext::adhoc("step"), input, kind: CallKind::Run }
    }

    /// A `compensate` call with an ad-hoc context.
    pub fn compensate(input: Map<String, Value>, output: Value) -> Self {
        Self { ctx: StepContext::adhoc("step"), input, kind: CallKind::Compensate { output } }
    }
}
