//! Durable throughput: SQLite on one machine and PostgreSQL with workers.
//!
//! - **The durable chain against its floor**, in one run: one commit (a
//!   200-byte insert in WAL mode, `synchronous=NORMAL`), one raw sandboxed
//!   attempt (instantiate + call, tuned pool), and a 1,000-step durable chain.
//! - **Group commit**: 6,400 durable steps as 1 run, 8 runs or 64 runs at
//!   once in one process (criterion reports steps/s).
//! - **Workers on PostgreSQL** (a throwaway durable cluster, as the tests
//!   start): 1,000 runs of 10 trivial steps submitted, then drained by 1, 2
//!   and 3 `weft worker` processes; and the claim latency, from a submission
//!   to its first attempt's start in an idle worker.
//!
//! Run with `scripts/bench --bench workers` (`-- "durable chain"`, `-- concurrent`,
//! `-- "claim latency"` or `-- "postgres drains"` for one part).

#![allow(missing_docs, clippy::unwrap_used)]

mod common;
#[path = "../../tests/all/common/postgres.rs"]
mod postgres;

use common::{ctx, raw_attempts, raw_pre};
use criterion::{Criterion, Throughput, criterion_group};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft::engine::{Engine, ExecutionStatus, RunInput, RunOptions, SandboxExecutor};
use weft::sandbox::{Sandbox, SandboxConfig};
use weft::store::{JournalEntry, PostgresStore, RunFilter, RunStore, SqliteStore, SyncMode};
use weft::workflow::{Workflow, load_str};

fn echo() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/echo.wasm");
    assert!(p.is_file(), "run scripts/build-plugins first");
    p
}

fn chain(n: usize) -> Arc<Workflow> {
    let mut y = String::from(
        "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {name: chain, version: 1.0.0}\n\
         workflow_metadata: {workflow_name: chain, execution_mode: sequential}\nexecution_graph:\n  nodes:\n",
    );
    for i in 0..n {
        let dep = if i == 0 { String::new() } else { format!(", depends_on: [n{}]", i - 1) };
        y.push_str(&format!("    - {{node_id: n{i}, node_type: compute, component: \"{}\"{dep}}}\n", echo().display()));
    }
    Arc::new(load_str(&y, std::path::Path::new("/"), "chain", None).unwrap())
}

fn tuned_engine() -> wasmtime::Engine {
    let mut p = wasmtime::PoolingAllocationConfig::new();
    p.table_keep_resident(16 << 10);
    if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
        p.pagemap_scan(wasmtime::Enabled::Yes).linear_memory_keep_resident(2 << 20);
    }
    let mut c = wasmtime::Config::new();
    c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(p));
    wasmtime::Engine::new(&c).unwrap()
}

fn sqlite_chain_against_its_floor(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("durable chain vs floor (SQLite WAL, NORMAL), per 1000");
    g.sample_size(10).measurement_time(Duration::from_secs(8));

    // One commit: a 200-byte insert, its own transaction, as the engine's store sets the file up.
    let floor = rusqlite::Connection::open(dir.path().join("floor.db")).unwrap();
    floor.pragma_update(None, "journal_mode", "WAL").unwrap();
    floor.pragma_update(None, "synchronous", "NORMAL").unwrap();
    floor.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)").unwrap();
    let row = "x".repeat(200);
    g.bench_function("floor: 1000 commits of one 200-byte insert", |b| {
        b.iter(|| {
            for _ in 0..1000 {
                floor.execute("INSERT INTO t (v) VALUES (?1)", [&row]).unwrap();
            }
        })
    });

    let engine = tuned_engine();
    let pre = raw_pre(&engine, &echo());
    let ctx = ctx();
    let input = String::from("{\"ok\":true}");
    g.bench_function("floor: 1000 raw sandboxed attempts (instantiate + call)", |b| {
        b.to_async(&rt).iter(|| raw_attempts(&engine, &pre, &ctx, &input, 1000))
    });

    let sandbox = Arc::new(Sandbox::new(SandboxConfig { cache_dir: None, ..SandboxConfig::default() }).unwrap());
    let executor = Arc::new(SandboxExecutor::new(sandbox));
    let store = Arc::new(SqliteStore::open(&dir.path().join("chain.db"), SyncMode::Normal).unwrap());
    let durable = Engine::new(executor).with_store(store);
    let wf = chain(1000);
    g.bench_function("weft: 1000-step durable chain", |b| {
        b.to_async(&rt).iter(|| async {
            let out = durable.run(wf.clone(), &RunInput::default(), RunOptions::default()).await.unwrap();
            assert_eq!(out.execution_status, ExecutionStatus::Completed);
        })
    });
    g.finish();
}

