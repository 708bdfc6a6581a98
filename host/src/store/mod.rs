//! Run persistence: the write-ahead journal behind durable runs.
//!
//! A [`RunStore`] keeps, for every run, one row (definition, input, pinned
//! component digests, status, owner lease, cancel flag) and an append-only
//! journal of [`JournalEntry`]s. The engine appends each transition before it
//! acts on it, so a run can be rebuilt from its journal after a crash.
//!
//! Three implementations: [`MemoryStore`] (per process), [`SqliteStore`]
//! (the embedded default: one file, WAL, one machine) and [`PostgresStore`]
//! (shared by workers on many machines). Every implementation must pass the
//! conformance suite in `tests/all/store.rs`. The trait is asynchronous, and
//! every write is fenced by the [`Lease`] a claim returned: its epoch.

mod journal;
mod lease;
mod memo;
mod memory;
mod open;
mod postgres;
mod postgres_schema;
mod postgres_state;
mod records;
mod sqlite;
mod sqlite_append;
mod sqlite_kv;
mod sqlite_memo;
mod sqlite_schema;
mod sqlite_signal;
mod sqlite_usage;
mod view;

pub use crate::contract::{now_ms, now_rfc3339};
pub use journal::{JournalEntry, Journaled};
pub use lease::{Lease, MAX_IDLE_CLAIMS, owner_is_dead, process_owner};
pub use memo::{MemoEntry, MemoStats};
pub use memory::MemoryStore;
pub use open::{POSTGRES_POOL_SIZE, STORE_ENV, StoreLocation, open_for_reading, open_for_writing};
pub use postgres::{PG_SCHEMA_VERSION, PostgresStore};
pub use records::{
    BreakerRecord, BreakerState, ComponentBlob, DlqEntry, NewRun, ParentRun, PinnedComponent, RunFilter, RunRecord,
    RunSummary, Signal, SignalPut, StoreInfo, UsageAdd,
};
pub use sqlite::{SCHEMA_VERSION, SqliteStore, SyncMode};
pub use view::{RunView, StepView};

use crate::contract::{ExecutionStatus, KeyValue, RunOutput};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a store call returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No run has this id.
    #[error("no run has the id `{0}`; `weft runs list` shows the runs in this store")]
    NotFound(String),
    /// A run with this id exists already.
    #[error(
        "a run with the id `{0}` already exists in this store (a workflow_id names one run): omit `workflow_id` \
         from the input to get a fresh one, or look at that run with `weft runs show {0}`"
    )]
    Duplicate(String),
    /// Another process owns the run.
    #[error("run `{run_id}` is owned by `{owner}` (lease valid for {remaining_ms} ms more); wait for it or cancel it")]
    Owned {
        /// The run.
        run_id: String,
        /// Who holds the lease.
        owner: String,
        /// How long the lease still runs.
        remaining_ms: u64,
    },
    /// The run has finished: it cannot be claimed or driven again.
    #[error("run `{0}` has already finished; `weft runs show {0}` shows how")]
    Finished(String),
    /// This process no longer holds the run's lease (another took it over).
    #[error("run `{0}` is no longer owned by this process: its lease was taken over; stopping without writing")]
    LeaseLost(String),
    /// No database exists where one was to be read.
    #[error(
        "no run database at {0}: nothing has run with this store yet (a command that only reads never creates \
         one); pass --db PATH or set WEFT_DB to the database the runs were made with"
    )]
    Missing(String),
    /// The database file is not one Weft can use.
    #[error("{0}")]
    Incompatible(String),
    /// The backend failed (I/O, disk full, corruption, ...).
    #[error("the run store failed: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Backend(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Backend(format!("a stored record is not valid JSON: {e}"))
    }
}

