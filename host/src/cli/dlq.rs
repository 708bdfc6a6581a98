//! `weft dlq list|replay`: the runs that failed for good.

use super::args::{DriveArgs, ReadStoreArgs, store_error};
use super::output::{noteln, outln};
use super::run::Watch;
use super::{exit, start_error, usage};
use clap::Subcommand;
use std::process::ExitCode;

/// `weft dlq ...`
#[derive(Subcommand)]
pub enum DlqCommand {
    /// List the runs in the dead-letter queue.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: ReadStoreArgs,
    },
    /// Re-run a dead-lettered run as a new run, from its failed step, with
    /// the journaled inputs.
    Replay {
        /// The failed run's id.
        id: String,
        #[command(flatten)]
        run: DriveArgs,
    },
}

impl DlqCommand {
    /// Runs the command.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::List { json, store } => {
                let (rows, why_empty) = match store.open_if_created()? {
                    Ok(opened) => (opened.dlq_list().await.map_err(store_error)?, None),
                    Err(why) => (Vec::new(), Some(why)),
                };
                if json {
                    outln!("{}", serde_json::to_string_pretty(&rows)?);
                } else if rows.is_empty() {
                    noteln!("the dead-letter queue is empty{}", why_empty.unwrap_or_default());
                } else {
                    for d in rows {
                        let replayed = d.replayed_as.map(|r| format!(" (replayed as {r})")).unwrap_or_default();
                        outln!(
                            "{}  {}  {}  {}: {}: {}{replayed}",
                            d.run_id,
                            d.at,
                            d.workflow,
                            d.step_id,
                            d.error_type,
                            d.message
                        );
                    }
                }
                Ok(exit::code(exit::OK))
            }
            Self::Replay { id, run } => {
                let engine = run.engine()?;
                let listed = engine.store().dlq_list().await.map_err(store_error)?;
                if !listed.iter().any(|d| d.run_id == id) {
                    return Err(usage(format!("run `{id}` is not in the dead-letter queue; `weft dlq list` shows it")));
                }
                let handle = engine.replay(&id, run.options()).await.map_err(start_error)?;
                noteln!("replaying run {id} as run {}", handle.run_id);
                Watch { quiet: run.quiet, output: run.output, total: 0, durable: true, engine: Some(engine.clone()) }
                    .run(handle)
                    .await
            }
        }
    }
}