fn sqlite_concurrent_runs(c: &mut Criterion) {
    const STEPS: usize = 6400;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(
        Sandbox::new(SandboxConfig { cache_dir: None, max_instances: 128, ..SandboxConfig::default() }).unwrap(),
    );
    let executor = Arc::new(SandboxExecutor::new(sandbox));
    let mut g = c.benchmark_group("6400 durable steps in one process (SQLite WAL, NORMAL)");
    g.sample_size(10).measurement_time(Duration::from_secs(10)).throughput(Throughput::Elements(STEPS as u64));
    for runs in [1usize, 8, 64] {
        let store = Arc::new(SqliteStore::open(&dir.path().join(format!("c{runs}.db")), SyncMode::Normal).unwrap());
        let engine = Engine::new(executor.clone()).with_store(store);
        let wf = chain(STEPS / runs);
        g.bench_function(format!("{runs} concurrent runs x {} steps", STEPS / runs), |b| {
            b.to_async(&rt).iter(|| async {
                let mut handles = Vec::new();
                for _ in 0..runs {
                    let mut h = engine.start(wf.clone(), &RunInput::default(), RunOptions::default()).await.unwrap();
                    h.events.close();
                    handles.push(h);
                }
                for h in handles {
                    assert_eq!(h.wait().await.execution_status, ExecutionStatus::Completed);
                }
            })
        });
    }
    g.finish();
}

/// `n` `weft worker` processes on `url`, quiet.
fn workers(url: &str, n: usize) -> Vec<Child> {
    (0..n)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_weft"))
                .args(["worker", "--db", url, "--concurrency", "8", "--poll-ms", "100", "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn stop(children: Vec<Child>) {
    for mut c in children {
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let _ = c.wait();
    }
}

/// What the PostgreSQL benchmarks share: a sandbox, and the workflows.
struct PgBench {
    rt: tokio::runtime::Runtime,
    executor: Arc<SandboxExecutor>,
    input: RunInput,
}

impl PgBench {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
        Self {
            rt,
            executor: Arc::new(SandboxExecutor::new(sandbox)),
            input: serde_json::from_value(json!({})).unwrap(),
        }
    }

    fn engine(&self, url: &str) -> (Engine, Arc<PostgresStore>) {
        let store = Arc::new(PostgresStore::open(url, 8).unwrap());
        (Engine::new(self.executor.clone()).with_store(store.clone()), store)
    }
}

/// 1,000 runs of 10 steps, submitted first, then drained by `n` workers
/// started together; measured once per worker count (each takes tens of
/// seconds), from the workers' start to the last run's end.
fn postgres_drains() {
    const RUNS: usize = 1000;
    const STEPS: usize = 10;
    let b = PgBench::new();
    let wf = chain(STEPS);
    println!("1000 runs x 10 steps on PostgreSQL (durable cluster), drained by workers (--concurrency 8 each):");
    for n in [1usize, 2, 3] {
        let url = postgres::fresh_durable_database("bench");
        let (engine, store) = b.engine(&url);
        let submitting = Instant::now();
        for _ in 0..RUNS {
            b.rt.block_on(engine.submit(wf.clone(), &b.input, RunOptions::default())).unwrap();
        }
        let submitted = submitting.elapsed();
        let start = Instant::now();
        let children = workers(&url, n);
        let done = RunFilter { status: Some(ExecutionStatus::Completed), ..Default::default() };
        while b.rt.block_on(store.list_runs(&done)).unwrap().len() < RUNS {
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = start.elapsed().as_secs_f64();
        stop(children);
        println!(
            "  {n} worker(s): {took:.2} s, {:.0} runs/s, {:.0} steps/s (submitting took {:.2} s, {:.0} runs/s)",
            RUNS as f64 / took,
            (RUNS * STEPS) as f64 / took,
            submitted.as_secs_f64(),
            RUNS as f64 / submitted.as_secs_f64()
        );
    }
}

fn claim_latency(c: &mut Criterion) {
    let b = PgBench::new();
    let url = postgres::fresh_durable_database("latency");
    let (engine, store) = b.engine(&url);
    let idle = workers(&url, 1);
    std::thread::sleep(Duration::from_secs(2));
    let one = chain(1);
    let mut g = c.benchmark_group("claim latency on PostgreSQL (idle worker, LISTEN/NOTIFY hint, 100 ms poll)");
    g.sample_size(20).warm_up_time(Duration::from_millis(1));
    g.bench_function("submit to first attempt started", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let id = b.rt.block_on(engine.submit(one.clone(), &b.input, RunOptions::default())).unwrap();
                loop {
                    let j = b.rt.block_on(store.journal(&id)).unwrap();
                    if j.iter().any(|e| matches!(e.entry, JournalEntry::AttemptStarted { .. })) {
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
    stop(idle);
}

criterion_group!(benches, sqlite_chain_against_its_floor, sqlite_concurrent_runs, claim_latency);

fn main() {
    benches();
    // A filter on the command line (`-- NAME`) runs only what it names.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_none_or(|f| "postgres drains".contains(f.as_str())) {
        postgres_drains();
    }
    Criterion::default().configure_from_args().final_summary();
}
