//! The scheduling loop: ready steps start in topological order, as many at
//! once as the mode allows; every decision is journaled before the steps it
//! enables start; finished steps release their dependents. The loop stops at
//! the end of the graph, or when the run fails, is cancelled, runs out of
//! time or cannot write its journal, and then journals `run_stopping`.
//!
//! Execution modes plug in here, and only here: [`Run::concurrency`] says
//! how many steps may be in flight, [`Run::counts_parallel_executions`]
//! whether a round that launched steps counts in `parallel_executions`, and
//! [`Run::wave_size`] whether launches come in waves (batch mode): a wave
//! of at most `batch_size` steps ends, every step of it final, before the
//! next one starts, and a failure that stops the run does so at the end of
//! its wave.
//!
//! Draining (`Engine::drain`) is one more way the loop ends: nothing new
//! starts, what is in flight may finish until the run's
//! `shutdown_timeout_ms`, and the run stops with [`Halt::Drained`], without
//! an end status. The file is long because the loop is one piece: every
//! reason to stop shares its state (what is ready, running, in the wave).

use super::in_flight::{Abnormal, InFlight};
use super::state::State;
use super::{Run, SharedInput};
use crate::contract::{AttemptReport, ErrorRecord, ExecutionStatus, now_ms};
use crate::engine::events::RunEvent;
use crate::store::JournalEntry;
use crate::workflow::{ExecutionMode, FailureStrategy, Workflow};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

/// What a step task reports back.
pub(super) struct StepResult {
    /// The step's node index.
    pub(super) index: usize,
    /// The number of the first attempt in `attempts`.
    pub(super) first_attempt: u32,
    /// Every attempt this task made, in order.
    pub(super) attempts: Vec<AttemptReport>,
    /// The journal (or breaker store) failed: the run must stop.
    pub(super) store_error: Option<String>,
    /// Completed from the memo cache under this key, without running.
    pub(super) memo_hit: Option<String>,
    /// The shard this task ran, for one shard of a `for_each` node.
    pub(super) shard: Option<u32>,
    /// For a `for_each` node: the result of each shard task it ran.
    pub(super) shards: Vec<StepResult>,
    /// For a `for_each` node: a shard task that ended without a result.
    pub(super) abnormal: Option<String>,
    /// For a stream producer: the result of each consumer of its group.
    pub(super) consumers: Vec<StepResult>,
    /// For a stream consumer: its micro-batches and buffer statistics.
    pub(super) stream: Option<super::streaming::StreamEnd>,
    /// For an approval gate: how its wait ended.
    pub(super) gate: Option<super::gate::GateEnd>,
    /// For a sub-workflow node: its child's output, or why there is none.
    pub(super) child: Option<Result<crate::contract::RunOutput, String>>,
}

impl StepResult {
    /// The result of node `index` with nothing in it yet.
    pub(super) fn empty(index: usize) -> Self {
        Self {
            index,
            first_attempt: 1,
            attempts: Vec::new(),
            store_error: None,
            memo_hit: None,
            shard: None,
            shards: Vec::new(),
            abnormal: None,
            consumers: Vec::new(),
            stream: None,
            gate: None,
            child: None,
        }
    }
}

/// A step about to start: its journaled input, its attempt number, and (a
/// stream producer) the consumers that start with it.
struct Launch {
    index: usize,
    input: SharedInput,
    attempt: u32,
    consumers: Vec<usize>,
}

/// Why the scheduling loop ended without an end status for the run.
pub(super) enum Halt {
    /// The journal could not be written.
    Store(String),
    /// The process is draining: the steps that were in flight finished (or
    /// were interrupted at the shutdown timeout), and the run stays resumable.
    Drained,
}

impl From<String> for Halt {
    fn from(message: String) -> Self {
        Self::Store(message)
    }
}

/// Why the scheduling loop stopped early.
enum Stop {
    /// A step failed and the strategy stops the run.
    Failed,
    /// The run was cancelled.
    Cancelled,
    /// The global timeout passed.
    TimedOut,
    /// The journal could not be written.
    Store(String),
    /// The process drained.
    Drained,
}

