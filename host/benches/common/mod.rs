//! Pieces shared by the benchmarks: raw wasmtime bindings for the floor.

#![allow(dead_code)]

use std::path::Path;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bindings for the floor measurements (plain wasmtime, no Weft).
pub mod raw {
    wasmtime::component::bindgen!({ path: "../wit", world: "compute-step", exports: { default: async } });
}

/// The bare minimum store state a WASI component needs.
pub struct Bare {
    /// WASI context.
    pub wasi: WasiCtx,
    /// Resource table.
    pub table: ResourceTable,
}

impl Bare {
    /// A default WASI context and an empty table.
    pub fn new() -> Self {
        Self { wasi: WasiCtx::builder().build(), table: ResourceTable::new() }
    }
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl raw::weft::step::log::Host for Bare {
    fn log(&mut self, _level: raw::weft::step::log::Level, _message: String) {}
}

impl raw::weft::step::types::Host for Bare {}

/// A step context for raw calls.
pub fn ctx() -> raw::weft::step::types::StepContext {
    raw::weft::step::types::StepContext {
        run_id: "r".into(),
        workflow: "w".into(),
        step_id: "s".into(),
        attempt: 1,
        idempotency_key: "r/s".into(),
        correlation_id: "r".into(),
        tenant: String::new(),
    }
}

/// Compiles and pre-links a component with plain wasmtime (WASI + a no-op log).
pub fn raw_pre(engine: &Engine, path: &Path) -> raw::ComputeStepPre<Bare> {
    let component = Component::from_file(engine, path).unwrap();
    let mut linker: Linker<Bare> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    raw::weft::step::log::add_to_linker::<Bare, HasSelf<Bare>>(&mut linker, |s| s).unwrap();
    raw::ComputeStepPre::new(linker.instantiate_pre(&component).unwrap()).unwrap()
}

/// `n` raw attempts, one after another: fresh store, instantiate, call, drop.
pub async fn raw_attempts(
    engine: &Engine,
    pre: &raw::ComputeStepPre<Bare>,
    ctx: &raw::weft::step::types::StepContext,
    input: &String,
    n: usize,
) {
    for _ in 0..n {
        let mut store = Store::new(engine, Bare::new());
        let inst = pre.instantiate_async(&mut store).await.unwrap();
        inst.weft_step_compute().call_run(&mut store, ctx, input).await.unwrap().unwrap();
    }
}
