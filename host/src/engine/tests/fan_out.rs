//! `for_each` without wasm: shard inputs and results, retries and keys,
//! failures under each strategy, parallelism, limits, compensation and resume.

#![allow(clippy::unwrap_used)]

use super::*;
/// A run's calls of `step`'s `run`, by shard: (shard, attempt, items, key).
fn shard_calls(exec: &ScriptedExecutor, step: &str) -> Vec<(u64, u32, Value, String)> {
    let mut calls: Vec<_> = exec
        .calls()
        .into_iter()
        .filter(|c| c.step_id == step && !c.compensate)
        .map(|c| (c.input["shard"].as_u64().unwrap(), c.attempt, c.input["items"].clone(), c.idempotency_key))
        .collect();
    calls.sort_by_key(|c| (c.0, c.1));
    calls
}

fn fan_out_node(extra: &str) -> String {
    node("f", "compute", &format!(", for_each: context.items, batch_size: 2, input: {{n: size(context.items)}}{extra}"))
}

#[tokio::test]
async fn for_each_runs_one_execution_per_shard_and_gathers_results_in_order() {
    for (n, shards) in [(1usize, 1usize), (2, 1), (3, 2), (0, 0)] {
        let exec = Arc::new(ScriptedExecutor::new());
        let items: Vec<usize> = (0..n).collect();
        let nodes = [fan_out_node(""), node("after", "compute", ", depends_on: [f]")].concat();
        let (out, _) = run(&exec, workflow("sequential", "", &nodes), json!({"context": {"items": items}})).await;
        assert_eq!(out.execution_status, ExecutionStatus::Completed, "{n} items: {:?}", out.errors);
        let calls = shard_calls(&exec, "f");
        assert_eq!(calls.len(), shards, "{n} items in shards of 2");
        let results = out.step_outputs["f"]["results"].as_array().unwrap();
        assert_eq!(results.len(), shards);
        for (k, r) in results.iter().enumerate() {
            let want: Vec<usize> = (2 * k..(2 * k + 2).min(n)).collect();
            // Each shard echoes its input: its items, its place, and the mapped input.
            assert_eq!(r["items"], json!(want));
            assert_eq!(r["shard"], json!(k));
            assert_eq!(r["shards"], json!(shards));
            assert_eq!(r["with"], json!({"n": n}));
        }
        assert_eq!(out.metrics["step.f.shards"], shards as f64);
        assert_eq!(out.metrics["step.f.shards_completed"], shards as f64);
        assert_eq!(out.completed_steps, ids(&["f", "after"]));
    }
}

#[tokio::test]
async fn for_each_over_something_else_than_a_list_fails_the_node_clearly() {
    let exec = Arc::new(ScriptedExecutor::new());
    let (out, _) =
        run(&exec, workflow("sequential", "", &fan_out_node("")), json!({"context": {"items": {"a": 1}}})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.errors[0].error_type, "expression");
    assert!(out.errors[0].message.contains("`for_each` gave an object, not a list"), "{}", out.errors[0].message);
    // The operator's limits on items and shards, each with its own message.
    for (policy, items, says) in [
        ("[fan_out]\nmax_items = 3\n", 4, "`for_each` gave 4 items; a node fans out at most 3 (`[fan_out] max_items`"),
        ("[fan_out]\nmax_shards = 2\n", 5, "5 items, 3 shards of `batch_size: 2`; a node runs at most 2 shards"),
    ] {
        let policy = Arc::new(crate::capability::Policy::parse(policy, std::path::Path::new(".")).unwrap());
        let items: Vec<u32> = (0..items).collect();
        let h = Engine::new(exec.clone())
            .with_policy(policy)
            .start(workflow("sequential", "", &fan_out_node("")), &input(json!({"context": {"items": items}})), opts())
            .await
            .unwrap();
        let out = h.wait().await;
        assert!(out.errors[0].message.contains(says), "{}", out.errors[0].message);
    }
    assert!(exec.calls().is_empty());
}

