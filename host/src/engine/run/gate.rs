//! Approval gates (`node_type: effect` with `wait_for: signal`): a gate
//! journals `gate_opened` with the time it gives up, then waits for the
//! signal that `weft runs signal` (or the API) stores for it. The wait is a
//! poll of the store, once a second at most, so a waiting run costs no CPU
//! to speak of; and because both the deadline and the signal are in the
//! store, a gate survives a restart: a resumed run waits again, until the
//! same deadline. The signal's data becomes the gate's output.

use super::Run;
use super::schedule::StepResult;
use crate::contract::{now_ms, parse_rfc3339_ms};
use crate::engine::events::RunEvent;
use crate::store::{JournalEntry, Signal};
use crate::workflow::NodeKind;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

/// How a gate's wait ended.
pub(super) enum GateEnd {
    /// Its signal arrived.
    Signal(Signal),
    /// Nothing arrived by its deadline, after waiting this long (ms).
    TimedOut(u64),
}

/// The longest pause between two looks at the store.
const MAX_POLL: Duration = Duration::from_secs(1);

/// A wake-up per waiting gate, by (run, step).
type Gates = HashMap<(String, String), Arc<Notify>>;

/// The gates waiting in this process, by (run, step): a signal delivered
/// through this process's engine wakes its gate at once instead of at the
/// next look at the store.
fn waiting_here() -> std::sync::MutexGuard<'static, Gates> {
    static WAITING: OnceLock<Mutex<Gates>> = OnceLock::new();
    WAITING.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wakes the gate `step_id` of run `run_id` if it waits in this process.
pub(in crate::engine) fn wake(run_id: &str, step_id: &str) {
    if let Some(n) = waiting_here().get(&(run_id.to_string(), step_id.to_string())) {
        n.notify_one();
    }
}

/// A gate's entry in [`waiting_here`], removed when its wait ends.
struct Waiting((String, String));

impl Drop for Waiting {
    fn drop(&mut self) {
        waiting_here().remove(&self.0);
    }
}

impl Run {
    /// Whether node `i` is an approval gate.
    pub(super) fn is_gate(&self, i: usize) -> bool {
        matches!(self.wf.nodes[i].kind, NodeKind::Gate(_))
    }

    /// Journals that gate `i` opens now, unless it opened before (a resume
    /// keeps the first deadline).
    pub(super) fn open_gate(&mut self, i: usize) {
        if self.gate_until[i].is_some() {
            return;
        }
        let NodeKind::Gate(spec) = self.wf.nodes[i].kind else { return };
        let left = self.config.global_timeout_ms.saturating_sub(now_ms().saturating_sub(self.started_ms));
        let until_ms = now_ms().saturating_add(spec.wait_timeout_ms.unwrap_or(left).min(left));
        self.record(JournalEntry::GateOpened { step_id: self.wf.nodes[i].id.clone(), until_ms });
    }

    /// Waits for gate `i`'s signal, or its deadline.
    pub(super) fn gate_task(&self, i: usize) -> impl Future<Output = StepResult> + Send + 'static {
        let store = self.store.clone();
        let run_id = self.ids.run_id.clone();
        let step_id = self.wf.nodes[i].id.clone();
        let until_ms = self.gate_until[i].unwrap_or_else(now_ms);
        let opened_ms = now_ms();
        let events = self.events.clone();
        async move {
            let mut result = StepResult::empty(i);
            events.send(RunEvent::Waiting { step_id: step_id.clone(), until_ms });
            let key = (run_id.clone(), step_id.clone());
            let notify = Arc::new(Notify::new());
            waiting_here().insert(key.clone(), notify.clone());
            let _registered = Waiting(key);
            let mut poll = Duration::from_millis(50);
            loop {
                match store.signal_get(&run_id, &step_id).await {
                    // A signal stored after the deadline came too late (the
                    // gate had timed out, maybe while its driver was down).
                    Ok(Some(signal)) if parse_rfc3339_ms(&signal.at).is_some_and(|at| at > until_ms) => {}
                    Ok(Some(signal)) => {
                        result.gate = Some(GateEnd::Signal(signal));
                        return result;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        result.store_error = Some(format!("the gate `{step_id}` could not read its signal: {e}"));
                        return result;
                    }
                }
                let now = now_ms();
                if now >= until_ms {
                    result.gate = Some(GateEnd::TimedOut(now.saturating_sub(opened_ms)));
                    return result;
                }
                let pause = tokio::time::sleep(poll.min(Duration::from_millis(until_ms - now)));
                tokio::select! {
                    _ = pause => {}
                    _ = notify.notified() => {}
                }
                poll = (poll * 2).min(MAX_POLL);
            }
        }
    }

    /// Records how gate `i`'s wait ended. Returns true when the run must stop.
    pub(super) fn finish_gate(&mut self, i: usize, end: GateEnd) -> bool {
        let step_id = self.wf.nodes[i].id.clone();
        match end {
            GateEnd::Signal(signal) => {
                self.record(JournalEntry::SignalReceived { step_id, signal_id: signal.signal_id });
                self.complete_step(i, signal.data, &[])
            }
            GateEnd::TimedOut(waited) => self.fail_step(
                i,
                "timeout",
                format!(
                    "approval gate `{step_id}` had no signal by its deadline (waited {waited} ms this time); \
                     deliver one sooner with `weft runs signal {} {step_id} --data JSON`, or raise its \
                     `wait_timeout_ms`",
                    self.ids.run_id
                ),
            ),
        }
    }

    /// Whether everything in flight is an approval gate (the run is paused).
    pub(super) fn only_gates_running(&self) -> Vec<String> {
        let running: Vec<usize> =
            (0..self.wf.nodes.len()).filter(|&i| self.state[i] == super::state::State::Running).collect();
        if running.is_empty() || !running.iter().all(|&i| self.is_gate(i)) {
            return Vec::new();
        }
        running.into_iter().map(|i| self.wf.nodes[i].id.clone()).collect()
    }
}
