//! `weft runs list|show|logs|cancel|resume` and `weft resume`: the runs kept
//! in the run store.

use super::args::{DriveArgs, ReadStoreArgs, store_error};
use super::output::{noteln, outln, print_json, print_sorted};
use super::run::Watch;
use super::{exit, start_error, usage};
use clap::{Args, Subcommand};
use std::process::ExitCode;
use std::time::Duration;
use weft::contract::ExecutionStatus;
use weft::engine::{CancelOutcome, StartError};
use weft::store::{JournalEntry, RunFilter, RunView};

/// `weft runs ...`
#[derive(Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs with this status (running, paused: waiting only on approval gates, completed, failed,
        /// cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this workflow (its metadata.name).
        #[arg(long)]
        workflow: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: ReadStoreArgs,
    },
    /// Show a run: on a terminal, its status and a table of its steps (status,
    /// attempts, time, fuel, memory); otherwise, or with --json, the whole
    /// document: the output contract (once finished), and per step its input,
    /// output and attempts with kind, fuel, time, memory and log lines.
    Show {
        /// The run id.
        id: String,
        /// Print the whole document as JSON, on a terminal too.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: ReadStoreArgs,
    },
    /// Print the log lines of a run's attempts (of one step, if given).
    Logs {
        /// The run id.
        id: String,
        /// Only this step.
        step: Option<String>,
        #[command(flatten)]
        store: ReadStoreArgs,
    },
    /// Cancel a run. A run driven by another live process is cancelled by
    /// it within a fraction of a second; an orphaned run (its process died)
    /// is stopped here, compensating if its strategy says so.
    Cancel {
        /// The run id.
        id: String,
        /// How long to wait for the owning process to finish the run, in ms.
        #[arg(long, default_value_t = 30_000)]
        wait_ms: u64,
        #[command(flatten)]
        run: DriveArgs,
    },
    /// Deliver a decision to an approval gate (a step with `wait_for:
    /// signal`): DATA becomes the step's output. The run's driver takes it
    /// within a second; a run nobody drives any more (its process died) is
    /// resumed here and driven on.
    Signal {
        /// The run id.
        id: String,
        /// The gate's step id.
        step: String,
        /// The decision, as JSON (a file, - for stdin, or the JSON itself).
        #[arg(long)]
        data: String,
        /// The signal's id: the same id again changes nothing (default: a new UUID).
        #[arg(long = "id")]
        signal_id: Option<String>,
        /// Only deliver: never resume an orphaned run here.
        #[arg(long)]
        no_resume: bool,
        #[command(flatten)]
        run: DriveArgs,
    },
    /// Continue an interrupted run from its journal.
    Resume {
        /// The run id.
        id: String,
        #[command(flatten)]
        run: DriveArgs,
    },
}

/// `weft resume`
#[derive(Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["ids", "all"]))]
pub struct ResumeArgs {
    /// The runs to resume.
    ids: Vec<String>,
    /// Every run that is `running` and has no live owner.
    #[arg(long, conflicts_with = "ids")]
    all: bool,
    #[command(flatten)]
    run: DriveArgs,
}

fn parse_status(s: &str) -> anyhow::Result<ExecutionStatus> {
    ExecutionStatus::parse(s).ok_or_else(|| {
        let names: Vec<&str> = ExecutionStatus::ALL.iter().map(|v| v.as_str()).collect();
        usage(format!("--status `{s}` is not one of {}", names.join(", ")))
    })
}

