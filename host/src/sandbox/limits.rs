//! Per-attempt limits and host-wide sandbox configuration.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The hard limits of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Fuel budget: roughly one unit per wasm instruction executed.
    pub fuel: u64,
    /// Wall-time limit, counted from instantiation; host calls count too.
    pub timeout: Duration,
    /// Linear memory cap for the whole instance, in bytes.
    pub memory_bytes: u64,
    /// Largest output accepted (the JSON text plus all action payloads), in bytes.
    pub max_output_bytes: usize,
    /// Log budget: bytes of log lines (including stdout and stderr) kept per attempt.
    pub max_log_bytes: usize,
    /// Most actions one attempt may emit.
    pub max_actions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 10_000_000_000,
            timeout: Duration::from_secs(30),
            memory_bytes: 128 << 20,
            max_output_bytes: 1 << 20,
            max_log_bytes: 64 << 10,
            max_actions: 100,
        }
    }
}

/// Host-wide configuration of the [`Sandbox`](super::Sandbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling instance allocator (falls back to on-demand allocation
    /// with a warning when the address space cannot hold the pool).
    pub pooling: bool,
    /// Most instances alive at once; further attempts wait for a slot.
    pub max_instances: u32,
    /// The largest memory limit any attempt may ask for, in bytes (the size of
    /// a pool slot).
    pub max_memory_bytes: u64,
    /// Period of the epoch ticker that enforces wall time.
    pub epoch_tick: Duration,
    /// Largest component file accepted, in bytes.
    pub max_component_bytes: usize,
    /// Largest wasm stack, in bytes; deeper recursion traps as a stack overflow.
    pub max_wasm_stack: usize,
    /// Most pre-linked components kept in memory; the least recently used
    /// one is dropped beyond it (and loaded again, from the disk cache, when
    /// next used).
    pub max_loaded_components: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            cache_dir: default_cache_dir(),
            pooling: true,
            max_instances: 128,
            max_memory_bytes: 4 << 30,
            epoch_tick: Duration::from_millis(1),
            max_component_bytes: 64 << 20,
            max_wasm_stack: 512 << 10,
            max_loaded_components: 256,
        }
    }
}

/// `$WEFT_CACHE_DIR`, else the platform cache dir (`~/.cache/weft/components`).
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WEFT_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    dirs::cache_dir().map(|d| d.join("weft").join("components"))
}
