//! The embedded default store: one SQLite file in WAL mode.
//!
//! This file holds the store's one concept, `RunStore` over SQLite: opening
//! and migrating the file, then one method per store call, each a short
//! transaction (the write path and its group commit are in
//! `sqlite_append.rs`; key-value, memo and signal tables have files of their
//! own). It is long because the trait is.
//!
//! The file is marked with an `application_id` so that Weft refuses a database
//! that is not its own, and its `user_version` is the schema version: older
//! files are migrated in order, newer ones are refused.

use super::sqlite_append::QueuedAppend;
use super::sqlite_schema::MIGRATIONS;
use super::{
    BreakerRecord, BreakerState, ComponentBlob, DlqEntry, JournalEntry, Journaled, Lease, MemoEntry, MemoStats, NewRun,
    RunFilter, RunRecord, RunStore, RunSummary, Signal, SignalPut, StoreError, StoreFuture, StoreInfo, UsageAdd,
    now_ms, now_rfc3339, parse_status,
};
use crate::contract::ExecutionStatus;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// A run's row (`runs` joined with its spec), as read by `get_run`.
struct RunRow {
    /// The run's [`NewRun`] as JSON.
    spec: String,
    status: String,
    owner: String,
    lease_until_ms: u64,
    cancel_requested: bool,
    created_at: String,
    updated_at: String,
    /// The output contract as JSON, once finished.
    output: Option<String>,
    /// Whether it waits only on approval gates.
    paused: bool,
    lease_epoch: u64,
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 9;

/// `application_id` of a Weft database: "Weft" in ASCII.
const APPLICATION_ID: i32 = 0x5765_6674;

/// How hard each commit is pushed to disk (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// WAL + `NORMAL`: a committed transaction survives the process being
    /// killed at any instant; the last transactions before a power loss or OS
    /// crash may be lost (the database stays consistent).
    #[default]
    Normal,
    /// WAL + `FULL`: every commit is fsynced; it also survives power loss.
    Full,
}

/// A [`RunStore`] in one SQLite file. Cloning it is cheap: the clones share
/// the connection.
///
/// No call holds up the async runtime's other tasks (see `blocking`).
/// Appends are committed in groups: an append queues itself, and whichever
/// caller holds the connection next commits everything queued in one
/// transaction (each append in its own savepoint, so that one refused
/// append does not undo the others). Under concurrency, many runs share one
/// commit; alone, a run pays for exactly one.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
    /// Appends waiting for the next group commit.
    pub(super) queue: Arc<Mutex<Vec<QueuedAppend>>>,
    /// Wakes this process's workers when it submits or releases a run
    /// (other processes' workers find it by polling).
    wake: Arc<tokio::sync::Notify>,
}

