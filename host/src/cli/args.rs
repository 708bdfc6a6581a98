//! Options shared by several commands, and reading the files and JSON they
//! name. A command offers only the options that mean something for it:
//! [`ReadStoreArgs`] to look at a store, [`DriveStoreArgs`] to drive runs in
//! one, [`RunStoreArgs`] to start a run (which may also live in memory).

use super::usage;
use anyhow::Context as _;
use clap::Args;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weft::capability::Policy;
use weft::engine::{Engine, ResumeOptions, SandboxExecutor};
use weft::files::{self, MAX_JSON_BYTES};
use weft::sandbox::{Sandbox, SandboxConfig};
use weft::store::{RunStore, StoreError, StoreLocation, SyncMode, open_for_reading, open_for_writing};
use weft::workflow::Workflow;

/// Where compiled components are cached.
#[derive(Args)]
pub struct HostArgs {
    /// Directory of the compiled-component cache (default: $WEFT_CACHE_DIR or ~/.cache/weft/components).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the compiled-component cache.
    #[arg(long, global = true)]
    no_cache: bool,
}

impl HostArgs {
    /// A sandbox for one attempt at a time (a small pool reserves less address space).
    pub fn sandbox(&self) -> anyhow::Result<Sandbox> {
        self.sandbox_sized(4)
    }

