//! A throwaway PostgreSQL cluster for the tests: `initdb` and `pg_ctl` from
//! the installed PostgreSQL, in a temporary directory, on a free port of
//! 127.0.0.1, stopped by a watchdog once the test binary has exited. Each
//! test gets a fresh database from [`fresh_database`]. The tests' cluster
//! does not fsync (what is tested is Weft's logic, not the disk); the
//! benchmarks ask for a durable one (`benches/workers.rs` includes this file).
//!
//! PostgreSQL refuses to run as root: as root, the cluster runs as the
//! `postgres` user that Debian's package creates. Without PostgreSQL, the
//! tests that need it fail with the command that installs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The running cluster.
struct Cluster {
    bin: PathBuf,
    port: u16,
}

const INSTALL: &str = "the PostgreSQL tests start a throwaway cluster with initdb and pg_ctl, and found none: \
                       install PostgreSQL (Debian: `apt-get install -y postgresql`), or put its bin directory on PATH";

/// The directory with `initdb` and `pg_ctl`.
fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| INSTALL.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().ok_or_else(|| INSTALL.to_string())
}

/// `tool` of the cluster's installation, run as the cluster's user.
fn tool(bin: &Path, user: Option<&str>, name: &str) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(bin.join(name));
            c
        }
        None => Command::new(bin.join(name)),
    }
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: cannot start it: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Starts a watchdog that stops the cluster (and removes its directory)
/// once this process has exited, however it exits.
fn watch_over(bin: &Path, user: Option<&str>, data: &Path, dir: &Path) -> Result<(), String> {
    let pg_ctl = bin.join("pg_ctl");
    let stop = match user {
        Some(u) => format!("runuser -u {u} -- '{}' -D '{}' -m immediate stop", pg_ctl.display(), data.display()),
        None => format!("'{}' -D '{}' -m immediate stop", pg_ctl.display(), data.display()),
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start the cluster's watchdog: {e}"))
}

/// Whether this process runs as root.
fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The clusters: without fsync (tests), and with the server's defaults.
static CLUSTERS: [OnceLock<Result<Cluster, String>>; 2] = [OnceLock::new(), OnceLock::new()];

fn start(durable: bool) -> Result<Cluster, String> {
    let bin = bin_dir()?;
    let user = is_root().then(|| "postgres".to_string());
    // Kept: the watchdog removes it once the cluster has stopped.
    let dir = tempfile::Builder::new().prefix("weft-pg-").tempdir().map_err(|e| e.to_string())?.keep();
    if let Some(u) = &user {
        run(
            {
                let mut c = Command::new("chown");
                c.arg(u).arg(dir.as_path());
                c
            },
            &format!("chown {u} (PostgreSQL does not run as root; it runs as `{u}`)"),
        )?;
    }
    let data = dir.as_path().join("data");
    let mut initdb = tool(&bin, user.as_deref(), "initdb");
    initdb.arg("-D").arg(&data).args(["-A", "trust", "-U", "weft", "--no-sync", "-E", "UTF8"]);
    run(initdb, "initdb")?;
    let port = free_port();
    let fast = if durable { "" } else { "-c fsync=off -c synchronous_commit=off -c full_page_writes=off" };
    let options =
        format!("-p {port} -k {} -c listen_addresses=127.0.0.1 {fast} -c max_connections=300", dir.as_path().display());
    let mut pg_ctl = tool(&bin, user.as_deref(), "pg_ctl");
    pg_ctl.arg("-D").arg(&data).args(["-o", &options, "-l"]).arg(dir.as_path().join("log")).args(["-w", "start"]);
    run(pg_ctl, "pg_ctl start")?;
    watch_over(&bin, user.as_deref(), &data, &dir)?;
    Ok(Cluster { bin, port })
}

/// A URL of a new, empty database of the test cluster (started on first
/// use). Panics with what to install when there is no PostgreSQL.
// This file is shared by the tests and the benchmarks: each uses one of the two.
#[allow(dead_code)]
pub fn fresh_database(tag: &str) -> String {
    database_in(false, tag)
}

/// [`fresh_database`] on a cluster that fsyncs as a real deployment does.
#[allow(dead_code)]
pub fn fresh_durable_database(tag: &str) -> String {
    database_in(true, tag)
}

fn database_in(durable: bool, tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let cluster = match CLUSTERS[usize::from(durable)].get_or_init(|| start(durable)) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let name = format!("{tag}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    let mut createdb = Command::new(cluster.bin.join("createdb"));
    createdb.args(["-h", "127.0.0.1", "-p", &cluster.port.to_string(), "-U", "weft", &name]);
    if let Err(e) = run(createdb, "createdb") {
        panic!("{e}");
    }
    format!("postgres://weft@127.0.0.1:{}/{name}", cluster.port)
}
