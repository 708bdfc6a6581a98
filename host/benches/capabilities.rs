//! Capability benchmarks: what an effect attempt costs with each capability
//! granted against none, and one HTTP GET from a step against the same GET
//! from a plain hyper client in the same process, to a local hyper server.
//!
//! Run with `scripts/bench --bench capabilities` (which builds the plugins).

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::io::TokioIo;
use weft::capability::{Capabilities, DirGrant, DirMode, DirSource, HttpRule, Policy, SecretSource, UrlPattern};
use weft::sandbox::{Grants, KvBinding, Limits, Sandbox, SandboxConfig, StepCall, StepWorld};

fn plugin(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist").join(format!("{name}.wasm"));
    assert!(p.is_file(), "{} is missing: run scripts/build-plugins first", p.display());
    p
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// A hyper server on 127.0.0.1 answering every request with a small JSON body.
async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req: hyper::Request<Incoming>| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        br#"{"order_id":"o-1001","records":[{"sku":"A-1","stock":12}]}"#,
                    ))))
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

/// One GET on a new connection with a plain hyper client, body read whole;
/// `by_name` connects by `host:port` text (through the resolver), as a
/// client given a URL does.
async fn plain_get(addr: SocketAddr, by_name: bool) -> usize {
    let stream = if by_name {
        tokio::net::TcpStream::connect(addr.to_string()).await.unwrap()
    } else {
        tokio::net::TcpStream::connect(addr).await.unwrap()
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://{addr}/records/o-1001"))
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    res.into_body().collect().await.unwrap().to_bytes().len()
}

fn grants(caps: Capabilities, kv: bool) -> Grants {
    let mut g = Grants::under(caps, &Policy::operator());
    if kv {
        g.kv = Some(KvBinding { store: Arc::new(weft::store::MemoryStore::new()), scope: "/bench".into() });
    }
    g
}

fn http_rule(url: &str) -> HttpRule {
    HttpRule::new(UrlPattern::parse(url).unwrap(), &["GET".to_string()]).unwrap()
}

/// An effect attempt of the ledger step (which uses none of them) with each
/// capability granted: what preparing the grant costs.
fn grant_cost(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sandbox = Sandbox::new(SandboxConfig { cache_dir: None, ..SandboxConfig::default() }).unwrap();
    let ledger = sandbox.load_file(&plugin("ledger"), Some(StepWorld::Effect)).unwrap();
    let call = StepCall::run(object(json!({"kind": "persist", "data": {"n": 1}})));
    let limits = Limits::default();
    let dir = tempfile::tempdir().unwrap();
    let with_env = |name: &str| Capabilities { env: vec![name.to_string()], ..Default::default() };
    let cases: Vec<(&str, Grants)> = vec![
        ("none", Grants::none()),
        ("env (1 variable)", grants(with_env("HOME"), false)),
        (
            "secrets (1, from the environment)",
            Grants {
                secret_source: SecretSource::Env { prefix: String::new() },
                ..grants(Capabilities { secrets: vec!["PATH".into()], ..Default::default() }, false)
            },
        ),
        (
            "dirs (1 read-only preopen)",
            grants(
                Capabilities {
                    dirs: vec![DirGrant {
                        host: DirSource::Path(dir.path().to_path_buf()),
                        guest: "/data".into(),
                        mode: DirMode::Ro,
                    }],
                    ..Default::default()
                },
                false,
            ),
        ),
        (
            "http (1 rule)",
            grants(Capabilities { http: vec![http_rule("http://127.0.0.1:*/*")], ..Default::default() }, false),
        ),
        ("kv", grants(Capabilities { kv: true, ..Default::default() }, true)),
    ];
    let mut g = c.benchmark_group("effect attempt (ledger) with a capability granted");
    for (label, granted) in &cases {
        g.bench_function(*label, |b| {
            b.to_async(&rt).iter(|| async {
                let r = sandbox.execute_granted(&ledger, &call, &limits, granted).await;
                assert!(r.outcome.is_ok(), "{:?}", r.outcome);
                r
            })
        });
    }
    g.finish();
}

/// One GET from a step (the probe fixture, through wasi:http and the gate)
/// against the same GET from a plain hyper client; and a kv set + get.
fn http_get(c: &mut Criterion) {
    let rt = if std::env::var_os("WEFT_BENCH_CURRENT_THREAD").is_some() {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    };
    let addr = rt.block_on(serve());
    let sandbox = Sandbox::new(SandboxConfig { cache_dir: None, ..SandboxConfig::default() }).unwrap();
    let probe = sandbox.load_file(&plugin("probe"), Some(StepWorld::Effect)).unwrap();
    let caps = Capabilities { http: vec![http_rule(&format!("http://{addr}/*"))], kv: true, ..Default::default() };
    let granted = grants(caps, true);
    let limits = Limits::default();
    let url = format!("http://{addr}/records/o-1001");
    let noop = StepCall::run(object(json!({"ops": []})));
    let get = StepCall::run(object(json!({"ops": [{"op": "get", "url": url}]})));
    let kv = StepCall::run(object(
        json!({"ops": [{"op": "kv_set", "key": "k", "value": "v"}, {"op": "kv_get", "key": "k"}]}),
    ));
    let mut g = c.benchmark_group("http GET to a local hyper server");
    g.bench_function("plain hyper client (new connection)", |b| b.to_async(&rt).iter(|| plain_get(addr, false)));
    g.bench_function("plain hyper client (new connection, address as text)", |b| {
        b.to_async(&rt).iter(|| plain_get(addr, true))
    });
    for (label, call) in [
        ("step: probe attempt, no request", &noop),
        ("step: probe attempt with one GET", &get),
        ("step: probe attempt with kv set + get", &kv),
    ] {
        g.bench_function(label, |b| {
            b.to_async(&rt).iter(|| async {
                let r = sandbox.execute_granted(&probe, call, &limits, &granted).await;
                let out = r.outcome.as_ref().unwrap();
                assert!(
                    out.output["results"].as_array().unwrap().iter().all(|x| x.get("ok").is_some()),
                    "{:?}",
                    out.output
                );
                r
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = grant_cost, http_get
}
criterion_main!(benches);