impl Run {
    /// Records the steps `interrupted` by a cancel or the global timeout as
    /// failed with `error_type`.
    fn fail_interrupted(&mut self, interrupted: &[usize], error_type: &str, message: &str) {
        for &i in interrupted {
            let step_id = self.wf.nodes[i].id.clone();
            let (error_type, message) = (error_type.to_string(), message.to_string());
            self.record(JournalEntry::StepFailed { step_id, error_type, message, tolerated: false, output: None });
        }
    }

    /// What node `i` does as it starts (scheduled now, or again on a resume)
    /// before any task: an inline node (a conditional, a join) completes or
    /// fails at once, and `Some` says whether that stops the run; a gate
    /// journals its deadline and a sub-workflow node its child, once.
    fn begin(&mut self, i: usize, input: &SharedInput) -> Option<bool> {
        if self.is_inline(i) {
            return Some(self.finish_inline(i, input));
        }
        if self.is_gate(i) {
            self.open_gate(i);
        }
        if self.is_child(i) && self.child_ids[i].is_none() {
            let step_id = self.wf.nodes[i].id.clone();
            let child_run_id = self.child_run_id(i).to_string();
            self.record(JournalEntry::ChildLinked { step_id, child_run_id, replay_of: None });
        }
        None
    }

    /// How many steps may be in flight at once: `max_parallel_steps` in
    /// parallel mode (the input resolves it to 1 in the others).
    fn concurrency(&self) -> usize {
        self.config.max_parallel_steps.max(1) as usize
    }

    /// Whether a scheduling round that launched steps counts as one of the
    /// output's `parallel_executions` (in batch mode, each wave counts once).
    fn counts_parallel_executions(&self) -> bool {
        matches!(self.config.execution_mode, ExecutionMode::Parallel | ExecutionMode::Streaming)
    }

    /// Whether node `i`'s task journals its first attempt itself: a
    /// fan-out's shards do, and so does a memoized step (a hit runs none).
    fn task_journals_first_start(&self, i: usize) -> bool {
        self.wf.nodes[i].for_each.is_some() || self.memoized_here(i) || !self.wf.nodes[i].kind.has_component()
    }

    /// Whether node `i` is looked up in the memo cache: a memoized step
    /// that is not a fan-out and whose stream nobody consumes.
    pub(super) fn memoized_here(&self, i: usize) -> bool {
        let node = &self.wf.nodes[i];
        node.memoize && node.for_each.is_none() && self.consumers_of[i].is_empty()
    }

    /// The consumers of node `i` that start with it (streaming mode): each
    /// one not final yet is decided now (skipped, failed, or scheduled with
    /// its journaled input). Returns the scheduled ones, and the ones that
    /// became final, each with whether its failure stops the run.
    fn start_consumers(&mut self, i: usize) -> (Vec<usize>, Vec<(usize, bool)>) {
        let mut started = Vec::new();
        let mut decided = Vec::new();
        if self.config.execution_mode != ExecutionMode::Streaming {
            return (started, decided);
        }
        for c in self.consumers_of[i].clone() {
            let step_id = self.wf.nodes[c].id.clone();
            match self.state[c] {
                State::Running => started.push(c),
                State::Pending => {
                    let bound = self.wf.nodes[c].uses.as_ref().map(|uses| self.bind(c, uses));
                    let decision = self.skip_reason(c, bound.as_ref());
                    drop(bound);
                    match decision.and_then(|skip| match skip {
                        Some(reason) => Ok(Err(reason)),
                        None => self.consumer_input(c).map(Ok),
                    }) {
                        Ok(Ok(input)) => {
                            self.record(JournalEntry::StepScheduled { step_id, input: Arc::new(input) });
                            started.push(c);
                        }
                        Ok(Err(reason)) => {
                            self.record(JournalEntry::StepSkipped { step_id: step_id.clone(), reason: reason.clone() });
                            self.emit(RunEvent::StepSkipped { step_id, reason });
                            decided.push((c, false));
                        }
                        // The producer still runs; the strategy decides what follows.
                        Err(message) => {
                            let stops = self.fail_step(c, "expression", message);
                            decided.push((c, stops));
                        }
                    }
                }
                _ => {}
            }
        }
        (started, decided)
    }

