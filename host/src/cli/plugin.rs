//! `weft plugin inspect` and `weft plugin call`: one component, outside any
//! workflow.

use super::args::{HostArgs, input_object, read_json_arg};
use super::exit;
use super::output::{noteln, outln};
use super::usage;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use weft::contract::AttemptReport;
use weft::sandbox::{CallKind, Limits, LoadError, MAX_TIMEOUT, StepCall, StepContext, StepWorld};

/// `weft plugin ...`
#[derive(Subcommand)]
pub enum PluginCommand {
    /// Print a component's digest, size, the world it fits (and why not), and
    /// its imports and exports as WIT.
    Inspect(InspectArgs),
    /// Run one attempt of a step and print its outcome as JSON.
    ///
    /// Exit codes: 0 succeeded, 10 timeout, 11 out_of_fuel, 12 memory_limit,
    /// 13 trap, 14 plugin_error, 15 invalid_output, 16 component_invalid,
    /// 2 bad arguments, 1 host error.
    Call(CallArgs),
}

/// `weft plugin inspect`
#[derive(Args)]
pub struct InspectArgs {
    /// The component file (.wasm).
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    host: HostArgs,
}

/// `weft plugin call`
#[derive(Args)]
pub struct CallArgs {
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
}

impl PluginCommand {
    /// Runs the command.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Inspect(args) => args.execute(),
            Self::Call(args) => args.execute().await,
        }
    }
}

impl InspectArgs {
    fn execute(self) -> anyhow::Result<ExitCode> {
        let sandbox = self.host.sandbox()?;
        let bytes = weft::files::read_capped(&self.file, sandbox.config().max_component_bytes)
            .map_err(|e| usage(format!("cannot read {}: {e}", self.file.display())))?;
        let report = sandbox.inspect(&bytes);
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            outln!("file:    {}", self.file.display());
            outln!("digest:  {}", report.digest);
            outln!("size:    {} bytes", report.size_bytes);
            outln!("format:  {}", report.format);
            outln!("world:   {}", report.world);
            for (name, fit) in [("compute-step", &report.compute), ("effect-step", &report.effect)] {
                if fit.fits {
                    outln!("  fits {name}");
                } else {
                    outln!("  does not fit {name}:");
                    for p in &fit.problems {
                        outln!("    - {}", p.replace('\n', "\n      "));
                    }
                }
            }
            if let Some(e) = &report.error {
                outln!("error:   {e}");
            }
            if let Some(wit) = &report.wit {
                outln!("\n{wit}");
            }
        }
        let unusable = exit::for_failure(weft::contract::FailureKind::ComponentInvalid);
        Ok(exit::code(if report.world == "neither" { unusable } else { exit::OK }))
    }
}

impl CallArgs {
    /// The limits the flags ask for; a timeout over the sandbox's is refused,
    /// not lowered (memory is checked against the host once it has started).
    fn limits(&self) -> anyhow::Result<Limits> {
        let mut limits = Limits::default();
        if let Some(f) = self.fuel {
            limits.fuel = f;
        }
        if let Some(t) = self.timeout_ms {
            let max = MAX_TIMEOUT.as_millis();
            if u128::from(t) > max {
                return Err(usage(format!("--timeout-ms {t} is over the sandbox's limit of {max} (24 h)")));
            }
            limits.timeout = Duration::from_millis(t);
        }
        if let Some(m) = self.memory_mb {
            limits.memory_bytes = m.saturating_mul(1 << 20);
        }
        if let Some(k) = self.max_output_kb {
            limits.max_output_bytes = k.saturating_mul(1 << 10);
        }
        Ok(limits)
    }

    async fn execute(self) -> anyhow::Result<ExitCode> {
        let input = input_object(&self.input)?;
        let kind = match &self.compensate {
            Some(arg) => CallKind::Compensate { output: read_json_arg("--compensate", arg)? },
            None => CallKind::Run,
        };
        let world = if self.effect || self.compensate.is_some() { StepWorld::Effect } else { StepWorld::Compute };
        let limits = self.limits()?;
        if self.attempt == 0 {
            return Err(usage("--attempt starts at 1"));
        }
        let sandbox = self.host.sandbox()?;
        let max_memory = sandbox.config().max_memory_bytes;
        if limits.memory_bytes > max_memory {
            return Err(usage(format!(
                "--memory-mb {} is over this host's limit of {} MiB (the pool's slot size)",
                self.memory_mb.unwrap_or_default(),
                max_memory >> 20
            )));
        }
        let mut ctx = StepContext::adhoc(&self.step_id);
        ctx.attempt = self.attempt;
        if let Some(k) = self.idempotency_key {
            ctx.idempotency_key = k;
        }
        let call = StepCall { ctx, input, kind };
        let report = match sandbox.load_file(&self.file, Some(world)) {
            Ok(component) => sandbox.execute(&component, &call, &limits).await,
            Err(LoadError::Io { path, source }) => {
                return Err(usage(format!("cannot read component {path}: {source}")));
            }
            Err(e) => AttemptReport::failed_early(e.to_failure()),
        };
        let text = if self.compact { serde_json::to_string(&report)? } else { serde_json::to_string_pretty(&report)? };
        outln!("{text}");
        Ok(match report.failure() {
            None => exit::code(exit::OK),
            Some(f) => {
                noteln!("weft: {f}");
                exit::code(exit::for_failure(f.kind()))
            }
        })
    }
}
