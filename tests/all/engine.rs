//! End-to-end tests of the workflow engine: real YAML, real components, real
//! sandbox, through the library API.

use crate::common;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use weft::engine::{
    Engine, Environment, ExecutionStatus, RunEvent, RunInput, RunOptions, RunOutput, SandboxExecutor, StartError,
};
use weft::workflow::{Workflow, load_str};

fn executor() -> Arc<SandboxExecutor> {
    static EXEC: OnceLock<Arc<SandboxExecutor>> = OnceLock::new();
    EXEC.get_or_init(|| Arc::new(SandboxExecutor::new(Arc::new(common::sandbox("engine", 32))))).clone()
}

/// A workflow from YAML whose components are named from plugins/dist.
fn workflow(yaml: &str) -> Arc<Workflow> {
    let dist = common::root().join("plugins/dist");
    let exec = executor();
    Arc::new(load_str(yaml, &dist, "test.yaml", Some(exec.as_ref())).unwrap_or_else(|e| panic!("{e}")))
}

fn input(v: Value) -> RunInput {
    serde_json::from_value(v).unwrap()
}

fn opts() -> RunOptions {
    RunOptions { environment: Environment::Development, jitter_seed: Some(7), ..RunOptions::default() }
}

async fn run(wf: Arc<Workflow>, inp: Value) -> RunOutput {
    let out = Engine::new(executor()).run(wf, &input(inp), opts()).await.unwrap();
    check_contract(&out);
    out
}

async fn run_with_events(wf: Arc<Workflow>, inp: Value) -> (RunOutput, Vec<RunEvent>) {
    let mut h = Engine::new(executor()).start(wf, &input(inp), opts()).await.unwrap();
    let mut events = Vec::new();
    while let Some(e) = h.events.recv().await {
        events.push(e);
    }
    let out = h.wait().await;
    check_contract(&out);
    (out, events)
}

/// The contract's output subcontract: required fields, types, enums, and the
/// status_consistency rule.
fn check_contract(out: &RunOutput) {
    let v = serde_json::to_value(out).unwrap();
    let obj = v.as_object().unwrap();
    let allowed = [
        "execution_status",
        "execution_time_ms",
        "start_time",
        "end_time",
        "completed_steps",
        "failed_steps",
        "skipped_steps",
        "step_outputs",
        "final_result",
        "output_variables",
        "actions_emitted",
        "errors",
        "metrics",
        "parallel_executions",
    ];
    for k in obj.keys() {
        assert!(allowed.contains(&k.as_str()), "unexpected output field {k}");
    }
    for k in allowed {
        assert!(obj.contains_key(k), "missing output field {k}");
    }
    let status = v["execution_status"].as_str().unwrap();
    assert!(["pending", "running", "paused", "completed", "failed", "cancelled"].contains(&status));
    assert!(v["execution_time_ms"].is_u64());
    for t in ["start_time", "end_time"] {
        let s = v[t].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(s).is_ok(), "{t} is not RFC 3339: {s}");
    }
    for list in ["completed_steps", "failed_steps", "skipped_steps"] {
        assert!(v[list].as_array().unwrap().iter().all(Value::is_string));
    }
    assert!(v["step_outputs"].as_object().unwrap().values().all(Value::is_object), "step outputs are objects");
    assert!(v["output_variables"].is_object());
    for a in v["actions_emitted"].as_array().unwrap() {
        assert!(uuid::Uuid::parse_str(a["action_id"].as_str().unwrap()).is_ok());
        assert!(["compute", "effect", "reduce", "orchestrate", "custom"].contains(&a["action_type"].as_str().unwrap()));
        assert!(a["target_node"].is_string());
        assert!(a["payload"].is_object());
    }
    for e in v["errors"].as_array().unwrap() {
        for k in ["step_id", "error_type", "message"] {
            assert!(e[k].is_string(), "error without {k}: {e}");
        }
    }
    assert!(v["metrics"].as_object().unwrap().values().all(Value::is_number));
    for m in ["completed_count", "actions_count", "avg_step_time_ms"] {
        assert!(v["metrics"][m].is_number(), "metric {m} missing");
    }
    assert!(v["parallel_executions"].is_u64());
    assert!(out.status_is_consistent(), "status_consistency broken: {v}");
}

