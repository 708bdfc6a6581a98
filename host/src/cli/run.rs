//! `weft run`: start a workflow and watch it to its end, and the watching
//! that every command ending with a run shares.

use super::args::{HostArgs, PolicyArgs, RunStoreArgs, grant_lines, read_text_arg};
use super::exit;
use super::output::{noteln, print_json};
use super::progress::Progress;
use super::{load_workflow, start_error, usage};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use weft::engine::{Engine, Environment, RunHandle, RunInput, RunOptions, SandboxExecutor};
use weft::store::StoreLocation;

/// `weft run`
#[derive(Args)]
pub struct RunArgs {
    /// The workflow file. Without one, the input's `steps` are the workflow
    /// (each with its `component`, relative to the input file).
    workflow: Option<PathBuf>,
    /// The run input (the ONEX orchestrator contract's input subcontract) as JSON: a file, or - for stdin.
    #[arg(long)]
    input: Option<String>,
    /// `pretty` (indented) or `json` (one line).
    #[arg(long, default_value = "pretty", value_parser = ["pretty", "json"])]
    output: String,
    /// Environment profile for defaults: development, staging or production.
    #[arg(long, default_value = "development")]
    env: String,
    /// The ONEX orchestrator contract's config (retry_config, parallel_config, timeout_config, ...) as JSON or
    /// YAML, layered over the environment profile.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed for retry jitter, for reproducible delays.
    #[arg(long)]
    jitter_seed: Option<u64>,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    store: RunStoreArgs,
    #[command(flatten)]
    host: HostArgs,
    #[command(flatten)]
    policy: PolicyArgs,
}

/// A run about to start: its engine, workflow, input and options.
struct Prepared {
    engine: Engine,
    wf: Arc<weft::workflow::Workflow>,
    input: RunInput,
    opts: RunOptions,
    policy: Arc<weft::capability::Policy>,
}

impl RunArgs {
    /// Runs the command.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let Prepared { engine, wf, input, opts, policy } = self.prepare()?;
        let total = wf.nodes.len();
        let handle_wf = wf.clone();
        // Before the run starts: a SIGTERM a moment after it must drain it, not kill the process.
        super::shutdown::drain_on_sigterm(engine.clone(), "the run");
        let handle = engine.start(wf, &input, opts).await.map_err(start_error)?;
        if !self.quiet {
            noteln!(
                "run {} (resume it after an interruption with `weft runs resume {}`)",
                handle.run_id,
                handle.run_id
            );
            for line in grant_lines(&handle_wf, &policy) {
                noteln!("grant: {line}");
            }
        }
        let durable = !self.store.in_memory && !matches!(self.store.store.location()?, StoreLocation::Memory);
        let watch = Watch { quiet: self.quiet, output: self.output, total, durable, engine: None };
        watch.run(handle).await
    }

    /// `weft submit`: stores the run, its spec and its components for a
    /// worker, and prints its id on stdout.
    pub async fn submit(self) -> anyhow::Result<ExitCode> {
        if self.store.in_memory {
            return Err(usage(
                "--in-memory: a submitted run waits in the store for a worker; give a store the workers share \
                 (--db postgres://… or a SQLite file)",
            ));
        }
        let Prepared { engine, wf, input, opts, .. } = self.prepare()?;
        let run_id = engine.submit(wf, &input, opts).await.map_err(start_error)?;
        if !self.quiet {
            noteln!("submitted run {run_id}: `weft worker` runs it; `weft runs show {run_id}` follows it");
        }
        println!("{run_id}");
        Ok(exit::code(exit::OK))
    }

    /// Reads the input and the workflow, and makes the engine.
    fn prepare(&self) -> anyhow::Result<Prepared> {
        let environment = Environment::parse(&self.env)
            .ok_or_else(|| usage(format!("--env `{}` is not one of development, staging, production", self.env)))?;
        let run_input: RunInput = match &self.input {
            None => RunInput::default(),
            Some(arg) => {
                let text = read_text_arg("--input", arg)?;
                serde_json::from_str(&text).map_err(|e| {
                    usage(format!(
                        "--input {arg}: not a valid run input: {e} (line {}, column {})",
                        e.line(),
                        e.column()
                    ))
                })?
            }
        };
        let policy = self.policy.load()?;
        let sandbox = Arc::new(self.host.sandbox_sized(64)?);
        let executor = Arc::new(SandboxExecutor::new(sandbox));
        let wf = match &self.workflow {
            Some(path) => load_workflow(path, Some(executor.as_ref()))?,
            None => workflow_of_input(&run_input, self.input.as_deref(), executor.as_ref())?,
        };
        let wf = Arc::new(wf);
        let config = self.config.as_deref().map(load_config).transpose()?.map(Arc::new);
        let engine = Engine::new(executor).with_store(self.store.open()?).with_policy(policy.clone());
        let opts = RunOptions { environment, jitter_seed: self.jitter_seed, config, ..RunOptions::default() };
        Ok(Prepared { engine, wf, input: run_input, opts, policy })
    }
}

