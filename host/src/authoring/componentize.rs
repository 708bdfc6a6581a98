//! Turns a core WebAssembly module built for WASI preview 1 (what C's
//! `wasm32-wasi` and Go's `GOOS=wasip1` produce) into a step component:
//! embeds the step's world into the module, then wraps it with the
//! preview-1 adapter that wasmtime ships
//! (`wasi-preview1-component-adapter-provider`, so nothing is downloaded or
//! compiled). This is what `wasm-tools component embed` plus
//! `wasm-tools component new --adapt` do, done in-process so an author needs
//! neither `wasm-tools` nor a separate adapter file.

use super::go_adapter_arena::add_adapter_allocator;
use super::wit_package::World;
use anyhow::Context as _;
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_component::{ComponentEncoder, StringEncoding, embed_component_metadata};

/// Where the preview-1 adapter takes its memory from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterMemory {
    /// The module's own `cabi_realloc` (C: wasi-libc's `malloc`).
    ModuleRealloc,
    /// The arena the Go glue reserves (see `go_adapter_arena`): Go's
    /// `cabi_realloc` cannot run before its runtime starts.
    GoArena,
}

/// The component for the core `module`, which implements `world` with the
/// canonical ABI and imports WASI preview 1.
pub fn componentize(module: &[u8], world: &World, memory: AdapterMemory) -> anyhow::Result<Vec<u8>> {
    let mut module = match memory {
        AdapterMemory::ModuleRealloc => module.to_vec(),
        AdapterMemory::GoArena => add_adapter_allocator(module)?.ok_or_else(|| {
            anyhow::anyhow!(
                "the Go module reserves no memory for the WASI adapter: keep weft/abi.go as `weft plugin new` \
                 writes it (its `adapterArena`, which starts with {:?}, must be there and read)",
                String::from_utf8_lossy(super::go_adapter_arena::ARENA_MARKER)
            )
        })?,
    };
    embed_component_metadata(&mut module, &world.resolve, world.id, StringEncoding::UTF8)
        .context("cannot embed the world into the module")?;
    ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .context("the module is not a core module that fits the world")?
        .adapter(WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)
        .context("cannot add the WASI preview 1 adapter")?
        .encode()
        .with_context(|| format!("the module does not implement the `{}` world", world.name))
}
