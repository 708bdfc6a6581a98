//! The rest of the ONEX orchestrator contract, end to end through the real
//! `weft` binary and real components: approval gates approved with one
//! command (also after a SIGKILL while they wait), sub-workflows three deep
//! with a crash of the parent in the middle of its grandchild, the run
//! input's steps as the whole workflow (the contract's own two input
//! examples), the config file, and sub-workflows in `weft graph` and
//! `weft runs show`.

use crate::common::{self, json_of, plugin};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The runs of `db`, as `weft runs list --json` gives them.
fn runs(db: &Path, status: Option<&str>) -> Vec<Value> {
    let mut args = vec!["runs", "list", "--json"];
    if let Some(s) = status {
        args.extend(["--status", s]);
    }
    let out = common::weft_db("contract", db, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    json_of(&out).as_array().cloned().unwrap()
}

/// Waits (at most 60 s) until `db` has a paused run; its id.
fn until_paused(db: &Path) -> String {
    let start = Instant::now();
    loop {
        if db.exists()
            && let Some(r) = runs(db, Some("paused")).first()
        {
            return r["run_id"].as_str().unwrap().to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no run paused: {:?}", runs(db, None));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `weft run` of the approval example on `db`, bounded to two minutes.
fn approval(db: &Path) -> common::Reaped {
    let dir = common::root().join("examples/approval");
    let (wf, input) = (dir.join("workflow.yaml"), dir.join("input.json"));
    let config = common::short_config(db.parent().unwrap());
    let args = ["run", wf.to_str().unwrap(), "--input", input.to_str().unwrap(), "--config", config.to_str().unwrap()];
    common::Reaped::spawn(common::weft_db("contract", db, &[&args[..], &["-q", "--output", "json"]].concat()))
}

/// How long a test waits for a `weft` process it started.
const WITHIN: Duration = Duration::from_secs(120);

#[test]
fn the_approval_example_waits_for_a_person_who_approves_with_one_command() {
    plugin("ledger");
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("runs.db");
    let run = approval(&db);
    let id = until_paused(&db);
    // A decision for a step that does not wait is refused, and changes nothing.
    let wrong =
        common::weft_db("contract", &db, &["runs", "signal", &id, "validate", "--data", "{}"]).output().unwrap();
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong));
    assert!(text(&wrong).contains("is not waiting for a signal: it has completed"), "{}", text(&wrong));
    let data = r#"{"approved": true, "by": "m.hopper"}"#;
    let signal =
        common::weft_db("contract", &db, &["runs", "signal", &id, "manager_review", "--data", data, "--id", "s-1"])
            .output()
            .unwrap();
    assert_eq!(signal.status.code(), Some(0), "{}", text(&signal));
    let out = run.output_within(WITHIN);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json = json_of(&out);
    assert_eq!(json["execution_status"], "completed");
    assert_eq!(json["step_outputs"]["manager_review"], json!({"approved": true, "by": "m.hopper"}));
    assert_eq!(json["skipped_steps"], json!(["auto_approve", "notify_rejection"]));
    assert!(json["completed_steps"].as_array().unwrap().contains(&json!("record_approval")));
    // Sent again (a retry), the same signal is a no-op; the run has finished.
    let again =
        common::weft_db("contract", &db, &["runs", "signal", &id, "manager_review", "--data", data, "--id", "s-1"])
            .output()
            .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("already been delivered"), "{}", text(&again));
    let other =
        common::weft_db("contract", &db, &["runs", "signal", &id, "manager_review", "--data", "{}"]).output().unwrap();
    assert_eq!(other.status.code(), Some(2));
    assert!(text(&other).contains("already has a decision (signal `s-1`)"), "{}", text(&other));
}

#[test]
fn a_gate_survives_a_sigkill_while_it_waits_and_the_signal_resumes_the_run() {
    plugin("ledger");
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("runs.db");
    let mut run = approval(&db);
    let id = until_paused(&db);
    run.kill();
    assert_eq!(runs(&db, Some("paused")).len(), 1, "still waiting in the store after the kill");
    let show = common::weft_db("contract", &db, &["runs", "show", &id, "--json"]).output().unwrap();
    let view = json_of(&show);
    let gate = view["steps"].as_array().unwrap().iter().find(|s| s["step_id"] == "manager_review").unwrap().clone();
    assert_eq!(gate["state"], "waiting");
    assert!(gate["waiting_until_ms"].as_u64().is_some());
    // Rejected: the signal command finds no live driver and drives the run itself.
    let data = r#"{"approved": false, "by": "m.hopper", "note": "too expensive"}"#;
    let out = common::weft_db(
        "contract",
        &db,
        &["runs", "signal", &id, "manager_review", "--data", data, "-q", "--output", "json"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("no live driver: resuming it here"), "{}", text(&out));
    let json = json_of(&out);
    assert_eq!(json["execution_status"], "completed");
    assert_eq!(json["skipped_steps"], json!(["auto_approve", "record_approval"]));
    assert!(json["completed_steps"].as_array().unwrap().contains(&json!("notify_rejection")));
}

/// top -> mid -> leaf, the leaf's effect sleeping `sleep_ms`.
fn three_levels(d: &Path, sleep_ms: u64) -> std::path::PathBuf {
    let head = |name: &str| {
        format!(
            "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {{name: {name}}}\nworkflow_metadata: \
             {{workflow_name: {name}, execution_mode: sequential}}\nexecution_graph:\n  nodes:\n"
        )
    };
    let echo = plugin("echo");
    let slow = plugin("slow_effect");
    std::fs::write(
        d.join("top.yaml"),
        head("top")
            + &format!("    - {{node_id: first, node_type: compute, component: \"{}\"}}\n", echo.display())
            + "    - {node_id: mid, node_type: orchestrator, workflow: mid.yaml, depends_on: [first]}\n"
            + &format!(
                "    - {{node_id: last, node_type: compute, component: \"{}\", depends_on: [mid], input: {{leaf: \
                 'steps.mid.step_outputs.leaf.step_outputs.work'}}}}\n",
                echo.display()
            ),
    )
    .unwrap();
    std::fs::write(
        d.join("mid.yaml"),
        head("mid") + "    - {node_id: leaf, node_type: orchestrator, workflow: leaf.yaml}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("leaf.yaml"),
        head("leaf")
            + &format!(
                "    - {{node_id: work, node_type: effect, component: \"{}\", timeout_ms: 60000, input: {{sleep_ms: \
                 '{sleep_ms}'}}}}\n",
                slow.display()
            ),
    )
    .unwrap();
    d.join("top.yaml")
}

#[test]
fn a_parent_killed_in_the_middle_of_its_grandchild_resumes_and_reattaches_without_a_second_child() {
    let d = tempfile::tempdir().unwrap();
    let wf = three_levels(d.path(), 1500);
    let db = d.path().join("runs.db");
    let run = common::weft_db("contract", &db, &["run", wf.to_str().unwrap()]);
    let killed = common::kill_when_seen(run, "mid: sub-workflow run", 400);
    assert!(killed, "the kill landed while the grandchild's step slept");
    let before = runs(&db, None);
    assert_eq!(before.len(), 3, "top, mid and leaf are runs of their own: {before:?}");
    assert!(before.iter().all(|r| r["status"] == "running"), "{before:?}");
    let top = before.iter().find(|r| r["workflow"] == "top").unwrap()["run_id"].as_str().unwrap().to_string();
    // The runs nest the files they started with, whatever the files say now.
    std::fs::write(d.path().join("mid.yaml"), "not: [a workflow").unwrap();
    std::fs::remove_file(d.path().join("leaf.yaml")).unwrap();
    let out = common::weft_db("contract", &db, &["runs", "resume", &top, "-q", "--output", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json = json_of(&out);
    assert_eq!(json["execution_status"], "completed");
    assert_eq!(
        json["step_outputs"]["last"]["leaf"],
        json!({"slept_ms": 1500}),
        "the grandchild's output reached the top"
    );
    let after = runs(&db, None);
    assert_eq!(after.len(), 3, "the resume reattached to the children, it started none: {after:?}");
    assert!(after.iter().all(|r| r["status"] == "completed"), "{after:?}");
    // The view links each level to the next.
    let show = common::weft_db("contract", &db, &["runs", "show", &top, "--json"]).output().unwrap();
    let view = json_of(&show);
    let mid = view["steps"].as_array().unwrap().iter().find(|s| s["step_id"] == "mid").unwrap()["child_run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mid_view = json_of(&common::weft_db("contract", &db, &["runs", "show", &mid, "--json"]).output().unwrap());
    assert_eq!(mid_view["parent"], json!({"run_id": top, "step_id": "mid"}));
}

#[test]
fn cancelling_a_parent_from_another_process_cancels_its_children() {
    let d = tempfile::tempdir().unwrap();
    let wf = three_levels(d.path(), 30_000);
    let db = d.path().join("runs.db");
    let run = common::Reaped::spawn(common::weft_db("contract", &db, &["run", wf.to_str().unwrap(), "-q"]));
    let start = Instant::now();
    while !(db.exists() && runs(&db, None).len() == 3) {
        assert!(start.elapsed() < Duration::from_secs(60), "the grandchild never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let top =
        runs(&db, None).into_iter().find(|r| r["workflow"] == "top").unwrap()["run_id"].as_str().unwrap().to_string();
    let cancel = common::weft_db("contract", &db, &["runs", "cancel", &top, "--output", "json"]).output().unwrap();
    assert_eq!(json_of(&cancel)["execution_status"], "cancelled", "{}", text(&cancel));
    run.output_within(WITHIN);
    let after = runs(&db, None);
    assert!(after.iter().all(|r| r["status"] == "cancelled"), "every level is cancelled: {after:?}");
}

#[test]
fn the_sub_workflow_example_runs_and_compensates_its_child_when_the_parent_fails() {
    plugin("ledger");
    let dir = common::root().join("examples/sub-workflow");
    let graph = common::weft("contract", &["graph", dir.join("workflow.yaml").to_str().unwrap()]).output().unwrap();
    let mermaid = String::from_utf8_lossy(&graph.stdout).to_string();
    assert!(mermaid.contains("subgraph n1[\"fulfil (orchestrator): fulfil.yaml\"]"), "{mermaid}");
    assert!(mermaid.contains("n1_0[\"charge (effect)\"]"), "the child's nodes are drawn inside: {mermaid}");
    let d = tempfile::tempdir().unwrap();
    let mut input: Value = serde_json::from_slice(&std::fs::read(dir.join("input.json")).unwrap()).unwrap();
    input["context"]["receipt_fails"] = json!(true);
    let input_path = d.path().join("input.json");
    std::fs::write(&input_path, input.to_string()).unwrap();
    let db = d.path().join("runs.db");
    let out = common::weft_db(
        "contract",
        &db,
        &[
            "run",
            dir.join("workflow.yaml").to_str().unwrap(),
            "--input",
            input_path.to_str().unwrap(),
            "-q",
            "--output",
            "json",
        ],
    )
    .output()
    .unwrap();
    let json = json_of(&out);
    assert_eq!(json["execution_status"], "failed", "{}", text(&out));
    assert_eq!(
        json["output_variables"]["compensation"],
        json!([{"step_id": "fulfil", "status": "compensated", "attempts": 1, "error": null}])
    );
    // The child's compensation is a run of its own, replaying the child, that undid both effects.
    let undo = runs(&db, Some("cancelled"));
    assert_eq!(undo.len(), 1, "{undo:?}");
    let view = json_of(
        &common::weft_db("contract", &db, &["runs", "show", undo[0]["run_id"].as_str().unwrap(), "--json"])
            .output()
            .unwrap(),
    );
    let undone: Vec<&str> = view["output"]["output_variables"]["compensation"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "compensated")
        .map(|c| c["step_id"].as_str().unwrap())
        .collect();
    assert_eq!(undone, ["reserve", "charge"], "newest first");
}

#[test]
fn the_contracts_own_input_examples_run_as_the_whole_workflow() {
    let d = tempfile::tempdir().unwrap();
    let echo = plugin("echo");
    let effect = plugin("slow_effect");
    let examples = [
        json!({
            "workflow_id": "550e8400-e29b-41d4-a716-446655440000",
            "workflow_type": "data_pipeline",
            "steps": [
                {"step_name": "validate", "step_type": "compute", "timeout_ms": 5000, "component": echo},
                {"step_name": "fetch", "step_type": "effect", "timeout_ms": 30000, "component": effect},
                {"step_name": "process", "step_type": "compute", "timeout_ms": 60000, "component": echo}
            ],
            "execution_mode": "sequential",
            "failure_strategy": "retry"
        }),
        json!({
            "workflow_id": "550e8400-e29b-41d4-a716-446655440001",
            "workflow_type": "batch_processing",
            "steps": [
                {"step_name": "batch_1", "step_type": "compute", "component": echo},
                {"step_name": "batch_2", "step_type": "compute", "component": echo},
                {"step_name": "batch_3", "step_type": "compute", "component": echo}
            ],
            "execution_mode": "parallel",
            "max_parallel_steps": 3
        }),
    ];
    let db = d.path().join("runs.db");
    for (k, example) in examples.iter().enumerate() {
        let path = d.path().join(format!("input{k}.json"));
        std::fs::write(&path, example.to_string()).unwrap();
        let out =
            common::weft_db("contract", &db, &["run", "--input", path.to_str().unwrap(), "-q", "--output", "json"])
                .output()
                .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let json = json_of(&out);
        assert_eq!(json["execution_status"], "completed");
        let names: Vec<&str> =
            example["steps"].as_array().unwrap().iter().map(|s| s["step_name"].as_str().unwrap()).collect();
        assert_eq!(json["completed_steps"].as_array().unwrap().len(), names.len());
        assert_eq!(json["output_variables"]["run"]["run_id"], example["workflow_id"]);
    }
    let parallel = runs(&db, None).into_iter().find(|r| r["run_id"] == "550e8400-e29b-41d4-a716-446655440001").unwrap();
    assert_eq!(parallel["status"], "completed");
    // Without a workflow file and without steps there is nothing to run.
    let empty = d.path().join("empty.json");
    std::fs::write(&empty, "{}").unwrap();
    let out = common::weft("contract", &["run", "--input", empty.to_str().unwrap(), "--in-memory"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("a run input whose `steps` are the workflow"), "{}", text(&out));
}

#[test]
fn a_config_file_layers_over_the_profile_and_bad_ones_are_refused_saying_what_is_wrong() {
    let d = tempfile::tempdir().unwrap();
    let wf = common::chain(d.path(), "cfg", &plugin("echo"), 2, "");
    let good = d.path().join("good.yaml");
    std::fs::write(
        &good,
        "timeout_config: {step_timeout_ms: 7000}\nparallel_config: {max_parallel_steps: 3}\ndomain_specific_config: {region: eu}\n",
    )
    .unwrap();
    let out = common::weft(
        "contract",
        &["run", wf.to_str().unwrap(), "--config", good.to_str().unwrap(), "--in-memory", "-q", "--output", "json"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for (body, want) in [
        ("retry_config: {retry_delay_ms: 5}\n", "retry_config.retry_delay_ms is 5; it must be between 100 and 60000"),
        ("retry_config: {max_retrys: 2}\n", "unknown field `max_retrys`"),
        ("failure_strategy: hope\n", "failure_strategy is `hope`"),
        ("colour: blue\n", "unknown field `colour`"),
    ] {
        let bad = d.path().join("bad.yaml");
        std::fs::write(&bad, body).unwrap();
        let out =
            common::weft("contract", &["run", wf.to_str().unwrap(), "--config", bad.to_str().unwrap(), "--in-memory"])
                .output()
                .unwrap();
        assert_eq!(out.status.code(), Some(2), "{body}: {}", text(&out));
        assert!(text(&out).contains(want), "{body}: {}", text(&out));
    }
}
