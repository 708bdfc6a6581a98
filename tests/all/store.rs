//! The run-store conformance suite: every `RunStore` implementation must
//! pass every case here. `conformance!` instantiates the suite per store.

use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use weft::engine::{ExecutionStatus, RunOutput};
use weft::store::{
    BreakerRecord, BreakerState, JournalEntry, Lease, MemoryStore, NewRun, RunFilter, RunStore, SqliteStore,
    StoreError, SyncMode,
};

fn new_run(id: &str, workflow: &str, owner: &str) -> NewRun {
    NewRun {
        run_id: id.into(),
        workflow: workflow.into(),
        workflow_path: Some("/w.yaml".into()),
        definition: "kind: workflow".into(),
        base_dir: "/".into(),
        input: json!({"workflow_id": id, "context": {"x": 1}}),
        options: json!({"environment": "development"}),
        components: BTreeMap::new(),
        replay_of: None,
        parent: None,
        sub_definitions: Default::default(),
        owner: owner.into(),
        lease_ms: 10_000,
    }
}

fn output(status: ExecutionStatus) -> RunOutput {
    serde_json::from_value(json!({
        "execution_status": status,
        "execution_time_ms": 5,
        "start_time": "2026-01-01T00:00:00.000Z",
        "end_time": "2026-01-01T00:00:00.005Z",
        "completed_steps": ["a"],
        "failed_steps": [],
        "skipped_steps": [],
        "step_outputs": {"a": {"v": 1}},
        "final_result": {"v": 1},
        "output_variables": {},
        "actions_emitted": [],
        "errors": [],
        "metrics": {"completed_count": 1.0},
        "parallel_executions": 0
    }))
    .unwrap()
}

fn scheduled(step: &str) -> JournalEntry {
    JournalEntry::StepScheduled { step_id: step.into(), input: Default::default() }
}

async fn create_get_and_journal_in_order(s: Arc<dyn RunStore>) {
    let lease = s.create_run(&new_run("r1", "wf", "me"), &[scheduled("a")], &[]).await.unwrap();
    s.append(&lease, vec![JournalEntry::AttemptStarted { step_id: "a".into(), attempt: 1 }]).await.unwrap();
    s.append(
        &lease,
        vec![JournalEntry::StepCompleted { step_id: "a".into(), output: json!({"v": 1}), actions: vec![] }],
    )
    .await
    .unwrap();
    let r = s.get_run("r1").await.unwrap();
    assert_eq!(r.status, ExecutionStatus::Running);
    assert_eq!(r.run.input["context"]["x"], 1);
    assert_eq!(r.run.definition, "kind: workflow");
    assert!(r.output.is_none());
    let j = s.journal("r1").await.unwrap();
    let kinds: Vec<&str> = j.iter().map(|e| e.entry.kind()).collect();
    assert_eq!(kinds, ["run_created", "step_scheduled", "attempt_started", "step_completed"]);
    let seqs: Vec<u64> = j.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert!(matches!(j[3].entry, JournalEntry::StepCompleted { ref output, .. } if output["v"] == 1));
}

async fn a_run_id_is_unique(s: Arc<dyn RunStore>) {
    let lease = s.create_run(&new_run("r1", "wf", "me"), &[], &[]).await.unwrap();
    let e = s.create_run(&new_run("r1", "wf", "me"), &[], &[]).await.unwrap_err();
    drop(lease);
    assert!(matches!(e, StoreError::Duplicate(ref id) if id == "r1"), "{e}");
    assert!(e.to_string().contains("weft runs show r1"), "{e}");
}

async fn unknown_runs_are_not_found(s: Arc<dyn RunStore>) {
    let nobody = Lease::unclaimed("nope", "me");
    assert!(matches!(s.get_run("nope").await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.journal("nope").await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.append(&nobody, vec![]).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.request_cancel("nope").await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.claim("nope", "me", 1000, None).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.heartbeat(&nobody, 1000).await, Err(StoreError::NotFound(_))));
    assert_eq!(s.blob_get("sha256:00").await.unwrap(), None);
}

/// A lease so short that it expires while the test sleeps past it.
const SHORT_LEASE_MS: u64 = 50;

async fn past_a_short_lease() {
    tokio::time::sleep(std::time::Duration::from_millis(SHORT_LEASE_MS * 3)).await;
}

