//! The wasmtime engine: one per sandbox, with fuel, epoch interruption and
//! the pooling allocator sized so that no tenant can exhaust it.

use super::SandboxConfig;
use super::state::{MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_TABLE_ELEMENTS, MAX_TABLES};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How instances get their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// Pre-reserved slots, reused with copy-on-write images.
    Pooling,
    /// mmap per instance; used when the pool could not be reserved.
    OnDemand,
}

/// Builds the engine configuration shared by every component.
fn base_config(cfg: &SandboxConfig) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(cfg.max_wasm_stack)
        // Room for host calls (WASI) on top of the guest's own stack.
        .async_stack_size(cfg.max_wasm_stack + (3 << 19))
        .parallel_compilation(true);
    c
}

fn pooling_config(cfg: &SandboxConfig) -> PoolingAllocationConfig {
    let n = cfg.max_instances.clamp(1, 10_000);
    let per = |x: usize| n.saturating_mul(x as u32);
    let mut p = PoolingAllocationConfig::new();
    // Per-component caps (a component over them fails to load) sized so that
    // `max_instances` components can never exhaust the pool's totals: one
    // tenant cannot starve the others of slots.
    p.total_component_instances(n)
        .max_core_instances_per_component(MAX_CORE_INSTANCES as u32)
        .max_memories_per_component(MAX_MEMORIES as u32)
        .max_tables_per_component(MAX_TABLES as u32)
        .total_core_instances(per(MAX_CORE_INSTANCES))
        .total_memories(per(MAX_MEMORIES))
        .total_tables(per(MAX_TABLES))
        .table_elements(MAX_TABLE_ELEMENTS)
        .total_stacks(n)
        .max_memory_size(usize::try_from(cfg.max_memory_bytes).unwrap_or(usize::MAX))
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .table_keep_resident(16 << 10);
    // A reused slot's pages stay mapped and are reset in place instead of being
    // dropped and faulted in again by the next attempt (most of a fresh
    // attempt's cost; see BENCHMARKS.md). With PAGEMAP_SCAN (Linux 6.7+) only
    // the pages the guest dirtied are reset, so a large resident window is
    // cheap; without it, every resident byte is memset, so keep it small.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        p.pagemap_scan(Enabled::Yes).linear_memory_keep_resident(2 << 20);
    } else {
        p.linear_memory_keep_resident(64 << 10);
    }
    p
}

/// Creates the engine, preferring the pooling allocator. Returns the allocator
/// actually used; the fallback is logged with the reason.
pub fn build_engine(cfg: &SandboxConfig) -> wasmtime::Result<(Engine, Allocator)> {
    if cfg.pooling {
        let mut c = base_config(cfg);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(cfg)));
        match Engine::new(&c) {
            Ok(engine) => return Ok((engine, Allocator::Pooling)),
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                max_instances = cfg.max_instances,
                "could not reserve the pooling allocator's address space; falling back to on-demand \
                 allocation (slower instantiation). Lower max_instances or max_memory_bytes, or raise \
                 the process's address-space limit (ulimit -v), to get pooling back"
            ),
        }
    }
    let mut c = base_config(cfg);
    c.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    Ok((Engine::new(&c)?, Allocator::OnDemand))
}
