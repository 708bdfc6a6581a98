//! Helpers shared by the end-to-end tests: build the plugins once, find them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

/// The path of a built plugin component, building all plugins on first use
/// (with `scripts/build-plugins`, which the README and CI use too).
pub fn plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status =
            Command::new("bash").arg(root().join("scripts/build-plugins")).status().expect("run scripts/build-plugins");
        assert!(status.success(), "scripts/build-plugins failed: {status}");
    });
    let path = root().join("plugins/dist").join(format!("{name}.wasm"));
    assert!(path.is_file(), "plugin {name} was not built at {}", path.display());
    path
}

/// A fresh cache directory under target/ for one test.
pub fn temp_cache(tag: &str) -> PathBuf {
    let dir = root().join("target/test-cache").join(format!("{tag}-{}-{}", std::process::id(), uuid_like()));
    std::fs::create_dir_all(&dir).expect("create cache dir");
    // Private, as the compiled-component cache requires (whatever the umask).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod cache dir");
    dir
}

fn uuid_like() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// A core wasm module (not a component) that exports one function.
pub fn core_module_bytes() -> Vec<u8> {
    wat::parse_str(r#"(module (func (export "run") (result i32) i32.const 42))"#).expect("valid wat")
}

/// 4 KiB of deterministic pseudo-random bytes.
pub fn random_bytes() -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A header that claims to be a component, followed by garbage.
pub fn truncated_component_bytes() -> Vec<u8> {
    let mut b = b"\0asm\x0d\x00\x01\x00".to_vec();
    b.extend_from_slice(&[0x07, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]);
    b
}

/// Starts `cmd`, waits until a line of its stderr contains `needle` (or it
/// ends), waits `extra_ms` more, then kills it with SIGKILL. Returns true if
/// it was killed before it ended by itself.
pub fn kill_when_seen(mut cmd: Command, needle: &str, extra_ms: u64) -> bool {
    use std::io::{BufRead, BufReader};
    let mut child =
        cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    let stderr = child.stderr.take().expect("piped stderr");
    let needle = needle.to_string();
    // Keep draining stderr after the needle: a closed pipe would end the
    // process by itself, which is not the crash under test.
    let (tx, rx) = std::sync::mpsc::channel();
    let drain = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains(&needle) {
                let _ = tx.send(());
            }
        }
    });
    let seen = rx.recv().is_ok();
    if seen {
        std::thread::sleep(std::time::Duration::from_millis(extra_ms));
    }
    let ended = matches!(child.try_wait(), Ok(Some(_)));
    let _ = child.kill();
    let _ = child.wait();
    let _ = drain.join();
    seen && !ended
}
