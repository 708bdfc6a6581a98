//! One attempt: a fresh store with its own fuel, deadline, memory cap and
//! WASI context, one call into the guest, and a typed [`AttemptReport`].

use super::classify::{check_output, classify, plugin_error};
use super::load::Pre;
use super::policy::{Grants, PreparedWasi};
use super::state::{DeadlineExceeded, LogTags, Sessions, StepState};
use super::{CallKind, Limits, LoadedComponent, Sandbox, StepCall, StepWorld, bindings};
use crate::contract::{AttemptReport, AttemptStats, LogLevel, LogSource, StepFailure, StepSuccess};
use serde_json::Value;
use std::time::Instant;
use wasmtime::{Store, UpdateDeadline};

/// The raw result of a guest call before classification.
enum RawCall {
    Run(Result<bindings::StepOutput, bindings::StepError>),
    Compensate(Result<(), bindings::StepError>),
}

impl Sandbox {
    /// Runs one attempt of `call` on `component` under `limits`, in a fresh
    /// store, with its world's baseline and no grant. Guest behaviour never
    /// makes it panic or hang: every way the guest can fail is a
    /// [`StepFailure`]. Must be called inside a tokio runtime with timers
    /// enabled.
    pub async fn execute(&self, component: &LoadedComponent, call: &StepCall, limits: &Limits) -> AttemptReport {
        self.execute_granted(component, call, limits, &Grants::none()).await
    }

    /// [`Sandbox::execute`], with `grants` on top of the world's baseline.
    /// Grants that [`Sandbox::check_grants`] refuses fail the attempt before
    /// anything runs; check them up front to report them earlier.
    pub async fn execute_granted(
        &self,
        component: &LoadedComponent,
        call: &StepCall,
        limits: &Limits,
        grants: &Grants,
    ) -> AttemptReport {
        if matches!(call.kind, CallKind::Compensate { .. }) && component.world != StepWorld::Effect {
            return AttemptReport::failed_early(StepFailure::ComponentInvalid {
                reason: format!(
                    "`compensate` was called on a {} component; only effect-step components export it",
                    component.world
                ),
            });
        }
        let refused = self.policy.check(component.world, grants, &component.acts);
        if !refused.is_empty() {
            return AttemptReport::failed_early(StepFailure::ComponentInvalid { reason: refused.join("; ") });
        }
        let mut limits = limits.clone();
        limits.timeout = limits.timeout.min(MAX_TIMEOUT);
        limits.memory_bytes = limits.memory_bytes.min(self.config.max_memory_bytes);
        let limits = &limits;
        // Wait for an instance slot so that the pool is never exhausted.
        let _slot = self.slots.acquire().await.ok();
        let memory_limit = limits.memory_bytes;
        let PreparedWasi { ctx: wasi, stdout, stderr, http, kv, stream, redactor, denials } =
            match self.policy.prepare(component.world, &call.ctx, grants, limits.max_log_bytes) {
                Ok(prepared) => prepared,
                Err(reason) => {
                    return AttemptReport::failed_early(StepFailure::ComponentInvalid {
                        reason: format!("the step's capabilities could not be prepared: {reason}"),
                    });
                }
            };
        let tags =
            LogTags { run_id: call.ctx.run_id.clone(), step_id: call.ctx.step_id.clone(), attempt: call.ctx.attempt };
        let sessions = Sessions { http, kv, stream, redactor };
        let state = StepState::new(wasi, sessions, memory_limit, limits.max_log_bytes, tags);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Bound what one guest-to-host transfer (a log line, or the call's
        // result) may make the host allocate.
        store.set_hostcall_fuel(hostcall_budget(limits));
        // Fuel is injected in slices: compiled code writes its fuel count back
        // to the store only at calls and at the end of each slice, so slicing
        // keeps `fuel_consumed` exact to within one slice even when the epoch
        // deadline interrupts a loop that makes no calls.
        let fuel_ok = store.set_fuel(limits.fuel).is_ok() && store.fuel_async_yield_interval(Some(FUEL_SLICE)).is_ok();
        debug_assert!(fuel_ok, "fuel is enabled in the engine config");

        let ctx = bindings::StepContext {
            run_id: call.ctx.run_id.clone(),
            workflow: call.ctx.workflow.clone(),
            step_id: call.ctx.step_id.clone(),
            attempt: call.ctx.attempt,
            idempotency_key: call.ctx.idempotency_key.clone(),
            correlation_id: call.ctx.correlation_id.clone(),
            tenant: call.ctx.tenant.clone(),
        };
        let input = Value::Object(call.input.clone()).to_string();
        let compensate_output = match &call.kind {
            CallKind::Compensate { output } => Some(output.to_string()),
            CallKind::Run => None,
        };

        let start = Instant::now();
        let deadline = start + limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let ticking = self.ticker.enter();
        let mut instantiated = None;
        let call_future = async {
            match &component.pre {
                Pre::Compute(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instantiated = Some(start.elapsed());
                    let r = instance.weft_step_compute().call_run(&mut store, &ctx, &input).await?;
                    Ok::<_, wasmtime::Error>(RawCall::Run(r))
                }
                Pre::Effect(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instantiated = Some(start.elapsed());
                    let effect = instance.weft_step_effect();
                    match &compensate_output {
                        None => Ok(RawCall::Run(effect.call_run(&mut store, &ctx, &input).await?)),
                        Some(out) => {
                            Ok(RawCall::Compensate(effect.call_compensate(&mut store, &ctx, &input, out).await?))
                        }
                    }
                }
            }
        };
        // The epoch callback traps at the deadline while wasm runs (and keeps
        // the fuel count exact); the async timeout, a little later, catches
        // time spent blocked in host calls.
        let result = tokio::time::timeout(limits.timeout + HOST_CALL_GRACE, call_future).await;
        drop(ticking);
        let wall = start.elapsed();

        let redactor = store.data().redactor.clone();
        let (mut stdout_text, stdout_dropped) = stdout.take();
        let (mut stderr_text, stderr_dropped) = stderr.take();
        // Every line is redacted when it is logged, but a capture cut at its
        // budget must not end in the start of a secret: that tail goes now.
        for (text, dropped) in [(&mut stdout_text, stdout_dropped), (&mut stderr_text, stderr_dropped)] {
            if dropped > 0 {
                redactor.cut(text);
            }
        }
        let mut outcome = match result {
            Err(_elapsed) => Err(StepFailure::Timeout { limit_ms: millis(limits.timeout) }),
            Ok(Err(e)) => Err(classify(&e, &store, limits, &stderr_text)),
            Ok(Ok(RawCall::Run(Ok(out)))) => check_output(out, limits, &redactor),
            Ok(Ok(RawCall::Run(Err(e)) | RawCall::Compensate(Err(e)))) => Err(plugin_error(e, &redactor)),
            Ok(Ok(RawCall::Compensate(Ok(())))) => Ok(StepSuccess { output: Value::Null, actions: Vec::new() }),
        };
        let fuel_left = store.get_fuel().unwrap_or(0);
        let fuel_consumed = match outcome {
            Err(StepFailure::OutOfFuel { budget }) => budget,
            _ => limits.fuel.saturating_sub(fuel_left),
        };
        let data = store.data_mut();
        let (denied, capability_denials) = denials.take();
        for line in denied {
            data.log(LogLevel::Warn, LogSource::Host, line);
        }
        redact_outcome(&redactor, &mut outcome);
        for (text, source, level) in
            [(stdout_text, LogSource::Stdout, LogLevel::Info), (stderr_text, LogSource::Stderr, LogLevel::Warn)]
        {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                data.log(level, source, line.to_string());
            }
        }
        for (dropped, name) in [(stdout_dropped, "stdout"), (stderr_dropped, "stderr")] {
            if dropped > 0 {
                data.log(
                    LogLevel::Warn,
                    LogSource::Host,
                    format!(
                        "{dropped} byte(s) of {name} dropped: the attempt's log budget is {} bytes",
                        limits.max_log_bytes
                    ),
                );
            }
        }
        let stats = AttemptStats {
            fuel_consumed,
            wall_time_us: u64::try_from(wall.as_micros()).unwrap_or(u64::MAX),
            peak_memory_bytes: data.limiter.peak,
            instantiate_us: instantiated.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)),
            capability_denials,
        };
        let state = store.into_data();
        let report = AttemptReport { outcome, stats, logs: state.logs.finish() };
        tracing::debug!(
            run_id = %call.ctx.run_id,
            step_id = %call.ctx.step_id,
            attempt = call.ctx.attempt,
            outcome = report.failure().map_or("succeeded", |f| f.kind().as_str()),
            fuel = stats.fuel_consumed,
            wall_us = stats.wall_time_us,
            peak_memory = stats.peak_memory_bytes,
            "attempt finished"
        );
        report
    }
}