async fn writes_are_fenced_by_the_lease_epoch(s: Arc<dyn RunStore>) {
    let mut run = new_run("r1", "wf", "a");
    run.lease_ms = SHORT_LEASE_MS;
    let a = s.create_run(&run, &[], &[]).await.unwrap();
    assert_eq!(a.epoch, 1);
    // Another owner cannot take a live lease.
    let e = s.claim("r1", "b", 10_000, None).await.unwrap_err();
    assert!(matches!(e, StoreError::Owned { ref owner, .. } if owner == "a"), "{e}");
    // A forged lease (right owner name, wrong epoch) cannot write.
    let forged = Lease { epoch: 7, ..a.clone() };
    assert!(matches!(s.append(&forged, vec![scheduled("x")]).await, Err(StoreError::LeaseLost(_))));
    // An expired lease can be taken, and the claim bumps the epoch: the old
    // holder's writes and heartbeats are refused however late they come.
    past_a_short_lease().await;
    let b = s.claim("r1", "b", 10_000, None).await.unwrap();
    assert_eq!(b.epoch, 2);
    assert_eq!(s.get_run("r1").await.unwrap().lease_epoch, 2);
    assert!(matches!(s.append(&a, vec![scheduled("x")]).await, Err(StoreError::LeaseLost(_))));
    assert!(matches!(s.heartbeat(&a, 10_000).await, Err(StoreError::LeaseLost(_))));
    s.append(&b, vec![scheduled("x")]).await.unwrap();
    // A lease held by a known-dead owner can be stolen at once.
    let c = s.claim("r1", "c", 10_000, Some("b")).await.unwrap();
    assert_eq!(s.get_run("r1").await.unwrap().run.owner, "c");
    assert!(matches!(s.append(&b, vec![scheduled("y")]).await, Err(StoreError::LeaseLost(_))));
    // Claiming again as the owner is fine, and fences the older lease of the same owner.
    let c2 = s.claim("r1", "c", 10_000, None).await.unwrap();
    assert!(c2.epoch > c.epoch);
    assert!(matches!(s.append(&c, vec![scheduled("y")]).await, Err(StoreError::LeaseLost(_))));
    let kinds: Vec<String> = s.journal("r1").await.unwrap().iter().map(|e| e.entry.kind().to_string()).collect();
    assert_eq!(kinds, ["run_created", "step_scheduled"], "the fenced writes left nothing");
}

async fn a_released_lease_is_claimable_at_once_and_writes_nothing_more(s: Arc<dyn RunStore>) {
    let a = s.create_run(&new_run("r1", "wf", "a"), &[], &[]).await.unwrap();
    assert!(s.get_run("r1").await.unwrap().lease_live);
    s.release(&a).await.unwrap();
    assert!(!s.get_run("r1").await.unwrap().lease_live);
    let b = s.claim_next("b", 10_000, 10).await.unwrap();
    assert_eq!(b.iter().map(|l| l.run_id.as_str()).collect::<Vec<_>>(), ["r1"]);
    assert!(matches!(s.append(&a, vec![scheduled("x")]).await, Err(StoreError::LeaseLost(_))));
    // Releasing a lease that was taken over changes nothing.
    s.release(&a).await.unwrap();
    assert!(s.get_run("r1").await.unwrap().lease_live);
    assert!(s.claim_next("c", 10_000, 10).await.unwrap().is_empty(), "b holds it");
}

async fn submitted_runs_wait_for_a_worker_and_are_claimed_once(s: Arc<dyn RunStore>) {
    let blob = weft::store::ComponentBlob { digest: "sha256:ab".into(), bytes: Arc::new(b"\0asm-bytes".to_vec()) };
    for id in ["r1", "r2", "r3"] {
        s.submit_run(&new_run(id, "wf", "ignored"), std::slice::from_ref(&blob)).await.unwrap();
    }
    let r = s.get_run("r1").await.unwrap();
    assert_eq!(r.status, ExecutionStatus::Pending);
    assert!(!r.lease_live);
    assert_eq!(r.lease_epoch, 0);
    assert_eq!(s.journal("r1").await.unwrap().len(), 1, "run_created only");
    // A pending run takes no write before it is claimed.
    assert!(matches!(s.append(&Lease::unclaimed("r1", ""), vec![scheduled("x")]).await, Err(StoreError::LeaseLost(_))));
    assert_eq!(s.blob_get("sha256:ab").await.unwrap().as_deref(), Some(&b"\0asm-bytes"[..]), "stored once by digest");
    // Oldest first, each run to one claimer.
    let w1 = s.claim_next("w1", 10_000, 2).await.unwrap();
    let w2 = s.claim_next("w2", 10_000, 2).await.unwrap();
    assert_eq!(w1.iter().map(|l| l.run_id.as_str()).collect::<Vec<_>>(), ["r1", "r2"]);
    assert_eq!(w2.iter().map(|l| l.run_id.as_str()).collect::<Vec<_>>(), ["r3"]);
    assert!(w1.iter().chain(&w2).all(|l| l.epoch == 1 && l.idle_claims == 1));
    assert_eq!(s.get_run("r3").await.unwrap().status, ExecutionStatus::Running);
    assert!(s.claim_next("w3", 10_000, 5).await.unwrap().is_empty());
    s.append(&w2[0], vec![scheduled("a")]).await.unwrap();
    // A pending run can be cancelled before any worker has it.
    s.submit_run(&new_run("r4", "wf", ""), &[]).await.unwrap();
    assert!(s.request_cancel("r4").await.unwrap());
    assert!(s.get_run("r4").await.unwrap().cancel_requested);
}

