//! The Prometheus metrics of `weft serve` and `weft worker`, on
//! `prometheus-client` (no globals, typed label sets, real histograms).
//!
//! The ONEX orchestrator contract's five keep its names, types and labels:
//! `workflow_duration_seconds` (histogram by `workflow_type` and
//! `execution_status`), `workflow_step_count` (gauge: the steps of the
//! workflow that ended last), `actions_emitted_total{action_type}`,
//! `workflow_errors_total{error_type, workflow_type}` and
//! `active_workflows`. The rest are `weft_*`, in seconds and bytes: the
//! attempts (by outcome, duration, fuel, peak memory, instantiation), the
//! steps (from scheduling to end), the store's commits, the circuit
//! breakers, the workers' events, the DLQ and the quota rejections.
//!
//! Label values a workflow author chooses (`workflow_type`, `action_type`)
//! are bounded: past [`MAX_LABEL_VALUES`] distinct values, the rest count
//! as `other`. Tenants appear only on quota rejections, which an operator's
//! own tenant list bounds.
//!
//! A tenant sees its own metrics only, at `GET /v1/metrics` with its token:
//! the same run metrics kept for its runs alone, its quota rejections, and
//! its usage and quotas as `weft_tenant_*` gauges (`tenant_view.rs`).

use crate::contract::{AttemptReport, RunOutput};
use crate::engine::{ObservedRun, RunObserver, StepMark};
use crate::store::{BreakerState, RunStore};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most distinct values a label an author chooses may take.
pub const MAX_LABEL_VALUES: usize = 200;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    workflow_type: String,
    execution_status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error_type: String,
    workflow_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    tenant: String,
    quota: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    component: String,
}

/// The metrics of runs: the contract's five and the attempts'. A process
/// keeps one set for all runs, and one per tenant (the tenant's own view,
/// `GET /v1/metrics`).
#[derive(Clone)]
struct RunFamilies {
    workflow_duration: Family<RunLabels, Histogram>,
    step_count: Gauge,
    actions: Family<ActionLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    active: Gauge,
    attempts: Family<OutcomeLabels, Counter>,
    attempt_duration: Histogram,
    fuel: Counter,
    peak_memory: Histogram,
    /// The label values authors chose so far, per label.
    seen: Arc<Mutex<HashSet<(&'static str, String)>>>,
}

impl RunFamilies {
    fn new() -> Self {
        Self {
            workflow_duration: Family::<RunLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 20))
            }),
            step_count: Gauge::default(),
            actions: Family::default(),
            errors: Family::default(),
            active: Gauge::default(),
            attempts: Family::default(),
            attempt_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 20)),
            fuel: Counter::default(),
            peak_memory: Histogram::new(exponential_buckets(65536.0, 2.0, 16)),
            seen: Default::default(),
        }
    }

    /// Registers every family in `registry` (they stay shared with `self`).
    fn register(&self, registry: &mut Registry) {
        let s = self.clone();
        registry.register("workflow_duration_seconds", "Time spent on workflow execution", s.workflow_duration);
        registry.register("workflow_step_count", "Number of steps in workflow", s.step_count);
        registry.register("actions_emitted", "Total actions emitted", s.actions);
        registry.register("workflow_errors", "Total workflow errors", s.errors);
        registry.register("active_workflows", "Number of currently active workflows", s.active);
        registry.register("weft_attempts", "Step attempts by outcome (`succeeded`, or the failure kind)", s.attempts);
        registry.register("weft_attempt_duration_seconds", "Wall time of one attempt", s.attempt_duration);
        registry.register("weft_fuel_consumed", "Fuel consumed by attempts (about one per wasm instruction)", s.fuel);
        registry.register("weft_attempt_peak_memory_bytes", "Peak linear memory of one attempt", s.peak_memory);
    }

    /// `value` as a value of `label`, or `other` once the label has
    /// [`MAX_LABEL_VALUES`] others.
    fn bounded(&self, label: &'static str, value: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (label, value.to_string());
        if seen.contains(&key) {
            return value.to_string();
        }
        if seen.iter().filter(|(l, _)| *l == label).count() >= MAX_LABEL_VALUES {
            return "other".into();
        }
        seen.insert(key);
        value.to_string()
    }

    fn run_started(&self) {
        self.active.inc();
    }

    fn attempt_finished(&self, report: &AttemptReport) {
        let outcome = report.failure().map_or("succeeded", |f| f.kind().as_str());
        self.attempts.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
        self.attempt_duration.observe(report.stats.wall_time_us as f64 / 1e6);
        self.fuel.inc_by(report.stats.fuel_consumed);
        if report.stats.peak_memory_bytes > 0 {
            self.peak_memory.observe(report.stats.peak_memory_bytes as f64);
        }
    }

    fn run_finished(&self, workflow: &str, output: &RunOutput, steps: usize) {
        self.active.dec();
        let workflow_type = self.bounded("workflow_type", workflow);
        let labels = RunLabels {
            workflow_type: workflow_type.clone(),
            execution_status: output.execution_status.as_str().into(),
        };
        self.workflow_duration.get_or_create(&labels).observe(output.execution_time_ms as f64 / 1000.0);
        self.step_count.set(steps.min(i64::MAX as usize) as i64);
        for a in &output.actions_emitted {
            let action_type = self.bounded("action_type", &a.action_type);
            self.actions.get_or_create(&ActionLabels { action_type }).inc();
        }
        for e in &output.errors {
            let error_type = self.bounded("error_type", &e.error_type);
            self.errors.get_or_create(&ErrorLabels { error_type, workflow_type: workflow_type.clone() }).inc();
        }
    }
}

