//! The engine without wasm: every mode, every failure strategy, retries and
//! backoff, the step and global timeouts, cancellation, compensation order,
//! action delivery, resume and replay, each driven by a
//! [`ScriptedExecutor`]. The newer features have a file each: `fan_out`,
//! `memoize` and `streaming`, which share the helpers here.

#![allow(clippy::unwrap_used)]

use super::scripted::{Reply, ScriptedExecutor};
use super::*;
use crate::contract::{ActionKind, FailureKind};
use crate::store::{JournalEntry, MemoryStore};
use crate::workflow::load_str;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

mod contract;
mod fan_out;
mod memoize;
mod streaming;

/// A workflow of `nodes` (YAML list items) in `mode`, with `rules`
/// appended; every node's component is one empty file (the scripted
/// executor never reads it).
fn workflow(mode: &str, rules: &str, nodes: &str) -> Arc<Workflow> {
    let dir = std::env::temp_dir().join("weft-scripted-tests");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("step.wasm"), b"").unwrap();
    let yaml = format!(
        "kind: WorkflowDefinition\nmetadata: {{name: t}}\nworkflow_metadata: {{workflow_name: t, execution_mode: \
         {mode}}}\nexecution_graph:\n  nodes:\n{nodes}{rules}"
    );
    Arc::new(load_str(&yaml, &dir, "t.yaml", None).unwrap_or_else(|e| panic!("{e}")))
}

/// A node line: `id`, of `node_type`, with `extra` keys (`, depends_on: [a]`).
fn node(id: &str, node_type: &str, extra: &str) -> String {
    format!("    - {{node_id: {id}, node_type: {node_type}, component: step.wasm, retry_count: 0{extra}}}\n")
}

fn input(v: Value) -> RunInput {
    serde_json::from_value(v).unwrap()
}

fn opts() -> RunOptions {
    RunOptions { jitter_seed: Some(7), ..RunOptions::default() }
}

