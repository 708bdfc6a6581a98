//! `weft cache stats|clear`: the memo cache of `memoize: true` compute steps,
//! kept in the run store (so it is shared by every process on that store).

use super::args::{ReadStoreArgs, store_error};
use super::exit;
use super::output::{noteln, outln};
use clap::Subcommand;
use std::process::ExitCode;

/// `weft cache ...`
#[derive(Subcommand)]
pub enum CacheCommand {
    /// How many memo entries the store holds, their size and the hits they served.
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: ReadStoreArgs,
    },
    /// Drop every memo entry (memoized steps run again, once, on their next run).
    Clear {
        #[command(flatten)]
        store: ReadStoreArgs,
    },
}

impl CacheCommand {
    /// Runs the command.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Stats { json, store } => {
                let (stats, why_empty) = match store.open_if_created()? {
                    Ok(opened) => (opened.memo_stats().await.map_err(store_error)?, None),
                    Err(why) => (Default::default(), Some(why)),
                };
                if json {
                    outln!("{}", serde_json::to_string_pretty(&stats)?);
                } else {
                    outln!(
                        "memo cache: {} entries, {} bytes, {} hits served{}",
                        stats.entries,
                        stats.bytes,
                        stats.hits,
                        why_empty.unwrap_or_default()
                    );
                }
                Ok(exit::code(exit::OK))
            }
            Self::Clear { store } => {
                match store.open_if_created()? {
                    Ok(opened) => {
                        let n = opened.memo_clear().await.map_err(store_error)?;
                        noteln!("memo cache cleared: {n} entries dropped");
                    }
                    Err(why) => noteln!("the memo cache is empty{why}"),
                }
                Ok(exit::code(exit::OK))
            }
        }
    }
}
