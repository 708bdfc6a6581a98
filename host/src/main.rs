//! The `weft` command-line tool.

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use weft::engine::{Engine, Environment, ExecutionStatus, RunEvent, RunInput, RunOptions, SandboxExecutor};
use weft::sandbox::{CallKind, Limits, Sandbox, SandboxConfig, StepCall, StepContext, StepFailure, StepWorld};

mod durable;

/// Weft runs workflows whose steps are sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "weft", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with step components (plugins).
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Run a workflow and print its output contract as JSON on stdout.
    ///
    /// Progress goes to stderr, one line per transition. Ctrl-C cancels the
    /// run (in-flight steps are interrupted, compensation runs if the strategy
    /// says so). Exit codes: 0 completed, 3 failed, 4 cancelled, 2 invalid
    /// workflow or input, 1 host error.
    Run {
        /// The workflow file.
        workflow: PathBuf,
        /// The run input (the seed's input subcontract) as JSON: a file, or - for stdin.
        #[arg(long)]
        input: Option<String>,
        /// `pretty` (indented) or `json` (one line).
        #[arg(long, default_value = "pretty", value_parser = ["pretty", "json"])]
        output: String,
        /// Environment profile for defaults: development, staging or production.
        #[arg(long, default_value = "development")]
        env: String,
        /// Seed for retry jitter, for reproducible delays.
        #[arg(long)]
        jitter_seed: Option<u64>,
        /// No progress lines on stderr.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        store: durable::StoreArgs,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Inspect, cancel and resume the runs kept in the run store.
    #[command(subcommand)]
    Runs(durable::RunsCommand),
    /// Continue every interrupted run of the store (`weft runs resume ID` for one).
    Resume {
        /// Every run that is `running` and has no live owner.
        #[arg(long, required = true)]
        all: bool,
        #[command(flatten)]
        run: durable::DriveArgs,
    },
    /// The dead-letter queue: runs that failed for good.
    #[command(subcommand)]
    Dlq(durable::DlqCommand),
    /// Health check: store reachable, sandbox up, components loadable, active runs.
    ///
    /// Exit code 0 when healthy, 1 when not.
    Health {
        /// Workflows whose components must load.
        workflows: Vec<PathBuf>,
        #[command(flatten)]
        store: durable::StoreArgs,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Check a workflow file and its components; report every problem at once.
    Validate {
        /// The workflow file.
        workflow: PathBuf,
        /// Do not load the components (syntax, graph and expressions only).
        #[arg(long)]
        skip_components: bool,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Print the workflow's graph as Mermaid or Graphviz dot.
    Graph {
        /// The workflow file.
        workflow: PathBuf,
        /// `mermaid` or `dot`.
        #[arg(long, default_value = "mermaid", value_parser = ["mermaid", "dot"])]
        format: String,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Print a component's digest, size, the world it fits (and why not), and
    /// its imports and exports as WIT.
    Inspect {
        /// The component file (.wasm).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Run one attempt of a step and print its outcome as JSON.
    ///
    /// Exit codes: 0 succeeded, 10 timeout, 11 out_of_fuel, 12 memory_limit,
    /// 13 trap, 14 plugin_error, 15 invalid_output, 16 component_invalid,
    /// 2 bad arguments, 1 host error.
    Call {
        /// The component file (.wasm).
        file: PathBuf,
        /// The input: a JSON object, or @FILE to read it from a file (@- for stdin).
        #[arg(long, default_value = "{}")]
        input: String,
        /// Fuel budget (about one unit per wasm instruction).
        #[arg(long)]
        fuel: Option<u64>,
        /// Wall-time limit in milliseconds.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Memory limit in MiB.
        #[arg(long)]
        memory_mb: Option<u64>,
        /// Largest accepted output in KiB.
        #[arg(long)]
        max_output_kb: Option<usize>,
        /// Call the component as an effect step (world effect-step).
        #[arg(long)]
        effect: bool,
        /// Call `compensate` instead of `run`, with this output of `run`
        /// (JSON or @FILE). Implies --effect.
        #[arg(long, value_name = "OUTPUT")]
        compensate: Option<String>,
        /// The step id passed in the context.
        #[arg(long, default_value = "step")]
        step_id: String,
        /// The idempotency key passed in the context (default: run id/step id).
        #[arg(long)]
        idempotency_key: Option<String>,
        /// The attempt number passed in the context.
        #[arg(long, default_value_t = 1)]
        attempt: u32,
        /// Print compact JSON instead of pretty JSON.
        #[arg(long)]
        compact: bool,
        #[command(flatten)]
        host: HostArgs,
    },
}

#[derive(Args)]
pub(crate) struct HostArgs {
    /// Directory of the compiled-component cache (default: $WEFT_CACHE_DIR or ~/.cache/weft/components).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the compiled-component cache.
    #[arg(long, global = true)]
    no_cache: bool,
}

impl HostArgs {
    fn sandbox(&self) -> anyhow::Result<Sandbox> {
        // One CLI call runs one attempt: a small pool reserves less address space.
        self.sandbox_sized(4)
    }

    pub(crate) fn sandbox_sized(&self, instances: u32) -> anyhow::Result<Sandbox> {
        let mut config = SandboxConfig::default();
        if self.no_cache {
            config.cache_dir = None;
        } else if let Some(d) = &self.cache_dir {
            config.cache_dir = Some(d.clone());
        }
        config.max_instances = instances;
        Sandbox::new(config).context("could not start the wasm sandbox")
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

pub(crate) fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

/// Exit code for each failure kind (0 is success).
fn exit_code(f: &StepFailure) -> u8 {
    match f {
        StepFailure::Timeout { .. } => 10,
        StepFailure::OutOfFuel { .. } => 11,
        StepFailure::MemoryLimit { .. } => 12,
        StepFailure::Trap { .. } => 13,
        StepFailure::PluginError { .. } => 14,
        StepFailure::InvalidOutput { .. } => 15,
        StepFailure::ComponentInvalid { .. } => 16,
        StepFailure::CircuitOpen { .. } => 17,
    }
}

/// Reads stdin as UTF-8 text of at most [`weft::files::MAX_JSON_BYTES`].
fn read_stdin() -> Result<String, weft::files::ReadError> {
    weft::files::into_text(weft::files::read_stream_capped(std::io::stdin().lock(), weft::files::MAX_JSON_BYTES)?)
}

/// The text of `path` for option `flag`: `-` is stdin, anything else a file;
/// both capped at [`weft::files::MAX_JSON_BYTES`].
fn read_text_arg(flag: &str, path: &str) -> anyhow::Result<String> {
    if path == "-" {
        read_stdin().map_err(|e| usage(format!("{flag}: could not read stdin: {e}")))
    } else {
        weft::files::read_text_capped(Path::new(path), weft::files::MAX_JSON_BYTES)
            .map_err(|e| usage(format!("{flag}: cannot read {path}: {e}")))
    }
}

/// Reads `JSON` or `@FILE` (`@-` is stdin).
fn read_json_arg(flag: &str, arg: &str) -> anyhow::Result<Value> {
    let (text, origin) = if let Some(path) = arg.strip_prefix('@') {
        (read_text_arg(flag, path)?, path.to_string())
    } else {
        (arg.to_string(), "the command line".to_string())
    };
    serde_json::from_str(&text).map_err(|e| {
        usage(format!("{flag}: the JSON from {origin} does not parse: {e} (line {}, column {})", e.line(), e.column()))
    })
}

fn input_object(arg: &str) -> anyhow::Result<Map<String, Value>> {
    match read_json_arg("--input", arg)? {
        Value::Object(m) => Ok(m),
        other => Err(usage(format!(
            "--input must be a JSON object (a step's input is always an object), not {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        ))),
    }
}

fn inspect(file: &Path, json: bool, host: &HostArgs) -> anyhow::Result<ExitCode> {
    let sandbox = host.sandbox()?;
    let bytes = weft::files::read_capped(file, sandbox.config().max_component_bytes)
        .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
    let report = sandbox.inspect(&bytes);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("file:    {}", file.display());
        println!("digest:  {}", report.digest);
        println!("size:    {} bytes", report.size_bytes);
        println!("format:  {}", report.format);
        println!("world:   {}", report.world);
        for (name, fit) in [("compute-step", &report.compute), ("effect-step", &report.effect)] {
            if fit.fits {
                println!("  fits {name}");
            } else {
                println!("  does not fit {name}:");
                for p in &fit.problems {
                    println!("    - {}", p.replace('\n', "\n      "));
                }
            }
        }
        if let Some(e) = &report.error {
            println!("error:   {e}");
        }
        if let Some(wit) = &report.wit {
            println!("\n{wit}");
        }
    }
    Ok(if report.world == "neither" { ExitCode::from(16) } else { ExitCode::SUCCESS })
}

#[allow(clippy::too_many_arguments)]
async fn call(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    let PluginCommand::Call {
        file,
        input,
        fuel,
        timeout_ms,
        memory_mb,
        max_output_kb,
        effect,
        compensate,
        step_id,
        idempotency_key,
        attempt,
        compact,
        host,
    } = cmd
    else {
        bail!("internal: not a call command");
    };
    let input = input_object(&input)?;
    let kind = match &compensate {
        Some(arg) => CallKind::Compensate { output: read_json_arg("--compensate", arg)? },
        None => CallKind::Run,
    };
    let world = if effect || compensate.is_some() { StepWorld::Effect } else { StepWorld::Compute };
    let mut limits = Limits::default();
    if let Some(f) = fuel {
        limits.fuel = f;
    }
    if let Some(t) = timeout_ms {
        let max = weft::sandbox::MAX_TIMEOUT.as_millis();
        if u128::from(t) > max {
            return Err(usage(format!("--timeout-ms {t} is over the sandbox's limit of {max} (24 h)")));
        }
        limits.timeout = Duration::from_millis(t);
    }
    if let Some(m) = memory_mb {
        limits.memory_bytes = m.saturating_mul(1 << 20);
    }
    if let Some(k) = max_output_kb {
        limits.max_output_bytes = k.saturating_mul(1 << 10);
    }
    if attempt == 0 {
        return Err(usage("--attempt starts at 1"));
    }
    let sandbox = host.sandbox()?;
    let max_memory = sandbox.config().max_memory_bytes;
    if limits.memory_bytes > max_memory {
        return Err(usage(format!(
            "--memory-mb {} is over this host's limit of {} MiB (the pool's slot size)",
            memory_mb.unwrap_or_default(),
            max_memory >> 20
        )));
    }
    let mut ctx = StepContext::adhoc(&step_id);
    ctx.attempt = attempt;
    if let Some(k) = idempotency_key {
        ctx.idempotency_key = k;
    }
    let call = StepCall { ctx, input, kind };
    let report = match sandbox.load_file(&file, Some(world)) {
        Ok(component) => sandbox.execute(&component, &call, &limits).await,
        Err(weft::sandbox::LoadError::Io { path, source }) => {
            return Err(usage(format!("cannot read component {path}: {source}")));
        }
        Err(e) => {
            weft::sandbox::AttemptReport { outcome: Err(e.to_failure()), stats: Default::default(), logs: Vec::new() }
        }
    };
    let text = if compact { serde_json::to_string(&report)? } else { serde_json::to_string_pretty(&report)? };
    println!("{text}");
    Ok(match report.failure() {
        None => ExitCode::SUCCESS,
        Some(f) => {
            eprintln!("weft: {f}");
            ExitCode::from(exit_code(f))
        }
    })
}

/// Loads a workflow, checking components with `checker` when given.
fn load_workflow(
    path: &Path,
    checker: Option<&dyn weft::workflow::ComponentCheck>,
) -> anyhow::Result<weft::workflow::Workflow> {
    weft::workflow::load_file(path, checker).map_err(|e| usage(e.to_string().trim_end().to_string()))
}

fn validate(path: &Path, skip_components: bool, host: &HostArgs) -> anyhow::Result<ExitCode> {
    let executor;
    let checker: Option<&dyn weft::workflow::ComponentCheck> = if skip_components {
        None
    } else {
        executor = SandboxExecutor::new(std::sync::Arc::new(host.sandbox()?));
        Some(&executor)
    };
    let wf = load_workflow(path, checker)?;
    let edges: usize = wf.dependencies.iter().map(Vec::len).sum();
    println!(
        "{}: ok: workflow `{}` v{}, {} nodes, {} dependencies, execution_mode {:?}",
        path.display(),
        wf.name,
        wf.version,
        wf.nodes.len(),
        edges,
        wf.execution_mode
    );
    Ok(ExitCode::SUCCESS)
}

fn graph(path: &Path, format: &str) -> anyhow::Result<ExitCode> {
    let wf = load_workflow(path, None)?;
    let mut out = String::new();
    let quote = |s: &str| s.replace('"', "'");
    if format == "dot" {
        out.push_str(&format!("digraph \"{}\" {{\n  rankdir=LR;\n", quote(&wf.name)));
        for n in &wf.nodes {
            let shape = if n.node_type.is_effect() { "box" } else { "ellipse" };
            out.push_str(&format!("  \"{}\" [shape={shape}, label=\"{}\\n({:?})\"];\n", n.id, n.id, n.node_type));
        }
        for (i, deps) in wf.dependencies.iter().enumerate() {
            for &d in deps {
                out.push_str(&format!("  \"{}\" -> \"{}\";\n", wf.nodes[d].id, wf.nodes[i].id));
            }
        }
        out.push_str("}\n");
    } else {
        out.push_str("flowchart LR\n");
        for (k, n) in wf.nodes.iter().enumerate() {
            let label = format!("{} ({:?})", n.id, n.node_type).to_lowercase().replace('"', "'");
            if n.node_type.is_effect() {
                out.push_str(&format!("  n{k}[\"{label}\"]\n"));
            } else {
                out.push_str(&format!("  n{k}(\"{label}\")\n"));
            }
        }
        for (i, deps) in wf.dependencies.iter().enumerate() {
            for &d in deps {
                let cond = wf.nodes[i]
                    .when
                    .as_ref()
                    .map(|w| format!("|\"{}\"|", w.source().replace('"', "'")))
                    .unwrap_or_default();
                out.push_str(&format!("  n{d} -->{cond} n{i}\n"));
            }
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    path: &Path,
    input: Option<&str>,
    output: &str,
    env: &str,
    jitter_seed: Option<u64>,
    quiet: bool,
    store: &durable::StoreArgs,
    host: &HostArgs,
) -> anyhow::Result<ExitCode> {
    let environment = Environment::parse(env)
        .ok_or_else(|| usage(format!("--env `{env}` is not one of development, staging, production")))?;
    let run_input: RunInput = match input {
        None => RunInput::default(),
        Some(arg) => {
            let text = read_text_arg("--input", arg)?;
            serde_json::from_str(&text).map_err(|e| {
                usage(format!("--input {arg}: not a valid run input: {e} (line {}, column {})", e.line(), e.column()))
            })?
        }
    };
    let sandbox = std::sync::Arc::new(host.sandbox_sized(64)?);
    let executor = std::sync::Arc::new(SandboxExecutor::new(sandbox));
    let wf = std::sync::Arc::new(load_workflow(path, Some(executor.as_ref()))?);
    let total = wf.nodes.len();
    let engine = Engine::new(executor).with_store(store.open()?);
    let opts = RunOptions { environment, jitter_seed, ..RunOptions::default() };
    let handle = engine.start(wf, &run_input, opts).await.map_err(durable::start_error)?;
    if !quiet {
        let line = format!(
            "run {} (resume it after an interruption with `weft runs resume {}`)\n",
            handle.run_id, handle.run_id
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
    watch(handle, quiet, output, total, !store.in_memory).await
}

/// Shows a run's progress on stderr, prints its output on stdout, and maps
/// its status to the exit code.
///
/// The first Ctrl-C cancels the run (compensating if the strategy says so);
/// a second one stops the process at once (exit 130), leaving a durable run
/// as a crash would: resumable.
pub(crate) async fn watch(
    mut handle: weft::engine::RunHandle,
    quiet: bool,
    output: &str,
    total: usize,
    durable: bool,
) -> anyhow::Result<ExitCode> {
    let cancel = handle.cancel_token();
    let run_id = handle.run_id.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("weft: cancelling (Ctrl-C); press Ctrl-C again to stop at once");
            cancel.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                if durable {
                    eprintln!(
                        "weft: stopped at once (second Ctrl-C); run {run_id} is left as it was, unfinished: \
                         `weft runs resume {run_id}` finishes it (its cancellation and compensation included)"
                    );
                } else {
                    eprintln!("weft: stopped at once (second Ctrl-C); run {run_id} was in memory and is lost");
                }
                std::process::exit(130);
            }
        }
    });
    let started = std::time::Instant::now();
    let mut live = (!quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| LiveView::new(total));
    while let Some(event) = handle.events.recv().await {
        match &mut live {
            Some(view) => view.update(&event, started),
            // Progress is best effort: a closed stderr must not stop the run.
            None if !quiet => {
                let line = format!("[{:>8.3}s] {}\n", started.elapsed().as_secs_f64(), describe_event(&event));
                let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            }
            None => {}
        }
    }
    if let Some(view) = &mut live {
        view.draw(true);
    }
    let out = handle.wait().await;
    print_json(&out, output)?;
    Ok(ExitCode::from(run_exit_code(out.execution_status)))
}

/// The exit code of a command that ends with a run: 0 completed, 4 cancelled, 3 otherwise.
pub(crate) fn run_exit_code(status: ExecutionStatus) -> u8 {
    match status {
        ExecutionStatus::Completed => 0,
        ExecutionStatus::Cancelled => 4,
        _ => 3,
    }
}

/// Prints `value` on stdout as one line (`json`) or indented (`pretty`).
pub(crate) fn print_json(value: &impl serde::Serialize, output: &str) -> anyhow::Result<()> {
    let text = if output == "json" { serde_json::to_string(value)? } else { serde_json::to_string_pretty(value)? };
    println!("{text}");
    Ok(())
}

/// The live view of a run on a terminal: counts, the steps running now, and
/// the latest transitions, redrawn in place (at most 20 times a second).
struct LiveView {
    total: usize,
    completed: usize,
    failed: usize,
    skipped: usize,
    running: std::collections::BTreeMap<String, u32>,
    recent: std::collections::VecDeque<String>,
    drawn: usize,
    last_draw: Option<std::time::Instant>,
}

const LIVE_RUNNING_ROWS: usize = 8;
const LIVE_RECENT_ROWS: usize = 6;

impl LiveView {
    fn new(total: usize) -> Self {
        Self {
            total,
            completed: 0,
            failed: 0,
            skipped: 0,
            running: Default::default(),
            recent: Default::default(),
            drawn: 0,
            last_draw: None,
        }
    }

    fn update(&mut self, e: &RunEvent, started: std::time::Instant) {
        match e {
            RunEvent::AttemptStarted { step_id, attempt } => {
                self.running.insert(step_id.clone(), *attempt);
            }
            RunEvent::StepCompleted { step_id, .. } => {
                self.running.remove(step_id);
                self.completed += 1;
            }
            RunEvent::StepFailed { step_id, .. } => {
                self.running.remove(step_id);
                self.failed += 1;
            }
            RunEvent::StepSkipped { .. } => self.skipped += 1,
            _ => {}
        }
        if !matches!(e, RunEvent::AttemptStarted { .. }) {
            self.recent.push_back(format!("[{:>8.3}s] {}", started.elapsed().as_secs_f64(), describe_event(e)));
            while self.recent.len() > LIVE_RECENT_ROWS {
                self.recent.pop_front();
            }
        }
        self.draw(matches!(e, RunEvent::RunFinished { .. }));
    }

    fn draw(&mut self, force: bool) {
        if !force && self.last_draw.is_some_and(|t| t.elapsed() < std::time::Duration::from_millis(50)) {
            return;
        }
        self.last_draw = Some(std::time::Instant::now());
        let of = if self.total > 0 { format!(", of {}", self.total) } else { String::new() };
        let mut lines = vec![format!(
            "steps: {} completed, {} failed, {} skipped, {} running{of}",
            self.completed,
            self.failed,
            self.skipped,
            self.running.len(),
        )];
        for (step, attempt) in self.running.iter().take(LIVE_RUNNING_ROWS) {
            lines.push(format!("  running  {step} (attempt {attempt})"));
        }
        if self.running.len() > LIVE_RUNNING_ROWS {
            lines.push(format!("  ... and {} more running", self.running.len() - LIVE_RUNNING_ROWS));
        }
        lines.extend(self.recent.iter().cloned());
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for line in &lines {
            out.push_str("\x1b[2K");
            out.push_str(line);
            out.push('\n');
        }
        // Clear rows left over from a taller previous frame.
        for _ in lines.len()..self.drawn {
            out.push_str("\x1b[2K\n");
        }
        let extra = self.drawn.saturating_sub(lines.len());
        if extra > 0 {
            out.push_str(&format!("\x1b[{extra}A"));
        }
        self.drawn = lines.len();
        let _ = std::io::Write::write_all(&mut std::io::stderr(), out.as_bytes());
    }
}

fn describe_event(e: &RunEvent) -> String {
    match e {
        RunEvent::RunStarted { run_id, workflow } => format!("run {run_id} of `{workflow}` started"),
        RunEvent::AttemptStarted { step_id, attempt } => format!("{step_id}: attempt {attempt} started"),
        RunEvent::Retrying { step_id, attempt, error_type, delay_ms } => {
            format!("{step_id}: attempt {attempt} failed ({error_type}); retrying in {delay_ms} ms")
        }
        RunEvent::StepCompleted { step_id, attempts } => format!("{step_id}: completed after {attempts} attempt(s)"),
        RunEvent::StepFailed { step_id, error_type, message, tolerated } => {
            let t = if *tolerated { " (tolerated: continue_on_error)" } else { "" };
            format!("{step_id}: FAILED{t}: {error_type}: {message}")
        }
        RunEvent::StepSkipped { step_id, reason } => format!("{step_id}: skipped: {reason}"),
        RunEvent::ActionNotDelivered { action } => format!(
            "{}: action {} for `{}` NOT DELIVERED: {}",
            action.source_node, action.action_id, action.target_node, action.reason
        ),
        RunEvent::Compensating { step_id } => format!("{step_id}: compensating"),
        RunEvent::Compensated { step_id, ok } => {
            format!("{step_id}: {}", if *ok { "compensated" } else { "COMPENSATION FAILED" })
        }
        RunEvent::RunFinished { status } => format!("run finished: {status:?}"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,weft::guest=off")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weft: could not start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Plugin(PluginCommand::Inspect { file, json, host }) => inspect(&file, json, &host),
            Command::Plugin(cmd @ PluginCommand::Call { .. }) => call(cmd).await,
            Command::Run { workflow, input, output, env, jitter_seed, quiet, store, host } => {
                run(&workflow, input.as_deref(), &output, &env, jitter_seed, quiet, &store, &host).await
            }
            Command::Runs(cmd) => durable::runs(cmd).await,
            Command::Resume { all: _, run } => durable::resume_all(run).await,
            Command::Dlq(cmd) => durable::dlq(cmd).await,
            Command::Health { workflows, store, host } => durable::health(workflows, store, host).await,
            Command::Validate { workflow, skip_components, host } => validate(&workflow, skip_components, &host),
            Command::Graph { workflow, format } => graph(&workflow, &format),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weft: {e:#}");
            ExitCode::from(if e.is::<Usage>() { 2 } else { 1 })
        }
    }
}