/// Replaces secret values in what the step returned: its output, its
/// actions' payloads, and the message of the error it returned.
fn redact_outcome(redactor: &crate::capability::Redactor, outcome: &mut Result<StepSuccess, StepFailure>) {
    if redactor.is_empty() {
        return;
    }
    match outcome {
        Ok(success) => {
            redactor.json(&mut success.output);
            for action in &mut success.actions {
                redactor.json(&mut action.payload);
            }
        }
        // Plugin errors and invalid-output messages were redacted where they
        // were made, before they were cut (`classify`).
        Err(StepFailure::Trap { message, .. }) => redactor.in_place(message),
        Err(StepFailure::ComponentInvalid { reason }) => redactor.in_place(reason),
        Err(_) => {}
    }
}

/// The longest wall-time limit an attempt may have (longer ones are lowered to it).
pub const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Bytes one guest-to-host transfer may carry: the output limit plus room for
/// the action records, never less than 64 KiB.
pub(super) fn hostcall_budget(limits: &Limits) -> usize {
    limits.max_output_bytes.saturating_add(limits.max_actions.saturating_mul(64)).saturating_add(16 << 10).max(64 << 10)
}

/// Fuel injected at a time (about a millisecond of guest work); see `execute`.
const FUEL_SLICE: u64 = 10_000_000;

/// How long past the deadline the async timeout waits for the epoch trap.
const HOST_CALL_GRACE: std::time::Duration = std::time::Duration::from_millis(25);

pub(super) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
