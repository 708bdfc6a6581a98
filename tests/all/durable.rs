//! Durable runs end to end: resume through the library after a crash, pinned
//! components, cross-process cancel, run management commands, the
//! dead-letter queue and circuit breakers, with real components and the real
//! SQLite store.

use crate::common::{self, chain, json_of};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use weft::engine::{
    Engine, ExecutionStatus, ResumeOptions, RunEvent, RunInput, RunOptions, SandboxExecutor, StartError, StepExecutor,
};
use weft::sandbox::{Limits, Sandbox, SandboxConfig, StepCall};
use weft::store::{BreakerRecord, BreakerState, JournalEntry, Lease, RunStore, SqliteStore, SyncMode};
use weft::workflow::{Workflow, load_file};

fn engine(db: &Path) -> (Engine, Arc<SqliteStore>) {
    let sandbox = common::sandbox("durable", 16);
    let store = Arc::new(SqliteStore::open(db, SyncMode::Normal).unwrap());
    (Engine::new(Arc::new(SandboxExecutor::new(Arc::new(sandbox)))).with_store(store.clone()), store)
}

fn load(path: &Path) -> Arc<Workflow> {
    Arc::new(load_file(path, None).unwrap_or_else(|e| panic!("{e}")))
}

fn input(v: Value) -> RunInput {
    serde_json::from_value(v).unwrap()
}

fn attempts_started(journal: &[weft::store::Journaled], step: &str) -> Vec<u32> {
    journal
        .iter()
        .filter_map(|j| match &j.entry {
            JournalEntry::AttemptStarted { step_id, attempt } if step_id == step => Some(*attempt),
            _ => None,
        })
        .collect()
}

