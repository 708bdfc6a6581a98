//! `weft plugin inspect` and `weft plugin call`: one component, outside any
//! workflow. (`plugin new` and `plugin build` are in `plugin_author`.)

use super::args::{HostArgs, PolicyArgs, input_object, read_json_arg};
use super::exit;
use super::output::{noteln, outln};
use super::usage;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use weft::capability::{Capabilities, DirGrant, DirMode, DirSource, HttpRule, METHODS, UrlPattern};
use weft::contract::AttemptReport;
use weft::sandbox::{CallKind, Grants, KvBinding, Limits, LoadError, MAX_TIMEOUT, StepCall, StepContext, StepWorld};

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
    Call(Box<CallArgs>),
    /// Write a new plugin from the template for a language
    /// (rust, js, ts, python, c or go).
    New(super::plugin_author::NewArgs),
    /// Build the plugin in a directory (its plugin.toml says how), leaving
    /// NAME.wasm next to it. Says what to install when a toolchain is missing.
    Build(super::plugin_author::BuildArgs),
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
    /// Grant outbound HTTP to URLs matching URL (scheme://host[:port|:*]/path-glob), optionally with the methods
    /// allowed (URL:GET,POST; default GET). Repeatable. Needs --effect.
    #[arg(long, value_name = "URL[:METHODS]")]
    allow_http: Vec<String>,
    /// Preopen a host directory at a guest path, read-only or read-write (HOST `scratch` is a fresh temporary
    /// directory). Repeatable. Needs --effect.
    #[arg(long, value_name = "HOST:GUEST:ro|rw")]
    dir: Vec<String>,
    /// Pass the host environment variable NAME through. Repeatable. Needs --effect.
    #[arg(long, value_name = "NAME")]
    env: Vec<String>,
    /// Give the secret NAME (from the policy's secret source; default $WEFT_SECRET_NAME) as an environment
    /// variable; its value is redacted from the output. Repeatable. Needs --effect.
    #[arg(long, value_name = "NAME")]
    secret: Vec<String>,
    /// Grant key-value state (a fresh in-memory scope for this call). Needs --effect.
    #[arg(long)]
    kv: bool,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    host: HostArgs,
}

impl PluginCommand {
    /// Runs the command.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Inspect(args) => args.execute(),
            Self::Call(args) => args.execute().await,
            Self::New(args) => args.execute(),
            Self::Build(args) => args.execute(),
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

    /// The capabilities the grant flags ask for.
    fn capabilities(&self) -> anyhow::Result<Capabilities> {
        let mut caps = Capabilities::default();
        for arg in &self.allow_http {
            let (url, methods) = match arg.rsplit_once(':') {
                Some((url, m))
                    if !m.is_empty() && m.split(',').all(|x| METHODS.contains(&x.to_ascii_uppercase().as_str())) =>
                {
                    (url, m.split(',').map(str::to_string).collect::<Vec<_>>())
                }
                _ => (arg.as_str(), Vec::new()),
            };
            let url = UrlPattern::parse(url).map_err(|e| usage(format!("--allow-http {arg}: {e}")))?;
            caps.http.push(HttpRule::new(url, &methods).map_err(|e| usage(format!("--allow-http {arg}: {e}")))?);
        }
        for arg in &self.dir {
            let mut parts = arg.rsplitn(3, ':');
            let (mode, guest, host) = (parts.next(), parts.next(), parts.next());
            let (Some(mode), Some(guest), Some(host)) = (mode, guest, host) else {
                return Err(usage(format!("--dir {arg}: expected HOST:GUEST:ro|rw, such as data:/data:ro")));
            };
            let mode = DirMode::parse(mode)
                .ok_or_else(|| usage(format!("--dir {arg}: the mode is `{mode}`; it must be ro or rw")))?;
            DirGrant::check_guest(guest).map_err(|e| usage(format!("--dir {arg}: {e}")))?;
            let source = if host == "scratch" {
                DirSource::Scratch
            } else {
                let path = std::fs::canonicalize(host).map_err(|e| usage(format!("--dir {arg}: {host}: {e}")))?;
                DirSource::Path(path)
            };
            caps.dirs.push(DirGrant { host: source, guest: guest.to_string(), mode });
        }
        for (flag, names, into) in [("--env", &self.env, &mut caps.env), ("--secret", &self.secret, &mut caps.secrets)]
        {
            for name in names {
                if !Capabilities::valid_name(name) {
                    return Err(usage(format!("{flag} {name}: not a variable name (letters, digits and `_`)")));
                }
                into.push(name.clone());
            }
        }
        caps.kv = self.kv;
        Ok(caps)
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
        if let Some(k) = self.idempotency_key.clone() {
            ctx.idempotency_key = k;
        }
        let call = StepCall { ctx, input, kind };
        let caps = self.capabilities()?;
        if world == StepWorld::Compute && !caps.is_empty() {
            return Err(usage(
                "grant flags (--allow-http, --dir, --env, --secret, --kv) need --effect: compute steps have no authority",
            ));
        }
        let policy = self.policy.load()?;
        let refused = policy.check(&caps);
        if !refused.is_empty() {
            return Err(usage(format!("the operator policy refuses these grants:\n  - {}", refused.join("\n  - "))));
        }
        // A temporary directory only when `--dir scratch:...` asks for one;
        // it is removed when the call ends.
        let uses_scratch = caps.dirs.iter().any(|d| d.host == DirSource::Scratch);
        let scratch = match uses_scratch {
            true => Some(tempfile::tempdir().map_err(|e| anyhow::anyhow!("cannot create a scratch directory: {e}"))?),
            false => None,
        };
        let mut grants = Grants::under(caps, &policy);
        grants.scratch_dir = scratch.as_ref().map(|d| d.path().join("scratch"));
        if grants.capabilities.kv {
            let store: Arc<dyn weft::contract::KeyValue> = Arc::new(weft::store::MemoryStore::new());
            grants.kv = Some(KvBinding { store, scope: weft::contract::kv_scope("", "adhoc") });
        }
        let report = match sandbox.load_file(&self.file, Some(world)) {
            Ok(component) => sandbox.execute_granted(&component, &call, &limits, &grants).await,
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
