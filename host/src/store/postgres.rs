//! The shared store for many workers: PostgreSQL, through one connection
//! pool per process (`deadpool-postgres` over `tokio-postgres`), plus one
//! connection that LISTENs for wake-up hints.
//!
//! How the guarantees hold across machines:
//! - **Fencing.** Every claim bumps the run's `lease_epoch` under the row
//!   lock; every append and heartbeat is an `UPDATE ... WHERE lease_epoch =
//!   $epoch`, in the same transaction as the journal inserts. Zero rows means
//!   the lease is lost, and the write is refused, never retried. The
//!   journal's primary key `(run_id, seq)` stops two writers appending the
//!   same entry.
//! - **Clocks.** Leases are computed and compared with the database's
//!   `clock_timestamp()`, never a worker's clock.
//! - **Claiming.** `claim_next` takes the oldest runnable runs with `FOR
//!   UPDATE SKIP LOCKED`, so workers claiming together never wait on each
//!   other and never take the same run.
//! - **Wake-up.** A submission or a released lease sends a NOTIFY (at most
//!   one per process every 50 ms, outside any journal transaction). It is a
//!   hint only: workers poll as the authority.
//! - **Migrations** run once, under an advisory lock, the first time the
//!   store is used; a database from a newer Weft is refused.
//!
//! The key-value, memo, signal, breaker and dead-letter tables are in
//! `postgres_state.rs`, the schema in `postgres_schema.rs`. What is left
//! here is one concept, `RunStore` on PostgreSQL: the connection (pool,
//! migrations, LISTEN) and one method per store call, each its SQL; it is
//! long because the trait is.

use super::postgres_schema::MIGRATIONS;
use super::{
    ComponentBlob, JournalEntry, Journaled, Lease, NewRun, RunFilter, RunRecord, RunStore, RunSummary, StoreError,
    StoreFuture, StoreInfo, dead_letter_in, finished_in, now_rfc3339, parse_status, paused_after,
};
use crate::contract::ExecutionStatus;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Transaction};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OnceCell};
use tokio_postgres::NoTls;

/// The schema version this build writes to PostgreSQL.
pub const PG_SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The advisory lock migrations are taken under ("Weft" in ASCII).
const MIGRATION_LOCK: i64 = 0x5765_6674;
/// The NOTIFY channel of wake-up hints.
const CHANNEL: &str = "weft_runs";
/// The database's clock, in Unix milliseconds.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
/// At most one NOTIFY per process this often.
const NOTIFY_EVERY: Duration = Duration::from_millis(50);

/// A [`RunStore`] in a PostgreSQL database.
pub struct PostgresStore {
    pool: Pool,
    config: tokio_postgres::Config,
    /// Where it is, without the password.
    shown: String,
    /// Set once the schema is current.
    migrated: OnceCell<()>,
    /// The LISTEN connection (None: it could not be opened; polling only).
    listener: OnceCell<Option<tokio_postgres::Client>>,
    /// Woken by a NOTIFY.
    wake: Arc<Notify>,
    /// When this process last sent a NOTIFY.
    last_notify: Mutex<Option<Instant>>,
}

/// A PostgreSQL error as a store error, with the server's message.
pub(super) fn pg(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("PostgreSQL: {} (SQLSTATE {})", db.message(), db.code().code())),
        None => StoreError::Backend(format!("PostgreSQL: {e}")),
    }
}

