//! Streaming mode: a producer's emitted items flow to its consumers while it
//! still runs.
//!
//! A producer and its `stream_from` consumers start together, as one group.
//! The producer's `weft:step/stream.emit` goes to a [`Fanout`]: one bounded
//! buffer per consumer (`stream_buffer` items), so `emit` waits while the
//! slowest consumer's buffer is full. Each consumer takes what has arrived,
//! up to its `batch_size`, as one micro-batch; journals it
//! (`stream_batch`); and only then invokes its step on
//! `{"items": [...], "state": <its previous output or null>}` (plus
//! `"with"`, its mapped `input`, when it has one). The invocation's output
//! is its new state, and its state when the producer ends is its output.
//!
//! Every micro-batch invocation has its own retries and idempotency key
//! (journaled as `shard_*` entries, the batch number as the shard). On a
//! resume, or a retry of the producer, the producer runs from its start and
//! the fanout skips, per consumer, the items already forwarded to it, by
//! position; micro-batches journaled but not completed are delivered again
//! first, and no item reaches a completed invocation twice.
//!
//! A producer that fails ends its consumers: each folds what it was given,
//! then fails as `stream` with its last state as its output; the run's
//! strategy decides what follows. A consumer that fails stops taking items;
//! the producer goes on for the others.

use super::attempts::StepTask;
use super::fan_out::Batch;
use super::schedule::StepResult;
use super::state::State;
use super::{Run, SharedInput};
use crate::contract::{EmittedAction, StreamFuture, StreamSink};
use crate::sandbox::Grants;
use crate::store::JournalEntry;
use crate::workflow::InputMapping;
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Most bytes of items (as JSON text) that may wait for one consumer,
/// whatever its `stream_buffer` in items.
pub const BUFFER_BYTES: usize = 16 << 20;

/// A micro-batch stops growing once its items reach this many bytes.
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// An item on its way to a consumer: when it was emitted, and its size.
type Sent = (Instant, Value, usize);

/// One consumer's end of the fanout.
struct Out {
    tx: Mutex<Option<mpsc::Sender<Sent>>>,
    /// Bytes the buffer may still take; closed when the consumer stops.
    room: Arc<tokio::sync::Semaphore>,
    /// Items forwarded to it so far, over every producer attempt (and,
    /// after a resume, the ones journaled before).
    sent: AtomicU64,
    /// The most items that were ever waiting in its buffer.
    peak: AtomicU64,
}

/// Where a producer's items go: one bounded buffer per consumer.
pub(super) struct Fanout {
    outs: Vec<Out>,
    /// The position of the next item in the producer's current attempt.
    position: AtomicU64,
    /// The most items one attempt emitted.
    emitted: AtomicU64,
    closed: AtomicBool,
}

impl Fanout {
    /// A producer attempt begins: its items count from 0 again.
    pub(super) fn begin_attempt(&self) {
        self.position.store(0, Ordering::SeqCst);
    }

    /// The producer ended: every buffer closes once drained.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for out in &self.outs {
            if let Ok(mut tx) = out.tx.lock() {
                *tx = None;
            }
        }
    }
}

impl StreamSink for Fanout {
    fn emit(&self, item: Value, bytes: usize) -> StreamFuture<'_> {
        Box::pin(async move {
            if self.closed.load(Ordering::SeqCst) {
                return Err("the stream is closed: its producer's run is stopping".into());
            }
            let index = self.position.fetch_add(1, Ordering::SeqCst);
            self.emitted.fetch_max(index + 1, Ordering::SeqCst);
            for out in &self.outs {
                // Forwarded already, by an earlier attempt or before a resume.
                if index < out.sent.load(Ordering::SeqCst) {
                    continue;
                }
                let tx = out.tx.lock().ok().and_then(|tx| tx.clone());
                let Some(tx) = tx else { continue };
                // Bounded in bytes as well as in items.
                let bytes = bytes.min(BUFFER_BYTES);
                let Ok(permit) = out.room.acquire_many(bytes as u32).await else {
                    if let Ok(mut tx) = out.tx.lock() {
                        *tx = None;
                    }
                    continue;
                };
                permit.forget();
                if tx.send((Instant::now(), item.clone(), bytes)).await.is_err() {
                    // The consumer stopped (it failed): the others go on.
                    if let Ok(mut tx) = out.tx.lock() {
                        *tx = None;
                    }
                    continue;
                }
                out.sent.fetch_add(1, Ordering::SeqCst);
                let waiting = tx.max_capacity().saturating_sub(tx.capacity()) as u64;
                out.peak.fetch_max(waiting, Ordering::SeqCst);
            }
            Ok(())
        })
    }
}