    /// A sandbox with `instances` instance slots.
    pub fn sandbox_sized(&self, instances: u32) -> anyhow::Result<Sandbox> {
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

/// The operator's policy, which caps what effect steps may be granted.
#[derive(Args, Clone)]
pub struct PolicyArgs {
    /// The operator policy (TOML) that caps every capability; default $WEFT_POLICY. Without one, nodes get what they
    /// declare: a host that runs other people's workflows must set one.
    #[arg(long, value_name = "FILE", env = "WEFT_POLICY")]
    pub policy: Option<PathBuf>,
}

impl PolicyArgs {
    /// The policy, or the no-policy operator mode.
    pub fn load(&self) -> anyhow::Result<Arc<Policy>> {
        match &self.policy {
            Some(path) => Policy::load(path).map(Arc::new).map_err(usage),
            None => Ok(Arc::new(Policy::operator())),
        }
    }
}

/// Operator policies of their own for some tenants.
#[derive(Args, Clone)]
pub struct TenantPolicyArgs {
    /// A directory of policies per tenant: `DIR/<tenant>.toml` is that
    /// tenant's operator policy, in place of --policy, for its runs (on
    /// `weft serve`, and on every `weft worker`: give them the same).
    #[arg(long, value_name = "DIR")]
    pub tenant_policies: Option<PathBuf>,
}

impl TenantPolicyArgs {
    /// `engine` with each tenant's policy of the directory.
    pub fn apply(&self, mut engine: Engine) -> anyhow::Result<Engine> {
        let Some(dir) = &self.tenant_policies else { return Ok(engine) };
        let entries = std::fs::read_dir(dir).map_err(|e| {
            usage(format!("--tenant-policies {}: {e}; give a directory of TENANT.toml files", dir.display()))
        })?;
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for path in files {
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let tenant = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            if !weft::service::valid_name(&tenant) {
                return Err(usage(format!(
                    "--tenant-policies: {} is not named after a tenant: name it TENANT.toml, with the tenant's \
                     name (lowercase letters, digits and `-`)",
                    path.display()
                )));
            }
            let policy = Policy::load(&path).map_err(usage)?;
            engine = engine.with_tenant_policy(&tenant, Arc::new(policy));
        }
        Ok(engine)
    }
}

/// What each node of `wf` is granted, one line per grant, for people.
pub fn grant_lines(wf: &Workflow, policy: &Policy) -> Vec<String> {
    let mut lines = Vec::new();
    for (at, wf) in wf.levels() {
        for node in wf.nodes.iter().filter(|n| !n.capabilities.is_empty()) {
            for grant in node.capabilities.describe() {
                lines.push(format!("node `{at}{}`: {grant}", node.id));
            }
        }
    }
    if !lines.is_empty() {
        lines.push(match &policy.file {
            Some(f) => format!("(within the policy {})", f.display()),
            None => "(no policy: each node gets what it declares; a host that runs other people's workflows must \
                     pass --policy)"
                .to_string(),
        });
    }
    lines
}

/// The store a command reads (it is never created).
#[derive(Args, Clone)]
pub struct ReadStoreArgs {
    /// The run database: a SQLite path or sqlite:PATH (default: $WEFT_DB, else weft/weft.db in the user's data directory).
    #[arg(long, value_name = "PATH")]
    pub db: Option<String>,
}

impl ReadStoreArgs {
    /// Where the store is.
    pub fn location(&self) -> anyhow::Result<StoreLocation> {
        location(self.db.as_deref())
    }

    /// Opens the store to list what it holds. `Err` (inside) when it has not
    /// been created yet: the list is empty, and the text says why, as
    /// ` (there is no database at PATH yet)`.
    pub fn open_if_created(&self) -> anyhow::Result<Result<Arc<dyn RunStore>, String>> {
        let at = self.location()?;
        match open_for_reading(&at) {
            Ok(store) => Ok(Ok(store)),
            Err(StoreError::Missing(_)) => Ok(Err(format!(" (there is no database at {at} yet)"))),
            Err(e) => Err(opening_error(&at, e)),
        }
    }

    /// Opens the store to read it.
    pub fn open(&self) -> anyhow::Result<Arc<dyn RunStore>> {
        let at = self.location()?;
        open_for_reading(&at).map_err(|e| opening_error(&at, e))
    }
}

/// The store a command drives runs in.
#[derive(Args, Clone)]
pub struct DriveStoreArgs {
    /// The run database: a SQLite path or sqlite:PATH (default: $WEFT_DB, else weft/weft.db in the user's data directory).
    #[arg(long, value_name = "PATH")]
    pub db: Option<String>,
    /// `normal` (survives the process being killed) or `full` (also survives power loss; slower).
    #[arg(long, default_value = "normal", value_parser = ["normal", "full"])]
    pub sync: String,
}

impl DriveStoreArgs {
    /// Where the store is.
    pub fn location(&self) -> anyhow::Result<StoreLocation> {
        location(self.db.as_deref())
    }

    /// Opens (creating if missing) the store.
    pub fn open(&self) -> anyhow::Result<Arc<dyn RunStore>> {
        let sync = if self.sync == "full" { SyncMode::Full } else { SyncMode::Normal };
        let at = self.location()?;
        open_for_writing(&at, sync).map_err(|e| opening_error(&at, e))
    }
}

/// The store a new run is kept in.
#[derive(Args, Clone)]
pub struct RunStoreArgs {
    #[command(flatten)]
    pub store: DriveStoreArgs,
    /// Keep the run in memory only: nothing is persisted, nothing can be resumed.
    #[arg(long, conflicts_with = "db")]
    pub in_memory: bool,
}

impl RunStoreArgs {
    /// Opens the store.
    pub fn open(&self) -> anyhow::Result<Arc<dyn RunStore>> {
        if self.in_memory {
            return open_for_writing(&StoreLocation::Memory, SyncMode::Normal).map_err(store_error);
        }
        self.store.open()
    }
}

fn location(db: Option<&str>) -> anyhow::Result<StoreLocation> {
    match db {
        Some(text) => StoreLocation::parse(text).map_err(|e| usage(format!("--db: {e}"))),
        None => StoreLocation::default_location().map_err(store_error),
    }
}

/// Why the store at `at` did not open: the user's to fix, or the backend's
/// (said with the path).
fn opening_error(at: &StoreLocation, e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Backend(_) => anyhow::Error::new(e).context(format!("cannot open the run database {at}")),
        other => store_error(other),
    }
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
    pub store: DriveStoreArgs,
    #[command(flatten)]
    pub host: HostArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

impl DriveArgs {
    /// An engine on the store, with a sandbox sized for a run's parallel
    /// steps, under the operator's policy.
    pub fn engine(&self) -> anyhow::Result<Engine> {
        let store = self.store.open()?;
        let policy = self.policy.load()?;
        let sandbox = Arc::new(self.host.sandbox_sized(64)?);
        Ok(Engine::new(Arc::new(SandboxExecutor::new(sandbox))).with_store(store).with_policy(policy))
    }

    /// How to resume.
    pub fn options(&self) -> ResumeOptions {
        ResumeOptions { upgrade: self.upgrade, ..ResumeOptions::default() }
    }
}

/// A store error: the user's to fix (exit 2) unless the backend failed.
pub fn store_error(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(_)
        | StoreError::Incompatible(_)
        | StoreError::Owned { .. }
        | StoreError::Finished(_)
        | StoreError::Missing(_) => usage(e.to_string()),
        other => anyhow::Error::new(other),
    }
}

/// The text of `path` for option `flag`: `-` is stdin, anything else a file;
/// both capped at [`MAX_JSON_BYTES`].
pub fn read_text_arg(flag: &str, path: &str) -> anyhow::Result<String> {
    if path == "-" {
        files::read_stream_capped(std::io::stdin().lock(), MAX_JSON_BYTES)
            .and_then(files::into_text)
            .map_err(|e| usage(format!("{flag}: could not read stdin: {e}")))
    } else {
        files::read_text_capped(Path::new(path), MAX_JSON_BYTES)
            .map_err(|e| usage(format!("{flag}: cannot read {path}: {e}")))
    }
}

/// Reads `JSON` or `@FILE` (`@-` is stdin).
pub fn read_json_arg(flag: &str, arg: &str) -> anyhow::Result<Value> {
    let (text, origin) = if let Some(path) = arg.strip_prefix('@') {
        (read_text_arg(flag, path)?, path.to_string())
    } else {
        (arg.to_string(), "the command line".to_string())
    };
    serde_json::from_str(&text).map_err(|e| {
        usage(format!("{flag}: the JSON from {origin} does not parse: {e} (line {}, column {})", e.line(), e.column()))
    })
}

/// A step's input object from `--input JSON|@FILE`.
pub fn input_object(arg: &str) -> anyhow::Result<Map<String, Value>> {
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