/// The workflow a run input's `steps` describe (no workflow file given).
fn workflow_of_input(
    input: &RunInput,
    arg: Option<&str>,
    checker: &dyn weft::workflow::ComponentCheck,
) -> anyhow::Result<weft::workflow::Workflow> {
    let Some(steps) = &input.steps else {
        return Err(usage(
            "give a workflow file (`weft run WORKFLOW`), or a run input whose `steps` are the workflow \
             (`weft run --input run.json`, each step with its `component`)",
        ));
    };
    let name = input.workflow_type.clone().unwrap_or_else(|| "input".into());
    let text = weft::engine::workflow_from_steps(
        steps,
        &name,
        input.execution_mode.as_deref(),
        input.workflow_type.as_deref(),
    )
    .map_err(|p| usage(format!("the run input's steps are not a workflow:\n  - {}", p.join("\n  - "))))?;
    // Components are relative to the input file (the working directory for stdin).
    let base = match arg {
        Some(a) if a != "-" => std::path::Path::new(a).parent().map(std::path::Path::to_path_buf).unwrap_or_default(),
        _ => PathBuf::from("."),
    };
    let label = format!("the steps of {}", arg.unwrap_or("the run input"));
    weft::workflow::load_str(&text, &base, &label, Some(checker))
        .map_err(|e| usage(e.to_string().trim_end().to_string()))
}

/// Reads a config file (`--config`): the contract's config, as JSON or YAML.
pub fn load_config(path: &std::path::Path) -> anyhow::Result<weft::contract::ConfigLayer> {
    let label = path.display();
    let text = weft::files::read_text_capped(path, weft::files::MAX_JSON_BYTES)
        .map_err(|e| usage(format!("--config {label}: cannot read it: {e}")))?;
    let doc = weft::workflow::yaml::parse(&text)
        .map_err(|e| usage(format!("--config {label}:{}: not valid YAML or JSON: {}", e.pos, e.message)))?;
    let layer = weft::contract::ConfigLayer::from_json(doc.value.to_json())
        .map_err(|e| usage(format!("--config {label}: not the ONEX orchestrator contract's config: {e}")))?;
    let problems = layer.check();
    if !problems.is_empty() {
        return Err(usage(format!("--config {label}: out of bounds:\n  - {}", problems.join("\n  - "))));
    }
    Ok(layer)
}

/// How a command that ends with a run shows it.
pub struct Watch {
    /// No progress on stderr.
    pub quiet: bool,
    /// `pretty` or `json`, for the output contract on stdout.
    pub output: String,
    /// The run's number of steps, when known (0: unknown).
    pub total: usize,
    /// Whether the run is in a durable store (it can be resumed).
    pub durable: bool,
    /// The engine driving the run, drained on SIGTERM from when the watch
    /// begins (None: the caller has set that up, or SIGTERM stops the
    /// process at once).
    pub engine: Option<Engine>,
}

impl Watch {
    /// Shows the run's progress on stderr, prints its output on stdout, and
    /// maps its status to the exit code.
    ///
    /// The first Ctrl-C cancels the run (compensating if the strategy says
    /// so); a second one stops the process at once (exit 130), leaving a
    /// durable run as a crash would: resumable.
    pub async fn run(self, mut handle: RunHandle) -> anyhow::Result<ExitCode> {
        let cancel = handle.cancel_token();
        let run_id = handle.run_id.clone();
        let shown_id = run_id.clone();
        let durable = self.durable;
        if let Some(engine) = self.engine.clone() {
            super::shutdown::drain_on_sigterm(engine, "the run");
        }
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                noteln!("weft: cancelling (Ctrl-C); press Ctrl-C again to stop at once");
                cancel.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    if durable {
                        noteln!(
                            "weft: stopped at once (second Ctrl-C); run {run_id} is left as it was, unfinished: \
                             `weft runs resume {run_id}` finishes it (its cancellation and compensation included)"
                        );
                    } else {
                        noteln!("weft: stopped at once (second Ctrl-C); run {run_id} was in memory and is lost");
                    }
                    std::process::exit(i32::from(exit::INTERRUPTED));
                }
            }
        });
        let mut progress = (!self.quiet).then(|| Progress::new(self.total));
        while let Some((at, event)) = handle.events.recv_timed().await {
            if let Some(p) = &mut progress {
                p.show(at, &event);
            }
        }
        if let Some(p) = &mut progress {
            p.finish();
        }
        let out = handle.wait().await;
        if out.execution_status == weft::contract::ExecutionStatus::Paused && !self.quiet {
            noteln!(
                "weft: run {shown_id} drained and left resumable: `weft runs resume {shown_id}` or any worker continues it"
            );
        }
        print_json(&out, &self.output)?;
        Ok(exit::code(exit::for_status(out.execution_status)))
    }
}