const HEAD: &str = "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {name: t}\n";

fn yaml(mode: &str, rules: &str, nodes: &str) -> String {
    format!(
        "{HEAD}workflow_metadata:\n  workflow_name: t\n  execution_mode: {mode}\nexecution_graph:\n  nodes:\n{nodes}{rules}"
    )
}

// ------------------------------------------------------------------ modes

#[tokio::test]
async fn sequential_runs_in_topological_order_and_passes_outputs() {
    let wf = workflow(&yaml(
        "sequential",
        "",
        r#"
    - {node_id: c, node_type: compute, component: echo, depends_on: [b], input: "{'from_b': steps.b.seen}"}
    - {node_id: a, node_type: compute, component: echo}
    - {node_id: b, node_type: compute, component: echo, depends_on: [a], input: "{'seen': steps.a.x + 1}"}
"#,
    ));
    let out = run(wf, json!({"context": {"x": 41}})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(out.completed_steps, ["a", "b", "c"]);
    assert_eq!(out.step_outputs["a"], json!({"x": 41}));
    assert_eq!(out.final_result, Some(json!({"from_b": 42})));
    assert_eq!(out.parallel_executions, 0);
    assert_eq!(out.metrics["completed_count"], 3.0);
    assert!(out.metrics["step.b.fuel_consumed"] > 0.0);
    assert!(out.metrics["step.b.peak_memory_bytes"] > 0.0);
}

#[tokio::test]
async fn parallel_batches_are_bounded_by_max_parallel_steps() {
    let nodes = r#"
    - {node_id: p1, node_type: compute, component: echo}
    - {node_id: p2, node_type: compute, component: echo}
    - {node_id: p3, node_type: compute, component: echo}
    - {node_id: p4, node_type: compute, component: echo}
    - {node_id: join, node_type: reducer, component: echo, depends_on: [p1, p2, p3, p4]}
"#;
    let wide = run(workflow(&yaml("parallel", "", nodes)), json!({"max_parallel_steps": 4, "context": {"k": 1}})).await;
    assert_eq!(wide.execution_status, ExecutionStatus::Completed);
    assert_eq!(wide.parallel_executions, 2, "one batch of four, then the join");
    let joined = wide.final_result.unwrap();
    for p in ["p1", "p2", "p3", "p4"] {
        assert_eq!(joined[p], json!({"k": 1}), "the join receives every branch keyed by node id");
    }
    let (narrow, events) =
        run_with_events(workflow(&yaml("parallel", "", nodes)), json!({"max_parallel_steps": 2, "context": {}})).await;
    // Batches depend on which steps finish together: 2 then 1 then 1 then the
    // join, or 2 then 2 then the join.
    assert!((3..=4).contains(&narrow.parallel_executions), "{}", narrow.parallel_executions);
    // Never more than two steps in flight.
    let (mut running, mut peak) = (0i32, 0i32);
    for e in &events {
        match e {
            RunEvent::AttemptStarted { .. } => running += 1,
            RunEvent::StepCompleted { .. } | RunEvent::StepFailed { .. } => running -= 1,
            _ => {}
        }
        peak = peak.max(running);
    }
    assert_eq!(peak, 2, "max_parallel_steps bounds the steps in flight");
}

#[tokio::test]
async fn conditional_skips_branches_and_their_dependents() {
    let wf = workflow(&yaml(
        "conditional",
        "",
        r#"
    - {node_id: start, node_type: compute, component: echo}
    - {node_id: big, node_type: compute, component: echo, depends_on: [start], when: "context.amount > 100"}
    - {node_id: small, node_type: compute, component: echo, depends_on: [start], when: "context.amount <= 100"}
    - {node_id: after_big, node_type: compute, component: echo, depends_on: [big]}
    - {node_id: always, node_type: compute, component: echo, depends_on: [big], run_if_dependency_skipped: true}
"#,
    ));
    let (out, events) = run_with_events(wf.clone(), json!({"context": {"amount": 5}})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(out.completed_steps, ["start", "small", "always"]);
    assert_eq!(out.skipped_steps, ["big", "after_big"]);
    assert!(events.iter().any(|e| matches!(e, RunEvent::StepSkipped { step_id, reason } if step_id == "big" && reason.contains("`when` is false"))));
    let out = run(wf, json!({"context": {"amount": 500}})).await;
    assert_eq!(out.completed_steps, ["start", "big", "after_big", "always"]);
    assert_eq!(out.skipped_steps, ["small"]);
}

#[tokio::test]
async fn a_bad_run_input_is_refused_with_every_problem_named() {
    let wf = workflow(&yaml("sequential", "", "    - {node_id: a, node_type: compute, component: echo}\n"));
    let err = Engine::new(executor())
        .start(wf.clone(), &input(json!({"execution_mode": "batch", "batch_size": 0})), opts())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StartError::Input(_)));
    assert!(err.to_string().contains("batch_size is 0; it must be between 1 and 1000"), "{err}");
    let err = Engine::new(executor())
        .start(wf, &input(json!({"max_parallel_steps": 0, "global_timeout_ms": 5, "failure_strategy": "pray"})), opts())
        .await
        .err()
        .unwrap()
        .to_string();
    for needle in ["max_parallel_steps is 0", "global_timeout_ms is 5", "failure_strategy `pray`"] {
        assert!(err.contains(needle), "{err}");
    }
}

