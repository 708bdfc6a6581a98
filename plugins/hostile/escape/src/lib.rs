//! Hostile fixture: a compute step that tries to leave its sandbox.
//!
//! It reads `/etc/passwd`, lists `/`, reads the environment, opens a TCP
//! socket, resolves a host name, and reads the clocks and the random source.
//! It reports what each attempt gave as its output, so a test can check that
//! every door was shut while the step itself ran to completion.

use std::time::{Instant, SystemTime, UNIX_EPOCH};
use weft_plugin::{Context, StepError, Value, json};

fn outcome<T: std::fmt::Debug, E: std::fmt::Display>(r: Result<T, E>) -> Value {
    match r {
        Ok(v) => json!({ "ok": format!("{v:?}") }),
        Err(e) => json!({ "err": e.to_string() }),
    }
}

fn escape(_ctx: &mut Context, _input: Value) -> Result<Value, StepError> {
    let passwd = outcome(std::fs::read_to_string("/etc/passwd").map(|s| s.len()));
    let root = outcome(std::fs::read_dir("/").map(|d| d.count()));
    let cwd_file = outcome(std::fs::read_to_string("Cargo.toml").map(|s| s.len()));
    let env: Vec<(String, String)> = std::env::vars().collect();
    let home = outcome(std::env::var("HOME"));
    let tcp = outcome(std::net::TcpStream::connect("127.0.0.1:22").map(|_| "connected"));
    let listen = outcome(std::net::TcpListener::bind("127.0.0.1:0").map(|_| "bound"));
    let dns = outcome(std::net::ToSocketAddrs::to_socket_addrs("localhost:80").map(|a| a.count()));
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let t0 = Instant::now();
    let mut spin = 0u64;
    for i in 0..1_000_000u64 {
        spin = std::hint::black_box(spin ^ i);
    }
    let elapsed = t0.elapsed().as_nanos();
    let mut bytes = [0u8; 16];
    let random = match getrandom(&mut bytes) {
        Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        Err(e) => format!("err: {e}"),
    };
    Ok(json!({
        "passwd": passwd,
        "read_dir_root": root,
        "relative_file": cwd_file,
        "env_count": env.len(),
        "home": home,
        "tcp_connect": tcp,
        "tcp_listen": listen,
        "dns": dns,
        "wall_clock_nanos": wall.to_string(),
        "monotonic_elapsed_nanos": elapsed.to_string(),
        "random_hex": random,
    }))
}

/// Reads bytes derived from `wasi:random`: std has no public random API, but
/// `RandomState` seeds its hash keys from the platform's random source.
fn getrandom(buf: &mut [u8]) -> Result<(), String> {
    use std::hash::{BuildHasher, Hasher};
    for chunk in buf.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(0);
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    Ok(())
}

weft_plugin::compute_step!(escape);