/// A count or size as PostgreSQL's BIGINT.
pub(super) fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored BIGINT as a count or size.
pub(super) fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl PostgresStore {
    /// A store at `url` (`postgres://user:password@host:port/database`),
    /// with a pool of at most `pool_size` connections. Nothing is
    /// connected yet: the first call connects and migrates the schema.
    pub fn open(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Incompatible(format!(
                "`{}` is not a PostgreSQL URL Weft can use ({e}); write it as postgres://USER@HOST:PORT/DATABASE",
                redact(url)
            ))
        })?;
        let shown = redact(url);
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot set up the connection pool for {shown}: {e}")))?;
        Ok(Self {
            pool,
            config,
            shown,
            migrated: OnceCell::new(),
            listener: OnceCell::new(),
            wake: Arc::new(Notify::new()),
            last_notify: Mutex::new(None),
        })
    }

    /// Where the store is, without the password.
    pub fn location(&self) -> &str {
        &self.shown
    }

    /// A pooled connection, without the migration check.
    async fn connection(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            StoreError::Backend(format!(
                "cannot reach PostgreSQL at {}: {e}; check that the server runs and that the database exists",
                self.shown
            ))
        })
    }

    /// A pooled connection to a database whose schema is current.
    pub(super) async fn client(&self) -> Result<Object, StoreError> {
        self.migrated.get_or_try_init(|| self.migrate()).await?;
        self.connection().await
    }

    /// Brings the schema to [`PG_SCHEMA_VERSION`], under the advisory lock;
    /// refuses a database that is not Weft's, or is from a newer Weft.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.connection().await?;
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
        let has_meta: bool = tx.query_one("SELECT to_regclass('weft_meta') IS NOT NULL", &[]).await.map_err(pg)?.get(0);
        if !has_meta {
            let foreign: bool = tx.query_one("SELECT to_regclass('runs') IS NOT NULL", &[]).await.map_err(pg)?.get(0);
            if foreign {
                return Err(StoreError::Incompatible(format!(
                    "the database {} has a `runs` table that is not Weft's (no weft_meta table); Weft will not \
                     write to it. Give Weft a database of its own",
                    self.shown
                )));
            }
            tx.batch_execute(
                "CREATE TABLE weft_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); \
                 INSERT INTO weft_meta (key, value) VALUES ('schema_version', '0');",
            )
            .await
            .map_err(pg)?;
        }
        let version: String =
            tx.query_one("SELECT value FROM weft_meta WHERE key = 'schema_version'", &[]).await.map_err(pg)?.get(0);
        let version: u32 = version.parse().map_err(|_| {
            StoreError::Incompatible(format!(
                "the database {} has the unreadable schema version `{version}`",
                self.shown
            ))
        })?;
        if version > PG_SCHEMA_VERSION {
            return Err(StoreError::Incompatible(format!(
                "the database {} has schema version {version}, from a newer Weft; this Weft understands up to \
                 version {PG_SCHEMA_VERSION}. Upgrade Weft, or give it another database",
                self.shown
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(sql).await.map_err(pg)?;
            let next = (i + 1).to_string();
            tx.execute("UPDATE weft_meta SET value = $1 WHERE key = 'schema_version'", &[&next]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    /// Sends a wake-up hint to the workers, at most once per [`NOTIFY_EVERY`].
    async fn hint(&self) {
        {
            let mut last = self.last_notify.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < NOTIFY_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let sent = async {
            let c = self.client().await?;
            c.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).await.map_err(pg)
        };
        if let Err(e) = sent.await {
            tracing::debug!(error = %e, "the wake-up hint could not be sent; workers will find the run by polling");
        }
    }

    /// Opens the LISTEN connection once; `None` when it cannot be opened.
    async fn listen(&self) {
        self.listener
            .get_or_init(|| async {
                let (client, mut connection) = match self.config.connect(NoTls).await {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %pg(e), "no LISTEN connection; workers poll only");
                        return None;
                    }
                };
                let wake = self.wake.clone();
                tokio::spawn(async move {
                    let mut messages =
                        std::pin::pin!(futures_util::stream::poll_fn(move |cx| connection.poll_message(cx)));
                    while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(_)) => wake.notify_one(),
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %pg(e), "the LISTEN connection closed; workers poll only");
                                break;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => Some(client),
                    Err(e) => {
                        tracing::warn!(error = %pg(e), "LISTEN failed; workers poll only");
                        None
                    }
                }
            })
            .await;
    }

    /// Inserts a run's row, spec, first entries, and the blobs the store lacks.
    #[allow(clippy::too_many_arguments)]
    async fn insert_run(
        tx: &Transaction<'_>,
        run: &NewRun,
        status: &str,
        owner: &str,
        lease_ms: Option<i64>,
        epoch: i64,
        first: &[JournalEntry],
        blobs: &[ComponentBlob],
    ) -> Result<(), StoreError> {
        let now = now_rfc3339();
        let parent = run.parent.as_ref().map(|p| p.run_id.as_str());
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO runs (run_id, workflow, status, owner, lease_until_ms, lease_epoch, parent_run_id, \
                     created_at, updated_at, tenant) VALUES ($1, $2, $3, $4, \
                     CASE WHEN $5::bigint IS NULL THEN 0 ELSE {NOW_MS} + $5::bigint END, $6, $7, $8, $8, $9) \
                     ON CONFLICT (run_id) DO NOTHING"
                ),
                &[&run.run_id, &run.workflow, &status, &owner, &lease_ms, &epoch, &parent, &now, &run.tenant()],
            )
            .await
            .map_err(pg)?;
        if inserted == 0 {
            return Err(StoreError::Duplicate(run.run_id.clone()));
        }
        let spec = serde_json::to_string(run)?;
        tx.execute("INSERT INTO run_specs (run_id, spec) VALUES ($1, $2)", &[&run.run_id, &spec]).await.map_err(pg)?;
        let mut all = vec![JournalEntry::RunCreated { start_time: now }];
        all.extend_from_slice(first);
        Self::insert_entries(tx, &run.run_id, 0, &all).await?;
        if !blobs.is_empty() {
            let digests: Vec<&str> = blobs.iter().map(|b| b.digest.as_str()).collect();
            let have: Vec<String> = tx
                .query("SELECT digest FROM blobs WHERE digest = ANY($1)", &[&digests])
                .await
                .map_err(pg)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for b in blobs.iter().filter(|b| !have.contains(&b.digest)) {
                tx.execute(
                    "INSERT INTO blobs (digest, bytes) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
                    &[&b.digest, &b.bytes.as_slice()],
                )
                .await
                .map_err(pg)?;
            }
        }
        Ok(())
    }

    /// Appends `entries` after sequence number `last`.
    async fn insert_entries(
        tx: &Transaction<'_>,
        run_id: &str,
        last: i64,
        entries: &[JournalEntry],
    ) -> Result<(), StoreError> {
        let at = now_rfc3339();
        let stmt = tx
            .prepare_cached(
                "INSERT INTO journal (run_id, seq, at, kind, step_id, data) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .await
            .map_err(pg)?;
        for (k, e) in entries.iter().enumerate() {
            let data = serde_json::to_string(e)?;
            let seq = last + 1 + k as i64;
            tx.execute(&stmt, &[&run_id, &seq, &at, &e.kind(), &e.step_id(), &data]).await.map_err(pg)?;
        }
        Ok(())
    }

    /// Why a fenced write to `run_id` matched no row.
    async fn refusal(c: &tokio_postgres::Client, run_id: &str) -> StoreError {
        match c.query_opt("SELECT status FROM runs WHERE run_id = $1", &[&run_id]).await {
            Ok(None) => StoreError::NotFound(run_id.into()),
            Ok(Some(row)) => match row.get::<_, &str>(0) {
                "running" | "pending" => StoreError::LeaseLost(run_id.into()),
                _ => StoreError::Finished(run_id.into()),
            },
            Err(e) => pg(e),
        }
    }

    /// The claim statement: takes the lease of the runs `picked` selects;
    /// a worker's claim (`counted`) counts as a claim without progress.
    fn take_lease_sql(picked: &str, counted: bool) -> String {
        let idle = u32::from(counted);
        format!(
            "WITH picked AS ({picked}) UPDATE runs SET owner = $1, lease_until_ms = {NOW_MS} + $2::bigint, \
             lease_epoch = runs.lease_epoch + 1, idle_claims = runs.idle_claims + {idle}, status = 'running' \
             FROM picked WHERE runs.run_id = picked.run_id \
             RETURNING runs.run_id, runs.lease_epoch, runs.idle_claims, runs.created_seq"
        )
    }
}

