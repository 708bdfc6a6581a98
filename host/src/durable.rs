//! `weft runs`, `weft resume`, `weft dlq` and `weft health`: the commands on
//! the run store.

use crate::{HostArgs, print_json, run_exit_code, usage, watch};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use weft::engine::{Engine, ExecutionStatus, ResumeOptions, SandboxExecutor, StartError};
use weft::store::{
    JournalEntry, MemoryStore, RunFilter, RunStore, SqliteStore, StoreError, SyncMode, now_ms, owner_is_dead,
};

/// Where runs are kept.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// The SQLite run database (default: $WEFT_DB, else weft/weft.db in the user's data directory).
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Keep runs in memory only: nothing is persisted, nothing can be resumed.
    #[arg(long, global = true, conflicts_with = "db")]
    pub in_memory: bool,
    /// `normal` (survives the process being killed) or `full` (also survives power loss; slower).
    #[arg(long, global = true, default_value = "normal", value_parser = ["normal", "full"])]
    pub sync: String,
}

impl StoreArgs {
    /// The database path in use.
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.db {
            return Ok(p.clone());
        }
        if let Some(p) = std::env::var_os("WEFT_DB").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        let dir = dirs::data_dir().context("no user data directory is known here; pass --db PATH or set WEFT_DB")?;
        Ok(dir.join("weft").join("weft.db"))
    }

    /// Opens the store.
    pub fn open(&self) -> anyhow::Result<Arc<dyn RunStore>> {
        if self.in_memory {
            return Ok(Arc::new(MemoryStore::new()));
        }
        let path = self.path()?;
        let sync = if self.sync == "full" { SyncMode::Full } else { SyncMode::Normal };
        match SqliteStore::open(&path, sync) {
            Ok(s) => Ok(Arc::new(s)),
            Err(e @ StoreError::Incompatible(_)) => Err(usage(e.to_string())),
            Err(e) => Err(e).with_context(|| format!("cannot open the run database {}", path.display())),
        }
    }
}