async fn claims_without_progress_are_counted_and_progress_resets_them(s: Arc<dyn RunStore>) {
    let mut run = new_run("r1", "wf", "a");
    run.lease_ms = SHORT_LEASE_MS;
    s.create_run(&run, &[], &[]).await.unwrap();
    past_a_short_lease().await;
    let mut last = None;
    for n in 1..=3u32 {
        let l = s.claim_next(&format!("w{n}"), SHORT_LEASE_MS, 1).await.unwrap().remove(0);
        assert_eq!(l.idle_claims, n);
        // Starting an attempt is not progress; finishing one is.
        s.append(&l, vec![JournalEntry::AttemptStarted { step_id: "a".into(), attempt: n }]).await.unwrap();
        past_a_short_lease().await;
        last = Some(l);
    }
    let l = last.unwrap();
    assert!(!l.is_poison());
    // An explicit claim (an operator's resume) does not count.
    let l = s.claim("r1", "w4", SHORT_LEASE_MS, None).await.unwrap();
    assert_eq!(l.idle_claims, 3);
    s.append(&l, vec![JournalEntry::StepSkipped { step_id: "a".into(), reason: "r".into() }]).await.unwrap();
    past_a_short_lease().await;
    assert_eq!(s.claim_next("w5", 10_000, 1).await.unwrap()[0].idle_claims, 1);
}

async fn children_of_running_parents_are_left_to_their_parents(s: Arc<dyn RunStore>) {
    let parent = s.create_run(&new_run("p", "wf", "a"), &[], &[]).await.unwrap();
    let mut child = new_run("c", "wf", "a");
    child.parent = Some(weft::store::ParentRun { run_id: "p".into(), step_id: "sub".into() });
    let child_lease = s.create_run(&child, &[], &[]).await.unwrap();
    s.release(&parent).await.unwrap();
    s.release(&child_lease).await.unwrap();
    let got = s.claim_next("w", 10_000, 10).await.unwrap();
    assert_eq!(got.iter().map(|l| l.run_id.as_str()).collect::<Vec<_>>(), ["p"], "the parent reattaches its child");
    let out = std::sync::Arc::new(output(ExecutionStatus::Failed));
    s.append(&got[0], vec![JournalEntry::RunFinished { output: out }]).await.unwrap();
    let got = s.claim_next("w", 10_000, 10).await.unwrap();
    assert_eq!(got.iter().map(|l| l.run_id.as_str()).collect::<Vec<_>>(), ["c"], "an orphan is claimed itself");
}

async fn finishing_sets_status_output_and_frees_the_lease(s: Arc<dyn RunStore>) {
    let lease = s.create_run(&new_run("r1", "wf", "me"), &[], &[]).await.unwrap();
    let out = output(ExecutionStatus::Completed);
    s.append(&lease, vec![JournalEntry::RunFinished { output: std::sync::Arc::new(out.clone()) }]).await.unwrap();
    let r = s.get_run("r1").await.unwrap();
    assert_eq!(r.status, ExecutionStatus::Completed);
    assert_eq!(r.output.as_deref(), Some(&out));
    assert_eq!(r.lease_until_ms, 0);
    let listed = s.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(listed[0].owner, None);
    // A finished run cannot be cancelled, claimed, or written to.
    assert!(!s.request_cancel("r1").await.unwrap());
    assert!(matches!(s.claim("r1", "me", 1000, None).await, Err(StoreError::Finished(_))));
    assert!(s.claim_next("me", 1000, 10).await.unwrap().is_empty(), "a finished run is not runnable");
    assert!(matches!(s.append(&lease, vec![scheduled("x")]).await, Err(StoreError::Finished(_))));
    assert_eq!(s.journal("r1").await.unwrap().len(), 2, "nothing after run_finished");
}

async fn cancel_requests_reach_the_owner_through_heartbeats(s: Arc<dyn RunStore>) {
    let lease = s.create_run(&new_run("r1", "wf", "me"), &[], &[]).await.unwrap();
    assert!(!s.heartbeat(&lease, 10_000).await.unwrap());
    assert!(s.request_cancel("r1").await.unwrap());
    assert!(s.heartbeat(&lease, 10_000).await.unwrap());
    assert!(s.get_run("r1").await.unwrap().cancel_requested);
}

