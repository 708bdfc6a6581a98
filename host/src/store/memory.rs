//! The in-memory store: the same contract as SQLite, lost when the process ends.

use super::{
    BreakerRecord, ComponentBlob, DlqEntry, JournalEntry, Journaled, Lease, MemoEntry, MemoStats, NewRun, RunFilter,
    RunRecord, RunStore, RunSummary, Signal, SignalPut, StoreError, StoreFuture, StoreInfo, UsageAdd, dead_letter_in,
    finished_in, now_ms, now_rfc3339, ready,
};
use crate::contract::{ExecutionStatus, KeyValue, KvError, KvFuture, kv_row_cost, quota_message};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

#[derive(Default)]
struct Inner {
    runs: BTreeMap<String, (RunRecord, Vec<Journaled>, u64)>,
    dlq: Vec<DlqEntry>,
    breakers: HashMap<String, BreakerRecord>,
    /// Key-value state: scope -> (bytes charged, key -> value).
    kv: BTreeMap<String, (u64, BTreeMap<String, Vec<u8>>)>,
    /// The memo cache: key -> (entry, bytes charged, last use, hits).
    memo: HashMap<String, MemoRow>,
    /// A counter that orders memo uses (the least recently used is evicted first).
    memo_clock: u64,
    /// Creation counter, to list newest first.
    created: u64,
    /// Finished runs, oldest first.
    finished: VecDeque<String>,
    /// Approval gates' signals, by (run, step).
    signals: HashMap<(String, String), Signal>,
    /// Per run, the claims in a row without progress.
    idle_claims: HashMap<String, u32>,
    /// Components by digest.
    blobs: HashMap<String, std::sync::Arc<Vec<u8>>>,
    /// The tenants' usage counters, by (tenant, counter).
    usage: BTreeMap<(String, String), u64>,
}

/// One memo entry held in memory.
struct MemoRow {
    entry: MemoEntry,
    bytes: u64,
    used: u64,
    hits: u64,
}

/// A [`RunStore`] in process memory. It keeps every unfinished run and the
/// last [`MemoryStore::DEFAULT_RETAIN_FINISHED`] finished ones (configurable),
/// so that a long-lived embedder does not grow without bound.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    retain_finished: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// How many finished runs an in-memory store keeps by default.
    pub const DEFAULT_RETAIN_FINISHED: usize = 64;

    /// An empty store.
    pub fn new() -> Self {
        Self::with_retention(Self::DEFAULT_RETAIN_FINISHED)
    }

    /// An empty store that keeps at most `finished` finished runs.
    pub fn with_retention(finished: usize) -> Self {
        Self { inner: Mutex::new(Inner::default()), retain_finished: finished }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// Gives the lease of `run_id` (known to exist) to `owner`, bumping its epoch.
    /// A worker's claim (`counted`) counts as a claim without progress.
    fn take_lease(&mut self, run_id: &str, owner: &str, lease_ms: u64, counted: bool) -> Lease {
        let idle = self.idle_claims.entry(run_id.to_string()).or_default();
        *idle += u32::from(counted);
        let idle_claims = *idle;
        let mut epoch = 0;
        if let Some((r, _, _)) = self.runs.get_mut(run_id) {
            r.run.owner = owner.into();
            r.lease_until_ms = now_ms().saturating_add(lease_ms);
            r.lease_epoch += 1;
            r.status = ExecutionStatus::Running;
            epoch = r.lease_epoch;
        }
        Lease { run_id: run_id.into(), owner: owner.into(), epoch, idle_claims }
    }
}

impl MemoryStore {
    /// Stores a new run with its first entries and its components.
    fn insert(
        &self,
        run: &NewRun,
        status: ExecutionStatus,
        lease_until_ms: u64,
        epoch: u64,
        first: &[JournalEntry],
        blobs: &[ComponentBlob],
    ) -> Result<(), StoreError> {
        let mut g = self.lock();
        if g.runs.contains_key(&run.run_id) {
            return Err(StoreError::Duplicate(run.run_id.clone()));
        }
        let now = now_rfc3339();
        let record = RunRecord {
            run: run.clone(),
            status,
            created_at: now.clone(),
            updated_at: now.clone(),
            output: None,
            cancel_requested: false,
            lease_until_ms,
            lease_live: false,
            lease_epoch: epoch,
            paused: false,
        };
        let mut journal = Vec::new();
        push(&mut journal, [JournalEntry::RunCreated { start_time: now.clone() }], &now);
        push(&mut journal, first.iter().cloned(), &now);
        g.created += 1;
        let n = g.created;
        g.runs.insert(run.run_id.clone(), (record, journal, n));
        for b in blobs {
            g.blobs.entry(b.digest.clone()).or_insert_with(|| b.bytes.clone());
        }
        Ok(())
    }
}

