//! Data fan-out (`for_each`): a node's list is cut into shards of
//! `batch_size` items, and each shard is one execution of the step, in its
//! own sandbox, with its own retries and idempotency key.
//!
//! The node's journaled input is `{"items": [...], "with": {...}}`: the
//! whole list once, and the node's mapped input. Shard `k` of `n` gets
//! `{"items": [its items], "shard": k, "shards": n, "with": {...}}`. Each
//! shard attempt is journaled (`shard_started`, `shard_finished`) by its own
//! task, so a resume runs only the shards that did not complete, and an
//! effect's completed shards can each be compensated.
//!
//! At most `max_parallel_steps` shards run at once. The first shard that
//! fails for good stops new shards from starting, unless the run's strategy
//! is `continue_on_error` or the node has `continue_on_error: true`: then
//! every shard runs, and the node's output lists the failed ones.

use super::schedule::StepResult;
use super::{Run, SharedInput};
use crate::contract::EmittedAction;
use crate::engine::events::RunEvent;
use crate::store::JournalEntry;
use crate::workflow::FailureStrategy;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use tokio::task::JoinSet;

/// The shard results a running fan-out has gathered so far.
pub(super) type Finished = std::sync::Arc<std::sync::Mutex<Vec<StepResult>>>;

/// What the journal says of one `for_each` node's shards.
#[derive(Debug, Default, Clone)]
pub(super) struct FanState {
    /// Completed shards: their output and the actions they emitted.
    pub(super) done: BTreeMap<u32, (Value, Vec<EmittedAction>)>,
    /// Shards that failed for good: their failure kind and message.
    pub(super) failed: BTreeMap<u32, (String, String)>,
    /// The highest attempt journaled per shard.
    pub(super) attempts: HashMap<u32, u32>,
    /// Shards whose compensation began, and how often.
    pub(super) compensation_starts: HashMap<u32, u32>,
    /// Shards compensated (successfully or not).
    pub(super) compensated: std::collections::BTreeSet<u32>,
    /// A stream consumer's journaled micro-batches (its invocations are the
    /// parts above).
    pub(super) batches: BTreeMap<u32, Batch>,
}

/// One journaled micro-batch of a stream consumer.
#[derive(Debug, Clone, Default)]
pub(super) struct Batch {
    /// The position of its first item in the producer's stream.
    pub(super) first: u64,
    /// How many items it has.
    pub(super) len: u64,
    /// Its items, kept only while its invocation has not completed (from the
    /// journal, to deliver it again after a resume).
    pub(super) items: Option<Vec<Value>>,
}

impl Batch {
    /// The position just past its last item.
    pub(super) fn end(&self) -> u64 {
        self.first.saturating_add(self.len)
    }
}

/// The number of shards `items` items make in shards of `batch_size`.
pub(super) fn shard_count(items: usize, batch_size: u32) -> usize {
    items.div_ceil(batch_size.max(1) as usize)
}

/// The input of shard `k` of the fan-out whose journaled input is `input`.
pub(super) fn shard_input(input: &Map<String, Value>, batch_size: u32, k: usize) -> Map<String, Value> {
    let items = input.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let size = batch_size.max(1) as usize;
    let start = (k * size).min(items.len());
    let end = (start + size).min(items.len());
    let mut m = Map::new();
    m.insert("items".into(), Value::Array(items[start..end].to_vec()));
    m.insert("shard".into(), json!(k));
    m.insert("shards".into(), json!(shard_count(items.len(), batch_size)));
    m.insert("with".into(), input.get("with").cloned().unwrap_or(Value::Null));
    m
}

impl Run {
    /// The journaled input of `for_each` node `i`, from its list and its
    /// mapped input; `Err` when the list is not a list or is too long.
    pub(super) fn fan_out_input(
        &self,
        i: usize,
        items: Value,
        with: Map<String, Value>,
    ) -> Result<Map<String, Value>, String> {
        let Some(fan) = &self.wf.nodes[i].for_each else {
            return Err("internal error: a node without `for_each` was fanned out".into());
        };
        let items = match items {
            Value::Array(items) => items,
            other => {
                let kind = match other {
                    Value::Null => "null",
                    Value::Bool(_) => "a boolean",
                    Value::Number(_) => "a number",
                    Value::String(_) => "a string",
                    _ => "an object",
                };
                return Err(format!(
                    "`for_each` gave {kind}, not a list: `{}` must evaluate to a list of items",
                    fan.items.source()
                ));
            }
        };
        let limits = &self.fan_out_limits;
        if items.len() as u64 > limits.max_items {
            return Err(format!(
                "`for_each` gave {} items; a node fans out at most {} (`[fan_out] max_items` in the operator policy)",
                items.len(),
                limits.max_items
            ));
        }
        let shards = shard_count(items.len(), fan.batch_size);
        if shards as u64 > limits.max_shards {
            return Err(format!(
                "`for_each` gave {} items, {shards} shards of `batch_size: {}`; a node runs at most {} shards \
                 (`[fan_out] max_shards` in the operator policy): raise `batch_size`",
                items.len(),
                fan.batch_size,
                limits.max_shards
            ));
        }
        let mut m = Map::new();
        m.insert("items".into(), Value::Array(items));
        m.insert("with".into(), Value::Object(with));
        Ok(m)
    }

