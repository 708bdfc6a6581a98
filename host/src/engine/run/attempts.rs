//! The attempts of one step: the retry loop, the backoff between attempts
//! (exponential, with jitter that a seed makes reproducible), and the
//! circuit breaker's gate in front of each attempt.
//!
//! A step task runs on its own (spawned, or polled in place in sequential
//! modes): it journals each retry's `attempt_finished` and the next
//! `attempt_started` itself, and reports every attempt back to the
//! scheduler, which records the last one (`finish.rs`).

use super::schedule::StepResult;
use super::{Run, SharedInput};
use crate::contract::{AttemptReport, StepFailure, StepSuccess};
use crate::engine::breaker::{self, BreakerPolicy, Gate};
use crate::engine::events::{EventSender, RunEvent};
use crate::engine::executor::StepExecutor;
use crate::engine::memo::memo_key;
use crate::sandbox::{CallKind, Grants, Limits, StepCall, StepContext};
use crate::store::{JournalEntry, MemoEntry, RunStore};
use crate::workflow::{NodeSpec, RetryPolicy, Workflow};
use rand::{RngExt, SeedableRng};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

impl Run {
    /// Node `i`'s retry policy.
    pub(super) fn policy(&self, i: usize) -> Arc<RetryPolicy> {
        self.policies[i].clone()
    }

    /// The limits of one attempt of `node`: the run's defaults, overridden
    /// by the node's `timeout_ms`, `fuel` and `memory_mb`, under the run's
    /// ceiling (a tenant's quota).
    pub(super) fn limits(&self, node: &NodeSpec) -> Limits {
        let mut l = self.opts.limits.clone();
        let tuned =
            self.wf.graph.index.get(&node.id).and_then(|&i| self.config.tuning.get(i)).and_then(|t| t.timeout_ms);
        let timeout = tuned.or(node.timeout_ms).unwrap_or(self.config.settings.step_timeout_ms);
        l.timeout = Duration::from_millis(timeout);
        if let Some(f) = node.fuel {
            l.fuel = f;
        }
        if let Some(m) = node.memory_mb {
            l.memory_bytes = m << 20;
        }
        match &self.opts.ceiling {
            Some(c) => c.apply(l),
            None => l,
        }
    }

    /// The identity attempt `attempt` of `node` is called with.
    pub(super) fn ctx(&self, node: &NodeSpec, attempt: u32) -> StepContext {
        StepContext {
            idempotency_key: format!("{}/{}", self.opts.keys_of.as_deref().unwrap_or(&self.ids.run_id), node.id),
            run_id: self.ids.run_id.clone(),
            workflow: self.wf.name.clone(),
            step_id: node.id.clone(),
            attempt,
            correlation_id: self.ids.correlation_id.clone(),
            tenant: self.ids.tenant.clone(),
            seed_key: None,
        }
    }

    /// The circuit breaker's thresholds, when the workflow enables it.
    fn breaker(&self) -> Option<BreakerPolicy> {
        self.wf.rules.circuit_breaker_enabled.then_some(BreakerPolicy {
            failure_threshold: self.wf.rules.circuit_breaker_failure_threshold,
            cooldown_ms: self.wf.rules.circuit_breaker_cooldown_ms,
        })
    }