#[tokio::test]
async fn continue_on_error_in_the_input_is_obeyed_or_refused_never_ignored() {
    let wf = workflow(&yaml("sequential", "", FAILING_BRANCH));
    let err = Engine::new(executor())
        .start(wf.clone(), &input(json!({"continue_on_error": true, "failure_strategy": "fail_fast"})), opts())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("continue_on_error: true contradicts failure_strategy `fail_fast`"), "{err}");
    // `false` overrides a profile whose default is to continue (staging's).
    let staging = RunOptions { environment: Environment::Staging, ..opts() };
    let out = Engine::new(executor()).run(wf.clone(), &input(json!({})), staging.clone()).await.unwrap();
    assert_eq!(out.output_variables["failure_strategy"], "continue_on_error", "staging's default");
    let out = Engine::new(executor()).run(wf, &input(json!({"continue_on_error": false})), staging).await.unwrap();
    assert_eq!(out.output_variables["failure_strategy"], "fail_fast");
}

// ------------------------------------------------------------- strategies

const FAILING_BRANCH: &str = r#"
    - {node_id: ok1, node_type: compute, component: echo}
    - {node_id: bad, node_type: compute, component: flaky, retry_count: 0, input: "{'fail_until_attempt': 99, 'error': 'fatal'}"}
    - {node_id: after_bad, node_type: compute, component: echo, depends_on: [bad]}
    - {node_id: ok2, node_type: compute, component: echo, depends_on: [ok1]}
"#;

#[tokio::test]
async fn fail_fast_stops_at_the_first_failure() {
    let out = run(workflow(&yaml("sequential", "", FAILING_BRANCH)), json!({"failure_strategy": "fail_fast"})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.completed_steps, ["ok1"]);
    assert_eq!(out.failed_steps, ["bad"]);
    assert!(out.skipped_steps.contains(&"ok2".to_string()) && out.skipped_steps.contains(&"after_bad".to_string()));
    assert_eq!(out.errors[0].step_id, "bad");
    assert_eq!(out.errors[0].error_type, "plugin_error");
}

