//! Crash test: a 20-step workflow is run by the real `weft` binary, killed
//! with SIGKILL at a random moment (sometimes twice), then resumed. After
//! every trial the run must complete with the right output, no completed step
//! may have run again, and the database must pass `PRAGMA integrity_check`.
//!
//! `WEFT_CRASH_TRIALS` sets the number of trials (10 by default; the README
//! shows the 100-trial command). `WEFT_CRASH_SEED` fixes the random choices.

use crate::common;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use weft::store::{JournalEntry, RunFilter, RunStore, SqliteStore, SyncMode};

const STEPS: usize = 20;
const SLEEP_MS: u64 = 15;

fn workflow(dir: &Path) -> PathBuf {
    let path = common::chain(dir, "crash-chain", &common::plugin("counter"), STEPS, "");
    std::fs::write(dir.join("input.json"), format!("{{\"context\": {{\"count\": 0, \"sleep_ms\": {SLEEP_MS}}}}}"))
        .unwrap();
    path
}

fn weft(db: &Path, args: &[&str]) -> Command {
    common::weft_db("crash", db, args)
}

fn only_run_id(store: &SqliteStore, rt: &tokio::runtime::Runtime) -> Option<String> {
    let runs = rt.block_on(store.list_runs(&RunFilter::default())).unwrap();
    assert!(runs.len() <= 1, "one run per trial: {runs:?}");
    runs.first().map(|r| r.run_id.clone())
}

#[test]
fn killed_runs_resume_without_running_a_completed_step_twice() {
    let trials: usize = std::env::var("WEFT_CRASH_TRIALS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed: u64 = std::env::var("WEFT_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(dir.path());
    let input = dir.path().join("input.json");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (mut kills, mut reexecuted_in_flight) = (0usize, 0usize);

    for trial in 0..trials {
        let db = dir.path().join(format!("trial-{trial}.db"));
        // Kill the run while step k is in flight (or just after), at a random point.
        let k = rng.random_range(1..=STEPS);
        let extra = rng.random_range(0..2 * SLEEP_MS);
        let run = weft(&db, &["run", wf.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", "json"]);
        let first_killed = common::kill_when_seen(run, &format!("s{k:02}: attempt"), extra);
        kills += usize::from(first_killed);
        let store = SqliteStore::open(&db, SyncMode::Normal).unwrap();
        let id = only_run_id(&store, &rt).expect("the run was created before step 1 started");
        // Every other trial, kill the first resume too.
        if trial % 2 == 1 {
            let k2 = rng.random_range(k..=STEPS);
            let extra2 = rng.random_range(0..2 * SLEEP_MS);
            kills += usize::from(common::kill_when_seen(
                weft(&db, &["runs", "resume", &id, "--output", "json"]),
                &format!("s{k2:02}: attempt"),
                extra2,
            ));
        }
        eprintln!("trial {trial}: killed at s{k:02} + {extra} ms: {}", if first_killed { "mid-run" } else { "after" });
        let record = rt.block_on(store.get_run(&id)).unwrap();
        let out: Value = if record.output.is_some() {
            serde_json::to_value(record.output).unwrap()
        } else {
            let done = weft(&db, &["runs", "resume", &id, "--output", "json", "-q"]).output().unwrap();
            assert_eq!(done.status.code(), Some(0), "trial {trial}: {}", String::from_utf8_lossy(&done.stderr));
            serde_json::from_slice(&done.stdout).unwrap()
        };

        // The right output: every step once, in order, counted once.
        assert_eq!(out["execution_status"], "completed", "trial {trial}: {out}");
        let last = &out["step_outputs"][format!("s{STEPS:02}")];
        assert_eq!(last["count"], STEPS as u64, "trial {trial}: {last}");
        let trail: Vec<String> =
            last["trail"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert_eq!(trail.len(), STEPS, "trial {trial}: {trail:?}");

        // The journal: one completion per step, no attempt after it, attempts
        // numbered 1..n with no gap, and the attempt each step's plugin saw
        // (its own count of executions) is the last journaled one.
        let journal = rt.block_on(store.journal(&id)).unwrap();
        let mut started: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut completed: BTreeMap<String, Value> = BTreeMap::new();
        for j in &journal {
            match &j.entry {
                JournalEntry::AttemptStarted { step_id, attempt } => {
                    assert!(!completed.contains_key(step_id), "trial {trial}: {step_id} ran again after completing");
                    started.entry(step_id.clone()).or_default().push(*attempt);
                }
                JournalEntry::StepCompleted { step_id, output, .. } => {
                    assert!(completed.insert(step_id.clone(), output.clone()).is_none(), "{step_id} completed twice");
                }
                _ => {}
            }
        }
        assert_eq!(completed.len(), STEPS, "trial {trial}");
        for (i, (step, output)) in completed.iter().enumerate() {
            let attempts = &started[step];
            let expected: Vec<u32> = (1..=attempts.len() as u32).collect();
            assert_eq!(attempts, &expected, "trial {trial}: attempts of {step}");
            assert_eq!(output["attempt"], *attempts.last().unwrap(), "trial {trial}: {step} saw its journaled attempt");
            assert_eq!(trail[i], format!("{step}#{}", attempts.len()), "trial {trial}");
            if attempts.len() > 1 {
                reexecuted_in_flight += 1;
            }
        }
        let verdict = store.integrity_check().unwrap();
        assert_eq!(verdict, "ok", "trial {trial}: integrity_check");
    }
    eprintln!(
        "crash test: {trials} trials, {kills} SIGKILLs mid-run, {reexecuted_in_flight} in-flight steps re-executed \
         with the next attempt number"
    );
    assert!(kills > 0, "no trial killed a run mid-flight, so nothing was tested");
}
