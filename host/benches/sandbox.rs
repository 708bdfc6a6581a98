//! Sandbox benchmarks: the raw wasmtime floor against Weft's execute, the cost
//! of fuel, the compiled-component cache, and a breakdown of a fresh attempt.
//!
//! Run with `scripts/bench` (which builds the plugins first) or
//! `cargo bench -p weft --bench sandbox` once `scripts/build-plugins` has run.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{Bare, ctx, raw};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use weft::sandbox::{ComponentCache, Limits, Sandbox, SandboxConfig, StepCall, StepWorld};

fn plugin(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist").join(format!("{name}.wasm"));
    assert!(p.is_file(), "{} is missing: run scripts/build-plugins first", p.display());
    p
}

fn raw_engine(fuel: bool, epoch: bool, pooling: bool) -> Engine {
    let mut c = Config::new();
    c.consume_fuel(fuel).epoch_interruption(epoch);
    if pooling {
        c.allocation_strategy(InstanceAllocationStrategy::pooling());
    }
    Engine::new(&c).unwrap()
}

fn tuned_engine(keep_resident: usize, pagemap: bool) -> Engine {
    let mut p = PoolingAllocationConfig::new();
    p.linear_memory_keep_resident(keep_resident).table_keep_resident(keep_resident.min(64 << 10));
    if pagemap {
        p.pagemap_scan(Enabled::Yes);
    }
    let mut c = Config::new();
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    Engine::new(&c).unwrap()
}

fn raw_pre(engine: &Engine, name: &str) -> raw::ComputeStepPre<Bare> {
    common::raw_pre(engine, &plugin(name))
}

fn raw_store(engine: &Engine, fuel: bool, epoch: bool) -> Store<Bare> {
    let mut store = Store::new(engine, Bare::new());
    if fuel {
        store.set_fuel(u64::MAX / 4).unwrap();
    }
    if epoch {
        store.set_epoch_deadline(u64::MAX / 4);
    }
    store
}

