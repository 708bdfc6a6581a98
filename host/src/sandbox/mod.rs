//! The sandbox: load a step component and run one attempt of it under hard
//! limits on fuel, wall time and memory.
//!
//! One [`Sandbox`] per host holds the wasmtime engine (async, fuel, epoch
//! interruption driven by one ticker thread, pooling allocator), an on-disk
//! cache of compiled components, and one pre-linked `InstancePre` per
//! component digest. [`Sandbox::execute`] gives every attempt a fresh store
//! with its own fuel budget, deadline, memory cap and WASI context, and
//! returns an [`AttemptReport`] whose outcome is a typed success or
//! [`StepFailure`].

mod bindings;
mod cache;
mod engine;
mod limits;
mod outcome;
mod state;
mod world;

pub use cache::{ComponentCache, Origin, digest};
pub use engine::Allocator;
pub use limits::{Limits, SandboxConfig, default_cache_dir};
pub use outcome::{
    ActionKind, AttemptReport, AttemptStats, EmittedAction, LogLevel, LogLine, LogSource, PluginErrorKind, StepFailure,
    StepSuccess,
};
pub use state::MAX_LOG_LINE;
pub use world::StepWorld;

use bindings::compute::ComputeStepPre;
use bindings::effect::EffectStepPre;
use engine::Ticker;
use rand::SeedableRng;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use state::{
    CapturePipe, DeadlineExceeded, FrozenMonotonicClock, FrozenWallClock, LogTags, MemoryLimitExceeded, StepState,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

/// Who is calling: the identity of one attempt, passed to the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepContext {
    /// The run's id.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The node id of the step.
    pub step_id: String,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// Stable across retries of this step in this run.
    pub idempotency_key: String,
    /// The run's correlation id.
    pub correlation_id: String,
    /// The owning tenant (empty when single-tenant).
    pub tenant: String,
}

impl StepContext {
    /// A context for a one-off call outside any workflow (a fresh run id).
    pub fn adhoc(step_id: &str) -> Self {
        let run_id = uuid::Uuid::new_v4().to_string();
        Self {
            idempotency_key: format!("{run_id}/{step_id}"),
            correlation_id: run_id.clone(),
            run_id,
            workflow: "adhoc".into(),
            step_id: step_id.into(),
            attempt: 1,
            tenant: String::new(),
        }
    }
}

/// Which export an attempt calls.
#[derive(Debug, Clone, PartialEq)]
pub enum CallKind {
    /// `run` (compute or effect).
    Run,
    /// `compensate` of an effect step, with the output `run` returned.
    Compensate {
        /// The output of the `run` being undone.
        output: Value,
    },
}

/// One call into a step: its context, its input object, and which export.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCall {
    /// The attempt's identity.
    pub ctx: StepContext,
    /// The step's input: always a JSON object.
    pub input: Map<String, Value>,
    /// `run` or `compensate`.
    pub kind: CallKind,
}

impl StepCall {
    /// A `run` call with an ad-hoc context.
    pub fn run(input: Map<String, Value>) -> Self {
        Self { ctx: StepContext::adhoc("step"), input, kind: CallKind::Run }
    }

    /// A `compensate` call with an ad-hoc context.
    pub fn compensate(input: Map<String, Value>, output: Value) -> Self {
        Self { ctx: StepContext::adhoc("step"), input, kind: CallKind::Compensate { output } }
    }
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read component {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not a usable step component.
    #[error("{0}")]
    Invalid(String),
}

impl LoadError {
    /// The failure an attempt with this component reports.
    pub fn to_failure(&self) -> StepFailure {
        StepFailure::ComponentInvalid { reason: self.to_string() }
    }
}

enum Pre {
    Compute(ComputeStepPre<StepState>),
    Effect(EffectStepPre<StepState>),
}

/// A component that was checked against its world and pre-linked: ready to
/// instantiate once per attempt.
pub struct LoadedComponent {
    /// `sha256:` content digest of the component's bytes.
    pub digest: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// The world it was checked against.
    pub world: StepWorld,
    /// Whether it came from the disk cache or was compiled.
    pub origin: Origin,
    pre: Pre,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("world", &self.world)
            .field("origin", &self.origin)
            .finish()
    }
}

