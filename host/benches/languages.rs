//! Plugins by language: the same greeting step, from each language's
//! template (`weft plugin new`), built by `weft plugin build`, then measured
//! on the same sandbox: component size, cold compile, cached load, a fresh
//! instance plus one call, and the fuel that call takes.
//!
//! Run with `scripts/bench --bench languages` (the toolchains from
//! `scripts/install-toolchains`). The built templates stay in
//! `target/bench-languages/`; delete it to rebuild them.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use weft::authoring::{self, Language};
use weft::sandbox::{ComponentCache, Limits, Origin, Sandbox, SandboxConfig, StepCall, StepWorld};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The greeting template in `lang`, built (once; kept between runs).
fn component(lang: Language) -> PathBuf {
    let name = format!("greet-{lang}");
    let dir = root().join("target/bench-languages").join(&name);
    let wasm = dir.join(format!("{name}.wasm"));
    if wasm.is_file() {
        return wasm;
    }
    let _ = std::fs::remove_dir_all(&dir);
    authoring::new_plugin(&dir, &name, lang, false).unwrap();
    if lang == Language::Rust {
        // The workspace's crate versions, so that the numbers match its plugins'.
        std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    }
    authoring::build(&dir).unwrap().component
}

fn input() -> Map<String, Value> {
    match json!({"name": "Ada"}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn languages(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sandbox = Sandbox::new(SandboxConfig { cache_dir: None, ..SandboxConfig::default() }).unwrap();
    let engine = sandbox.engine().clone();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ComponentCache::new(cache_dir.path().to_path_buf(), &engine);
    let limits = Limits::default();
    let call = StepCall::run(input());

    println!("\n{:<8} {:>10} {:>14} {:>14} {:>12}", "language", "size", "cold compile", "cached load", "fuel/call");
    let mut loaded = Vec::new();
    for lang in Language::ALL {
        let path = component(lang);
        let bytes = std::fs::read(&path).unwrap();
        let digest = weft::sandbox::digest(&bytes);
        let runs = if bytes.len() > 2_000_000 { 1 } else { 5 };
        let cold = median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    sandbox.compile_uncached(&bytes).unwrap();
                    t.elapsed()
                })
                .collect(),
        );
        cache.load_or_compile(&engine, &digest, &bytes).unwrap();
        let cached = median(
            (0..20)
                .map(|_| {
                    let t = Instant::now();
                    let (_, origin) = cache.load_or_compile(&engine, &digest, &bytes).unwrap();
                    assert_eq!(origin, Origin::Cache);
                    t.elapsed()
                })
                .collect(),
        );
        let step = sandbox.load_bytes(&bytes, Some(StepWorld::Compute)).unwrap();
        let report = rt.block_on(sandbox.execute(&step, &call, &limits));
        assert!(report.outcome.is_ok(), "{lang}: {:?}", report.outcome);
        println!(
            "{:<8} {:>8.2}MB {:>12.1}ms {:>12.2}ms {:>12}",
            lang.name(),
            bytes.len() as f64 / 1e6,
            cold.as_secs_f64() * 1e3,
            cached.as_secs_f64() * 1e3,
            report.stats.fuel_consumed
        );
        loaded.push((lang, step));
    }

    let mut g = c.benchmark_group("fresh instance + one call of the greeting step");
    for (lang, step) in &loaded {
        g.bench_function(lang.name(), |b| {
            b.to_async(&rt).iter(|| async {
                let r = sandbox.execute(step, &call, &limits).await;
                assert!(r.outcome.is_ok());
                r
            })
        });
    }
    g.finish();

    // The same for the big runtimes without the pooling allocator: each
    // instance maps its memory afresh instead of reusing a slot whose pages
    // stay resident (copy-on-write from the compiled image either way).
    let on_demand =
        Sandbox::new(SandboxConfig { cache_dir: None, pooling: false, ..SandboxConfig::default() }).unwrap();
    let mut g = c.benchmark_group("fresh instance + one call, on-demand allocator");
    for (lang, _) in loaded.iter().filter(|(l, _)| matches!(l, Language::Js | Language::Python | Language::Go)) {
        let bytes = std::fs::read(component(*lang)).unwrap();
        let step = on_demand.load_bytes(&bytes, Some(StepWorld::Compute)).unwrap();
        g.bench_function(lang.name(), |b| {
            b.to_async(&rt).iter(|| async {
                let r = on_demand.execute(&step, &call, &limits).await;
                assert!(r.outcome.is_ok());
                r
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = languages
}
criterion_main!(benches);
