//! The PostgreSQL store's state beside the runs: effect steps' key-value
//! state (quota-charged per scope), the memo cache (least recently used
//! evicted first, by a sequence), approval gates' signals, circuit breakers
//! (compare-and-swap on a version), the dead-letter queue and the tenants'
//! usage counters (row-locked, so every process adds to one total).

use super::postgres::{PostgresStore, big, pg, unsigned};
use super::{
    BreakerRecord, BreakerState, DlqEntry, MemoEntry, MemoStats, Signal, SignalPut, StoreError, StoreFuture, UsageAdd,
};
use crate::contract::{KeyValue, KvError, KvFuture, kv_row_cost, quota_message};

/// A store error as the key-value interface reports it.
fn kv_error(e: StoreError) -> KvError {
    KvError::Store(format!("the key-value store failed: {e}"))
}

impl KeyValue for PostgresStore {
    fn kv_get<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let c = self.client().await.map_err(kv_error)?;
            let row = c
                .query_opt("SELECT value FROM kv WHERE scope = $1 AND key = $2", &[&scope, &key])
                .await
                .map_err(|e| kv_error(pg(e)))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn kv_set<'a>(&'a self, scope: &'a str, key: &'a str, value: &'a [u8], max_scope_bytes: u64) -> KvFuture<'a, ()> {
        Box::pin(async move {
            let result: Result<Result<(), KvError>, StoreError> = async {
                let mut c = self.client().await?;
                let tx = c.transaction().await.map_err(pg)?;
                // The usage row is the scope's lock: writers to one scope take turns.
                tx.execute("INSERT INTO kv_usage (scope, bytes) VALUES ($1, 0) ON CONFLICT DO NOTHING", &[&scope])
                    .await
                    .map_err(pg)?;
                let used: i64 = tx
                    .query_one("SELECT bytes FROM kv_usage WHERE scope = $1 FOR UPDATE", &[&scope])
                    .await
                    .map_err(pg)?
                    .get(0);
                let old = tx
                    .query_opt("SELECT length(value) FROM kv WHERE scope = $1 AND key = $2", &[&scope, &key])
                    .await
                    .map_err(pg)?
                    .map_or(0, |r| kv_row_cost(key.len(), r.get::<_, i32>(0).max(0) as usize));
                let used = unsigned(used);
                let after = (used - old.min(used)) + kv_row_cost(key.len(), value.len());
                if after > max_scope_bytes {
                    return Ok(Err(KvError::Quota(quota_message(after, max_scope_bytes))));
                }
                tx.execute(
                    "INSERT INTO kv (scope, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (scope, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&scope, &key, &value],
                )
                .await
                .map_err(pg)?;
                tx.execute("UPDATE kv_usage SET bytes = $2 WHERE scope = $1", &[&scope, &big(after)])
                    .await
                    .map_err(pg)?;
                tx.commit().await.map_err(pg)?;
                Ok(Ok(()))
            }
            .await;
            result.map_err(kv_error)?
        })
    }

    fn kv_delete<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, bool> {
        Box::pin(async move {
            let result: Result<bool, StoreError> = async {
                let mut c = self.client().await?;
                let tx = c.transaction().await.map_err(pg)?;
                // The usage row first, as `kv_set` takes it: writers to a scope never deadlock.
                tx.execute("SELECT 1 FROM kv_usage WHERE scope = $1 FOR UPDATE", &[&scope]).await.map_err(pg)?;
                let row = tx
                    .query_opt("DELETE FROM kv WHERE scope = $1 AND key = $2 RETURNING length(value)", &[&scope, &key])
                    .await
                    .map_err(pg)?;
                let Some(row) = row else { return Ok(false) };
                let freed = kv_row_cost(key.len(), row.get::<_, i32>(0).max(0) as usize);
                tx.execute(
                    "UPDATE kv_usage SET bytes = GREATEST(bytes - $2, 0) WHERE scope = $1",
                    &[&scope, &big(freed)],
                )
                .await
                .map_err(pg)?;
                tx.commit().await.map_err(pg)?;
                Ok(true)
            }
            .await;
            result.map_err(kv_error)
        })
    }