#[tokio::test]
async fn each_shard_retries_on_its_own_with_its_own_idempotency_key() {
    let exec = Arc::new(ScriptedExecutor::new().on_shard("f", 1, [Reply::fail(FailureKind::Timeout), Reply::echo()]));
    let retried = "    - {node_id: f, node_type: compute, component: step.wasm, for_each: context.items, batch_size: 2, \
                   retry: {max_attempts: 3, initial_delay_ms: 100}}\n";
    let wf = workflow("sequential", "", retried);
    let (out, _) = run(&exec, wf, json!({"context": {"items": [1, 2, 3, 4, 5]}})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    let calls = shard_calls(&exec, "f");
    let attempts: Vec<(u64, u32)> = calls.iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(attempts, vec![(0, 1), (1, 1), (1, 2), (2, 1)], "only shard 1 was retried");
    let keys: std::collections::BTreeSet<&str> = calls.iter().map(|c| c.3.as_str()).collect();
    assert_eq!(keys.len(), 3, "one idempotency key per shard: {keys:?}");
    assert!(keys.iter().all(|k| k.ends_with(&format!("/f/shard-{}", &k[k.len() - 1..]))));
    assert_eq!(out.metrics["step.f.attempts"], 4.0);
}

#[tokio::test]
async fn a_failed_shard_fails_the_node_and_continue_on_error_lists_it() {
    let exec = Arc::new(ScriptedExecutor::new().on_shard("f", 1, [Reply::fatal("bad item")]));
    let nodes =
        [fan_out_node(""), node("after", "compute", ", depends_on: [f]"), node("other", "compute", "")].concat();
    let ctx = json!({"context": {"items": [1, 2, 3, 4, 5, 6]}, "failure_strategy": "continue_on_error"});
    let (out, _) = run(&exec, workflow("sequential", "", &nodes), ctx).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    assert_eq!(out.failed_steps, ids(&["f"]));
    assert_eq!(out.skipped_steps, ids(&["after"]));
    assert_eq!(shard_calls(&exec, "f").len(), 3, "every shard ran");
    let f = &out.step_outputs["f"];
    assert_eq!(f["failed_shards"][0]["shard"], 1);
    assert_eq!(f["failed_shards"][0]["error_type"], "plugin_error");
    assert_eq!(f["results"][1], Value::Null);
    assert_eq!(f["results"][2]["items"], json!([5, 6]));
    assert!(out.errors[0].message.starts_with("shard 1 of 3 failed (plugin_error)"), "{}", out.errors[0].message);
    // Under fail_fast, no shard starts after the failure.
    let exec = Arc::new(ScriptedExecutor::new().on_shard("f", 0, [Reply::fatal("bad item")]));
    let one_at_a_time = json!({"context": {"items": [1, 2, 3, 4, 5, 6]}, "max_parallel_steps": 1});
    let (out, _) = run(&exec, workflow("sequential", "", &nodes), one_at_a_time).await;
    assert_eq!(shard_calls(&exec, "f").len(), 1, "one shard at a time, and none after the failure");
    assert!(out.errors[0].message.contains("2 shard(s) did not run"), "{}", out.errors[0].message);
}

#[tokio::test]
async fn at_most_max_parallel_steps_shards_run_at_once() {
    let exec = Arc::new(ScriptedExecutor::new().on("f", [Reply::echo().after(Duration::from_millis(30))]));
    let items: Vec<u32> = (0..12).collect();
    let wf = workflow("sequential", "", &fan_out_node(""));
    let (out, _) = run(&exec, wf, json!({"context": {"items": items}, "max_parallel_steps": 3})).await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed);
    assert_eq!(shard_calls(&exec, "f").len(), 6);
    assert_eq!(exec.most_in_flight(), 3);
}

