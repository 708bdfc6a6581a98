//! `weft serve`: the HTTP API (`weft::service`), with workers in the same
//! process unless `--workers 0` (then `weft worker` processes on the same
//! PostgreSQL database run the runs). SIGTERM drains: the workers drain as
//! `weft worker`'s do, streams end, and requests in flight finish.

use super::args::{DriveStoreArgs, HostArgs};
use super::exit;
use super::output::noteln;
use super::usage;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use weft::capability::Policy;
use weft::engine::{Engine, SandboxExecutor, WorkerOptions};
use weft::service::{Metrics, Service, ServiceLimits};

/// `weft serve`
#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0: any free port, printed on stderr).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// How many runs this process drives at once (0: none; `weft worker`
    /// processes on the same database run them).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(0..=1024))]
    workers: u64,
    /// How often the in-process workers look for work without a hint, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    poll_ms: u64,
    /// How long the in-process workers' leases last without a heartbeat, in milliseconds.
    #[arg(long, default_value_t = weft::engine::DEFAULT_LEASE_MS, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    lease_ms: u64,
    /// The operator policy (TOML) that caps every capability of every
    /// tenant's workflows; default $WEFT_POLICY. Without one, nodes are
    /// granted nothing: workflow authors are untrusted here.
    #[arg(long, value_name = "FILE", env = "WEFT_POLICY")]
    policy: Option<PathBuf>,
    #[command(flatten)]
    tenant_policies: super::args::TenantPolicyArgs,
    /// A directory with one directory per tenant: relative `host:`
    /// directories of a tenant's workflows resolve in `DIR/<tenant>` (the
    /// policy must still allow them). Without it they resolve nowhere.
    #[arg(long, value_name = "DIR")]
    tenant_root: Option<PathBuf>,
    /// Serve `/metrics` on this address only, not with the API: its labels
    /// name every tenant's workflows (and tenants, on quota rejections), so
    /// a host shared by tenants keeps it on an operator's address.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    traces: super::worker::TraceArgs,
    /// No line on stderr per run.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    store: DriveStoreArgs,
    #[command(flatten)]
    host: HostArgs,
}

impl ServeArgs {
    /// Serves until SIGTERM (or Ctrl-C), then drains.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let policy = match &self.policy {
            Some(path) => Policy::load(path).map_err(usage)?,
            None => Policy::parse("", std::path::Path::new(".")).map_err(usage)?,
        };
        let store = self.store.open()?;
        let at = self.store.location()?;
        let sandbox = Arc::new(self.host.sandbox_sized(64)?);
        let executor = Arc::new(SandboxExecutor::new(sandbox.clone()));
        let metrics = Arc::new(Metrics::new());
        let engine =
            Engine::new(executor.clone()).with_store(store).with_policy(Arc::new(policy)).with_lease_ms(self.lease_ms);
        let engine = self.tenant_policies.apply(engine)?;
        let observed = self.traces.observer(metrics.clone(), &engine)?;
        let engine = engine.with_observer(observed.observer.clone());
        let listener = tokio::net::TcpListener::bind(&self.listen)
            .await
            .map_err(|e| usage(format!("cannot listen on {}: {e}; pass another --listen address", self.listen)))?;
        let addr = listener.local_addr()?;
        let tenant_root = match &self.tenant_root {
            Some(dir) => Some(
                std::fs::canonicalize(dir)
                    .map_err(|e| usage(format!("--tenant-root {}: {e}; give an existing directory", dir.display())))?,
            ),
            None => None,
        };
        let limits =
            ServiceLimits { tenant_root, metrics_with_api: self.metrics_listen.is_none(), ..ServiceLimits::default() };
        if let Some(listen) = &self.metrics_listen {
            let addr = super::worker::serve_metrics(listen, &metrics, &engine).await?;
            noteln!("weft serve: metrics at http://{addr}/metrics");
        }
        let service = Service::new(engine, sandbox, executor, metrics.clone(), limits);
        // The service's engine: it also wakes the requests that wait on a run.
        let engine = service.engine().clone();
        super::shutdown::drain_on_sigterm(engine.clone(), "the server");
        let interrupt = engine.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupt.drain();
            }
        });
        noteln!(
            "weft serve: listening on http://{addr} (store {at}; {} runs at once in this process; docs at \
             http://{addr}/docs); SIGTERM drains it",
            self.workers
        );
        let opts = WorkerOptions {
            concurrency: self.workers as usize,
            poll_every: Duration::from_millis(self.poll_ms),
            resume: Default::default(),
        };
        let worker_engine = engine.clone();
        let quiet = self.quiet;
        let drives = self.workers > 0;
        let streams = service.clone();
        // Streams end once the workers have drained, after their runs' last entries.
        let workers = tokio::spawn(async move {
            if drives {
                worker_engine.work(opts, move |event| super::worker::report(&metrics, quiet, event)).await;
            } else {
                worker_engine.drained().await;
            }
            streams.end_streams();
        });
        weft::service::serve(service, listener, engine.drained()).await?;
        let _ = workers.await;
        observed.flush().await;
        noteln!("weft serve: drained");
        Ok(exit::code(exit::OK))
    }
}