    /// Runs step `i` to its end: attempts, retries, backoff. Attempt
    /// `first_attempt` is already journaled as started; later ones are
    /// journaled here before they run. `rounds` multiplies the policy's
    /// attempts (the `retry` failure strategy).
    pub(super) fn step_task(
        &self,
        i: usize,
        input: SharedInput,
        rounds: u32,
        first_attempt: u32,
    ) -> impl Future<Output = StepResult> + Send + 'static {
        let node = &self.wf.nodes[i];
        let mut task = self.step_task_template(i, rounds);
        task.max_attempts = task.max_attempts.max(first_attempt);
        task.first_ctx = self.ctx(node, first_attempt);
        if self.memoized_here(i) {
            let component = self.pins[i].clone().unwrap_or_else(|| node.component.display().to_string());
            let key = memo_key(&self.ids.tenant, &component, &input, &task.limits);
            task.first_ctx.seed_key = Some(key.clone());
            task.memo = Some(key);
            task.own_first_start = true;
        }
        task.run(input, first_attempt)
    }

    /// What every attempt of step `i` (or of one of its shards) shares.
    pub(super) fn step_task_template(&self, i: usize, rounds: u32) -> StepTask {
        let policy = self.policy(i);
        let node = &self.wf.nodes[i];
        StepTask {
            wf: self.wf.clone(),
            index: i,
            shard: None,
            pinned: self.pins[i].clone(),
            granted: self.grants[i].clone(),
            limits: self.limits(node),
            executor: self.executor.clone(),
            events: self.events.clone(),
            max_attempts: policy.max_attempts.saturating_mul(rounds.max(1)),
            first_ctx: self.ctx(node, 1),
            backoff: Backoff::new(policy.clone(), self.opts.jitter_seed, &node.id),
            policy,
            store: self.store.clone(),
            lease: self.lease.clone(),
            breaker: self.breaker(),
            memo: None,
            memo_max_bytes: self.memo_max_bytes,
            own_first_start: false,
            stream: None,
            observer: self.engine.observer.clone(),
            tenant: self.ids.tenant.clone(),
            traceparent: self.opts.traceparent.clone(),
        }
    }
}

/// Everything one step's attempts need, owned, so that the task can run
/// apart from the run.
#[derive(Clone)]
pub(super) struct StepTask {
    wf: Arc<Workflow>,
    index: usize,
    /// The part it runs: a shard of a `for_each` node, or a micro-batch of a
    /// stream consumer (journaled as `shard_*` entries).
    shard: Option<u32>,
    pinned: Option<String>,
    pub(super) granted: Arc<Grants>,
    limits: Limits,
    executor: Arc<dyn StepExecutor>,
    events: EventSender,
    pub(super) max_attempts: u32,
    pub(super) first_ctx: StepContext,
    policy: Arc<RetryPolicy>,
    backoff: Backoff,
    store: Arc<dyn RunStore>,
    lease: Arc<crate::store::Lease>,
    breaker: Option<BreakerPolicy>,
    /// A memoized step's memo key.
    memo: Option<String>,
    /// The memo cache's size cap.
    memo_max_bytes: u64,
    /// The task journals its first attempt's start (shards, memoized steps).
    own_first_start: bool,
    /// A stream producer's fanout: its item positions restart with each attempt.
    pub(super) stream: Option<Arc<super::streaming::Fanout>>,
    /// The engine's observer, told about every attempt's end.
    observer: Arc<dyn crate::engine::RunObserver>,
    /// The run's tenant, for the observer.
    tenant: String,
    /// The run's trace context, for the observer.
    traceparent: Option<String>,
}

impl StepTask {
    /// The same task for part `k` (a `label`: `shard` of a `for_each` node,
    /// or `batch` of a stream consumer), from attempt `first_attempt`: its
    /// own idempotency key, and its own backoff seed.
    pub(super) fn for_part(&self, label: &str, k: u32, first_attempt: u32) -> StepTask {
        let mut t = self.clone();
        t.shard = Some(k);
        t.own_first_start = true;
        t.max_attempts = t.max_attempts.max(first_attempt);
        t.first_ctx.idempotency_key = format!("{}/{label}-{k}", self.first_ctx.idempotency_key);
        let node_id = &self.wf.nodes[self.index].id;
        t.backoff = Backoff::new(self.policy.clone(), self.backoff.seed_base, &format!("{node_id}/{k}"));
        t
    }

    /// The node it runs.
    pub(super) fn index(&self) -> usize {
        self.index
    }

    /// The id of the node it runs.
    pub(super) fn step_id(&self) -> &str {
        &self.wf.nodes[self.index].id
    }

    /// The journal entry that an attempt starts.
    fn started(&self, step_id: &str, attempt: u32) -> JournalEntry {
        let step_id = step_id.to_string();
        match self.shard {
            Some(shard) => JournalEntry::ShardStarted { step_id, shard, attempt },
            None => JournalEntry::AttemptStarted { step_id, attempt },
        }
    }