/// Whether a component fits a world, and why not.
#[derive(Debug, Clone, Serialize)]
pub struct WorldFit {
    /// True when the component can run as this world.
    pub fits: bool,
    /// Every reason it does not.
    pub problems: Vec<String>,
}

/// What `weft plugin inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// `sha256:` content digest.
    pub digest: String,
    /// Size in bytes.
    pub size_bytes: usize,
    /// `component`, `core_module`, `not_wasm` or `empty`.
    pub format: &'static str,
    /// The world it fits: `compute`, `effect` or `neither`.
    pub world: &'static str,
    /// Fit against the compute-step world.
    pub compute: WorldFit,
    /// Fit against the effect-step world.
    pub effect: WorldFit,
    /// Why it cannot be used at all (not a component, does not compile).
    pub error: Option<String>,
    /// Imports and exports, printed as a WIT world.
    pub wit: Option<String>,
}

/// Host-wide sandbox: engine, linker, compiled-component cache, ticker.
pub struct Sandbox {
    engine: Engine,
    allocator: Allocator,
    linker: Linker<StepState>,
    cache: Option<ComponentCache>,
    loaded: Mutex<Loaded>,
    slots: Semaphore,
    ticker: Ticker,
    config: SandboxConfig,
}

/// Pre-linked components by digest and world, least recently used dropped
/// beyond a cap.
#[derive(Default)]
struct Loaded {
    map: HashMap<(String, StepWorld), (Arc<LoadedComponent>, u64)>,
    clock: u64,
}

impl Loaded {
    fn get(&mut self, digest: &str, world: StepWorld) -> Option<Arc<LoadedComponent>> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(&(digest.to_string(), world)).map(|(c, used)| {
            *used = clock;
            c.clone()
        })
    }

    fn insert(&mut self, c: Arc<LoadedComponent>, cap: usize) {
        self.clock += 1;
        let key = (c.digest.clone(), c.world);
        // Replacing an entry (two loads raced) evicts nothing.
        while !self.map.contains_key(&key) && self.map.len() >= cap.max(1) {
            let Some(oldest) = self.map.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone()) else {
                break;
            };
            self.map.remove(&oldest);
        }
        self.map.insert(key, (c, self.clock));
    }
}

/// The raw result of a guest call before classification.
enum RawCall {
    Run(Result<bindings::StepOutput, bindings::StepError>),
    Compensate(Result<(), bindings::StepError>),
}

impl Sandbox {
    /// Creates the engine, the linker with WASI 0.2 and `weft:step/log`, and
    /// starts the epoch ticker.
    pub fn new(config: SandboxConfig) -> anyhow::Result<Self> {
        let (engine, allocator) = engine::build_engine(&config).map_err(anyhow::Error::from)?;
        let mut linker: Linker<StepState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        bindings::compute::weft::step::log::add_to_linker::<StepState, wasmtime::component::HasSelf<StepState>>(
            &mut linker,
            |s| s,
        )
        .map_err(anyhow::Error::from)?;
        let cache = config.cache_dir.clone().map(|d| ComponentCache::new(d, &engine));
        let ticker = Ticker::start(engine.clone(), config.epoch_tick)?;
        Ok(Self {
            slots: Semaphore::new(config.max_instances.max(1) as usize),
            engine,
            allocator,
            linker,
            cache,
            loaded: Mutex::new(Loaded::default()),
            ticker,
            config,
        })
    }

    /// The allocator in use (pooling, or the on-demand fallback).
    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// The configuration this sandbox was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The wasmtime engine (for embedders that measure or extend it).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads and loads a component file; see [`Sandbox::load_bytes`].
    pub fn load_file(&self, path: &Path, world: Option<StepWorld>) -> Result<Arc<LoadedComponent>, LoadError> {
        let bytes = read_component(path, self.config.max_component_bytes)?;
        self.load_bytes(&bytes, world)
    }