/// Every metric of one process.
pub struct Metrics {
    registry: Registry,
    runs: RunFamilies,
    quota_rejections: Family<QuotaLabels, Counter>,
    worker_events: Family<WorkerLabels, Counter>,
    dlq_size: Gauge,
    step_duration: Family<OutcomeLabels, Histogram>,
    commit: Histogram,
    instantiate: Histogram,
    breakers: Family<BreakerLabels, Gauge>,
    /// When each step in flight here was scheduled, by (run, step).
    step_starts: Mutex<HashMap<(String, String), Instant>>,
    /// Each tenant's own run metrics (its runs driven by this process).
    tenants: Mutex<HashMap<String, RunFamilies>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let runs = RunFamilies::new();
        runs.register(&mut registry);
        let quota_rejections = Family::<QuotaLabels, Counter>::default();
        let worker_events = Family::<WorkerLabels, Counter>::default();
        let dlq_size = Gauge::default();
        registry.register(
            "weft_quota_rejections",
            "Requests refused with 429 because a tenant's quota was used up",
            quota_rejections.clone(),
        );
        registry.register(
            "weft_worker_events",
            "What workers did with runs (`claimed`, `lease_lost`: a takeover, `refused`, `store_error`)",
            worker_events.clone(),
        );
        registry.register("weft_dlq_size", "Runs in the dead-letter queue, not yet replayed", dlq_size.clone());
        let step_duration = Family::<OutcomeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 22))
        });
        registry.register(
            "weft_step_duration_seconds",
            "From a step's scheduling to its end, retries and backoff included, by outcome",
            step_duration.clone(),
        );
        let commit = Histogram::new(exponential_buckets(0.00001, 2.0, 20));
        registry.register("weft_store_commit_seconds", "Time to commit one batch of journal entries", commit.clone());
        let instantiate = Histogram::new(exponential_buckets(0.00001, 2.0, 20));
        registry.register(
            "weft_sandbox_instantiate_seconds",
            "Time to instantiate a component for one attempt",
            instantiate.clone(),
        );
        let breakers = Family::<BreakerLabels, Gauge>::default();
        registry.register(
            "weft_breaker_state",
            "Each component's circuit breaker seen here: 0 closed, 1 half-open, 2 open",
            breakers.clone(),
        );
        Self {
            registry,
            runs,
            quota_rejections,
            worker_events,
            dlq_size,
            step_duration,
            commit,
            instantiate,
            breakers,
            step_starts: Default::default(),
            tenants: Default::default(),
        }
    }

    /// The run metrics of `tenant` (None on a single-tenant host's runs).
    fn tenant(&self, tenant: &str) -> Option<RunFamilies> {
        if tenant.is_empty() {
            return None;
        }
        let mut all = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        Some(all.entry(tenant.to_string()).or_insert_with(RunFamilies::new).clone())
    }

    /// Counts a request refused because `tenant`'s `quota` is used up.
    pub fn quota_rejected(&self, tenant: &str, quota: &str) {
        self.quota_rejections.get_or_create(&QuotaLabels { tenant: tenant.into(), quota: quota.into() }).inc();
    }

    /// Counts a worker's event (`claimed`, `lease_lost`, `refused`, `store_error`).
    pub fn worker_event(&self, event: &str) {
        self.worker_events.get_or_create(&WorkerLabels { event: event.into() }).inc();
    }

    /// Sets the dead-letter queue's size.
    pub fn set_dlq_size(&self, n: u64) {
        self.dlq_size.set(n.min(i64::MAX as u64) as i64);
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        encode(&self.registry)
    }

    /// `tenant`'s own view in the OpenMetrics text format: the run metrics
    /// of its runs driven by this process, its quota rejections, and
    /// `gauges` (its usage and quotas, read from the store by the caller).
    pub(super) fn encode_tenant(&self, tenant: &str, gauges: &[(&'static str, &'static str, u64)]) -> String {
        let mut registry = Registry::default();
        if let Some(runs) = self.tenant(tenant) {
            runs.register(&mut registry);
        }
        let rejections = Family::<QuotaLabels, Counter>::default();
        for quota in QUOTAS {
            let labels = QuotaLabels { tenant: tenant.into(), quota: quota.into() };
            rejections.get_or_create(&labels).inc_by(self.quota_rejections.get_or_create(&labels).get());
        }
        registry.register("weft_quota_rejections", "Requests refused with 429 because a quota was used up", rejections);
        for (name, help, value) in gauges {
            let gauge = Gauge::<i64>::default();
            gauge.set((*value).min(i64::MAX as u64) as i64);
            registry.register(*name, *help, gauge);
        }
        encode(&registry)
    }
}