impl RunsCommand {
    /// Runs the command.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::List { status, workflow, limit, json, store } => {
                let status = status.as_deref().map(parse_status).transpose()?;
                let (rows, why_empty) = match store.open_if_created()? {
                    Ok(store) => (
                        store
                            .list_runs(&RunFilter { status, workflow, limit, ..Default::default() })
                            .await
                            .map_err(store_error)?,
                        None,
                    ),
                    Err(why) => (Vec::new(), Some(why)),
                };
                if json {
                    outln!("{}", serde_json::to_string_pretty(&rows)?);
                } else if rows.is_empty() {
                    noteln!("no runs{}", why_empty.unwrap_or_default());
                } else {
                    outln!("{:<36}  {:<10}  {:<24}  {:<24}  workflow", "run id", "status", "created", "updated");
                    for r in rows {
                        outln!(
                            "{:<36}  {:<10}  {:<24}  {:<24}  {}",
                            r.run_id,
                            r.status.as_str(),
                            r.created_at,
                            r.updated_at,
                            r.workflow
                        );
                    }
                }
                Ok(exit::code(exit::OK))
            }
            Self::Show { id, json, store } => {
                let store = store.open()?;
                let record = store.get_run(&id).await.map_err(store_error)?;
                let journal = store.journal(&id).await.map_err(store_error)?;
                let view = RunView::build(record, &journal)?;
                if json || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    print_sorted(&view)?;
                } else {
                    super::table::print_run(&view);
                }
                Ok(exit::code(exit::OK))
            }
            Self::Logs { id, step, store } => {
                let store = store.open()?;
                let journal = store.journal(&id).await.map_err(store_error)?;
                let mut any_step = false;
                for j in &journal {
                    let JournalEntry::AttemptFinished { step_id, attempt, report } = &j.entry else { continue };
                    if step.as_ref().is_some_and(|s| s != step_id) {
                        continue;
                    }
                    any_step = true;
                    for line in &report.logs {
                        let level = serde_json::to_value(line.level)?;
                        let source = serde_json::to_value(line.source)?;
                        outln!(
                            "{step_id} #{attempt} {:<5} {:<6} {}",
                            level.as_str().unwrap_or_default(),
                            source.as_str().unwrap_or_default(),
                            line.message
                        );
                    }
                }
                if let Some(s) = step
                    && !any_step
                {
                    return Err(usage(format!("run `{id}` has no finished attempt of a step `{s}`")));
                }
                Ok(exit::code(exit::OK))
            }
            Self::Cancel { id, wait_ms, run } => {
                let engine = run.engine()?;
                let outcome = engine.cancel(&id, run.options()).await.map_err(|e| match e {
                    StartError::Store(e) => store_error(e),
                    e => start_error(e),
                })?;
                match outcome {
                    CancelOutcome::AlreadyFinished(status) => {
                        noteln!("run {id} has already finished ({})", status.as_str());
                        Ok(exit::code(exit::OK))
                    }
                    CancelOutcome::Orphaned(handle) => {
                        noteln!("run {id} has no live owner: stopping it here");
                        Watch {
                            quiet: run.quiet,
                            output: run.output,
                            total: 0,
                            durable: true,
                            engine: Some(engine.clone()),
                        }
                        .run(handle)
                        .await
                    }
                    CancelOutcome::Requested { owner } => {
                        noteln!("cancel requested; waiting for {owner} to stop run {id}");
                        let waited = engine.wait_for_output(&id, Duration::from_millis(wait_ms)).await;
                        match waited.map_err(store_error)? {
                            Some(out) => {
                                print_json(&out, &run.output)?;
                                Ok(exit::code(exit::for_status(out.execution_status)))
                            }
                            None => {
                                noteln!(
                                    "run {id} has not stopped within {wait_ms} ms; the cancel request stays recorded"
                                );
                                Ok(exit::code(exit::HOST_ERROR))
                            }
                        }
                    }
                }
            }
            Self::Signal { id, step, data, signal_id, no_resume, run } => {
                let text = if data.trim_start().starts_with(['{', '[', '"'])
                    || data.parse::<f64>().is_ok()
                    || ["true", "false", "null"].contains(&data.trim())
                {
                    data.clone()
                } else {
                    super::args::read_text_arg("--data", &data)?
                };
                let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    usage(format!("--data: not valid JSON: {e} (line {}, column {})", e.line(), e.column()))
                })?;
                let signal_id = signal_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                let engine = run.engine()?;
                let done = engine.signal(&id, &step, &signal_id, value).await.map_err(|e| match e {
                    weft::engine::SignalError::Store(e) => store_error(e),
                    e => usage(e.to_string()),
                })?;
                if done.stored {
                    noteln!("signal {signal_id} delivered to step `{step}` of run {id}");
                } else {
                    noteln!("signal {signal_id} had already been delivered to step `{step}`: nothing changed");
                }
                if done.orphaned && !no_resume {
                    // A sub-workflow's run is driven by its parent's: resume the
                    // top-most unfinished ancestor, which reattaches to it.
                    let store = engine.store();
                    let mut top = id.clone();
                    while let Ok(rec) = store.get_run(&top).await
                        && let Some(parent) = rec.run.parent
                        && store.get_run(&parent.run_id).await.is_ok_and(|p| p.status == ExecutionStatus::Running)
                    {
                        top = parent.run_id;
                    }
                    let top_alive = top != id
                        && store
                            .get_run(&top)
                            .await
                            .is_ok_and(|r| r.lease_live && !weft::store::owner_is_dead(&r.run.owner));
                    if top_alive {
                        noteln!("its parent run {top} is driven by a live process, which takes the child over");
                        return Ok(exit::code(exit::OK));
                    }
                    if top == id {
                        noteln!("run {id} has no live driver: resuming it here");
                    } else {
                        noteln!(
                            "run {id} has no live driver: resuming its parent run {top} here, which reattaches to it"
                        );
                    }
                    return resume_ids(vec![top], run).await;
                }
                Ok(exit::code(exit::OK))
            }
            Self::Resume { id, run } => resume_ids(vec![id], run).await,
        }
    }
}

