//! Write Weft steps in Rust.
//!
//! A Weft step is a WebAssembly component built for `wasm32-wasip2`. This crate
//! turns a plain Rust function into one: the function takes a typed input
//! (anything `serde` can deserialize) and returns a typed output or a
//! [`StepError`]; a macro exports it under the `weft:step` contract.
//!
//! ```ignore
//! use weft_plugin::{Context, StepError};
//!
//! #[derive(serde::Deserialize)]
//! struct In { a: i64, b: i64 }
//!
//! #[derive(serde::Serialize)]
//! struct Out { sum: i64 }
//!
//! fn add(_ctx: &mut Context, input: In) -> Result<Out, StepError> {
//!     Ok(Out { sum: input.a + input.b })
//! }
//!
//! weft_plugin::compute_step!(add);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` in a crate
//! whose `crate-type` is `["cdylib"]`.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod http;
pub mod kv;
pub mod stream;

pub use stream::{EmitError, emit};

pub use serde_json::{self, Value, json};

/// Generated bindings for the `compute-step` world (used by the macros).
#[doc(hidden)]
pub mod compute_bindings {
    #![allow(missing_docs, unsafe_code, clippy::all)]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "compute-step",
        pub_export_macro: true,
        export_macro_name: "__weft_export_compute",
        default_bindings_module: "::weft_plugin::compute_bindings",
    });
}

/// Generated bindings for the `effect-step` world (used by the macros).
#[doc(hidden)]
pub mod effect_bindings {
    #![allow(missing_docs, unsafe_code, clippy::all)]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "effect-step",
        pub_export_macro: true,
        export_macro_name: "__weft_export_effect",
        default_bindings_module: "::weft_plugin::effect_bindings",
        generate_all,
        with: {
            "weft:step/types@0.1.2": crate::compute_bindings::weft::step::types,
            "weft:step/log@0.1.2": crate::compute_bindings::weft::step::log,
            "weft:step/stream@0.1.2": crate::compute_bindings::weft::step::stream,
        },
    });
}

use compute_bindings::weft::step::log as wit_log;
use compute_bindings::weft::step::types as wit;

/// The value of the secret `name`, when the step's node declares it under
/// `capabilities: secrets:` (secrets reach the guest as environment
/// variables; the host redacts their values from the step's output, logs
/// and errors).
pub fn secret(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Why a step failed. The host's retry policy decides what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// A transient failure (a dependency was down): the host may retry.
    Retryable(String),
    /// A permanent failure: the host never retries it.
    Fatal(String),
    /// The input breaks the step's contract: the host never retries it.
    InvalidInput(String),
}

impl StepError {
    /// A transient failure that the host may retry.
    pub fn retryable(msg: impl Into<String>) -> Self {
        Self::Retryable(msg.into())
    }
    /// A permanent failure.
    pub fn fatal(msg: impl Into<String>) -> Self {
        Self::Fatal(msg.into())
    }
    /// The input breaks the step's contract.
    pub fn invalid_input(msg: impl Into<String>) -> Self {
        Self::InvalidInput(msg.into())
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retryable(m) => write!(f, "retryable: {m}"),
            Self::Fatal(m) => write!(f, "fatal: {m}"),
            Self::InvalidInput(m) => write!(f, "invalid input: {m}"),
        }
    }
}

impl std::error::Error for StepError {}

impl From<StepError> for wit::StepError {
    fn from(e: StepError) -> Self {
        match e {
            StepError::Retryable(m) => wit::StepError::Retryable(m),
            StepError::Fatal(m) => wit::StepError::Fatal(m),
            StepError::InvalidInput(m) => wit::StepError::InvalidInput(m),
        }
    }
}

/// What kind of work an emitted action asks for (the ModelAction pattern).
pub use wit::ActionKind;

/// The identity of the running attempt, and the place to emit actions.
#[derive(Debug, Clone)]
pub struct Context {
    /// The run this attempt belongs to.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// This step's node id.
    pub step_id: String,
    /// The attempt number, starting at 1.
    pub attempt: u32,
    /// Stable across retries of this step in this run: pass it to the systems
    /// an effect calls so that a retry does not apply a change twice.
    pub idempotency_key: String,
    /// The run's correlation id.
    pub correlation_id: String,
    /// The tenant that owns the run (empty when single-tenant).
    pub tenant: String,
    actions: Vec<wit::Action>,
}

impl Context {
    fn from_wit(ctx: wit::StepContext) -> Self {
        Self {
            run_id: ctx.run_id,
            workflow: ctx.workflow,
            step_id: ctx.step_id,
            attempt: ctx.attempt,
            idempotency_key: ctx.idempotency_key,
            correlation_id: ctx.correlation_id,
            tenant: ctx.tenant,
            actions: Vec::new(),
        }
    }

    /// Asks the orchestrator to hand `payload` (a JSON object) to node `target`.
    pub fn emit(
        &mut self,
        kind: ActionKind,
        target: impl Into<String>,
        payload: &impl Serialize,
    ) -> Result<(), StepError> {
        let payload = serde_json::to_string(payload)
            .map_err(|e| StepError::fatal(format!("action payload is not serializable: {e}")))?;
        self.actions.push(wit::Action { kind, target: target.into(), payload });
        Ok(())
    }

    /// How many actions this attempt has emitted so far.
    pub fn emitted(&self) -> usize {
        self.actions.len()
    }
}

