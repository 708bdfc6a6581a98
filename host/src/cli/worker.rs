//! `weft worker`: claims runnable runs from a shared store and drives them
//! (`Engine::work`), one line on stderr per run claimed and ended.

use super::args::{DriveArgs, TenantPolicyArgs};
use super::exit;
use super::output::noteln;
use super::usage;
use clap::Args;
use std::future::IntoFuture;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use weft::engine::{Engine, Observers, RunObserver, WorkerEvent, WorkerOptions};
use weft::service::{FuelMeter, Metrics, Traces, metrics_router};

/// `weft worker`
#[derive(Args)]
pub struct WorkerArgs {
    /// How many runs this worker drives at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: u64,
    /// How often to look for work without a wake-up hint, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    poll_ms: u64,
    /// How long this worker's leases last without a heartbeat, in
    /// milliseconds: another worker takes a run over this long after this
    /// one stops answering.
    #[arg(long, default_value_t = weft::engine::DEFAULT_LEASE_MS, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    lease_ms: u64,
    /// Serve the worker's Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    traces: TraceArgs,
    #[command(flatten)]
    tenant_policies: TenantPolicyArgs,
    #[command(flatten)]
    run: DriveArgs,
}

impl WorkerArgs {
    /// Runs the worker until it has drained.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let metrics = Arc::new(Metrics::new());
        let engine = self.tenant_policies.apply(self.run.engine()?.with_lease_ms(self.lease_ms))?;
        let observed = self.traces.observer(metrics.clone(), &engine)?;
        let engine = engine.with_observer(observed.observer.clone());
        let at = self.run.store.location()?;
        super::shutdown::drain_on_sigterm(engine.clone(), "the worker");
        let quiet = self.run.quiet;
        if let Some(listen) = &self.metrics_listen {
            let addr = serve_metrics(listen, &metrics, &engine).await?;
            noteln!("worker metrics at http://{addr}/metrics");
        }
        if !quiet {
            noteln!("worker {} on {at}: up to {} runs at once; SIGTERM drains it", engine.owner(), self.concurrency);
        }
        let opts = WorkerOptions {
            concurrency: self.concurrency as usize,
            poll_every: Duration::from_millis(self.poll_ms),
            resume: self.run.options(),
        };
        engine.work(opts, move |event| report(&metrics, quiet, event)).await;
        observed.flush().await;
        if !quiet {
            noteln!("worker {} drained", engine.owner());
        }
        Ok(exit::code(exit::OK))
    }
}

/// Serves `metrics` at `http://LISTEN/metrics` until `engine` drains;
/// returns the address it listens on.
pub async fn serve_metrics(
    listen: &str,
    metrics: &Arc<Metrics>,
    engine: &Engine,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| usage(format!("--metrics-listen {listen}: {e}; pass another address")))?;
    let addr = listener.local_addr()?;
    let router = metrics_router(metrics.clone(), engine.store().clone());
    tokio::spawn(axum::serve(listener, router).with_graceful_shutdown(engine.drained()).into_future());
    Ok(addr)
}

/// What watches an engine's runs: its observer (the metrics, the tenants'
/// fuel meter, and the traces when they are exported).
pub struct Observed {
    /// The engine's observer.
    pub observer: Arc<dyn RunObserver>,
    traces: Option<Arc<Traces>>,
    fuel: Arc<FuelMeter>,
}

impl Observed {
    /// Writes the fuel counted since the last write, and sends the spans not
    /// sent yet (off the runtime: it blocks). Call it once the runs ended.
    pub async fn flush(self) {
        self.fuel.flush().await;
        if let Some(t) = self.traces {
            let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
        }
    }
}

/// Where traces go: nowhere unless `--otlp-endpoint` is given.
#[derive(Args)]
pub struct TraceArgs {
    /// Export OpenTelemetry traces (a span per run, step and attempt) to
    /// this OTLP/HTTP collector, e.g. http://127.0.0.1:4318. Off without it.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
}

impl TraceArgs {
    /// The observer of `engine`'s runs: `metrics`, a fuel meter on its store
    /// (written once a second until it drains), and the traces when asked for.
    pub fn observer(&self, metrics: Arc<Metrics>, engine: &Engine) -> anyhow::Result<Observed> {
        let fuel = FuelMeter::new(engine.store().clone());
        fuel.spawn(engine.drained());
        let mut all: Vec<Arc<dyn RunObserver>> = vec![metrics, fuel.clone()];
        let traces = match &self.otlp_endpoint {
            Some(url) => Some(Arc::new(Traces::otlp(url, "weft").map_err(usage)?)),
            None => None,
        };
        if let Some(t) = &traces {
            all.push(t.clone());
        }
        Ok(Observed { observer: Arc::new(Observers(all)), traces, fuel })
    }
}

/// Counts a worker's event, and says it on stderr (what went wrong always,
/// the rest unless `quiet`).
pub fn report(metrics: &Metrics, quiet: bool, event: WorkerEvent) {
    match event {
        WorkerEvent::Claimed { run_id, epoch } => {
            metrics.worker_event("claimed");
            if !quiet {
                noteln!("claimed run {run_id} (epoch {epoch})");
            }
        }
        WorkerEvent::Ended { run_id, status } => {
            if !quiet {
                noteln!("run {run_id}: {}", status.as_str());
            }
        }
        WorkerEvent::LeaseLost { run_id } => {
            metrics.worker_event("lease_lost");
            noteln!("run {run_id}: another worker took it over; its late writes were refused, stopped here");
        }
        WorkerEvent::Refused { run_id, reason } => {
            metrics.worker_event("refused");
            noteln!("run {run_id} cannot run here: {reason}");
        }
        WorkerEvent::StoreError(e) => {
            metrics.worker_event("store_error");
            noteln!("the store failed ({e}); trying again");
        }
    }
}