    /// Checks `bytes` against `world` (or, with `None`, whichever world it
    /// fits, compute first) and pre-links it. Loading the same bytes again is
    /// a map lookup.
    pub fn load_bytes(&self, bytes: &[u8], world: Option<StepWorld>) -> Result<Arc<LoadedComponent>, LoadError> {
        check_format(bytes, self.config.max_component_bytes).map_err(LoadError::Invalid)?;
        let digest = cache::digest(bytes);
        let candidates: &[StepWorld] = match &world {
            Some(w) => std::slice::from_ref(w),
            None => &[StepWorld::Compute, StepWorld::Effect],
        };
        if let Some(hit) = candidates.iter().find_map(|w| self.lookup(&digest, *w)) {
            return Ok(hit);
        }
        let (component, origin) = self.compile(&digest, bytes).map_err(LoadError::Invalid)?;
        let world = match world {
            Some(w) => {
                let problems = world::misfits(&self.engine, &component, w);
                if !problems.is_empty() {
                    return Err(LoadError::Invalid(misfit_message(w, &problems)));
                }
                w
            }
            None => {
                let compute = world::misfits(&self.engine, &component, StepWorld::Compute);
                let effect = world::misfits(&self.engine, &component, StepWorld::Effect);
                if compute.is_empty() {
                    StepWorld::Compute
                } else if effect.is_empty() {
                    StepWorld::Effect
                } else {
                    return Err(LoadError::Invalid(format!(
                        "{}\n{}",
                        misfit_message(StepWorld::Compute, &compute),
                        misfit_message(StepWorld::Effect, &effect)
                    )));
                }
            }
        };
        if let Some(hit) = self.lookup(&digest, world) {
            return Ok(hit);
        }
        self.link(&component, digest, bytes.len(), world, origin)
    }

