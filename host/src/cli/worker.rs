//! `weft worker`: claims runnable runs from a shared store and drives them
//! (`Engine::work`), one line on stderr per run claimed and ended.

use super::args::DriveArgs;
use super::exit;
use super::output::noteln;
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;
use weft::engine::{WorkerEvent, WorkerOptions};

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
    #[command(flatten)]
    run: DriveArgs,
}

impl WorkerArgs {
    /// Runs the worker until it has drained.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let engine = self.run.engine()?.with_lease_ms(self.lease_ms);
        let at = self.run.store.location()?;
        super::shutdown::drain_on_sigterm(engine.clone(), "the worker");
        let quiet = self.run.quiet;
        if !quiet {
            noteln!("worker {} on {at}: up to {} runs at once; SIGTERM drains it", engine.owner(), self.concurrency);
        }
        let opts = WorkerOptions {
            concurrency: self.concurrency as usize,
            poll_every: Duration::from_millis(self.poll_ms),
            resume: self.run.options(),
        };
        engine
            .work(opts, move |event| match event {
                WorkerEvent::Claimed { run_id, epoch } if !quiet => noteln!("claimed run {run_id} (epoch {epoch})"),
                WorkerEvent::Ended { run_id, status } if !quiet => noteln!("run {run_id}: {}", status.as_str()),
                WorkerEvent::LeaseLost { run_id } => {
                    noteln!("run {run_id}: another worker took it over; its late writes were refused, stopped here")
                }
                WorkerEvent::Refused { run_id, reason } => noteln!("run {run_id} cannot run here: {reason}"),
                WorkerEvent::StoreError(e) => noteln!("the store failed ({e}); trying again"),
                _ => {}
            })
            .await;
        if !quiet {
            noteln!("worker {} drained", engine.owner());
        }
        Ok(exit::code(exit::OK))
    }
}