/// Run persistence. Every method is atomic; writes to a run are fenced by
/// the owner's [`Lease`]: a write whose epoch is no longer the run's (another
/// process claimed it since) fails with [`StoreError::LeaseLost`], and is
/// never retried. Only the store's clock decides whether a lease is live.
pub trait RunStore: KeyValue + Send + Sync + 'static {
    /// Reachability and identity, for health checks.
    fn info(&self) -> StoreFuture<'_, StoreInfo>;
    /// Creates a run (status `running`, leased to `run.owner` for
    /// `run.lease_ms`, epoch 1) and journals [`JournalEntry::RunCreated`]
    /// plus `first` in the same transaction; stores the components of
    /// `blobs` by digest. Returns the lease.
    fn create_run<'a>(
        &'a self,
        run: &'a NewRun,
        first: &'a [JournalEntry],
        blobs: &'a [ComponentBlob],
    ) -> StoreFuture<'a, Lease>;
    /// Stores a run for a worker to claim: status `pending`, no lease
    /// (epoch 0), journal [`JournalEntry::RunCreated`]; stores the
    /// components of `blobs` by digest, and wakes workers.
    fn submit_run<'a>(&'a self, run: &'a NewRun, blobs: &'a [ComponentBlob]) -> StoreFuture<'a, ()>;
    /// Appends entries atomically, after the run's last one, if `lease` still
    /// holds the run. A [`JournalEntry::RunFinished`] also sets the run's
    /// status and output and releases the lease; a
    /// [`JournalEntry::DeadLettered`] also adds the run to the dead-letter
    /// queue. An entry that [`JournalEntry::is_progress`] resets the run's
    /// idle claims.
    fn append<'a>(&'a self, lease: &'a Lease, entries: Vec<JournalEntry>) -> StoreFuture<'a, ()>;
    /// The run's journal, in order.
    fn journal<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<Journaled>>;
    /// The run's journal entries after sequence number `after`, in order
    /// (a follower's next read).
    fn journal_after<'a>(&'a self, run_id: &'a str, after: u64) -> StoreFuture<'a, Vec<Journaled>> {
        Box::pin(async move {
            let mut all = self.journal(run_id).await?;
            all.retain(|j| j.seq > after);
            Ok(all)
        })
    }
    /// The run.
    fn get_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, RunRecord>;
    /// Runs, newest first.
    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> StoreFuture<'a, Vec<RunSummary>>;
    /// Takes the run's lease for `owner` for `lease_ms`, bumping its epoch
    /// (an explicit claim, as `weft runs resume`: it does not count as a
    /// claim without progress).
    /// Succeeds when the run (pending or running) is unowned, owned by
    /// `owner`, its lease expired, or `steal_from` names the current owner
    /// (known to be dead). Fails with [`StoreError::Owned`] otherwise.
    fn claim<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        lease_ms: u64,
        steal_from: Option<&'a str>,
    ) -> StoreFuture<'a, Lease>;
    /// Claims up to `limit` runnable runs for `owner`, oldest first: pending
    /// or running (waiting on gates included: a gate's timeout must fire
    /// somewhere), lease expired or released, and not the child of a running
    /// parent (its parent drives it). Runs another worker is claiming at the
    /// same moment are skipped, not waited for. Each such claim counts as a
    /// claim without progress until the run makes some.
    fn claim_next<'a>(&'a self, owner: &'a str, lease_ms: u64, limit: usize) -> StoreFuture<'a, Vec<Lease>>;
    /// Extends the lease; returns whether a cancel was requested.
    fn heartbeat<'a>(&'a self, lease: &'a Lease, lease_ms: u64) -> StoreFuture<'a, bool>;
    /// Gives the lease up at once (a draining process), so that another
    /// process may claim the run without waiting for it to expire.
    fn release<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()>;
    /// Asks whoever drives the run to cancel it. Returns false when the run
    /// has already finished.
    fn request_cancel<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool>;
    /// The component stored under `digest`, if any.
    fn blob_get<'a>(&'a self, digest: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;
    /// Stores a component by its digest (the caller has checked that the
    /// bytes hash to it); true when the store did not hold it yet.
    fn blob_put<'a>(&'a self, blob: &'a ComponentBlob) -> StoreFuture<'a, bool>;
    /// Waits until a worker may find something new to claim: a hint (a
    /// submission, a released lease), or at most `timeout`. Polling stays
    /// the authority; the hint only makes it sooner.
    fn wait_for_work(&self, timeout: std::time::Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            tokio::time::sleep(timeout).await;
            Ok(())
        })
    }
    /// The dead-letter queue, oldest first.
    fn dlq_list(&self) -> StoreFuture<'_, Vec<DlqEntry>>;
    /// The dead-letter queue of `tenant`'s runs, oldest first.
    fn dlq_list_of<'a>(&'a self, tenant: &'a str) -> StoreFuture<'a, Vec<DlqEntry>>;
    /// How many dead letters are not replayed yet.
    fn dlq_waiting(&self) -> StoreFuture<'_, u64>;
    /// Records that `run_id` was replayed as `new_run_id`.
    fn dlq_mark_replayed<'a>(&'a self, run_id: &'a str, new_run_id: &'a str) -> StoreFuture<'a, ()>;
    /// A component's breaker, if it has one.
    fn breaker_load<'a>(&'a self, component: &'a str) -> StoreFuture<'a, Option<BreakerRecord>>;
    /// Writes `next` if the stored version is still `expected` (0: absent).
    /// Returns false when another writer got there first.
    fn breaker_cas<'a>(&'a self, component: &'a str, expected: u64, next: &'a BreakerRecord) -> StoreFuture<'a, bool>;
    /// The memo entry under `key`, if any; a hit is counted and makes it the
    /// most recently used.
    fn memo_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<MemoEntry>>;
    /// Stores `entry` under `key`, then evicts the least recently used
    /// entries until the cache holds at most `max_bytes` (an entry larger
    /// than that is not stored).
    fn memo_put<'a>(&'a self, key: &'a str, entry: &'a MemoEntry, max_bytes: u64) -> StoreFuture<'a, ()>;
    /// What the memo cache holds.
    fn memo_stats(&self) -> StoreFuture<'_, MemoStats>;
    /// Drops every memo entry; returns how many there were.
    fn memo_clear(&self) -> StoreFuture<'_, u64>;
    /// Stores `signal` for the approval gate `step_id` of `run_id`: one
    /// signal per gate, and the same signal id again is a no-op.
    fn signal_put<'a>(&'a self, run_id: &'a str, step_id: &'a str, signal: &'a Signal) -> StoreFuture<'a, SignalPut>;
    /// The signal delivered to the gate `step_id` of `run_id`, if any.
    fn signal_get<'a>(&'a self, run_id: &'a str, step_id: &'a str) -> StoreFuture<'a, Option<Signal>>;
    /// Adds `delta` to the usage counter `counter` of `tenant` (what the
    /// service's quotas count: fuel per hour, stored bytes), in one atomic
    /// step, so that every process adds to one total. A positive `delta`
    /// that would take the total past `limit` adds nothing and answers
    /// [`UsageAdd::Over`]; a negative one always applies, down to 0.
    fn usage_add<'a>(&'a self, tenant: &'a str, counter: &'a str, delta: i64, limit: u64) -> StoreFuture<'a, UsageAdd>;
    /// The usage counter `counter` of `tenant` (0 when it was never added to).
    fn usage_get<'a>(&'a self, tenant: &'a str, counter: &'a str) -> StoreFuture<'a, u64>;
    /// Drops the counters of `tenant` whose names start with `prefix` and
    /// sort before `before` (old hours' fuel); returns how many.
    fn usage_prune<'a>(&'a self, tenant: &'a str, prefix: &'a str, before: &'a str) -> StoreFuture<'a, u64>;
}