impl SqliteStore {
    /// The dead-letter queue, of one tenant's runs or of all, oldest first.
    fn dlq_query(&self, tenant: Option<&str>) -> Result<Vec<DlqEntry>, StoreError> {
        let c = self.lock();
        let mut stmt = c.prepare_cached(
            "SELECT d.run_id, d.workflow, d.step_id, d.error_type, d.message, d.at, d.replayed_as FROM dlq d \
             WHERE ?1 IS NULL OR EXISTS (SELECT 1 FROM runs r WHERE r.run_id = d.run_id AND r.tenant = ?1) \
             ORDER BY d.at, d.run_id",
        )?;
        let rows = stmt.query_map([tenant], |r| {
            Ok(DlqEntry {
                run_id: r.get(0)?,
                workflow: r.get(1)?,
                step_id: r.get(2)?,
                error_type: r.get(3)?,
                message: r.get(4)?,
                at: r.get(5)?,
                replayed_as: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Opens (creating if absent) the database at `path`, migrating it to the
    /// current schema. Refuses files that are not Weft databases or that come
    /// from a newer Weft.
    pub fn open(path: &Path, sync: SyncMode) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create the directory of the database {}: {e}", path.display()))
            })?;
        }
        Self::open_with(path, sync, OpenFlags::SQLITE_OPEN_CREATE)
    }

    /// Opens the database at `path` if it exists (migrating it as
    /// [`SqliteStore::open`] does); creates nothing, not even its directory.
    pub fn open_existing(path: &Path) -> Result<Self, StoreError> {
        if std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        Self::open_with(path, SyncMode::Normal, OpenFlags::empty())
    }

    fn open_with(path: &Path, sync: SyncMode, create: OpenFlags) -> Result<Self, StoreError> {
        let shown = path.display();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | create | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| match e {
            // Gone between the check and the open: as missing as it gets.
            rusqlite::Error::SqliteFailure(f, _)
                if create.is_empty() && f.code == rusqlite::ErrorCode::CannotOpen && !path.exists() =>
            {
                StoreError::Missing(shown.to_string())
            }
            e => StoreError::Backend(format!("cannot open the database {shown}: {e}")),
        })?;
        // Well under the 10 s lease: a writer never waits long enough to lose it.
        conn.busy_timeout(Duration::from_secs(3))?;
        let mut conn = conn;
        // Read in one transaction: a process creating the file at the same
        // moment is seen either before its first migration or after it,
        // never half-way (an empty `application_id` beside its tables).
        let version = Self::check_identity(&mut conn, path)?;
        Self::set_wal(&conn, path)?;
        conn.pragma_update(
            None,
            "synchronous",
            match sync {
                SyncMode::Normal => "NORMAL",
                SyncMode::Full => "FULL",
            },
        )?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Another process may have migrated meanwhile.
            let now: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if now as usize > i {
                continue;
            }
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)?;
            tx.pragma_update(None, "user_version", (i + 1) as u32)?;
            tx.commit()?;
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path.to_path_buf()),
            queue: Default::default(),
            wake: Default::default(),
        })
    }

    /// Refuses a file that is not a Weft database, or is one from a newer
    /// Weft; returns its schema version. The three facts are read in one
    /// transaction, so that they agree with each other.
    fn check_identity(conn: &mut Connection, path: &Path) -> Result<u32, StoreError> {
        let shown = path.display();
        let not_sqlite = |e: rusqlite::Error| {
            StoreError::Incompatible(format!(
                "{shown} is not a Weft database (SQLite says: {e}); pass another path with --db or WEFT_DB"
            ))
        };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).map_err(not_sqlite)?;
        let app_id: i32 = tx.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(not_sqlite)?;
        let version: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(not_sqlite)?;
        let tables: i64 = tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(not_sqlite)?;
        tx.commit().map_err(not_sqlite)?;
        if app_id != APPLICATION_ID && (app_id != 0 || tables > 0) {
            return Err(StoreError::Incompatible(format!(
                "{shown} is an SQLite database, but not a Weft one (application_id {app_id:#x}, {tables} schema \
                 object(s)); Weft will not write to it. Pass another path with --db or WEFT_DB"
            )));
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::Incompatible(format!(
                "{shown} has schema version {version}, from a newer Weft; this Weft understands up to version \
                 {SCHEMA_VERSION}. Upgrade Weft, or pass another path with --db"
            )));
        }
        Ok(version)
    }

    /// Puts the file in WAL mode. Switching needs a moment alone with the
    /// file, which SQLite does not wait for: a busy switch is tried again.
    fn set_wal(conn: &Connection, path: &Path) -> Result<(), StoreError> {
        let mut last = None;
        for _ in 0..200 {
            match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
                Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
                Ok(mode) => last = Some(format!("SQLite kept the journal mode `{mode}`")),
                Err(rusqlite::Error::SqliteFailure(f, m))
                    if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
                {
                    last = Some(m.unwrap_or_else(|| f.to_string()));
                }
                Err(e) => return Err(e.into()),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(StoreError::Backend(format!(
            "{} could not be put in WAL mode: {}; another program may hold the file open",
            path.display(),
            last.unwrap_or_default()
        )))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `PRAGMA integrity_check`; `Ok` holds its verdict (`ok` when sound).
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        let c = self.lock();
        let rows: Vec<String> =
            c.prepare("PRAGMA integrity_check")?.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
        Ok(rows.join("\n"))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn insert_entries(tx: &Connection, run_id: &str, entries: &[JournalEntry]) -> Result<(), StoreError> {
        let last: u64 =
            tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM journal WHERE run_id = ?1", [run_id], |r| r.get(0))?;
        let at = now_rfc3339();
        let mut stmt = tx.prepare_cached(
            "INSERT INTO journal (run_id, seq, at, kind, step_id, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (k, e) in entries.iter().enumerate() {
            let data = serde_json::to_string(e)?;
            stmt.execute(params![run_id, last + 1 + k as u64, at, e.kind(), e.step_id(), data])?;
        }
        Ok(())
    }

    /// Inserts a run's row, spec, first journal entries and component blobs.
    #[allow(clippy::too_many_arguments)]
    fn insert_run(
        tx: &rusqlite::Transaction<'_>,
        run: &NewRun,
        status: &str,
        owner: &str,
        lease_until_ms: u64,
        epoch: u64,
        first: &[JournalEntry],
        blobs: &[ComponentBlob],
    ) -> Result<(), StoreError> {
        let exists: bool =
            tx.query_row("SELECT EXISTS(SELECT 1 FROM runs WHERE run_id = ?1)", [&run.run_id], |r| r.get(0))?;
        if exists {
            return Err(StoreError::Duplicate(run.run_id.clone()));
        }
        let seq: u64 = tx.query_row("SELECT COALESCE(MAX(created_seq), 0) + 1 FROM runs", [], |r| r.get(0))?;
        let now = now_rfc3339();
        let parent = run.parent.as_ref().map(|p| p.run_id.as_str());
        tx.execute(
            "INSERT INTO runs (run_id, workflow, status, owner, lease_until_ms, created_at, updated_at, \
             created_seq, lease_epoch, parent_run_id, tenant) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9, ?10)",
            params![run.run_id, run.workflow, status, owner, lease_until_ms, now, seq, epoch, parent, run.tenant()],
        )?;
        tx.execute(
            "INSERT INTO run_specs (run_id, spec) VALUES (?1, ?2)",
            params![run.run_id, serde_json::to_string(run)?],
        )?;
        let mut all = vec![JournalEntry::RunCreated { start_time: now }];
        all.extend_from_slice(first);
        Self::insert_entries(tx, &run.run_id, &all)?;
        let mut put = tx.prepare_cached("INSERT OR IGNORE INTO blobs (digest, bytes) VALUES (?1, ?2)")?;
        for b in blobs {
            put.execute(params![b.digest, b.bytes.as_slice()])?;
        }
        Ok(())
    }

    /// Takes the lease of `run_id` inside `tx`, bumping its epoch; a
    /// worker's claim (`counted`) also counts as a claim without progress
    /// until the run makes some (an explicit resume does not count).
    fn take_lease(
        tx: &rusqlite::Transaction<'_>,
        run_id: &str,
        owner: &str,
        lease_ms: u64,
        counted: bool,
    ) -> Result<Lease, StoreError> {
        let (epoch, idle_claims): (u64, u32) = tx.query_row(
            "UPDATE runs SET owner = ?2, lease_until_ms = ?3, lease_epoch = lease_epoch + 1, \
             idle_claims = idle_claims + ?4, status = 'running' WHERE run_id = ?1 RETURNING lease_epoch, idle_claims",
            params![run_id, owner, now_ms().saturating_add(lease_ms), u32::from(counted)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Lease { run_id: run_id.into(), owner: owner.into(), epoch, idle_claims })
    }

    fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            spec: r.get(0)?,
            status: r.get(1)?,
            owner: r.get(2)?,
            lease_until_ms: r.get(3)?,
            cancel_requested: r.get(4)?,
            created_at: r.get(5)?,
            updated_at: r.get(6)?,
            output: r.get(7)?,
            paused: r.get(8)?,
            lease_epoch: r.get(9)?,
        })
    }
}