    /// Pre-links a compiled component for `world` and remembers it by digest.
    fn link(
        &self,
        component: &Component,
        digest: String,
        size: usize,
        world: StepWorld,
        origin: Origin,
    ) -> Result<Arc<LoadedComponent>, LoadError> {
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Invalid(format!("the component's imports do not link: {e:#}")))?;
        let pre = match world {
            StepWorld::Compute => ComputeStepPre::new(instance_pre).map(Pre::Compute),
            StepWorld::Effect => EffectStepPre::new(instance_pre).map(Pre::Effect),
        }
        .map_err(|e| LoadError::Invalid(format!("the component's exports do not match the {world} world: {e:#}")))?;
        let loaded = Arc::new(LoadedComponent { digest: digest.clone(), size, world, origin, pre });
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(loaded.clone(), self.config.max_loaded_components);
        Ok(loaded)
    }

    /// The pre-linked component with `digest` for `world`, if it is still in
    /// memory (see [`SandboxConfig::max_loaded_components`]).
    pub fn loaded(&self, digest: &str, world: StepWorld) -> Option<Arc<LoadedComponent>> {
        self.lookup(digest, world)
    }

    fn lookup(&self, digest: &str, world: StepWorld) -> Option<Arc<LoadedComponent>> {
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner).get(digest, world)
    }

    fn compile(&self, digest: &str, bytes: &[u8]) -> Result<(Component, Origin), String> {
        let r = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, digest, bytes),
            None => Component::new(&self.engine, bytes).map(|c| (c, Origin::Compiled)),
        };
        r.map_err(|e| format!("not a valid WebAssembly component: {e:#}"))
    }

    /// Compiles `bytes` without the disk cache (for benchmarks and tools).
    pub fn compile_uncached(&self, bytes: &[u8]) -> anyhow::Result<Component> {
        Component::new(&self.engine, bytes).map_err(anyhow::Error::from)
    }

    /// Describes a file: digest, format, which world it fits and why not, and
    /// its imports and exports as WIT. Never fails on bad bytes: it says why.
    pub fn inspect(&self, bytes: &[u8]) -> Inspection {
        let digest = cache::digest(bytes);
        let format = if bytes.is_empty() {
            "empty"
        } else if wasmparser::Parser::is_component(bytes) {
            "component"
        } else if wasmparser::Parser::is_core_wasm(bytes) {
            "core_module"
        } else {
            "not_wasm"
        };
        let mut out = Inspection {
            digest: digest.clone(),
            size_bytes: bytes.len(),
            format,
            world: "neither",
            compute: WorldFit { fits: false, problems: vec![] },
            effect: WorldFit { fits: false, problems: vec![] },
            error: None,
            wit: None,
        };
        if let Err(e) = check_format(bytes, self.config.max_component_bytes) {
            out.error = Some(e.clone());
            out.compute.problems.push(e.clone());
            out.effect.problems.push(e);
            return out;
        }
        let (component, origin) = match self.compile(&digest, bytes) {
            Ok(c) => c,
            Err(e) => {
                out.error = Some(e.clone());
                out.compute.problems.push(e.clone());
                out.effect.problems.push(e);
                return out;
            }
        };
        for (world, fit) in [(StepWorld::Compute, &mut out.compute), (StepWorld::Effect, &mut out.effect)] {
            let mut problems = world::misfits(&self.engine, &component, world);
            if problems.is_empty()
                && self.lookup(&digest, world).is_none()
                && let Err(e) = self.link(&component, digest.clone(), bytes.len(), world, origin)
            {
                problems.push(e.to_string());
            }
            fit.fits = problems.is_empty();
            fit.problems = problems;
        }
        out.world = match (out.compute.fits, out.effect.fits) {
            (true, _) => "compute",
            (false, true) => "effect",
            _ => "neither",
        };
        match world::component_wit(bytes) {
            Ok(w) => out.wit = Some(w),
            Err(e) => out.error = Some(format!("could not print the component's WIT: {e}")),
        }
        out
    }

    /// Runs one attempt of `call` on `component` under `limits`, in a fresh
    /// store. Guest behaviour never makes it panic or hang: every way the
    /// guest can fail is a [`StepFailure`]. Must be called inside a tokio
    /// runtime with timers enabled.
    pub async fn execute(&self, component: &LoadedComponent, call: &StepCall, limits: &Limits) -> AttemptReport {
        if matches!(call.kind, CallKind::Compensate { .. }) && component.world != StepWorld::Effect {
            return AttemptReport {
                outcome: Err(StepFailure::ComponentInvalid {
                    reason: format!(
                        "`compensate` was called on a {} component; only effect-step components export it",
                        component.world
                    ),
                }),
                stats: AttemptStats::default(),
                logs: Vec::new(),
            };
        }
        let mut limits = limits.clone();
        limits.timeout = limits.timeout.min(MAX_TIMEOUT);
        limits.memory_bytes = limits.memory_bytes.min(self.config.max_memory_bytes);
        let limits = &limits;
        // Wait for an instance slot so that the pool is never exhausted.
        let _slot = self.slots.acquire().await.ok();
        let memory_limit = limits.memory_bytes;
        let stdout = CapturePipe::new(limits.max_log_bytes);
        let stderr = CapturePipe::new(limits.max_log_bytes);
        let wasi = wasi_context(component.world, &call.ctx, &stdout, &stderr);
        let tags =
            LogTags { run_id: call.ctx.run_id.clone(), step_id: call.ctx.step_id.clone(), attempt: call.ctx.attempt };
        let mut store = Store::new(&self.engine, StepState::new(wasi, memory_limit, limits.max_log_bytes, tags));
        store.limiter(|s| &mut s.limiter);
        // Bound what one guest-to-host transfer (a log line, or the call's
        // result) may make the host allocate.
        store.set_hostcall_fuel(hostcall_budget(limits));
        // Fuel is injected in slices: compiled code writes its fuel count back
        // to the store only at calls and at the end of each slice, so slicing
        // keeps `fuel_consumed` exact to within one slice even when the epoch
        // deadline interrupts a loop that makes no calls.
        let fuel_ok = store.set_fuel(limits.fuel).is_ok() && store.fuel_async_yield_interval(Some(FUEL_SLICE)).is_ok();
        debug_assert!(fuel_ok, "fuel is enabled in the engine config");

        let ctx = bindings::StepContext {
            run_id: call.ctx.run_id.clone(),
            workflow: call.ctx.workflow.clone(),
            step_id: call.ctx.step_id.clone(),
            attempt: call.ctx.attempt,
            idempotency_key: call.ctx.idempotency_key.clone(),
            correlation_id: call.ctx.correlation_id.clone(),
            tenant: call.ctx.tenant.clone(),
        };
        let input = Value::Object(call.input.clone()).to_string();
        let compensate_output = match &call.kind {
            CallKind::Compensate { output } => Some(output.to_string()),
            CallKind::Run => None,
        };

        let start = Instant::now();
        let deadline = start + limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let ticking = self.ticker.enter();
        let call_future = async {
            match &component.pre {
                Pre::Compute(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let r = instance.weft_step_compute().call_run(&mut store, &ctx, &input).await?;
                    Ok::<_, wasmtime::Error>(RawCall::Run(r))
                }
                Pre::Effect(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let effect = instance.weft_step_effect();
                    match &compensate_output {
                        None => Ok(RawCall::Run(effect.call_run(&mut store, &ctx, &input).await?)),
                        Some(out) => {
                            Ok(RawCall::Compensate(effect.call_compensate(&mut store, &ctx, &input, out).await?))
                        }
                    }
                }
            }
        };
        // The epoch callback traps at the deadline while wasm runs (and keeps
        // the fuel count exact); the async timeout, a little later, catches
        // time spent blocked in host calls.
        let result = tokio::time::timeout(limits.timeout + HOST_CALL_GRACE, call_future).await;
        drop(ticking);
        let wall = start.elapsed();

        let (stdout_text, stdout_dropped) = stdout.take();
        let (stderr_text, stderr_dropped) = stderr.take();
        let outcome = match result {
            Err(_elapsed) => Err(StepFailure::Timeout { limit_ms: millis(limits.timeout) }),
            Ok(Err(e)) => Err(classify(&e, &store, limits, &stderr_text)),
            Ok(Ok(RawCall::Run(Ok(out)))) => check_output(out, limits),
            Ok(Ok(RawCall::Run(Err(e)) | RawCall::Compensate(Err(e)))) => Err(plugin_error(e)),
            Ok(Ok(RawCall::Compensate(Ok(())))) => Ok(StepSuccess { output: Value::Null, actions: Vec::new() }),
        };
        let fuel_left = store.get_fuel().unwrap_or(0);
        let fuel_consumed = match outcome {
            Err(StepFailure::OutOfFuel { budget }) => budget,
            _ => limits.fuel.saturating_sub(fuel_left),
        };
        let data = store.data_mut();
        for (text, source, level) in
            [(stdout_text, LogSource::Stdout, LogLevel::Info), (stderr_text, LogSource::Stderr, LogLevel::Warn)]
        {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                data.log(level, source, line.to_string());
            }
        }
        for (dropped, name) in [(stdout_dropped, "stdout"), (stderr_dropped, "stderr")] {
            if dropped > 0 {
                data.log(
                    LogLevel::Warn,
                    LogSource::Host,
                    format!(
                        "{dropped} byte(s) of {name} dropped: the attempt's log budget is {} bytes",
                        limits.max_log_bytes
                    ),
                );
            }
        }
        let stats = AttemptStats {
            fuel_consumed,
            wall_time_us: u64::try_from(wall.as_micros()).unwrap_or(u64::MAX),
            peak_memory_bytes: data.limiter.peak,
        };
        let state = store.into_data();
        let report = AttemptReport { outcome, stats, logs: state.logs.finish() };
        tracing::debug!(
            run_id = %call.ctx.run_id,
            step_id = %call.ctx.step_id,
            attempt = call.ctx.attempt,
            outcome = report.failure().map_or("succeeded", StepFailure::kind),
            fuel = stats.fuel_consumed,
            wall_us = stats.wall_time_us,
            peak_memory = stats.peak_memory_bytes,
            "attempt finished"
        );
        report
    }
}

