//! Helpers shared by the end-to-end tests: build the plugins once and find
//! them, start the `weft` binary, read its JSON, build chains of steps, and
//! set up a sandbox.

pub mod http;
pub mod postgres;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use weft::sandbox::{Sandbox, SandboxConfig};

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

/// Runs `weft plugin build DIR` and returns the component it wrote; panics
/// with the build's output when it fails (which names any missing toolchain
/// and the command that installs it). Rust plugins build in
/// `target/plugins`, the target directory `scripts/build-plugins` uses,
/// since the one `cargo test` holds is locked.
pub fn plugin_build(dir: &Path) -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["plugin", "build"])
        .arg(dir)
        .env("CARGO_TARGET_DIR", root().join("target/plugins"))
        .output()
        .expect("run weft plugin build");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "weft plugin build {} failed ({}):\n{stdout}\n{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    let path = PathBuf::from(line.split(" (").next().unwrap_or_default());
    assert!(path.is_file(), "weft plugin build printed {line:?}, which is not a file");
    path
}

/// The polyglot example's five steps (Rust, JavaScript, Python, C, Go),
/// built once with `weft plugin build`, by step name.
pub fn polyglot() -> &'static [(&'static str, PathBuf)] {
    static BUILT: OnceLock<Vec<(&'static str, PathBuf)>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let steps = root().join("examples/polyglot/steps");
        ["tally-rust", "classify-js", "score-python", "checksum-c", "decide-go"]
            .iter()
            .map(|dir| (dir.split('-').next().unwrap_or(dir), plugin_build(&steps.join(dir))))
            .collect()
    })
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

/// The `weft` binary with `args`, its compiled-component cache under
/// `target/test-cache/<cache>` (shared by the tests that name the same one),
/// and `WEFT_LOG` unset so that its stderr is only what a user sees.
pub fn weft(cache: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weft"));
    c.args(args).env("WEFT_CACHE_DIR", root().join("target/test-cache").join(cache)).env_remove("WEFT_LOG");
    c
}

/// [`weft`] on the run database `db` (`--db` after `args`).
pub fn weft_db(cache: &str, db: &Path, args: &[&str]) -> Command {
    let mut c = weft(cache, args);
    c.args(["--db", db.to_str().expect("a UTF-8 path")]);
    c
}

/// A command's stdout as JSON; panics with its stdout and stderr when it is not.
pub fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

/// Writes `dir/<name>.yaml`: a sequential chain `s01 -> s02 -> ... -> sNN` of
/// `component` steps with no retries, with `rules` (YAML, ending in a newline) added.
pub fn chain(dir: &Path, name: &str, component: &Path, n: usize, rules: &str) -> PathBuf {
    let mut y = format!(
        "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {{name: {name}, version: 1.0.0}}\n\
         workflow_metadata: {{workflow_name: {name}, execution_mode: sequential}}\n{rules}execution_graph:\n  nodes:\n"
    );
    for i in 1..=n {
        let dep = if i == 1 { String::new() } else { format!(", depends_on: [s{:02}]", i - 1) };
        y.push_str(&format!(
            "    - {{node_id: s{i:02}, node_type: compute, component: \"{}\", retry_count: 0{dep}}}\n",
            component.display()
        ));
    }
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, y).expect("write the chain workflow");
    path
}

/// A sandbox with `instances` instance slots and its own fresh cache
/// directory (named after `tag`); every plugin is built first.
pub fn sandbox(tag: &str, instances: u32) -> Sandbox {
    plugin("echo");
    Sandbox::new(SandboxConfig {
        cache_dir: Some(temp_cache(tag)),
        max_instances: instances,
        ..SandboxConfig::default()
    })
    .expect("the sandbox starts")
}

/// The example HTTP server (`examples/http-pipeline/server.py`) on a free
/// port of 127.0.0.1, stopped when dropped.
pub struct TestServer {
    child: std::process::Child,
    /// Its port.
    pub port: u16,
}

impl TestServer {
    /// Starts it, with `args` (such as `--token T`).
    pub fn start(args: &[&str]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new("python3")
            .arg(root().join("examples/http-pipeline/server.py"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 is needed for the HTTP tests (it starts examples/http-pipeline/server.py)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).expect("read the port");
        let port = line.trim().strip_prefix("listening on ").and_then(|p| p.parse().ok());
        let port = port.unwrap_or_else(|| panic!("the test server did not start: {line:?}"));
        Self { child, port }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request the server has received, as its `/seen` lists them.
    pub fn seen(&self) -> Value {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the test server");
        write!(s, "GET /seen HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read");
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        serde_json::from_str(body).expect("/seen is JSON")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` (`TERM`, `STOP`, ...) to process `pid`.
pub fn send_signal(pid: u32, signal: &str) {
    let sent = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} {pid}");
}

/// A child process that is killed (and reaped) when dropped, so that a test
/// that fails while it runs leaves nothing behind.
pub struct Reaped(Option<std::process::Child>);

impl Reaped {
    /// Spawns `cmd` with stdout and stderr piped.
    pub fn spawn(mut cmd: Command) -> Self {
        let child =
            cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
        Self(Some(child))
    }

    /// Kills the process now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its output once it has ended; panics (and kills it) if it runs past `within`.
    pub fn output_within(mut self, within: std::time::Duration) -> Output {
        let start = std::time::Instant::now();
        loop {
            let ended = self.0.as_mut().map(|c| matches!(c.try_wait(), Ok(Some(_))));
            match ended {
                Some(true) => return self.0.take().expect("a child").wait_with_output().expect("its output"),
                Some(false) if start.elapsed() < within => std::thread::sleep(std::time::Duration::from_millis(20)),
                _ => {
                    self.kill();
                    panic!("the process ran past {within:?}");
                }
            }
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A config file (`--config`) in `dir` that bounds a run to two minutes:
/// a test run that waits for an approval cannot wait for the approval
/// type's 24 hours.
pub fn short_config(dir: &Path) -> PathBuf {
    let path = dir.join("short.yaml");
    std::fs::write(&path, "timeout_config: {global_timeout_ms: 120000}\n").expect("write the config");
    path
}
