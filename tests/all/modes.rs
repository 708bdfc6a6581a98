//! End-to-end tests of issue-12 features through the real `weft` binary:
//! the CEL budget, batch waves, `for_each` fan-out and memoized steps.

use crate::common;
use common::plugin;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Output;

fn weft(args: &[&str]) -> Output {
    common::weft("modes", args).output().expect("run weft")
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weft-modes-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("make the test directory");
    d
}

/// A one-node workflow around `echo` whose node has `extra` (YAML, indented
/// for the node's map).
fn one_node(d: &Path, extra: &str) -> PathBuf {
    let y = format!(
        "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {{name: one, version: 1.0.0}}\n\
         workflow_metadata: {{workflow_name: one, execution_mode: sequential}}\nexecution_graph:\n  nodes:\n\
         \x20   - node_id: s\n      node_type: compute\n      component: \"{}\"\n      retry_count: 0\n{extra}",
        plugin("echo").display()
    );
    let path = d.join("one.yaml");
    std::fs::write(&path, y).expect("write the workflow");
    path
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_cel_bomb_is_refused_at_validation_with_its_place() {
    let d = dir("bomb");
    let wf = one_node(
        &d,
        "      input:\n        n: \"context.l.map(a, context.l.map(b, context.l.map(c, a+b+c))).size()\"\n",
    );
    let out = weft(&["validate", wf.to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("one.yaml:12:12") && said.contains("`input.n`"), "names the file, line and key: {said}");
    assert!(said.contains("nests comprehensions") && said.contains("3 deep"), "{said}");
}

#[test]
fn an_expression_past_its_budget_fails_its_step_naming_node_key_and_budget() {
    let d = dir("budget");
    let wf = one_node(&d, "      input:\n        pairs: \"context.l.map(a, context.l.map(b, a * b)).size()\"\n");
    let input = d.join("input.json");
    let numbers: Vec<u32> = (0..200).collect();
    std::fs::write(&input, json!({"context": {"l": numbers}}).to_string()).unwrap();
    // 200 x 200 iterations: within the default budget.
    let out =
        weft(&["run", wf.to_str().unwrap(), "--input", input.to_str().unwrap(), "--in-memory", "--output", "json"]);
    let o = common::json_of(&out);
    assert_eq!(o["execution_status"], "completed", "{}", text(&out));
    assert_eq!(o["step_outputs"]["s"]["pairs"], 200);
    // An operator budget of 10,000 iterations stops it.
    let policy = d.join("policy.toml");
    std::fs::write(&policy, "[expressions]\nmax_steps = 10000\n").unwrap();
    let out = weft(&[
        "run",
        wf.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--in-memory",
        "--output",
        "json",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    let o = common::json_of(&out);
    assert_eq!(o["execution_status"], "failed", "{}", text(&out));
    let error = &o["errors"][0];
    assert_eq!(error["step_id"], "s");
    assert_eq!(error["error_type"], "expression");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`input.pairs`") && message.contains("budget of 10000 comprehension iterations"),
        "{message}"
    );
    // A budget out of bounds is refused, naming the key.
    std::fs::write(&policy, "[expressions]\nmax_steps = 0\n").unwrap();
    let out = weft(&["validate", wf.to_str().unwrap(), "--policy", policy.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("[expressions] max_steps is 0"), "{}", text(&out));
}

/// A run of `wf` on `input` in a fresh database under `d`, killed by SIGKILL
/// `extra_ms` after its stderr shows `needle`, then resumed to its end.
struct Crashed {
    /// Whether the kill landed before the run ended by itself.
    killed: bool,
    store: weft::store::SqliteStore,
    rt: tokio::runtime::Runtime,
    id: String,
    /// The journal as the kill left it.
    before: Vec<weft::store::Journaled>,
    /// The run's output contract once finished.
    out: serde_json::Value,
}

impl Crashed {
    fn run(d: &Path, wf: &Path, input: &Path, needle: &str, extra_ms: u64) -> Self {
        use weft::store::{RunFilter, RunStore, SqliteStore, SyncMode};
        let db = d.join("runs.db");
        let run = common::weft_db("modes", &db, &["run", wf.to_str().unwrap(), "--input", input.to_str().unwrap()]);
        let killed = common::kill_when_seen(run, needle, extra_ms);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let store = SqliteStore::open(&db, SyncMode::Normal).unwrap();
        let id = rt.block_on(store.list_runs(&RunFilter::default())).unwrap()[0].run_id.clone();
        let before = rt.block_on(store.journal(&id)).unwrap();
        let out = if killed {
            let done =
                common::weft_db("modes", &db, &["runs", "resume", &id, "--output", "json", "-q"]).output().unwrap();
            assert_eq!(done.status.code(), Some(0), "{}", text(&done));
            common::json_of(&done)
        } else {
            serde_json::to_value(rt.block_on(store.get_run(&id)).unwrap().output).unwrap()
        };
        Self { killed, store, rt, id, before, out }
    }

    /// The whole journal, after the resume.
    fn journal(&self) -> Vec<weft::store::Journaled> {
        use weft::store::RunStore;
        self.rt.block_on(self.store.journal(&self.id)).unwrap()
    }
}

/// A `for_each` node over `counter`: 20 numbers in shards of 2, each shard sleeping `sleep_ms`.
fn fan_out_workflow(d: &Path, mode: &str) -> (PathBuf, PathBuf) {
    let y = format!(
        "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {{name: fan, version: 1.0.0}}\n\
         workflow_metadata: {{workflow_name: fan, execution_mode: {mode}}}\nexecution_graph:\n  nodes:\n\
         \x20   - node_id: fan\n      node_type: compute\n      component: \"{}\"\n      retry_count: 0\n\
         \x20     for_each: context.items\n      batch_size: 2\n      input: {{sleep_ms: context.sleep_ms}}\n",
        plugin("counter").display()
    );
    let wf = d.join("fan.yaml");
    std::fs::write(&wf, y).unwrap();
    let input = d.join("input.json");
    let items: Vec<u32> = (1..=20).collect();
    std::fs::write(&input, json!({"context": {"items": items, "sleep_ms": 80}, "max_parallel_steps": 2}).to_string())
        .unwrap();
    (wf, input)
}

#[test]
fn a_fan_out_killed_mid_way_resumes_and_runs_each_completed_shard_once() {
    use weft::store::JournalEntry;
    let d = dir("fan-crash");
    let (wf, input) = fan_out_workflow(&d, "sequential");
    let crashed = Crashed::run(&d, &wf, &input, "fanned out into 10 shard(s)", 250);
    let (killed, out) = (crashed.killed, &crashed.out);
    assert_eq!(out["execution_status"], "completed", "{out}");
    let results = out["step_outputs"]["fan"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 10);
    let sum: f64 = results.iter().map(|r| r["item_sum"].as_f64().unwrap()).sum();
    assert_eq!(sum, 210.0, "every item counted once");
    assert_eq!(out["metrics"]["step.fan.shards_completed"], 10.0);

    let journal = crashed.journal();
    let resumed_at = journal.iter().position(|j| matches!(j.entry, JournalEntry::RunResumed { .. }));
    let mut done_before = std::collections::BTreeSet::new();
    let mut completions = [0usize; 10];
    let mut started_after = Vec::new();
    for (pos, j) in journal.iter().enumerate() {
        let after = resumed_at.is_some_and(|r| pos > r);
        match &j.entry {
            JournalEntry::ShardFinished { shard, report, .. } if report.failure().is_none() => {
                completions[*shard as usize] += 1;
                if !after {
                    done_before.insert(*shard);
                }
            }
            JournalEntry::ShardStarted { shard, .. } if after => started_after.push(*shard),
            _ => {}
        }
    }
    eprintln!("killed mid-run: {killed}; shards done before the resume: {done_before:?}");
    assert_eq!(completions, [1; 10], "each shard completed exactly once");
    assert!(started_after.iter().all(|k| !done_before.contains(k)), "a completed shard ran again: {started_after:?}");
    if killed {
        // How far it got depends on the machine's speed; what must hold does not.
        assert!(done_before.len() < 10, "killed before the end: {done_before:?}");
        assert_eq!(started_after.len() + done_before.len(), 10, "the resume ran exactly the unfinished shards");
    }
}

/// A memoized `component` node `r` (compute, given the input's `context`),
/// then an `echo` of it.
fn memo_workflow(d: &Path, component: &Path) -> PathBuf {
    let y = format!(
        "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {{name: memo, version: 1.0.0}}\n\
         workflow_metadata: {{workflow_name: memo, execution_mode: sequential}}\nexecution_graph:\n  nodes:\n\
         \x20   - {{node_id: r, node_type: compute, component: \"{}\", memoize: true, retry_count: 0}}\n\
         \x20   - {{node_id: e, node_type: compute, component: \"{}\", depends_on: [r], retry_count: 0}}\n",
        component.display(),
        plugin("echo").display()
    );
    let wf = d.join("memo.yaml");
    std::fs::write(&wf, y).unwrap();
    wf
}

#[test]
fn a_memoized_step_hits_across_processes_and_misses_when_its_component_or_input_changes() {
    let d = dir("memo");
    let db = d.join("runs.db");
    let step = d.join("step.wasm");
    std::fs::copy(plugin("escape"), &step).unwrap();
    let wf = memo_workflow(&d, &step);
    let input = |n: u32| {
        let p = d.join(format!("in-{n}.json"));
        std::fs::write(&p, json!({"context": {"n": n}}).to_string()).unwrap();
        p
    };
    let run = |input: &Path| {
        let out = common::weft_db("modes", &db, &["run", wf.to_str().unwrap(), "--input", input.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        (common::json_of(&out), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (first, said) = run(&input(1));
    assert!(!said.contains("memoized"), "{said}");
    let random = first["step_outputs"]["r"]["random_hex"].clone();
    // A second process on the same store: a hit.
    let (second, said) = run(&input(1));
    assert!(said.contains("r: memoized: completed from the memo cache, not run"), "{said}");
    assert_eq!(second["metrics"]["step.r.memoized"], 1.0);
    assert_eq!(second["step_outputs"]["r"], first["step_outputs"]["r"]);
    let run_id = second["output_variables"]["run"]["run_id"].as_str().unwrap().to_string();
    let shown = common::weft_db("modes", &db, &["runs", "show", &run_id, "--json"]).output().unwrap();
    let shown = common::json_of(&shown);
    let r = shown["steps"].as_array().unwrap().iter().find(|s| s["step_id"] == "r").cloned().unwrap();
    assert_eq!(r["memoized"], true, "{r}");
    assert_eq!(r["attempts"], json!([]), "a hit runs no attempt");
    let stats = common::json_of(&common::weft_db("modes", &db, &["cache", "stats", "--json"]).output().unwrap());
    assert_eq!((stats["entries"].as_u64(), stats["hits"].as_u64()), (Some(1), Some(1)), "{stats}");
    // Another input misses.
    let (_, said) = run(&input(2));
    assert!(!said.contains("memoized"), "{said}");
    // Another component at the same path misses.
    std::fs::copy(plugin("echo"), &step).unwrap();
    let (changed, said) = run(&input(1));
    assert!(!said.contains("memoized"), "{said}");
    assert_eq!(changed["step_outputs"]["r"], json!({"n": 1}), "the new component ran");
    // Cleared, the original misses, and computes the same random bytes: they
    // are seeded from the memo key, not from the run.
    std::fs::copy(plugin("escape"), &step).unwrap();
    let cleared = common::weft_db("modes", &db, &["cache", "clear"]).output().unwrap();
    assert!(text(&cleared).contains("memo cache cleared: 3 entries dropped"), "{}", text(&cleared));
    let (again, said) = run(&input(1));
    assert!(!said.contains("memoized"), "{said}");
    assert_eq!(again["step_outputs"]["r"]["random_hex"], random);
}

/// The streaming example's workflow with `count` readings, a consumer buffer
/// of `buffer` items and micro-batches of `batch`.
fn stream_workflow(d: &Path, count: u64, buffer: u32, batch: u32) -> (PathBuf, PathBuf) {
    let example = common::root().join("examples/streaming-pipeline");
    let y = std::fs::read_to_string(example.join("workflow.yaml"))
        .unwrap()
        .replace("../../plugins/dist/", &format!("{}/", common::root().join("plugins/dist").display()))
        .replace("batch_size: 250", &format!("batch_size: {batch}"))
        .replace("stream_buffer: 1000", &format!("stream_buffer: {buffer}"));
    let wf = d.join("stream.yaml");
    std::fs::write(&wf, y).unwrap();
    let input = d.join("stream-input.json");
    let v = json!({"context": {"count": count, "sensors": ["a", "b", "c"], "alert_threshold": 90}});
    std::fs::write(&input, v.to_string()).unwrap();
    (wf, input)
}

#[test]
fn a_stream_of_real_components_stays_within_its_buffer_and_folds_every_reading() {
    plugin("emit_readings");
    let d = dir("stream");
    let (wf, input) = stream_workflow(&d, 20_000, 64, 16);
    let out =
        weft(&["run", wf.to_str().unwrap(), "--input", input.to_str().unwrap(), "--in-memory", "--output", "json"]);
    let o = common::json_of(&out);
    assert_eq!(o["execution_status"], "completed", "{}", text(&out));
    assert_eq!(o["step_outputs"]["stats"]["count"], 20_000);
    // Every 97th reading spikes: 20,000 / 97 of them.
    assert_eq!(o["final_result"]["alerts"], 206);
    assert_eq!(o["metrics"]["step.stats.stream_items"], 20_000.0);
    let peak = o["metrics"]["step.stats.stream_peak_buffered"].as_f64().unwrap();
    assert!((1.0..=64.0).contains(&peak), "at most the buffer waited: {peak}");
    assert!(o["metrics"]["step.stats.stream_batches"].as_f64().unwrap() >= 1250.0, "micro-batches of at most 16");
}

#[test]
fn a_stream_killed_mid_way_resumes_without_delivering_a_reading_twice() {
    use weft::store::JournalEntry;
    plugin("emit_readings");
    let d = dir("stream-crash");
    let (wf, input) = stream_workflow(&d, 60_000, 256, 100);
    let crashed = Crashed::run(&d, &wf, &input, "readings: attempt 1 started", 300);
    let (killed, out) = (crashed.killed, &crashed.out);
    let journaled_before =
        crashed.before.iter().filter(|j| matches!(j.entry, JournalEntry::StreamBatch { .. })).count();
    eprintln!("killed mid-run: {killed}; micro-batches journaled before the resume: {journaled_before}");
    assert_eq!(out["execution_status"], "completed", "{out}");
    assert_eq!(out["step_outputs"]["stats"]["count"], 60_000, "every reading folded once");
    assert_eq!(out["final_result"]["alerts"], 618);
    let journal = crashed.journal();
    let mut next = 0u64;
    for j in &journal {
        if let JournalEntry::StreamBatch { first_item, items, .. } = &j.entry {
            assert_eq!(*first_item, next, "micro-batches follow each other, none twice");
            next += items.len() as u64;
        }
    }
    assert_eq!(next, 60_000);
    // How many micro-batches the kill left journaled depends on the machine's
    // speed (printed above); every reading once, in order, must hold either way.
}