/// What a consumer's part of a group reports besides its invocations.
#[derive(Debug, Default)]
pub(super) struct StreamEnd {
    /// The micro-batches it journaled: (batch, first item, item count).
    pub(super) batches: Vec<(u32, u64, u64)>,
    /// The most items that waited in its buffer.
    pub(super) peak_buffered: u64,
    /// Emit-to-delivery latencies, in a log-scale histogram.
    pub(super) latency: Latency,
}

/// A log-scale histogram of latencies in microseconds: bucket `b` holds
/// values below `2^(b/4)`, so a percentile is exact to within 19 %.
#[derive(Debug, Clone, Default)]
pub(super) struct Latency {
    buckets: Vec<u64>,
    count: u64,
}

impl Latency {
    fn record(&mut self, micros: u64) {
        let b = if micros == 0 { 0 } else { ((micros as f64).log2() * 4.0).floor() as usize + 1 };
        if self.buckets.len() <= b {
            self.buckets.resize(b + 1, 0);
        }
        self.buckets[b] += 1;
        self.count += 1;
    }

    /// Adds `other`'s counts.
    pub(super) fn merge(&mut self, other: &Latency) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (b, n) in other.buckets.iter().enumerate() {
            self.buckets[b] += n;
        }
        self.count += other.count;
    }

    /// The `q` quantile (0..1) in milliseconds: the upper edge of its bucket.
    pub(super) fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let target = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target {
                let upper_us = if b == 0 { 1.0 } else { 2f64.powf(b as f64 / 4.0) };
                return Some(upper_us / 1000.0);
            }
        }
        None
    }
}

/// What the live run keeps of a consumer's stream (not journaled: after a
/// resume, it covers the resumed part).
#[derive(Debug, Default, Clone)]
pub(super) struct StreamStats {
    pub(super) peak_buffered: u64,
    pub(super) latency: Latency,
}

/// One consumer's part of a group, owned, so that it runs apart from the run.
struct Consumer {
    template: StepTask,
    rx: mpsc::Receiver<Sent>,
    /// Its buffer's room in bytes, given back as items are taken.
    room: Arc<tokio::sync::Semaphore>,
    state: Value,
    with: Option<Value>,
    /// Micro-batches journaled before a resume and not completed.
    pending: VecDeque<(u32, u64, Vec<Value>)>,
    /// Their next attempt numbers.
    next_attempt: std::collections::HashMap<u32, u32>,
    next_batch: u32,
    next_item: u64,
    max_batch: usize,
    /// A micro-batch had already failed for good: take nothing more.
    stopped: bool,
}

impl Consumer {
    async fn run(mut self) -> StepResult {
        let mut end = StreamEnd::default();
        let mut invocations = Vec::new();
        let mut store_error = None;
        while !self.stopped {
            let (batch, _, items) = match self.pending.pop_front() {
                Some(b) => b,
                None => {
                    let Some((at, item, bytes)) = self.rx.recv().await else { break };
                    self.room.add_permits(bytes);
                    end.latency.record(at.elapsed().as_micros() as u64);
                    let mut items = vec![item];
                    let mut batch_bytes = bytes;
                    while items.len() < self.max_batch && batch_bytes < MAX_BATCH_BYTES {
                        match self.rx.try_recv() {
                            Ok((at, item, bytes)) => {
                                self.room.add_permits(bytes);
                                batch_bytes += bytes;
                                end.latency.record(at.elapsed().as_micros() as u64);
                                items.push(item);
                            }
                            Err(_) => break,
                        }
                    }
                    let b = (self.next_batch, self.next_item, items);
                    self.next_batch += 1;
                    self.next_item += b.2.len() as u64;
                    // Journaled before it is delivered.
                    let entry = JournalEntry::StreamBatch {
                        step_id: self.template.step_id().to_string(),
                        batch: b.0,
                        first_item: b.1,
                        items: b.2.clone(),
                    };
                    if let Err(e) = self.template.journal(entry).await {
                        store_error = Some(e);
                        break;
                    }
                    end.batches.push((b.0, b.1, b.2.len() as u64));
                    b
                }
            };
            let mut input = Map::new();
            input.insert("items".into(), Value::Array(items));
            input.insert("state".into(), self.state.clone());
            if let Some(with) = &self.with {
                input.insert("with".into(), with.clone());
            }
            let attempt = self.next_attempt.get(&batch).copied().unwrap_or(1);
            let result = self.template.for_part("batch", batch, attempt).run(Arc::new(input), attempt).await;
            let outcome: Option<Result<Value, ()>> =
                result.attempts.last().map(|r| r.outcome.as_ref().map(|s| s.output.clone()).map_err(|_| ()));
            let stop = result.store_error.is_some();
            store_error = store_error.or(result.store_error.clone());
            invocations.push(result);
            match outcome {
                Some(Ok(state)) if !stop => self.state = state,
                // A failed micro-batch stops the consumer; dropping its buffer
                // tells the producer.
                _ => break,
            }
        }
        // A producer waiting for room in this buffer must not wait forever.
        self.room.close();
        StepResult { store_error, shards: invocations, stream: Some(end), ..StepResult::empty(self.template.index()) }
    }
}