/// The quotas whose rejections are counted.
const QUOTAS: [&str; 4] = ["concurrent_runs", "submissions_per_minute", "fuel_per_hour", "stored_bytes"];

fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(error = %e, "the metrics could not be encoded");
    }
    out
}

impl RunObserver for Metrics {
    fn run_started(&self, run: ObservedRun<'_>) {
        self.runs.run_started();
        if let Some(t) = self.tenant(run.tenant) {
            t.run_started();
        }
    }

    fn attempt_finished(&self, run: ObservedRun<'_>, _step_id: &str, _attempt: u32, report: &AttemptReport) {
        self.runs.attempt_finished(report);
        if report.stats.instantiate_us > 0 {
            self.instantiate.observe(report.stats.instantiate_us as f64 / 1e6);
        }
        if let Some(t) = self.tenant(run.tenant) {
            t.attempt_finished(report);
        }
    }

    fn journaled(&self, run: ObservedRun<'_>, steps: &[StepMark], commit: Duration) {
        self.commit.observe(commit.as_secs_f64());
        if steps.is_empty() {
            return;
        }
        let mut starts = self.step_starts.lock().unwrap_or_else(PoisonError::into_inner);
        for mark in steps {
            let key = (run.run_id.to_string(), mark.step_id.clone());
            match mark.ended {
                None => {
                    starts.insert(key, Instant::now());
                }
                Some(outcome) => {
                    if let Some(since) = starts.remove(&key) {
                        let labels = OutcomeLabels { outcome: outcome.into() };
                        self.step_duration.get_or_create(&labels).observe(since.elapsed().as_secs_f64());
                    }
                }
            }
        }
    }

    fn breaker_changed(&self, component: &str, state: BreakerState) {
        let component = self.runs.bounded("component", component);
        let value = match state {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        };
        self.breakers.get_or_create(&BreakerLabels { component }).set(value);
    }

    fn run_finished(&self, run: ObservedRun<'_>, output: &RunOutput, steps: usize) {
        self.step_starts.lock().unwrap_or_else(PoisonError::into_inner).retain(|(r, _), _| r != run.run_id);
        self.runs.run_finished(run.workflow, output, steps);
        if let Some(t) = self.tenant(run.tenant) {
            t.run_finished(run.workflow, output, steps);
        }
    }
}

/// `GET /metrics`: the process's metrics (the operator's; no tenant token).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String)))]
pub(super) async fn render(
    axum::extract::State(service): axum::extract::State<Arc<super::Service>>,
) -> axum::response::Response {
    page(&service.metrics, service.engine.store().as_ref()).await
}

/// The metrics page: the DLQ's size is read from `store` now.
async fn page(metrics: &Metrics, store: &dyn RunStore) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Ok(waiting) = store.dlq_waiting().await {
        metrics.set_dlq_size(waiting);
    }
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        metrics.encode(),
    )
        .into_response()
}

/// A router with `/metrics` only, for a process that serves no API (`weft
/// worker --metrics-listen`).
pub fn metrics_router(metrics: Arc<Metrics>, store: Arc<dyn RunStore>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (metrics, store) = (metrics.clone(), store.clone());
            async move { page(&metrics, store.as_ref()).await }
        }),
    )
}
