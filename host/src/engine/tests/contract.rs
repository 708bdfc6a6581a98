//! The rest of the ONEX orchestrator contract, scripted: the node types
//! `conditional`, `parallel`, `custom` and `orchestrator`, approval gates,
//! the input's `steps`, the contract's config, `max_actions_per_workflow`,
//! and every node in exactly one list of the output.

use super::*;
use crate::engine::{SignalError, StepTuning};
use crate::workflow::NodeKind;

/// Writes `files` (name, YAML) into a fresh directory with `step.wasm`.
fn files(tag: &str, files: &[(&str, String)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-contract-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("step.wasm"), b"").unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

/// A workflow document named `name` with `nodes` (and `rest` after them).
fn doc(name: &str, mode: &str, nodes: &str, rest: &str) -> String {
    format!(
        "kind: WorkflowDefinition\nmetadata: {{name: {name}}}\nworkflow_metadata: {{workflow_name: {name}, \
         execution_mode: {mode}}}\nexecution_graph:\n  nodes:\n{nodes}{rest}"
    )
}

fn load(dir: &std::path::Path, name: &str) -> Arc<Workflow> {
    Arc::new(crate::workflow::load_file(&dir.join(name), None).unwrap_or_else(|e| panic!("{e}")))
}

/// Every node in exactly one of the output's lists.
fn accounted(out: &RunOutput, all: &[&str]) {
    let tolerated: Vec<String> = out
        .output_variables
        .get("tolerated_failures")
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .unwrap_or_default();
    let mut seen: Vec<&String> =
        out.completed_steps.iter().chain(&out.failed_steps).chain(&out.skipped_steps).chain(&tolerated).collect();
    seen.sort();
    let mut want: Vec<String> = all.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(seen, want.iter().collect::<Vec<_>>(), "each node in exactly one list: {out:?}");
}

// ------------------------------------------------------------- node types

#[tokio::test]
async fn a_conditional_node_runs_the_dependents_of_the_first_case_that_holds() {
    let switch = "    - {node_id: route, node_type: conditional, depends_on: [score], cases: [{when: \
                  \"steps.score.v > 10\", then: [high]}, {when: \"steps.score.v > 5\", then: [mid]}, {default: \
                  [low]}]}\n";
    let nodes = [
        node("score", "compute", ""),
        switch.to_string(),
        node("high", "compute", ", depends_on: [route]"),
        node("mid", "compute", ", depends_on: [route]"),
        node("low", "compute", ", depends_on: [route]"),
        node("after_low", "compute", ", depends_on: [low]"),
        node("always", "compute", ", depends_on: [route]"),
    ]
    .concat();
    let all = ["score", "route", "high", "mid", "low", "after_low", "always"];
    for (v, chosen, case) in [(20, "high", json!(0)), (7, "mid", json!(1)), (1, "low", json!("default"))] {
        let exec = Arc::new(ScriptedExecutor::new().on("score", [Reply::output(json!({"v": v}))]));
        let (out, events) = run(&exec, workflow("sequential", "", &nodes), json!({})).await;
        assert_eq!(out.execution_status, ExecutionStatus::Completed);
        assert_eq!(out.step_outputs["route"], json!({"case": case, "chosen": [chosen]}));
        assert!(out.completed_steps.contains(&chosen.to_string()), "{v}: {:?}", out.completed_steps);
        assert!(out.completed_steps.contains(&"always".to_string()), "a dependent no case names always runs");
        for other in ["high", "mid", "low"].into_iter().filter(|o| *o != chosen) {
            assert!(out.skipped_steps.contains(&other.to_string()), "{v}: {other} skipped");
        }
        assert!(events.iter().any(|e| matches!(e, RunEvent::StepSkipped { reason, .. }
            if reason.contains("conditional `route` did not choose it"))));
        assert!(!exec.run_order().contains(&"route".to_string()), "a conditional node runs no component");
        accounted(&out, &all);
    }
}

#[tokio::test]
async fn a_conditional_node_is_refused_when_a_case_names_a_node_that_does_not_depend_on_it() {
    let dir = files(
        "switch",
        &[(
            "w.yaml",
            doc(
                "w",
                "sequential",
                "    - {node_id: route, node_type: conditional, cases: [{when: 'true', then: [x]}, {default: [y]}, \
                 {when: 'false', then: [z]}]}\n    - {node_id: x, node_type: compute, component: step.wasm}\n    - \
                 {node_id: y, node_type: compute, component: step.wasm, depends_on: [route]}\n    - {node_id: z, \
                 node_type: compute, component: step.wasm, depends_on: [route]}\n",
                "",
            ),
        )],
    );
    let err = crate::workflow::load_file(&dir.join("w.yaml"), None).unwrap_err().to_string();
    assert!(err.contains("case target `x` is not a dependent of this conditional node"), "{err}");
    assert!(err.contains("the `default` case must come last"), "{err}");
}

#[tokio::test]
async fn a_parallel_node_joins_its_dependencies_outputs_and_runs_nothing() {
    let nodes = [
        node("a", "compute", ""),
        node("b", "compute", ""),
        "    - {node_id: join, node_type: parallel, depends_on: [a, b]}\n".to_string(),
        node("after", "compute", ", depends_on: [join]"),
    ]
    .concat();
    let exec = Arc::new(
        ScriptedExecutor::new().on("a", [Reply::output(json!({"x": 1}))]).on("b", [Reply::output(json!({"y": 2}))]),
    );
    let (out, _) = run(&exec, workflow("parallel", "", &nodes), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(out.step_outputs["join"], json!({"a": {"x": 1}, "b": {"y": 2}}));
    let after = exec.calls().into_iter().find(|c| c.step_id == "after").unwrap();
    assert_eq!(Value::Object(after.input), json!({"a": {"x": 1}, "b": {"y": 2}}), "the join's output flows on");
    assert!(!exec.run_order().contains(&"join".to_string()));
    accounted(&out, &["a", "b", "join", "after"]);
}

#[tokio::test]
async fn a_custom_node_runs_in_the_world_it_declares() {
    let nodes = [
        "    - {node_id: pay, node_type: custom, world: effect, component: step.wasm, retry_count: 0}\n".to_string(),
        "    - {node_id: calc, node_type: custom, world: compute, component: step.wasm, retry_count: 0, depends_on: \
         [pay]}\n"
            .to_string(),
        node("boom", "compute", ", depends_on: [calc]"),
    ]
    .concat();
    let wf = workflow("sequential", "coordination_rules: {failure_recovery_strategy: compensate}\n", &nodes);
    assert!(wf.nodes[0].node_type.is_effect() && wf.nodes[0].type_name == "custom");
    assert!(!wf.nodes[1].node_type.is_effect());
    let exec = Arc::new(ScriptedExecutor::new().on("boom", [Reply::fatal("no")]));
    let (out, _) = run(&exec, wf, json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(exec.compensation_order(), ids(&["pay"]), "an effect-world custom node is compensated");
    // A custom node must say which world.
    let dir = files(
        "custom",
        &[("w.yaml", doc("w", "sequential", "    - {node_id: c, node_type: custom, component: step.wasm}\n", ""))],
    );
    let err = crate::workflow::load_file(&dir.join("w.yaml"), None).unwrap_err().to_string();
    assert!(err.contains("a custom node is missing the required key `world`"), "{err}");
}

// ---------------------------------------------------------- approval gates

/// A run of a gate `gate` (with `extra` keys) between `before` and a yes
/// branch and a no branch.
fn gate_workflow(extra: &str) -> Arc<Workflow> {
    let nodes = [
        node("before", "compute", ""),
        format!("    - {{node_id: gate, node_type: effect, wait_for: signal, depends_on: [before]{extra}}}\n"),
        node("approve", "compute", ", depends_on: [gate], when: \"steps.gate.approved\""),
        node("reject", "compute", ", depends_on: [gate], when: \"!steps.gate.approved\""),
    ]
    .concat();
    workflow("sequential", "", &nodes)
}

/// Starts `wf`, waits until it pauses at its gate, and returns the engine and handle.
async fn until_paused(exec: &Arc<ScriptedExecutor>, wf: Arc<Workflow>) -> (Engine, RunHandle) {
    let engine = Engine::new(exec.clone());
    let mut h = engine.start(wf, &input(json!({})), opts()).await.unwrap();
    loop {
        match h.events.recv().await {
            Some(RunEvent::Paused { waiting, .. }) => {
                assert_eq!(waiting, ids(&["gate"]));
                break;
            }
            Some(_) => {}
            None => panic!("the run ended without pausing"),
        }
    }
    let listed = engine
        .store()
        .list_runs(&crate::store::RunFilter { status: Some(ExecutionStatus::Paused), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "a run waiting only on a gate is listed as paused");
    (engine, h)
}

#[tokio::test]
async fn an_approved_gate_completes_with_the_signal_data_and_when_picks_the_branch() {
    for (approved, branch, other) in [(true, "approve", "reject"), (false, "reject", "approve")] {
        let exec = Arc::new(ScriptedExecutor::new());
        let (engine, mut h) = until_paused(&exec, gate_workflow("")).await;
        let id = h.run_id.clone();
        let data = json!({"approved": approved, "by": "m.hopper"});
        let done = engine.signal(&id, "gate", "sig-1", data.clone()).await.unwrap();
        assert!(done.stored && !done.orphaned);
        // The same signal again changes nothing; another one is refused.
        assert!(!engine.signal(&id, "gate", "sig-1", data.clone()).await.unwrap().stored);
        let conflict = engine.signal(&id, "gate", "sig-2", json!({})).await.unwrap_err();
        assert!(matches!(conflict, SignalError::Conflict { .. }), "{conflict}");
        h.events.close();
        let out = h.wait().await;
        assert_eq!(out.execution_status, ExecutionStatus::Completed);
        assert_eq!(out.step_outputs["gate"], data);
        assert!(out.completed_steps.contains(&branch.to_string()) && out.skipped_steps.contains(&other.to_string()));
        assert!(!exec.run_order().contains(&"gate".to_string()), "a gate runs no component");
        let journal = engine.store().journal(&id).await.unwrap();
        assert!(
            journal
                .iter()
                .any(|j| matches!(&j.entry, JournalEntry::SignalReceived { signal_id, .. } if signal_id == "sig-1"))
        );
        accounted(&out, &["before", "gate", "approve", "reject"]);
    }
}

#[tokio::test]
async fn a_gate_without_a_signal_by_its_deadline_fails_with_timeout() {
    let exec = Arc::new(ScriptedExecutor::new());
    let (out, _) = run(&exec, gate_workflow(", wait_timeout_ms: 1000"), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.failed_steps, ids(&["gate"]));
    let e = out.errors.iter().find(|e| e.step_id == "gate").unwrap();
    assert_eq!(e.error_type, "timeout");
    assert!(e.message.contains("had no signal by its deadline"), "{}", e.message);
    accounted(&out, &["before", "gate", "approve", "reject"]);
}

#[tokio::test]
async fn a_signal_to_a_step_that_is_not_waiting_or_to_a_finished_run_is_refused() {
    let exec = Arc::new(ScriptedExecutor::new());
    let (engine, h) = until_paused(&exec, gate_workflow("")).await;
    let id = h.run_id.clone();
    for (step, why) in
        [("before", "it has completed"), ("approve", "not an approval gate"), ("nope", "not an approval gate")]
    {
        let e = engine.signal(&id, step, "s", json!({})).await.unwrap_err();
        assert!(matches!(e, SignalError::NotWaiting { .. }) && e.to_string().contains(why), "{step}: {e}");
    }
    engine.signal(&id, "gate", "s", json!({"approved": true})).await.unwrap();
    h.wait().await;
    let e = engine.signal(&id, "approve", "other", json!({})).await.unwrap_err();
    assert!(matches!(e, SignalError::Finished { .. }), "{e}");
    let e = engine.signal("no-such-run", "gate", "s", json!({})).await.unwrap_err();
    assert!(e.to_string().contains("no run has the id"), "{e}");
}

#[tokio::test]
async fn a_gate_is_refused_keys_that_belong_to_a_component() {
    let dir = files(
        "gate",
        &[(
            "w.yaml",
            doc(
                "w",
                "sequential",
                "    - {node_id: g, node_type: effect, wait_for: signal, component: step.wasm, fuel: 5}\n    - {node_id: h, node_type: compute, wait_for: signal, component: step.wasm}\n",
                "",
            ),
        )],
    );
    let err = crate::workflow::load_file(&dir.join("w.yaml"), None).unwrap_err().to_string();
    assert!(err.contains("an approval gate runs no component; remove `component`"), "{err}");
    assert!(err.contains("`fuel` does not apply to it"), "{err}");
    assert!(err.contains("`wait_for: signal` makes an effect node an approval gate"), "{err}");
}

// ------------------------------------------------------------ sub-workflows

fn three_levels(leaf_extra: &str) -> std::path::PathBuf {
    files(
        "nest",
        &[
            (
                "top.yaml",
                doc(
                    "top",
                    "sequential",
                    "    - {node_id: t1, node_type: compute, component: step.wasm, retry_count: 0}\n    - {node_id: \
                     mid, node_type: orchestrator, workflow: mid.yaml, depends_on: [t1], input: {n: \
                     'steps.t1.n'}}\n    - {node_id: t2, node_type: compute, component: step.wasm, retry_count: 0, \
                     depends_on: [mid]}\n",
                    "",
                ),
            ),
            (
                "mid.yaml",
                doc(
                    "mid",
                    "sequential",
                    "    - {node_id: leaf, node_type: orchestrator, workflow: leaf.yaml, input: {n: 'context.n + \
                     1'}}\n",
                    "",
                ),
            ),
            (
                "leaf.yaml",
                doc(
                    "leaf",
                    "sequential",
                    &format!(
                        "    - {{node_id: l1, node_type: effect, component: step.wasm, retry_count: 0{leaf_extra}}}\n"
                    ),
                    "",
                ),
            ),
        ],
    )
}

#[tokio::test]
async fn a_three_level_sub_workflow_runs_each_child_as_a_linked_run_and_passes_outputs_up() {
    let dir = three_levels("");
    let wf = load(&dir, "top.yaml");
    assert_eq!(wf.depth(), 3);
    let exec = Arc::new(ScriptedExecutor::new().on("t1", [Reply::output(json!({"n": 1}))]));
    let engine = Engine::new(exec.clone());
    let h = engine.start(wf, &input(json!({})), opts()).await.unwrap();
    let top_id = h.run_id.clone();
    let out = h.wait().await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{out:?}");
    assert_eq!(exec.run_order(), ids(&["t1", "l1", "t2"]));
    // The leaf got the mid node's mapped input as its context.
    let l1 = exec.calls().into_iter().find(|c| c.step_id == "l1").unwrap();
    assert_eq!(Value::Object(l1.input), json!({"n": 2}));
    // The node's output is the child's output contract.
    let mid = &out.step_outputs["mid"];
    assert_eq!(mid["execution_status"], "completed");
    assert_eq!(mid["step_outputs"]["leaf"]["execution_status"], "completed");
    let runs = engine.store().list_runs(&Default::default()).await.unwrap();
    assert_eq!(runs.len(), 3, "one run per level");
    let mid_id = mid["output_variables"]["run"]["run_id"].as_str().unwrap();
    let rec = engine.store().get_run(mid_id).await.unwrap();
    let parent = rec.run.parent.unwrap();
    assert_eq!((parent.run_id.as_str(), parent.step_id.as_str()), (top_id.as_str(), "mid"));
}

#[tokio::test]
async fn cancelling_the_parent_cancels_the_child_and_its_steps() {
    let dir = three_levels(", timeout_ms: 60000");
    let exec = Arc::new(
        ScriptedExecutor::new()
            .on("t1", [Reply::output(json!({"n": 1}))])
            .on("l1", [Reply::echo().after(Duration::from_secs(60))]),
    );
    let engine = Engine::new(exec.clone());
    let mut h = engine.start(load(&dir, "top.yaml"), &input(json!({})), opts()).await.unwrap();
    // Wait until the grandchild's step runs, then cancel the top run.
    while exec.calls().iter().all(|c| c.step_id != "l1") {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.events.close();
    h.cancel();
    let out = h.wait().await;
    assert_eq!(out.execution_status, ExecutionStatus::Cancelled);
    let runs = engine.store().list_runs(&Default::default()).await.unwrap();
    assert_eq!(runs.len(), 3);
    for r in runs {
        assert_eq!(r.status, ExecutionStatus::Cancelled, "run of `{}` is cancelled too", r.workflow);
    }
}

#[tokio::test]
async fn a_completed_child_is_compensated_by_running_its_own_compensation() {
    let dir = three_levels("");
    let top = std::fs::read_to_string(dir.join("top.yaml")).unwrap()
        + "coordination_rules: {failure_recovery_strategy: compensate}\n";
    std::fs::write(dir.join("top.yaml"), top).unwrap();
    let exec =
        Arc::new(ScriptedExecutor::new().on("t1", [Reply::output(json!({"n": 1}))]).on("t2", [Reply::fatal("no")]));
    let engine = Engine::new(exec.clone());
    let out = engine.run(load(&dir, "top.yaml"), &input(json!({})), opts()).await.unwrap();
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(exec.compensation_order(), ids(&["l1"]), "the grandchild's effect is undone");
    let comp = out.output_variables["compensation"].as_array().unwrap();
    assert_eq!(comp.len(), 1);
    assert_eq!((comp[0]["step_id"].as_str(), comp[0]["status"].as_str()), (Some("mid"), Some("compensated")));
    // The compensation used the child's idempotency key, not its own run's.
    let undo = exec.calls().into_iter().filter(|c| c.step_id == "l1").collect::<Vec<_>>();
    assert_eq!(undo.len(), 2, "run once, compensated once");
    assert_eq!(undo[0].idempotency_key, undo[1].idempotency_key);
}

#[tokio::test]
async fn nesting_past_max_workflow_depth_and_cycles_of_files_are_refused_naming_the_files() {
    let chain = |n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|k| {
                let nodes = if k + 1 < n {
                    format!("    - {{node_id: down, node_type: orchestrator, workflow: w{}.yaml}}\n", k + 1)
                } else {
                    "    - {node_id: leaf, node_type: compute, component: step.wasm}\n".to_string()
                };
                (format!("w{k}.yaml"), doc(&format!("w{k}"), "sequential", &nodes, ""))
            })
            .collect()
    };
    let ten = chain(10);
    let ten: Vec<(&str, String)> = ten.iter().map(|(a, b)| (a.as_str(), b.clone())).collect();
    let dir = files("depth10", &ten);
    assert_eq!(load(&dir, "w0.yaml").depth(), 10, "ten levels are allowed");
    let eleven = chain(11);
    let eleven: Vec<(&str, String)> = eleven.iter().map(|(a, b)| (a.as_str(), b.clone())).collect();
    let dir = files("depth11", &eleven);
    let err = crate::workflow::load_file(&dir.join("w0.yaml"), None).unwrap_err().to_string();
    assert!(err.contains("past the max_workflow_depth of 10") && err.contains("w10.yaml"), "{err}");
    // A file many nodes name at many levels is read once, and a tree that
    // expands past the bound is refused at once, not walked.
    let wide = |n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|k| {
                let nodes: String = if k + 1 < n {
                    (0..40)
                        .map(|i| {
                            format!("    - {{node_id: n{i}, node_type: orchestrator, workflow: w{}.yaml}}\n", k + 1)
                        })
                        .collect()
                } else {
                    "    - {node_id: leaf, node_type: compute, component: step.wasm}\n".to_string()
                };
                (format!("w{k}.yaml"), doc(&format!("w{k}"), "sequential", &nodes, ""))
            })
            .collect()
    };
    let three = wide(3);
    let three: Vec<(&str, String)> = three.iter().map(|(a, b)| (a.as_str(), b.clone())).collect();
    let dir = files("wide3", &three);
    assert_eq!(load(&dir, "w0.yaml").nodes.len(), 40, "40 x 40 x 1 expanded nodes are allowed");
    let ten = wide(10);
    let ten: Vec<(&str, String)> = ten.iter().map(|(a, b)| (a.as_str(), b.clone())).collect();
    let dir = files("wide10", &ten);
    let err = crate::workflow::load_file(&dir.join("w0.yaml"), None).unwrap_err().to_string();
    assert!(err.contains("with its sub-workflows expanded") && err.contains("at most 1000000"), "{err}");
    let a = doc("a", "sequential", "    - {node_id: x, node_type: orchestrator, workflow: b.yaml}\n", "");
    let b = doc("b", "sequential", "    - {node_id: y, node_type: orchestrator, workflow: a.yaml}\n", "");
    let dir = files("cycle", &[("a.yaml", a), ("b.yaml", b)]);
    let err = crate::workflow::load_file(&dir.join("a.yaml"), None).unwrap_err().to_string();
    assert!(
        err.contains("the workflow files form a cycle") && err.contains("a.yaml -> ") && err.contains("b.yaml"),
        "{err}"
    );
}

// --------------------------------------------------------- steps in the input

fn four() -> Arc<Workflow> {
    let nodes = [
        node("a", "compute", ""),
        node("b", "effect", ", depends_on: [a]"),
        node("c", "compute", ", depends_on: [b]"),
        node("d", "compute", ", depends_on: [a]"),
    ]
    .concat();
    workflow("sequential", "", &nodes)
}

#[tokio::test]
async fn input_steps_select_nodes_and_what_they_depend_on_and_tune_them() {
    let exec = Arc::new(ScriptedExecutor::new().on("b", [Reply::fail(FailureKind::PluginError), Reply::echo()]));
    let steps = json!({"steps": [
        {"step_name": "c", "step_type": "compute", "timeout_ms": 5000},
        {"step_name": "b", "step_type": "effect", "retry_count": 1, "depends_on": ["a"]},
        {"step_name": "a", "step_type": "compute"}
    ]});
    let (out, _) = run(&exec, four(), steps).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{out:?}");
    assert_eq!(out.completed_steps, ids(&["a", "b", "c"]));
    assert_eq!(out.skipped_steps, ids(&["d"]), "a node no step selects is skipped");
    assert_eq!(exec.calls().iter().filter(|c| c.step_id == "b").count(), 2, "retry_count: 1 gave b a retry");
    let c = exec.calls().into_iter().find(|c| c.step_id == "c").unwrap();
    assert_eq!(c.timeout_ms, 5000);
    // Listing only `c` pulls in what it depends on.
    let exec = Arc::new(ScriptedExecutor::new());
    let (out, _) = run(&exec, four(), json!({"steps": [{"step_name": "c", "step_type": "compute"}]})).await;
    assert_eq!(out.completed_steps, ids(&["a", "b", "c"]));
    accounted(&out, &["a", "b", "c", "d"]);
}

#[tokio::test]
async fn input_steps_that_do_not_match_the_definition_are_refused_each_with_its_position() {
    let wf = four();
    let cases = [
        (json!([{"step_name": "zz", "step_type": "compute"}]), "steps[0] (`zz`): `zz` is not a node of workflow `t`"),
        (
            json!([{"step_name": "b", "step_type": "compute"}]),
            "step_type is `compute`, but node `b` is a `effect` node",
        ),
        (json!([{"step_name": "a", "step_type": "compute", "timeout_ms": 50}]), "timeout_ms is 50"),
        (json!([{"step_name": "a", "step_type": "compute", "retry_count": 11}]), "retry_count is 11"),
        (
            json!([{"step_name": "c", "step_type": "compute", "depends_on": ["q"]}]),
            "depends_on names `q`, which is not a step",
        ),
        (
            json!([{"step_name": "d", "step_type": "compute", "depends_on": ["c"]}, {"step_name": "c", "step_type": "compute"}]),
            "`d` does not depend on it in the workflow",
        ),
        (
            json!([{"step_name": "a", "step_type": "compute"}, {"step_name": "a", "step_type": "compute"}]),
            "step names must be unique",
        ),
        (json!([{"step_name": "a", "step_type": "compute", "component": "x.wasm"}]), "is not node `a`'s component"),
        (json!([]), "`steps` is empty"),
    ];
    for (steps, want) in cases {
        let inp = input(json!({ "steps": steps }));
        let err = inp.resolve(&wf, Environment::Development, None).unwrap_err().join("\n");
        assert!(err.contains(want), "{steps}: {err}");
    }
    let ok = input(json!({"steps": [{"step_name": "a", "step_type": "compute"}]}));
    let tuning = ok.resolve(&wf, Environment::Development, None).unwrap().tuning;
    assert_eq!(tuning[0], StepTuning { selected: true, timeout_ms: None, retry_count: None });
    assert!(!tuning[1].selected && !tuning[3].selected);
}

#[tokio::test]
async fn input_steps_alone_are_the_workflow() {
    // The contract's two input examples, with components added.
    let sequential = json!({
        "workflow_id": "550e8400-e29b-41d4-a716-446655440000",
        "workflow_type": "data_pipeline",
        "steps": [
            {"step_name": "validate", "step_type": "compute", "timeout_ms": 5000, "component": "step.wasm"},
            {"step_name": "fetch", "step_type": "effect", "timeout_ms": 30000, "component": "step.wasm"},
            {"step_name": "process", "step_type": "compute", "timeout_ms": 60000, "component": "step.wasm"}
        ],
        "execution_mode": "sequential",
        "failure_strategy": "retry"
    });
    let dir = files("nofile", &[]);
    let inp = input(sequential);
    let steps = inp.steps.clone().unwrap();
    let text =
        crate::engine::workflow_from_steps(&steps, "data_pipeline", Some("sequential"), Some("data_pipeline")).unwrap();
    let wf = Arc::new(load_str(&text, &dir, "steps", None).unwrap());
    let exec = Arc::new(ScriptedExecutor::new());
    let out = Engine::new(exec.clone()).run(wf, &inp, opts()).await.unwrap();
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(exec.run_order(), ids(&["validate", "fetch", "process"]), "in the order listed");
    assert_eq!(exec.calls()[1].timeout_ms, 30000);
    // Dependencies by step id.
    let by_id = json!([
        {"step_id": "11111111-0000-0000-0000-000000000001", "step_name": "one", "step_type": "compute", "component": "step.wasm"},
        {"step_name": "two", "step_type": "compute", "component": "step.wasm", "depends_on": ["11111111-0000-0000-0000-000000000001"]}
    ]);
    let steps: Vec<crate::engine::InputStep> = serde_json::from_value(by_id).unwrap();
    let text = crate::engine::workflow_from_steps(&steps, "x", None, None).unwrap();
    let wf = load_str(&text, &dir, "steps", None).unwrap();
    assert_eq!(wf.nodes[1].depends_on, ids(&["one"]));
}

// ---------------------------------------------------------------- config

#[test]
fn the_config_layers_over_the_profile_and_is_checked_against_the_contracts_bounds() {
    use crate::contract::ConfigLayer;
    let file: ConfigLayer = serde_json::from_value(json!({
        "retry_config": {"max_retries": 7, "retry_delay_ms": 250},
        "parallel_config": {"max_parallel_steps": 8},
        "timeout_config": {"step_timeout_ms": 12000},
        "max_actions_per_workflow": 3,
        "domain_specific_config": {"region": "eu"}
    }))
    .unwrap();
    let s = Settings::resolve(Environment::Production, &[&file]).unwrap();
    assert_eq!((s.max_retries, s.retry_delay_ms, s.max_parallel_steps, s.step_timeout_ms), (7, 250, 8, 12000));
    assert_eq!(s.failure_strategy, crate::workflow::FailureStrategy::Retry, "the profile's, not overridden");
    assert!(s.load_balancing_enabled, "production's profile");
    let dev = Settings::resolve(Environment::Development, &[]).unwrap();
    assert_eq!((dev.max_retries, dev.retry_delay_ms, dev.step_timeout_ms), (1, 100, 60000));
    assert!(!dev.exponential_backoff && dev.retry_policy(None).multiplier == 1.0);
    // A later layer (the workflow's) wins, field by field.
    let wf_layer: ConfigLayer = serde_json::from_value(json!({"retry_config": {"retry_delay_ms": 900}})).unwrap();
    let s = Settings::resolve(Environment::Production, &[&file, &wf_layer]).unwrap();
    assert_eq!((s.max_retries, s.retry_delay_ms), (7, 900));
    let bad: ConfigLayer = serde_json::from_value(json!({
        "retry_config": {"retry_delay_ms": 50, "backoff_multiplier": 9.0},
        "timeout_config": {"shutdown_timeout_ms": 100},
        "max_actions_per_workflow": 0,
        "failure_strategy": "pray"
    }))
    .unwrap();
    let err = Settings::resolve(Environment::Staging, &[&bad]).unwrap_err().join("\n");
    for want in [
        "retry_config.retry_delay_ms is 50",
        "retry_config.backoff_multiplier is 9",
        "timeout_config.shutdown_timeout_ms is 100",
        "max_actions_per_workflow is 0",
        "failure_strategy is `pray`",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    let unknown = serde_json::from_value::<ConfigLayer>(json!({"retry_config": {"max_retrys": 1}})).unwrap_err();
    assert!(unknown.to_string().contains("unknown field `max_retrys`"), "{unknown}");
}

#[tokio::test]
async fn the_config_reaches_the_run_retries_expressions_and_the_action_cap() {
    use crate::contract::ConfigLayer;
    let config: ConfigLayer = serde_json::from_value(json!({
        "retry_config": {"max_retries": 2, "retry_delay_ms": 100, "exponential_backoff": false},
        "max_actions_per_workflow": 2,
        "track_actions": false,
        "domain_specific_config": {"threshold": 5}
    }))
    .unwrap();
    let nodes = [
        "    - {node_id: flaky, node_type: compute, component: step.wasm}\n".to_string(),
        node("gated", "compute", ", depends_on: [flaky], when: \"config.threshold == 5\""),
        node("loud", "compute", ", depends_on: [gated]"),
    ]
    .concat();
    let exec = Arc::new(
        ScriptedExecutor::new()
            .on("flaky", [Reply::fail(FailureKind::PluginError), Reply::fail(FailureKind::PluginError), Reply::echo()])
            .on(
                "gated",
                [Reply::echo().emit(ActionKind::Compute, "loud", json!(1)).emit(ActionKind::Compute, "loud", json!(2))],
            )
            .on("loud", [Reply::echo().emit(ActionKind::Compute, "x", json!(3))]),
    );
    let options = RunOptions { config: Some(Arc::new(config)), ..opts() };
    let out =
        Engine::new(exec.clone()).run(workflow("sequential", "", &nodes), &input(json!({})), options).await.unwrap();
    assert_eq!(exec.calls().iter().filter(|c| c.step_id == "flaky").count(), 3, "max_retries: 2 from the config");
    assert!(out.completed_steps.contains(&"gated".to_string()), "`config` is visible to expressions");
    assert_eq!(out.failed_steps, ids(&["loud"]), "its action would make 3, past max_actions_per_workflow: 2");
    let e = out.errors.iter().find(|e| e.step_id == "loud").unwrap();
    assert_eq!(e.error_type, "action_limit");
    assert!(out.actions_emitted.is_empty(), "track_actions: false");
    assert_eq!(out.metrics["actions_count"], 2.0);
}

#[tokio::test]
async fn without_dependency_resolution_the_steps_run_in_the_order_listed() {
    let listed_badly = [node("b", "compute", ", depends_on: [a]"), node("a", "compute", "")].concat();
    let err = input(json!({"dependency_resolution_enabled": false}))
        .resolve(&workflow("sequential", "", &listed_badly), Environment::Development, None)
        .unwrap_err()
        .join("\n");
    assert!(err.contains("`b` depends on `a`, which is listed after it"), "{err}");
    let listed_well = [node("a", "compute", ""), node("b", "compute", ", depends_on: [a]")].concat();
    let exec = Arc::new(ScriptedExecutor::new());
    let (out, _) =
        run(&exec, workflow("sequential", "", &listed_well), json!({"dependency_resolution_enabled": false})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
}

// ------------------------------------------------------------ accounting

#[tokio::test]
async fn every_node_is_in_exactly_one_list_under_every_strategy() {
    let mut nodes = node("root", "effect", "");
    for k in 0..6 {
        nodes.push_str(&node(&format!("bad{k}"), "compute", ", depends_on: [root], continue_on_error: true"));
    }
    nodes.push_str(&node("good", "compute", ", depends_on: [root]"));
    nodes.push_str(&node("fatal", "compute", ", depends_on: [good]"));
    nodes.push_str(&node("after", "compute", ", depends_on: [fatal]"));
    nodes.push_str(&node("late", "compute", ", depends_on: [bad0]"));
    let all: Vec<String> = ["root", "good", "fatal", "after", "late"]
        .iter()
        .map(|s| s.to_string())
        .chain((0..6).map(|k| format!("bad{k}")))
        .collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    for strategy in ["fail_fast", "continue_on_error", "retry", "compensate"] {
        for fatal_fails in [false, true] {
            let mut exec = ScriptedExecutor::new();
            for k in 0..6 {
                exec = exec.on(&format!("bad{k}"), [Reply::fatal("hostile")]);
            }
            if fatal_fails {
                exec = exec.on("fatal", [Reply::fatal("for good")]);
            }
            let exec = Arc::new(exec);
            let (out, events) = run(
                &exec,
                workflow("parallel", "", &nodes),
                json!({"failure_strategy": strategy, "max_parallel_steps": 4}),
            )
            .await;
            accounted(&out, &all);
            let tolerated =
                out.output_variables.get("tolerated_failures").and_then(Value::as_array).map_or(0, Vec::len);
            assert_eq!(tolerated, 6, "{strategy}: {out:?}");
            assert_eq!(out.metrics["tolerated_count"], 6.0);
            if !fatal_fails {
                assert_eq!(out.execution_status, ExecutionStatus::Completed, "{strategy}");
                assert!(out.failed_steps.is_empty(), "tolerated failures are not failed_steps");
            }
            assert!(events.iter().filter(|e| matches!(e, RunEvent::StepFailed { tolerated: true, .. })).count() == 6);
        }
    }
}

// ------------------------------------------------------------ review fixes

#[tokio::test]
async fn a_child_node_named_compensation_does_not_stand_in_for_the_undo_run() {
    let dir = files(
        "undo-ns",
        &[
            (
                "p.yaml",
                doc(
                    "p",
                    "sequential",
                    "    - {node_id: child, node_type: orchestrator, workflow: c.yaml}\n    - {node_id: boom, \
                     node_type: compute, component: step.wasm, retry_count: 0, depends_on: [child]}\n",
                    "coordination_rules: {failure_recovery_strategy: compensate}\n",
                ),
            ),
            (
                "c.yaml",
                doc(
                    "c",
                    "sequential",
                    "    - {node_id: pay, node_type: effect, component: step.wasm, retry_count: 0}\n    - {node_id: \
                     compensation, node_type: orchestrator, workflow: g.yaml, depends_on: [pay]}\n",
                    "",
                ),
            ),
            ("g.yaml", doc("g", "sequential", "    - {node_id: gx, node_type: compute, component: step.wasm}\n", "")),
        ],
    );
    let exec = Arc::new(ScriptedExecutor::new().on("boom", [Reply::fatal("no")]));
    let out = Engine::new(exec.clone()).run(load(&dir, "p.yaml"), &input(json!({})), opts()).await.unwrap();
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(exec.compensation_order(), ids(&["pay"]), "the child's effect is really undone");
}

#[tokio::test]
async fn a_conditional_whose_failure_is_tolerated_chooses_nothing() {
    let switch = "    - {node_id: route, node_type: conditional, depends_on: [a], continue_on_error: true, cases: \
                  [{when: \"steps.a.missing.total > 5\", then: [big]}, {default: [small]}]}\n";
    let nodes = [
        node("a", "compute", ""),
        switch.to_string(),
        node("big", "compute", ", depends_on: [route]"),
        node("small", "compute", ", depends_on: [route]"),
    ]
    .concat();
    let exec = Arc::new(ScriptedExecutor::new().on("a", [Reply::output(json!({}))]));
    let (out, _) = run(&exec, workflow("sequential", "", &nodes), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(out.skipped_steps, ids(&["big", "small"]), "no branch runs: {out:?}");
    accounted(&out, &["a", "route", "big", "small"]);
}

#[tokio::test]
async fn a_saga_with_an_approval_gate_runs() {
    let nodes = [
        "    - {node_id: gate, node_type: effect, wait_for: signal, wait_timeout_ms: 1000}\n".to_string(),
        node("pay", "effect", ", depends_on: [gate]"),
    ]
    .concat();
    let rules = "coordination_rules: {failure_recovery_strategy: compensate}\n";
    let wf = workflow("sequential", rules, &nodes);
    let out = input(json!({"workflow_type": "saga"})).resolve(&wf, Environment::Development, None);
    assert!(out.is_ok(), "a gate has nothing to compensate: {:?}", out.err());
}

#[tokio::test]
async fn a_dead_letter_replay_of_a_failed_child_replays_the_child_and_keeps_its_completed_steps() {
    let dir = files(
        "replay-child",
        &[
            (
                "p.yaml",
                doc(
                    "p",
                    "sequential",
                    "    - {node_id: child, node_type: orchestrator, workflow: c.yaml}\n",
                    "coordination_rules: {dead_letter_queue_enabled: true}\n",
                ),
            ),
            (
                "c.yaml",
                doc(
                    "c",
                    "sequential",
                    "    - {node_id: c1, node_type: effect, component: step.wasm, retry_count: 0}\n    - {node_id: c2, \
                     node_type: compute, component: step.wasm, retry_count: 0, depends_on: [c1]}\n",
                    "",
                ),
            ),
        ],
    );
    let first = Arc::new(ScriptedExecutor::new().on("c2", [Reply::fatal("first time")]));
    let store: Arc<dyn crate::store::RunStore> = Arc::new(MemoryStore::new());
    let engine = Engine::new(first.clone()).with_store(store.clone());
    let h = engine.start(load(&dir, "p.yaml"), &input(json!({})), opts()).await.unwrap();
    let first_id = h.run_id.clone();
    let out = h.wait().await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    // The fix is deployed: the replay runs on an executor where c2 succeeds.
    let second = Arc::new(ScriptedExecutor::new());
    let again = Engine::new(second.clone()).with_store(store.clone());
    let out = again.replay(&first_id, ResumeOptions::default()).await.unwrap().wait().await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{out:?}");
    assert_eq!(second.run_order(), ids(&["c2"]), "the failed child's completed effect is kept, not run again");
    let new_child = out.step_outputs["child"]["output_variables"]["run"]["run_id"].as_str().unwrap().to_string();
    let rec = store.get_run(&new_child).await.unwrap();
    assert!(rec.run.replay_of.is_some(), "the new child replays the failed one");
}

#[tokio::test]
async fn the_policy_covers_a_sub_workflows_nodes_before_any_step_runs() {
    let dir = files(
        "policy",
        &[
            (
                "p.yaml",
                doc(
                    "p",
                    "sequential",
                    "    - {node_id: first, node_type: effect, component: step.wasm}\n    - {node_id: kid, node_type: \
                     orchestrator, workflow: c.yaml, depends_on: [first]}\n",
                    "",
                ),
            ),
            (
                "c.yaml",
                doc(
                    "c",
                    "sequential",
                    "    - {node_id: e, node_type: effect, component: step.wasm, capabilities: {env: [HOME]}}\n",
                    "",
                ),
            ),
        ],
    );
    let policy = crate::capability::Policy::parse("[env]\nallow = [\"REGION\"]\n", &dir).unwrap();
    let exec = Arc::new(ScriptedExecutor::new());
    let err = Engine::new(exec.clone())
        .with_policy(Arc::new(policy))
        .start(load(&dir, "p.yaml"), &input(json!({})), opts())
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("node `kid/e`"), "{err}");
    assert!(exec.calls().is_empty(), "nothing ran");
}

#[tokio::test]
async fn a_run_without_a_workflow_file_may_use_every_node_type_through_node_keys() {
    let steps: Vec<crate::engine::InputStep> = serde_json::from_value(json!([
        {"step_name": "a", "step_type": "compute", "component": "step.wasm"},
        {"step_name": "route", "step_type": "conditional", "depends_on": ["a"],
         "node": {"cases": [{"when": "true", "then": ["b"]}, {"default": ["c"]}]}},
        {"step_name": "b", "step_type": "compute", "component": "step.wasm", "depends_on": ["route"]},
        {"step_name": "c", "step_type": "compute", "component": "step.wasm", "depends_on": ["route"]}
    ]))
    .unwrap();
    let dir = files("nofile-node", &[]);
    let text = crate::engine::workflow_from_steps(&steps, "x", None, None).unwrap();
    let wf = Arc::new(load_str(&text, &dir, "steps", None).unwrap());
    let inp = RunInput { steps: Some(steps), ..Default::default() };
    let exec = Arc::new(ScriptedExecutor::new());
    let out = Engine::new(exec.clone()).run(wf, &inp, opts()).await.unwrap();
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{out:?}");
    assert_eq!(out.skipped_steps, ids(&["c"]));
}

#[test]
fn a_journaled_run_nests_the_sub_workflow_texts_it_started_with_whatever_the_files_say_now() {
    let dir = files(
        "pinned",
        &[(
            "top.yaml",
            doc("top", "sequential", "    - {node_id: sub, node_type: orchestrator, workflow: cur/child.yaml}\n", ""),
        )],
    );
    for v in ["v1", "v2"] {
        std::fs::create_dir_all(dir.join(v)).unwrap();
        std::fs::write(dir.join(v).join("step.wasm"), b"").unwrap();
        let nodes = format!("    - {{node_id: {v}_step, node_type: compute, component: step.wasm}}\n");
        std::fs::write(dir.join(v).join("child.yaml"), doc(&format!("child_{v}"), "sequential", &nodes, "")).unwrap();
    }
    std::os::unix::fs::symlink(dir.join("v1"), dir.join("cur")).unwrap();
    let started = load(&dir, "top.yaml");
    let pinned = started.nested_texts(10, 1 << 20);
    assert_eq!(pinned.len(), 1);
    // The link now points elsewhere, then nowhere: the journaled text is what nests.
    std::fs::remove_file(dir.join("cur")).unwrap();
    std::os::unix::fs::symlink(dir.join("v2"), dir.join("cur")).unwrap();
    let again = crate::workflow::load_str_pinned(&started.definition, &dir, "top", None, pinned.clone()).unwrap();
    let NodeKind::SubWorkflow(sub) = &again.nodes[0].kind else { panic!("a sub-workflow node") };
    assert_eq!(sub.workflow.name, "child_v1");
    // Gone: the text is still the journaled one; what is missing now is the
    // child's component, as for any node whose component was removed.
    std::fs::remove_file(dir.join("cur")).unwrap();
    let gone =
        crate::workflow::load_str_pinned(&started.definition, &dir, "top", None, pinned).unwrap_err().to_string();
    assert!(gone.contains("node `v1_step`: component `step.wasm` not found"), "{gone}");
    assert!(!gone.contains("is not a file"), "{gone}");
}

#[tokio::test]
async fn a_dead_letter_replay_of_a_child_that_was_never_created_starts_it_afresh() {
    // The child cannot start (a stream consumer outside streaming mode), so
    // the parent fails with its link journaled and no child run behind it.
    let dir = files(
        "replay-uncreated",
        &[
            (
                "p.yaml",
                doc(
                    "p",
                    "sequential",
                    "    - {node_id: child, node_type: orchestrator, workflow: c.yaml}\n",
                    "coordination_rules: {dead_letter_queue_enabled: true}\n",
                ),
            ),
            (
                "c.yaml",
                doc(
                    "c",
                    "sequential",
                    "    - {node_id: src, node_type: compute, component: step.wasm}\n    - {node_id: fold, node_type: \
                     compute, component: step.wasm, stream_from: src}\n",
                    "",
                ),
            ),
        ],
    );
    let exec = Arc::new(ScriptedExecutor::new());
    let engine = Engine::new(exec.clone());
    let h = engine.start(load(&dir, "p.yaml"), &input(json!({})), opts()).await.unwrap();
    let first = h.run_id.clone();
    let out = h.wait().await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    let why = &out.errors.iter().find(|e| e.step_id == "child").unwrap().message;
    assert!(why.contains("runs only in execution_mode `streaming`"), "{why}");
    let out = engine.replay(&first, ResumeOptions::default()).await.unwrap().wait().await;
    let why = &out.errors.iter().find(|e| e.step_id == "child").unwrap().message;
    assert!(
        why.contains("runs only in execution_mode `streaming`"),
        "the child is started again, not looked for: {why}"
    );
    assert!(!why.contains("could not be replayed"), "{why}");
}
