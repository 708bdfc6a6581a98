//! Weft: workflows whose steps are sandboxed WebAssembly components.
//!
//! This crate is both the `weft` command-line tool and the library that
//! embedders call. Data flows one way, and so do imports:
//!
//! - [`workflow`] turns YAML into a validated [`workflow::Workflow`];
//! - [`engine`] runs it: [`engine::Engine`] records each run in a
//!   [`store::RunStore`] and asks a [`engine::StepExecutor`] for one attempt
//!   of one step at a time;
//! - [`sandbox`] is the production executor's wasmtime host: it loads a step
//!   component, checks it against the `weft:step` contract, and runs one
//!   attempt under hard limits on fuel, wall time and memory;
//! - [`store`] keeps every run's journal (in memory or in SQLite);
//! - [`contract`] holds the types all of them pass around, and imports none;
//! - [`files`] reads the files users name, capped and only if regular.
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

pub mod authoring;
pub mod capability;
pub mod contract;
pub mod engine;
pub mod files;
pub mod sandbox;
pub mod service;
pub mod store;
pub mod workflow;