fn push(journal: &mut Vec<Journaled>, entries: impl IntoIterator<Item = JournalEntry>, at: &str) {
    for entry in entries {
        let seq = journal.len() as u64 + 1;
        journal.push(Journaled { seq, at: at.to_string(), entry });
    }
}

impl KeyValue for MemoryStore {
    fn kv_get<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        let value = self.lock().kv.get(scope).and_then(|(_, s)| s.get(key)).cloned();
        Box::pin(std::future::ready(Ok(value)))
    }

    fn kv_set<'a>(&'a self, scope: &'a str, key: &'a str, value: &'a [u8], max_scope_bytes: u64) -> KvFuture<'a, ()> {
        let mut g = self.lock();
        let (used, old) = match g.kv.get(scope) {
            Some((used, keys)) => (*used, keys.get(key).map_or(0, |v| kv_row_cost(key.len(), v.len()))),
            None => (0, 0),
        };
        let after = used - old + kv_row_cost(key.len(), value.len());
        let r = if after > max_scope_bytes {
            Err(KvError::Quota(quota_message(after, max_scope_bytes)))
        } else {
            let (total, keys) = g.kv.entry(scope.to_string()).or_default();
            keys.insert(key.to_string(), value.to_vec());
            *total = after;
            Ok(())
        };
        Box::pin(std::future::ready(r))
    }

    fn kv_delete<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, bool> {
        let mut g = self.lock();
        let removed = match g.kv.get_mut(scope) {
            Some((total, keys)) => match keys.remove(key) {
                Some(v) => {
                    *total -= kv_row_cost(key.len(), v.len());
                    true
                }
                None => false,
            },
            None => false,
        };
        Box::pin(std::future::ready(Ok(removed)))
    }

    fn kv_keys<'a>(&'a self, scope: &'a str, prefix: &'a str, limit: usize) -> KvFuture<'a, Vec<String>> {
        let keys = self
            .lock()
            .kv
            .get(scope)
            .map(|(_, s)| {
                s.range(prefix.to_string()..)
                    .map(|(k, _)| k)
                    .take_while(|k| k.starts_with(prefix))
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(keys)))
    }
}

