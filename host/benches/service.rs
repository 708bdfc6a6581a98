//! The HTTP service under load, on loopback, with a small Rust client (one
//! HTTP/1.0 request per connection, as the tests' client):
//!
//! - **Submit to completion**: the ONEX orchestrator contract's five-step
//!   pipeline (its own plugins and capabilities: a read-only data dir, a
//!   read-write out dir) submitted with `POST /v1/runs?wait=60` by 1, 16
//!   and 128 concurrent clients against one `weft serve` (in process,
//!   SQLite, 16 runs at once); p50 and p99 latency, and runs/s.
//! - **Listing with 100,000 runs stored**: `GET /v1/runs` first page,
//!   a page 50,000 runs deep (by cursor), filtered by status, and by
//!   workflow; p50 and p99 of 200 requests each.
//!
//! Run with `scripts/bench --bench service`.

#![allow(missing_docs, clippy::unwrap_used)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft::capability::Policy;
use weft::engine::{Engine, SandboxExecutor, WorkerOptions};
use weft::sandbox::{Sandbox, SandboxConfig};
use weft::service::{Metrics, Quotas, Service, ServiceLimits, Tenants};
use weft::store::{NewRun, RunStore, SqliteStore, SyncMode};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// One request; returns the status and the body.
async fn request(addr: &str, method: &str, path: &str, token: &str, body: Option<&[u8]>) -> (u16, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n");
    if let Some(b) = body {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    if let Some(b) = body {
        s.write_all(b).await.unwrap();
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = std::str::from_utf8(&raw[9..12]).unwrap().parse().unwrap();
    (status, raw[split + 4..].to_vec())
}

/// A served store: the service on 127.0.0.1, with `workers` runs at once
/// in process (0: none), a tenant `bench` and its token.
struct Served {
    addr: String,
    token: String,
    store: Arc<dyn RunStore>,
    _dir: tempfile::TempDir,
}

async fn serve(workers: usize) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RunStore> = Arc::new(SqliteStore::open(&dir.path().join("weft.db"), SyncMode::Normal).unwrap());
    let tenants_dir = dir.path().join("tenants");
    let data = tenants_dir.join("bench/data");
    std::fs::create_dir_all(tenants_dir.join("bench/out")).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    for f in std::fs::read_dir(root().join("examples/onex-pipeline/data")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, data.join(f.file_name().unwrap())).unwrap();
    }
    let policy = format!("[dirs]\nroots = [{{ path = \"{}\", rw = true }}]\n", tenants_dir.display());
    let policy = Policy::parse(&policy, Path::new("/")).unwrap();
    let sandbox = Arc::new(
        Sandbox::new(SandboxConfig {
            cache_dir: Some(root().join("target/bench-cache")),
            max_instances: 64,
            ..Default::default()
        })
        .unwrap(),
    );
    let executor = Arc::new(SandboxExecutor::new(sandbox.clone()));
    let metrics = Arc::new(Metrics::new());
    let engine = Engine::new(executor.clone())
        .with_store(store.clone())
        .with_policy(Arc::new(policy))
        .with_observer(metrics.clone())
        .with_blob_dir(dir.path().join("blobs"))
        .with_scratch_root(dir.path().join("scratch"));
    let limits = ServiceLimits { tenant_root: Some(tenants_dir), ..ServiceLimits::default() };
    let service = Service::new(engine, sandbox, executor, metrics, limits);
    // The service's engine wakes the requests that wait on its runs.
    let engine = service.engine().clone();
    let kv: Arc<dyn weft::contract::KeyValue> = store.clone();
    let tenants = Tenants::new(kv);
    let quotas = Quotas { max_concurrent_runs: 1_000_000, submissions_per_minute: 1_000_000, ..Quotas::default() };
    tenants.create("bench", quotas).await.unwrap();
    let (token, _) = tenants.create_token("bench", weft::service::Scope::ALL.to_vec()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(weft::service::serve(service, listener, std::future::pending()));
    if workers > 0 {
        let opts = WorkerOptions { concurrency: workers, poll_every: Duration::from_millis(200), ..Default::default() };
        tokio::spawn(async move { engine.work(opts, |_| {}).await });
    }
    Served { addr, token, store, _dir: dir }
}

/// The ONEX pipeline's submission body, its components uploaded first.
async fn onex_body(s: &Served) -> Vec<u8> {
    let example = root().join("examples/onex-pipeline");
    let mut wf = std::fs::read_to_string(example.join("workflow.yaml")).unwrap();
    for name in ["validate_order", "file_records", "price_cart", "ledger"] {
        let bytes = std::fs::read(root().join(format!("plugins/dist/{name}.wasm"))).expect("run scripts/build-plugins");
        let digest = weft::sandbox::digest(&bytes);
        let (status, _) = request(&s.addr, "PUT", &format!("/v1/components/{digest}"), &s.token, Some(&bytes)).await;
        assert!(status == 201 || status == 200);
        wf = wf.replace(&format!("../../plugins/dist/{name}.wasm"), &digest);
    }
    let input: Value = serde_json::from_str(&std::fs::read_to_string(example.join("input.json")).unwrap()).unwrap();
    serde_json::to_vec(&json!({ "definition": wf, "input": input })).unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn submit_to_completion() {
    let s = Arc::new(serve(16).await);
    let body = Arc::new(onex_body(&s).await);
    // Warm: compile the components once.
    let (status, out) = request(&s.addr, "POST", "/v1/runs?wait=60", &s.token, Some(&body)).await;
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((status, out["status"].as_str()), (201, Some("completed")), "{out}");
    println!("submit to completion: the ONEX pipeline (5 steps), POST /v1/runs?wait=60, 16 runs at once in process");
    for (clients, per_client) in [(1usize, 60usize), (16, 20), (128, 5)] {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (s, body) = (s.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                for _ in 0..per_client {
                    let t = Instant::now();
                    let (status, out) = request(&s.addr, "POST", "/v1/runs?wait=60", &s.token, Some(&body)).await;
                    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&out));
                    let out: Value = serde_json::from_slice(&out).unwrap();
                    assert_eq!(out["status"], "completed", "{out}");
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let wall = start.elapsed();
        all.sort();
        println!(
            "  {clients:>3} clients: {} runs in {:.2} s = {:.1} runs/s; latency p50 {}, p99 {}",
            all.len(),
            wall.as_secs_f64(),
            all.len() as f64 / wall.as_secs_f64(),
            ms(percentile(&all, 0.5)),
            ms(percentile(&all, 0.99))
        );
    }
}

async fn listing_with_100k_runs() {
    let s = serve(0).await;
    let start = Instant::now();
    for i in 0..100_000u32 {
        let id = uuid::Uuid::new_v4().to_string();
        let run = NewRun {
            run_id: id.clone(),
            workflow: if i % 10 == 0 { "rare".into() } else { "common".into() },
            workflow_path: None,
            definition: "metadata: {name: x}".into(),
            base_dir: "/".into(),
            input: json!({ "workflow_id": id, "metadata": { "tenant": "bench" } }),
            options: json!({}),
            components: Default::default(),
            replay_of: None,
            parent: None,
            sub_definitions: Default::default(),
            owner: String::new(),
            lease_ms: 0,
        };
        s.store.submit_run(&run, &[]).await.unwrap();
    }
    println!("listing: 100,000 pending runs stored in {:.1} s (one transaction each)", start.elapsed().as_secs_f64());
    let (_, page) = request(&s.addr, "GET", "/v1/runs?limit=50", &s.token, None).await;
    let mut cursor: Value = serde_json::from_slice(&page).unwrap();
    // Walk 1,000 pages of 50 to a cursor 50,000 runs deep.
    let mut deep = String::new();
    for _ in 0..999 {
        deep = cursor["next_cursor"].as_str().unwrap().to_string();
        let (_, page) = request(&s.addr, "GET", &format!("/v1/runs?limit=50&cursor={deep}"), &s.token, None).await;
        cursor = serde_json::from_slice(&page).unwrap();
    }
    for (label, path) in [
        ("first page of 50", "/v1/runs?limit=50".to_string()),
        ("a page 50,000 runs deep", format!("/v1/runs?limit=50&cursor={deep}")),
        ("by status (pending)", "/v1/runs?limit=50&status=pending".to_string()),
        ("by workflow (10% of runs)", "/v1/runs?limit=50&workflow=rare".to_string()),
        ("by status with no match", "/v1/runs?limit=50&status=failed".to_string()),
    ] {
        let mut lat = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            let (status, _) = request(&s.addr, "GET", &path, &s.token, None).await;
            assert_eq!(status, 200);
            lat.push(t.elapsed());
        }
        lat.sort();
        println!("  {label:<28} p50 {}, p99 {}", ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.99)));
    }
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let wants = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    if wants("submit to completion") {
        rt.block_on(submit_to_completion());
    }
    if wants("listing") {
        rt.block_on(listing_with_100k_runs());
    }
}
