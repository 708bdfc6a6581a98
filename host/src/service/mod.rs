//! `weft serve`: the HTTP API over the library, for operators who host other
//! people's workflows and components.
//!
//! A tour:
//! - [`Service`] holds what every handler shares: the [`Engine`] (its store,
//!   policy and sandbox), the [`Tenants`], the [`Metrics`], and the limits;
//!   [`Service::router`] wires the endpoints; [`serve`] runs them.
//! - `auth.rs` turns a request's token (or the web UI's session, from
//!   `sessions.rs`) into a [`Caller`] (tenant + scopes);
//!   every handler takes one, and every lookup is scoped by its tenant in
//!   `scoped.rs`, where another tenant's objects answer 404.
//! - `runs.rs` submits runs (idempotently); `run_views.rs` lists and shows
//!   them, `run_control.rs` cancels, resumes and signals them, `dlq.rs`
//!   lists and replays dead letters;
//!   `events.rs` streams a run's journal as server-sent events (woken by
//!   `wakers.rs` when this process writes it);
//!   `workflows.rs` validates and registers workflows; `components.rs`
//!   takes uploads by digest and resolves a workflow's components among the
//!   tenant's; `quota.rs` enforces the tenants' quotas, on the usage that
//!   `usage.rs` counts in the store; `stored.rs` charges what they keep;
//!   `turns.rs` makes one tenant's checks and writes take turns;
//!   `tenant_view.rs` shows a tenant its own usage and metrics.
//! - `ui/` is the web UI: server-rendered pages, the DAG as SVG, and one
//!   script that follows a run's events.
//! - `problem.rs` is every error (RFC 9457); `openapi.rs` the OpenAPI
//!   document generated from the handlers; `metrics.rs` the Prometheus
//!   metrics; `traces.rs` the OpenTelemetry spans (OTLP); `health.rs`
//!   liveness and readiness.
//!
//! Workflow authors and API clients are untrusted: a workflow names its
//! components by digest only (never a path of the host), reads no
//! sub-workflow files, and runs under the operator's policy (which grants
//! nothing unless `--policy` says so).

mod auth;
mod components;
mod dlq;
mod events;
mod extract;
mod health;
mod metrics;
mod openapi;
mod problem;
mod quota;
mod run_control;
mod run_views;
mod runs;
mod scoped;
mod sessions;
mod stored;
mod tenant_view;
mod tenants;
mod traces;
mod turns;
mod ui;
mod usage;
mod wakers;
mod workflows;

pub use metrics::{Metrics, metrics_router};
pub use openapi::openapi_json;
pub use problem::{PROBLEM_JSON, Problem, ProblemItem};
pub use tenants::{Caller, Quotas, Scope, Tenant, TenantError, Tenants, TokenRecord, valid_name};
pub use traces::{Traces, parent_context, valid_traceparent};
pub use usage::FuelMeter;

use crate::engine::{Engine, SandboxExecutor};
use crate::sandbox::Sandbox;
use axum::Router;
use axum::routing::{get, post, put};
use std::sync::Arc;
use std::time::Duration;

/// The limits of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ServiceLimits {
    /// The largest JSON or YAML request body, in bytes.
    pub max_body_bytes: usize,
    /// The largest component upload, in bytes.
    pub max_component_bytes: usize,
    /// How long a request (not a stream or a long poll) may take.
    pub request_timeout: Duration,
    /// The longest `?wait=` a client may ask for.
    pub max_wait: Duration,
    /// The directory under which each tenant has its own (`<root>/<tenant>`):
    /// relative `host:` directories of its workflows' capabilities resolve
    /// there (the policy still caps them). None: they resolve nowhere.
    pub tenant_root: Option<std::path::PathBuf>,
    /// Whether `/metrics` is served with the API. Its labels name tenants
    /// and workflows of every tenant: a multi-tenant host serves it on an
    /// operator's listener instead ([`metrics_router`]).
    pub metrics_with_api: bool,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 << 20,
            max_component_bytes: 64 << 20,
            request_timeout: Duration::from_secs(30),
            max_wait: Duration::from_secs(60),
            tenant_root: None,
            metrics_with_api: true,
        }
    }
}

/// What every handler shares.
pub struct Service {
    engine: Engine,
    sandbox: Arc<Sandbox>,
    executor: Arc<SandboxExecutor>,
    tenants: Tenants,
    metrics: Arc<Metrics>,
    limits: ServiceLimits,
    quotas: quota::Windows,
    /// Cancelled once this process drives no run any more (shutdown):
    /// event streams end after their last entries.
    streams_end: tokio_util::sync::CancellationToken,
    /// The service's secret, read once (see [`Tenants::service_secret`]).
    secret: tokio::sync::OnceCell<Vec<u8>>,
    /// Wakes the requests that wait on a run this process journals for.
    wakers: Arc<wakers::RunWakers>,
    /// Per tenant, the turn to change what it keeps (`stored.rs`).
    write_turns: turns::Turns,
    /// Per tenant, the turn to count its runs and submit one (`runs.rs`).
    submit_turns: turns::Turns,
}