async fn listing_filters_and_orders_newest_first(s: Arc<dyn RunStore>) {
    let mut leases = Vec::new();
    for (id, wf) in [("r1", "alpha"), ("r2", "beta"), ("r3", "alpha")] {
        leases.push(s.create_run(&new_run(id, wf, "me"), &[], &[]).await.unwrap());
    }
    let lease = &leases[0];
    s.append(lease, vec![JournalEntry::RunFinished { output: std::sync::Arc::new(output(ExecutionStatus::Failed)) }])
        .await
        .unwrap();
    let ids = |v: Vec<weft::store::RunSummary>| v.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_runs(&RunFilter::default()).await.unwrap()), ["r3", "r2", "r1"]);
    let alpha = RunFilter { workflow: Some("alpha".into()), ..Default::default() };
    assert_eq!(ids(s.list_runs(&alpha).await.unwrap()), ["r3", "r1"]);
    let failed = RunFilter { status: Some(ExecutionStatus::Failed), ..Default::default() };
    assert_eq!(ids(s.list_runs(&failed).await.unwrap()), ["r1"]);
    let running = RunFilter { status: Some(ExecutionStatus::Running), limit: 1, ..Default::default() };
    assert_eq!(ids(s.list_runs(&running).await.unwrap()), ["r3"]);
    assert_eq!(s.info().await.unwrap().active_runs, 2);
}

async fn lists_are_scoped_by_tenant_and_paged_by_cursor(s: Arc<dyn RunStore>) {
    for (id, tenant) in [("t1", "acme"), ("t2", "other"), ("t3", "acme"), ("t4", "acme"), ("t5", "")] {
        let mut run = new_run(id, "wf", "me");
        if !tenant.is_empty() {
            run.input["metadata"] = json!({ "tenant": tenant });
        }
        s.submit_run(&run, &[]).await.unwrap();
    }
    let ids = |v: &[weft::store::RunSummary]| v.iter().map(|r| r.run_id.clone()).collect::<Vec<_>>();
    let acme = RunFilter { tenant: Some("acme".into()), limit: 2, ..Default::default() };
    let page = s.list_runs(&acme).await.unwrap();
    assert_eq!(ids(&page), ["t4", "t3"]);
    let next = RunFilter { before: Some(page[1].seq), ..acme.clone() };
    assert_eq!(ids(&s.list_runs(&next).await.unwrap()), ["t1"]);
    let single = RunFilter { tenant: Some(String::new()), ..Default::default() };
    assert_eq!(ids(&s.list_runs(&single).await.unwrap()), ["t5"], "'' is the single-tenant host's");
    assert_eq!(s.list_runs(&RunFilter::default()).await.unwrap().len(), 5);
}

async fn claims_are_fair_across_tenants(s: Arc<dyn RunStore>) {
    // `busy` queued ten runs before `quiet` queued one: a claim of two takes one of each.
    for i in 0..10 {
        let mut run = new_run(&format!("busy-{i}"), "wf", "me");
        run.input["metadata"] = json!({ "tenant": "busy" });
        s.submit_run(&run, &[]).await.unwrap();
    }
    let mut run = new_run("quiet-0", "wf", "me");
    run.input["metadata"] = json!({ "tenant": "quiet" });
    s.submit_run(&run, &[]).await.unwrap();
    let claimed: Vec<String> = s.claim_next("w", 10_000, 2).await.unwrap().into_iter().map(|l| l.run_id).collect();
    assert_eq!(claimed, ["busy-0", "quiet-0"]);
    let next: Vec<String> = s.claim_next("w", 10_000, 2).await.unwrap().into_iter().map(|l| l.run_id).collect();
    assert_eq!(next, ["busy-1", "busy-2"], "then the queue in order");
}

async fn a_follower_reads_only_the_entries_after_its_last(s: Arc<dyn RunStore>) {
    let lease = s.create_run(&new_run("f1", "wf", "me"), &[], &[]).await.unwrap();
    s.append(&lease, vec![JournalEntry::AttemptStarted { step_id: "a".into(), attempt: 1 }]).await.unwrap();
    s.append(&lease, vec![JournalEntry::AttemptStarted { step_id: "b".into(), attempt: 1 }]).await.unwrap();
    let all = s.journal("f1").await.unwrap();
    assert_eq!(all.len(), 3);
    let after: Vec<u64> = s.journal_after("f1", 1).await.unwrap().iter().map(|j| j.seq).collect();
    assert_eq!(after, [2, 3]);
    assert!(s.journal_after("f1", 3).await.unwrap().is_empty());
    assert!(matches!(s.journal_after("nope", 0).await, Err(weft::store::StoreError::NotFound(_))));
}

