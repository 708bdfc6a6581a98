//! The phases of a capability (see the module above).

use super::super::StepWorld;
use super::super::call::StepContext;
use super::super::state::StepState;
use super::Grants;
use super::denials::Denials;
use super::http::HttpGate;
use super::kv::KvSession;
use super::stream::StreamSession;
use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;

/// What one attempt's capabilities configure: its WASI context, its HTTP
/// gate and its key-value session, for a step of `world` called as `ctx`.
pub struct AttemptWasi<'a> {
    /// The world the step runs in.
    pub world: StepWorld,
    /// Who is calling.
    pub ctx: &'a StepContext,
    /// The attempt's WASI context, still being built.
    pub builder: WasiCtxBuilder,
    /// The secret values the attempt was given, by name (to redact).
    pub secrets: Vec<(String, String)>,
    /// The outbound HTTP gate (closed unless `http` is granted).
    pub http: HttpGate,
    /// The key-value session (closed unless `kv` is granted).
    pub kv: KvSession,
    /// Where emitted items go.
    pub stream: StreamSession,
    /// Where refusals are recorded.
    pub denials: Denials,
}

/// One piece of what a step may be given. Each phase sees only plain data,
/// so a capability is tested without wasm.
pub trait Capability: Send + Sync + 'static {
    /// Its name, for messages.
    fn name(&self) -> &'static str;

    /// Once per sandbox: adds its host functions to the linker.
    fn link(&self, _linker: &mut Linker<StepState>) -> anyhow::Result<()> {
        Ok(())
    }

    /// Per attempt: configures the attempt from the node's `grants`.
    fn prepare(&self, attempt: &mut AttemptWasi<'_>, grants: &Grants) -> Result<(), String>;
}
