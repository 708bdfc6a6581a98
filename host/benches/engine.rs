//! Engine benchmarks: validating and scheduling large DAGs, a 1,000-step chain
//! of real sandboxed steps against the raw wasmtime floor, and a 1,000-step
//! fan-out on both cores against the chain.
//!
//! Run with `scripts/bench` (builds the plugins first).

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{ctx, raw_attempts, raw_pre};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine as WasmEngine, InstanceAllocationStrategy, PoolingAllocationConfig};
use weft::engine::{AttemptFuture, Engine, ExecutionStatus, RunInput, RunOptions, SandboxExecutor, StepExecutor};
use weft::sandbox::{AttemptReport, Limits, Sandbox, SandboxConfig, StepCall, StepSuccess};
use weft::store::{MemoryStore, SqliteStore, SyncMode};
use weft::workflow::{NodeSpec, Workflow, load_str};

fn dist() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist");
    assert!(d.join("echo.wasm").is_file(), "run scripts/build-plugins first");
    d
}

/// A layered DAG: node i depends on i-1 and, every third node, on i-7.
fn dag_yaml(n: usize, mode: &str) -> String {
    layered(n, mode, false)
}

/// The layered DAG with a CEL input mapping on every node but the first (two
/// keys: the previous step's output and the run context).
fn mapped_dag_yaml(n: usize) -> String {
    layered(n, "sequential", true)
}

fn layered(n: usize, mode: &str, mapped: bool) -> String {
    let mut s = format!(
        "kind: WorkflowDefinition\nworkflow_metadata: {{workflow_name: bench, execution_mode: {mode}}}\nexecution_graph:\n  nodes:\n"
    );
    for i in 0..n {
        let deps = match i {
            0 => String::new(),
            _ if i % 3 == 0 && i >= 7 => format!(", depends_on: [n{}, n{}]", i - 1, i - 7),
            _ => format!(", depends_on: [n{}]", i - 1),
        };
        let input = match i {
            _ if !mapped || i == 0 => String::new(),
            _ => format!(", input: {{prev: 'steps.n{}.ok', k: 'context.k'}}", i - 1),
        };
        s.push_str(&format!("    - {{node_id: n{i}, node_type: compute, component: echo{deps}{input}}}\n"));
    }
    s
}

/// A chain of `n` nodes.
fn chain_yaml(n: usize) -> String {
    let mut s = String::from(
        "kind: WorkflowDefinition\nworkflow_metadata: {workflow_name: chain, execution_mode: sequential}\nexecution_graph:\n  nodes:\n",
    );
    for i in 0..n {
        let deps = if i == 0 { String::new() } else { format!(", depends_on: [n{}]", i - 1) };
        s.push_str(&format!("    - {{node_id: n{i}, node_type: compute, component: echo{deps}}}\n"));
    }
    s
}

/// `n` independent nodes.
fn fan_yaml(n: usize) -> String {
    let mut s = String::from(
        "kind: WorkflowDefinition\nworkflow_metadata: {workflow_name: fan, execution_mode: parallel}\nexecution_graph:\n  nodes:\n",
    );
    for i in 0..n {
        s.push_str(&format!("    - {{node_id: n{i}, node_type: compute, component: echo}}\n"));
    }
    s
}

/// Succeeds at once: measures the engine's own bookkeeping.
struct Noop;
impl StepExecutor for Noop {
    fn prepare(&self, _wf: &Workflow) -> Result<(), Vec<String>> {
        Ok(())
    }
    fn execute(
        &self,
        _node: &NodeSpec,
        _pinned: Option<&str>,
        _call: StepCall,
        _limits: Limits,
        _granted: std::sync::Arc<weft::sandbox::Grants>,
    ) -> AttemptFuture {
        Box::pin(async {
            AttemptReport {
                outcome: Ok(StepSuccess { output: json!({"ok": true}), actions: vec![] }),
                stats: Default::default(),
                logs: vec![],
            }
        })
    }
}

fn load(yaml: &str) -> Arc<Workflow> {
    Arc::new(load_str(yaml, &dist(), "bench.yaml", None).unwrap())
}

fn validate_and_schedule(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut g = c.benchmark_group("dag");
    g.sample_size(10);
    for n in [1_000usize, 10_000, 100_000] {
        let text = dag_yaml(n, "sequential");
        g.bench_with_input(BenchmarkId::new("validate (parse YAML + check + order)", n), &text, |b, t| {
            b.iter(|| load_str(t, &dist(), "bench.yaml", None).unwrap())
        });
        let wf = load(&text);
        // Journaled in memory; finished runs are not kept (as on SQLite, nothing accumulates in RAM).
        let engine = Engine::new(Arc::new(Noop)).with_store(Arc::new(MemoryStore::with_retention(0)));
        g.bench_with_input(BenchmarkId::new("schedule (run with a no-op executor)", n), &wf, |b, wf| {
            b.to_async(&rt).iter(|| async {
                let input = RunInput { global_timeout_ms: Some(3_600_000), ..RunInput::default() };
                let out = engine.run(wf.clone(), &input, RunOptions::default()).await.unwrap();
                assert_eq!(out.execution_status, ExecutionStatus::Completed);
            })
        });
        let mapped = load(&mapped_dag_yaml(n));
        g.bench_with_input(
            BenchmarkId::new("run with a no-op executor, a CEL input mapping on every node", n),
            &mapped,
            |b, wf| {
                b.to_async(&rt).iter(|| async {
                    let mut input = RunInput { global_timeout_ms: Some(3_600_000), ..RunInput::default() };
                    input.context.insert("k".into(), json!(1));
                    let out = engine.run(wf.clone(), &input, RunOptions::default()).await.unwrap();
                    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
                })
            },
        );
    }
    g.finish();
}

