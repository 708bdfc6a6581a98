//! Benchmarks of issue 12's features, with real sandboxed steps:
//!
//! - `for_each` over 10,000 items in shards of 100 on both cores, against
//!   the same work as a 100-node parallel workflow;
//! - streaming 100,000 small items from a producer to a consumer (the
//!   emit-to-delivery latency is printed from the run's metrics);
//! - a memo hit against executing the step, on SQLite.
//!
//! The CEL budget's overhead is measured by the engine bench's
//! `dag/run with a no-op executor, a CEL input mapping on every node/10000`
//! against the commit before the budget (see BENCHMARKS.md).
//!
//! Run with `scripts/bench --bench modes`.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use weft::engine::{Engine, ExecutionStatus, RunInput, RunOptions, SandboxExecutor};
use weft::sandbox::{Sandbox, SandboxConfig};
use weft::store::{MemoryStore, RunStore, SqliteStore, SyncMode};
use weft::workflow::{Workflow, load_str};

fn dist() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist");
    assert!(d.join("emit_readings.wasm").is_file(), "run scripts/build-plugins first");
    d
}

fn load(yaml: &str) -> Arc<Workflow> {
    Arc::new(load_str(yaml, &dist(), "bench.yaml", None).unwrap_or_else(|e| panic!("{e}")))
}

fn header(name: &str, mode: &str) -> String {
    format!(
        "kind: WorkflowDefinition\nworkflow_metadata: {{workflow_name: {name}, execution_mode: {mode}}}\n\
         execution_graph:\n  nodes:\n"
    )
}

fn items(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"id": i, "v": i % 97})).collect()
}

fn input(context: Value, parallel: u32) -> RunInput {
    serde_json::from_value(json!({"context": context, "max_parallel_steps": parallel, "global_timeout_ms": 3_600_000}))
        .unwrap()
}

fn engine(store: Arc<dyn RunStore>) -> Engine {
    let sandbox = Arc::new(Sandbox::new(SandboxConfig { cache_dir: None, ..SandboxConfig::default() }).unwrap());
    Engine::new(Arc::new(SandboxExecutor::new(sandbox))).with_store(store)
}

fn fan_out(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let weft = engine(Arc::new(MemoryStore::with_retention(0)));
    let mut g = c.benchmark_group("10000 items");
    g.sample_size(10).measurement_time(Duration::from_secs(8)).throughput(Throughput::Elements(10_000));
    let list = items(10_000);
    let sharded = load(&format!(
        "{}    - {{node_id: f, node_type: compute, component: echo, for_each: context.items, batch_size: 100}}\n",
        header("fan", "parallel")
    ));
    g.bench_function("for_each in shards of 100 (echo, 2 at a time)", |b| {
        b.to_async(&rt).iter(|| async {
            let out =
                weft.run(sharded.clone(), &input(json!({"items": list}), 2), RunOptions::default()).await.unwrap();
            assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
        })
    });
    // The same work as 100 nodes of a parallel workflow, each mapping its 100 items.
    let mut nodes = header("wide", "parallel");
    for k in 0..100 {
        nodes.push_str(&format!(
            "    - {{node_id: n{k}, node_type: compute, component: echo, input: \"{{'items': context.s{k}}}\"}}\n"
        ));
    }
    let wide = load(&nodes);
    let mut ctx = serde_json::Map::new();
    for (k, chunk) in list.chunks(100).enumerate() {
        ctx.insert(format!("s{k}"), Value::Array(chunk.to_vec()));
    }
    let ctx = Value::Object(ctx);
    g.bench_function("100-node parallel workflow, 100 items per node (echo, 2 at a time)", |b| {
        b.to_async(&rt).iter(|| async {
            let out = weft.run(wide.clone(), &input(ctx.clone(), 2), RunOptions::default()).await.unwrap();
            assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
        })
    });
    g.finish();
}

fn streaming(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut g = c.benchmark_group("streaming 100000 items");
    g.sample_size(10).measurement_time(Duration::from_secs(10)).throughput(Throughput::Elements(100_000));
    for (store_name, store) in [
        ("in memory", Arc::new(MemoryStore::with_retention(0)) as Arc<dyn RunStore>),
        (
            "SQLite",
            Arc::new(
                SqliteStore::open(
                    &std::env::temp_dir().join(format!("weft-bench-stream-{}.db", std::process::id())),
                    SyncMode::Normal,
                )
                .unwrap(),
            ) as Arc<dyn RunStore>,
        ),
    ] {
        let weft = engine(store);
        let wf = load(&format!(
            "{}    - {{node_id: p, node_type: compute, component: emit_readings, input: \"{{'count': context.n}}\"}}\n\
             \x20   - {{node_id: c, node_type: compute, component: window_stats, stream_from: p, batch_size: 1000, \
             stream_buffer: 4096}}\n",
            header("stream", "streaming")
        ));
        let inp = input(json!({"n": 100_000}), 2);
        // One run to print what the criterion loop cannot: latency and batch counts.
        let out = rt.block_on(weft.run(wf.clone(), &inp, RunOptions::default())).unwrap();
        assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
        let m = |k: &str| out.metrics.get(&format!("step.c.{k}")).copied().unwrap_or(f64::NAN);
        println!(
            "streaming ({store_name}): {} items in {} micro-batches; emit-to-delivery p50 {:.2} ms, p99 {:.2} ms; \
             peak buffered {}",
            m("stream_items"),
            m("stream_batches"),
            m("stream_latency_p50_ms"),
            m("stream_latency_p99_ms"),
            m("stream_peak_buffered")
        );
        g.bench_function(format!("emit_readings -> window_stats, micro-batches of 1000 ({store_name})"), |b| {
            b.to_async(&rt).iter(|| async {
                let out = weft.run(wf.clone(), &inp, RunOptions::default()).await.unwrap();
                assert_eq!(out.execution_status, ExecutionStatus::Completed);
            })
        });
    }
    g.finish();
}

const REGIONS: [&str; 3] = ["eu", "us", "apac"];

fn memo(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RunStore> = Arc::new(SqliteStore::open(&dir.path().join("memo.db"), SyncMode::Normal).unwrap());
    let weft = engine(store);
    let mut g = c.benchmark_group("one step, durable on SQLite");
    g.sample_size(20).measurement_time(Duration::from_secs(6));
    // aggregate_records over 2,000 records: a step with real work in it.
    let records: Vec<Value> =
        (0..2000).map(|i| json!({"region": REGIONS[i % 3], "amount": (i % 101) as f64})).collect();
    let ctx = json!({"records": records});
    for memoize in [false, true] {
        let wf = load(&format!(
            "{}    - {{node_id: a, node_type: compute, component: aggregate_records, memoize: {memoize}, input: \
             \"{{'records': context.records, 'group_by': 'region', 'sum': ['amount']}}\"}}\n",
            header("memo", "sequential")
        ));
        let inp = input(ctx.clone(), 1);
        let first = rt.block_on(weft.run(wf.clone(), &inp, RunOptions::default())).unwrap();
        assert_eq!(first.execution_status, ExecutionStatus::Completed, "{:?}", first.errors);
        let label = if memoize { "memo hit (memoize: true, cache filled)" } else { "executed (memoize: false)" };
        g.bench_function(format!("aggregate_records over 2000 records: {label}"), |b| {
            b.to_async(&rt).iter(|| async {
                let out = weft.run(wf.clone(), &inp, RunOptions::default()).await.unwrap();
                assert_eq!(out.metrics.contains_key("step.a.memoized"), memoize);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fan_out, streaming, memo);
criterion_main!(benches);