/// `weft runs ...`
#[derive(Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs with this status (running, completed, failed, cancelled).
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
        store: StoreArgs,
    },
    /// Print a run: its output contract (once finished), and per step its
    /// attempts with kind, fuel, time, memory and log lines.
    Show {
        /// The run id.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the log lines of a run's attempts (of one step, if given).
    Logs {
        /// The run id.
        id: String,
        /// Only this step.
        step: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
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
    /// Continue an interrupted run from its journal.
    Resume {
        /// The run id.
        id: String,
        #[command(flatten)]
        run: DriveArgs,
    },
}

/// `weft dlq ...`
#[derive(Subcommand)]
pub enum DlqCommand {
    /// List the runs in the dead-letter queue.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
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

/// Options of the commands that drive a run.
#[derive(Args)]
pub struct DriveArgs {
    /// Run on components whose digest changed since the run started.
    #[arg(long)]
    pub upgrade: bool,
    /// `pretty` (indented) or `json` (one line).
    #[arg(long, default_value = "pretty", value_parser = ["pretty", "json"])]
    pub output: String,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub host: HostArgs,
}

impl DriveArgs {
    fn engine(&self) -> anyhow::Result<Engine> {
        let store = self.store.open()?;
        let sandbox = Arc::new(self.host.sandbox_sized(64)?);
        Ok(Engine::new(Arc::new(SandboxExecutor::new(sandbox))).with_store(store))
    }

    fn options(&self) -> ResumeOptions {
        ResumeOptions { upgrade: self.upgrade, ..ResumeOptions::default() }
    }
}

/// A run that could not start or resume: the caller's mistake (exit 2) unless the store failed.
pub fn start_error(e: StartError) -> anyhow::Error {
    match e {
        StartError::Store(StoreError::Backend(_)) => anyhow::Error::new(e),
        other => usage(other.to_string()),
    }
}

fn store_error(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(_) | StoreError::Incompatible(_) | StoreError::Owned { .. } | StoreError::Finished(_) => {
            usage(e.to_string())
        }
        other => anyhow::Error::new(other),
    }
}

fn parse_status(s: &str) -> anyhow::Result<ExecutionStatus> {
    ExecutionStatus::parse(s).ok_or_else(|| {
        let names: Vec<&str> = ExecutionStatus::ALL.iter().map(|v| v.as_str()).collect();
        usage(format!("--status `{s}` is not one of {}", names.join(", ")))
    })
}

/// Runs a `weft runs` command.
pub async fn runs(cmd: RunsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCommand::List { status, workflow, limit, json, store } => {
            let status = status.as_deref().map(parse_status).transpose()?;
            let store = store.open()?;
            let rows = store.list_runs(&RunFilter { status, workflow, limit }).await.map_err(store_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                eprintln!("no runs");
            } else {
                println!("{:<36}  {:<10}  {:<24}  {:<24}  workflow", "run id", "status", "created", "updated");
                for r in rows {
                    println!(
                        "{:<36}  {:<10}  {:<24}  {:<24}  {}",
                        r.run_id,
                        r.status.as_str(),
                        r.created_at,
                        r.updated_at,
                        r.workflow
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show { id, store } => {
            let store = store.open()?;
            let record = store.get_run(&id).await.map_err(store_error)?;
            let journal = store.journal(&id).await.map_err(store_error)?;
            let mut steps: Vec<(String, Value)> = Vec::new();
            let mut slots: HashMap<String, usize> = HashMap::new();
            for j in &journal {
                let Some(step) = j.entry.step_id() else { continue };
                let k = *slots.entry(step.to_string()).or_insert_with(|| {
                    steps.push((step.to_string(), json!({"step_id": step, "state": "scheduled", "attempts": []})));
                    steps.len() - 1
                });
                let v = &mut steps[k].1;
                match &j.entry {
                    JournalEntry::StepScheduled { input, .. } => v["input"] = Value::Object((**input).clone()),
                    JournalEntry::AttemptStarted { attempt, .. } => {
                        v["state"] = json!("running");
                        v["attempts_started"] = json!(attempt);
                    }
                    JournalEntry::AttemptFinished { attempt, report, .. } => {
                        let mut a = serde_json::to_value(report)?;
                        // The completing attempt's output is the step's (below).
                        if let Some(fields) = a.as_object_mut()
                            && fields.get("output").is_some_and(Value::is_null)
                        {
                            fields.remove("output");
                            fields.remove("actions");
                        }
                        a["attempt"] = json!(attempt);
                        a["kind"] = json!(report.failure().map_or("succeeded", |f| f.kind()));
                        if let Some(list) = v["attempts"].as_array_mut() {
                            list.push(a);
                        }
                    }
                    JournalEntry::StepCompleted { output, actions, .. } => {
                        v["state"] = json!("completed");
                        v["output"] = output.clone();
                        v["actions"] = serde_json::to_value(actions)?;
                    }
                    JournalEntry::StepFailed { tolerated, error_type, .. } => {
                        v["state"] = json!(if *tolerated { "failed (tolerated)" } else { "failed" });
                        v["error_type"] = json!(error_type);
                    }
                    JournalEntry::StepSkipped { reason, .. } => {
                        v["state"] = json!("skipped");
                        v["reason"] = json!(reason);
                    }
                    JournalEntry::CompensationFinished { ok, .. } => {
                        v["compensation"] = json!(if *ok { "compensated" } else { "failed" });
                    }
                    _ => {}
                }
            }
            let owner = (record.lease_until_ms > 0).then(|| record.run.owner.clone());
            let view = json!({
                "run_id": record.run.run_id,
                "workflow": record.run.workflow,
                "workflow_path": record.run.workflow_path,
                "status": record.status,
                "created_at": record.created_at,
                "updated_at": record.updated_at,
                "owner": owner,
                "orphaned": owner.as_deref().is_some_and(|o| record.lease_until_ms < now_ms() || owner_is_dead(o)),
                "cancel_requested": record.cancel_requested,
                "replay_of": record.run.replay_of,
                "components": record.run.components,
                "journal_entries": journal.len(),
                "output": record.output,
                "steps": steps.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&view)?);
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Logs { id, step, store } => {
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
                    println!(
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
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Cancel { id, wait_ms, run } => {
            let engine = run.engine()?;
            let store = engine.store().clone();
            let record = store.get_run(&id).await.map_err(store_error)?;
            if !store.request_cancel(&id).await.map_err(store_error)? {
                eprintln!("run {id} has already finished ({})", record.status.as_str());
                return Ok(ExitCode::SUCCESS);
            }
            let orphaned = record.lease_until_ms <= now_ms() || owner_is_dead(&record.run.owner);
            if orphaned {
                eprintln!("run {id} has no live owner: stopping it here");
                let opts = ResumeOptions { cancelled: true, ..run.options() };
                let handle = engine.resume(&id, opts).await.map_err(start_error)?;
                return watch(handle, run.quiet, &run.output, 0, true).await;
            }
            eprintln!("cancel requested; waiting for {} to stop run {id}", record.run.owner);
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(wait_ms);
            loop {
                let r = store.get_run(&id).await.map_err(store_error)?;
                if let Some(out) = r.output {
                    print_json(&out, &run.output)?;
                    return Ok(ExitCode::from(run_exit_code(out.execution_status)));
                }
                if std::time::Instant::now() >= deadline {
                    eprintln!("run {id} has not stopped within {wait_ms} ms; the cancel request stays recorded");
                    return Ok(ExitCode::from(1));
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        RunsCommand::Resume { id, run } => {
            let engine = run.engine()?;
            let handle = engine.resume(&id, run.options()).await.map_err(start_error)?;
            watch(handle, run.quiet, &run.output, 0, true).await
        }
    }
}

/// `weft resume --all`: every interrupted run of the store.
pub async fn resume_all(run: DriveArgs) -> anyhow::Result<ExitCode> {
    let engine = run.engine()?;
    let (handles, failed) = engine.resume_all(run.options()).await.map_err(store_error)?;
    for (id, e) in &failed {
        eprintln!("weft: run {id} was not resumed: {e}");
    }
    if handles.is_empty() {
        eprintln!("no interrupted runs to resume");
    }
    let mut worst = 0u8;
    let mut outputs = Vec::new();
    for h in handles {
        let mut h = h;
        h.events.close();
        let id = h.run_id.clone();
        let out = h.wait().await;
        if !run.quiet {
            eprintln!("run {id}: {}", out.execution_status.as_str());
        }
        worst = worst.max(run_exit_code(out.execution_status));
        outputs.push(out);
    }
    print_json(&outputs, &run.output)?;
    if !failed.is_empty() && worst == 0 {
        worst = 1;
    }
    Ok(ExitCode::from(worst))
}

/// Runs a `weft dlq` command.
pub async fn dlq(cmd: DlqCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DlqCommand::List { json, store } => {
            let store = store.open()?;
            let rows = store.dlq_list().await.map_err(store_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                eprintln!("the dead-letter queue is empty");
            } else {
                for d in rows {
                    let replayed = d.replayed_as.map(|r| format!(" (replayed as {r})")).unwrap_or_default();
                    println!(
                        "{}  {}  {}  {}: {}: {}{replayed}",
                        d.run_id, d.at, d.workflow, d.step_id, d.error_type, d.message
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Replay { id, run } => {
            let engine = run.engine()?;
            let listed = engine.store().dlq_list().await.map_err(store_error)?;
            if !listed.iter().any(|d| d.run_id == id) {
                return Err(usage(format!("run `{id}` is not in the dead-letter queue; `weft dlq list` shows it")));
            }
            let handle = engine.replay(&id, run.options()).await.map_err(start_error)?;
            eprintln!("replaying run {id} as run {}", handle.run_id);
            watch(handle, run.quiet, &run.output, 0, true).await
        }
    }
}

/// `weft health`: the seed's health check, on this host.
pub async fn health(workflows: Vec<PathBuf>, store: StoreArgs, host: HostArgs) -> anyhow::Result<ExitCode> {
    let mut components = serde_json::Map::new();
    let mut problems: Vec<String> = Vec::new();
    let store_info = match store.open() {
        Ok(s) => match s.info().await {
            Ok(info) => {
                components.insert("store".into(), json!("healthy"));
                Some((s, info))
            }
            Err(e) => {
                components.insert("store".into(), json!("unhealthy"));
                problems.push(format!("store: {e}"));
                None
            }
        },
        Err(e) => {
            components.insert("store".into(), json!("unhealthy"));
            problems.push(format!("store: {e:#}"));
            None
        }
    };
    let sandbox = match host.sandbox_sized(8) {
        Ok(s) => {
            components.insert("step_executor".into(), json!("healthy"));
            Some(Arc::new(s))
        }
        Err(e) => {
            components.insert("step_executor".into(), json!("unhealthy"));
            problems.push(format!("sandbox: {e:#}"));
            None
        }
    };
    // Components: those of the given workflows, and those pinned by active runs.
    let mut loadable = 0usize;
    if let Some(sandbox) = &sandbox {
        let executor = SandboxExecutor::new(sandbox.clone());
        for wf in &workflows {
            match weft::workflow::load_file(wf, Some(&executor)) {
                Ok(w) => loadable += w.nodes.len(),
                Err(e) => problems.push(format!("{}: {e}", wf.display())),
            }
        }
        if let Some((s, _)) = &store_info {
            let active = s.list_runs(&RunFilter { status: Some(ExecutionStatus::Running), ..Default::default() }).await;
            let active = active.unwrap_or_else(|e| {
                problems.push(format!("store: cannot list the active runs: {e}"));
                Vec::new()
            });
            for r in active {
                let rec = match s.get_run(&r.run_id).await {
                    Ok(rec) => rec,
                    Err(e) => {
                        problems.push(format!("run {}: cannot be read from the store: {e}", r.run_id));
                        continue;
                    }
                };
                // Each file is read once per run, however many nodes pin it.
                let mut now: HashMap<&str, Result<String, String>> = HashMap::new();
                for (node, pin) in &rec.run.components {
                    let digest = now.entry(pin.path.as_str()).or_insert_with(|| {
                        sandbox
                            .load_file(std::path::Path::new(&pin.path), None)
                            .map(|c| c.digest.clone())
                            .map_err(|e| e.to_string())
                    });
                    match digest {
                        Ok(d) if *d == pin.digest => loadable += 1,
                        Ok(d) => problems.push(format!(
                            "run {} node `{node}`: {} changed ({} pinned, {d} now)",
                            r.run_id, pin.path, pin.digest
                        )),
                        Err(e) => problems.push(format!("run {} node `{node}`: {e}", r.run_id)),
                    }
                }
            }
        }
        components.insert(
            "components".into(),
            json!(if problems.iter().any(|p| !p.starts_with("store") && !p.starts_with("sandbox")) {
                "unhealthy"
            } else {
                "healthy"
            }),
        );
    }
    let healthy = problems.is_empty();
    let report = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "components": components,
        "active_workflows": store_info.as_ref().map(|(_, i)| i.active_runs),
        "workflow_definition_loaded": !workflows.is_empty() && healthy,
        "components_checked": loadable,
        "store": store_info.as_ref().map(|(_, i)| i),
        "problems": problems,
        "timestamp": weft::store::now_rfc3339(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::from(if healthy { 0 } else { 1 }))
}