/// Longest wall-time limit accepted; longer ones are cut to this.
/// The longest wall-time limit an attempt may have (longer ones are lowered to it).
pub const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Bytes one guest-to-host transfer may carry: the output limit plus room for
/// the action records, never less than 64 KiB.
fn hostcall_budget(limits: &Limits) -> usize {
    limits.max_output_bytes.saturating_add(limits.max_actions.saturating_mul(64)).saturating_add(16 << 10).max(64 << 10)
}

/// Fuel injected at a time (about a millisecond of guest work); see `execute`.
const FUEL_SLICE: u64 = 10_000_000;

/// How long past the deadline the async timeout waits for the epoch trap.
const HOST_CALL_GRACE: std::time::Duration = std::time::Duration::from_millis(25);

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn misfit_message(world: StepWorld, problems: &[String]) -> String {
    let mut s = format!("the component does not fit the {world} world ({}):", world.wit_name());
    for p in problems {
        s.push_str("\n  - ");
        s.push_str(p);
    }
    s
}

/// Reads a component file: a regular file of at most `max` bytes.
fn read_component(path: &Path, max: usize) -> Result<Vec<u8>, LoadError> {
    use crate::files::ReadError;
    crate::files::read_capped(path, max).map_err(|e| match e {
        ReadError::Io(source) => LoadError::Io { path: path.display().to_string(), source },
        ReadError::TooLarge { size, max } => LoadError::Invalid(format!(
            "{} is {size} bytes; components larger than {max} bytes are refused",
            path.display()
        )),
        e @ ReadError::NotAFile(_) => {
            LoadError::Invalid(format!("{}: {e}; a component is a .wasm file built for wasm32-wasip2", path.display()))
        }
    })
}

