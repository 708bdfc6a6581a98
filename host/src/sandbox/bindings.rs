//! Host bindings for the `weft:step` worlds, generated from `wit/`.

#![allow(missing_docs, clippy::all)]

use super::state::StepState;
use crate::contract::{LogLevel, LogSource};

/// Bindings of the `compute-step` world (and the shared `types`, `log` and
/// `stream`; `stream.emit` is async: it waits while the buffer is full).
pub mod compute {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "compute-step",
        imports: { "weft:step/stream.emit": async },
        exports: { default: async },
    });
}

/// Bindings of the `effect-step` world (its `kv` import is async: the run
/// store answers it).
pub mod effect {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "effect-step",
        imports: { default: async },
        exports: { default: async },
        with: {
            "weft:step/types": super::compute::weft::step::types,
            "weft:step/log": super::compute::weft::step::log,
            "weft:step/stream": super::compute::weft::step::stream,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

pub use compute::weft::step::types::{ActionKind, StepContext, StepError, StepOutput};

impl compute::weft::step::log::Host for StepState {
    fn log(&mut self, level: compute::weft::step::log::Level, message: String) {
        use compute::weft::step::log::Level;
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        StepState::log(self, level, LogSource::Log, message);
    }
}

impl compute::weft::step::types::Host for StepState {}