    /// What node `i`'s shards (or micro-batches) did so far, empty when nothing yet.
    pub(super) fn fan(&self, i: usize) -> &FanState {
        static NOTHING: std::sync::LazyLock<FanState> = std::sync::LazyLock::new(FanState::default);
        self.fans[i].as_ref().unwrap_or(&NOTHING)
    }

    /// How many shards `for_each` node `i` was cut into (0 before it was scheduled).
    fn shards_of(&self, i: usize) -> usize {
        let batch_size = self.wf.nodes[i].for_each.as_ref().map_or(1, |f| f.batch_size);
        let items = self.inputs[i].as_ref().and_then(|m| m.get("items")).and_then(Value::as_array).map_or(0, Vec::len);
        shard_count(items, batch_size)
    }

    /// Whether every shard of node `i` runs even after one failed.
    fn runs_every_shard(&self, i: usize) -> bool {
        self.wf.nodes[i].continue_on_error || self.config.failure_strategy == FailureStrategy::ContinueOnError
    }

    /// Runs the shards of `for_each` node `i` that the journal does not
    /// show as finished, at most `max_parallel_steps` at once.
    pub(super) fn fan_out_task(
        &mut self,
        i: usize,
        input: SharedInput,
        rounds: u32,
    ) -> impl Future<Output = StepResult> + Send + 'static {
        let node = &self.wf.nodes[i];
        let batch_size = node.for_each.as_ref().map_or(1, |f| f.batch_size);
        let n = shard_count(input.get("items").and_then(Value::as_array).map_or(0, Vec::len), batch_size);
        let fan = self.fan(i);
        let todo: Vec<(u32, u32)> = (0..n as u32)
            .filter(|k| !fan.done.contains_key(k) && !fan.failed.contains_key(k))
            .map(|k| (k, fan.attempts.get(&k).copied().unwrap_or(0).saturating_add(1)))
            .collect();
        let template = self.step_task_template(i, rounds);
        let run_all = self.runs_every_shard(i);
        let parallelism = self.config.shard_parallelism.max(1) as usize;
        let mut failed = !fan.failed.is_empty();
        // Finished shards land here as they finish, so that an interrupted
        // fan-out still knows them (to compensate them).
        let finished: Finished = Default::default();
        self.fan_finished[i] = Some(finished.clone());
        self.emit(RunEvent::FanOutStarted { step_id: node.id.clone(), shards: n as u32, remaining: todo.len() as u32 });
        async move {
            let mut set = JoinSet::new();
            let mut queue = todo.into_iter();
            let mut store_error = None;
            let mut abnormal = None;
            loop {
                while set.len() < parallelism && (run_all || !failed) && store_error.is_none() {
                    let Some((k, attempt)) = queue.next() else { break };
                    let task = template.for_part("shard", k, attempt);
                    let shard_input = std::sync::Arc::new(shard_input(&input, batch_size, k as usize));
                    set.spawn(task.run(shard_input, attempt));
                }
                let Some(joined) = set.join_next().await else { break };
                match joined {
                    Ok(result) => {
                        if let Some(e) = &result.store_error {
                            store_error.get_or_insert_with(|| e.clone());
                        }
                        failed |= result.attempts.last().is_none_or(|r| r.failure().is_some());
                        if let Ok(mut done) = finished.lock() {
                            done.push(result);
                        }
                    }
                    Err(e) => {
                        failed = true;
                        abnormal.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            let shards = finished.lock().map(|mut done| std::mem::take(&mut *done)).unwrap_or_default();
            StepResult { store_error, shards, abnormal, ..StepResult::empty(i) }
        }
    }

    /// Applies the shards that an interrupted fan-out of node `i` finished
    /// before it was interrupted.
    pub(super) fn collect_interrupted_shards(&mut self, i: usize) {
        let Some(finished) = self.fan_finished[i].take() else { return };
        let shards = finished.lock().map(|mut done| std::mem::take(&mut *done)).unwrap_or_default();
        self.apply_parts(i, shards);
    }

    /// Records the end of `for_each` node `i` from its shards' results (each
    /// already journaled by its task). Returns true when the run must stop.
    pub(super) fn finish_fan_out(&mut self, result: StepResult) -> bool {
        let i = result.index;
        self.fan_finished[i] = None;
        self.apply_parts(i, result.shards);
        let n = self.shards_of(i) as u32;
        let fan = self.fans[i].get_or_insert_with(FanState::default);
        let results: Vec<Value> =
            (0..n).map(|k| fan.done.get(&k).map_or(Value::Null, |(out, _)| out.clone())).collect();
        if fan.done.len() as u32 == n && result.abnormal.is_none() {
            let emitted: Vec<EmittedAction> = fan.done.values().flat_map(|(_, a)| a.iter().cloned()).collect();
            return self.complete_step(i, json!({ "results": results }), &emitted);
        }
        let failed_shards: Vec<Value> = fan
            .failed
            .iter()
            .map(|(k, (error_type, message))| json!({ "shard": k, "error_type": error_type, "message": message }))
            .collect();
        let not_run = (n as usize).saturating_sub(fan.done.len() + fan.failed.len());
        let (error_type, mut message) = match (fan.failed.iter().next(), &result.abnormal) {
            (Some((k, (error_type, message))), _) => {
                (error_type.clone(), format!("shard {k} of {n} failed ({error_type}): {message}"))
            }
            (None, Some(abnormal)) => ("internal".to_string(), format!("a shard task ended abnormally: {abnormal}")),
            (None, None) => ("internal".to_string(), "the fan-out ended with shards unfinished".to_string()),
        };
        if fan.failed.len() > 1 {
            message.push_str(&format!("; {} shards failed in all", fan.failed.len()));
        }
        if not_run > 0 {
            message.push_str(&format!("; {not_run} shard(s) did not run"));
        }
        let output = json!({ "results": results, "failed_shards": failed_shards });
        self.fail_step_with(i, &error_type, message, Some(output))
    }

    /// Applies what the part tasks of node `i` (shards, or micro-batch
    /// invocations) did, each already journaled by its task.
    pub(super) fn apply_parts(&mut self, i: usize, parts: Vec<StepResult>) {
        let step_id = self.wf.nodes[i].id.clone();
        for part in parts {
            let Some(k) = part.shard else { continue };
            let count = part.attempts.len();
            for (j, report) in part.attempts.into_iter().enumerate() {
                let attempt = part.first_attempt.saturating_add(j as u32);
                let last = j + 1 == count;
                self.apply(&JournalEntry::ShardFinished { step_id: step_id.clone(), shard: k, attempt, report, last });
            }
        }
    }

    /// Applies one shard entry of the journal to node `i`'s fan-out state.
    pub(super) fn apply_shard(&mut self, i: usize, e: &JournalEntry) {
        let fan = self.fans[i].get_or_insert_with(FanState::default);
        match e {
            JournalEntry::ShardStarted { shard, attempt, .. } => {
                let a = fan.attempts.entry(*shard).or_default();
                *a = (*a).max(*attempt);
            }
            JournalEntry::ShardFinished { shard, attempt, report, last, .. } => {
                let a = fan.attempts.entry(*shard).or_default();
                *a = (*a).max(*attempt);
                match &report.outcome {
                    Ok(success) => {
                        fan.failed.remove(shard);
                        fan.done.insert(*shard, (success.output.clone(), success.actions.clone()));
                        // A delivered micro-batch's items are not needed any more.
                        if let Some(b) = fan.batches.get_mut(shard) {
                            b.items = None;
                        }
                    }
                    Err(f) if *last => {
                        fan.failed.insert(*shard, (f.kind().as_str().to_string(), f.to_string()));
                    }
                    Err(_) => {}
                }
                self.totals[i].add(report);
            }
            JournalEntry::StreamBatch { batch, first_item, items, .. } => {
                let batch_entry = Batch { first: *first_item, len: items.len() as u64, items: Some(items.clone()) };
                fan.batches.insert(*batch, batch_entry);
            }
            _ => {}
        }
    }

    /// Per `for_each` node, its shard counts for the output's `metrics`.
    pub(super) fn shard_metrics(&self) -> Vec<(String, f64)> {
        let mut m = Vec::new();
        for (i, node) in self.wf.nodes.iter().enumerate() {
            if node.for_each.is_none() || self.inputs[i].is_none() {
                continue;
            }
            let (n, fan) = (self.shards_of(i), self.fan(i));
            let key = |name: &str| ["step.", &node.id, ".", name].concat();
            m.push((key("shards"), n as f64));
            m.push((key("shards_completed"), fan.done.len() as f64));
            m.push((key("shards_failed"), fan.failed.len() as f64));
        }
        m
    }
}