/// Runs `wf` with `exec` and returns its output and events.
async fn run(exec: &Arc<ScriptedExecutor>, wf: Arc<Workflow>, inp: Value) -> (RunOutput, Vec<RunEvent>) {
    let mut h = Engine::new(exec.clone()).start(wf, &input(inp), opts()).await.unwrap();
    let mut events = Vec::new();
    while let Some(e) = h.events.recv().await {
        events.push(e);
    }
    let out = h.wait().await;
    assert!(out.status_is_consistent(), "status_consistency: {out:?}");
    (out, events)
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The most steps that were in flight at once, from the event order.
fn most_in_flight(events: &[RunEvent]) -> usize {
    let (mut now, mut most) = (0usize, 0usize);
    for e in events {
        match e {
            RunEvent::AttemptStarted { .. } => {
                now += 1;
                most = most.max(now);
            }
            RunEvent::StepCompleted { .. } | RunEvent::StepFailed { .. } | RunEvent::Retrying { .. } => {
                now = now.saturating_sub(1)
            }
            _ => {}
        }
    }
    most
}

// ------------------------------------------------------------------ modes

#[tokio::test]
async fn sequential_mode_runs_one_step_at_a_time_in_topological_order() {
    let nodes = [
        node("c", "compute", ", depends_on: [b]"),
        node("a", "compute", ""),
        node("b", "compute", ", depends_on: [a]"),
        node("d", "compute", ", depends_on: [a]"),
    ]
    .concat();
    let exec = Arc::new(ScriptedExecutor::new().on("a", [Reply::output(json!({"n": 1}))]));
    let (out, events) = run(&exec, workflow("sequential", "", &nodes), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(exec.run_order(), ids(&["a", "b", "c", "d"]), "topological, ties in file order");
    assert_eq!(most_in_flight(&events), 1);
    assert_eq!(out.parallel_executions, 0);
    // The only dependency's output is the default input.
    assert_eq!(exec.calls()[1].input, json!({"n": 1}).as_object().cloned().unwrap());
}

#[tokio::test]
async fn parallel_mode_runs_ready_steps_together_up_to_max_parallel_steps() {
    let mut nodes = node("root", "compute", "");
    for i in 0..5 {
        nodes.push_str(&node(&format!("w{i}"), "compute", ", depends_on: [root]"));
    }
    let mut exec = ScriptedExecutor::new();
    for i in 0..5 {
        exec = exec.on(&format!("w{i}"), [Reply::echo().after(Duration::from_millis(40))]);
    }
    let exec = Arc::new(exec);
    let (out, events) = run(&exec, workflow("parallel", "", &nodes), json!({"max_parallel_steps": 2})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(out.completed_steps.len(), 6);
    assert_eq!(most_in_flight(&events), 2, "bounded by max_parallel_steps");
    assert!(out.parallel_executions >= 3, "rounds that launched steps: {}", out.parallel_executions);
}

#[tokio::test]
async fn conditional_mode_skips_a_false_branch_and_its_dependents() {
    let nodes = [
        node("price", "compute", ""),
        node("big", "compute", ", depends_on: [price], when: \"steps.price.total > 100\""),
        node("after_big", "compute", ", depends_on: [big]"),
        node("small", "compute", ", depends_on: [price], when: \"steps.price.total <= 100\""),
    ]
    .concat();
    let exec = Arc::new(ScriptedExecutor::new().on("price", [Reply::output(json!({"total": 40}))]));
    let (out, events) = run(&exec, workflow("conditional", "", &nodes), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(out.completed_steps, ids(&["price", "small"]));
    assert_eq!(out.skipped_steps, ids(&["big", "after_big"]));
    assert!(events.iter().any(
        |e| matches!(e, RunEvent::StepSkipped { step_id, reason } if step_id == "after_big" && reason.contains("`big` was skipped"))
    ));
}

/// The waves a batch run launched, from its events: each wave is the steps
/// started after every earlier start had finished.
fn waves(events: &[RunEvent]) -> Vec<Vec<String>> {
    let (mut waves, mut open): (Vec<Vec<String>>, usize) = (Vec::new(), 0);
    for e in events {
        match e {
            RunEvent::AttemptStarted { step_id, .. } => {
                if open == 0 {
                    waves.push(Vec::new());
                }
                open += 1;
                waves.last_mut().unwrap().push(step_id.clone());
            }
            RunEvent::StepCompleted { .. } | RunEvent::StepFailed { .. } => open = open.saturating_sub(1),
            _ => {}
        }
    }
    waves
}

fn seven_steps() -> (String, ScriptedExecutor) {
    let nodes: String = (0..7).map(|i| node(&format!("w{i}"), "compute", "")).collect();
    // The first step of each wave is the slowest: a strict wave waits for it.
    let mut exec = ScriptedExecutor::new();
    for i in 0..7 {
        let ms = if i % 3 == 0 { 80 } else { 5 };
        exec = exec.on(&format!("w{i}"), [Reply::echo().after(Duration::from_millis(ms))]);
    }
    (nodes, exec)
}

#[tokio::test]
async fn batch_mode_runs_ready_steps_in_waves_of_batch_size() {
    let (nodes, exec) = seven_steps();
    let exec = Arc::new(exec);
    let (out, events) =
        run(&exec, workflow("batch", "", &nodes), json!({"batch_size": 3, "max_parallel_steps": 10})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    let w = |l: &[&str]| ids(l);
    assert_eq!(waves(&events), vec![w(&["w0", "w1", "w2"]), w(&["w3", "w4", "w5"]), w(&["w6"])]);
    assert_eq!(out.parallel_executions, 3, "one per wave");
    assert_eq!(out.output_variables["execution_mode"], "batch");
    // Within a wave, max_parallel_steps still bounds what runs at once.
    let (nodes, exec) = seven_steps();
    let exec = Arc::new(exec);
    let (out, events) =
        run(&exec, workflow("batch", "", &nodes), json!({"batch_size": 4, "max_parallel_steps": 2})).await;
    assert_eq!(out.completed_steps.len(), 7);
    assert_eq!(most_in_flight(&events), 2);
    assert_eq!(out.parallel_executions, 2);
}

#[tokio::test]
async fn a_failure_in_a_wave_stops_the_run_when_its_wave_ends() {
    let (nodes, exec) = seven_steps();
    let exec = Arc::new(exec.on("w1", [Reply::fatal("no")]));
    let (out, events) = run(&exec, workflow("batch", "", &nodes), json!({"batch_size": 3})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.failed_steps, ids(&["w1"]));
    assert_eq!(out.completed_steps, ids(&["w2", "w0"]), "the slow step of the failed wave was not interrupted");
    assert_eq!(waves(&events).len(), 1, "no wave starts after the failure");
    assert_eq!(out.skipped_steps.len(), 4);
}

#[tokio::test]
async fn batch_size_comes_from_the_input_the_rules_or_the_contract_default() {
    let (nodes, exec) = seven_steps();
    let exec = Arc::new(exec);
    let (_, events) = run(&exec, workflow("batch", "coordination_rules: {batch_size: 2}\n", &nodes), json!({})).await;
    assert_eq!(waves(&events).len(), 4, "coordination_rules.batch_size: 2");
    let (_, events) = run(&exec, workflow("batch", "", &nodes), json!({"max_parallel_steps": 10})).await;
    assert_eq!(waves(&events).len(), 1, "the default of 10 takes all seven");
    for bad in [0, 1001] {
        let err = Engine::new(exec.clone())
            .start(workflow("batch", "", &nodes), &input(json!({"batch_size": bad})), opts())
            .await;
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains(&format!("batch_size is {bad}; it must be between 1 and 1000")), "{msg}");
    }
}

fn two_branches() -> String {
    [
        node("a", "compute", ""),
        node("bad", "compute", ", depends_on: [a]"),
        node("after_bad", "compute", ", depends_on: [bad]"),
        node("other", "compute", ", depends_on: [a]"),
    ]
    .concat()
}

#[tokio::test]
async fn fail_fast_stops_at_the_first_failure() {
    let exec = Arc::new(ScriptedExecutor::new().on("bad", [Reply::fatal("no")]));
    let (out, _) =
        run(&exec, workflow("sequential", "", &two_branches()), json!({"failure_strategy": "fail_fast"})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.failed_steps, ids(&["bad"]));
    assert_eq!(exec.run_order(), ids(&["a", "bad"]), "nothing starts after the failure");
    assert_eq!(out.skipped_steps, ids(&["after_bad", "other"]));
    assert_eq!(out.errors[0].error_type, "plugin_error");
}

#[tokio::test]
async fn fail_fast_interrupts_steps_in_flight() {
    let nodes = [node("slow", "compute", ", timeout_ms: 60000"), node("bad", "compute", "")].concat();
    let exec = Arc::new(
        ScriptedExecutor::new()
            .on("slow", [Reply::echo().after(Duration::from_secs(30))])
            .on("bad", [Reply::fatal("no").after(Duration::from_millis(20))]),
    );
    let (out, events) = run(&exec, workflow("parallel", "", &nodes), json!({"max_parallel_steps": 2})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.skipped_steps, ids(&["slow"]));
    assert!(events.iter().any(|e| matches!(e, RunEvent::StepSkipped { step_id, reason } if step_id == "slow" && reason.starts_with("interrupted"))));
}

#[tokio::test]
async fn continue_on_error_runs_every_independent_branch() {
    let exec = Arc::new(ScriptedExecutor::new().on("bad", [Reply::fatal("no")]));
    let (out, _) =
        run(&exec, workflow("sequential", "", &two_branches()), json!({"failure_strategy": "continue_on_error"})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed, "a failed step fails the run");
    assert_eq!(out.completed_steps, ids(&["a", "other"]));
    assert_eq!(out.skipped_steps, ids(&["after_bad"]), "dependents of the failed step are skipped");
}

#[tokio::test]
async fn a_tolerated_failure_lets_its_dependents_run() {
    let nodes = [
        node("a", "compute", ""),
        node("notify", "compute", ", continue_on_error: true, depends_on: [a]"),
        node("z", "compute", ", depends_on: [notify]"),
    ]
    .concat();
    let exec = Arc::new(ScriptedExecutor::new().on("notify", [Reply::fatal("smtp down")]));
    let (out, _) = run(&exec, workflow("sequential", "", &nodes), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(out.completed_steps, ids(&["a", "z"]));
    assert_eq!(out.errors.len(), 1, "the tolerated failure is still reported");
}

#[tokio::test]
async fn the_retry_strategy_gives_a_failed_step_more_rounds_of_its_policy() {
    let nodes = "    - {node_id: shaky, node_type: compute, component: step.wasm, retry: {max_attempts: 2, \
                 initial_delay_ms: 100}}\n";
    let rules = "coordination_rules: {max_retries: 1}\n";
    let fails = [Reply::fail(FailureKind::Trap), Reply::fail(FailureKind::Trap), Reply::fail(FailureKind::Trap)];
    let script = fails.iter().cloned().chain([Reply::output(json!({"ok": true}))]);
    let exec = Arc::new(ScriptedExecutor::new().on("shaky", script.clone()));
    let (out, _) = run(&exec, workflow("sequential", rules, nodes), json!({"failure_strategy": "retry"})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "2 rounds of 2 attempts");
    assert_eq!(out.metrics["step.shaky.attempts"], 4.0);
    let exec = Arc::new(ScriptedExecutor::new().on("shaky", script));
    let (out, _) = run(&exec, workflow("sequential", rules, nodes), json!({"failure_strategy": "fail_fast"})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed, "one round only");
    assert_eq!(out.metrics["step.shaky.attempts"], 2.0);
}

#[tokio::test]
async fn compensate_undoes_completed_effects_in_reverse_completion_order() {
    let nodes = [
        node("reserve", "effect", ""),
        node("price", "compute", ", depends_on: [reserve]"),
        node("charge", "effect", ", depends_on: [price]"),
        node("ship", "effect", ", depends_on: [charge]"),
    ]
    .concat();
    let exec = Arc::new(
        ScriptedExecutor::new()
            .on("charge", [Reply::output(json!({"receipt": "r-1"}))])
            .on("ship", [Reply::fatal("no truck")]),
    );
    let (out, events) = run(&exec, workflow("sequential", "", &nodes), json!({"failure_strategy": "compensate"})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(exec.compensation_order(), ids(&["charge", "reserve"]), "effects only, newest first");
    let undone: Vec<&Value> = out.output_variables["compensation"].as_array().unwrap().iter().collect();
    assert_eq!(undone[0]["step_id"], "charge");
    assert_eq!(undone[0]["status"], "compensated");
    let compensating: Vec<&RunEvent> = events.iter().filter(|e| matches!(e, RunEvent::Compensating { .. })).collect();
    assert_eq!(compensating.len(), 2);
}

#[tokio::test]
async fn a_failed_compensation_is_reported_and_the_others_still_run() {
    let nodes =
        [node("a", "effect", ""), node("b", "effect", ", depends_on: [a]"), node("c", "compute", ", depends_on: [b]")]
            .concat();
    let exec = Arc::new(
        ScriptedExecutor::new().on("c", [Reply::fatal("no")]).on_compensate("b", [Reply::fatal("cannot undo")]),
    );
    let (out, _) = run(&exec, workflow("sequential", "", &nodes), json!({"failure_strategy": "compensate"})).await;
    assert_eq!(exec.compensation_order(), ids(&["b", "a"]));
    assert!(out.errors.iter().any(|e| e.step_id == "b" && e.error_type == "compensation_failed"), "{:?}", out.errors);
}

// ------------------------------------------------------ retries and backoff

fn retried(extra_retry: &str) -> String {
    format!(
        "    - {{node_id: s, node_type: compute, component: step.wasm, retry: {{max_attempts: 4, initial_delay_ms: \
         100, multiplier: 2.0, max_delay_ms: 1000{extra_retry}}}}}\n"
    )
}

fn delays(events: &[RunEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| if let RunEvent::Retrying { delay_ms, .. } = e { Some(*delay_ms) } else { None })
        .collect()
}

#[tokio::test]
async fn retries_back_off_exponentially() {
    let exec = Arc::new(ScriptedExecutor::new().on("s", [Reply::fail(FailureKind::Timeout)]));
    let (out, events) = run(&exec, workflow("sequential", "", &retried("")), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(delays(&events), [100, 200, 400]);
    let attempts: Vec<u32> = exec.calls().iter().map(|c| c.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    let keys: std::collections::HashSet<String> = exec.calls().into_iter().map(|c| c.idempotency_key).collect();
    assert_eq!(keys.len(), 1, "one idempotency key across retries");
}

#[tokio::test]
async fn jitter_shortens_delays_the_same_way_for_the_same_seed() {
    let exec = Arc::new(ScriptedExecutor::new().on("s", [Reply::fail(FailureKind::Trap)]));
    let wf = workflow("sequential", "", &retried(", jitter: 0.5"));
    let (_, first) = run(&exec, wf.clone(), json!({})).await;
    let (_, second) = run(&exec, wf, json!({})).await;
    let (a, b) = (delays(&first), delays(&second));
    assert_eq!(a, b, "the same jitter seed gives the same delays");
    for (d, base) in a.iter().zip([100u64, 200, 400]) {
        assert!(*d <= base && *d >= base / 2, "{d} within [{}, {base}]", base / 2);
    }
}

#[tokio::test]
async fn only_the_kinds_in_retry_on_are_retried_and_fatal_errors_never_are() {
    let exec = Arc::new(ScriptedExecutor::new().on("s", [Reply::fail(FailureKind::Trap), Reply::echo()]));
    let (out, _) = run(&exec, workflow("sequential", "", &retried(", retry_on: [timeout]")), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(exec.calls().len(), 1, "a trap is not in retry_on");
    let exec = Arc::new(ScriptedExecutor::new().on("s", [Reply::fatal("bad input"), Reply::echo()]));
    let (out, _) = run(&exec, workflow("sequential", "", &retried("")), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(exec.calls().len(), 1, "a fatal plugin error is never retried");
    let exec = Arc::new(ScriptedExecutor::new().on("s", [Reply::fail(FailureKind::Timeout), Reply::echo()]));
    let (out, _) = run(&exec, workflow("sequential", "", &retried(", retry_on: [timeout]")), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(exec.calls().len(), 2);
}

// ---------------------------------------------------------------- timeouts

#[tokio::test]
async fn a_step_gets_its_node_timeout_as_its_limit() {
    let nodes = node("slow", "compute", ", timeout_ms: 100");
    let exec = Arc::new(ScriptedExecutor::new().on("slow", [Reply::echo().after(Duration::from_secs(20))]));
    let (out, _) = run(&exec, workflow("sequential", "", &nodes), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.errors[0].error_type, "timeout");
    assert!(out.errors[0].message.contains("100 ms"), "{}", out.errors[0].message);
}

#[tokio::test]
async fn the_global_timeout_interrupts_in_flight_steps() {
    let nodes =
        [node("slow", "compute", ", timeout_ms: 60000"), node("next", "compute", ", depends_on: [slow]")].concat();
    let exec = Arc::new(ScriptedExecutor::new().on("slow", [Reply::echo().after(Duration::from_secs(30))]));
    let (out, _) = run(&exec, workflow("sequential", "", &nodes), json!({"global_timeout_ms": 1000})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.failed_steps, ids(&["slow"]));
    assert_eq!(out.skipped_steps, ids(&["next"]));
    assert!(out.errors.iter().any(|e| e.message == "Workflow exceeded 1000ms timeout"), "{:?}", out.errors);
}

// ------------------------------------------------------------ cancellation

#[tokio::test]
async fn cancelling_interrupts_the_step_in_flight_and_skips_the_rest() {
    let nodes =
        [node("wait", "effect", ", timeout_ms: 60000"), node("next", "compute", ", depends_on: [wait]")].concat();
    let exec = Arc::new(ScriptedExecutor::new().on("wait", [Reply::echo().after(Duration::from_secs(30))]));
    let mut h =
        Engine::new(exec.clone()).start(workflow("sequential", "", &nodes), &input(json!({})), opts()).await.unwrap();
    while let Some(e) = h.events.recv().await {
        if matches!(e, RunEvent::AttemptStarted { .. }) {
            h.cancel();
        }
    }
    let out = h.wait().await;
    assert_eq!(out.execution_status, ExecutionStatus::Cancelled);
    assert_eq!(out.failed_steps, ids(&["wait"]));
    assert_eq!(out.skipped_steps, ids(&["next"]));
    assert!(exec.compensation_order().is_empty(), "fail_fast does not compensate");
}

// ----------------------------------------------------------------- actions

#[tokio::test]
async fn actions_reach_downstream_nodes_and_are_refused_for_the_others() {
    let nodes = [
        node("start", "compute", ""),
        node("source", "compute", ", depends_on: [start]"),
        node("sink", "compute", ", depends_on: [source], requires_action: true"),
        node("lonely", "compute", ", depends_on: [source], requires_action: true"),
        node("side", "compute", ", depends_on: [start], requires_action: true"),
    ]
    .concat();
    let emit = Reply::output(json!({}))
        .emit(ActionKind::Compute, "sink", json!({"n": 7}))
        .emit(ActionKind::Effect, "side", json!({}))
        .emit(ActionKind::Custom, "sinc", json!({}));
    let exec = Arc::new(ScriptedExecutor::new().on("source", [emit]));
    let (out, events) = run(&exec, workflow("sequential", "", &nodes), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(out.actions_emitted.len(), 3);
    let sink = exec.calls().into_iter().find(|c| c.step_id == "sink").unwrap();
    assert_eq!(sink.input["actions"][0]["payload"]["n"], 7, "delivered under `actions`: {:?}", sink.input);
    assert_eq!(sink.input["actions"][0]["source_node"], "source");
    assert_eq!(out.skipped_steps, ids(&["lonely", "side"]), "requires_action without a delivered action");
    let undelivered = out.output_variables["undelivered_actions"].as_array().unwrap();
    assert_eq!(undelivered.len(), 2);
    assert!(undelivered[0]["reason"].as_str().unwrap().contains("does not depend on `source`"));
    assert!(undelivered[1]["reason"].as_str().unwrap().contains("did you mean `sink`?"));
    let not_delivered = events.iter().filter(|e| matches!(e, RunEvent::ActionNotDelivered { .. })).count();
    assert_eq!(not_delivered, 2);
}

#[tokio::test]
async fn every_attempt_and_compensation_asks_for_the_version_its_run_pinned() {
    let nodes = [node("pay", "effect", ""), node("fail", "compute", ", depends_on: [pay]")].concat();
    let exec = Arc::new(
        ScriptedExecutor::new().pin("pay", "sha256:aa").pin("fail", "sha256:bb").on("fail", [Reply::fatal("no")]),
    );
    let (out, _) = run(&exec, workflow("sequential", "", &nodes), json!({"failure_strategy": "compensate"})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    let asked: Vec<(String, bool, Option<String>)> =
        exec.calls().into_iter().map(|c| (c.step_id, c.compensate, c.pinned)).collect();
    assert_eq!(
        asked,
        [
            ("pay".to_string(), false, Some("sha256:aa".to_string())),
            ("fail".to_string(), false, Some("sha256:bb".to_string())),
            ("pay".to_string(), true, Some("sha256:aa".to_string())),
        ]
    );
}

// ---------------------------------------------------------- resume, replay

#[tokio::test]
async fn a_resumed_run_reruns_only_the_step_that_was_in_flight() {
    let store: Arc<dyn crate::store::RunStore> = Arc::new(MemoryStore::new());
    let nodes = [
        node("a", "compute", ""),
        node("b", "compute", ", timeout_ms: 60000, depends_on: [a]"),
        node("c", "compute", ", depends_on: [b]"),
    ]
    .concat();
    let wf = workflow("sequential", "", &nodes);
    let first = Arc::new(ScriptedExecutor::new().on("b", [Reply::echo().after(Duration::from_secs(30))]));
    let mut h =
        Engine::new(first.clone()).with_store(store.clone()).start(wf, &input(json!({})), opts()).await.unwrap();
    while let Some(e) = h.events.recv().await {
        if matches!(&e, RunEvent::AttemptStarted { step_id, .. } if step_id == "b") {
            break;
        }
    }
    // A crash: the run's task is gone, its journal stays.
    h.task.abort();
    assert!(h.task.await.is_err());
    let second = Arc::new(ScriptedExecutor::new());
    let engine = Engine::new(second.clone()).with_store(store.clone());
    let out = engine.resume(&h.run_id, ResumeOptions::default()).await.unwrap().wait().await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(out.completed_steps, ids(&["a", "b", "c"]));
    assert_eq!(first.run_order(), ids(&["a", "b"]));
    assert_eq!(second.run_order(), ids(&["b", "c"]), "a completed step never runs again");
    let b = &second.calls()[0];
    assert_eq!(b.attempt, 2, "the interrupted step runs with the next attempt number");
    assert_eq!(b.idempotency_key, first.calls()[1].idempotency_key, "and the same idempotency key");
}

#[tokio::test]
async fn a_replay_reruns_the_failed_step_with_its_journaled_input() {
    let store: Arc<dyn crate::store::RunStore> = Arc::new(MemoryStore::new());
    let rules = "coordination_rules: {dead_letter_queue_enabled: true}\n";
    let nodes = [node("a", "compute", ""), node("b", "compute", ", depends_on: [a]")].concat();
    let wf = workflow("sequential", rules, &nodes);
    let first =
        Arc::new(ScriptedExecutor::new().on("a", [Reply::output(json!({"v": 1}))]).on("b", [Reply::fatal("down")]));
    let failed = Engine::new(first.clone()).with_store(store.clone()).run(wf, &input(json!({})), opts()).await.unwrap();
    assert_eq!(failed.execution_status, ExecutionStatus::Failed);
    let id = failed.output_variables["run"]["run_id"].as_str().unwrap().to_string();
    let listed = store.dlq_list().await.unwrap();
    assert_eq!(listed[0].run_id, id);
    assert_eq!(listed[0].step_id, "b");
    let second = Arc::new(ScriptedExecutor::new());
    let engine = Engine::new(second.clone()).with_store(store.clone());
    let out = engine.replay(&id, ResumeOptions::default()).await.unwrap().wait().await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(second.run_order(), ids(&["b"]), "only the failed step runs again");
    assert_eq!(second.calls()[0].input, json!({"v": 1}).as_object().cloned().unwrap(), "with its journaled input");
    let journal = store.journal(&id).await.unwrap();
    assert!(matches!(journal.last().map(|j| &j.entry), Some(JournalEntry::RunFinished { .. })));
    assert_eq!(
        store.dlq_list().await.unwrap()[0].replayed_as.as_deref(),
        out.output_variables["run"]["run_id"].as_str()
    );
}

#[tokio::test]
async fn events_carry_the_instant_of_their_transition_not_of_their_reading() {
    let nodes = [node("a", "compute", ""), node("b", "compute", ", depends_on: [a]")].concat();
    let exec = Arc::new(ScriptedExecutor::new().on("a", [Reply::echo().after(Duration::from_millis(30))]));
    let before = std::time::Instant::now();
    let h = Engine::new(exec).start(workflow("sequential", "", &nodes), &input(json!({})), opts()).await.unwrap();
    let RunHandle { mut events, task, .. } = h;
    // Read only once the run has ended: the stamps must still be the transitions' own.
    let out = task.await.unwrap();
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    let finished = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut read = Vec::new();
    while let Some(timed) = events.recv_timed().await {
        read.push(timed);
    }
    let events = read;
    assert_eq!(events.len(), 6, "{events:?}");
    assert!(events.iter().all(|(at, _)| *at >= before && *at <= finished));
    assert!(events.windows(2).all(|w| w[0].0 <= w[1].0), "in order");
    let started_a =
        events.iter().find(|(_, e)| matches!(e, RunEvent::AttemptStarted { step_id, .. } if step_id == "a"));
    let done_a = events.iter().find(|(_, e)| matches!(e, RunEvent::StepCompleted { step_id, .. } if step_id == "a"));
    let (Some((s, _)), Some((d, _))) = (started_a, done_a) else { panic!("{events:?}") };
    assert!(*d >= *s + Duration::from_millis(30), "a's completion is stamped after its 30 ms attempt");
}