fn input() -> Map<String, Value> {
    match json!({"order_id": "o-1", "amount": 12}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The floor against Weft's execute, and the breakdown of one fresh attempt.
fn instantiate_and_call(c: &mut Criterion) {
    let rt = runtime();
    let input_text = Value::Object(input()).to_string();
    let mut g = c.benchmark_group("attempt");

    let engine = raw_engine(false, false, true);
    let pre = raw_pre(&engine, "echo");
    g.bench_function("floor: raw InstancePre instantiate + call (pooling, no limits)", |b| {
        b.to_async(&rt).iter(|| async {
            let mut store = raw_store(&engine, false, false);
            let inst = pre.instantiate_async(&mut store).await.unwrap();
            inst.weft_step_compute().call_run(&mut store, &ctx(), &input_text).await.unwrap().unwrap()
        })
    });

    let sandbox = Sandbox::new(SandboxConfig { cache_dir: None, ..SandboxConfig::default() }).unwrap();
    let echo = sandbox.load_file(&plugin("echo"), Some(StepWorld::Compute)).unwrap();
    let call = StepCall::run(input());
    let limits = Limits::default();
    g.bench_function("weft: Sandbox::execute (fuel + epoch + memory cap + WASI policy + output check)", |b| {
        b.to_async(&rt).iter(|| async {
            let r = sandbox.execute(&echo, &call, &limits).await;
            assert!(r.outcome.is_ok());
            r
        })
    });

    // Breakdown of the floor.
    g.bench_function("breakdown: WasiCtx::builder().build() + Store::new", |b| {
        b.iter(|| raw_store(&engine, false, false))
    });
    g.bench_function("breakdown: store + instantiate (no call)", |b| {
        b.to_async(&rt).iter(|| async {
            let mut store = raw_store(&engine, false, false);
            pre.instantiate_async(&mut store).await.unwrap();
        })
    });
    {
        let mut store = raw_store(&engine, false, false);
        let inst = rt.block_on(pre.instantiate_async(&mut store)).unwrap();
        g.bench_function("breakdown: call on a live instance", |b| {
            b.iter(|| rt.block_on(inst.weft_step_compute().call_run(&mut store, &ctx(), &input_text)).unwrap().unwrap())
        });
    }
    let ondemand = raw_engine(false, false, false);
    let pre_od = raw_pre(&ondemand, "echo");
    g.bench_function("breakdown: instantiate + call without pooling", |b| {
        b.to_async(&rt).iter(|| async {
            let mut store = raw_store(&ondemand, false, false);
            let inst = pre_od.instantiate_async(&mut store).await.unwrap();
            inst.weft_step_compute().call_run(&mut store, &ctx(), &input_text).await.unwrap().unwrap()
        })
    });
    g.finish();

    // Where the floor's time goes: page faults on a reused pool slot. With
    // `keep_resident`, pages stay mapped and are reset by memset; with
    // PAGEMAP_SCAN (Linux 6.7+) only the pages the guest dirtied are reset.
    let mut g = c.benchmark_group("pool tuning: instantiate + call");
    for (label, keep, pagemap) in [
        ("default pool", 0, false),
        ("keep_resident 64 KiB", 64 << 10, false),
        ("keep_resident 2 MiB", 2 << 20, false),
        ("keep_resident 2 MiB + pagemap_scan", 2 << 20, true),
        ("keep_resident 16 MiB + pagemap_scan", 16 << 20, true),
    ] {
        let engine = tuned_engine(keep, pagemap);
        let pre = raw_pre(&engine, "echo");
        g.bench_function(label, |b| {
            b.to_async(&rt).iter(|| async {
                let mut store = raw_store(&engine, false, false);
                let inst = pre.instantiate_async(&mut store).await.unwrap();
                inst.weft_step_compute().call_run(&mut store, &ctx(), &input_text).await.unwrap().unwrap()
            })
        });
        if pagemap && keep == 2 << 20 {
            g.bench_function(format!("{label}: store + instantiate (no call)"), |b| {
                b.to_async(&rt).iter(|| async {
                    let mut store = raw_store(&engine, false, false);
                    pre.instantiate_async(&mut store).await.unwrap();
                })
            });
        }
    }
    g.finish();
}

/// A CPU-bound guest with fuel + epoch, epoch only, and neither.
fn fuel_overhead(c: &mut Criterion) {
    let rt = runtime();
    let input_text = json!({"iterations": 5_000_000}).to_string();
    let mut g = c.benchmark_group("cpu_burn 5M iterations");
    for (label, fuel, epoch) in [("fuel + epoch", true, true), ("epoch only", false, true), ("neither", false, false)] {
        let engine = raw_engine(fuel, epoch, true);
        let pre = raw_pre(&engine, "cpu_burn");
        let mut store = raw_store(&engine, fuel, epoch);
        let inst = rt.block_on(pre.instantiate_async(&mut store)).unwrap();
        g.bench_function(label, |b| {
            b.iter(|| {
                if fuel {
                    store.set_fuel(u64::MAX / 4).unwrap();
                }
                rt.block_on(inst.weft_step_compute().call_run(&mut store, &ctx(), &input_text)).unwrap().unwrap()
            })
        });
    }
    g.finish();
}

/// Loading a component from the compiled cache against compiling it.
fn cache_vs_compile(c: &mut Criterion) {
    let sandbox =
        Sandbox::new(SandboxConfig { cache_dir: None, max_instances: 2, ..SandboxConfig::default() }).unwrap();
    let engine = sandbox.engine().clone();
    let bytes = std::fs::read(plugin("aggregate_records")).unwrap();
    let digest = weft::sandbox::digest(&bytes);
    let dir = tempfile::tempdir().unwrap();
    let cache = ComponentCache::new(dir.path().to_path_buf(), &engine);
    cache.load_or_compile(&engine, &digest, &bytes).unwrap();
    let mut g = c.benchmark_group("load aggregate_records.wasm");
    g.bench_function("compile (Component::new)", |b| b.iter(|| sandbox.compile_uncached(&bytes).unwrap()));
    g.bench_function("compiled cache hit (mmap)", |b| {
        b.iter(|| {
            let (c, origin) = cache.load_or_compile(&engine, &digest, &bytes).unwrap();
            assert_eq!(origin, weft::sandbox::Origin::Cache);
            c
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = instantiate_and_call, fuel_overhead, cache_vs_compile
}
criterion_main!(benches);