async fn components_are_stored_once_by_digest(s: Arc<dyn RunStore>) {
    let bytes = std::sync::Arc::new(b"component bytes".to_vec());
    let blob = weft::store::ComponentBlob { digest: weft::sandbox::digest(&bytes), bytes };
    assert!(s.blob_put(&blob).await.unwrap(), "new");
    assert!(!s.blob_put(&blob).await.unwrap(), "stored before");
    assert_eq!(s.blob_get(&blob.digest).await.unwrap().as_deref(), Some(&b"component bytes"[..]));
}

async fn dead_letters_are_queued_with_the_finish_and_marked_when_replayed(s: Arc<dyn RunStore>) {
    let lease = s.create_run(&new_run("r1", "wf", "me"), &[], &[]).await.unwrap();
    assert!(s.dlq_list().await.unwrap().is_empty());
    s.append(
        &lease,
        vec![
            JournalEntry::DeadLettered { step_id: "b".into(), error_type: "trap".into(), message: "boom".into() },
            JournalEntry::RunFinished { output: std::sync::Arc::new(output(ExecutionStatus::Failed)) },
        ],
    )
    .await
    .unwrap();
    let q = s.dlq_list().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!((q[0].run_id.as_str(), q[0].step_id.as_str(), q[0].error_type.as_str()), ("r1", "b", "trap"));
    assert_eq!(q[0].workflow, "wf");
    assert_eq!(q[0].replayed_as, None);
    assert_eq!(s.dlq_waiting().await.unwrap(), 1);
    // A tenant's own queue holds its runs only.
    let mut theirs = new_run("r3", "wf", "me");
    theirs.input = json!({"workflow_id": "r3", "metadata": {"tenant": "acme"}});
    let lease = s.create_run(&theirs, &[], &[]).await.unwrap();
    let dead = JournalEntry::DeadLettered { step_id: "c".into(), error_type: "trap".into(), message: "x".into() };
    let end = JournalEntry::RunFinished { output: std::sync::Arc::new(output(ExecutionStatus::Failed)) };
    s.append(&lease, vec![dead, end]).await.unwrap();
    let ids = |q: Vec<weft::store::DlqEntry>| q.into_iter().map(|d| d.run_id).collect::<Vec<_>>();
    assert_eq!(ids(s.dlq_list_of("acme").await.unwrap()), ["r3"]);
    assert_eq!(ids(s.dlq_list_of("").await.unwrap()), ["r1"]);
    assert_eq!(ids(s.dlq_list_of("other").await.unwrap()), Vec::<String>::new());
    assert_eq!(s.dlq_list().await.unwrap().len(), 2);
    s.dlq_mark_replayed("r1", "r2").await.unwrap();
    assert_eq!(s.dlq_list_of("").await.unwrap()[0].replayed_as.as_deref(), Some("r2"));
    assert_eq!(s.dlq_waiting().await.unwrap(), 1, "a replayed letter no longer waits");
    assert!(matches!(s.dlq_mark_replayed("zz", "r2").await, Err(StoreError::NotFound(_))));
}

async fn breakers_update_by_compare_and_swap(s: Arc<dyn RunStore>) {
    assert_eq!(s.breaker_load("c.wasm").await.unwrap(), None);
    let open = BreakerRecord { state: BreakerState::Open, failures: 3, since_ms: 42, version: 0 };
    assert!(s.breaker_cas("c.wasm", 0, &open).await.unwrap());
    let stored = s.breaker_load("c.wasm").await.unwrap().unwrap();
    assert_eq!((stored.state, stored.failures, stored.since_ms, stored.version), (BreakerState::Open, 3, 42, 1));
    // A writer that read version 0 lost the race.
    let closed = BreakerRecord { state: BreakerState::Closed, failures: 0, since_ms: 0, version: 0 };
    assert!(!s.breaker_cas("c.wasm", 0, &closed).await.unwrap());
    assert!(s.breaker_cas("c.wasm", 1, &closed).await.unwrap());
    assert_eq!(s.breaker_load("c.wasm").await.unwrap().unwrap().version, 2);
    assert_eq!(s.breaker_load("other.wasm").await.unwrap(), None, "breakers are per component");
}