impl RunStore for MemoryStore {
    fn info(&self) -> StoreFuture<'_, StoreInfo> {
        let active = self.lock().runs.values().filter(|(r, _, _)| r.status == ExecutionStatus::Running).count();
        ready(Ok(StoreInfo {
            kind: "memory".into(),
            location: ":memory:".into(),
            schema_version: super::SCHEMA_VERSION,
            active_runs: active as u64,
        }))
    }

    fn create_run<'a>(
        &'a self,
        run: &'a NewRun,
        first: &'a [JournalEntry],
        blobs: &'a [ComponentBlob],
    ) -> StoreFuture<'a, Lease> {
        let lease = Lease::first(run);
        let until = now_ms().saturating_add(run.lease_ms);
        ready(self.insert(run, ExecutionStatus::Running, until, 1, first, blobs).map(|()| lease))
    }

    fn submit_run<'a>(&'a self, run: &'a NewRun, blobs: &'a [ComponentBlob]) -> StoreFuture<'a, ()> {
        let mut unowned = run.clone();
        unowned.owner = String::new();
        ready(self.insert(&unowned, ExecutionStatus::Pending, 0, 0, &[], blobs))
    }

    fn append<'a>(&'a self, lease: &'a Lease, entries: Vec<JournalEntry>) -> StoreFuture<'a, ()> {
        let run_id = lease.run_id.as_str();
        let mut g = self.lock();
        let inner = &mut *g;
        let Some((record, journal, _)) = inner.runs.get_mut(run_id) else {
            return ready(Err(StoreError::NotFound(run_id.into())));
        };
        if !matches!(record.status, ExecutionStatus::Running | ExecutionStatus::Pending) {
            return ready(Err(StoreError::Finished(run_id.into())));
        }
        if record.lease_epoch != lease.epoch || record.status == ExecutionStatus::Pending {
            return ready(Err(StoreError::LeaseLost(run_id.into())));
        }
        if entries.iter().any(JournalEntry::is_progress) {
            inner.idle_claims.remove(run_id);
        }
        let finished = finished_in(&entries).cloned();
        let dead = dead_letter_in(&entries).map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
        let now = now_rfc3339();
        record.paused = super::paused_after(&entries);
        push(journal, entries, &now);
        record.updated_at = now;
        if let Some(out) = finished {
            record.status = out.execution_status;
            record.output = Some(out);
            record.lease_until_ms = 0;
            inner.finished.push_back(run_id.to_string());
            // Bounded: the oldest finished runs (and their journals) go first.
            while inner.finished.len() > self.retain_finished {
                if let Some(old) = inner.finished.pop_front() {
                    inner.runs.remove(&old);
                    inner.signals.retain(|(run, _), _| *run != old);
                    inner.dlq.retain(|d| d.run_id != old);
                }
            }
        }
        if let Some((step_id, error_type, message)) = dead {
            let Some((record, _, _)) = inner.runs.get(run_id) else { return ready(Ok(())) };
            let entry = DlqEntry {
                run_id: run_id.into(),
                workflow: record.run.workflow.clone(),
                step_id,
                error_type,
                message,
                at: now_rfc3339(),
                replayed_as: None,
            };
            inner.dlq.retain(|d| d.run_id != run_id);
            inner.dlq.push(entry);
        }
        ready(Ok(()))
    }

    fn journal<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<Journaled>> {
        ready(
            self.lock().runs.get(run_id).map(|(_, j, _)| j.clone()).ok_or_else(|| StoreError::NotFound(run_id.into())),
        )
    }

    fn get_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, RunRecord> {
        let now = now_ms();
        ready(
            self.lock()
                .runs
                .get(run_id)
                .map(|(r, _, _)| RunRecord { lease_live: r.lease_until_ms > now, ..r.clone() })
                .ok_or_else(|| StoreError::NotFound(run_id.into())),
        )
    }

    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> StoreFuture<'a, Vec<RunSummary>> {
        let g = self.lock();
        let mut rows: Vec<(u64, RunSummary)> = g
            .runs
            .values()
            .filter(|(r, _, _)| {
                filter.status.is_none_or(|s| match s {
                    // `paused` is a running run that waits only on gates.
                    ExecutionStatus::Paused => r.status == ExecutionStatus::Running && r.paused,
                    s => s == r.status,
                })
            })
            .filter(|(r, _, _)| filter.workflow.as_ref().is_none_or(|w| *w == r.run.workflow))
            .filter(|(r, _, _)| filter.tenant.as_deref().is_none_or(|t| t == r.run.tenant()))
            .filter(|(_, _, n)| filter.before.is_none_or(|b| *n < b))
            .map(|(r, _, n)| {
                let owner = (r.lease_until_ms > 0).then(|| r.run.owner.clone());
                let s = RunSummary {
                    run_id: r.run.run_id.clone(),
                    workflow: r.run.workflow.clone(),
                    status: if r.paused && r.status == ExecutionStatus::Running {
                        ExecutionStatus::Paused
                    } else {
                        r.status
                    },
                    created_at: r.created_at.clone(),
                    updated_at: r.updated_at.clone(),
                    owner,
                    seq: *n,
                };
                (*n, s)
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.0));
        let mut out: Vec<RunSummary> = rows.into_iter().map(|(_, s)| s).collect();
        if filter.limit > 0 {
            out.truncate(filter.limit);
        }
        ready(Ok(out))
    }

    fn claim<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        lease_ms: u64,
        steal_from: Option<&'a str>,
    ) -> StoreFuture<'a, Lease> {
        let mut g = self.lock();
        let Some((r, _, _)) = g.runs.get(run_id) else {
            return ready(Err(StoreError::NotFound(run_id.into())));
        };
        if !matches!(r.status, ExecutionStatus::Running | ExecutionStatus::Pending) {
            return ready(Err(StoreError::Finished(run_id.into())));
        }
        let now = now_ms();
        let free = r.lease_until_ms <= now || r.run.owner == owner || steal_from.is_some_and(|s| s == r.run.owner);
        if !free {
            return ready(Err(StoreError::Owned {
                run_id: run_id.into(),
                owner: r.run.owner.clone(),
                remaining_ms: r.lease_until_ms - now,
            }));
        }
        ready(Ok(g.take_lease(run_id, owner, lease_ms, false)))
    }

    fn claim_next<'a>(&'a self, owner: &'a str, lease_ms: u64, limit: usize) -> StoreFuture<'a, Vec<Lease>> {
        let mut g = self.lock();
        let now = now_ms();
        let live = |s: ExecutionStatus| matches!(s, ExecutionStatus::Running | ExecutionStatus::Pending);
        let mut runnable: Vec<(u64, String, String)> = g
            .runs
            .values()
            .filter(|(r, _, _)| live(r.status) && r.lease_until_ms <= now)
            .filter(|(r, _, _)| {
                r.run.parent.as_ref().is_none_or(|p| g.runs.get(&p.run_id).is_none_or(|(p, _, _)| !live(p.status)))
            })
            .map(|(r, _, n)| (*n, r.run.tenant().to_string(), r.run.run_id.clone()))
            .collect();
        runnable.sort();
        // Fair across tenants: each tenant's oldest first, then each one's second, ...
        let mut taken: std::collections::HashMap<String, usize> = Default::default();
        let mut ranked: Vec<(usize, u64, String)> = runnable
            .into_iter()
            .map(|(n, tenant, id)| {
                let k = taken.entry(tenant).or_default();
                *k += 1;
                (*k, n, id)
            })
            .collect();
        ranked.sort();
        ranked.truncate(limit);
        ready(Ok(ranked.into_iter().map(|(_, _, id)| g.take_lease(&id, owner, lease_ms, true)).collect()))
    }

    fn heartbeat<'a>(&'a self, lease: &'a Lease, lease_ms: u64) -> StoreFuture<'a, bool> {
        let mut g = self.lock();
        let Some((r, _, _)) = g.runs.get_mut(&lease.run_id) else {
            return ready(Err(StoreError::NotFound(lease.run_id.clone())));
        };
        if r.lease_epoch != lease.epoch {
            return ready(Err(StoreError::LeaseLost(lease.run_id.clone())));
        }
        if r.status == ExecutionStatus::Running {
            r.lease_until_ms = now_ms().saturating_add(lease_ms);
        }
        ready(Ok(r.cancel_requested))
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()> {
        let mut g = self.lock();
        if let Some((r, _, _)) = g.runs.get_mut(&lease.run_id)
            && r.lease_epoch == lease.epoch
            && r.status == ExecutionStatus::Running
        {
            r.lease_until_ms = 0;
        }
        ready(Ok(()))
    }

    fn blob_get<'a>(&'a self, digest: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        ready(Ok(self.lock().blobs.get(digest).map(|b| b.as_ref().clone())))
    }

    fn blob_put<'a>(&'a self, blob: &'a ComponentBlob) -> StoreFuture<'a, bool> {
        let mut g = self.lock();
        let new = !g.blobs.contains_key(&blob.digest);
        if new {
            g.blobs.insert(blob.digest.clone(), blob.bytes.clone());
        }
        ready(Ok(new))
    }

    fn request_cancel<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool> {
        let mut g = self.lock();
        let Some((r, _, _)) = g.runs.get_mut(run_id) else {
            return ready(Err(StoreError::NotFound(run_id.into())));
        };
        if !matches!(r.status, ExecutionStatus::Running | ExecutionStatus::Pending) {
            return ready(Ok(false));
        }
        r.cancel_requested = true;
        ready(Ok(true))
    }

    fn dlq_list(&self) -> StoreFuture<'_, Vec<DlqEntry>> {
        ready(Ok(self.lock().dlq.clone()))
    }

    fn dlq_list_of<'a>(&'a self, tenant: &'a str) -> StoreFuture<'a, Vec<DlqEntry>> {
        let g = self.lock();
        let of_tenant = |d: &&DlqEntry| g.runs.get(&d.run_id).is_some_and(|(r, _, _)| r.run.tenant() == tenant);
        ready(Ok(g.dlq.iter().filter(of_tenant).cloned().collect()))
    }

    fn dlq_waiting(&self) -> StoreFuture<'_, u64> {
        ready(Ok(self.lock().dlq.iter().filter(|d| d.replayed_as.is_none()).count() as u64))
    }

    fn dlq_mark_replayed<'a>(&'a self, run_id: &'a str, new_run_id: &'a str) -> StoreFuture<'a, ()> {
        let mut g = self.lock();
        match g.dlq.iter_mut().find(|d| d.run_id == run_id) {
            Some(d) => {
                d.replayed_as = Some(new_run_id.into());
                ready(Ok(()))
            }
            None => ready(Err(StoreError::NotFound(run_id.into()))),
        }
    }

    fn breaker_load<'a>(&'a self, component: &'a str) -> StoreFuture<'a, Option<BreakerRecord>> {
        ready(Ok(self.lock().breakers.get(component).cloned()))
    }

    fn breaker_cas<'a>(&'a self, component: &'a str, expected: u64, next: &'a BreakerRecord) -> StoreFuture<'a, bool> {
        let mut g = self.lock();
        let current = g.breakers.get(component).map_or(0, |b| b.version);
        if current != expected {
            return ready(Ok(false));
        }
        g.breakers.insert(component.into(), BreakerRecord { version: expected + 1, ..next.clone() });
        ready(Ok(true))
    }

    fn memo_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<MemoEntry>> {
        let mut g = self.lock();
        g.memo_clock += 1;
        let now = g.memo_clock;
        let hit = g.memo.get_mut(key).map(|row| {
            row.used = now;
            row.hits += 1;
            row.entry.clone()
        });
        ready(Ok(hit))
    }

    fn memo_put<'a>(&'a self, key: &'a str, entry: &'a MemoEntry, max_bytes: u64) -> StoreFuture<'a, ()> {
        let bytes = match entry.encode(key) {
            Ok((_, bytes)) => bytes,
            Err(e) => return ready(Err(e.into())),
        };
        if bytes > max_bytes {
            return ready(Ok(()));
        }
        let mut g = self.lock();
        g.memo_clock += 1;
        let used = g.memo_clock;
        g.memo.insert(key.to_string(), MemoRow { entry: entry.clone(), bytes, used, hits: 0 });
        let mut total: u64 = g.memo.values().map(|r| r.bytes).sum();
        while total > max_bytes {
            let Some(oldest) = g.memo.iter().min_by_key(|(_, r)| r.used).map(|(k, _)| k.clone()) else { break };
            total = total.saturating_sub(g.memo.remove(&oldest).map_or(0, |r| r.bytes));
        }
        ready(Ok(()))
    }

    fn memo_stats(&self) -> StoreFuture<'_, MemoStats> {
        let g = self.lock();
        let stats = MemoStats {
            entries: g.memo.len() as u64,
            bytes: g.memo.values().map(|r| r.bytes).sum(),
            hits: g.memo.values().map(|r| r.hits).sum(),
        };
        ready(Ok(stats))
    }

    fn memo_clear(&self) -> StoreFuture<'_, u64> {
        let mut g = self.lock();
        let n = g.memo.len() as u64;
        g.memo.clear();
        ready(Ok(n))
    }

    fn signal_put<'a>(&'a self, run_id: &'a str, step_id: &'a str, signal: &'a Signal) -> StoreFuture<'a, SignalPut> {
        let mut g = self.lock();
        if !g.runs.contains_key(run_id) {
            return ready(Err(StoreError::NotFound(run_id.into())));
        }
        let put = match g.signals.get(&(run_id.to_string(), step_id.to_string())) {
            Some(s) if s.signal_id == signal.signal_id => SignalPut::Duplicate,
            Some(s) => SignalPut::Conflict(s.signal_id.clone()),
            None => {
                g.signals.insert((run_id.into(), step_id.into()), signal.clone());
                SignalPut::Stored
            }
        };
        ready(Ok(put))
    }

    fn signal_get<'a>(&'a self, run_id: &'a str, step_id: &'a str) -> StoreFuture<'a, Option<Signal>> {
        ready(Ok(self.lock().signals.get(&(run_id.to_string(), step_id.to_string())).cloned()))
    }

    fn usage_add<'a>(&'a self, tenant: &'a str, counter: &'a str, delta: i64, limit: u64) -> StoreFuture<'a, UsageAdd> {
        let mut g = self.lock();
        let slot = g.usage.entry((tenant.to_string(), counter.to_string())).or_insert(0);
        let added = match super::usage_after(*slot, delta, limit) {
            Some(after) => {
                *slot = after;
                UsageAdd::Added(after)
            }
            None => UsageAdd::Over(*slot),
        };
        ready(Ok(added))
    }

    fn usage_get<'a>(&'a self, tenant: &'a str, counter: &'a str) -> StoreFuture<'a, u64> {
        ready(Ok(self.lock().usage.get(&(tenant.to_string(), counter.to_string())).copied().unwrap_or(0)))
    }

    fn usage_prune<'a>(&'a self, tenant: &'a str, prefix: &'a str, before: &'a str) -> StoreFuture<'a, u64> {
        let mut g = self.lock();
        let before_len = g.usage.len();
        g.usage.retain(|(t, c), _| !(t == tenant && c.starts_with(prefix) && c.as_str() < before));
        ready(Ok((before_len - g.usage.len()) as u64))
    }
}