/// Starts a run on its own runtime and drops that runtime (every task with it)
/// once `after` has completed and its completion is durable: a crash at an
/// await point.
fn crash_after(db: &Path, wf: &Arc<Workflow>, inp: Value, after: &str) -> String {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let id = rt.block_on(async {
        let (engine, store) = engine(db);
        let mut h = engine.start(wf.clone(), &input(inp), RunOptions::default()).await.unwrap();
        while let Some(e) = h.events.recv().await {
            if matches!(&e, RunEvent::StepCompleted { step_id, .. } if step_id == after) {
                break;
            }
        }
        // The event comes as the completion is recorded; the commit follows.
        let completed = |j: &[weft::store::Journaled]| {
            j.iter().any(|j| matches!(&j.entry, JournalEntry::StepCompleted { step_id, .. } if step_id == after))
        };
        while !completed(&store.journal(&h.run_id).await.unwrap()) {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        h.run_id.clone()
    });
    // Wait until every task of the "crashed" runtime is dropped (a step may be
    // mid-poll on a worker): only then has this process stopped driving the run.
    rt.shutdown_timeout(std::time::Duration::from_secs(30));
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_resumes_through_the_library_without_rerunning_completed_steps() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let wf = load(&chain(dir.path(), "resume", &common::plugin("counter"), 5, ""));
    let id = tokio::task::spawn_blocking({
        let (db, wf) = (db.clone(), wf.clone());
        move || crash_after(&db, &wf, json!({"context": {"count": 0, "sleep_ms": 30}}), "s02")
    })
    .await
    .unwrap();

    let (engine, store) = engine(&db);
    assert_eq!(store.get_run(&id).await.unwrap().status, ExecutionStatus::Running, "the crash left it unfinished");
    let out = engine.resume(&id, ResumeOptions::default()).await.unwrap().wait().await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
    assert_eq!(out.step_outputs["s05"]["count"], 5);
    let journal = store.journal(&id).await.unwrap();
    assert_eq!(attempts_started(&journal, "s01"), [1]);
    assert_eq!(attempts_started(&journal, "s02"), [1]);
    // Outputs of completed steps come from the journal: the trail shows each
    // step once, with the attempt it ran as.
    let trail = out.step_outputs["s05"]["trail"].as_array().unwrap().clone();
    assert_eq!(trail[0], "s01#1");
    assert_eq!(trail[1], "s02#1");
    assert_eq!(trail.len(), 5);
    assert!(journal.iter().any(|j| matches!(j.entry, JournalEntry::RunResumed { .. })));
    // Resuming a finished run is refused with its status.
    let e = engine.resume(&id, ResumeOptions::default()).await.err().unwrap();
    assert!(matches!(e, StartError::Finished { status: ExecutionStatus::Completed, .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_component_is_refused_on_resume_unless_upgrading() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let step = dir.path().join("step.wasm");
    std::fs::copy(common::plugin("counter"), &step).unwrap();
    let wf = load(&chain(dir.path(), "pinned", &step, 4, ""));
    let id = tokio::task::spawn_blocking({
        let (db, wf) = (db.clone(), wf.clone());
        move || crash_after(&db, &wf, json!({"context": {"count": 0, "sleep_ms": 30}}), "s01")
    })
    .await
    .unwrap();
    std::fs::copy(common::plugin("echo"), &step).unwrap();

    let (engine, store) = engine(&db);
    let e = engine.resume(&id, ResumeOptions::default()).await.err().unwrap();
    let msg = e.to_string();
    assert!(matches!(e, StartError::ComponentChanged(_)), "{msg}");
    assert!(msg.contains("node `s02`") && msg.contains("sha256:") && msg.contains("--upgrade"), "{msg}");
    assert_eq!(store.get_run(&id).await.unwrap().status, ExecutionStatus::Running, "a refusal changes nothing");
    let out = engine.resume(&id, ResumeOptions { upgrade: true, ..Default::default() }).await.unwrap().wait().await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_component_opens_its_breaker_across_runs_and_a_probe_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let step = dir.path().join("flaky-service.wasm");
    std::fs::copy(common::plugin("panic"), &step).unwrap();
    // A long cooldown, ended by hand below: the test must not depend on how
    // fast the machine is.
    let rules = "coordination_rules: {circuit_breaker_enabled: true, circuit_breaker_failure_threshold: 2, \
                 circuit_breaker_cooldown_ms: 60000}\n";
    let wf = load(&chain(dir.path(), "breaker", &step, 1, rules));
    // Breakers are keyed by the component's canonical path.
    let key = step.canonicalize().unwrap().display().to_string();
    {
        let (engine, store) = engine(&db);
        for _ in 0..2 {
            let out = engine.run(wf.clone(), &RunInput::default(), RunOptions::default()).await.unwrap();
            assert_eq!(out.errors[0].error_type, "trap", "{:?}", out.errors);
        }
        let b = store.breaker_load(&key).await.unwrap().unwrap();
        assert_eq!((b.state, b.failures), (BreakerState::Open, 2));
    }
    // A new engine on a new connection (as another process would be) sees it open.
    let (engine, store) = engine(&db);
    let out = engine.run(wf.clone(), &RunInput::default(), RunOptions::default()).await.unwrap();
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.errors[0].error_type, "circuit_open", "{:?}", out.errors);
    assert!(out.errors[0].message.contains("circuit breaker"), "{}", out.errors[0].message);
    assert_eq!(out.metrics["step.s01.fuel_consumed"], 0.0, "the attempt did not run");
    // The same file spelt another way (a symlink) is the same component, with the same breaker.
    let alias = dir.path().join("alias.wasm");
    std::os::unix::fs::symlink(&step, &alias).unwrap();
    let aliased = load(&chain(dir.path(), "breaker-alias", &alias, 1, rules));
    let out = engine.run(aliased, &RunInput::default(), RunOptions::default()).await.unwrap();
    assert_eq!(out.errors[0].error_type, "circuit_open", "{:?}", out.errors);
    // After the cooldown one probe goes through; the component works again.
    std::fs::copy(common::plugin("echo"), &step).unwrap();
    let open = store.breaker_load(&key).await.unwrap().unwrap();
    let cooled = BreakerRecord { since_ms: open.since_ms - 60_001, ..open.clone() };
    assert!(store.breaker_cas(&key, open.version, &cooled).await.unwrap());
    let (engine, _) = self::engine(&db);
    let out = engine.run(wf.clone(), &RunInput::default(), RunOptions::default()).await.unwrap();
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
    let b = store.breaker_load(&key).await.unwrap().unwrap();
    assert_eq!((b.state, b.failures), (BreakerState::Closed, 0));
}

// Through the CLI.

fn weft(db: &Path, args: &[&str]) -> Command {
    common::weft_db("durable-cli", db, args)
}

#[test]
fn runs_list_show_and_logs_describe_a_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let wf = chain(dir.path(), "listed", &common::plugin("counter"), 3, "");
    let out = weft(&db, &["run", wf.to_str().unwrap(), "--output", "json", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let id = json_of(&out)["output_variables"]["run"]["run_id"].as_str().unwrap().to_string();

    let list = json_of(&weft(&db, &["runs", "list", "--json", "--status", "completed"]).output().unwrap());
    assert_eq!(list[0]["run_id"], id.as_str());
    assert_eq!(list[0]["workflow"], "listed");
    let none = json_of(&weft(&db, &["runs", "list", "--json", "--workflow", "other"]).output().unwrap());
    assert_eq!(none, json!([]));
    let table = weft(&db, &["runs", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains(&id));

    let show = json_of(&weft(&db, &["runs", "show", &id]).output().unwrap());
    assert_eq!(show["status"], "completed");
    assert_eq!(show["output"]["execution_status"], "completed");
    let step = &show["steps"][1];
    assert_eq!(step["step_id"], "s02");
    assert_eq!(step["state"], "completed");
    // The counter fixture's output: one more than its input, its trail.
    assert_eq!(step["output"]["count"], 2, "{step}");
    assert_eq!(step["output"]["trail"], json!(["s01#1", "s02#1"]), "{step}");
    let attempt = &step["attempts"][0];
    assert_eq!(attempt["attempt"], 1);
    assert_eq!(attempt["kind"], "succeeded");
    assert!(attempt.get("output").is_none(), "the output is shown once, on the step: {attempt}");
    assert!(attempt["stats"]["fuel_consumed"].as_u64().unwrap() > 0, "{attempt}");
    assert!(attempt["stats"]["peak_memory_bytes"].as_u64().unwrap() > 0, "{attempt}");
    assert!(attempt["stats"]["wall_time_us"].is_u64(), "{attempt}");
    assert_eq!(attempt["logs"][0]["message"], "executing s02 attempt 1");

    let logs = weft(&db, &["runs", "logs", &id, "s03"]).output().unwrap();
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("s03 #1") && text.contains("executing s03 attempt 1"), "{text}");
    assert!(!text.contains("s01"), "only the asked step: {text}");
    let missing = weft(&db, &["runs", "logs", &id, "nope"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let unknown = weft(&db, &["runs", "show", "no-such-run"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no run has the id `no-such-run`"));
}

#[test]
fn runs_cancel_stops_a_run_driven_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let wf = chain(dir.path(), "slow", &common::plugin("counter"), 20, "");
    std::fs::write(dir.path().join("in.json"), r#"{"context": {"sleep_ms": 200}}"#).unwrap();
    let mut child = weft(&db, &["run", wf.to_str().unwrap(), "--input", dir.path().join("in.json").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut id = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("run ")
            && id.is_empty()
        {
            id = rest.split_whitespace().next().unwrap().to_string();
        }
        if line.contains("s02: attempt 1 started") {
            break;
        }
    }
    assert!(!id.is_empty());
    let cancel = weft(&db, &["runs", "cancel", &id, "--output", "json"]).output().unwrap();
    assert_eq!(cancel.status.code(), Some(4), "{}", String::from_utf8_lossy(&cancel.stderr));
    assert_eq!(json_of(&cancel)["execution_status"], "cancelled");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(4), "the owning process ends its run as cancelled");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("run finished: Cancelled")), "{rest:?}");
    // Cancelling a finished run says so.
    let again = weft(&db, &["runs", "cancel", &id]).output().unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));
}

#[test]
fn a_dead_lettered_run_replays_from_its_failed_step_with_journaled_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let step = dir.path().join("s2.wasm");
    std::fs::copy(common::plugin("flaky"), &step).unwrap();
    let wf = dir.path().join("dlq.yaml");
    std::fs::write(
        &wf,
        format!(
            "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {{name: dlq, version: 1.0.0}}\n\
             workflow_metadata: {{workflow_name: dlq, execution_mode: sequential}}\n\
             coordination_rules: {{dead_letter_queue_enabled: true}}\nexecution_graph:\n  nodes:\n\
             \x20   - {{node_id: s1, node_type: compute, component: \"{}\"}}\n\
             \x20   - node_id: s2\n      node_type: compute\n      component: \"{}\"\n      depends_on: [s1]\n\
             \x20     retry_count: 0\n\
             \x20     input: {{fail_until_attempt: \"99\", error: \"'fatal'\", count: \"steps.s1.count\", trail: \"steps.s1.trail\"}}\n",
            common::plugin("counter").display(),
            step.display()
        ),
    )
    .unwrap();
    let out = weft(&db, &["run", wf.to_str().unwrap(), "--output", "json", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let failed = json_of(&out);
    let id = failed["output_variables"]["run"]["run_id"].as_str().unwrap().to_string();
    let q = json_of(&weft(&db, &["dlq", "list", "--json"]).output().unwrap());
    assert_eq!(q[0]["run_id"], id.as_str());
    assert_eq!(q[0]["step_id"], "s2");
    assert_eq!(q[0]["error_type"], "plugin_error");

    // Fix the component; the pinned digest then differs, so replay needs --upgrade.
    std::fs::copy(common::plugin("counter"), &step).unwrap();
    let refused = weft(&db, &["dlq", "replay", &id]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--upgrade"));
    let replay = weft(&db, &["dlq", "replay", &id, "--upgrade", "--output", "json", "-q"]).output().unwrap();
    assert_eq!(replay.status.code(), Some(0), "{}", String::from_utf8_lossy(&replay.stderr));
    let out = json_of(&replay);
    let new_id = out["output_variables"]["run"]["run_id"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    // s2 ran with its journaled input (s1's count), s1 was not run again.
    assert_eq!(out["step_outputs"]["s2"]["count"], 2);
    assert_eq!(out["step_outputs"]["s1"], failed["step_outputs"]["s1"]);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = SqliteStore::open(&db, SyncMode::Normal).unwrap();
    let journal = rt.block_on(store.journal(&new_id)).unwrap();
    assert_eq!(attempts_started(&journal, "s1"), [1], "s1's journaled attempt, copied, not re-run");
    assert_eq!(attempts_started(&journal, "s2"), [1]);
    assert_eq!(rt.block_on(store.get_run(&new_id)).unwrap().run.replay_of.as_deref(), Some(id.as_str()));
    let q = json_of(&weft(&db, &["dlq", "list", "--json"]).output().unwrap());
    assert_eq!(q[0]["replayed_as"], new_id.as_str());
}

#[test]
fn health_reports_the_store_the_sandbox_and_the_components() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let wf = chain(dir.path(), "healthy", &common::plugin("counter"), 2, "");
    let ok = weft(&db, &["health", wf.to_str().unwrap()]).output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));
    let report = json_of(&ok);
    assert_eq!(report["status"], "healthy");
    assert_eq!(report["components"]["store"], "healthy");
    assert_eq!(report["active_workflows"], 0);
    assert_eq!(report["store"]["kind"], "sqlite");
    // A store that is not a Weft database makes it unhealthy, saying why.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "not a database at all").unwrap();
    let bad = weft(&junk, &["health", wf.to_str().unwrap()]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let report = json_of(&bad);
    assert_eq!(report["status"], "unhealthy");
    assert!(report["problems"][0].as_str().unwrap().contains("not a Weft database"), "{report}");
    // The same file is refused by every store command with exit code 2.
    let list = weft(&junk, &["runs", "list"]).output().unwrap();
    assert_eq!(list.status.code(), Some(2));
}

#[test]
fn resume_all_continues_every_orphaned_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let wf = chain(dir.path(), "orphans", &common::plugin("counter"), 6, "");
    let inp = dir.path().join("in.json");
    std::fs::write(&inp, r#"{"context": {"sleep_ms": 30}}"#).unwrap();
    for _ in 0..2 {
        let run = weft(&db, &["run", wf.to_str().unwrap(), "--input", inp.to_str().unwrap()]);
        assert!(common::kill_when_seen(run, "s02: attempt", 5), "killed mid-run");
    }
    let running = json_of(&weft(&db, &["runs", "list", "--json", "--status", "running"]).output().unwrap());
    assert_eq!(running.as_array().unwrap().len(), 2, "{running}");
    let out = weft(&db, &["resume", "--all", "--output", "json", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let outs = json_of(&out);
    assert_eq!(outs.as_array().unwrap().len(), 2);
    for o in outs.as_array().unwrap() {
        assert_eq!(o["execution_status"], "completed");
        assert_eq!(o["step_outputs"]["s06"]["count"], 6);
    }
    let running = json_of(&weft(&db, &["runs", "list", "--json", "--status", "running"]).output().unwrap());
    assert_eq!(running, json!([]));
    let none = weft(&db, &["resume", "--all"]).output().unwrap();
    assert!(String::from_utf8_lossy(&none.stderr).contains("no interrupted runs"));
}

#[test]
fn cancelling_an_orphaned_run_stops_it_here_without_starting_any_step() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let wf = chain(dir.path(), "orphan-cancel", &common::plugin("counter"), 6, "");
    let inp = dir.path().join("in.json");
    std::fs::write(&inp, r#"{"context": {"sleep_ms": 30}}"#).unwrap();
    let run = weft(&db, &["run", wf.to_str().unwrap(), "--input", inp.to_str().unwrap()]);
    assert!(common::kill_when_seen(run, "s03: attempt", 5), "killed mid-run");
    let listed = json_of(&weft(&db, &["runs", "list", "--json"]).output().unwrap());
    let id = listed[0]["run_id"].as_str().unwrap().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = SqliteStore::open(&db, SyncMode::Normal).unwrap();
    let before = rt.block_on(store.journal(&id)).unwrap().len();

    let out = weft(&db, &["runs", "cancel", &id, "--output", "json", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    let o = json_of(&out);
    assert_eq!(o["execution_status"], "cancelled");
    assert!(o["errors"].as_array().unwrap().iter().any(|e| e["error_type"] == "cancelled"), "{o}");
    let journal = rt.block_on(store.journal(&id)).unwrap();
    let started_after = journal[before..].iter().filter(|j| matches!(j.entry, JournalEntry::AttemptStarted { .. }));
    assert_eq!(started_after.count(), 0, "a cancelled run starts nothing");
    assert_eq!(rt.block_on(store.get_run(&id)).unwrap().status, ExecutionStatus::Cancelled);
}

#[test]
fn a_replay_redoes_effects_that_compensation_undid() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let charge = dir.path().join("charge.wasm");
    std::fs::copy(common::plugin("flaky"), &charge).unwrap();
    let wf = dir.path().join("saga.yaml");
    std::fs::write(
        &wf,
        format!(
            "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {{name: saga, version: 1.0.0}}\n\
             workflow_metadata: {{workflow_name: saga, execution_mode: sequential}}\n\
             coordination_rules: {{dead_letter_queue_enabled: true, failure_recovery_strategy: compensate}}\n\
             execution_graph:\n  nodes:\n\
             \x20   - {{node_id: book, node_type: effect, component: \"{}\", compensate: true, input: {{kind: \"'book'\"}}}}\n\
             \x20   - {{node_id: charge, node_type: compute, component: \"{}\", depends_on: [book], retry_count: 0, \
             input: {{fail_until_attempt: \"99\", error: \"'fatal'\"}}}}\n",
            common::plugin("ledger").display(),
            charge.display()
        ),
    )
    .unwrap();
    let out = weft(&db, &["run", wf.to_str().unwrap(), "--output", "json", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let failed = json_of(&out);
    assert_eq!(failed["output_variables"]["compensation"][0]["status"], "compensated", "{failed}");
    let id = failed["output_variables"]["run"]["run_id"].as_str().unwrap().to_string();

    std::fs::copy(common::plugin("counter"), &charge).unwrap();
    let replay = weft(&db, &["dlq", "replay", &id, "--upgrade", "--output", "json", "-q"]).output().unwrap();
    assert_eq!(replay.status.code(), Some(0), "{}", String::from_utf8_lossy(&replay.stderr));
    let out = json_of(&replay);
    assert_eq!(out["completed_steps"], json!(["book", "charge"]));
    // The booking was undone, so the replay booked again: a new ledger entry
    // (its id derives from the new run's idempotency key).
    let (old, new) = (&failed["step_outputs"]["book"]["entry_id"], &out["step_outputs"]["book"]["entry_id"]);
    assert!(old.is_string() && new.is_string());
    assert_ne!(old, new, "the compensated effect ran again");
}

/// A store that fails every append after the first `ok` ones (a full disk, say).
struct FailingStore {
    inner: weft::store::MemoryStore,
    ok: std::sync::atomic::AtomicUsize,
}

impl weft::contract::KeyValue for FailingStore {
    fn kv_get<'a>(&'a self, scope: &'a str, key: &'a str) -> weft::contract::KvFuture<'a, Option<Vec<u8>>> {
        self.inner.kv_get(scope, key)
    }
    fn kv_set<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        value: &'a [u8],
        max: u64,
    ) -> weft::contract::KvFuture<'a, ()> {
        self.inner.kv_set(scope, key, value, max)
    }
    fn kv_delete<'a>(&'a self, scope: &'a str, key: &'a str) -> weft::contract::KvFuture<'a, bool> {
        self.inner.kv_delete(scope, key)
    }
    fn kv_keys<'a>(&'a self, scope: &'a str, prefix: &'a str, n: usize) -> weft::contract::KvFuture<'a, Vec<String>> {
        self.inner.kv_keys(scope, prefix, n)
    }
}

impl RunStore for FailingStore {
    fn info(&self) -> weft::store::StoreFuture<'_, weft::store::StoreInfo> {
        self.inner.info()
    }
    fn create_run<'a>(
        &'a self,
        run: &'a weft::store::NewRun,
        first: &'a [JournalEntry],
        blobs: &'a [weft::store::ComponentBlob],
    ) -> weft::store::StoreFuture<'a, Lease> {
        self.inner.create_run(run, first, blobs)
    }
    fn submit_run<'a>(
        &'a self,
        run: &'a weft::store::NewRun,
        blobs: &'a [weft::store::ComponentBlob],
    ) -> weft::store::StoreFuture<'a, ()> {
        self.inner.submit_run(run, blobs)
    }
    fn append<'a>(&'a self, lease: &'a Lease, entries: Vec<JournalEntry>) -> weft::store::StoreFuture<'a, ()> {
        let left =
            self.ok.fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |n| {
                n.checked_sub(1)
            });
        if left.is_err() {
            return Box::pin(std::future::ready(Err(weft::store::StoreError::Backend("disk full".into()))));
        }
        self.inner.append(lease, entries)
    }
    fn journal<'a>(&'a self, run_id: &'a str) -> weft::store::StoreFuture<'a, Vec<weft::store::Journaled>> {
        self.inner.journal(run_id)
    }
    fn get_run<'a>(&'a self, run_id: &'a str) -> weft::store::StoreFuture<'a, weft::store::RunRecord> {
        self.inner.get_run(run_id)
    }
    fn list_runs<'a>(
        &'a self,
        filter: &'a weft::store::RunFilter,
    ) -> weft::store::StoreFuture<'a, Vec<weft::store::RunSummary>> {
        self.inner.list_runs(filter)
    }
    fn claim<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        lease_ms: u64,
        steal_from: Option<&'a str>,
    ) -> weft::store::StoreFuture<'a, Lease> {
        self.inner.claim(run_id, owner, lease_ms, steal_from)
    }
    fn claim_next<'a>(&'a self, owner: &'a str, lease_ms: u64, n: usize) -> weft::store::StoreFuture<'a, Vec<Lease>> {
        self.inner.claim_next(owner, lease_ms, n)
    }
    fn heartbeat<'a>(&'a self, lease: &'a Lease, lease_ms: u64) -> weft::store::StoreFuture<'a, bool> {
        self.inner.heartbeat(lease, lease_ms)
    }
    fn release<'a>(&'a self, lease: &'a Lease) -> weft::store::StoreFuture<'a, ()> {
        self.inner.release(lease)
    }
    fn blob_get<'a>(&'a self, digest: &'a str) -> weft::store::StoreFuture<'a, Option<Vec<u8>>> {
        self.inner.blob_get(digest)
    }
    fn blob_put<'a>(&'a self, blob: &'a weft::store::ComponentBlob) -> weft::store::StoreFuture<'a, bool> {
        self.inner.blob_put(blob)
    }
    fn request_cancel<'a>(&'a self, run_id: &'a str) -> weft::store::StoreFuture<'a, bool> {
        self.inner.request_cancel(run_id)
    }
    fn dlq_list(&self) -> weft::store::StoreFuture<'_, Vec<weft::store::DlqEntry>> {
        self.inner.dlq_list()
    }
    fn dlq_mark_replayed<'a>(&'a self, run_id: &'a str, new_run_id: &'a str) -> weft::store::StoreFuture<'a, ()> {
        self.inner.dlq_mark_replayed(run_id, new_run_id)
    }
    fn breaker_load<'a>(
        &'a self,
        component: &'a str,
    ) -> weft::store::StoreFuture<'a, Option<weft::store::BreakerRecord>> {
        self.inner.breaker_load(component)
    }
    fn breaker_cas<'a>(
        &'a self,
        component: &'a str,
        expected: u64,
        next: &'a weft::store::BreakerRecord,
    ) -> weft::store::StoreFuture<'a, bool> {
        self.inner.breaker_cas(component, expected, next)
    }
    fn memo_get<'a>(&'a self, key: &'a str) -> weft::store::StoreFuture<'a, Option<weft::store::MemoEntry>> {
        self.inner.memo_get(key)
    }
    fn memo_put<'a>(
        &'a self,
        key: &'a str,
        entry: &'a weft::store::MemoEntry,
        max_bytes: u64,
    ) -> weft::store::StoreFuture<'a, ()> {
        self.inner.memo_put(key, entry, max_bytes)
    }
    fn memo_stats(&self) -> weft::store::StoreFuture<'_, weft::store::MemoStats> {
        self.inner.memo_stats()
    }
    fn memo_clear(&self) -> weft::store::StoreFuture<'_, u64> {
        self.inner.memo_clear()
    }

    fn signal_put<'a>(
        &'a self,
        run_id: &'a str,
        step_id: &'a str,
        signal: &'a weft::store::Signal,
    ) -> weft::store::StoreFuture<'a, weft::store::SignalPut> {
        self.inner.signal_put(run_id, step_id, signal)
    }

    fn signal_get<'a>(
        &'a self,
        run_id: &'a str,
        step_id: &'a str,
    ) -> weft::store::StoreFuture<'a, Option<weft::store::Signal>> {
        self.inner.signal_get(run_id, step_id)
    }
    fn usage_add<'a>(
        &'a self,
        tenant: &'a str,
        counter: &'a str,
        delta: i64,
        limit: u64,
    ) -> weft::store::StoreFuture<'a, weft::store::UsageAdd> {
        self.inner.usage_add(tenant, counter, delta, limit)
    }
    fn dlq_list_of<'a>(&'a self, tenant: &'a str) -> weft::store::StoreFuture<'a, Vec<weft::store::DlqEntry>> {
        self.inner.dlq_list_of(tenant)
    }
    fn dlq_waiting(&self) -> weft::store::StoreFuture<'_, u64> {
        self.inner.dlq_waiting()
    }
    fn usage_get<'a>(&'a self, tenant: &'a str, counter: &'a str) -> weft::store::StoreFuture<'a, u64> {
        self.inner.usage_get(tenant, counter)
    }
    fn usage_prune<'a>(
        &'a self,
        tenant: &'a str,
        prefix: &'a str,
        before: &'a str,
    ) -> weft::store::StoreFuture<'a, u64> {
        self.inner.usage_prune(tenant, prefix, before)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_be_written_stops_the_run_resumably() {
    let dir = tempfile::tempdir().unwrap();
    let wf = load(&chain(dir.path(), "full-disk", &common::plugin("counter"), 5, ""));
    let store = Arc::new(FailingStore { inner: weft::store::MemoryStore::new(), ok: 2.into() });
    let sandbox =
        Sandbox::new(SandboxConfig { cache_dir: Some(common::temp_cache("durable")), ..SandboxConfig::default() })
            .unwrap();
    let engine = Engine::new(Arc::new(SandboxExecutor::new(Arc::new(sandbox)))).with_store(store.clone());
    let out = engine.run(wf, &input(json!({"context": {"count": 0}})), RunOptions::default()).await.unwrap();
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    let err = out.errors.last().unwrap();
    assert_eq!(err.error_type, "store");
    assert!(err.message.contains("disk full") && err.message.contains("weft runs resume"), "{}", err.message);
    // Two commits got through: s01 scheduled, then s01 completed with s02 scheduled.
    // Nothing after the failed write ran, and the run is still resumable.
    let id = out.output_variables["run"]["run_id"].as_str().unwrap().to_string();
    let record = store.get_run(&id).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Running);
    let journal = store.journal(&id).await.unwrap();
    assert!(attempts_started(&journal, "s03").is_empty(), "no step started after the failed write");
    store.ok.store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    let out = engine.resume(&id, ResumeOptions::default()).await.unwrap().wait().await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
    assert_eq!(out.step_outputs["s05"]["count"], 5);
    assert_eq!(attempts_started(&store.journal(&id).await.unwrap(), "s01"), [1], "s01 was not run again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_runs_the_version_its_run_pinned_after_the_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let step = dir.path().join("step.wasm");
    std::fs::copy(common::plugin("counter"), &step).unwrap();
    let wf = Arc::new(load_file(&chain(dir.path(), "pinned", &step, 1, ""), None).unwrap());
    let executor = SandboxExecutor::new(Arc::new(common::sandbox("pinned", 4)));
    executor.prepare(&wf).unwrap();
    let pinned = executor.pins(&wf)["s01"].digest.clone();
    // Redeployed while the run goes on; the next run reads the new version.
    let replacement = dir.path().join("new.wasm");
    std::fs::copy(common::plugin("echo"), &replacement).unwrap();
    std::fs::rename(&replacement, &step).unwrap();
    executor.prepare(&wf).unwrap();
    let now = executor.pins(&wf)["s01"].digest.clone();
    assert_ne!(pinned, now, "the next run pins the new version");
    let call = || StepCall::run(json!({"count": 41}).as_object().cloned().unwrap());
    let node = &wf.nodes[0];
    let old = executor.execute(node, Some(&pinned), call(), Limits::default(), Default::default()).await;
    assert_eq!(old.outcome.unwrap().output["count"], 42, "the pinned counter ran, not the new echo");
    let new = executor.execute(node, Some(&now), call(), Limits::default(), Default::default()).await;
    assert_eq!(new.outcome.unwrap().output["count"], 41, "the new run's pin runs the echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_holds_its_pinned_components_after_the_sandbox_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    let step = dir.path().join("step.wasm");
    std::fs::copy(common::plugin("counter"), &step).unwrap();
    let wf = Arc::new(load_file(&chain(dir.path(), "held", &step, 1, ""), None).unwrap());
    // Room for one pre-linked component: loading another drops the first.
    let config = SandboxConfig {
        cache_dir: Some(common::temp_cache("held")),
        max_instances: 4,
        max_loaded_components: 1,
        ..SandboxConfig::default()
    };
    let executor = SandboxExecutor::new(Arc::new(Sandbox::new(config).unwrap()));
    executor.prepare(&wf).unwrap();
    let pinned = executor.pins(&wf)["s01"].digest.clone();
    let held = executor.hold(&wf);
    let replacement = dir.path().join("new.wasm");
    std::fs::copy(common::plugin("echo"), &replacement).unwrap();
    std::fs::rename(&replacement, &step).unwrap();
    executor.prepare(&wf).unwrap();
    let call = || StepCall::run(json!({"count": 1}).as_object().cloned().unwrap());
    let node = &wf.nodes[0];
    let report = executor.execute(node, Some(&pinned), call(), Limits::default(), Default::default()).await;
    assert_eq!(report.outcome.unwrap().output["count"], 2, "the held counter ran");
    drop(held);
    let report = executor.execute(node, Some(&pinned), call(), Limits::default(), Default::default()).await;
    let failure = report.failure().map(ToString::to_string).unwrap_or_default();
    assert!(failure.contains("changed while the run was going"), "nothing holds it now: {failure}");
}