impl ResumeArgs {
    /// Runs the command.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        if self.all { resume_all(self.run).await } else { resume_ids(self.ids, self.run).await }
    }
}

/// Resumes the runs `ids`: one is watched live; several are driven at once,
/// and their outputs printed as a list.
async fn resume_ids(ids: Vec<String>, run: DriveArgs) -> anyhow::Result<ExitCode> {
    let engine = run.engine()?;
    if let [id] = ids.as_slice() {
        let handle = engine.resume(id, run.options()).await.map_err(start_error)?;
        return Watch { quiet: run.quiet, output: run.output, total: 0, durable: true, engine: Some(engine.clone()) }
            .run(handle)
            .await;
    }
    // Every run that can be resumed is, and driven to its end, whatever the
    // others say: none is left half-driven.
    let (mut handles, mut refused) = (Vec::new(), Vec::new());
    for id in ids {
        match engine.resume(&id, run.options()).await {
            Ok(h) => handles.push(h),
            Err(e) => {
                noteln!("weft: run {id} was not resumed: {e}");
                refused.push(id);
            }
        }
    }
    wait_all(handles, refused, &run).await
}

/// `weft resume --all`: every interrupted run of the store.
async fn resume_all(run: DriveArgs) -> anyhow::Result<ExitCode> {
    let engine = run.engine()?;
    let all = engine.resume_all(run.options()).await.map_err(store_error)?;
    for (id, e) in &all.refused {
        noteln!("weft: run {id} was not resumed: {e}");
    }
    if all.resumed.is_empty() {
        noteln!("no interrupted runs to resume");
    }
    let refused: Vec<String> = all.refused.into_iter().map(|(id, _)| id).collect();
    wait_all(all.resumed, refused, &run).await
}

/// Waits for every run of `handles`, prints their outputs as a list, and
/// exits with the worst of their codes (1 when some run was `refused`).
async fn wait_all(
    handles: Vec<weft::engine::RunHandle>,
    refused: Vec<String>,
    run: &DriveArgs,
) -> anyhow::Result<ExitCode> {
    let mut worst = exit::OK;
    let mut outputs = Vec::new();
    for mut h in handles {
        h.events.close();
        let id = h.run_id.clone();
        let out = h.wait().await;
        if !run.quiet {
            noteln!("run {id}: {}", out.execution_status.as_str());
        }
        worst = worst.max(exit::for_status(out.execution_status));
        outputs.push(out);
    }
    print_json(&outputs, &run.output)?;
    if !refused.is_empty() && worst == exit::OK {
        worst = exit::HOST_ERROR;
    }
    Ok(exit::code(worst))
}
