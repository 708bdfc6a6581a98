//! The node types that run no component (`conditional`, `parallel`), `custom`
//! nodes in their declared world, and every node of a finished run in exactly
//! one list of the output.

use super::*;

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