    /// The journal entry that an attempt ended (`last`: none follows).
    fn finished(&self, step_id: &str, attempt: u32, report: AttemptReport, last: bool) -> JournalEntry {
        let step_id = step_id.to_string();
        match self.shard {
            Some(shard) => JournalEntry::ShardFinished { step_id, shard, attempt, report, last },
            None => JournalEntry::AttemptFinished { step_id, attempt, report },
        }
    }

    pub(super) async fn run(mut self, input: SharedInput, first_attempt: u32) -> StepResult {
        let (wf, i) = (self.wf.clone(), self.index);
        let node = &wf.nodes[i];
        if let Some(hit) = self.memo_hit().await {
            return StepResult { memo_hit: self.memo.clone(), ..self.result(first_attempt, vec![hit], None) };
        }
        let mut attempts = Vec::new();
        let mut store_error = None;
        for attempt in first_attempt..=self.max_attempts {
            // A step's first attempt is journaled by the scheduler, unless its task does it.
            if (attempt > first_attempt || self.own_first_start)
                && let Err(e) = self.journal(self.started(&node.id, attempt)).await
            {
                store_error = Some(e);
                break;
            }
            if self.shard.is_none() {
                self.events.send(RunEvent::AttemptStarted { step_id: node.id.clone(), attempt });
            }
            if let Some(fanout) = &self.stream {
                fanout.begin_attempt();
            }
            let ctx = StepContext { attempt, ..self.first_ctx.clone() };
            let call = StepCall { ctx, input: (*input).clone(), kind: CallKind::Run };
            let report = match self.gated_attempt(node, call).await {
                Ok(report) => report,
                Err(e) => {
                    store_error = Some(e);
                    break;
                }
            };
            self.observer.attempt_finished(self.observed(), &node.id, attempt, &report);
            let retry = report.failure().is_some_and(|f| {
                attempt < self.max_attempts && f.is_retryable() && self.policy.retry_on.contains(&f.kind())
            });
            if !retry {
                // A shard's last attempt is journaled here too: no scheduler records it.
                if self.shard.is_some()
                    && let Err(e) = self.journal(self.finished(&node.id, attempt, report.clone(), true)).await
                {
                    store_error = Some(e);
                }
                attempts.push(report);
                break;
            }
            let delay = self.backoff.delay_ms(attempt);
            let error_type = report.failure().map(|f| f.kind().as_str()).unwrap_or_default().to_string();
            if self.shard.is_none() {
                self.events.send(RunEvent::Retrying { step_id: node.id.clone(), attempt, error_type, delay_ms: delay });
            }
            if let Err(e) = self.journal(self.finished(&node.id, attempt, report.clone(), false)).await {
                store_error = Some(e);
                break;
            }
            attempts.push(report);
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if let (Some(key), Some(Ok(success))) = (&self.memo, attempts.last().map(|r: &AttemptReport| &r.outcome)) {
            let entry = MemoEntry { output: success.output.clone(), actions: success.actions.clone() };
            if let Err(e) = self.store.memo_put(key, &entry, self.memo_max_bytes).await {
                tracing::warn!(step_id = %node.id, error = %e, "the memo cache could not be written");
            }
        }
        self.result(first_attempt, attempts, store_error)
    }

    /// What the task reports back.
    fn result(&self, first_attempt: u32, attempts: Vec<AttemptReport>, store_error: Option<String>) -> StepResult {
        StepResult { first_attempt, attempts, store_error, shard: self.shard, ..StepResult::empty(self.index) }
    }

    /// A memoized step's cached result, as the report of an attempt that did not run.
    async fn memo_hit(&self) -> Option<AttemptReport> {
        let key = self.memo.as_deref()?;
        match self.store.memo_get(key).await {
            Ok(Some(entry)) => Some(AttemptReport {
                outcome: Ok(StepSuccess { output: entry.output, actions: entry.actions }),
                stats: Default::default(),
                logs: Vec::new(),
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(key, error = %e, "the memo cache could not be read; the step runs");
                None
            }
        }
    }

    /// The run, as the observer sees it.
    fn observed(&self) -> crate::engine::ObservedRun<'_> {
        crate::engine::ObservedRun {
            run_id: &self.first_ctx.run_id,
            workflow: &self.wf.name,
            tenant: &self.tenant,
            traceparent: self.traceparent.as_deref(),
        }
    }

    /// Appends one entry to the run's journal.
    pub(super) async fn journal(&self, entry: JournalEntry) -> Result<(), String> {
        let steps = crate::engine::StepMark::of(std::slice::from_ref(&entry));
        let start = std::time::Instant::now();
        self.store.append(&self.lease, vec![entry]).await.map_err(|e| e.to_string())?;
        self.observer.journaled(self.observed(), &steps, start.elapsed());
        Ok(())
    }

    /// One attempt, behind the component's circuit breaker when the workflow
    /// enables it. `Err` when the breaker's store cannot be read.
    async fn gated_attempt(&self, node: &NodeSpec, call: StepCall) -> Result<AttemptReport, String> {
        let pinned = self.pinned.as_deref();
        let Some(policy) = self.breaker else {
            return Ok(self.executor.execute(node, pinned, call, self.limits.clone(), self.granted.clone()).await);
        };
        let component = node.component.display().to_string();
        match breaker::gate(self.store.as_ref(), &component, policy).await.map_err(|e| e.to_string())? {
            Gate::Reject { retry_after_ms } => {
                Ok(AttemptReport::failed_early(StepFailure::CircuitOpen { component, retry_after_ms }))
            }
            Gate::Pass { probe } => {
                // Observers name the component by its digest where it is pinned, not by a path of this host.
                let named = pinned.unwrap_or(&component);
                if probe {
                    self.observer.breaker_changed(named, crate::store::BreakerState::HalfOpen);
                }
                let report = self.executor.execute(node, pinned, call, self.limits.clone(), self.granted.clone()).await;
                let ok = report.failure().is_none();
                match breaker::report(self.store.as_ref(), &component, policy, ok, probe).await {
                    Ok(Some(state)) => self.observer.breaker_changed(named, state),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(component, error = %e, "the circuit breaker could not be updated"),
                }
                Ok(report)
            }
        }
    }
}

/// The waits between a step's attempts.
struct Backoff {
    policy: Arc<RetryPolicy>,
    /// Seeded per step from the run's jitter seed (random when it has none);
    /// made on the first jittered wait.
    rng: Option<rand::rngs::StdRng>,
    seed: Option<u64>,
    /// The run's jitter seed it was derived from.
    seed_base: Option<u64>,
}

impl Clone for Backoff {
    /// A fresh copy: its random source is made again on its first jittered wait.
    fn clone(&self) -> Self {
        Self { policy: self.policy.clone(), rng: None, seed: self.seed, seed_base: self.seed_base }
    }
}

impl Backoff {
    fn new(policy: Arc<RetryPolicy>, jitter_seed: Option<u64>, step_id: &str) -> Self {
        Self { policy, rng: None, seed: jitter_seed.map(|s| s ^ fnv(step_id)), seed_base: jitter_seed }
    }

    /// The wait after attempt `attempt` failed: the n-th retry within a
    /// round waits the policy's n-th delay, shortened by up to `jitter`.
    fn delay_ms(&mut self, attempt: u32) -> u64 {
        let n = (attempt - 1) % self.policy.max_attempts.max(1) + 1;
        let base = self.policy.base_delay_ms(n);
        if self.policy.jitter <= 0.0 {
            return base;
        }
        let seed = self.seed;
        let rng = self.rng.get_or_insert_with(|| match seed {
            Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
            None => rand::rngs::StdRng::from_rng(&mut rand::rng()),
        });
        let spread = rng.random::<f64>() * self.policy.jitter;
        ((base as f64) * (1.0 - spread)) as u64
    }
}

/// FNV-1a of a string (to derive per-step jitter seeds).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}
