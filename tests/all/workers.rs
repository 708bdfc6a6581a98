//! Many workers on one PostgreSQL store, through the real `weft worker`
//! binary: failover under SIGKILL, a zombie that wakes up past its lease,
//! a graceful drain on SIGTERM (worker and `weft run`), a run whose
//! component file is not on the worker's machine, and SQLite created by 30
//! processes at once.
//!
//! The PostgreSQL tests start a throwaway cluster (`common::postgres`).

use crate::common::{self, chain, plugin, postgres::fresh_database};
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft::engine::{Engine, RunInput, RunOptions, SandboxExecutor};
use weft::store::{JournalEntry, Journaled, PostgresStore, RunFilter, RunStore};

/// A `weft worker` process, its stderr in a file; killed when dropped.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    fn start(url: &str, log: &Path, extra: &[&str]) -> Self {
        Self::start_with_cache(url, log, extra, None)
    }

    /// [`Worker::start`] with its own cache directory (compiled components,
    /// and the components it fetched from the store).
    fn start_with_cache(url: &str, log: &Path, extra: &[&str], cache: Option<&Path>) -> Self {
        let mut cmd = common::weft("workers", &["worker", "--db", url, "--poll-ms", "200"]);
        cmd.args(extra);
        if let Some(dir) = cache {
            cmd.env("WEFT_CACHE_DIR", dir);
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(file).spawn().expect("spawn weft worker");
        Self { child, log: log.to_path_buf() }
    }

    fn signal(&self, signal: &str) {
        crate::common::send_signal(self.child.id(), signal);
    }

    /// SIGTERM once it handles SIGTERM, then its exit code once it has drained.
    fn drain(mut self) -> Option<i32> {
        let start = Instant::now();
        while !self.log_text().contains("SIGTERM drains it") {
            assert!(start.elapsed() < Duration::from_secs(60), "the worker never started: {}", self.log_text());
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the worker ended by itself ({status}): {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal("TERM");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the worker did not drain within 60 s; its log: {}", self.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// An engine on `url` that submits runs (it never drives them).
fn submitter(url: &str) -> (Engine, Arc<PostgresStore>) {
    let store = Arc::new(PostgresStore::open(url, 4).unwrap());
    let executor = Arc::new(SandboxExecutor::new(Arc::new(common::sandbox("workers-submit", 4))));
    (Engine::new(executor).with_store(store.clone()), store)
}

/// Submits `n` runs of the workflow at `wf` with `context`.
fn submit(rt: &tokio::runtime::Runtime, engine: &Engine, wf: &Path, context: Value, n: usize) -> Vec<String> {
    let wf = Arc::new(weft::workflow::load_file(wf, None).unwrap());
    let input: RunInput = serde_json::from_value(json!({ "context": context })).unwrap();
    (0..n).map(|_| rt.block_on(engine.submit(wf.clone(), &input, RunOptions::default())).unwrap()).collect()
}

/// Waits until `done` holds for the store, or panics after `within`.
fn wait_until(
    rt: &tokio::runtime::Runtime,
    store: &dyn RunStore,
    within: Duration,
    what: &str,
    mut done: impl FnMut(&tokio::runtime::Runtime, &dyn RunStore) -> bool,
) {
    let start = Instant::now();
    while !done(rt, store) {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn journal(rt: &tokio::runtime::Runtime, store: &dyn RunStore, id: &str) -> Vec<Journaled> {
    rt.block_on(store.journal(id)).unwrap()
}

/// The epochs of the run's resumes, in journal order.
fn epochs(journal: &[Journaled]) -> Vec<u64> {
    journal
        .iter()
        .filter_map(|j| match &j.entry {
            JournalEntry::RunResumed { epoch, .. } => Some(*epoch),
            _ => None,
        })
        .collect()
}

/// Whether the journal shows an attempt of `step` started.
fn attempt_started(journal: &[Journaled], step: &str) -> bool {
    journal.iter().any(|j| matches!(&j.entry, JournalEntry::AttemptStarted { step_id, .. } if step_id == step))
}

/// `weft run` of a chain of counters that each sleep `sleep_ms`, on a SQLite
/// file in `dir`, and once its step `step` has started: the process, the
/// store and the run's id.
// The process is returned to the caller, which waits for it.
#[allow(clippy::zombie_processes)]
fn weft_run_until(
    dir: &Path,
    rt: &tokio::runtime::Runtime,
    steps: usize,
    sleep_ms: u64,
    step: &str,
) -> (Child, weft::store::SqliteStore, String) {
    let db = dir.join("runs.db");
    let wf = chain(dir, "term", &plugin("counter"), steps, "");
    let input = dir.join("input.json");
    std::fs::write(&input, format!(r#"{{"context": {{"count": 0, "sleep_ms": {sleep_ms}}}}}"#)).unwrap();
    let mut run = common::weft_db("workers", &db, &["run", wf.to_str().unwrap(), "--input", input.to_str().unwrap()])
        .args(["--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = run.kill();
            let _ = run.wait();
            panic!("the run never started {step}");
        }
        std::thread::sleep(Duration::from_millis(25));
        let Ok(store) = weft::store::SqliteStore::open_existing(&db) else { continue };
        let Some(r) = rt.block_on(store.list_runs(&RunFilter::default())).unwrap().pop() else { continue };
        if attempt_started(&rt.block_on(store.journal(&r.run_id)).unwrap(), step) {
            return (run, store, r.run_id);
        }
    }
}

/// Checks what every run of a counter chain must show, however often its
/// workers died: each step completed exactly once, no attempt started after
/// its step completed, the epochs only went up, and the counter's output
/// counts every step once, in order.
fn assert_each_step_once(journal: &[Journaled], out: &Value, steps: usize, id: &str) {
    let mut completed: BTreeMap<String, usize> = BTreeMap::new();
    for j in journal {
        match &j.entry {
            JournalEntry::StepCompleted { step_id, .. } => *completed.entry(step_id.clone()).or_default() += 1,
            JournalEntry::AttemptStarted { step_id, attempt } => {
                assert!(
                    !completed.contains_key(step_id),
                    "run {id}: {step_id} attempt {attempt} started after it completed"
                )
            }
            _ => {}
        }
    }
    assert_eq!(completed.len(), steps, "run {id}: every step completed");
    assert!(completed.values().all(|&n| n == 1), "run {id}: a step completed twice: {completed:?}");
    let e = epochs(journal);
    assert!(e.windows(2).all(|w| w[0] < w[1]), "run {id}: epochs went backwards: {e:?}");
    let last = &out["step_outputs"][format!("s{steps:02}")];
    assert_eq!(last["count"], steps as u64, "run {id}: the counter counted each step once: {last}");
    let trail: Vec<String> = last["trail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().split('#').next().unwrap().into())
        .collect();
    let expected: Vec<String> = (1..=steps).map(|i| format!("s{i:02}")).collect();
    assert_eq!(trail, expected, "run {id}: each step's output once, in order");
}

#[test]
fn three_workers_killed_at_random_complete_every_run_with_each_step_once() {
    const RUNS: usize = 50;
    const STEPS: usize = 20;
    let url = fresh_database("failover");
    let dir = tempfile::tempdir().unwrap();
    let wf = chain(dir.path(), "failover", &plugin("counter"), STEPS, "");
    let rt = runtime();
    let (engine, store) = submitter(&url);
    let ids = submit(&rt, &engine, &wf, json!({"count": 0, "sleep_ms": 5}), RUNS);
    let seed: u64 = std::env::var("WEFT_FAILOVER_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xfa11);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut starts = 0;
    let mut log = || {
        starts += 1;
        dir.path().join(format!("worker-{starts}.log"))
    };
    let args = ["--concurrency", "4", "--lease-ms", "1000"];
    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::start(&url, &log(), &args)).collect();
    let start = Instant::now();
    let mut kills = 0;
    let finished = |rt: &tokio::runtime::Runtime| {
        let filter = RunFilter { status: Some(weft::engine::ExecutionStatus::Completed), ..Default::default() };
        rt.block_on(store.list_runs(&filter)).unwrap().len()
    };
    while finished(&rt) < RUNS {
        assert!(start.elapsed() < Duration::from_secs(300), "not every run completed in 300 s ({kills} kills)");
        std::thread::sleep(Duration::from_millis(rng.random_range(200..600)));
        let k = rng.random_range(0..workers.len());
        workers[k].signal("KILL");
        workers[k] = Worker::start(&url, &log(), &args);
        kills += 1;
    }
    for w in workers {
        assert_eq!(w.drain(), Some(0));
    }
    let mut takeovers = 0;
    for id in &ids {
        let record = rt.block_on(store.get_run(id)).unwrap();
        let out = serde_json::to_value(record.output.as_deref()).unwrap();
        assert_eq!(out["execution_status"], "completed", "run {id}: {out}");
        let j = journal(&rt, store.as_ref(), id);
        assert_each_step_once(&j, &out, STEPS, id);
        takeovers += epochs(&j).len().saturating_sub(1);
    }
    eprintln!("{RUNS} runs of {STEPS} steps: {kills} SIGKILLs, {takeovers} takeovers, {:?}", start.elapsed());
    assert!(takeovers > 0, "the kills interrupted no run: the test proved nothing");
}

#[test]
fn a_worker_paused_past_its_lease_cannot_write_and_stops_driving_the_run() {
    let url = fresh_database("zombie");
    let dir = tempfile::tempdir().unwrap();
    let wf = chain(dir.path(), "zombie", &plugin("counter"), 3, "");
    let rt = runtime();
    let (engine, store) = submitter(&url);
    let id = submit(&rt, &engine, &wf, json!({"count": 0, "sleep_ms": 2000}), 1).remove(0);
    let zombie = Worker::start(&url, &dir.path().join("zombie.log"), &["--lease-ms", "1000"]);
    let started = |rt: &tokio::runtime::Runtime, s: &dyn RunStore| attempt_started(&journal(rt, s, &id), "s01");
    wait_until(&rt, store.as_ref(), Duration::from_secs(60), "the first worker starts s01", started);
    zombie.signal("STOP");
    // Past its lease, another worker takes the run over.
    std::thread::sleep(Duration::from_millis(1500));
    let heir = Worker::start(&url, &dir.path().join("heir.log"), &[]);
    let taken = |rt: &tokio::runtime::Runtime, s: &dyn RunStore| epochs(&journal(rt, s, &id)).contains(&2);
    wait_until(&rt, store.as_ref(), Duration::from_secs(60), "the second worker takes the run over", taken);
    zombie.signal("CONT");
    let done = |rt: &tokio::runtime::Runtime, s: &dyn RunStore| rt.block_on(s.get_run(&id)).unwrap().output.is_some();
    wait_until(&rt, store.as_ref(), Duration::from_secs(60), "the run completes", done);
    // The zombie's s01 attempt ends after its sleep: its write is refused.
    let zombie_log = || zombie.log_text();
    let start = Instant::now();
    while !zombie_log().contains("another worker took it over") {
        assert!(start.elapsed() < Duration::from_secs(30), "the zombie never noticed: {}", zombie_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(zombie.drain(), Some(0));
    assert_eq!(heir.drain(), Some(0));
    let record = rt.block_on(store.get_run(&id)).unwrap();
    let out = serde_json::to_value(record.output.as_deref()).unwrap();
    let j = journal(&rt, store.as_ref(), &id);
    assert_each_step_once(&j, &out, 3, &id);
    let zombies_finish = j
        .iter()
        .any(|e| matches!(&e.entry, JournalEntry::AttemptFinished { step_id, attempt: 1, .. } if step_id == "s01"));
    assert!(!zombies_finish, "the zombie's late write reached the journal");
    assert_eq!(out["step_outputs"]["s01"]["attempt"], 2, "s01's output is the heir's attempt");
    assert_eq!(epochs(&j), [1, 2]);
}

#[test]
fn sigterm_drains_a_worker_and_another_continues_the_run_at_once() {
    let url = fresh_database("drain");
    let dir = tempfile::tempdir().unwrap();
    let wf = chain(dir.path(), "drain", &plugin("counter"), 3, "");
    let input = dir.path().join("input.json");
    std::fs::write(&input, r#"{"context": {"count": 0, "sleep_ms": 1500}}"#).unwrap();
    let submitted = common::weft("workers", &["submit", wf.to_str().unwrap(), "--input", input.to_str().unwrap()])
        .args(["--db", &url, "-q"])
        .output()
        .unwrap();
    assert_eq!(submitted.status.code(), Some(0), "{}", String::from_utf8_lossy(&submitted.stderr));
    let id = String::from_utf8_lossy(&submitted.stdout).trim().to_string();
    let rt = runtime();
    let store = PostgresStore::open(&url, 2).unwrap();
    assert_eq!(rt.block_on(store.get_run(&id)).unwrap().status, weft::engine::ExecutionStatus::Pending);
    // A lease of two minutes: only a release lets the second worker in soon.
    let first = Worker::start(&url, &dir.path().join("first.log"), &["--lease-ms", "120000"]);
    let in_s02 = |rt: &tokio::runtime::Runtime, s: &dyn RunStore| attempt_started(&journal(rt, s, &id), "s02");
    wait_until(&rt, &store, Duration::from_secs(60), "the first worker starts s02", in_s02);
    let second = Worker::start(&url, &dir.path().join("second.log"), &[]);
    let log = first.log.clone();
    let drained_at = {
        assert_eq!(first.drain(), Some(0), "{}", std::fs::read_to_string(&log).unwrap_or_default());
        Instant::now()
    };
    assert!(std::fs::read_to_string(&log).unwrap().contains("drained"));
    let done = |rt: &tokio::runtime::Runtime, s: &dyn RunStore| rt.block_on(s.get_run(&id)).unwrap().output.is_some();
    wait_until(&rt, &store, Duration::from_secs(60), "the second worker completes the run", done);
    eprintln!("drained worker exit to completion by the other: {:?}", drained_at.elapsed());
    assert_eq!(second.drain(), Some(0));
    let j = journal(&rt, &store, &id);
    let out = serde_json::to_value(rt.block_on(store.get_run(&id)).unwrap().output.as_deref()).unwrap();
    assert_each_step_once(&j, &out, 3, &id);
    // The attempt in flight finished in the draining worker: s02 ran once.
    assert_eq!(out["step_outputs"]["s02"]["attempt"], 1, "{out}");
    let resumed = j.iter().position(|e| matches!(e.entry, JournalEntry::RunResumed { epoch: 2, .. })).unwrap();
    let s02_done = j
        .iter()
        .position(|e| matches!(&e.entry, JournalEntry::StepCompleted { step_id, .. } if step_id == "s02"))
        .unwrap();
    assert!(s02_done < resumed, "s02 completed before the drained worker let go");
}

#[test]
fn a_worker_runs_a_submitted_run_whose_component_file_it_does_not_have() {
    let url = fresh_database("blobs");
    let dir = tempfile::tempdir().unwrap();
    let step = dir.path().join("only-here.wasm");
    std::fs::copy(plugin("counter"), &step).unwrap();
    let wf = chain(dir.path(), "blobs", &step, 2, "");
    let rt = runtime();
    let (engine, store) = submitter(&url);
    let id = submit(&rt, &engine, &wf, json!({"count": 0}), 1).remove(0);
    // The worker's machine has neither the component nor the workflow file.
    std::fs::remove_file(&step).unwrap();
    std::fs::remove_file(&wf).unwrap();
    let cache = dir.path().join("worker-cache");
    let worker = Worker::start_with_cache(&url, &dir.path().join("worker.log"), &[], Some(&cache));
    let done = |rt: &tokio::runtime::Runtime, s: &dyn RunStore| rt.block_on(s.get_run(&id)).unwrap().output.is_some();
    wait_until(&rt, store.as_ref(), Duration::from_secs(60), "the worker completes the run", done);
    let log = worker.log_text();
    assert_eq!(worker.drain(), Some(0));
    let out = serde_json::to_value(rt.block_on(store.get_run(&id)).unwrap().output.as_deref()).unwrap();
    assert_eq!(out["execution_status"], "completed", "{out}\n{log}");
    assert_eq!(out["step_outputs"]["s02"]["count"], 2);
    let fetched: Vec<_> = std::fs::read_dir(cache.join("blobs")).unwrap().collect();
    assert_eq!(fetched.len(), 1, "the component came from the store, by digest, once");
}

#[test]
fn sigterm_leaves_a_weft_run_resumable_after_its_step_in_flight_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let rt = runtime();
    let (run, store, _) = weft_run_until(dir.path(), &rt, 3, 1500, "s02");
    crate::common::send_signal(run.id(), "TERM");
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "drained: {}", String::from_utf8_lossy(&out.stderr));
    let drained: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(drained["execution_status"], "paused", "{drained}");
    let id = drained["output_variables"]["run"]["run_id"].as_str().unwrap().to_string();
    let record = rt.block_on(store.get_run(&id)).unwrap();
    assert_eq!(record.status, weft::engine::ExecutionStatus::Running, "left resumable, not cancelled");
    assert!(!record.lease_live, "the lease was given up");
    let j = rt.block_on(store.journal(&id)).unwrap();
    assert!(j.iter().any(|e| matches!(&e.entry, JournalEntry::StepCompleted { step_id, .. } if step_id == "s02")));
    let resumed = common::weft_db("workers", &db, &["runs", "resume", &id, "-q", "--output", "json"]).output().unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", String::from_utf8_lossy(&resumed.stderr));
    let out = common::json_of(&resumed);
    assert_eq!(out["step_outputs"]["s03"]["count"], 3);
    assert_eq!(out["step_outputs"]["s02"]["attempt"], 1, "the step in flight at SIGTERM was not run again");
}

#[test]
fn thirty_weft_runs_creating_one_sqlite_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let wf = chain(dir.path(), "race", &plugin("echo"), 1, "");
    for round in 0..3 {
        let db = dir.path().join(format!("race-{round}.db"));
        let children: Vec<Child> = (0..30)
            .map(|_| {
                common::weft_db("workers", &db, &["run", wf.to_str().unwrap(), "-q", "--output", "json"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(0), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let rt = runtime();
        let store = weft::store::SqliteStore::open_existing(&db).unwrap();
        assert_eq!(rt.block_on(store.list_runs(&RunFilter::default())).unwrap().len(), 30, "round {round}");
    }
}

#[test]
fn a_second_sigterm_stops_a_draining_weft_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (run, store, id) = weft_run_until(dir.path(), &rt, 2, 20_000, "s01");
    crate::common::send_signal(run.id(), "TERM");
    std::thread::sleep(Duration::from_millis(300));
    crate::common::send_signal(run.id(), "TERM");
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("draining") && stderr.contains("stopped at once"), "{stderr}");
    assert!(out.stdout.is_empty(), "no output contract: the step in flight did not finish");
    let j = rt.block_on(store.journal(&id)).unwrap();
    assert!(!j.iter().any(|e| matches!(e.entry, JournalEntry::StepCompleted { .. })), "s01 was cut off, not finished");
    assert_eq!(rt.block_on(store.get_run(&id)).unwrap().status, weft::engine::ExecutionStatus::Running, "resumable");
}

#[test]
fn a_run_on_a_worker_is_cancelled_and_shown_from_another_process() {
    let url = fresh_database("manage");
    let dir = tempfile::tempdir().unwrap();
    let wf = chain(dir.path(), "manage", &plugin("counter"), 3, "");
    let rt = runtime();
    let (engine, store) = submitter(&url);
    let id = submit(&rt, &engine, &wf, json!({"count": 0, "sleep_ms": 1000}), 1).remove(0);
    let worker = Worker::start(&url, &dir.path().join("worker.log"), &[]);
    let started = |rt: &tokio::runtime::Runtime, s: &dyn RunStore| attempt_started(&journal(rt, s, &id), "s01");
    wait_until(&rt, store.as_ref(), Duration::from_secs(60), "the worker starts the run", started);
    let listed = common::weft("workers", &["runs", "list", "--db", &url, "--json"]).output().unwrap();
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["status"], "running", "{listed}");
    assert!(listed[0]["owner"].as_str().is_some_and(|o| !o.is_empty()), "the worker holds it: {listed}");
    let cancel = common::weft("workers", &["runs", "cancel", &id, "--db", &url]).output().unwrap();
    // It waits for the worker to stop the run, and exits as a cancelled run does.
    assert_eq!(cancel.status.code(), Some(4), "{}", String::from_utf8_lossy(&cancel.stderr));
    let done = |rt: &tokio::runtime::Runtime, s: &dyn RunStore| rt.block_on(s.get_run(&id)).unwrap().output.is_some();
    wait_until(&rt, store.as_ref(), Duration::from_secs(60), "the worker stops the run", done);
    assert_eq!(worker.drain(), Some(0));
    let shown = common::weft("workers", &["runs", "show", &id, "--db", &url, "--json"]).output().unwrap();
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["status"], "cancelled", "{shown}");
}
