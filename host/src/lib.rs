//! Weft: workflows whose steps are sandboxed WebAssembly components.
//!
//! This crate is both the `weft` command-line tool and the library that
//! embedders call. The [`sandbox`] module loads a step component, checks it
//! against the `weft:step` contract, and runs one attempt of it under hard
//! limits on fuel, wall time and memory, returning a typed outcome.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use weft::sandbox::{Limits, Sandbox, SandboxConfig, StepCall, StepWorld};
//!
//! let sandbox = Sandbox::new(SandboxConfig::default())?;
//! let component = sandbox.load_file("plugins/dist/price_cart.wasm".as_ref(), Some(StepWorld::Compute))?;
//! let input = serde_json::json!({"items": []});
//! let call = StepCall::run(input.as_object().cloned().unwrap_or_default());
//! let report = sandbox.execute(&component, &call, &Limits::default()).await;
//! println!("{}", serde_json::to_string_pretty(&report)?);
//! # Ok(()) }
//! ```

pub mod contract;
pub mod engine;
pub mod files;
pub mod sandbox;
pub mod store;
pub mod workflow;