#[tokio::test]
async fn compensation_undoes_each_completed_shard_newest_first() {
    let nodes = [
        node("f", "effect", ", for_each: context.items, batch_size: 1"),
        node("later", "compute", ", depends_on: [f]"),
    ]
    .concat();
    let exec = Arc::new(ScriptedExecutor::new().on("later", [Reply::fatal("no")]));
    let ctx = json!({"context": {"items": ["a", "b", "c"]}, "failure_strategy": "compensate"});
    let (out, _) = run(&exec, workflow("sequential", "", &nodes), ctx.clone()).await;
    assert_eq!(out.execution_status, ExecutionStatus::Failed);
    let undone: Vec<(u64, Value)> = exec
        .calls()
        .into_iter()
        .filter(|c| c.compensate)
        .map(|c| (c.input["shard"].as_u64().unwrap(), c.input["items"].clone()))
        .collect();
    assert_eq!(undone, vec![(2, json!(["c"])), (1, json!(["b"])), (0, json!(["a"]))]);
    let records = out.output_variables["compensation"].as_array().unwrap();
    assert_eq!(records.iter().map(|r| r["shard"].as_u64().unwrap()).collect::<Vec<_>>(), vec![2, 1, 0]);
    // A fan-out that failed itself has its completed shards undone.
    let exec = Arc::new(ScriptedExecutor::new().on_shard("f", 2, [Reply::fatal("no")]));
    let (_, _) = run(&exec, workflow("sequential", "", &nodes), ctx).await;
    let undone: Vec<u64> =
        exec.calls().into_iter().filter(|c| c.compensate).map(|c| c.input["shard"].as_u64().unwrap()).collect();
    assert_eq!(undone, vec![1, 0], "the failed shard did nothing to undo");
}

#[tokio::test]
async fn a_cancel_mid_fan_out_compensates_the_shards_that_completed() {
    let nodes = node("f", "effect", ", for_each: context.items, batch_size: 1, timeout_ms: 60000");
    let exec = Arc::new(ScriptedExecutor::new().on_shard("f", 2, [Reply::echo().after(Duration::from_secs(30))]));
    let ctx = input(
        json!({"context": {"items": ["a", "b", "c", "d"]}, "failure_strategy": "compensate", "max_parallel_steps": 1}),
    );
    let h = Engine::new(exec.clone()).start(workflow("sequential", "", &nodes), &ctx, opts()).await.unwrap();
    for _ in 0..500 {
        if shard_calls(&exec, "f").len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.cancel();
    let out = h.wait().await;
    assert_eq!(out.execution_status, ExecutionStatus::Cancelled);
    let undone: Vec<u64> =
        exec.calls().into_iter().filter(|c| c.compensate).map(|c| c.input["shard"].as_u64().unwrap()).collect();
    assert_eq!(undone, vec![1, 0], "the two shards that completed before the cancel, newest first");
}

#[tokio::test]
async fn a_resumed_fan_out_runs_only_the_shards_that_did_not_finish() {
    let store: Arc<dyn crate::store::RunStore> = Arc::new(MemoryStore::new());
    let wf = workflow("sequential", "", &fan_out_node(""));
    // Shard 2 takes long: the run is dropped while it is in flight.
    let exec = Arc::new(ScriptedExecutor::new().on_shard("f", 2, [Reply::echo().after(Duration::from_secs(30))]));
    let engine = Engine::new(exec.clone()).with_store(store.clone());
    let ctx = input(json!({"context": {"items": [1, 2, 3, 4, 5, 6, 7, 8]}, "max_parallel_steps": 1}));
    let h = engine.start(wf.clone(), &ctx, opts()).await.unwrap();
    let run_id = h.run_id.clone();
    for _ in 0..500 {
        if shard_calls(&exec, "f").len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A crash: the run's task is gone, its journal stays.
    h.task.abort();
    assert!(h.task.await.is_err());
    assert_eq!(shard_calls(&exec, "f").len(), 3, "shards 0 and 1 done, 2 in flight");
    let exec2 = Arc::new(ScriptedExecutor::new());
    let engine2 = Engine::new(exec2.clone()).with_store(store.clone());
    let out = engine2.resume(&run_id, ResumeOptions::default()).await.unwrap().wait().await;
    assert_eq!(out.execution_status, ExecutionStatus::Completed, "{:?}", out.errors);
    let resumed: Vec<(u64, u32)> = shard_calls(&exec2, "f").iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(resumed, vec![(2, 2), (3, 1)], "shard 2 gets its next attempt, shard 3 its first");
    assert_eq!(out.step_outputs["f"]["results"].as_array().map(Vec::len), Some(4));
    let journal = store.journal(&run_id).await.unwrap();
    let done = |k: u32| {
        journal
            .iter()
            .filter(|j| matches!(&j.entry, JournalEntry::ShardFinished { shard, report, .. } if *shard == k && report.failure().is_none()))
            .count()
    };
    assert_eq!((done(0), done(1), done(2), done(3)), (1, 1, 1, 1), "every shard completed once");
}
