//! The SQLite store's key-value state: table `kv`, one row per key, in the
//! same database (and so the same durability) as the journal.

use super::SqliteStore;
use super::memory::quota_message;
use crate::contract::{KeyValue, KvError, KvFuture};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

fn store_error(e: rusqlite::Error) -> KvError {
    KvError::Store(format!("the key-value store failed: {e}"))
}

impl KeyValue for SqliteStore {
    fn kv_get<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        let r = self
            .lock()
            .query_row("SELECT value FROM kv WHERE scope = ?1 AND key = ?2", params![scope, key], |r| r.get(0))
            .optional()
            .map_err(store_error);
        Box::pin(std::future::ready(r))
    }

    fn kv_set<'a>(&'a self, scope: &'a str, key: &'a str, value: &'a [u8], max_scope_bytes: u64) -> KvFuture<'a, ()> {
        let r = (|| {
            let mut c = self.lock();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let used: u64 = tx.query_row(
                "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(value)), 0) FROM kv WHERE scope = ?1 AND key <> ?2",
                params![scope, key],
                |r| r.get(0),
            )?;
            let after = used + (key.len() + value.len()) as u64;
            if after > max_scope_bytes {
                return Ok(Err(KvError::Quota(quota_message(after, max_scope_bytes))));
            }
            tx.execute("INSERT OR REPLACE INTO kv (scope, key, value) VALUES (?1, ?2, ?3)", params![scope, key, value])?;
            tx.commit()?;
            Ok(Ok(()))
        })()
        .map_err(store_error)
        .and_then(|r| r);
        Box::pin(std::future::ready(r))
    }

    fn kv_delete<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, bool> {
        let r = self
            .lock()
            .execute("DELETE FROM kv WHERE scope = ?1 AND key = ?2", params![scope, key])
            .map(|n| n > 0)
            .map_err(store_error);
        Box::pin(std::future::ready(r))
    }

    fn kv_keys<'a>(&'a self, scope: &'a str, prefix: &'a str, limit: usize) -> KvFuture<'a, Vec<String>> {
        let r = (|| {
            let c = self.lock();
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
        .map_err(store_error);
        Box::pin(std::future::ready(r))
    }
}
