//! `weft health`: the health check of the ONEX orchestrator contract.

use super::args::{HostArgs, ReadStoreArgs};
use super::exit;
use super::output::print_sorted;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use weft::engine::check_health;

/// `weft health`
#[derive(Args)]
pub struct HealthArgs {
    /// Workflows whose components must load.
    workflows: Vec<PathBuf>,
    #[command(flatten)]
    store: ReadStoreArgs,
    #[command(flatten)]
    host: HostArgs,
}

impl HealthArgs {
    /// Runs the command: prints the report as JSON; exit 0 when healthy, 1 when not.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let sandbox = self.host.sandbox_sized(8).map(Arc::new).map_err(|e| format!("{e:#}"));
        let location = self.store.location().map_err(|e| format!("{e:#}"));
        let report = check_health(location, sandbox, &self.workflows).await;
        print_sorted(&report)?;
        Ok(exit::code(if report.is_healthy() { exit::OK } else { exit::HOST_ERROR }))
    }
}
