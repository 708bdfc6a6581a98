//! Sub-workflows: three levels deep, cancelled, compensated, bounded in depth
//! and size, under the operator policy, replayed from the dead-letter queue,
//! and nesting the texts a journaled run started with.

use super::*;

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

/// A parent `p.yaml` with the dead-letter queue on, whose one node runs
/// the child `c.yaml` of `child_nodes`.
fn dead_lettered_parent(tag: &str, child_nodes: &str) -> std::path::PathBuf {
    let parent = doc(
        "p",
        "sequential",
        "    - {node_id: child, node_type: orchestrator, workflow: c.yaml}\n",
        "coordination_rules: {dead_letter_queue_enabled: true}\n",
    );
    files(tag, &[("p.yaml", parent), ("c.yaml", doc("c", "sequential", child_nodes, ""))])
}

#[tokio::test]
async fn a_dead_letter_replay_of_a_failed_child_replays_the_child_and_keeps_its_completed_steps() {
    let dir = dead_lettered_parent(
        "replay-child",
        "    - {node_id: c1, node_type: effect, component: step.wasm, retry_count: 0}\n    - {node_id: c2, node_type: \
         compute, component: step.wasm, retry_count: 0, depends_on: [c1]}\n",
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
    let dir = dead_lettered_parent(
        "replay-uncreated",
        "    - {node_id: src, node_type: compute, component: step.wasm}\n    - {node_id: fold, node_type: compute, \
         component: step.wasm, stream_from: src}\n",
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