/// `text` without NUL characters (PostgreSQL's TEXT cannot hold them).
fn no_nul(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

/// `url` without its password.
pub(super) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (rest, query) = rest.split_once('?').map_or((rest, None), |(r, q)| (r, Some(q)));
    let shown = match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => format!("{scheme}://{rest}"),
    };
    match query {
        None => shown,
        Some(q) => {
            let kept: Vec<&str> = q.split('&').filter(|kv| !kv.starts_with("password=")).collect();
            if kept.is_empty() { shown } else { format!("{shown}?{}", kept.join("&")) }
        }
    }
}

impl RunStore for PostgresStore {
    fn info(&self) -> StoreFuture<'_, StoreInfo> {
        Box::pin(async move {
            let c = self.client().await?;
            let active: i64 =
                c.query_one("SELECT count(*) FROM runs WHERE status = 'running'", &[]).await.map_err(pg)?.get(0);
            Ok(StoreInfo {
                kind: "postgres".into(),
                location: self.shown.clone(),
                schema_version: PG_SCHEMA_VERSION,
                active_runs: unsigned(active),
            })
        })
    }

    fn create_run<'a>(
        &'a self,
        run: &'a NewRun,
        first: &'a [JournalEntry],
        blobs: &'a [ComponentBlob],
    ) -> StoreFuture<'a, Lease> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(pg)?;
            Self::insert_run(&tx, run, "running", &run.owner, Some(big(run.lease_ms)), 1, first, blobs).await?;
            tx.commit().await.map_err(pg)?;
            Ok(Lease::first(run))
        })
    }

    fn submit_run<'a>(&'a self, run: &'a NewRun, blobs: &'a [ComponentBlob]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            {
                let mut c = self.client().await?;
                let tx = c.transaction().await.map_err(pg)?;
                Self::insert_run(&tx, run, "pending", "", None, 0, &[], blobs).await?;
                tx.commit().await.map_err(pg)?;
            }
            self.hint().await;
            Ok(())
        })
    }

    fn append<'a>(&'a self, lease: &'a Lease, entries: Vec<JournalEntry>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let run_id = lease.run_id.as_str();
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(pg)?;
            let finished = finished_in(&entries);
            let status = finished.map(|o| o.execution_status.as_str());
            let output = finished.map(serde_json::to_string).transpose()?;
            let now = now_rfc3339();
            let progress = entries.iter().any(JournalEntry::is_progress);
            let paused = paused_after(&entries);
            let epoch = big(lease.epoch);
            // The fence: the row lock, and the epoch, in one statement.
            let row = tx
                .query_opt(
                    "UPDATE runs SET updated_at = $3, paused = $4, \
                     idle_claims = CASE WHEN $5 THEN 0 ELSE idle_claims END, \
                     status = COALESCE($6, status), output = COALESCE($7, output), \
                     lease_until_ms = CASE WHEN $6::text IS NULL THEN lease_until_ms ELSE 0 END \
                     WHERE run_id = $1 AND lease_epoch = $2 AND status = 'running' RETURNING workflow",
                    &[&run_id, &epoch, &now, &paused, &progress, &status, &output],
                )
                .await
                .map_err(pg)?;
            let Some(row) = row else {
                drop(tx);
                return Err(Self::refusal(&c, run_id).await);
            };
            let workflow: String = row.get(0);
            let last: i64 = tx
                .query_one("SELECT COALESCE(MAX(seq), 0)::bigint FROM journal WHERE run_id = $1", &[&run_id])
                .await
                .map_err(pg)?
                .get(0);
            Self::insert_entries(&tx, run_id, last, &entries).await?;
            if let Some((step_id, error_type, message)) = dead_letter_in(&entries) {
                // PostgreSQL's TEXT holds no NUL; a plugin's message may.
                let (step_id, error_type, message) = (no_nul(step_id), no_nul(error_type), no_nul(message));
                tx.execute(
                    "INSERT INTO dlq (run_id, workflow, step_id, error_type, message, at, replayed_as) \
                     VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT (run_id) DO UPDATE SET \
                     workflow = EXCLUDED.workflow, step_id = EXCLUDED.step_id, error_type = EXCLUDED.error_type, \
                     message = EXCLUDED.message, at = EXCLUDED.at, replayed_as = NULL",
                    &[&run_id, &workflow, &step_id, &error_type, &message, &now],
                )
                .await
                .map_err(pg)?;
            }
            tx.commit().await.map_err(pg)
        })
    }

    fn journal<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<Journaled>> {
        self.journal_after(run_id, 0)
    }

    fn journal_after<'a>(&'a self, run_id: &'a str, after: u64) -> StoreFuture<'a, Vec<Journaled>> {
        Box::pin(async move {
            let c = self.client().await?;
            if c.query_opt("SELECT 1 FROM runs WHERE run_id = $1", &[&run_id]).await.map_err(pg)?.is_none() {
                return Err(StoreError::NotFound(run_id.into()));
            }
            let rows = c
                .query(
                    "SELECT seq, at, data FROM journal WHERE run_id = $1 AND seq > $2 ORDER BY seq",
                    &[&run_id, &big(after)],
                )
                .await
                .map_err(pg)?;
            rows.iter()
                .map(|r| {
                    let seq = unsigned(r.get(0));
                    let entry: JournalEntry = serde_json::from_str(r.get(2)).map_err(|e| {
                        StoreError::Backend(format!("journal entry {seq} of run `{run_id}` cannot be read: {e}"))
                    })?;
                    Ok(Journaled { seq, at: r.get(1), entry })
                })
                .collect()
        })
    }

    fn get_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, RunRecord> {
        Box::pin(async move {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    &format!(
                        "SELECT s.spec, r.status, r.owner, r.lease_until_ms, r.cancel_requested, r.created_at, \
                         r.updated_at, r.output, r.paused, r.lease_epoch, r.lease_until_ms > {NOW_MS} \
                         FROM runs r JOIN run_specs s ON s.run_id = r.run_id WHERE r.run_id = $1"
                    ),
                    &[&run_id],
                )
                .await
                .map_err(pg)?;
            let Some(row) = row else { return Err(StoreError::NotFound(run_id.into())) };
            let mut run: NewRun = serde_json::from_str(row.get(0))?;
            run.owner = row.get(2);
            let output: Option<&str> = row.get(7);
            Ok(RunRecord {
                run,
                status: parse_status(row.get(1))?,
                created_at: row.get(5),
                updated_at: row.get(6),
                output: output.map(serde_json::from_str).transpose()?,
                cancel_requested: row.get(4),
                lease_until_ms: unsigned(row.get(3)),
                lease_live: row.get(10),
                lease_epoch: unsigned(row.get(9)),
                paused: row.get(8),
            })
        })
    }

    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> StoreFuture<'a, Vec<RunSummary>> {
        Box::pin(async move {
            let c = self.client().await?;
            // `paused` is a running run that waits only on gates.
            let only_paused = filter.status == Some(ExecutionStatus::Paused);
            let status = if only_paused { Some("running") } else { filter.status.map(ExecutionStatus::as_str) };
            let limit = (filter.limit > 0).then_some(filter.limit as i64);
            let before = filter.before.map(|b| b.min(i64::MAX as u64) as i64);
            let rows = c
                .query(
                    "SELECT run_id, workflow, status, created_at, updated_at, owner, lease_until_ms, paused, \
                     created_seq FROM runs WHERE ($1::text IS NULL OR status = $1) \
                     AND ($2::text IS NULL OR workflow = $2) AND (NOT $4 OR paused) \
                     AND ($5::text IS NULL OR tenant = $5) AND ($6::bigint IS NULL OR created_seq < $6) \
                     ORDER BY created_seq DESC LIMIT $3",
                    &[&status, &filter.workflow, &limit, &only_paused, &filter.tenant, &before],
                )
                .await
                .map_err(pg)?;
            rows.iter()
                .map(|r| {
                    let status = parse_status(r.get(2))?;
                    let paused: bool = r.get(7);
                    let lease: i64 = r.get(6);
                    Ok(RunSummary {
                        run_id: r.get(0),
                        workflow: r.get(1),
                        status: if paused && status == ExecutionStatus::Running {
                            ExecutionStatus::Paused
                        } else {
                            status
                        },
                        created_at: r.get(3),
                        updated_at: r.get(4),
                        owner: (lease > 0).then(|| r.get(5)),
                        seq: r.get::<_, i64>(8).max(0) as u64,
                    })
                })
                .collect()
        })
    }

    fn claim<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        lease_ms: u64,
        steal_from: Option<&'a str>,
    ) -> StoreFuture<'a, Lease> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(pg)?;
            let row = tx
                .query_opt(
                    &format!("SELECT owner, lease_until_ms - {NOW_MS}, status FROM runs WHERE run_id = $1 FOR UPDATE"),
                    &[&run_id],
                )
                .await
                .map_err(pg)?;
            let Some(row) = row else { return Err(StoreError::NotFound(run_id.into())) };
            let (current, remaining, status): (String, i64, &str) = (row.get(0), row.get(1), row.get(2));
            if status != "running" && status != "pending" {
                return Err(StoreError::Finished(run_id.into()));
            }
            let free = remaining <= 0 || current == owner || steal_from.is_some_and(|s| s == current);
            if !free {
                return Err(StoreError::Owned {
                    run_id: run_id.into(),
                    owner: current,
                    remaining_ms: unsigned(remaining),
                });
            }
            let sql = Self::take_lease_sql("SELECT $3::text AS run_id", false);
            let row = tx.query_one(&sql, &[&owner, &big(lease_ms), &run_id]).await.map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(Lease {
                run_id: run_id.into(),
                owner: owner.into(),
                epoch: unsigned(row.get(1)),
                idle_claims: row.get::<_, i32>(2).max(0) as u32,
            })
        })
    }

    fn claim_next<'a>(&'a self, owner: &'a str, lease_ms: u64, limit: usize) -> StoreFuture<'a, Vec<Lease>> {
        Box::pin(async move {
            let c = self.client().await?;
            // Fair across tenants: each tenant's oldest first, then each one's
            // second, ...; what others are claiming now is skipped.
            let picked = format!(
                "SELECT r.run_id FROM runs r JOIN (SELECT q.run_id, q.created_seq, \
                 ROW_NUMBER() OVER (PARTITION BY q.tenant ORDER BY q.created_seq) AS k FROM runs q \
                 WHERE q.status IN ('pending', 'running') AND q.lease_until_ms <= {NOW_MS}) f ON f.run_id = r.run_id \
                 WHERE f.k <= $3 AND r.status IN ('pending', 'running') \
                 AND r.lease_until_ms <= {NOW_MS} AND (r.parent_run_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs p \
                 WHERE p.run_id = r.parent_run_id AND p.status IN ('pending', 'running'))) \
                 ORDER BY f.k, f.created_seq LIMIT $3 FOR UPDATE OF r SKIP LOCKED"
            );
            let mut rows = c
                .query(&Self::take_lease_sql(&picked, true), &[&owner, &big(lease_ms), &(limit as i64)])
                .await
                .map_err(pg)?;
            rows.sort_by_key(|r| r.get::<_, i64>(3));
            Ok(rows
                .iter()
                .map(|r| Lease {
                    run_id: r.get(0),
                    owner: owner.into(),
                    epoch: unsigned(r.get(1)),
                    idle_claims: r.get::<_, i32>(2).max(0) as u32,
                })
                .collect())
        })
    }

    fn heartbeat<'a>(&'a self, lease: &'a Lease, lease_ms: u64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    &format!(
                        "UPDATE runs SET lease_until_ms = CASE WHEN status = 'running' THEN {NOW_MS} + $3::bigint \
                         ELSE lease_until_ms END WHERE run_id = $1 AND lease_epoch = $2 RETURNING cancel_requested"
                    ),
                    &[&lease.run_id, &big(lease.epoch), &big(lease_ms)],
                )
                .await
                .map_err(pg)?;
            match row {
                Some(row) => Ok(row.get(0)),
                None => {
                    match c.query_opt("SELECT 1 FROM runs WHERE run_id = $1", &[&lease.run_id]).await.map_err(pg)? {
                        Some(_) => Err(StoreError::LeaseLost(lease.run_id.clone())),
                        None => Err(StoreError::NotFound(lease.run_id.clone())),
                    }
                }
            }
        })
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let released = {
                let c = self.client().await?;
                c.execute(
                    "UPDATE runs SET lease_until_ms = 0 WHERE run_id = $1 AND lease_epoch = $2 AND status = 'running'",
                    &[&lease.run_id, &big(lease.epoch)],
                )
                .await
                .map_err(pg)?
            };
            if released > 0 {
                self.hint().await;
            }
            Ok(())
        })
    }

    fn request_cancel<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let c = self.client().await?;
            let n = c
                .execute(
                    "UPDATE runs SET cancel_requested = TRUE WHERE run_id = $1 AND status IN ('pending', 'running')",
                    &[&run_id],
                )
                .await
                .map_err(pg)?;
            if n > 0 {
                return Ok(true);
            }
            match c.query_opt("SELECT 1 FROM runs WHERE run_id = $1", &[&run_id]).await.map_err(pg)? {
                Some(_) => Ok(false),
                None => Err(StoreError::NotFound(run_id.into())),
            }
        })
    }

    fn blob_get<'a>(&'a self, digest: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let c = self.client().await?;
            let row = c.query_opt("SELECT bytes FROM blobs WHERE digest = $1", &[&digest]).await.map_err(pg)?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn blob_put<'a>(&'a self, blob: &'a ComponentBlob) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let c = self.client().await?;
            let n = c
                .execute(
                    "INSERT INTO blobs (digest, bytes) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
                    &[&blob.digest, &blob.bytes.as_slice()],
                )
                .await
                .map_err(pg)?;
            Ok(n > 0)
        })
    }

    fn wait_for_work(&self, timeout: Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.listen().await;
            let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
            Ok(())
        })
    }

    fn dlq_list(&self) -> StoreFuture<'_, Vec<super::DlqEntry>> {
        self.dlq_list_now(None)
    }

    fn dlq_list_of<'a>(&'a self, tenant: &'a str) -> StoreFuture<'a, Vec<super::DlqEntry>> {
        self.dlq_list_now(Some(tenant))
    }

    fn dlq_waiting(&self) -> StoreFuture<'_, u64> {
        self.dlq_waiting_now()
    }

    fn dlq_mark_replayed<'a>(&'a self, run_id: &'a str, new_run_id: &'a str) -> StoreFuture<'a, ()> {
        self.dlq_mark_replayed_now(run_id, new_run_id)
    }

    fn breaker_load<'a>(&'a self, component: &'a str) -> StoreFuture<'a, Option<super::BreakerRecord>> {
        self.breaker_load_now(component)
    }

    fn breaker_cas<'a>(
        &'a self,
        component: &'a str,
        expected: u64,
        next: &'a super::BreakerRecord,
    ) -> StoreFuture<'a, bool> {
        self.breaker_cas_now(component, expected, next)
    }

    fn memo_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<super::MemoEntry>> {
        self.memo_get_now(key)
    }

    fn memo_put<'a>(&'a self, key: &'a str, entry: &'a super::MemoEntry, max_bytes: u64) -> StoreFuture<'a, ()> {
        self.memo_put_now(key, entry, max_bytes)
    }

    fn memo_stats(&self) -> StoreFuture<'_, super::MemoStats> {
        self.memo_stats_now()
    }

    fn memo_clear(&self) -> StoreFuture<'_, u64> {
        self.memo_clear_now()
    }

    fn signal_put<'a>(
        &'a self,
        run_id: &'a str,
        step_id: &'a str,
        signal: &'a super::Signal,
    ) -> StoreFuture<'a, super::SignalPut> {
        self.signal_put_now(run_id, step_id, signal)
    }

    fn signal_get<'a>(&'a self, run_id: &'a str, step_id: &'a str) -> StoreFuture<'a, Option<super::Signal>> {
        self.signal_get_now(run_id, step_id)
    }

    fn usage_add<'a>(
        &'a self,
        tenant: &'a str,
        counter: &'a str,
        delta: i64,
        limit: u64,
    ) -> StoreFuture<'a, super::UsageAdd> {
        self.usage_add_now(tenant, counter, delta, limit)
    }

    fn usage_get<'a>(&'a self, tenant: &'a str, counter: &'a str) -> StoreFuture<'a, u64> {
        self.usage_get_now(tenant, counter)
    }

    fn usage_prune<'a>(&'a self, tenant: &'a str, prefix: &'a str, before: &'a str) -> StoreFuture<'a, u64> {
        self.usage_prune_now(tenant, prefix, before)
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("location", &self.shown).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_shown_url_has_no_password() {
        assert_eq!(redact("postgres://weft:s3cret@db:5432/runs"), "postgres://weft@db:5432/runs");
        assert_eq!(redact("postgres://db/runs"), "postgres://db/runs");
        assert_eq!(redact("postgres://db/runs?password=x&sslmode=disable"), "postgres://db/runs?sslmode=disable");
    }
}
