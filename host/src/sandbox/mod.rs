//! The sandbox: load a step component and run one attempt of it under hard
//! limits on fuel, wall time and memory. It knows nothing of workflows.
//!
//! One [`Sandbox`] per host holds the wasmtime engine (async, fuel, epoch
//! interruption driven by one ticker thread, pooling allocator), an on-disk
//! cache of compiled components, and one pre-linked `InstancePre` per
//! component digest and world. [`Sandbox::execute`] gives every attempt a
//! fresh store with its own fuel budget, deadline, memory cap and WASI
//! context, and returns an [`AttemptReport`] whose outcome is a typed success
//! or [`StepFailure`].
//!
//! The tour, in the order an attempt meets the pieces:
//! - `load`: read, check, compile (or map from `cache`), check against the
//!   world (`world`), pre-link; `loaded` keeps the results by digest;
//! - `inspect`: the same checks, reported instead of refused;
//! - `attempt`: one call in a fresh store (`state` holds its limiter and
//!   log capture, `ticker` its deadline);
//! - `policy`: what the attempt's WASI imports grant, per world and per
//!   capability: the place new capabilities plug in;
//! - `classify`: every way the call can fail, as its [`StepFailure`].

mod attempt;
mod bindings;
mod cache;
mod call;
mod classify;
mod inspect;
mod limits;
mod load;
mod loaded;
mod policy;
mod state;
mod ticker;
mod wasm_engine;
mod wit_compare;
mod world;

pub use crate::contract::{
    ActionKind, AttemptReport, AttemptStats, EmittedAction, FailureKind, LogLevel, LogLine, LogSource, PluginErrorKind,
    StepFailure, StepSuccess,
};
pub use attempt::MAX_TIMEOUT;
pub use cache::{ComponentCache, Origin, digest};
pub use call::{CallKind, StepCall, StepContext};
pub use inspect::{Inspection, WorldFit};
pub use limits::{Limits, SandboxConfig, default_cache_dir};
pub use load::{LoadError, LoadedComponent};
pub use policy::{
    AttemptWasi, Capability, Denials, Determinism, Grants, HttpGate, KvBinding, KvSession, MAX_KV_CALLS,
    MAX_LISTED_KEYS, PreparedWasi, WasiPolicy,
};
pub use state::MAX_LOG_LINE;
pub use wasm_engine::Allocator;
pub use world::StepWorld;

use loaded::Loaded;
use state::StepState;
use std::sync::Mutex;
use ticker::Ticker;
use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::Linker;

/// Host-wide sandbox: engine, linker, WASI policy, compiled-component
/// cache, pre-linked components, instance slots and the epoch ticker.
pub struct Sandbox {
    engine: Engine,
    allocator: Allocator,
    linker: Linker<StepState>,
    cache: Option<ComponentCache>,
    loaded: Mutex<Loaded>,
    policy: WasiPolicy,
    slots: Semaphore,
    ticker: Ticker,
    config: SandboxConfig,
}

impl Sandbox {
    /// Creates the engine, the linker with WASI 0.2 and `weft:step/log`, and
    /// starts the epoch ticker.
    pub fn new(config: SandboxConfig) -> anyhow::Result<Self> {
        let (engine, allocator) = wasm_engine::build_engine(&config).map_err(anyhow::Error::from)?;
        let policy = WasiPolicy::standard();
        let mut linker: Linker<StepState> = Linker::new(&engine);
        policy.link(&mut linker)?;
        let cache = config.cache_dir.clone().map(|d| ComponentCache::new(d, &engine));
        let ticker = Ticker::start(engine.clone(), config.epoch_tick)?;
        Ok(Self {
            slots: Semaphore::new(config.max_instances.max(1) as usize),
            engine,
            allocator,
            linker,
            cache,
            loaded: Mutex::new(Loaded::default()),
            policy,
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

    /// Every reason `grants` cannot be given to `component` (empty when
    /// they can), checked before anything runs: a compute step is granted
    /// nothing, and an acting import needs its capability.
    pub fn check_grants(&self, component: &LoadedComponent, grants: &Grants) -> Vec<String> {
        self.policy.check(component.world, grants, &component.acts)
    }
}