    fn kv_keys<'a>(&'a self, scope: &'a str, prefix: &'a str, limit: usize) -> KvFuture<'a, Vec<String>> {
        Box::pin(async move {
            let c = self.client().await.map_err(kv_error)?;
            let rows = c
                .query(
                    "SELECT key FROM kv WHERE scope = $1 AND starts_with(key, $2) ORDER BY key LIMIT $3",
                    &[&scope, &prefix, &(limit as i64)],
                )
                .await
                .map_err(|e| kv_error(pg(e)))?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}

impl PostgresStore {
    pub(super) fn dlq_list_now<'a>(&'a self, tenant: Option<&'a str>) -> StoreFuture<'a, Vec<DlqEntry>> {
        Box::pin(async move {
            let c = self.client().await?;
            let rows = c
                .query(
                    "SELECT d.run_id, d.workflow, d.step_id, d.error_type, d.message, d.at, d.replayed_as FROM dlq d \
                     WHERE $1::text IS NULL OR EXISTS (SELECT 1 FROM runs r WHERE r.run_id = d.run_id AND r.tenant = $1) \
                     ORDER BY d.at, d.run_id",
                    &[&tenant],
                )
                .await
                .map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| DlqEntry {
                    run_id: r.get(0),
                    workflow: r.get(1),
                    step_id: r.get(2),
                    error_type: r.get(3),
                    message: r.get(4),
                    at: r.get(5),
                    replayed_as: r.get(6),
                })
                .collect())
        })
    }

    pub(super) fn dlq_waiting_now(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let c = self.client().await?;
            let n: i64 =
                c.query_one("SELECT count(*) FROM dlq WHERE replayed_as IS NULL", &[]).await.map_err(pg)?.get(0);
            Ok(unsigned(n))
        })
    }

    pub(super) fn dlq_mark_replayed_now<'a>(&'a self, run_id: &'a str, new_run_id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let c = self.client().await?;
            let n = c
                .execute("UPDATE dlq SET replayed_as = $2 WHERE run_id = $1", &[&run_id, &new_run_id])
                .await
                .map_err(pg)?;
            if n == 0 { Err(StoreError::NotFound(run_id.into())) } else { Ok(()) }
        })
    }

    pub(super) fn breaker_load_now<'a>(&'a self, component: &'a str) -> StoreFuture<'a, Option<BreakerRecord>> {
        Box::pin(async move {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    "SELECT state, failures, since_ms, version FROM breakers WHERE component = $1",
                    &[&component],
                )
                .await
                .map_err(pg)?;
            row.map(|r| {
                let state: &str = r.get(0);
                let state = BreakerState::parse(state)
                    .ok_or_else(|| StoreError::Backend(format!("a stored breaker has the unknown state `{state}`")))?;
                Ok(BreakerRecord {
                    state,
                    failures: u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX),
                    since_ms: unsigned(r.get(2)),
                    version: unsigned(r.get(3)),
                })
            })
            .transpose()
        })
    }

    pub(super) fn breaker_cas_now<'a>(
        &'a self,
        component: &'a str,
        expected: u64,
        next: &'a BreakerRecord,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let c = self.client().await?;
            let args: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                &component,
                &next.state.as_str(),
                &i64::from(next.failures),
                &big(next.since_ms),
                &big(expected + 1),
                &big(expected),
            ];
            // One statement either way: the first writer of a breaker
            // inserts it, later ones swap on its version.
            let n = if expected == 0 {
                c.execute(
                    "INSERT INTO breakers (component, state, failures, since_ms, version) \
                     SELECT $1, $2, $3, $4, $5 WHERE $6::bigint = 0 ON CONFLICT (component) DO NOTHING",
                    &args,
                )
                .await
            } else {
                c.execute(
                    "UPDATE breakers SET state = $2, failures = $3, since_ms = $4, version = $5 \
                     WHERE component = $1 AND version = $6",
                    &args,
                )
                .await
            }
            .map_err(pg)?;
            Ok(n == 1)
        })
    }

    pub(super) fn memo_get_now<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<MemoEntry>> {
        Box::pin(async move {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    "UPDATE memo SET used = nextval('memo_clock'), hits = hits + 1 WHERE key = $1 RETURNING value",
                    &[&key],
                )
                .await
                .map_err(pg)?;
            row.map(|r| {
                serde_json::from_str(r.get(0)).map_err(|e| {
                    StoreError::Backend(format!(
                        "the memo entry `{key}` cannot be read ({e}); `weft cache clear` drops it"
                    ))
                })
            })
            .transpose()
        })
    }

    pub(super) fn memo_put_now<'a>(
        &'a self,
        key: &'a str,
        entry: &'a MemoEntry,
        max_bytes: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (text, bytes) = entry.encode(key)?;
            if bytes > max_bytes {
                return Ok(());
            }
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(pg)?;
            tx.execute(
                "INSERT INTO memo (key, value, bytes, used, hits) VALUES ($1, $2, $3, nextval('memo_clock'), 0) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, bytes = EXCLUDED.bytes, \
                 used = EXCLUDED.used, hits = 0",
                &[&key, &text, &big(bytes)],
            )
            .await
            .map_err(pg)?;
            let mut total: i64 =
                tx.query_one("SELECT COALESCE(SUM(bytes), 0)::bigint FROM memo", &[]).await.map_err(pg)?.get(0);
            while unsigned(total) > max_bytes {
                let row = tx
                    .query_opt(
                        "DELETE FROM memo WHERE key = (SELECT key FROM memo ORDER BY used LIMIT 1) RETURNING bytes",
                        &[],
                    )
                    .await
                    .map_err(pg)?;
                let Some(row) = row else { break };
                total -= row.get::<_, i64>(0);
            }
            tx.commit().await.map_err(pg)
        })
    }

    pub(super) fn memo_stats_now(&self) -> StoreFuture<'_, MemoStats> {
        Box::pin(async move {
            let c = self.client().await?;
            let r = c
                .query_one(
                    "SELECT COUNT(*), COALESCE(SUM(bytes), 0)::bigint, COALESCE(SUM(hits), 0)::bigint FROM memo",
                    &[],
                )
                .await
                .map_err(pg)?;
            Ok(MemoStats { entries: unsigned(r.get(0)), bytes: unsigned(r.get(1)), hits: unsigned(r.get(2)) })
        })
    }

    pub(super) fn memo_clear_now(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let c = self.client().await?;
            c.execute("DELETE FROM memo", &[]).await.map_err(pg)
        })
    }

    pub(super) fn signal_put_now<'a>(
        &'a self,
        run_id: &'a str,
        step_id: &'a str,
        signal: &'a Signal,
    ) -> StoreFuture<'a, SignalPut> {
        Box::pin(async move {
            let c = self.client().await?;
            if c.query_opt("SELECT 1 FROM runs WHERE run_id = $1", &[&run_id]).await.map_err(pg)?.is_none() {
                return Err(StoreError::NotFound(run_id.into()));
            }
            let data = serde_json::to_string(&signal.data)?;
            let n = c
                .execute(
                    "INSERT INTO signals (run_id, step_id, signal_id, data, at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (run_id, step_id) DO NOTHING",
                    &[&run_id, &step_id, &signal.signal_id, &data, &signal.at],
                )
                .await
                .map_err(pg)?;
            if n == 1 {
                return Ok(SignalPut::Stored);
            }
            let existing: String = c
                .query_one("SELECT signal_id FROM signals WHERE run_id = $1 AND step_id = $2", &[&run_id, &step_id])
                .await
                .map_err(pg)?
                .get(0);
            Ok(if existing == signal.signal_id { SignalPut::Duplicate } else { SignalPut::Conflict(existing) })
        })
    }

    pub(super) fn signal_get_now<'a>(&'a self, run_id: &'a str, step_id: &'a str) -> StoreFuture<'a, Option<Signal>> {
        Box::pin(async move {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    "SELECT signal_id, data, at FROM signals WHERE run_id = $1 AND step_id = $2",
                    &[&run_id, &step_id],
                )
                .await
                .map_err(pg)?;
            row.map(|r| Ok(Signal { signal_id: r.get(0), data: serde_json::from_str(r.get(1))?, at: r.get(2) }))
                .transpose()
        })
    }

    pub(super) fn usage_add_now<'a>(
        &'a self,
        tenant: &'a str,
        counter: &'a str,
        delta: i64,
        limit: u64,
    ) -> StoreFuture<'a, UsageAdd> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(pg)?;
            tx.execute(
                "INSERT INTO usage (tenant, counter, amount) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
                &[&tenant, &counter],
            )
            .await
            .map_err(pg)?;
            let now: i64 = tx
                .query_one(
                    "SELECT amount FROM usage WHERE tenant = $1 AND counter = $2 FOR UPDATE",
                    &[&tenant, &counter],
                )
                .await
                .map_err(pg)?
                .get(0);
            let now = unsigned(now);
            let Some(after) = super::usage_after(now, delta, limit) else {
                return Ok(UsageAdd::Over(now));
            };
            tx.execute(
                "UPDATE usage SET amount = $3 WHERE tenant = $1 AND counter = $2",
                &[&tenant, &counter, &big(after)],
            )
            .await
            .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(UsageAdd::Added(after))
        })
    }

    pub(super) fn usage_get_now<'a>(&'a self, tenant: &'a str, counter: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let c = self.client().await?;
            let row = c
                .query_opt("SELECT amount FROM usage WHERE tenant = $1 AND counter = $2", &[&tenant, &counter])
                .await
                .map_err(pg)?;
            Ok(row.map_or(0, |r| unsigned(r.get(0))))
        })
    }

    pub(super) fn usage_prune_now<'a>(
        &'a self,
        tenant: &'a str,
        prefix: &'a str,
        before: &'a str,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let c = self.client().await?;
            c.execute(
                "DELETE FROM usage WHERE tenant = $1 AND counter >= $2 AND counter < $3 AND starts_with(counter, $2)",
                &[&tenant, &prefix, &before],
            )
            .await
            .map_err(pg)
        })
    }
}