/// Logs a line at `trace` level into the host's trace for this attempt.
pub fn trace(msg: &str) {
    wit_log::log(wit_log::Level::Trace, msg);
}
/// Logs a line at `debug` level.
pub fn debug(msg: &str) {
    wit_log::log(wit_log::Level::Debug, msg);
}
/// Logs a line at `info` level.
pub fn info(msg: &str) {
    wit_log::log(wit_log::Level::Info, msg);
}
/// Logs a line at `warn` level.
pub fn warn(msg: &str) {
    wit_log::log(wit_log::Level::Warn, msg);
}
/// Logs a line at `error` level.
pub fn error(msg: &str) {
    wit_log::log(wit_log::Level::Error, msg);
}

fn parse_input<I: DeserializeOwned>(what: &str, json: &str) -> Result<I, StepError> {
    serde_json::from_str(json)
        .map_err(|e| StepError::invalid_input(format!("{what} does not match the step's input type: {e}")))
}

fn finish<O: Serialize>(ctx: Context, out: O) -> Result<wit::StepOutput, wit::StepError> {
    let output =
        serde_json::to_string(&out).map_err(|e| wit::StepError::Fatal(format!("output is not serializable: {e}")))?;
    Ok(wit::StepOutput { output, actions: ctx.actions })
}

/// Runs a typed step function against the raw WIT call (used by the macros).
#[doc(hidden)]
pub fn __run<I, O, F>(ctx: wit::StepContext, input: String, f: F) -> Result<wit::StepOutput, wit::StepError>
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(&mut Context, I) -> Result<O, StepError>,
{
    let mut ctx = Context::from_wit(ctx);
    let input = parse_input("input", &input)?;
    let out = f(&mut ctx, input)?;
    finish(ctx, out)
}

/// Runs an untyped step function that returns raw JSON text (used by the macros).
#[doc(hidden)]
pub fn __run_raw<F>(ctx: wit::StepContext, input: String, f: F) -> Result<wit::StepOutput, wit::StepError>
where
    F: FnOnce(&mut Context, &str) -> Result<String, StepError>,
{
    let mut ctx = Context::from_wit(ctx);
    let output = f(&mut ctx, &input)?;
    Ok(wit::StepOutput { output, actions: ctx.actions })
}

/// Runs a typed compensation function (used by the macros).
#[doc(hidden)]
pub fn __compensate<I, O, F>(ctx: wit::StepContext, input: String, output: String, f: F) -> Result<(), wit::StepError>
where
    I: DeserializeOwned,
    O: DeserializeOwned,
    F: FnOnce(&mut Context, I, O) -> Result<(), StepError>,
{
    let mut ctx = Context::from_wit(ctx);
    let input = parse_input("input", &input)?;
    let output = parse_input("output", &output)?;
    f(&mut ctx, input, output).map_err(Into::into)
}

/// Exports a function as a compute step.
///
/// The function has the shape `fn(&mut Context, In) -> Result<Out, StepError>`
/// where `In: DeserializeOwned` and `Out: Serialize`. An input that does not
/// deserialize into `In` fails with `StepError::InvalidInput`.
#[macro_export]
macro_rules! compute_step {
    ($f:path) => {
        struct __WeftComputeStep;
        impl $crate::compute_bindings::exports::weft::step::compute::Guest for __WeftComputeStep {
            fn run(
                ctx: $crate::compute_bindings::weft::step::types::StepContext,
                input: ::std::string::String,
            ) -> ::std::result::Result<
                $crate::compute_bindings::weft::step::types::StepOutput,
                $crate::compute_bindings::weft::step::types::StepError,
            > {
                $crate::__run(ctx, input, $f)
            }
        }
        $crate::compute_bindings::__weft_export_compute!(__WeftComputeStep);
    };
}

/// Exports a function from raw JSON text to raw JSON text as a compute step.
///
/// For steps that want to handle the JSON themselves:
/// `fn(&mut Context, &str) -> Result<String, StepError>`.
#[macro_export]
macro_rules! compute_step_raw {
    ($f:path) => {
        struct __WeftComputeStep;
        impl $crate::compute_bindings::exports::weft::step::compute::Guest for __WeftComputeStep {
            fn run(
                ctx: $crate::compute_bindings::weft::step::types::StepContext,
                input: ::std::string::String,
            ) -> ::std::result::Result<
                $crate::compute_bindings::weft::step::types::StepOutput,
                $crate::compute_bindings::weft::step::types::StepError,
            > {
                $crate::__run_raw(ctx, input, $f)
            }
        }
        $crate::compute_bindings::__weft_export_compute!(__WeftComputeStep);
    };
}

/// Exports a pair of functions as an effect step.
///
/// `run` has the shape of a compute step's function; `compensate` has the
/// shape `fn(&mut Context, In, Out) -> Result<(), StepError>` and receives the
/// input that `run` got and the output it returned.
#[macro_export]
macro_rules! effect_step {
    (run = $run:path, compensate = $comp:path $(,)?) => {
        struct __WeftEffectStep;
        impl $crate::effect_bindings::exports::weft::step::effect::Guest for __WeftEffectStep {
            fn run(
                ctx: $crate::compute_bindings::weft::step::types::StepContext,
                input: ::std::string::String,
            ) -> ::std::result::Result<
                $crate::compute_bindings::weft::step::types::StepOutput,
                $crate::compute_bindings::weft::step::types::StepError,
            > {
                $crate::__run(ctx, input, $run)
            }
            fn compensate(
                ctx: $crate::compute_bindings::weft::step::types::StepContext,
                input: ::std::string::String,
                output: ::std::string::String,
            ) -> ::std::result::Result<(), $crate::compute_bindings::weft::step::types::StepError> {
                $crate::__compensate(ctx, input, output, $comp)
            }
        }
        $crate::effect_bindings::__weft_export_effect!(__WeftEffectStep);
    };
}
