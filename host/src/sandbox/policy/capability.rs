//! The three phases of a capability (see the module above).

use super::super::StepWorld;
use super::super::call::StepContext;
use super::super::state::StepState;
use serde_json::Value;
use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;

/// What one attempt's capabilities configure: its WASI context, for a step
/// of `world` called as `ctx`.
pub struct AttemptWasi<'a> {
    /// The world the step runs in.
    pub world: StepWorld,
    /// Who is calling.
    pub ctx: &'a StepContext,
    /// The attempt's WASI context, still being built.
    pub builder: WasiCtxBuilder,
}

/// One piece of what a step may be given. Each phase sees only plain data,
/// so a capability is tested without wasm.
pub trait Capability: Send + Sync + 'static {
    /// Its name: the section of a node's grants it reads.
    fn name(&self) -> &'static str;

    /// Whether a node can be granted it (false for pieces every step of a
    /// world gets, such as the compute world's determinism).
    fn grantable(&self) -> bool {
        true
    }

    /// Phase 1, once per sandbox: adds its host functions to the linker.
    fn link(&self, _linker: &mut Linker<StepState>) -> anyhow::Result<()> {
        Ok(())
    }

    /// Phase 2, at load time: `Err` says why `grant` (its section of a
    /// node's grants, if the node has one) cannot be given to a `world` step.
    fn check(&self, world: StepWorld, grant: Option<&Value>) -> Result<(), String>;

    /// Phase 3, per attempt: configures the attempt from `grant`.
    fn prepare(&self, attempt: &mut AttemptWasi<'_>, grant: Option<&Value>) -> Result<(), String>;
}
