//! The `weft` command-line tool.

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use weft::sandbox::{CallKind, Limits, Sandbox, SandboxConfig, StepCall, StepContext, StepFailure, StepWorld};

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
struct HostArgs {
    /// Directory of the compiled-component cache (default: $WEFT_CACHE_DIR or ~/.cache/weft/components).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the compiled-component cache.
    #[arg(long, global = true)]
    no_cache: bool,
}

impl HostArgs {
    fn sandbox(&self) -> anyhow::Result<Sandbox> {
        let mut config = SandboxConfig::default();
        if self.no_cache {
            config.cache_dir = None;
        } else if let Some(d) = &self.cache_dir {
            config.cache_dir = Some(d.clone());
        }
        // One CLI call runs one attempt: a small pool reserves less address space.
        config.max_instances = 4;
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

fn usage(msg: impl Into<String>) -> anyhow::Error {
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
    }
}

/// Reads `JSON` or `@FILE` (`@-` is stdin).
fn read_json_arg(flag: &str, arg: &str) -> anyhow::Result<Value> {
    let (text, origin) = if let Some(path) = arg.strip_prefix('@') {
        let text = if path == "-" {
            std::io::read_to_string(std::io::stdin())
                .map_err(|e| usage(format!("{flag}: could not read stdin: {e}")))?
        } else {
            std::fs::read_to_string(path).map_err(|e| usage(format!("{flag}: cannot read {path}: {e}")))?
        };
        (text, path.to_string())
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
    let bytes = std::fs::read(file).map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
    let sandbox = host.sandbox()?;
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
