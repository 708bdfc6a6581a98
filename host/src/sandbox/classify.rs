//! Failure classification: a wasmtime error, a plugin's own error, or an
//! output that breaks the contract, each turned into its [`StepFailure`].

use super::attempt::{hostcall_budget, millis};
use super::state::{self, DeadlineExceeded, MAX_LOG_LINE, MemoryLimitExceeded, StepState};
use super::{Limits, bindings};
use crate::capability::Redactor;
use crate::contract::{ActionKind, EmittedAction, PluginErrorKind, StepFailure, StepSuccess};
use serde_json::Value;
use wasmtime::{Store, Trap};

/// Maps a wasmtime error from instantiate or call to its failure kind.
pub(super) fn classify(e: &wasmtime::Error, store: &Store<StepState>, limits: &Limits, stderr: &str) -> StepFailure {
    if e.downcast_ref::<DeadlineExceeded>().is_some() {
        return StepFailure::Timeout { limit_ms: millis(limits.timeout) };
    }
    if let Some(m) = e.downcast_ref::<MemoryLimitExceeded>() {
        return StepFailure::MemoryLimit { limit_bytes: m.limit, requested_bytes: m.requested };
    }
    if let Some(requested) = store.data().limiter.refused {
        return StepFailure::MemoryLimit { limit_bytes: limits.memory_bytes, requested_bytes: requested };
    }
    // wasmtime's error for a transfer over the hostcall budget is private; its
    // message is the only way to recognise it.
    if format!("{e:#}").contains("fuel allocated for hostcalls has been exhausted") {
        return StepFailure::InvalidOutput {
            reason: format!(
                "the step tried to pass more than {} bytes to the host in one call (its output or a log line); \
                 the output limit is {} bytes (raise max_output_bytes, or return a reference to the data instead \
                 of the data)",
                hostcall_budget(limits),
                limits.max_output_bytes
            ),
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => StepFailure::OutOfFuel { budget: limits.fuel },
        Some(Trap::Interrupt) => StepFailure::Timeout { limit_ms: millis(limits.timeout) },
        Some(Trap::StackOverflow) => StepFailure::Trap {
            message: format!("{}: the guest recursed deeper than the wasm stack allows", Trap::StackOverflow),
            stack_overflow: true,
        },
        Some(trap) => {
            let mut message = trap.to_string();
            if let Some(panic) = panic_message(stderr) {
                message = format!("guest panicked: {panic} ({message})");
            }
            StepFailure::Trap { message, stack_overflow: false }
        }
        None => StepFailure::Trap { message: format!("{e:#}"), stack_overflow: false },
    }
}

/// The panic message a Rust guest printed to stderr, if any.
fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines().skip_while(|l| !l.contains("panicked at"));
    let location = lines.next()?;
    let location = location.split("panicked at").nth(1).unwrap_or("").trim().trim_end_matches(':');
    let text: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).collect();
    let text = text.join(" ");
    Some(if location.is_empty() { text } else { format!("{} at {location}", text.trim()) })
}

/// The plugin's own error, its message redacted before it is cut.
pub(super) fn plugin_error(e: bindings::StepError, redactor: &Redactor) -> StepFailure {
    let (error_kind, mut message) = match e {
        bindings::StepError::Retryable(m) => (PluginErrorKind::Retryable, m),
        bindings::StepError::Fatal(m) => (PluginErrorKind::Fatal, m),
        bindings::StepError::InvalidInput(m) => (PluginErrorKind::InvalidInput, m),
    };
    redactor.in_place(&mut message);
    state::truncate_marked(&mut message, MAX_LOG_LINE, " [truncated]");
    StepFailure::PluginError { error_kind, message }
}

/// Checks a successful call's output against the contract and the limits.
/// What its messages quote of the output is redacted before it is cut.
pub(super) fn check_output(
    out: bindings::StepOutput,
    limits: &Limits,
    redactor: &Redactor,
) -> Result<StepSuccess, StepFailure> {
    let invalid = |reason: String| StepFailure::InvalidOutput { reason };
    let total = out.output.len() + out.actions.iter().map(|a| a.payload.len() + a.target.len()).sum::<usize>();
    if total > limits.max_output_bytes {
        return Err(invalid(format!(
            "the output is {total} bytes; the limit is {} bytes (raise max_output_bytes, or return a reference \
             to the data instead of the data)",
            limits.max_output_bytes
        )));
    }
    if out.actions.len() > limits.max_actions {
        return Err(invalid(format!(
            "the step emitted {} actions; at most {} are allowed per attempt",
            out.actions.len(),
            limits.max_actions
        )));
    }
    let output: Value = serde_json::from_str(&out.output).map_err(|e| {
        let mut start = redactor.text(preview(&out.output, 200));
        redactor.cut(&mut start);
        let start = preview(&start, 40).to_string();
        invalid(format!("the output is not valid JSON: {e} (output starts with {start:?})"))
    })?;
    let mut actions = Vec::with_capacity(out.actions.len());
    for (i, a) in out.actions.into_iter().enumerate() {
        if a.target.trim().is_empty() {
            return Err(invalid(format!("action {i} has an empty target node")));
        }
        let payload: Value = serde_json::from_str(&a.payload).map_err(|e| {
            invalid(format!("action {i} (to `{}`) has a payload that is not valid JSON: {e}", redactor.text(&a.target)))
        })?;
        if !payload.is_object() {
            return Err(invalid(format!(
                "action {i} (to `{}`) has a payload that is not a JSON object",
                redactor.text(&a.target)
            )));
        }
        actions.push(EmittedAction {
            action_type: match a.kind {
                bindings::ActionKind::Compute => ActionKind::Compute,
                bindings::ActionKind::Effect => ActionKind::Effect,
                bindings::ActionKind::Reduce => ActionKind::Reduce,
                bindings::ActionKind::Orchestrate => ActionKind::Orchestrate,
                bindings::ActionKind::Custom => ActionKind::Custom,
            },
            target_node: a.target,
            payload,
        });
    }
    Ok(StepSuccess { output, actions })
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn preview(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