impl Run {
    /// Per node, the `stream_from` consumers that name it, in file order.
    pub(super) fn consumers_by_producer(wf: &crate::workflow::Workflow) -> Vec<Vec<usize>> {
        let mut by = vec![Vec::new(); wf.nodes.len()];
        for (c, node) in wf.nodes.iter().enumerate() {
            if let Some(s) = &node.stream_from
                && let Some(&p) = wf.graph.index.get(&s.producer)
            {
                by[p].push(c);
            }
        }
        by
    }

    /// Per producer with consumers, its id and theirs (for a replay).
    pub(in crate::engine) fn stream_groups(&self) -> Vec<(String, Vec<String>)> {
        let id = |i: usize| self.wf.nodes[i].id.clone();
        let groups = self.consumers_of.iter().enumerate().filter(|(_, cs)| !cs.is_empty());
        groups.map(|(p, cs)| (id(p), cs.iter().map(|&c| id(c)).collect())).collect()
    }

    /// The journaled input of consumer `c` when its group starts: `with`,
    /// its mapped input, when it has an explicit `input`.
    pub(super) fn consumer_input(&self, c: usize) -> Result<Map<String, Value>, String> {
        let node = &self.wf.nodes[c];
        let mut m = Map::new();
        if !matches!(node.input, InputMapping::Default) {
            let bound = node.uses.as_ref().map(|uses| self.bind(c, uses));
            m.insert("with".into(), Value::Object(self.input_for(c, bound.as_ref())?));
        }
        Ok(m)
    }

