//! Streaming mode without wasm: folding, backpressure, several consumers, a
//! failed producer, resume, and what `stream_from` requires.

#![allow(clippy::unwrap_used)]

use super::*;
fn numbers(n: u64) -> Vec<Value> {
    (1..=n).map(|i| json!(i)).collect()
}

fn stream_nodes(consumer_extra: &str) -> String {
    [node("p", "compute", ""), node("c", "compute", &format!(", stream_from: p{consumer_extra}"))].concat()
}

#[tokio::test]
async fn a_consumer_folds_its_producers_items_in_micro_batches() {
    let exec = Arc::new(
        ScriptedExecutor::new()
            .on("p", [Reply::output(json!({"done": true})).emitting(numbers(1000))])
            .on("c", [Reply::sum()]),
    );
    let nodes = [stream_nodes(", batch_size: 50"), node("after", "compute", ", depends_on: [c]")].concat();
    let (out, _) = run(&exec, workflow("streaming", "", &nodes), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
    assert_eq!(out.step_outputs["c"], json!({"sum": 500500.0, "count": 1000.0}));
    assert_eq!(out.step_outputs["p"], json!({"done": true}));
    assert_eq!(out.metrics["step.c.stream_items"], 1000.0);
    let batches = out.metrics["step.c.stream_batches"];
    assert!((20.0..=1000.0).contains(&batches), "micro-batches of at most 50: {batches}");
    // Each invocation saw the previous state.
    let calls: Vec<_> = exec.calls().into_iter().filter(|c| c.step_id == "c").collect();
    assert_eq!(calls[0].input["state"], Value::Null);
    assert!(calls.iter().all(|c| c.input["items"].as_array().is_some_and(|i| !i.is_empty() && i.len() <= 50)));
    assert_eq!(out.completed_steps, ids(&["p", "c", "after"]));
}

#[tokio::test]
async fn a_slow_consumer_holds_its_producer_back_within_its_buffer() {
    let exec = Arc::new(
        ScriptedExecutor::new()
            .on("p", [Reply::echo().emitting(numbers(2000))])
            .on("c", [Reply::sum().after(Duration::from_millis(1))]),
    );
    let nodes = stream_nodes(", batch_size: 10, stream_buffer: 16");
    let (out, _) = run(&exec, workflow("streaming", "", &nodes), json!({})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
    assert_eq!(out.step_outputs["c"]["count"], 2000.0);
    let peak = out.metrics["step.c.stream_peak_buffered"];
    assert!((1.0..=16.0).contains(&peak), "never more than the buffer waited: {peak}");
    assert!(out.metrics["step.c.stream_batches"] >= 200.0, "micro-batches of at most 10");
}

#[tokio::test]
async fn every_consumer_gets_every_item_and_a_failed_producer_ends_them() {
    let nodes = [
        node("p", "compute", ""),
        node("c1", "compute", ", stream_from: p"),
        node("c2", "compute", ", stream_from: p, batch_size: 7"),
    ]
    .concat();
    let exec = Arc::new(
        ScriptedExecutor::new()
            .on("p", [Reply::echo().emitting(numbers(100))])
            .on("c1", [Reply::sum()])
            .on("c2", [Reply::sum()]),
    );
    let (out, _) = run(&exec, workflow("streaming", "", &nodes), json!({})).await;
    assert_eq!(out.step_outputs["c1"]["sum"], 5050.0);
    assert_eq!(out.step_outputs["c2"]["sum"], 5050.0);
    // The producer fails after emitting 40 items: each consumer folds them, then fails.
    let exec = Arc::new(
        ScriptedExecutor::new()
            .on("p", [Reply::fatal("source gone").emitting(numbers(40))])
            .on("c1", [Reply::sum()])
            .on("c2", [Reply::sum()]),
    );
    let (out, _) =
        run(&exec, workflow("streaming", "", &nodes), json!({"failure_strategy": "continue_on_error"})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.failed_steps, ids(&["p", "c1", "c2"]));
    assert_eq!(out.step_outputs["c1"]["count"], 40.0, "what arrived was folded");
    let c1 = out.errors.iter().find(|e| e.step_id == "c1").unwrap();
    assert_eq!(c1.error_type, "stream");
    assert!(c1.message.starts_with("its producer `p` failed; 40 item(s) were folded"), "{}", c1.message);
}

#[tokio::test]
async fn a_resumed_stream_delivers_no_item_twice() {
    let store: Arc<dyn crate::store::RunStore> = Arc::new(MemoryStore::new());
    let wf = workflow("streaming", "", &stream_nodes(", batch_size: 20"));
    // The producer emits 150 items, then hangs: the run is killed while it is in flight.
    let first = Arc::new(
        ScriptedExecutor::new()
            .on("p", [Reply::echo().emitting(numbers(150)).after(Duration::from_secs(30))])
            .on("c", [Reply::sum()]),
    );
    let h = Engine::new(first.clone())
        .with_store(store.clone())
        .start(wf.clone(), &input(json!({})), opts())
        .await
        .unwrap();
    let run_id = h.run_id.clone();
    for _ in 0..500 {
        let folded: usize = first
            .calls()
            .iter()
            .filter(|c| c.step_id == "c")
            .map(|c| c.input["items"].as_array().map_or(0, Vec::len))
            .sum();
        if folded == 150 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.task.abort();
    assert!(h.task.await.is_err());
    // On resume the producer runs again and emits the same 150 items, then 50 more.
    let second =
        Arc::new(ScriptedExecutor::new().on("p", [Reply::echo().emitting(numbers(200))]).on("c", [Reply::sum()]));
    let out = Engine::new(second.clone())
        .with_store(store.clone())
        .resume(&run_id, ResumeOptions::default())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
    assert_eq!(out.step_outputs["c"], json!({"sum": 20100.0, "count": 200.0}), "items 1..=200, each once");
    let resumed: Vec<Value> = second
        .calls()
        .iter()
        .filter(|c| c.step_id == "c")
        .flat_map(|c| c.input["items"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(resumed, numbers(200)[150..].to_vec(), "only the items after the journaled ones");
    let journal = store.journal(&run_id).await.unwrap();
    let mut positions = Vec::new();
    for j in &journal {
        if let JournalEntry::StreamBatch { first_item, items, .. } = &j.entry {
            positions.extend(*first_item..*first_item + items.len() as u64);
        }
    }
    assert_eq!(positions, (0..200).collect::<Vec<u64>>(), "each item journaled once, in order");
}

#[tokio::test]
async fn stream_from_needs_streaming_mode_and_an_upstream_producer() {
    let exec = Arc::new(ScriptedExecutor::new());
    let err =
        Engine::new(exec.clone()).start(workflow("parallel", "", &stream_nodes("")), &input(json!({})), opts()).await;
    let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("node `c` has `stream_from`, which runs only in execution_mode `streaming`"), "{msg}");
    let dir = std::env::temp_dir().join("weft-scripted-tests");
    for (nodes, says) in [
        (
            "    - {node_id: p, node_type: compute, component: step.wasm}\n    - {node_id: x, node_type: compute, component: step.wasm}\n    - {node_id: c, node_type: compute, component: step.wasm, stream_from: p, depends_on: [x]}\n",
            "depends on `x`, which does not come before its producer `p`",
        ),
        (
            "    - {node_id: p, node_type: compute, component: step.wasm}\n    - {node_id: c, node_type: effect, component: step.wasm, stream_from: p}\n",
            "a `stream_from` consumer must be a compute or reducer node",
        ),
        (
            "    - {node_id: p, node_type: compute, component: step.wasm}\n    - {node_id: c, node_type: compute, component: step.wasm, stream_from: p}\n    - {node_id: d, node_type: compute, component: step.wasm, stream_from: c}\n",
            "streams do not chain",
        ),
        (
            "    - {node_id: p, node_type: compute, component: step.wasm, memoize: true}\n    - {node_id: c, node_type: compute, component: step.wasm, stream_from: p}\n",
            "names a memoized node; a memo hit would emit nothing",
        ),
    ] {
        let yaml = format!(
            "kind: WorkflowDefinition\nmetadata: {{name: t}}\nworkflow_metadata: {{workflow_name: t}}\nexecution_graph:\n  nodes:\n{nodes}"
        );
        let err = load_str(&yaml, &dir, "t.yaml", None).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(says), "{err}");
    }
}
