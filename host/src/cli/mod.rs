//! The `weft` command line. One file per command group, each a clap struct
//! or enum with an `execute` method; the library does the work and these
//! files only present it:
//!
//! - `plugin`: `plugin inspect`, `plugin call`; `plugin_author`: `plugin new`,
//!   `plugin build`;
//! - `run`: `run`, and the watching every command that ends with a run shares
//!   (`progress` draws it on stderr);
//! - `runs`: `runs list|show|logs|cancel|resume`, `resume` (`table` draws
//!   `runs show` on a terminal);
//! - `dlq`, `health`, `workflow` (`validate`, `graph`), `cache` (the memo
//!   cache: `stats`, `clear`);
//! - `serve`: the HTTP API with in-process workers; `tenant`: its tenants
//!   and tokens;
//! - `args`: options several commands share; `output`: stdout and stderr;
//!   `exit`: every exit code.

mod args;
mod cache;
mod dlq;
pub mod exit;
mod health;
pub(crate) mod output;
mod plugin;
mod plugin_author;
mod progress;
mod run;
mod runs;
mod serve;
mod shutdown;
mod table;
mod tenant;
mod worker;
mod workflow;

use clap::{Parser, Subcommand};
use std::path::Path;
use std::process::ExitCode;
use weft::engine::StartError;
use weft::store::StoreError;
use weft::workflow::{ComponentCheck, Workflow};

/// Weft runs workflows whose steps are sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "weft", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Work with step components (plugins).
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run a workflow and print its output contract as JSON on stdout.
    ///
    /// Progress goes to stderr, one line per transition. Ctrl-C cancels the
    /// run (in-flight steps are interrupted, compensation runs if the strategy
    /// says so). Exit codes: 0 completed, 3 failed, 4 cancelled, 2 invalid
    /// workflow or input, 1 host error.
    Run(run::RunArgs),
    /// Store a run for a worker to run, and print its id on stdout.
    ///
    /// Takes the same arguments as `weft run`. The run's spec (workflow
    /// text, input, pinned component digests) and its components go into
    /// the store, so that a worker on another machine runs it without the
    /// files.
    Submit(run::RunArgs),
    /// Claim submitted and orphaned runs from the store and drive them.
    ///
    /// Runs until SIGTERM, which drains: no new step starts, steps in flight
    /// finish (up to the run's shutdown_timeout_ms), leases are given up so
    /// that another worker continues at once. A second signal exits at once.
    Worker(worker::WorkerArgs),
    /// Inspect, cancel and resume the runs kept in the run store.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Continue interrupted runs: the ones named, or every one with --all.
    Resume(runs::ResumeArgs),
    /// The dead-letter queue: runs that failed for good.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Health check: store reachable, sandbox up, components loadable, active runs.
    ///
    /// Exit code 0 when healthy, 1 when not.
    Health(health::HealthArgs),
    /// Check a workflow file and its components; report every problem at once.
    Validate(workflow::ValidateArgs),
    /// Print the workflow's graph as Mermaid or Graphviz dot.
    Graph(workflow::GraphArgs),
    /// The memo cache of `memoize: true` compute steps, kept in the run store.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Serve the HTTP API (runs, workflows, components, events, metrics),
    /// with workers in the same process.
    ///
    /// Every request names a tenant by its token (`weft tenant`). SIGTERM
    /// drains: streams end, requests in flight finish, runs are left
    /// resumable.
    Serve(serve::ServeArgs),
    /// The tenants of `weft serve`, and their API tokens.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
}

impl Command {
    /// Runs the command; `Err` is printed by `main` with its exit code.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Plugin(cmd) => cmd.execute().await,
            Self::Run(args) => args.execute().await,
            Self::Submit(args) => args.submit().await,
            Self::Worker(args) => args.execute().await,
            Self::Runs(cmd) => cmd.execute().await,
            Self::Resume(args) => args.execute().await,
            Self::Dlq(cmd) => cmd.execute().await,
            Self::Health(args) => args.execute().await,
            Self::Validate(args) => args.execute(),
            Self::Graph(args) => args.execute(),
            Self::Cache(cmd) => cmd.execute().await,
            Self::Serve(args) => args.execute().await,
            Self::Tenant(cmd) => cmd.execute().await,
        }
    }
}

/// A mistake in the command's arguments or inputs (exit code 2).
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A usage error saying `msg`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

/// The exit code of a command that failed with `e`.
pub fn error_exit_code(e: &anyhow::Error) -> u8 {
    if e.is::<Usage>() { exit::USAGE } else { exit::HOST_ERROR }
}

/// A run that could not start or resume: the caller's mistake (exit 2) unless the store failed.
fn start_error(e: StartError) -> anyhow::Error {
    match e {
        StartError::Store(StoreError::Backend(_)) => anyhow::Error::new(e),
        other => usage(other.to_string()),
    }
}

/// Loads a workflow, checking components with `checker` when given.
fn load_workflow(path: &Path, checker: Option<&dyn ComponentCheck>) -> anyhow::Result<Workflow> {
    weft::workflow::load_file(path, checker).map_err(|e| usage(e.to_string().trim_end().to_string()))
}
