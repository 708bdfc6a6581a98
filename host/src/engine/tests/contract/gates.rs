//! Approval gates: approved, rejected, timed out, paused in the store's
//! listing, and every signal that must be refused.

use super::*;

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