/// Cheap checks with clear messages before handing bytes to the compiler.
fn check_format(bytes: &[u8], max: usize) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("the file is empty (0 bytes): expected a WebAssembly component built for wasm32-wasip2".into());
    }
    if bytes.len() > max {
        return Err(format!("the component is {} bytes; components larger than {max} bytes are refused", bytes.len()));
    }
    if !bytes.starts_with(b"\0asm") {
        let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(format!(
            "not a WebAssembly binary: it starts with bytes {} instead of the `\\0asm` magic",
            head.join(" ")
        ));
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err("this is a core WebAssembly module, not a component: build the plugin for wasm32-wasip2 \
                    (or wrap the module with `wasm-tools component new`)"
            .into());
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err("unknown WebAssembly binary version: expected a component (layer 1)".into());
    }
    Ok(())
}

/// The WASI context of one attempt: no preopens, no environment, no
/// arguments, no network; stdout and stderr captured. Compute steps also get
/// frozen clocks and a random source seeded from the idempotency key.
fn wasi_context(
    world: StepWorld,
    ctx: &StepContext,
    stdout: &CapturePipe,
    stderr: &CapturePipe,
) -> wasmtime_wasi::WasiCtx {
    let mut b = WasiCtxBuilder::new();
    b.stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .max_random_size(1 << 20);
    if world == StepWorld::Compute {
        let seed = |domain: &str| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(domain.as_bytes());
            h.update([0]);
            h.update(ctx.idempotency_key.as_bytes());
            h.finalize().into()
        };
        let insecure = seed("weft/compute/insecure-seed");
        let mut low = [0u8; 16];
        low.copy_from_slice(&insecure[..16]);
        b.secure_random(rand::rngs::StdRng::from_seed(seed("weft/compute/random")))
            .insecure_random(rand::rngs::StdRng::from_seed(seed("weft/compute/insecure")))
            .insecure_random_seed(u128::from_le_bytes(low))
            .wall_clock(FrozenWallClock)
            .monotonic_clock(FrozenMonotonicClock);
    }
    b.build()
}

