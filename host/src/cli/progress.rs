//! A run's progress on stderr: one line per transition, stamped with the
//! time it happened since the run started; or, on a terminal, a live view
//! redrawn in place.

use super::output::note;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};
use weft::engine::RunEvent;

/// Progress of one run.
pub struct Progress {
    /// The instant of the run's first event: times are counted from it.
    started: Option<Instant>,
    live: Option<LiveView>,
}

impl Progress {
    /// Progress for a run of `total` steps (0: unknown): live on a terminal.
    pub fn new(total: usize) -> Self {
        let live = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| LiveView::new(total));
        Self { started: None, live }
    }

    /// Shows `event`, which happened at `at`.
    pub fn show(&mut self, at: Instant, event: &RunEvent) {
        let started = *self.started.get_or_insert(at);
        let line = format!("[{:>8.3}s] {}", at.saturating_duration_since(started).as_secs_f64(), describe(event));
        match &mut self.live {
            Some(view) => view.update(event, line),
            None => note(&format!("{line}\n")),
        }
    }

    /// Draws the last frame.
    pub fn finish(&mut self) {
        if let Some(view) = &mut self.live {
            view.draw(true);
        }
    }
}

/// The live view of a run on a terminal: counts, the steps running now, and
/// the latest transitions, redrawn in place (at most 20 times a second).
struct LiveView {
    total: usize,
    completed: usize,
    failed: usize,
    skipped: usize,
    running: BTreeMap<String, u32>,
    recent: VecDeque<String>,
    drawn: usize,
    last_draw: Option<Instant>,
}

const LIVE_RUNNING_ROWS: usize = 8;
const LIVE_RECENT_ROWS: usize = 6;
const LIVE_FRAME: Duration = Duration::from_millis(50);

impl LiveView {
    fn new(total: usize) -> Self {
        Self {
            total,
            completed: 0,
            failed: 0,
            skipped: 0,
            running: BTreeMap::new(),
            recent: VecDeque::new(),
            drawn: 0,
            last_draw: None,
        }
    }

    fn update(&mut self, e: &RunEvent, line: String) {
        match e {
            RunEvent::AttemptStarted { step_id, attempt } => {
                self.running.insert(step_id.clone(), *attempt);
            }
            RunEvent::FanOutStarted { step_id, .. } => {
                self.running.insert(step_id.clone(), 1);
            }
            RunEvent::StepCompleted { step_id, .. } => {
                self.running.remove(step_id);
                self.completed += 1;
            }
            RunEvent::StepFailed { step_id, .. } => {
                self.running.remove(step_id);
                self.failed += 1;
            }
            RunEvent::StepSkipped { .. } => self.skipped += 1,
            _ => {}
        }
        if !matches!(e, RunEvent::AttemptStarted { .. }) {
            self.recent.push_back(line);
            while self.recent.len() > LIVE_RECENT_ROWS {
                self.recent.pop_front();
            }
        }
        self.draw(matches!(e, RunEvent::RunFinished { .. }));
    }

    fn draw(&mut self, force: bool) {
        if !force && self.last_draw.is_some_and(|t| t.elapsed() < LIVE_FRAME) {
            return;
        }
        self.last_draw = Some(Instant::now());
        let of = if self.total > 0 { format!(", of {}", self.total) } else { String::new() };
        let mut lines = vec![format!(
            "steps: {} completed, {} failed, {} skipped, {} running{of}",
            self.completed,
            self.failed,
            self.skipped,
            self.running.len(),
        )];
        for (step, attempt) in self.running.iter().take(LIVE_RUNNING_ROWS) {
            lines.push(format!("  running  {step} (attempt {attempt})"));
        }
        if self.running.len() > LIVE_RUNNING_ROWS {
            lines.push(format!("  ... and {} more running", self.running.len() - LIVE_RUNNING_ROWS));
        }
        lines.extend(self.recent.iter().cloned());
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for line in &lines {
            out.push_str("\x1b[2K");
            out.push_str(line);
            out.push('\n');
        }
        // Clear rows left over from a taller previous frame.
        for _ in lines.len()..self.drawn {
            out.push_str("\x1b[2K\n");
        }
        let extra = self.drawn.saturating_sub(lines.len());
        if extra > 0 {
            out.push_str(&format!("\x1b[{extra}A"));
        }
        self.drawn = lines.len();
        note(&out);
    }
}

/// One transition as a line of text.
fn describe(e: &RunEvent) -> String {
    match e {
        RunEvent::RunStarted { run_id, workflow } => format!("run {run_id} of `{workflow}` started"),
        RunEvent::AttemptStarted { step_id, attempt } => format!("{step_id}: attempt {attempt} started"),
        RunEvent::FanOutStarted { step_id, shards, remaining } if remaining == shards => {
            format!("{step_id}: fanned out into {shards} shard(s)")
        }
        RunEvent::FanOutStarted { step_id, shards, remaining } => {
            format!("{step_id}: resumed its fan-out: {remaining} of {shards} shard(s) left")
        }
        RunEvent::Retrying { step_id, attempt, error_type, delay_ms } => {
            format!("{step_id}: attempt {attempt} failed ({error_type}); retrying in {delay_ms} ms")
        }
        RunEvent::Memoized { step_id } => format!("{step_id}: memoized: completed from the memo cache, not run"),
        RunEvent::StepCompleted { step_id, attempts: 0 } => format!("{step_id}: completed"),
        RunEvent::StepCompleted { step_id, attempts } => format!("{step_id}: completed after {attempts} attempt(s)"),
        RunEvent::StepFailed { step_id, error_type, message, tolerated: true } => {
            format!("{step_id}: failed (tolerated by continue_on_error): {error_type}: {message}")
        }
        RunEvent::StepFailed { step_id, error_type, message, tolerated: false } => {
            format!("{step_id}: FAILED: {error_type}: {message}")
        }
        RunEvent::Waiting { step_id, until_ms } => {
            let left = until_ms.saturating_sub(weft::store::now_ms()) / 1000;
            format!("{step_id}: waiting for a signal (gives up in {left} s)")
        }
        RunEvent::Paused { run_id, waiting } => format!(
            "run paused: waiting only on {}; deliver a decision with `weft runs signal {run_id} {} --data JSON`",
            waiting.join(", "),
            waiting.first().map_or("STEP", String::as_str)
        ),
        RunEvent::ChildStarted { step_id, run_id } => format!("{step_id}: sub-workflow run {run_id}"),
        RunEvent::StepSkipped { step_id, reason } => format!("{step_id}: skipped: {reason}"),
        RunEvent::ActionNotDelivered { action } => format!(
            "{}: action {} for `{}` NOT DELIVERED: {}",
            action.source_node, action.action_id, action.target_node, action.reason
        ),
        RunEvent::Compensating { step_id } => format!("{step_id}: compensating"),
        RunEvent::Compensated { step_id, ok } => {
            format!("{step_id}: {}", if *ok { "compensated" } else { "COMPENSATION FAILED" })
        }
        RunEvent::RunFinished { status } => format!("run finished: {status:?}"),
    }
}