impl RunStore for SqliteStore {
    fn info(&self) -> StoreFuture<'_, StoreInfo> {
        self.off(move |this| {
            let c = this.lock();
            let active: u64 = c.query_row("SELECT count(*) FROM runs WHERE status = 'running'", [], |r| r.get(0))?;
            let version: u32 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            Ok(StoreInfo {
                kind: "sqlite".into(),
                location: this.path.display().to_string(),
                schema_version: version,
                active_runs: active,
            })
        })
    }

    fn create_run<'a>(
        &'a self,
        run: &'a NewRun,
        first: &'a [JournalEntry],
        blobs: &'a [ComponentBlob],
    ) -> StoreFuture<'a, Lease> {
        let run = run.clone();
        let first = first.to_vec();
        let blobs = blobs.to_vec();
        self.off(move |this| {
            let run = &run;
            let first = first.as_slice();
            let blobs = blobs.as_slice();
            let mut c = this.lock();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let lease_until = now_ms().saturating_add(run.lease_ms);
            Self::insert_run(&tx, run, "running", &run.owner, lease_until, 1, first, blobs)?;
            tx.commit()?;
            Ok(Lease::first(run))
        })
    }

    fn submit_run<'a>(&'a self, run: &'a NewRun, blobs: &'a [ComponentBlob]) -> StoreFuture<'a, ()> {
        let run = run.clone();
        let blobs = blobs.to_vec();
        self.off(move |this| {
            let run = &run;
            let blobs = blobs.as_slice();
            let mut c = this.lock();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            Self::insert_run(&tx, run, "pending", "", 0, 0, &[], blobs)?;
            tx.commit()?;
            this.wake.notify_one();
            Ok(())
        })
    }

    fn append<'a>(&'a self, lease: &'a Lease, entries: Vec<JournalEntry>) -> StoreFuture<'a, ()> {
        let lease = lease.clone();
        self.off(move |s| s.append_grouped(lease, entries))
    }

    fn journal<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<Journaled>> {
        self.journal_after(run_id, 0)
    }

    fn journal_after<'a>(&'a self, run_id: &'a str, after: u64) -> StoreFuture<'a, Vec<Journaled>> {
        let run_id = run_id.to_owned();
        let after = after.min(i64::MAX as u64) as i64;
        self.off(move |this| {
            let run_id = run_id.as_str();
            let c = this.lock();
            let exists: bool =
                c.query_row("SELECT EXISTS(SELECT 1 FROM runs WHERE run_id = ?1)", [run_id], |r| r.get(0))?;
            if !exists {
                return Err(StoreError::NotFound(run_id.into()));
            }
            let mut stmt =
                c.prepare_cached("SELECT seq, at, data FROM journal WHERE run_id = ?1 AND seq > ?2 ORDER BY seq")?;
            let rows = stmt.query_map(params![run_id, after], |r| {
                Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, at, data) = row?;
                let entry: JournalEntry = serde_json::from_str(&data).map_err(|e| {
                    StoreError::Backend(format!("journal entry {seq} of run `{run_id}` cannot be read: {e}"))
                })?;
                out.push(Journaled { seq, at, entry });
            }
            Ok(out)
        })
    }

    fn get_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, RunRecord> {
        let run_id = run_id.to_owned();
        self.off(move |this| {
            let run_id = run_id.as_str();
            let c = this.lock();
            let row = c
                .query_row(
                    "SELECT s.spec, r.status, r.owner, r.lease_until_ms, r.cancel_requested, r.created_at, \
                 r.updated_at, r.output, r.paused, r.lease_epoch FROM runs r JOIN run_specs s \
                 ON s.run_id = r.run_id WHERE r.run_id = ?1",
                    [run_id],
                    Self::run_row,
                )
                .optional()?;
            let Some(row) = row else {
                return Err(StoreError::NotFound(run_id.into()));
            };
            let mut run: NewRun = serde_json::from_str(&row.spec)?;
            run.owner = row.owner;
            let output = row.output.map(|o| serde_json::from_str(&o)).transpose()?;
            Ok(RunRecord {
                run,
                status: parse_status(&row.status)?,
                created_at: row.created_at,
                updated_at: row.updated_at,
                output,
                cancel_requested: row.cancel_requested,
                lease_until_ms: row.lease_until_ms,
                lease_live: row.lease_until_ms > now_ms(),
                lease_epoch: row.lease_epoch,
                paused: row.paused,
            })
        })
    }

    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> StoreFuture<'a, Vec<RunSummary>> {
        let filter = filter.clone();
        self.off(move |this| {
            let filter = &filter;
            let c = this.lock();
            let status = filter.status.map(ExecutionStatus::as_str);
            let limit = if filter.limit == 0 { -1 } else { filter.limit as i64 };
            // `paused` is a running run that waits only on gates.
            let only_paused = filter.status == Some(ExecutionStatus::Paused);
            let status = if only_paused { Some("running") } else { status };
            let before = filter.before.map(|b| b.min(i64::MAX as u64) as i64);
            // Only the filters given are in the statement, so that SQLite
            // picks the index that fits them (a `?1 IS NULL OR ...` form
            // makes it scan every run).
            let mut conditions = Vec::new();
            let mut values: Vec<rusqlite::types::Value> = Vec::new();
            let mut bind = |condition: &str, value: rusqlite::types::Value| {
                values.push(value);
                conditions.push(condition.replace('?', &format!("?{}", values.len())));
            };
            if let Some(t) = &filter.tenant {
                bind("tenant = ?", t.clone().into());
            }
            if let Some(st) = status {
                bind("status = ?", st.to_string().into());
            }
            if let Some(w) = &filter.workflow {
                bind("workflow = ?", w.clone().into());
            }
            if let Some(b) = before {
                bind("created_seq < ?", b.into());
            }
            if only_paused {
                conditions.push("paused = 1".into());
            }
            let filters =
                if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
            values.push(limit.into());
            let mut stmt = c.prepare(&format!(
                "SELECT run_id, workflow, status, created_at, updated_at, owner, lease_until_ms, paused, created_seq \
                 FROM runs {filters} ORDER BY created_seq DESC LIMIT ?{}",
                values.len()
            ))?;
            let params = rusqlite::params_from_iter(values);
            let rows = stmt.query_map(params, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, u64>(6)?,
                    r.get::<_, bool>(7)?,
                    r.get::<_, u64>(8)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (run_id, workflow, status, created_at, updated_at, owner, lease, paused, seq) = row?;
                let status = parse_status(&status)?;
                out.push(RunSummary {
                    run_id,
                    workflow,
                    status: if paused && status == ExecutionStatus::Running { ExecutionStatus::Paused } else { status },
                    created_at,
                    updated_at,
                    owner: (lease > 0).then_some(owner),
                    seq,
                });
            }
            Ok(out)
        })
    }

    fn claim<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        lease_ms: u64,
        steal_from: Option<&'a str>,
    ) -> StoreFuture<'a, Lease> {
        let run_id = run_id.to_owned();
        let owner = owner.to_owned();
        let steal_from = steal_from.map(str::to_owned);
        self.off(move |this| {
            let run_id = run_id.as_str();
            let owner = owner.as_str();
            let steal_from = steal_from.as_deref();
            let mut c = this.lock();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row: Option<(String, u64, String)> = tx
                .query_row("SELECT owner, lease_until_ms, status FROM runs WHERE run_id = ?1", [run_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            let Some((current, until, status)) = row else { return Err(StoreError::NotFound(run_id.into())) };
            if status != "running" && status != "pending" {
                return Err(StoreError::Finished(run_id.into()));
            }
            let now = now_ms();
            let free = until <= now || current == owner || steal_from.is_some_and(|s| s == current);
            if !free {
                return Err(StoreError::Owned { run_id: run_id.into(), owner: current, remaining_ms: until - now });
            }
            let lease = Self::take_lease(&tx, run_id, owner, lease_ms, false)?;
            tx.commit()?;
            Ok(lease)
        })
    }

    fn claim_next<'a>(&'a self, owner: &'a str, lease_ms: u64, limit: usize) -> StoreFuture<'a, Vec<Lease>> {
        let owner = owner.to_owned();
        self.off(move |this| {
            let owner = owner.as_str();
            let mut c = this.lock();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids: Vec<String> = tx
                .prepare_cached(
                    // Fair across tenants: each tenant's oldest first, then each one's second, ...
                    "SELECT run_id FROM (SELECT r.run_id, r.created_seq, \
                     ROW_NUMBER() OVER (PARTITION BY r.tenant ORDER BY r.created_seq) AS k \
                     FROM runs r WHERE r.status IN ('pending', 'running') \
                     AND r.lease_until_ms <= ?1 AND (r.parent_run_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs p \
                     WHERE p.run_id = r.parent_run_id AND p.status IN ('pending', 'running')))) \
                     WHERE k <= ?2 ORDER BY k, created_seq LIMIT ?2",
                )?
                .query_map(params![now_ms(), limit as i64], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let leases =
                ids.iter().map(|id| Self::take_lease(&tx, id, owner, lease_ms, true)).collect::<Result<_, _>>()?;
            tx.commit()?;
            Ok(leases)
        })
    }

    fn heartbeat<'a>(&'a self, lease: &'a Lease, lease_ms: u64) -> StoreFuture<'a, bool> {
        let lease = lease.clone();
        self.off(move |this| {
            let lease = &lease;
            let c = this.lock();
            let row: Option<(u64, bool, String)> = c
                .query_row(
                    "SELECT lease_epoch, cancel_requested, status FROM runs WHERE run_id = ?1",
                    [&lease.run_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((epoch, cancel, status)) = row else { return Err(StoreError::NotFound(lease.run_id.clone())) };
            if epoch != lease.epoch {
                return Err(StoreError::LeaseLost(lease.run_id.clone()));
            }
            if status == "running" {
                c.execute(
                    "UPDATE runs SET lease_until_ms = ?3 WHERE run_id = ?1 AND lease_epoch = ?2",
                    params![lease.run_id, lease.epoch, now_ms().saturating_add(lease_ms)],
                )?;
            }
            Ok(cancel)
        })
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()> {
        let lease = lease.clone();
        self.off(move |this| {
            let lease = &lease;
            let c = this.lock();
            c.execute(
                "UPDATE runs SET lease_until_ms = 0 WHERE run_id = ?1 AND lease_epoch = ?2 AND status = 'running'",
                params![lease.run_id, lease.epoch],
            )?;
            this.wake.notify_one();
            Ok(())
        })
    }

    fn wait_for_work(&self, timeout: std::time::Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
            Ok(())
        })
    }

    fn blob_get<'a>(&'a self, digest: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let digest = digest.to_owned();
        self.off(move |this| {
            let digest = digest.as_str();
            let c = this.lock();
            Ok(c.query_row("SELECT bytes FROM blobs WHERE digest = ?1", [digest], |r| r.get(0)).optional()?)
        })
    }

    fn blob_put<'a>(&'a self, blob: &'a ComponentBlob) -> StoreFuture<'a, bool> {
        let blob = blob.clone();
        self.off(move |this| {
            let c = this.lock();
            let n = c.execute(
                "INSERT OR IGNORE INTO blobs (digest, bytes) VALUES (?1, ?2)",
                params![blob.digest, blob.bytes.as_slice()],
            )?;
            Ok(n > 0)
        })
    }

    fn request_cancel<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool> {
        let run_id = run_id.to_owned();
        self.off(move |this| {
            let run_id = run_id.as_str();
            let c = this.lock();
            // One statement: a run that finishes meanwhile is not flagged.
            let n = c.execute(
                "UPDATE runs SET cancel_requested = 1 WHERE run_id = ?1 AND status IN ('pending', 'running')",
                [run_id],
            )?;
            if n > 0 {
                return Ok(true);
            }
            let exists: bool =
                c.query_row("SELECT EXISTS(SELECT 1 FROM runs WHERE run_id = ?1)", [run_id], |r| r.get(0))?;
            if exists { Ok(false) } else { Err(StoreError::NotFound(run_id.into())) }
        })
    }

    fn dlq_list(&self) -> StoreFuture<'_, Vec<DlqEntry>> {
        self.off(move |this| this.dlq_query(None))
    }

    fn dlq_list_of<'a>(&'a self, tenant: &'a str) -> StoreFuture<'a, Vec<DlqEntry>> {
        let tenant = tenant.to_owned();
        self.off(move |this| this.dlq_query(Some(&tenant)))
    }

    fn dlq_waiting(&self) -> StoreFuture<'_, u64> {
        self.off(move |this| {
            let n: i64 =
                this.lock().query_row("SELECT count(*) FROM dlq WHERE replayed_as IS NULL", [], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        })
    }

    fn dlq_mark_replayed<'a>(&'a self, run_id: &'a str, new_run_id: &'a str) -> StoreFuture<'a, ()> {
        let run_id = run_id.to_owned();
        let new_run_id = new_run_id.to_owned();
        self.off(move |this| {
            let run_id = run_id.as_str();
            let new_run_id = new_run_id.as_str();
            let c = this.lock();
            let n = c.execute("UPDATE dlq SET replayed_as = ?2 WHERE run_id = ?1", params![run_id, new_run_id])?;
            if n == 0 { Err(StoreError::NotFound(run_id.into())) } else { Ok(()) }
        })
    }

    fn breaker_load<'a>(&'a self, component: &'a str) -> StoreFuture<'a, Option<BreakerRecord>> {
        let component = component.to_owned();
        self.off(move |this| {
            let component = component.as_str();
            let c = this.lock();
            let row: Option<(String, u32, u64, u64)> = c
                .query_row(
                    "SELECT state, failures, since_ms, version FROM breakers WHERE component = ?1",
                    [component],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            row.map(|(state, failures, since_ms, version)| {
                let state = BreakerState::parse(&state)
                    .ok_or_else(|| StoreError::Backend(format!("a stored breaker has the unknown state `{state}`")))?;
                Ok(BreakerRecord { state, failures, since_ms, version })
            })
            .transpose()
        })
    }

    fn breaker_cas<'a>(&'a self, component: &'a str, expected: u64, next: &'a BreakerRecord) -> StoreFuture<'a, bool> {
        let component = component.to_owned();
        let next = next.clone();
        self.off(move |this| {
            let component = component.as_str();
            let next = &next;
            let mut c = this.lock();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: u64 = tx
                .query_row("SELECT version FROM breakers WHERE component = ?1", [component], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            if current != expected {
                return Ok(false);
            }
            tx.execute(
                "INSERT OR REPLACE INTO breakers (component, state, failures, since_ms, version) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
                params![component, next.state.as_str(), next.failures, next.since_ms, expected + 1],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn memo_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<MemoEntry>> {
        let key = key.to_owned();
        self.off(move |s| s.memo_get_now(&key))
    }

    fn memo_put<'a>(&'a self, key: &'a str, entry: &'a MemoEntry, max_bytes: u64) -> StoreFuture<'a, ()> {
        let (key, entry) = (key.to_owned(), entry.clone());
        self.off(move |s| s.memo_put_now(&key, &entry, max_bytes))
    }

    fn memo_stats(&self) -> StoreFuture<'_, MemoStats> {
        self.off(|s| s.memo_stats_now())
    }

    fn memo_clear(&self) -> StoreFuture<'_, u64> {
        self.off(|s| s.memo_clear_now())
    }

    fn signal_put<'a>(&'a self, run_id: &'a str, step_id: &'a str, signal: &'a Signal) -> StoreFuture<'a, SignalPut> {
        let (run_id, step_id, signal) = (run_id.to_owned(), step_id.to_owned(), signal.clone());
        self.off(move |s| s.signal_put_now(&run_id, &step_id, &signal))
    }

    fn signal_get<'a>(&'a self, run_id: &'a str, step_id: &'a str) -> StoreFuture<'a, Option<Signal>> {
        let (run_id, step_id) = (run_id.to_owned(), step_id.to_owned());
        self.off(move |s| s.signal_get_now(&run_id, &step_id))
    }

    fn usage_add<'a>(&'a self, tenant: &'a str, counter: &'a str, delta: i64, limit: u64) -> StoreFuture<'a, UsageAdd> {
        let (tenant, counter) = (tenant.to_owned(), counter.to_owned());
        self.off(move |s| s.usage_add_now(&tenant, &counter, delta, limit))
    }

    fn usage_get<'a>(&'a self, tenant: &'a str, counter: &'a str) -> StoreFuture<'a, u64> {
        let (tenant, counter) = (tenant.to_owned(), counter.to_owned());
        self.off(move |s| s.usage_get_now(&tenant, &counter))
    }

    fn usage_prune<'a>(&'a self, tenant: &'a str, prefix: &'a str, before: &'a str) -> StoreFuture<'a, u64> {
        let (tenant, prefix, before) = (tenant.to_owned(), prefix.to_owned(), before.to_owned());
        self.off(move |s| s.usage_prune_now(&tenant, &prefix, &before))
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}
