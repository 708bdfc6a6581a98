//! Pieces shared by the benchmarks: raw wasmtime bindings for the floor.

#![allow(dead_code)]

use wasmtime::component::ResourceTable;
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