    /// Steps per wave in batch mode; `None` in the modes without waves.
    fn wave_size(&self) -> Option<usize> {
        (self.config.execution_mode == ExecutionMode::Batch).then_some(self.config.batch_size.max(1) as usize)
    }

    /// Schedules the graph until every step is final or the run stops.
    /// Journals `run_stopping` and returns the status the run ends with.
    pub(super) async fn schedule(&mut self) -> Result<ExecutionStatus, Halt> {
        let n = self.wf.nodes.len();
        // On resume, final steps are done and count as met dependencies.
        let mut waiting: Vec<usize> = (0..n)
            .map(|i| self.wf.graph.dependencies[i].iter().filter(|&&d| !self.state[d].is_final()).count())
            .collect();
        let mut ready: ReadyQueue = (0..n)
            .filter(|&i| waiting[i] == 0 && !self.state[i].is_final())
            .map(|i| std::cmp::Reverse((self.topo_pos[i], i)))
            .collect();
        let mut running = 0usize;
        let limit = self.concurrency();
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(
                self.config.global_timeout_ms.saturating_sub(now_ms().saturating_sub(self.started_ms)),
            );
        let mut tasks = InFlight::for_concurrency(limit);
        // Both are created once: a fresh timer per loop turn costs as much as a step.
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        let cancelled = self.cancel.clone().cancelled_owned();
        tokio::pin!(cancelled);
        // Draining: nothing new starts, what is in flight may finish until
        // `drain_deadline`, and the run then stops without an end.
        let drain = self.drain.clone().cancelled_owned();
        tokio::pin!(drain);
        let mut draining = false;
        let drain_deadline = tokio::time::sleep(Duration::from_secs(86_400 * 365));
        tokio::pin!(drain_deadline);
        let rounds = if self.config.failure_strategy == FailureStrategy::Retry {
            1 + self.wf.rules.max_retries.unwrap_or(1)
        } else {
            1
        };
        let mut stop: Option<Stop> = None;
        let mut launches: Vec<Launch> = Vec::new();
        let waves = self.wave_size();
        // Batch mode: the steps of the current wave, taken from the ready
        // queue when the last wave has ended; whether it counted in
        // `parallel_executions` yet; whether a failure in it stops the run
        // once it has ended.
        let mut wave: std::collections::VecDeque<usize> = Default::default();
        let mut wave_counted = false;
        let mut wave_failed = false;
        // Whether `run_paused` was journaled since the last step ended.
        let mut paused = false;

        'outer: loop {
            if let Some(size) = waves
                && running == 0
                && wave.is_empty()
            {
                if wave_failed && stop.is_none() {
                    stop = Some(Stop::Failed);
                }
                while wave.len() < size
                    && let Some(std::cmp::Reverse((_, i))) = ready.pop()
                {
                    wave.push_back(i);
                }
                wave_counted = false;
            }
            let fail_stops = |wave_failed: &mut bool| {
                if waves.is_some() {
                    *wave_failed = true;
                    None
                } else {
                    Some(Stop::Failed)
                }
            };
            if self.drain.is_cancelled() && !draining {
                draining = true;
                let until =
                    tokio::time::Instant::now() + Duration::from_millis(self.config.settings.shutdown_timeout_ms);
                drain_deadline.as_mut().reset(until);
            }
            while running + launches.len() < limit && stop.is_none() && !draining {
                // Nothing new starts once the run is cancelled or out of time.
                if self.cancel.is_cancelled() {
                    stop = Some(Stop::Cancelled);
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    stop = Some(Stop::TimedOut);
                    break;
                }
                let next = match waves {
                    Some(_) => wave.pop_front(),
                    None => ready.pop().map(|std::cmp::Reverse((_, i))| i),
                };
                let Some(i) = next else { break };
                // Already final (a replay keeps some steps' results): never again.
                if self.state[i].is_final() {
                    continue;
                }
                // A consumer runs only in its producer's group: one whose
                // producer became final without streaming to it does not run.
                if let Some(stream) = &self.wf.nodes[i].stream_from {
                    let step_id = self.wf.nodes[i].id.clone();
                    let reason = format!("its producer `{}` did not stream to it (it did not run)", stream.producer);
                    if self.state[i] == State::Running {
                        if self.fail_step(i, "stream", reason) {
                            stop = stop.or(fail_stops(&mut wave_failed));
                        }
                    } else {
                        self.record(JournalEntry::StepSkipped { step_id: step_id.clone(), reason: reason.clone() });
                        self.emit(RunEvent::StepSkipped { step_id, reason });
                    }
                    release(&self.wf, i, &mut waiting, &mut ready, &self.topo_pos);
                    continue;
                }
                // A step that was in flight when the run was interrupted runs
                // again with its journaled input and the next attempt number.
                if self.state[i] == State::Running
                    && let Some(input) = self.inputs[i].clone()
                {
                    if let Some(stops) = self.begin(i, &input) {
                        if stops {
                            stop = stop.or(fail_stops(&mut wave_failed));
                        }
                        release(&self.wf, i, &mut waiting, &mut ready, &self.topo_pos);
                        continue;
                    }
                    let attempt = self.attempts_used[i].saturating_add(1);
                    if !self.task_journals_first_start(i) {
                        self.record(JournalEntry::AttemptStarted { step_id: self.wf.nodes[i].id.clone(), attempt });
                    }
                    let (consumers, decided) = self.start_consumers(i);
                    for (c, stops) in decided {
                        if stops {
                            stop = stop.or(fail_stops(&mut wave_failed));
                        }
                        release(&self.wf, c, &mut waiting, &mut ready, &self.topo_pos);
                    }
                    launches.push(Launch { index: i, input, attempt, consumers });
                    continue;
                }
                // Expressions need the scope; nodes without any skip building it.
                let bound = self.wf.nodes[i].uses.as_ref().map(|uses| self.bind(i, uses));
                let decision = self.skip_reason(i, bound.as_ref()).and_then(|skip| match skip {
                    Some(reason) => Ok(Err(reason)),
                    None => self.input_for(i, bound.as_ref()).map(Ok),
                });
                drop(bound);
                let step_id = self.wf.nodes[i].id.clone();
                match decision {
                    Ok(Ok(input)) => {
                        let input = Arc::new(input);
                        self.record(JournalEntry::StepScheduled { step_id: step_id.clone(), input: input.clone() });
                        if let Some(stops) = self.begin(i, &input) {
                            if stops {
                                stop = stop.or(fail_stops(&mut wave_failed));
                            }
                            release(&self.wf, i, &mut waiting, &mut ready, &self.topo_pos);
                            continue;
                        }
                        if !self.task_journals_first_start(i) {
                            self.record(JournalEntry::AttemptStarted { step_id, attempt: 1 });
                        }
                        let (consumers, decided) = self.start_consumers(i);
                        for (c, stops) in decided {
                            if stops {
                                stop = stop.or(fail_stops(&mut wave_failed));
                            }
                            release(&self.wf, c, &mut waiting, &mut ready, &self.topo_pos);
                        }
                        launches.push(Launch { index: i, input, attempt: 1, consumers });
                        continue;
                    }
                    Ok(Err(reason)) => {
                        self.record(JournalEntry::StepSkipped { step_id: step_id.clone(), reason: reason.clone() });
                        self.emit(RunEvent::StepSkipped { step_id, reason });
                    }
                    Err(message) => {
                        if self.fail_step(i, "expression", message) {
                            stop = stop.or(fail_stops(&mut wave_failed));
                        }
                    }
                }
                // Final without running: its dependents may be ready now.
                release(&self.wf, i, &mut waiting, &mut ready, &self.topo_pos);
            }
            // Every transition so far is durable before any step it enables starts.
            if let Err(message) = self.flush().await {
                stop = Some(Stop::Store(message));
                break;
            }
            // Once the run stops, what was decided in this round does not start:
            // it is interrupted below, with everything still running.
            if stop.is_some() {
                launches.clear();
            }
            let launched = launches.len();
            for Launch { index, input, attempt, consumers } in launches.drain(..) {
                if self.is_gate(index) {
                    tasks.push(index, self.gate_task(index));
                } else if self.is_child(index) {
                    tasks.push(index, self.child_task(index, input));
                } else if self.wf.nodes[index].for_each.is_some() {
                    tasks.push(index, self.fan_out_task(index, input, rounds));
                } else if !consumers.is_empty() {
                    tasks.push(index, self.stream_group_task(index, input, rounds, attempt, consumers));
                } else {
                    tasks.push(index, self.step_task(index, input, rounds, attempt));
                }
                running += 1;
            }
            // A wave counts once, in the first round that launched any of it.
            let opens_wave = waves.is_some() && !wave_counted;
            if launched > 0 && (self.counts_parallel_executions() || opens_wave) {
                self.parallel_executions += 1;
                wave_counted = true;
            }
            if draining && stop.is_none() && (running == 0 || self.only_gates_running().len() == running) {
                // Nothing in flight that will end by itself: stop now.
                stop = Some(Stop::Drained);
            }
            if running == 0 && (stop.is_some() || (wave.is_empty() && ready.is_empty())) {
                break;
            }
            if matches!(stop, Some(Stop::Drained)) {
                break;
            }
            if running == 0 {
                continue;
            }
            // Nothing can start and only gates are in flight: the run waits for a person.
            // (or can start nothing more: every slot is taken by a gate).
            if !paused && stop.is_none() && ((ready.is_empty() && wave.is_empty()) || running >= limit) {
                let waiting = self.only_gates_running();
                if !waiting.is_empty() {
                    self.record(JournalEntry::RunPaused { waiting: waiting.clone() });
                    if let Err(message) = self.flush().await {
                        stop = Some(Stop::Store(message));
                        break;
                    }
                    self.emit(RunEvent::Paused { run_id: self.ids.run_id.clone(), waiting });
                    paused = true;
                }
            }
            tokio::select! {
                biased;
                _ = &mut cancelled, if stop.is_none() => { stop = Some(Stop::Cancelled); }
                _ = &mut sleep, if stop.is_none() => { stop = Some(Stop::TimedOut); }
                _ = &mut drain, if !draining && stop.is_none() => { continue 'outer; }
                _ = &mut drain_deadline, if draining && stop.is_none() => { stop = Some(Stop::Drained); }
                joined = tasks.next() => {
                    let Some(first) = joined else { break 'outer };
                    // Take every step that has finished, not just the first.
                    let mut batch = vec![first];
                    while let Some(more) = tasks.try_next() {
                        batch.push(more);
                    }
                    paused = false;
                    for joined in batch {
                        running -= 1;
                        match joined {
                            Ok(result) => {
                                if let Some(message) = result.store_error {
                                    stop = Some(Stop::Store(message));
                                    continue;
                                }
                                // A child that drained with this process has no end yet: the
                                // step stays in flight, for whoever continues the run.
                                if draining
                                    && matches!(&result.child, Some(Ok(out)) if out.execution_status == ExecutionStatus::Paused)
                                {
                                    continue;
                                }
                                // A stream group ends its producer and its consumers together.
                                let members: Vec<usize> =
                                    std::iter::once(result.index).chain(result.consumers.iter().map(|c| c.index)).collect();
                                if self.finish_step(result) {
                                    stop = stop.or(fail_stops(&mut wave_failed));
                                }
                                for i in members {
                                    release(&self.wf, i, &mut waiting, &mut ready, &self.topo_pos);
                                }
                            }
                            // Journaled as the step's failure, so a resume sees the same run.
                            Err(Abnormal { index: Some(i), message }) => {
                                self.fail_step(i, "internal", format!("the step's task ended abnormally: {message}"));
                                stop = Some(Stop::Failed);
                            }
                            Err(Abnormal { index: None, message }) => {
                                self.errors.push(ErrorRecord {
                                    step_id: "workflow".into(),
                                    error_type: "internal".into(),
                                    message: format!("a step task ended abnormally: {message}"),
                                });
                                stop = Some(Stop::Failed);
                            }
                        }
                    }
                }
            }
            if stop.is_some() {
                break;
            }
        }

        // Interrupt whatever is still running.
        let interrupted: Vec<usize> = (0..n).filter(|&i| self.state[i] == State::Running).collect();
        tasks.abort().await;
        if matches!(stop, Some(Stop::Drained)) {
            // What finished is journaled; what was interrupted runs again on resume.
            self.flush().await?;
            return Err(Halt::Drained);
        }
        // Children let go are cancelled; each journals its end before the parent goes on.
        self.settle_children(&interrupted).await;
        // An interrupted fan-out keeps what its finished shards did.
        for &i in &interrupted {
            self.collect_interrupted_shards(i);
        }
        let wf = self.wf.clone();
        let id = |i: usize| wf.nodes[i].id.clone();
        let mut run_errors = Vec::new();
        let status = match stop {
            Some(Stop::Store(message)) => return Err(Halt::Store(message)),
            Some(Stop::Drained) => return Err(Halt::Drained),
            Some(Stop::Cancelled) => {
                self.fail_interrupted(&interrupted, "cancelled", "interrupted: the run was cancelled");
                run_errors.push(ErrorRecord {
                    step_id: "workflow".into(),
                    error_type: "cancelled".into(),
                    message: "the run was cancelled".into(),
                });
                ExecutionStatus::Cancelled
            }
            Some(Stop::TimedOut) => {
                self.fail_interrupted(&interrupted, "timeout", "interrupted: the workflow's global timeout expired");
                run_errors.push(ErrorRecord {
                    step_id: "workflow".into(),
                    error_type: "timeout".into(),
                    message: format!("Workflow exceeded {}ms timeout", self.config.global_timeout_ms),
                });
                ExecutionStatus::Failed
            }
            Some(Stop::Failed) => {
                let reason = "interrupted: another step failed and the strategy stops the run";
                for &i in &interrupted {
                    // A fan-out with completed shards did part of its work: it
                    // failed (and is compensated), it was not skipped.
                    if self.fans[i].as_ref().is_some_and(|f| !f.done.is_empty()) {
                        self.fail_interrupted(&[i], "interrupted", reason);
                        continue;
                    }
                    self.record(JournalEntry::StepSkipped { step_id: id(i), reason: reason.into() });
                    self.emit(RunEvent::StepSkipped { step_id: id(i), reason: reason.into() });
                }
                ExecutionStatus::Failed
            }
            None if self.failed.is_empty() => ExecutionStatus::Completed,
            None => ExecutionStatus::Failed,
        };
        // Steps never reached are skipped.
        for i in 0..n {
            if self.state[i] == State::Pending {
                let reason = match status {
                    ExecutionStatus::Cancelled => "the run was cancelled",
                    _ => "the run stopped before this step",
                };
                self.record(JournalEntry::StepSkipped { step_id: id(i), reason: reason.into() });
                self.emit(RunEvent::StepSkipped { step_id: id(i), reason: reason.into() });
            }
        }
        self.record(JournalEntry::RunStopping {
            status,
            errors: run_errors,
            parallel_executions: self.parallel_executions,
        });
        self.flush().await?;
        Ok(status)
    }
}

/// The ready queue: steps by topological position.
type ReadyQueue = BinaryHeap<std::cmp::Reverse<(usize, usize)>>;

/// Node `i` is final: every dependent it was the last unfinished dependency of
/// becomes ready.
fn release(wf: &Workflow, i: usize, waiting: &mut [usize], ready: &mut ReadyQueue, topo_pos: &[usize]) {
    for &d in &wf.graph.dependents[i] {
        waiting[d] -= 1;
        if waiting[d] == 0 {
            ready.push(std::cmp::Reverse((topo_pos[d], d)));
        }
    }
}
