//! The SQLite store's memo cache: table `memo`, one row per key, with the
//! bytes it is charged and when it was last used (`used`, a counter that
//! every use bumps: the eviction order).

use super::memo::{MemoEntry, MemoStats};
use super::{SqliteStore, StoreError};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

impl SqliteStore {
    /// The entry under `key`, if any; a hit is counted and makes it the most recently used.
    pub(super) fn memo_get_now(&self, key: &str) -> Result<Option<MemoEntry>, StoreError> {
        (|| {
            let c = self.lock();
            let text: Option<String> =
                c.query_row("SELECT value FROM memo WHERE key = ?1", [key], |r| r.get(0)).optional()?;
            let Some(text) = text else { return Ok(None) };
            c.execute(
                "UPDATE memo SET used = (SELECT MAX(used) FROM memo) + 1, hits = hits + 1 WHERE key = ?1",
                [key],
            )?;
            let entry = serde_json::from_str(&text).map_err(|e| {
                StoreError::Backend(format!("the memo entry `{key}` cannot be read ({e}); `weft cache clear` drops it"))
            })?;
            Ok(Some(entry))
        })()
    }

    /// Stores `entry` under `key`, then evicts the least recently used
    /// entries until the cache holds at most `max_bytes`.
    pub(super) fn memo_put_now<'a>(
        &'a self,
        key: &'a str,
        entry: &'a MemoEntry,
        max_bytes: u64,
    ) -> Result<(), StoreError> {
        (|| {
            let (text, bytes) = entry.encode(key)?;
            if bytes > max_bytes {
                return Ok(());
            }
            let mut c = self.lock();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR REPLACE INTO memo (key, value, bytes, used, hits) \
                 VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(used), 0) + 1 FROM memo), 0)",
                params![key, text, bytes],
            )?;
            let mut total: u64 = tx.query_row("SELECT COALESCE(SUM(bytes), 0) FROM memo", [], |r| r.get(0))?;
            while total > max_bytes {
                let oldest: Option<(String, u64)> = tx
                    .query_row("SELECT key, bytes FROM memo ORDER BY used LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((old, size)) = oldest else { break };
                tx.execute("DELETE FROM memo WHERE key = ?1", [&old])?;
                total = total.saturating_sub(size);
            }
            tx.commit()?;
            Ok(())
        })()
    }

    /// What the cache holds.
    pub(super) fn memo_stats_now(&self) -> Result<MemoStats, StoreError> {
        self.lock()
            .query_row("SELECT COUNT(*), COALESCE(SUM(bytes), 0), COALESCE(SUM(hits), 0) FROM memo", [], |r| {
                Ok(MemoStats { entries: r.get(0)?, bytes: r.get(1)?, hits: r.get(2)? })
            })
            .map_err(StoreError::from)
    }

    /// Drops every entry; returns how many there were.
    pub(super) fn memo_clear_now(&self) -> Result<u64, StoreError> {
        self.lock().execute("DELETE FROM memo", []).map(|n| n as u64).map_err(StoreError::from)
    }
}
