//! `weft runs show` on a terminal: the run's status, then one row per step,
//! the way `argo get` shows a workflow.

use super::output::outln;
use weft::store::{RunView, StepView};

/// Prints `view` as a summary and a table of steps.
pub fn print_run(view: &RunView) {
    outln!("Run:        {}", view.run_id);
    outln!(
        "Workflow:   {}{}",
        view.workflow,
        view.workflow_path.as_deref().map(|p| format!(" ({p})")).unwrap_or_default()
    );
    let mut status = if view.paused { "paused".to_string() } else { view.status.as_str().to_string() };
    if view.paused {
        let gates: Vec<&str> =
            view.steps.iter().filter(|s| s.waiting_until_ms.is_some()).map(|s| s.step_id.as_str()).collect();
        status.push_str(&format!(
            " (waiting on {}: `weft runs signal {} STEP --data JSON`)",
            gates.join(", "),
            view.run_id
        ));
    }
    if view.orphaned {
        status.push_str(" (orphaned: resume it with `weft runs resume`)");
    } else if view.cancel_requested {
        status.push_str(" (cancel requested)");
    }
    outln!("Status:     {status}");
    outln!("Created:    {}", view.created_at);
    outln!("Updated:    {}", view.updated_at);
    if let Some(owner) = &view.owner {
        outln!("Owner:      {owner}");
    }
    if let Some(of) = &view.replay_of {
        outln!("Replay of:  {of}");
    }
    if let Some(p) = &view.parent {
        outln!("Parent:     {} (node `{}`)", p.run_id, p.step_id);
    }
    for s in view.steps.iter().filter(|s| s.child_run_id.is_some()) {
        outln!("Child:      {} (node `{}`)", s.child_run_id.as_deref().unwrap_or_default(), s.step_id);
    }
    if let Some(out) = &view.output {
        outln!("Duration:   {}", millis(out.execution_time_ms as f64));
        for e in &out.errors {
            outln!("Error:      {}: {}: {}", e.step_id, e.error_type, e.message);
        }
    }
    outln!("");
    let id_width = view.steps.iter().map(|s| s.step_id.chars().count()).max().unwrap_or(4).clamp(4, 40);
    let states: Vec<String> = view.steps.iter().map(step_state).collect();
    let state_width = states.iter().map(|s| s.chars().count()).max().unwrap_or(6).max(6);
    outln!(
        "{:<id_width$}  {:<state_width$}  {:>8}  {:>10}  {:>14}  {:>10}",
        "STEP",
        "STATUS",
        "ATTEMPTS",
        "TIME",
        "FUEL",
        "MEMORY"
    );
    for (s, state) in view.steps.iter().zip(states) {
        outln!(
            "{:<id_width$}  {:<state_width$}  {:>8}  {:>10}  {:>14}  {:>10}",
            s.step_id,
            state,
            s.attempts.len(),
            millis(s.totals.wall_time_us as f64 / 1000.0),
            s.totals.fuel_consumed,
            bytes(s.totals.peak_memory_bytes),
        );
    }
    outln!("");
    outln!(
        "{} step(s); `weft runs show {} --json` prints everything, `weft runs logs {}` the logs",
        view.steps.len(),
        view.run_id,
        view.run_id
    );
}

/// A step's status column: its state (memoized, shards), failure kind and compensation.
fn step_state(s: &StepView) -> String {
    let mut state = s.state.clone();
    if s.memoized {
        state = format!("{state} (memoized)");
    }
    if let Some(sh) = &s.shards {
        state = format!("{state} ({} shards ok, {} failed)", sh.completed, sh.failed);
    }
    if let Some(kind) = &s.error_type {
        state = format!("{state}: {kind}");
    }
    if let Some(c) = &s.compensation {
        state = format!("{state}, {c}");
    }
    state
}

fn millis(ms: f64) -> String {
    if ms >= 1000.0 { format!("{:.2} s", ms / 1000.0) } else { format!("{ms:.1} ms") }
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}