/// Maps a wasmtime error from instantiate or call to its failure kind.
fn classify(e: &wasmtime::Error, store: &Store<StepState>, limits: &Limits, stderr: &str) -> StepFailure {
    if e.downcast_ref::<DeadlineExceeded>().is_some() {
        return StepFailure::Timeout { limit_ms: millis(limits.timeout) };
    }
    if let Some(m) = e.downcast_ref::<MemoryLimitExceeded>() {
        return StepFailure::MemoryLimit { limit_bytes: m.limit, requested_bytes: m.requested };
    }
    if let Some(requested) = store.data().limiter.refused {
        return StepFailure::MemoryLimit { limit_bytes: limits.memory_bytes, requested_bytes: requested };
    }
    // wasmtime's error for a transfer over the hostcall budget is private; its
    // message is the only way to recognise it.
    if format!("{e:#}").contains("fuel allocated for hostcalls has been exhausted") {
        return StepFailure::InvalidOutput {
            reason: format!(
                "the step tried to pass more than {} bytes to the host in one call (its output or a log line); \
                 the output limit is {} bytes (raise max_output_bytes, or return a reference to the data instead \
                 of the data)",
                hostcall_budget(limits),
                limits.max_output_bytes
            ),
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => StepFailure::OutOfFuel { budget: limits.fuel },
        Some(Trap::Interrupt) => StepFailure::Timeout { limit_ms: millis(limits.timeout) },
        Some(Trap::StackOverflow) => StepFailure::Trap {
            message: format!("{}: the guest recursed deeper than the wasm stack allows", Trap::StackOverflow),
            stack_overflow: true,
        },
        Some(trap) => {
            let mut message = trap.to_string();
            if let Some(panic) = panic_message(stderr) {
                message = format!("guest panicked: {panic} ({message})");
            }
            StepFailure::Trap { message, stack_overflow: false }
        }
        None => StepFailure::Trap { message: format!("{e:#}"), stack_overflow: false },
    }
}

/// The panic message a Rust guest printed to stderr, if any.
fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines().skip_while(|l| !l.contains("panicked at"));
    let location = lines.next()?;
    let location = location.split("panicked at").nth(1).unwrap_or("").trim().trim_end_matches(':');
    let text: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).collect();
    let text = text.join(" ");
    Some(if location.is_empty() { text } else { format!("{} at {location}", text.trim()) })
}

fn plugin_error(e: bindings::StepError) -> StepFailure {
    let (error_kind, mut message) = match e {
        bindings::StepError::Retryable(m) => (PluginErrorKind::Retryable, m),
        bindings::StepError::Fatal(m) => (PluginErrorKind::Fatal, m),
        bindings::StepError::InvalidInput(m) => (PluginErrorKind::InvalidInput, m),
    };
    state::truncate_marked(&mut message, MAX_LOG_LINE, " [truncated]");
    StepFailure::PluginError { error_kind, message }
}

/// Checks a successful call's output against the contract and the limits.
fn check_output(out: bindings::StepOutput, limits: &Limits) -> Result<StepSuccess, StepFailure> {
    let invalid = |reason: String| StepFailure::InvalidOutput { reason };
    let total = out.output.len() + out.actions.iter().map(|a| a.payload.len() + a.target.len()).sum::<usize>();
    if total > limits.max_output_bytes {
        return Err(invalid(format!(
            "the output is {total} bytes; the limit is {} bytes (raise max_output_bytes, or return a reference \
             to the data instead of the data)",
            limits.max_output_bytes
        )));
    }
    if out.actions.len() > limits.max_actions {
        return Err(invalid(format!(
            "the step emitted {} actions; at most {} are allowed per attempt",
            out.actions.len(),
            limits.max_actions
        )));
    }
    let output: Value = serde_json::from_str(&out.output).map_err(|e| {
        invalid(format!("the output is not valid JSON: {e} (output starts with {:?})", preview(&out.output)))
    })?;
    let mut actions = Vec::with_capacity(out.actions.len());
    for (i, a) in out.actions.into_iter().enumerate() {
        if a.target.trim().is_empty() {
            return Err(invalid(format!("action {i} has an empty target node")));
        }
        let payload: Value = serde_json::from_str(&a.payload).map_err(|e| {
            invalid(format!("action {i} (to `{}`) has a payload that is not valid JSON: {e}", a.target))
        })?;
        if !payload.is_object() {
            return Err(invalid(format!("action {i} (to `{}`) has a payload that is not a JSON object", a.target)));
        }
        actions.push(EmittedAction {
            action_type: match a.kind {
                bindings::ActionKind::Compute => ActionKind::Compute,
                bindings::ActionKind::Effect => ActionKind::Effect,
                bindings::ActionKind::Reduce => ActionKind::Reduce,
                bindings::ActionKind::Orchestrate => ActionKind::Orchestrate,
                bindings::ActionKind::Custom => ActionKind::Custom,
            },
            target_node: a.target,
            payload,
        });
    }
    Ok(StepSuccess { output, actions })
}

fn preview(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