#[tokio::test]
async fn fail_fast_interrupts_steps_in_flight() {
    let wf = workflow(&yaml(
        "parallel",
        "",
        r#"
    - {node_id: slow, node_type: compute, component: flaky, timeout_ms: 60000, input: "{'sleep_ms': 30000}"}
    - {node_id: bad, node_type: compute, component: flaky, retry_count: 0, input: "{'fail_until_attempt': 9, 'error': 'fatal'}"}
"#,
    ));
    let out = run(wf, json!({"max_parallel_steps": 2})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.failed_steps, ["bad"]);
    assert_eq!(out.skipped_steps, ["slow"], "the sleeping step is interrupted, not awaited");
}

#[tokio::test]
async fn continue_on_error_runs_every_independent_branch() {
    let out =
        run(workflow(&yaml("sequential", "", FAILING_BRANCH)), json!({"failure_strategy": "continue_on_error"})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.completed_steps, ["ok1", "ok2"]);
    assert_eq!(out.failed_steps, ["bad"]);
    assert_eq!(out.skipped_steps, ["after_bad"]);
}

#[tokio::test]
async fn a_node_with_continue_on_error_does_not_fail_the_run() {
    let wf = workflow(&yaml(
        "sequential",
        "",
        r#"
    - {node_id: a, node_type: compute, component: echo}
    - {node_id: notify, node_type: compute, component: flaky, retry_count: 0, continue_on_error: true, depends_on: [a], input: "{'fail_until_attempt': 9, 'error': 'fatal'}"}
    - {node_id: z, node_type: compute, component: echo, depends_on: [notify]}
"#,
    ));
    let out = run(wf, json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert!(out.failed_steps.is_empty());
    assert_eq!(out.completed_steps, ["a", "z"]);
    assert_eq!(out.errors.len(), 1, "the tolerated failure is still reported");
    assert_eq!(out.errors[0].step_id, "notify");
}

#[tokio::test]
async fn the_retry_strategy_gives_a_failed_step_more_rounds() {
    let nodes = r#"
    - {node_id: shaky, node_type: compute, component: flaky, retry: {max_attempts: 1, initial_delay_ms: 100}, input: "{'fail_until_attempt': 3}"}
"#;
    let rules = "coordination_rules:\n  max_retries: 2\n";
    let out = run(workflow(&yaml("sequential", rules, nodes)), json!({"failure_strategy": "retry"})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(out.step_outputs["shaky"]["attempt"], 3);
    let out = run(workflow(&yaml("sequential", rules, nodes)), json!({"failure_strategy": "fail_fast"})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.metrics["step.shaky.attempts"], 1.0);
}

#[tokio::test]
async fn compensate_undoes_completed_effects_in_reverse_order() {
    let wf = workflow(&format!(
        "{HEAD}workflow_metadata: {{workflow_name: s, workflow_type: saga}}\nexecution_graph:\n  nodes:\n{}",
        r#"
    - {node_id: first, node_type: effect, component: ledger, input: "{'kind': 'first'}"}
    - {node_id: pure, node_type: compute, component: echo, depends_on: [first]}
    - {node_id: second, node_type: effect, component: ledger, depends_on: [pure], input: "{'kind': 'second'}"}
    - {node_id: boom, node_type: effect, component: ledger, depends_on: [second], retry_count: 0, input: "{'kind': 'x', 'fail': 'fatal'}"}
"#
    ));
    let (out, events) = run_with_events(wf, json!({"failure_strategy": "compensate"})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    let comp = out.output_variables["compensation"].as_array().unwrap();
    let order: Vec<&str> = comp.iter().map(|c| c["step_id"].as_str().unwrap()).collect();
    assert_eq!(order, ["second", "first"], "reverse completion order, effects only");
    assert!(comp.iter().all(|c| c["status"] == "compensated"));
    let comp_events: Vec<&RunEvent> =
        events.iter().filter(|e| matches!(e, RunEvent::Compensated { .. } | RunEvent::Compensating { .. })).collect();
    assert_eq!(comp_events.len(), 4);
}

// ----------------------------------------------------------------- retries

#[tokio::test]
async fn retries_back_off_exponentially_with_seeded_jitter() {
    let wf = workflow(&yaml(
        "sequential",
        "",
        r#"
    - node_id: shaky
      node_type: compute
      component: flaky
      input: "{'fail_until_attempt': 4}"
      retry: {max_attempts: 4, initial_delay_ms: 100, multiplier: 2.0, max_delay_ms: 1000, jitter: 0.5}
"#,
    ));
    let delays = |events: &[RunEvent]| -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| if let RunEvent::Retrying { delay_ms, .. } = e { Some(*delay_ms) } else { None })
            .collect()
    };
    let (out, events) = run_with_events(wf.clone(), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(out.step_outputs["shaky"]["attempt"], 4);
    let d1 = delays(&events);
    assert_eq!(d1.len(), 3);
    for (d, base) in d1.iter().zip([100u64, 200, 400]) {
        assert!(*d <= base && *d >= base / 2, "delay {d} outside [{}, {base}]", base / 2);
    }
    let (_, events2) = run_with_events(wf, json!({})).await;
    assert_eq!(d1, delays(&events2), "the same jitter seed gives the same delays");
}

#[tokio::test]
async fn fatal_and_invalid_input_errors_are_never_retried() {
    for kind in ["fatal", "invalid_input"] {
        let wf = workflow(&yaml(
            "sequential",
            "",
            &format!(
                "    - {{node_id: s, node_type: compute, component: flaky, retry_count: 5, input: \"{{'fail_until_attempt': 9, 'error': '{kind}'}}\"}}\n"
            ),
        ));
        let out = run(wf, json!({})).await;
        assert_eq!(out.metrics["step.s.attempts"], 1.0, "{kind} must not be retried");
    }
}

// ---------------------------------------------------------------- timeouts

#[tokio::test]
async fn a_step_timeout_is_reported_with_its_kind() {
    let wf = workflow(&yaml(
        "sequential",
        "",
        "    - {node_id: slow, node_type: compute, component: flaky, timeout_ms: 200, retry_count: 0, input: \"{'sleep_ms': 20000}\"}\n",
    ));
    let out = run(wf, json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.errors[0].error_type, "timeout");
    assert!(out.errors[0].message.contains("200 ms"), "{}", out.errors[0].message);
}

#[tokio::test]
async fn the_global_timeout_interrupts_in_flight_steps() {
    let wf = workflow(&yaml(
        "sequential",
        "",
        r#"
    - {node_id: quick, node_type: compute, component: echo}
    - {node_id: slow, node_type: compute, component: flaky, timeout_ms: 60000, depends_on: [quick], input: "{'sleep_ms': 30000}"}
    - {node_id: never, node_type: compute, component: echo, depends_on: [slow]}
"#,
    ));
    let out = run(wf, json!({"global_timeout_ms": 1000})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.completed_steps, ["quick"]);
    assert_eq!(out.failed_steps, ["slow"]);
    assert_eq!(out.skipped_steps, ["never"]);
    let e = out.errors.iter().find(|e| e.step_id == "workflow").unwrap();
    assert_eq!(e.error_type, "timeout");
    assert_eq!(e.message, "Workflow exceeded 1000ms timeout");
}

// ------------------------------------------------------------------ cancel

#[tokio::test]
async fn cancel_interrupts_and_compensates() {
    let wf = workflow(&yaml(
        "sequential",
        "",
        r#"
    - {node_id: pay, node_type: effect, component: ledger, input: "{'kind': 'pay'}"}
    - {node_id: wait, node_type: compute, component: flaky, timeout_ms: 60000, depends_on: [pay], input: "{'sleep_ms': 30000}"}
    - {node_id: ship, node_type: effect, component: ledger, depends_on: [wait], input: "{'kind': 'ship'}"}
"#,
    ));
    let mut h =
        Engine::new(executor()).start(wf, &input(json!({"failure_strategy": "compensate"})), opts()).await.unwrap();
    let mut events = Vec::new();
    while let Some(e) = h.events.recv().await {
        let started_wait = matches!(&e, RunEvent::AttemptStarted { step_id, .. } if step_id == "wait");
        events.push(e);
        if started_wait {
            h.cancel();
        }
    }
    let out = h.wait().await;
    check_contract(&out);
    assert_eq!(out.execution_status, ExecutionStatus::Cancelled);
    assert_eq!(out.completed_steps, ["pay"]);
    assert_eq!(out.failed_steps, ["wait"]);
    assert_eq!(out.skipped_steps, ["ship"]);
    assert_eq!(out.output_variables["compensation"][0]["step_id"], "pay");
    assert_eq!(out.output_variables["compensation"][0]["status"], "compensated");
    assert!(events.iter().any(|e| matches!(e, RunEvent::RunFinished { status: ExecutionStatus::Cancelled })));
}

#[tokio::test]
async fn a_long_lived_engine_runs_the_new_version_of_a_replaced_component() {
    let dir = tempfile::tempdir().unwrap();
    let step = dir.path().join("service.wasm");
    std::fs::copy(common::plugin("echo"), &step).unwrap();
    let text = format!(
        "{HEAD}execution_graph:\n  nodes:\n    - {{node_id: s, node_type: compute, component: '{}', input: \"{{'v': 1}}\"}}\n",
        step.display()
    );
    let engine = Engine::new(executor());
    // Validated once: only the engine's own check at run start can see the change.
    let wf = Arc::new(load_str(&text, dir.path(), "svc.yaml", Some(executor().as_ref())).unwrap());
    let out = engine.run(wf.clone(), &input(json!({})), opts()).await.unwrap();
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    // A new version is deployed at the same path: the next run uses it.
    std::fs::copy(common::plugin("panic"), &step).unwrap();
    let out = engine.run(wf, &input(json!({})), opts()).await.unwrap();
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.errors[0].error_type, "trap", "{:?}", out.errors);
}

// ----------------------------------------------------------------- actions

#[tokio::test]
async fn actions_are_listed_and_delivered_to_their_target() {
    let wf = workflow(&yaml(
        "sequential",
        "",
        r#"
    - {node_id: source, node_type: compute, component: emitter, input: "{'count': 2, 'target': 'sink', 'payload': {'n': 7}}"}
    - {node_id: sink, node_type: compute, component: echo, depends_on: [source], requires_action: true, input: "{'got': actions.size(), 'first': actions[0].payload.n, 'from': actions[0].source_node}"}
    - {node_id: lonely, node_type: compute, component: echo, depends_on: [source], requires_action: true}
"#,
    ));
    let out = run(wf, json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(out.actions_emitted.len(), 2);
    assert_eq!(out.actions_emitted[0].target_node, "sink");
    assert_eq!(out.actions_emitted[0].action_type, "compute");
    assert_eq!(out.step_outputs["sink"], json!({"got": 2, "first": 7, "from": "source"}));
    assert_eq!(out.skipped_steps, ["lonely"], "requires_action without an action is skipped");
    assert_eq!(out.metrics["actions_count"], 2.0);
}

#[tokio::test]
async fn expressions_see_the_steps_they_name_however_they_name_them() {
    // Only the outputs an expression reads are handed to CEL; reading `steps`
    // as a whole, or by a computed key, must still see every completed step.
    let wf = workflow(&yaml(
        "sequential",
        "",
        r#"
    - {node_id: a, node_type: compute, component: echo, input: "{'x': 1}"}
    - {node_id: b, node_type: compute, component: echo, depends_on: [a], input: "{'y': steps['a'].x + 1}"}
    - node_id: c
      node_type: compute
      component: echo
      depends_on: [b]
      when: "has(steps.b.y)"
      input: "{'count': size(steps), 'by_key': steps[context.which].x, 'sum': steps.a.x + steps.b.y}"
"#,
    ));
    let out = run(wf, json!({"context": {"which": "a"}})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
    assert_eq!(out.step_outputs["c"], json!({"count": 2, "by_key": 1, "sum": 3}));
}

#[tokio::test]
async fn actions_reach_only_downstream_nodes_whatever_the_mode_or_timing() {
    // `side` does not depend on `source`: in parallel mode it may be decided
    // before `source` finishes, so delivering to it would depend on timing.
    // It never receives the action, in any mode, and the run says why.
    for mode in ["sequential", "parallel"] {
        let wf = workflow(&yaml(
            mode,
            "",
            r#"
    - {node_id: start, node_type: compute, component: echo}
    - {node_id: source, node_type: compute, component: emitter, depends_on: [start], input: "{'count': 1, 'target': 'side', 'payload': {}}"}
    - {node_id: side, node_type: compute, component: echo, depends_on: [start], requires_action: true}
    - {node_id: typo, node_type: compute, component: emitter, depends_on: [start], input: "{'count': 1, 'target': 'sied', 'payload': {}}"}
"#,
        ));
        let (out, events) = run_with_events(wf, json!({})).await;
        assert_eq!(out.execution_status, ExecutionStatus::Completed, "{mode}");
        assert_eq!(out.skipped_steps, ["side"], "{mode}");
        assert_eq!(out.actions_emitted.len(), 2, "{mode}: the actions are still listed");
        let undelivered = out.output_variables["undelivered_actions"].as_array().unwrap();
        let to = |target: &str| undelivered.iter().find(|u| u["target_node"] == target).unwrap();
        let side = to("side");
        let listed = out.actions_emitted.iter().find(|a| a.target_node == "side").unwrap();
        assert_eq!(side["action_id"], listed.action_id.as_str(), "{mode}");
        assert_eq!(side["source_node"], "source");
        assert!(side["reason"].as_str().unwrap().contains("add `source` to the `depends_on` of `side`"), "{side}");
        let typo = to("sied");
        assert_eq!(typo["source_node"], "typo");
        assert_eq!(typo["reason"], "no node of this workflow is named `sied` (did you mean `side`?)");
        assert!(
            events.iter().any(|e| matches!(e, RunEvent::ActionNotDelivered { action } if action.target_node == "side")),
            "{mode}: watchers are told"
        );
    }
}

#[test]
fn a_node_that_requires_an_action_but_has_no_dependencies_is_refused() {
    let msg = problems(&yaml(
        "sequential",
        "",
        "\n    - {node_id: a, node_type: compute, component: echo, requires_action: true}\n",
    ));
    assert!(msg.contains("node `a`: `requires_action: true` on a node without `depends_on`"), "{msg}");
    assert!(msg.contains("add the emitting step to `depends_on`"), "{msg}");
}

// -------------------------------------------------------------- validation

fn problems(yaml: &str) -> String {
    let dist = common::root().join("plugins/dist");
    let exec = executor();
    match load_str(yaml, &dist, "bad.yaml", Some(exec.as_ref())) {
        Ok(_) => panic!("expected validation errors"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_validation_problem_is_reported_at_once_with_its_place() {
    let text = format!(
        "{HEAD}colour: blue\nexecution_graph:\n  nodes:\n{}",
        r#"    - node_id: a
      node_type: compute
      component: echo
      timeout_ms: 50
      retry_count: 11
      tiemout_ms: 5
    - node_id: a
      node_type: compute
      component: echo
    - node_id: b
      node_type: compute
      component: echo
      depends_on: [ghost]
      when: "steps.a.x >"
    - node_id: c
      node_type: compute
      component: no_such_plugin
    - node_id: d
      node_type: compute
      component: charge_payment
    - node_id: e
      node_type: wizard
      component: echo
    - node_id: f
      node_type: compute
      component: /dev/zero
"#
    );
    let msg = problems(&text);
    let expect = [
        "bad.yaml:4:1: unknown key `colour`",
        "bad.yaml:10:19: node `a`: `timeout_ms` is 50; it must be between 100 and 300000",
        "bad.yaml:11:20: node `a`: `retry_count` is 11; it must be between 0 and 10",
        "bad.yaml:12:7: node `a`: unknown key `tiemout_ms` in a node (did you mean `timeout_ms`?)",
        "bad.yaml:13:16: node `a`: duplicate node id: `a` is already defined at line 7",
        "node `b`: depends on `ghost`, which is not a node of this workflow",
        "node `b`: `when` is not a valid CEL expression",
        "node `c`: component `no_such_plugin` not found",
        "node `d`: component `charge_payment` cannot run as a compute node",
        "missing export `weft:step/compute@0.1.2`",
        "node `e`: `node_type` is `wizard`",
        "node `f`: component `/dev/zero` (/dev/zero) is not a regular file",
    ];
    for e in expect {
        assert!(msg.contains(e), "missing {e:?} in:\n{msg}");
    }
}

#[test]
fn cycles_are_named() {
    let msg = problems(&yaml(
        "sequential",
        "",
        r#"
    - {node_id: a, node_type: compute, component: echo, depends_on: [c]}
    - {node_id: b, node_type: compute, component: echo, depends_on: [a]}
    - {node_id: c, node_type: compute, component: echo, depends_on: [b]}
"#,
    ));
    assert!(msg.contains("the graph has a cycle"), "{msg}");
    assert!(
        msg.contains("a -> b -> c -> a") || msg.contains("b -> c -> a -> b") || msg.contains("c -> a -> b -> c"),
        "{msg}"
    );
}

#[test]
fn an_empty_graph_and_a_saga_without_compensation_are_refused() {
    let msg = problems(&format!("{HEAD}execution_graph:\n  nodes: []\n"));
    assert!(msg.contains("a workflow needs at least one node"), "{msg}");
    let msg = problems(&format!(
        "{HEAD}workflow_metadata: {{workflow_name: s, workflow_type: saga}}\nexecution_graph:\n  nodes:\n    - {{node_id: pay, node_type: effect, component: charge_payment, compensate: false}}\n"
    ));
    assert!(msg.contains("a saga workflow requires compensation"), "{msg}");
}

#[test]
fn hostile_yaml_is_refused_with_a_clear_error() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..12 {
        let p = if i == 0 { "a".to_string() } else { format!("l{}", i - 1) };
        bomb.push_str(&format!("l{i}: &l{i} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"));
    }
    let msg = problems(&bomb);
    assert!(msg.contains("not valid YAML for a workflow"), "{msg}");
    let deep = format!("{HEAD}x: {}1{}\n", "[".repeat(500), "]".repeat(500));
    let msg = problems(&deep);
    assert!(msg.contains("not valid YAML for a workflow"), "{msg}");
    let huge = format!("{HEAD}# {}\n", "x".repeat(17 << 20));
    let msg = problems(&huge);
    assert!(msg.contains("larger than"), "{msg}");
    let msg = problems("- just\n- a list\n");
    assert!(msg.contains("must be a mapping"), "{msg}");
    // A repeated key: named, placed at the repeat (line 7: HEAD has 3 lines), and no
    // advice about the YAML library's options.
    let msg = problems(&format!("{HEAD}execution_graph:\n  nodes:\n    - node_id: a\n      node_id: b\n"));
    assert!(msg.contains("bad.yaml:7:7: not valid YAML for a workflow: duplicate mapping key: node_id"), "{msg}");
    assert!(msg.contains("each key may appear once") && !msg.contains("DuplicateKeyPolicy"), "{msg}");
}