impl Service {
    /// A service over `engine`, whose executor is `executor` (on `sandbox`);
    /// the engine reports its runs to `metrics`. The service's engine
    /// ([`Service::engine`]) also wakes the requests that wait on a run:
    /// drive runs in this process with that one.
    pub fn new(
        engine: Engine,
        sandbox: Arc<Sandbox>,
        executor: Arc<SandboxExecutor>,
        metrics: Arc<Metrics>,
        limits: ServiceLimits,
    ) -> Arc<Self> {
        let kv: Arc<dyn crate::contract::KeyValue> = engine.store().clone();
        let wakers = Arc::new(wakers::RunWakers::default());
        let heard = crate::engine::Observers(vec![engine.observer().clone(), wakers.clone()]);
        let engine = engine.with_observer(Arc::new(heard));
        Arc::new(Self {
            tenants: Tenants::new(kv),
            engine,
            sandbox,
            executor,
            metrics,
            limits,
            quotas: Default::default(),
            streams_end: Default::default(),
            secret: Default::default(),
            wakers,
            write_turns: Default::default(),
            submit_turns: Default::default(),
        })
    }

    /// Ends every event stream once it has sent what is journaled: call it
    /// when this process drives no run any more (its workers have drained).
    pub fn end_streams(&self) {
        self.streams_end.cancel();
    }

    /// The engine the service submits to; in-process workers run on it (so
    /// that waiting requests are woken).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Every endpoint.
    pub fn router(self: &Arc<Self>) -> Router {
        use axum::extract::DefaultBodyLimit;
        let limit = self.limits.request_timeout;
        let timeout = || axum::middleware::from_fn(move |req, next| extract::time_bound(limit, req, next));
        // Requests that answer at once: bounded in time and body size.
        let api = Router::new()
            .route("/v1/runs", get(run_views::list))
            .route("/v1/runs/{id}", get(run_views::show))
            .route("/v1/runs/{id}/journal", get(run_views::journal))
            .route("/v1/runs/{id}/logs", get(run_views::logs))
            .route("/v1/runs/{id}/cancel", post(run_control::cancel))
            .route("/v1/runs/{id}/resume", post(run_control::resume))
            .route("/v1/runs/{id}/steps/{step}/signal", post(run_control::signal))
            .route("/v1/dlq", get(dlq::list))
            .route("/v1/dlq/{id}/replay", post(dlq::replay))
            .route("/v1/workflows", get(workflows::list))
            .route("/v1/workflows:validate", post(workflows::validate))
            .route("/v1/workflows/{name}", put(workflows::register).get(workflows::show).delete(workflows::delete))
            .route("/v1/workflows/{name}/graph", get(workflows::graph))
            .route("/v1/components/{digest}", get(components::show).delete(components::delete))
            .route("/v1/usage", get(tenant_view::show))
            .route("/v1/metrics", get(tenant_view::metrics))
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .route("/openapi.json", get(openapi::document))
            .route("/docs", get(openapi::docs_page))
            .layer(DefaultBodyLimit::max(self.limits.max_body_bytes))
            .layer(timeout());
        let api = if self.limits.metrics_with_api { api.route("/metrics", get(metrics::render)) } else { api };
        // Uploads: a larger body, the same time bound.
        let uploads = Router::new()
            .route("/v1/components/{digest}", put(components::upload))
            .layer(DefaultBodyLimit::max(self.limits.max_component_bytes))
            .layer(timeout());
        // Long polls and streams bound themselves.
        let streams = Router::new()
            .route("/v1/runs", post(runs::post))
            .route("/v1/runs/{id}", put(runs::put))
            .route("/v1/runs/{id}/events", get(events::stream))
            .layer(DefaultBodyLimit::max(self.limits.max_body_bytes));
        // A client that sends its body slowly is cut off.
        let slow_body = tower_http::timeout::RequestBodyTimeoutLayer::new(self.limits.request_timeout);
        api.merge(uploads)
            .merge(streams)
            .merge(ui::routes().layer(DefaultBodyLimit::max(64 << 10)).layer(timeout()))
            .layer(slow_body)
            .fallback(extract::no_route)
            .method_not_allowed_fallback(extract::wrong_method)
            .with_state(self.clone())
    }
}

/// Serves `service` on `listener` until `shutdown` resolves; requests in
/// flight finish first.
pub async fn serve(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, service.router()).with_graceful_shutdown(shutdown).await
}
