//! Memoized steps without wasm: hits across runs, misses, eviction and
//! what cannot be memoized.

#![allow(clippy::unwrap_used)]

use super::*;
#[tokio::test]
async fn a_memoized_step_completes_from_the_cache_in_a_later_run_and_misses_on_other_input() {
    let store: Arc<dyn crate::store::RunStore> = Arc::new(MemoryStore::new());
    let nodes = [node("m", "compute", ", memoize: true"), node("after", "compute", ", depends_on: [m]")].concat();
    let wf = workflow("sequential", "", &nodes);
    let exec = Arc::new(ScriptedExecutor::new().on("m", [Reply::output(json!({"v": 42}))]));
    let engine = Engine::new(exec.clone()).with_store(store.clone());
    let go = |ctx: Value| {
        let (engine, wf) = (&engine, wf.clone());
        async move {
            let mut h = engine.start(wf, &input(json!({"context": ctx})), opts()).await.unwrap();
            let mut events = Vec::new();
            while let Some(e) = h.events.recv().await {
                events.push(e);
            }
            (h.wait().await, events)
        }
    };
    let (first, events) = go(json!({"n": 1})).await;
    assert!(!events.iter().any(|e| matches!(e, RunEvent::Memoized { .. })));
    assert!(!first.metrics.contains_key("step.m.memoized"));
    let (second, events) = go(json!({"n": 1})).await;
    assert_eq!(second.execution_status, ExecutionStatus::Completed);
    assert!(events.iter().any(|e| matches!(e, RunEvent::Memoized { step_id } if step_id == "m")));
    assert_eq!(second.metrics["step.m.memoized"], 1.0);
    assert_eq!(second.step_outputs["m"], json!({"v": 42}));
    assert_eq!(exec.run_order(), ids(&["m", "after", "after"]), "the second run did not run `m`");
    let journal = store.journal(second.output_variables["run"]["run_id"].as_str().unwrap()).await.unwrap();
    assert!(journal.iter().any(|j| matches!(&j.entry, JournalEntry::StepMemoized { step_id, .. } if step_id == "m")));
    assert!(!journal.iter().any(|j| j.entry.kind() == "attempt_started" && j.entry.step_id() == Some("m")));
    // Another input is another key.
    let (_, events) = go(json!({"n": 2})).await;
    assert!(!events.iter().any(|e| matches!(e, RunEvent::Memoized { .. })));
    assert_eq!(exec.run_order().iter().filter(|s| *s == "m").count(), 2);
    let stats = store.memo_stats().await.unwrap();
    assert_eq!((stats.entries, stats.hits), (2, 1));
    assert_eq!(store.memo_clear().await.unwrap(), 2);
}

#[tokio::test]
async fn the_memo_cache_evicts_the_least_recently_used_entry_past_its_cap() {
    let store = MemoryStore::new();
    let entry = |v: u32| crate::store::MemoEntry { output: json!({ "v": v }), actions: Vec::new() };
    let size = entry(1).encode("k1").unwrap().1;
    for k in ["k1", "k2"] {
        store.memo_put(k, &entry(1), 2 * size).await.unwrap();
    }
    assert!(store.memo_get("k1").await.unwrap().is_some(), "k1 is now the most recently used");
    store.memo_put("k3", &entry(1), 2 * size).await.unwrap();
    assert!(store.memo_get("k2").await.unwrap().is_none(), "k2 was the least recently used");
    assert!(store.memo_get("k1").await.unwrap().is_some() && store.memo_get("k3").await.unwrap().is_some());
}

#[test]
fn effect_and_fan_out_nodes_cannot_be_memoized() {
    let dir = std::env::temp_dir().join("weft-scripted-tests");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("step.wasm"), b"").unwrap();
    for (extra, says) in [
        ("node_type: effect, memoize: true", "an effect node cannot be memoized"),
        ("node_type: compute, memoize: true, for_each: context.l", "a `for_each` node's shards are not memoized"),
        ("node_type: compute, batch_size: 3", "`batch_size` on a node sets the items per `for_each` shard"),
    ] {
        let yaml = format!(
            "kind: WorkflowDefinition\nmetadata: {{name: t}}\nworkflow_metadata: {{workflow_name: t}}\n\
             execution_graph:\n  nodes:\n    - {{node_id: a, component: step.wasm, {extra}}}\n"
        );
        let err = load_str(&yaml, &dir, "t.yaml", None).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(says), "{extra}: {err}");
    }
}
