//! OpenTelemetry traces over OTLP/HTTP (protobuf), off unless
//! `--otlp-endpoint` is given: [`Traces`] is an engine observer that makes
//! a span per run driven here, a span per step under it, and a span per
//! attempt under that, with the run id, step id, attempt, outcome (or
//! failure kind), fuel, peak memory and wall time as attributes. A step's
//! span ends when its end is journaled (or, at the latest, with its run's).
//!
//! A run's spans are children of its `traceparent`, which is kept with the
//! run (a submission's W3C `traceparent` header, or a fresh one), so every
//! process that drives a run (a resume on another worker) adds to one
//! trace. Spans are batched and exported from the SDK's own thread; call
//! [`Traces::shutdown`] (it blocks) to send the rest before the process ends.

use crate::contract::{AttemptReport, RunOutput};
use crate::engine::{ObservedRun, RunObserver, StepMark};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer, TracerProvider,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// A run's open spans in this process.
struct OpenRun {
    run: Context,
    /// Per step: its span's context and its last attempt's end.
    steps: HashMap<String, (Context, SystemTime)>,
}

/// The engine observer that exports traces.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    open: Mutex<HashMap<String, OpenRun>>,
}

impl Traces {
    /// Traces exported to the OTLP/HTTP collector at `endpoint`
    /// (`http://HOST:4318`; `/v1/traces` is added unless it is there).
    pub fn otlp(endpoint: &str, service_name: &str) -> Result<Self, String> {
        let url = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
            endpoint.to_string()
        } else {
            format!("{}/v1/traces", endpoint.trim_end_matches('/'))
        };
        if !url.starts_with("http://") {
            return Err(format!("--otlp-endpoint {endpoint}: give an http:// URL of an OTLP/HTTP collector"));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("--otlp-endpoint {endpoint}: {e}"))?;
        let resource = opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_string()).build();
        let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
        let tracer = provider.tracer("weft");
        Ok(Self { provider, tracer, open: Mutex::new(HashMap::new()) })
    }

    /// Sends every span not sent yet and stops the exporter. It blocks
    /// (up to the exporter's timeout): call it off the async runtime.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "spans could not be sent to the OTLP collector");
        }
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "the OTLP exporter did not stop cleanly");
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, OpenRun>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The context a `traceparent` names (`00-<trace>-<span>-<flags>`), as a
/// remote parent; an empty context when it is absent or malformed.
pub fn parent_context(traceparent: Option<&str>) -> Context {
    let Some(tp) = traceparent else { return Context::new() };
    let parts: Vec<&str> = tp.trim().split('-').collect();
    let [version, trace, span, flags] = parts[..] else { return Context::new() };
    if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return Context::new();
    }
    let (Ok(trace), Ok(span), Ok(flags)) =
        (TraceId::from_hex(trace), SpanId::from_hex(span), u8::from_str_radix(flags, 16))
    else {
        return Context::new();
    };
    let sc = SpanContext::new(trace, span, TraceFlags::new(flags), true, TraceState::default());
    if sc.is_valid() { Context::new().with_remote_span_context(sc) } else { Context::new() }
}

/// Whether `traceparent` is a valid W3C trace context.
pub fn valid_traceparent(traceparent: &str) -> bool {
    parent_context(Some(traceparent)).span().span_context().is_valid()
}

impl RunObserver for Traces {
    fn run_started(&self, run: ObservedRun<'_>) {
        let parent = parent_context(run.traceparent);
        let span = self
            .tracer
            .span_builder("run")
            .with_kind(SpanKind::Internal)
            .with_attributes(vec![
                KeyValue::new("weft.run_id", run.run_id.to_string()),
                KeyValue::new("weft.workflow", run.workflow.to_string()),
                KeyValue::new("weft.tenant", run.tenant.to_string()),
            ])
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(span);
        self.open().insert(run.run_id.to_string(), OpenRun { run: cx, steps: HashMap::new() });
    }

    fn attempt_finished(&self, run: ObservedRun<'_>, step_id: &str, attempt: u32, report: &AttemptReport) {
        let end = SystemTime::now();
        let start = end.checked_sub(Duration::from_micros(report.stats.wall_time_us)).unwrap_or(end);
        let mut open = self.open();
        let Some(r) = open.get_mut(run.run_id) else { return };
        let (step_cx, last_end) = r.steps.entry(step_id.to_string()).or_insert_with(|| {
            let span = self
                .tracer
                .span_builder("step")
                .with_kind(SpanKind::Internal)
                .with_start_time(start)
                .with_attributes(vec![
                    KeyValue::new("weft.run_id", run.run_id.to_string()),
                    KeyValue::new("weft.step_id", step_id.to_string()),
                ])
                .start_with_context(&self.tracer, &r.run);
            (r.run.with_span(span), end)
        });
        *last_end = end;
        let outcome = report.failure().map_or("succeeded", |f| f.kind().as_str());
        let mut span = self
            .tracer
            .span_builder("attempt")
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(vec![
                KeyValue::new("weft.run_id", run.run_id.to_string()),
                KeyValue::new("weft.step_id", step_id.to_string()),
                KeyValue::new("weft.attempt", i64::from(attempt)),
                KeyValue::new("weft.outcome", outcome.to_string()),
                KeyValue::new("weft.fuel_consumed", report.stats.fuel_consumed.min(i64::MAX as u64) as i64),
                KeyValue::new("weft.peak_memory_bytes", report.stats.peak_memory_bytes.min(i64::MAX as u64) as i64),
                KeyValue::new("weft.wall_time_us", report.stats.wall_time_us.min(i64::MAX as u64) as i64),
            ])
            .start_with_context(&self.tracer, step_cx);
        opentelemetry::trace::Span::end_with_timestamp(&mut span, end);
    }

    fn journaled(&self, run: ObservedRun<'_>, steps: &[StepMark], _commit: Duration) {
        let mut open = self.open();
        let Some(r) = open.get_mut(run.run_id) else { return };
        for mark in steps {
            if let Some(outcome) = mark.ended
                && let Some((step_cx, _)) = r.steps.remove(&mark.step_id)
            {
                let span = step_cx.span();
                span.set_attribute(KeyValue::new("weft.step_outcome", outcome));
                span.end();
            }
        }
    }

    fn run_finished(&self, run: ObservedRun<'_>, output: &RunOutput, _steps: usize) {
        let Some(r) = self.open().remove(run.run_id) else { return };
        for (step_cx, end) in r.steps.values() {
            step_cx.span().end_with_timestamp(*end);
        }
        let span = r.run.span();
        span.set_attribute(KeyValue::new("weft.execution_status", output.execution_status.as_str()));
        span.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_parses_or_is_ignored() {
        let cx = parent_context(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote());
        assert_eq!(format!("{:032x}", sc.trace_id()), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in ["", "00-xyz", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "garbage-a-b-c"] {
            assert!(!valid_traceparent(bad), "{bad}");
        }
        assert!(valid_traceparent(&crate::engine::new_traceparent()));
    }
}
