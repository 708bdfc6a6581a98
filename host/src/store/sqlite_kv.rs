//! The SQLite store's key-value state: table `kv`, one row per key, in the
//! same database (and so the same durability) as the journal, and table
//! `kv_usage`, the bytes each scope is charged, kept in the same
//! transaction as every write (so a quota check reads one row).

use super::SqliteStore;
use crate::contract::{KeyValue, KvError, KvFuture, kv_row_cost, quota_message};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

fn store_error(e: rusqlite::Error) -> KvError {
    KvError::Store(format!("the key-value store failed: {e}"))
}

impl SqliteStore {
    /// `SqliteStore::off` for the key-value interface's errors.
    fn kv_off<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SqliteStore) -> Result<T, KvError> + Send + 'static,
    ) -> KvFuture<'static, T> {
        self.off_as(work, KvError::Store)
    }
}

impl KeyValue for SqliteStore {
    fn kv_get<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.kv_off(move |this| {
            this.lock()
                .query_row("SELECT value FROM kv WHERE scope = ?1 AND key = ?2", params![scope, key], |r| r.get(0))
                .optional()
                .map_err(store_error)
        })
    }

    fn kv_set<'a>(&'a self, scope: &'a str, key: &'a str, value: &'a [u8], max_scope_bytes: u64) -> KvFuture<'a, ()> {
        let (scope, key, value) = (scope.to_owned(), key.to_owned(), value.to_vec());
        self.kv_off(move |this| {
            let (scope, key, value) = (scope.as_str(), key.as_str(), value.as_slice());
            (|| -> Result<Result<(), KvError>, rusqlite::Error> {
                let mut c = this.lock();
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let used: u64 = tx
                    .query_row("SELECT bytes FROM kv_usage WHERE scope = ?1", [scope], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0);
                let old: u64 = tx
                    .query_row("SELECT length(value) FROM kv WHERE scope = ?1 AND key = ?2", params![scope, key], |r| {
                        r.get::<_, usize>(0)
                    })
                    .optional()?
                    .map_or(0, |v| kv_row_cost(key.len(), v));
                let after = (used - old.min(used)) + kv_row_cost(key.len(), value.len());
                if after > max_scope_bytes {
                    return Ok(Err(KvError::Quota(quota_message(after, max_scope_bytes))));
                }
                tx.execute(
                    "INSERT OR REPLACE INTO kv (scope, key, value) VALUES (?1, ?2, ?3)",
                    params![scope, key, value],
                )?;
                tx.execute("INSERT OR REPLACE INTO kv_usage (scope, bytes) VALUES (?1, ?2)", params![scope, after])?;
                tx.commit()?;
                Ok(Ok(()))
            })()
            .map_err(store_error)
            .and_then(|r| r)
        })
    }

    fn kv_delete<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, bool> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.kv_off(move |this| {
            let (scope, key) = (scope.as_str(), key.as_str());
            (|| {
                let mut c = this.lock();
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let old: Option<usize> = tx
                    .query_row("SELECT length(value) FROM kv WHERE scope = ?1 AND key = ?2", params![scope, key], |r| {
                        r.get(0)
                    })
                    .optional()?;
                let Some(len) = old else {
                    return Ok(false);
                };
                tx.execute("DELETE FROM kv WHERE scope = ?1 AND key = ?2", params![scope, key])?;
                let freed = kv_row_cost(key.len(), len);
                tx.execute("UPDATE kv_usage SET bytes = MAX(bytes - ?2, 0) WHERE scope = ?1", params![scope, freed])?;
                tx.commit()?;
                Ok(true)
            })()
            .map_err(store_error)
        })
    }

    fn kv_keys<'a>(&'a self, scope: &'a str, prefix: &'a str, limit: usize) -> KvFuture<'a, Vec<String>> {
        let (scope, prefix) = (scope.to_owned(), prefix.to_owned());
        self.kv_off(move |this| {
            let (scope, prefix) = (scope.as_str(), prefix.as_str());
            (|| {
                let c = this.lock();
                let mut stmt = c.prepare_cached("SELECT key FROM kv WHERE scope = ?1 AND key >= ?2 ORDER BY key")?;
                let mut keys = Vec::new();
                let mut rows = stmt.query(params![scope, prefix])?;
                while let Some(row) = rows.next()? {
                    let k: String = row.get(0)?;
                    if !k.starts_with(prefix) || keys.len() >= limit {
                        break;
                    }
                    keys.push(k);
                }
                Ok(keys)
            })()
            .map_err(store_error)
        })
    }
}