async fn appends_from_many_tasks_keep_every_entry(s: Arc<dyn RunStore>) {
    let lease = s.create_run(&new_run("r1", "wf", "me"), &[], &[]).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8u32 {
        let s = s.clone();
        let lease = lease.clone();
        tasks.spawn(async move {
            for a in 1..=25u32 {
                let e = JournalEntry::AttemptStarted { step_id: format!("t{t}"), attempt: a };
                s.append(&lease, vec![e]).await.unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let j = s.journal("r1").await.unwrap();
    assert_eq!(j.len(), 1 + 8 * 25);
    assert!(j.iter().enumerate().all(|(k, e)| e.seq == k as u64 + 1), "gapless sequence numbers");
}

async fn key_value_state_is_scoped_quota_checked_and_freed_on_delete(s: Arc<dyn RunStore>) {
    use weft::contract::{KV_ROW_OVERHEAD, KvError, kv_scope};
    let (a, b) = (kv_scope("", "wf-a"), kv_scope("", "wf-b"));
    assert_ne!(kv_scope("x/y", "z"), kv_scope("x", "y/z"), "scopes are unambiguous");
    let quota = 2 * (KV_ROW_OVERHEAD + 10);
    s.kv_set(&a, "k1", b"12345678", quota).await.unwrap();
    assert_eq!(s.kv_get(&a, "k1").await.unwrap().as_deref(), Some(&b"12345678"[..]));
    assert_eq!(s.kv_get(&b, "k1").await.unwrap(), None, "another scope sees nothing");
    // Replacing a value is charged once, not twice.
    s.kv_set(&a, "k1", b"87654321", quota).await.unwrap();
    s.kv_set(&a, "k2", b"12345678", quota).await.unwrap();
    let full = s.kv_set(&a, "k3", b"x", quota).await.unwrap_err();
    assert!(matches!(&full, KvError::Quota(m) if m.contains("quota")), "{full:?}");
    assert_eq!(s.kv_keys(&a, "k", 10).await.unwrap(), vec!["k1".to_string(), "k2".to_string()]);
    assert_eq!(s.kv_keys(&a, "k2", 10).await.unwrap(), vec!["k2".to_string()]);
    assert_eq!(s.kv_keys(&a, "", 1).await.unwrap().len(), 1);
    assert!(s.kv_delete(&a, "k2").await.unwrap());
    assert!(!s.kv_delete(&a, "k2").await.unwrap());
    // The delete freed its share of the quota.
    s.kv_set(&a, "k3", b"x", quota).await.unwrap();
    assert_eq!(s.kv_keys(&b, "", 10).await.unwrap(), Vec::<String>::new());
}

async fn the_memo_cache_keeps_entries_counts_hits_and_evicts_the_least_recently_used(s: Arc<dyn RunStore>) {
    use weft::store::MemoEntry;
    let entry = |v: u32| MemoEntry { output: json!({ "v": v }), actions: Vec::new() };
    assert_eq!(s.memo_get("k1").await.unwrap(), None);
    let size = entry(1).encode("k1").unwrap().1;
    let cap = 2 * size;
    s.memo_put("k1", &entry(1), cap).await.unwrap();
    s.memo_put("k2", &entry(2), cap).await.unwrap();
    assert_eq!(s.memo_get("k1").await.unwrap(), Some(entry(1)), "a hit, and k1 is now the most recently used");
    s.memo_put("k3", &entry(3), cap).await.unwrap();
    assert_eq!(s.memo_get("k2").await.unwrap(), None, "k2, the least recently used, was evicted");
    assert_eq!(s.memo_get("k3").await.unwrap(), Some(entry(3)));
    let stats = s.memo_stats().await.unwrap();
    assert_eq!((stats.entries, stats.bytes, stats.hits), (2, 2 * size, 2));
    // An entry larger than the whole cache is not kept, and evicts nothing.
    s.memo_put("big", &entry(4), size - 1).await.unwrap();
    assert_eq!(s.memo_get("big").await.unwrap(), None);
    assert_eq!(s.memo_clear().await.unwrap(), 2);
    assert_eq!(s.memo_stats().await.unwrap().entries, 0);
}

async fn usage_counters_add_atomically_within_a_limit(s: Arc<dyn RunStore>) {
    use weft::store::UsageAdd;
    assert_eq!(s.usage_get("acme", "stored_bytes").await.unwrap(), 0);
    assert_eq!(s.usage_add("acme", "stored_bytes", 60, 100).await.unwrap(), UsageAdd::Added(60));
    assert_eq!(s.usage_add("acme", "stored_bytes", 50, 100).await.unwrap(), UsageAdd::Over(60), "past the limit");
    assert_eq!(s.usage_add("acme", "stored_bytes", 40, 100).await.unwrap(), UsageAdd::Added(100), "up to it");
    assert_eq!(s.usage_add("acme", "stored_bytes", -500, 100).await.unwrap(), UsageAdd::Added(0), "down to 0");
    assert_eq!(s.usage_get("other", "stored_bytes").await.unwrap(), 0, "per tenant");
    // Many tasks adding at once lose nothing.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.spawn(async move {
            for _ in 0..25 {
                s.usage_add("acme", "fuel/100", 3, u64::MAX).await.unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    assert_eq!(s.usage_get("acme", "fuel/100").await.unwrap(), 8 * 25 * 3);
    s.usage_add("acme", "fuel/101", 1, u64::MAX).await.unwrap();
    s.usage_add("other", "fuel/100", 1, u64::MAX).await.unwrap();
    assert_eq!(s.usage_prune("acme", "fuel/", "fuel/101").await.unwrap(), 1, "only the older hour");
    assert_eq!(s.usage_get("acme", "fuel/100").await.unwrap(), 0);
    assert_eq!(s.usage_get("acme", "fuel/101").await.unwrap(), 1);
    assert_eq!(s.usage_get("other", "fuel/100").await.unwrap(), 1, "another tenant's are kept");
}

macro_rules! conformance {
    ($store:ident, $make:expr) => {
        mod $store {
            use super::*;
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let (store, _guard) = $make;
                        super::$name(store).await;
                    }
                };
            }
            case!(create_get_and_journal_in_order);
            case!(a_run_id_is_unique);
            case!(unknown_runs_are_not_found);
            case!(writes_are_fenced_by_the_lease_epoch);
            case!(a_released_lease_is_claimable_at_once_and_writes_nothing_more);
            case!(submitted_runs_wait_for_a_worker_and_are_claimed_once);
            case!(claims_without_progress_are_counted_and_progress_resets_them);
            case!(children_of_running_parents_are_left_to_their_parents);
            case!(finishing_sets_status_output_and_frees_the_lease);
            case!(cancel_requests_reach_the_owner_through_heartbeats);
            case!(listing_filters_and_orders_newest_first);
            case!(lists_are_scoped_by_tenant_and_paged_by_cursor);
            case!(components_are_stored_once_by_digest);
            case!(claims_are_fair_across_tenants);
            case!(a_follower_reads_only_the_entries_after_its_last);
            case!(dead_letters_are_queued_with_the_finish_and_marked_when_replayed);
            case!(breakers_update_by_compare_and_swap);
            case!(appends_from_many_tasks_keep_every_entry);
            case!(key_value_state_is_scoped_quota_checked_and_freed_on_delete);
            case!(the_memo_cache_keeps_entries_counts_hits_and_evicts_the_least_recently_used);
            case!(usage_counters_add_atomically_within_a_limit);
        }
    };
}

fn sqlite() -> (Arc<dyn RunStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("runs.db"), SyncMode::Normal).unwrap();
    (Arc::new(store), dir)
}

conformance!(memory, (Arc::new(MemoryStore::new()) as Arc<dyn RunStore>, ()));
conformance!(sqlite, sqlite());
conformance!(postgres, (postgres(), ()));

fn postgres() -> Arc<dyn RunStore> {
    Arc::new(weft::store::PostgresStore::open(&crate::common::postgres::fresh_database("conformance"), 8).unwrap())
}

// PostgreSQL-specific: the schema and its migrations.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_workers_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let url = crate::common::postgres::fresh_database("migrate");
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..8 {
        let url = url.clone();
        tasks.spawn(async move {
            let s = weft::store::PostgresStore::open(&url, 2).unwrap();
            s.create_run(&new_run(&format!("r{k}"), "wf", "me"), &[], &[]).await.map(|_| ())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    let s = weft::store::PostgresStore::open(&url, 2).unwrap();
    assert_eq!(s.list_runs(&RunFilter::default()).await.unwrap().len(), 8);
    assert_eq!(s.info().await.unwrap().schema_version, weft::store::PG_SCHEMA_VERSION);
    // A newer Weft's database is refused, with what to do.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.execute("UPDATE weft_meta SET value = '999' WHERE key = 'schema_version'", &[]).await.unwrap();
    let fresh = weft::store::PostgresStore::open(&url, 2).unwrap();
    let e = fresh.info().await.unwrap_err().to_string();
    assert!(e.contains("schema version 999, from a newer Weft") && e.contains("Upgrade Weft"), "{e}");
    // Nor is a database with another application's `runs` table touched.
    let other = crate::common::postgres::fresh_database("foreign");
    let (client, conn) = tokio_postgres::connect(&other, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute("CREATE TABLE runs (id int)").await.unwrap();
    let e = weft::store::PostgresStore::open(&other, 2).unwrap().info().await.unwrap_err().to_string();
    assert!(e.contains("not Weft's"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s = weft::store::PostgresStore::open(&format!("postgres://weft:secret@127.0.0.1:{port}/none"), 2).unwrap();
    let e = s.info().await.unwrap_err().to_string();
    assert!(e.contains("cannot reach PostgreSQL at postgres://weft@127.0.0.1"), "{e}");
    assert!(!e.contains("secret"), "the password is never shown: {e}");
    let e = weft::store::PostgresStore::open("postgres://[bad", 2).unwrap_err().to_string();
    assert!(e.contains("not a PostgreSQL URL"), "{e}");
}

// SQLite-specific: the file itself.

#[test]
fn a_file_that_is_not_sqlite_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(100)).unwrap();
    let e = SqliteStore::open(&path, SyncMode::Normal).unwrap_err();
    assert!(matches!(e, StoreError::Incompatible(_)), "{e}");
    assert!(e.to_string().contains("is not a Weft database"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "these are my notes, not a database\n".repeat(100));
}

#[test]
fn another_applications_sqlite_database_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('ada');").unwrap();
    drop(c);
    let e = SqliteStore::open(&path, SyncMode::Normal).unwrap_err();
    assert!(e.to_string().contains("not a Weft one"), "{e}");
    let c = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1, "no Weft table was added");
}

#[test]
fn a_database_from_a_newer_weft_is_refused_and_a_current_one_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    drop(SqliteStore::open(&path, SyncMode::Full).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    let v: u32 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, weft::store::SCHEMA_VERSION);
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let e = SqliteStore::open(&path, SyncMode::Normal).unwrap_err();
    assert!(e.to_string().contains("schema version 99, from a newer Weft"), "{e}");
    // Reopening a current database keeps its runs.
    let path2 = dir.path().join("keep.db");
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let s = SqliteStore::open(&path2, SyncMode::Normal).unwrap();
    rt.block_on(s.create_run(&new_run("r1", "wf", "me"), &[], &[])).unwrap();
    drop(s);
    let s = SqliteStore::open(&path2, SyncMode::Normal).unwrap();
    assert_eq!(rt.block_on(s.get_run("r1")).unwrap().run.workflow, "wf");
    assert_eq!(s.integrity_check().unwrap(), "ok");
}

#[test]
fn a_version_1_database_is_migrated_with_its_runs() {
    // Schema 1 as Weft 0.1 wrote it: the run spec inside the `runs` row.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, status TEXT NOT NULL, spec TEXT NOT NULL,
            owner TEXT NOT NULL, lease_until_ms INTEGER NOT NULL, cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL, created_seq INTEGER NOT NULL, output TEXT);
         CREATE INDEX runs_by_status ON runs(status, created_seq);
         CREATE INDEX runs_by_workflow ON runs(workflow, created_seq);
         CREATE TABLE journal (run_id TEXT NOT NULL REFERENCES runs(run_id), seq INTEGER NOT NULL, at TEXT NOT NULL,
            kind TEXT NOT NULL, step_id TEXT, data TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
         CREATE TABLE dlq (run_id TEXT PRIMARY KEY REFERENCES runs(run_id), workflow TEXT NOT NULL,
            step_id TEXT NOT NULL, error_type TEXT NOT NULL, message TEXT NOT NULL, at TEXT NOT NULL, replayed_as TEXT);
         CREATE TABLE breakers (component TEXT PRIMARY KEY, state TEXT NOT NULL, failures INTEGER NOT NULL,
            since_ms INTEGER NOT NULL, version INTEGER NOT NULL);
         PRAGMA application_id = 1466263156;
         PRAGMA user_version = 1;",
    )
    .unwrap();
    let spec = serde_json::to_string(&new_run("old", "wf-old", "gone:1:x")).unwrap();
    c.execute(
        "INSERT INTO runs (run_id, workflow, status, spec, owner, lease_until_ms, created_at, updated_at, created_seq)
         VALUES ('old', 'wf-old', 'running', ?1, 'gone:1:x', 0, 't', 't', 1)",
        [spec],
    )
    .unwrap();
    c.execute(
        "INSERT INTO journal (run_id, seq, at, kind, step_id, data)
         VALUES ('old', 1, 't', 'run_created', NULL, '{\"kind\":\"run_created\",\"start_time\":\"t\"}')",
        [],
    )
    .unwrap();
    drop(c);

    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let s = SqliteStore::open(&path, SyncMode::Normal).unwrap();
    let rec = rt.block_on(s.get_run("old")).unwrap();
    assert_eq!(rec.run.workflow, "wf-old");
    assert_eq!(rec.run.input["context"]["x"], 1, "the spec came across");
    assert_eq!(rt.block_on(s.journal("old")).unwrap().len(), 1);
    // New runs go in beside it, and the file is sound.
    rt.block_on(s.create_run(&new_run("new", "wf-new", "me"), &[], &[])).unwrap();
    let listed = rt.block_on(s.list_runs(&RunFilter::default())).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(s.integrity_check().unwrap(), "ok");
    drop(s);
    let c = rusqlite::Connection::open(&path).unwrap();
    let v: u32 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, weft::store::SCHEMA_VERSION);
}