fn tuned_raw_engine() -> WasmEngine {
    let mut p = PoolingAllocationConfig::new();
    // As Weft's own pool: tables reset in place, not dropped with madvise
    // (which costs a TLB shootdown on the other core per attempt).
    p.table_keep_resident(16 << 10);
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        p.pagemap_scan(Enabled::Yes).linear_memory_keep_resident(2 << 20);
    }
    let mut c = Config::new();
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    WasmEngine::new(&c).unwrap()
}

fn chain_and_fan_out(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut g = c.benchmark_group("1000 trivial steps");
    g.sample_size(10).measurement_time(Duration::from_secs(8));

    // The floor: 1,000 raw instantiate + call of the same component, one after another.
    let engine = tuned_raw_engine();
    let pre = raw_pre(&engine, &dist().join("echo.wasm"));
    let ctx = ctx();
    let input = String::from("{\"ok\":true}");
    g.bench_function("floor: 1000 x raw instantiate + call (tuned pool)", |b| {
        b.to_async(&rt).iter(|| raw_attempts(&engine, &pre, &ctx, &input, 1000))
    });

    // What the hardware gives: the same 1,000 raw attempts split over two OS
    // threads, each with its own single-threaded runtime, no coordination.
    g.bench_function("floor: 2 threads x 500 raw instantiate + call (hardware parallelism)", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    scope.spawn(|| {
                        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                        rt.block_on(raw_attempts(&engine, &pre, &ctx, &input, 500))
                    });
                }
            })
        })
    });

    // The same, but each thread with its own engine and pool: shows whether the
    // shared pool or the machine is what limits the second core.
    let per_thread: Vec<_> = (0..2)
        .map(|_| {
            let engine = tuned_raw_engine();
            let pre = raw_pre(&engine, &dist().join("echo.wasm"));
            (engine, pre)
        })
        .collect();
    g.bench_function("floor: 2 threads x 500 raw instantiate + call, one engine per thread", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for (engine, pre) in &per_thread {
                    let (ctx, input) = (&ctx, &input);
                    scope.spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                        rt.block_on(raw_attempts(engine, pre, ctx, input, 500))
                    });
                }
            })
        })
    });

    let sandbox = Arc::new(Sandbox::new(SandboxConfig { cache_dir: None, ..SandboxConfig::default() }).unwrap());
    let executor = Arc::new(SandboxExecutor::new(sandbox));
    let weft = Engine::new(executor.clone()).with_store(Arc::new(MemoryStore::with_retention(0)));
    // A plain chain: each echo passes its input on, so outputs stay the same size.
    let chain = load(&chain_yaml(1000));
    g.bench_function("weft: 1000-step chain (sequential, sandboxed)", |b| {
        b.to_async(&rt).iter(|| async {
            let out = weft.run(chain.clone(), &RunInput::default(), RunOptions::default()).await.unwrap();
            assert_eq!(out.execution_status, ExecutionStatus::Completed);
        })
    });
    // The same chain, durable: every transition journaled to SQLite (WAL)
    // before it is acted on, one commit per step.
    let dir = tempfile::tempdir().unwrap();
    for (label, sync) in [("NORMAL", SyncMode::Normal), ("FULL", SyncMode::Full)] {
        let store = Arc::new(SqliteStore::open(&dir.path().join(format!("{label}.db")), sync).unwrap());
        let durable = Engine::new(executor.clone()).with_store(store);
        g.bench_function(format!("weft: 1000-step chain, durable (SQLite WAL, synchronous={label})"), |b| {
            b.to_async(&rt).iter(|| async {
                let out = durable.run(chain.clone(), &RunInput::default(), RunOptions::default()).await.unwrap();
                assert_eq!(out.execution_status, ExecutionStatus::Completed);
            })
        });
    }
    // Ten times longer: the per-step commit must not grow with the run.
    let long = load(&chain_yaml(10_000));
    let store = Arc::new(SqliteStore::open(&dir.path().join("long.db"), SyncMode::Normal).unwrap());
    let durable = Engine::new(executor.clone()).with_store(store);
    g.bench_function("weft: 10000-step chain, durable (SQLite WAL, synchronous=NORMAL)", |b| {
        b.to_async(&rt).iter(|| async {
            let out = durable.run(long.clone(), &RunInput::default(), RunOptions::default()).await.unwrap();
            assert_eq!(out.execution_status, ExecutionStatus::Completed);
        })
    });
    let fan = load(&fan_yaml(1000));
    for width in [4u32, 16, 100] {
        g.bench_function(format!("weft: 1000-step fan-out (parallel, 2 cores, max_parallel_steps {width})"), |b| {
            b.to_async(&rt).iter(|| async {
                let input = RunInput { max_parallel_steps: Some(width), ..RunInput::default() };
                let out = weft.run(fan.clone(), &input, RunOptions::default()).await.unwrap();
                assert_eq!(out.execution_status, ExecutionStatus::Completed);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, validate_and_schedule, chain_and_fan_out);
criterion_main!(benches);
