//! Benchmarks of issue 13's features, with real sandboxed steps on SQLite:
//!
//! - what a sub-workflow costs: a run whose one node is an `orchestrator`
//!   running a one-step child, against the same step run directly (the
//!   difference is the child run: its row, its journal, its own pins);
//! - an approval gate: the time from `Engine::signal` to the run's end,
//!   for a gate that has waited briefly (the poll's first interval) and one
//!   that has waited long enough for the poll to reach its 1 s ceiling.
//!
//! Run with `scripts/bench --bench contract`.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft::engine::{Engine, ExecutionStatus, RunEvent, RunInput, RunOptions, SandboxExecutor};
use weft::sandbox::{Sandbox, SandboxConfig};
use weft::store::{RunStore, SqliteStore, SyncMode};
use weft::workflow::load_file;

fn dist() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist");
    assert!(d.join("echo.wasm").is_file(), "run scripts/build-plugins first");
    d
}

fn engine(store: Arc<dyn RunStore>) -> Engine {
    let sandbox = Arc::new(Sandbox::new(SandboxConfig { cache_dir: None, ..SandboxConfig::default() }).unwrap());
    Engine::new(Arc::new(SandboxExecutor::new(sandbox))).with_store(store)
}

fn write(dir: &std::path::Path, name: &str, nodes: &str) -> PathBuf {
    let text = format!(
        "kind: WorkflowDefinition\nworkflow_metadata: {{workflow_name: {name}, execution_mode: sequential}}\n\
         execution_graph:\n  nodes:\n{nodes}"
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn sub_workflow(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RunStore> = Arc::new(SqliteStore::open(&dir.path().join("b.db"), SyncMode::Normal).unwrap());
    let weft = engine(store);
    let echo = dist().join("echo.wasm");
    let step = format!("    - {{node_id: s, node_type: compute, component: \"{}\"}}\n", echo.display());
    let direct = Arc::new(load_file(&write(dir.path(), "direct", &step), None).unwrap());
    write(dir.path(), "child", &step);
    let parent = write(dir.path(), "parent", "    - {node_id: sub, node_type: orchestrator, workflow: child.yaml}\n");
    let parent = Arc::new(load_file(&parent, None).unwrap());
    let mut g = c.benchmark_group("a one-step run, durable on SQLite");
    g.sample_size(30).measurement_time(Duration::from_secs(6));
    for (label, wf) in [("the step itself", direct), ("the step in a sub-workflow (a child run)", parent)] {
        g.bench_function(label, |b| {
            b.to_async(&rt).iter(|| async {
                let out = weft.run(wf.clone(), &RunInput::default(), RunOptions::default()).await.unwrap();
                assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
            })
        });
    }
    g.finish();
}

/// From a signal to the run's end, for a gate that has waited `waited`.
fn gate_latency(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RunStore> = Arc::new(SqliteStore::open(&dir.path().join("g.db"), SyncMode::Normal).unwrap());
    let weft = engine(store);
    let wf = write(dir.path(), "gate", "    - {node_id: gate, node_type: effect, wait_for: signal}\n");
    let wf = Arc::new(load_file(&wf, None).unwrap());
    let mut g = c.benchmark_group("an approval gate: from the signal to the run's end");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for waited in [Duration::from_millis(0), Duration::from_secs(3)] {
        g.bench_function(format!("after waiting {} ms", waited.as_millis()), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (weft, wf) = (weft.clone(), wf.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mut h = weft.start(wf.clone(), &RunInput::default(), RunOptions::default()).await.unwrap();
                        while !matches!(h.events.recv().await, Some(RunEvent::Paused { .. }) | None) {}
                        tokio::time::sleep(waited).await;
                        h.events.close();
                        let id = h.run_id.clone();
                        let start = Instant::now();
                        weft.signal(&id, "gate", "s", json!({"approved": true})).await.unwrap();
                        let out = h.wait().await;
                        total += start.elapsed();
                        assert_eq!(out.execution_status, ExecutionStatus::Completed);
                    }
                    total
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, sub_workflow, gate_latency);
criterion_main!(benches);