/// The total after adding `delta` to `now`, or None when a positive
/// `delta` would pass `limit` (a negative one stops at 0).
fn usage_after(now: u64, delta: i64, limit: u64) -> Option<u64> {
    if delta >= 0 {
        let after = now.saturating_add(delta as u64);
        (after <= limit).then_some(after)
    } else {
        Some(now.saturating_sub(delta.unsigned_abs()))
    }
}

/// Whether a run is paused after `entries` are appended: the batch ends
/// with [`JournalEntry::RunPaused`].
fn paused_after(entries: &[JournalEntry]) -> bool {
    matches!(entries.last(), Some(JournalEntry::RunPaused { .. }))
}

/// The status a batch of entries moves a run to, with its output.
fn finished_in(entries: &[JournalEntry]) -> Option<&Arc<RunOutput>> {
    entries.iter().find_map(|e| match e {
        JournalEntry::RunFinished { output } => Some(output),
        _ => None,
    })
}

/// The dead-letter record in a batch, if any.
fn dead_letter_in(entries: &[JournalEntry]) -> Option<(&str, &str, &str)> {
    entries.iter().find_map(|e| match e {
        JournalEntry::DeadLettered { step_id, error_type, message } => {
            Some((step_id.as_str(), error_type.as_str(), message.as_str()))
        }
        _ => None,
    })
}

fn parse_status(s: &str) -> Result<ExecutionStatus, StoreError> {
    ExecutionStatus::parse(s).ok_or_else(|| StoreError::Backend(format!("a stored run has the unknown status `{s}`")))
}

/// A store call whose work is already done.
fn ready<'a, T: Send + 'a>(r: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(r))
}
