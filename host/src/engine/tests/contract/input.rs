//! The run input's `steps` (with and without a workflow file) and the
//! contract's config (its layers, bounds and effects).

use super::*;

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
