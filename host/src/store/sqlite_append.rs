//! The SQLite store's write path: how a call stays off the async runtime
//! ([`blocking`]), and the group commit of appends: an append queues
//! itself, and whoever holds the connection next commits everything queued
//! in one transaction, one savepoint per append.

use super::sqlite::SqliteStore;
use super::{JournalEntry, Lease, StoreError, StoreFuture, dead_letter_in, finished_in, now_rfc3339, paused_after};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::sync::PoisonError;

/// Runs blocking `work` so that the runtime's other tasks go on meanwhile.
/// On a multi-threaded runtime it runs in place: `block_in_place` first
/// hands this worker's other tasks to another thread, so the call itself
/// pays no hand-off (per step of a durable chain on this machine: +43 µs
/// against running inline, where `spawn_blocking` costs +95 µs; see
/// BENCHMARKS.md). On a current-thread runtime, or outside one, it runs on
/// the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => Ok(tokio::task::block_in_place(work)),
        _ => tokio::task::spawn_blocking(work).await.map_err(|e| e.to_string()),
    }
}

/// An append waiting for its group's commit, and where its result goes.
pub(super) struct QueuedAppend {
    lease: Lease,
    entries: Vec<JournalEntry>,
    done: std::sync::mpsc::SyncSender<Result<(), StoreError>>,
}

impl SqliteStore {
    /// Runs `work` (when the future is first polled) without holding up
    /// the async runtime's other tasks: see [`blocking`].
    pub(super) fn off<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SqliteStore) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        self.off_as(work, StoreError::Backend)
    }

    /// [`SqliteStore::off`] for any error type: `failed` makes one from the
    /// reason a call could not run at all.
    pub(super) fn off_as<T: Send + 'static, E: Send + 'static>(
        &self,
        work: impl FnOnce(&SqliteStore) -> Result<T, E> + Send + 'static,
        failed: fn(String) -> E,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send + 'static>> {
        let this = self.clone();
        Box::pin(async move {
            blocking(move || work(&this))
                .await
                .map_err(|e| failed(format!("a store call on the blocking pool failed: {e}")))?
        })
    }

    /// Appends with the group commit: queue, then commit whatever is queued
    /// once the connection is ours (our append may already be committed by
    /// the caller before us).
    pub(super) fn append_grouped(&self, lease: Lease, entries: Vec<JournalEntry>) -> Result<(), StoreError> {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push(QueuedAppend { lease, entries, done });
        {
            let mut c = self.lock();
            let group = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
            if !group.is_empty() {
                Self::commit_group(&mut c, group);
            }
        }
        result.recv().unwrap_or_else(|_| Err(StoreError::Backend("the group commit ended without a result".into())))
    }

    /// Commits `group` in one transaction and tells each append how it went.
    fn commit_group(c: &mut Connection, group: Vec<QueuedAppend>) {
        let fail_all = |group: Vec<QueuedAppend>, e: &dyn std::fmt::Display| {
            for q in group {
                let _ = q.done.send(Err(StoreError::Backend(e.to_string())));
            }
        };
        let mut tx = match c.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => return fail_all(group, &e),
        };
        if let [one] = group.as_slice() {
            // Alone: no savepoint, a refusal rolls the transaction back.
            let r = Self::append_in(&tx, &one.lease, &one.entries).and_then(|()| Ok(tx.commit()?));
            let _ = one.done.send(r);
            return;
        }
        let mut results = Vec::with_capacity(group.len());
        for q in &group {
            // An error that rolled the whole transaction back (disk full, I/O)
            // fails the rest of the group: none of it is committed.
            if tx.is_autocommit() {
                return fail_all(group, &"the group's transaction was rolled back by an earlier error");
            }
            let r = (|| {
                let sp = tx.savepoint()?;
                Self::append_in(&sp, &q.lease, &q.entries)?;
                sp.commit()?;
                Ok(())
            })();
            results.push(r);
        }
        if tx.is_autocommit() {
            return fail_all(group, &"the group's transaction was rolled back by an error");
        }
        match tx.commit() {
            Ok(()) => {
                for (q, r) in group.into_iter().zip(results) {
                    let _ = q.done.send(r);
                }
            }
            Err(e) => fail_all(group, &e),
        }
    }

    /// One append inside `tx` (the group's transaction, or a savepoint in it).
    fn append_in(tx: &rusqlite::Connection, lease: &Lease, entries: &[JournalEntry]) -> Result<(), StoreError> {
        let run_id = lease.run_id.as_str();
        let current: Option<(u64, String, String)> = tx
            .query_row("SELECT lease_epoch, workflow, status FROM runs WHERE run_id = ?1", [run_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((epoch, workflow, status)) = current else { return Err(StoreError::NotFound(run_id.into())) };
        if status != "running" && status != "pending" {
            return Err(StoreError::Finished(run_id.into()));
        }
        // A pending run is written to only once a worker has claimed it.
        if epoch != lease.epoch || status == "pending" {
            return Err(StoreError::LeaseLost(run_id.into()));
        }
        Self::insert_entries(tx, run_id, entries)?;
        let now = now_rfc3339();
        let progress = entries.iter().any(JournalEntry::is_progress);
        match finished_in(entries) {
            Some(out) => {
                tx.execute(
                    "UPDATE runs SET status = ?2, output = ?3, updated_at = ?4, lease_until_ms = 0, \
                     idle_claims = 0 WHERE run_id = ?1",
                    params![run_id, out.execution_status.as_str(), serde_json::to_string(out)?, now],
                )?;
            }
            None => {
                tx.execute(
                    "UPDATE runs SET updated_at = ?2, paused = ?3, \
                     idle_claims = CASE WHEN ?4 THEN 0 ELSE idle_claims END WHERE run_id = ?1",
                    params![run_id, now, paused_after(entries), progress],
                )?;
            }
        }
        if let Some((step_id, error_type, message)) = dead_letter_in(entries) {
            tx.execute(
                "INSERT OR REPLACE INTO dlq (run_id, workflow, step_id, error_type, message, at, replayed_as) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
                params![run_id, workflow, step_id, error_type, message, now],
            )?;
        }
        Ok(())
    }
}