    /// Producer `p` (attempt `attempt`, input `input`) and its consumers
    /// `consumers` (scheduled), run as one group.
    pub(super) fn stream_group_task(
        &self,
        p: usize,
        input: SharedInput,
        rounds: u32,
        attempt: u32,
        consumers: Vec<usize>,
    ) -> impl std::future::Future<Output = StepResult> + Send + 'static {
        let mut outs = Vec::new();
        let mut parts = Vec::new();
        for &c in &consumers {
            let Some(stream) = &self.wf.nodes[c].stream_from else { continue };
            let (tx, rx) = mpsc::channel(stream.buffer.max(1) as usize);
            let fan = self.fan(c);
            let journaled: u64 = fan.batches.values().map(Batch::end).max().unwrap_or(0);
            let pending: VecDeque<(u32, u64, Vec<Value>)> = fan
                .batches
                .iter()
                .filter(|(b, _)| !fan.done.contains_key(b) && !fan.failed.contains_key(b))
                .filter_map(|(b, batch)| Some((*b, batch.first, batch.items.clone()?)))
                .collect();
            let next_attempt = fan
                .attempts
                .iter()
                .map(|(b, a)| (*b, a.saturating_add(1)))
                .collect::<std::collections::HashMap<_, _>>();
            let state = fan.done.iter().next_back().map_or(Value::Null, |(_, (out, _))| out.clone());
            let room = Arc::new(tokio::sync::Semaphore::new(BUFFER_BYTES));
            outs.push(Out {
                tx: Mutex::new(Some(tx)),
                room: room.clone(),
                sent: AtomicU64::new(journaled),
                peak: AtomicU64::new(0),
            });
            parts.push(Consumer {
                template: self.step_task_template(c, rounds),
                rx,
                room,
                state,
                with: self.inputs[c].as_ref().and_then(|m| m.get("with").cloned()),
                pending,
                next_attempt,
                next_batch: fan.batches.keys().next_back().map_or(0, |b| b.saturating_add(1)),
                next_item: journaled,
                max_batch: stream.batch_size.max(1) as usize,
                stopped: !fan.failed.is_empty(),
            });
        }
        let fanout = Arc::new(Fanout {
            outs,
            position: AtomicU64::new(0),
            emitted: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let mut producer = self.step_task_template(p, rounds);
        producer.max_attempts = producer.max_attempts.max(attempt);
        producer.first_ctx = self.ctx(&self.wf.nodes[p], attempt);
        let granted = Grants { stream: Some(fanout.clone()), ..(*self.grants[p]).clone() };
        producer.granted = Arc::new(granted);
        producer.stream = Some(fanout.clone());
        async move {
            let mut set = JoinSet::new();
            let closing = fanout.clone();
            set.spawn(async move {
                let r = producer.run(input, attempt).await;
                closing.close();
                r
            });
            // Which consumer each task runs, to report one that panicked.
            let mut tasks = std::collections::HashMap::new();
            for (k, part) in parts.into_iter().enumerate() {
                tasks.insert(set.spawn(part.run()).id(), k);
            }
            let mut producer_result = None;
            let mut by_consumer: Vec<Option<StepResult>> = consumers.iter().map(|_| None).collect();
            let mut abnormal = None;
            while let Some(joined) = set.join_next_with_id().await {
                match joined {
                    Ok((id, r)) => match tasks.get(&id) {
                        Some(&k) => by_consumer[k] = Some(r),
                        None => producer_result = Some(r),
                    },
                    Err(e) => {
                        // A task that panicked: stop the producer, or the others wait for it.
                        fanout.close();
                        let message = e.to_string();
                        match tasks.get(&e.id()) {
                            Some(&k) => {
                                by_consumer[k] =
                                    Some(StepResult { abnormal: Some(message), ..StepResult::empty(consumers[k]) })
                            }
                            None => abnormal = Some(message),
                        }
                    }
                }
            }
            let mut consumer_results: Vec<StepResult> = Vec::new();
            for ((k, r), out) in by_consumer.into_iter().enumerate().zip(fanout.outs.iter()) {
                let mut r = r.unwrap_or_else(|| StepResult::empty(consumers[k]));
                let end = r.stream.get_or_insert_with(StreamEnd::default);
                end.peak_buffered = out.peak.load(Ordering::SeqCst);
                consumer_results.push(r);
            }
            let mut result = producer_result.unwrap_or_else(|| StepResult::empty(p));
            result.abnormal = result.abnormal.or(abnormal);
            result.store_error =
                result.store_error.or_else(|| consumer_results.iter().find_map(|r| r.store_error.clone()));
            result.consumers = consumer_results;
            result
        }
    }

    /// Records the end of consumer `c` of producer `p`. Returns true when the
    /// run must stop.
    pub(super) fn finish_consumer(&mut self, result: StepResult, p: usize) -> bool {
        let c = result.index;
        if let Some(end) = &result.stream {
            // Journaled by the consumer's task; the live state keeps their
            // positions, not their items.
            let fan = self.fans[c].get_or_insert_with(Default::default);
            for &(batch, first, len) in &end.batches {
                fan.batches.insert(batch, Batch { first, len, items: None });
            }
            let stats = self.stream_stats[c].get_or_insert_with(StreamStats::default);
            stats.peak_buffered = stats.peak_buffered.max(end.peak_buffered);
            stats.latency.merge(&end.latency);
        }
        self.apply_parts(c, result.shards);
        let fan = self.fan(c);
        let state = fan.done.iter().next_back().map_or(Value::Null, |(_, (out, _))| out.clone());
        let items: u64 = fan.batches.values().map(|b| b.len).sum();
        let failed = fan.failed.iter().next().map(|(b, (t, m))| (*b, t.clone(), m.clone()));
        let emitted: Vec<EmittedAction> = fan.done.values().flat_map(|(_, a)| a.iter().cloned()).collect();
        if let Some((b, error_type, message)) = failed {
            let message = format!("micro-batch {b} failed ({error_type}): {message}");
            return self.fail_step_with(c, &error_type, message, Some(state));
        }
        if let Some(message) = result.abnormal {
            return self.fail_step_with(
                c,
                "internal",
                format!("the consumer's task ended abnormally: {message}"),
                Some(state),
            );
        }
        if matches!(self.state[p], State::Failed | State::Tolerated) {
            let message = format!(
                "its producer `{}` failed; {items} item(s) were folded before the stream ended, and the last state \
                 is this step's output",
                self.wf.nodes[p].id
            );
            return self.fail_step_with(c, "stream", message, Some(state));
        }
        if self.state[p] != State::Completed {
            let message = format!("its producer `{}` did not complete", self.wf.nodes[p].id);
            return self.fail_step_with(c, "stream", message, Some(state));
        }
        self.complete_step(c, state, &emitted)
    }

    /// Per consumer, its stream counts for the output's `metrics`.
    pub(super) fn stream_metrics(&self) -> Vec<(String, f64)> {
        let mut m = Vec::new();
        for (c, node) in self.wf.nodes.iter().enumerate() {
            if node.stream_from.is_none() {
                continue;
            }
            let fan = self.fan(c);
            let key = |name: &str| ["step.", &node.id, ".", name].concat();
            let items: u64 = fan.batches.values().map(|b| b.len).sum();
            m.push((key("stream_items"), items as f64));
            m.push((key("stream_batches"), fan.batches.len() as f64));
            if let Some(stats) = &self.stream_stats[c] {
                m.push((key("stream_peak_buffered"), stats.peak_buffered as f64));
                if let Some(p99) = stats.latency.quantile_ms(0.99) {
                    m.push((key("stream_latency_p99_ms"), p99));
                }
                if let Some(p50) = stats.latency.quantile_ms(0.5) {
                    m.push((key("stream_latency_p50_ms"), p50));
                }
            }
        }
        m
    }
}
