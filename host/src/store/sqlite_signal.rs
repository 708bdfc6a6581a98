//! The SQLite store's signals: table `signals`, one row per approval gate
//! that was sent its decision.

use super::{Signal, SignalPut, SqliteStore, StoreError};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

impl SqliteStore {
    /// Stores `signal` for the gate, unless the gate has one already.
    pub(super) fn signal_put_now<'a>(
        &'a self,
        run_id: &'a str,
        step_id: &'a str,
        signal: &'a Signal,
    ) -> Result<SignalPut, StoreError> {
        (|| {
            let mut c = self.lock();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let exists: bool =
                tx.query_row("SELECT EXISTS(SELECT 1 FROM runs WHERE run_id = ?1)", [run_id], |r| r.get(0))?;
            if !exists {
                return Err(StoreError::NotFound(run_id.into()));
            }
            let existing: Option<String> = tx
                .query_row(
                    "SELECT signal_id FROM signals WHERE run_id = ?1 AND step_id = ?2",
                    params![run_id, step_id],
                    |r| r.get(0),
                )
                .optional()?;
            let put = match existing {
                Some(id) if id == signal.signal_id => SignalPut::Duplicate,
                Some(id) => SignalPut::Conflict(id),
                None => {
                    tx.execute(
                        "INSERT INTO signals (run_id, step_id, signal_id, data, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![run_id, step_id, signal.signal_id, serde_json::to_string(&signal.data)?, signal.at],
                    )?;
                    SignalPut::Stored
                }
            };
            tx.commit()?;
            Ok(put)
        })()
    }

    /// The gate's signal, if it has one.
    pub(super) fn signal_get_now<'a>(
        &'a self,
        run_id: &'a str,
        step_id: &'a str,
    ) -> Result<Option<Signal>, StoreError> {
        (|| {
            let c = self.lock();
            let row: Option<(String, String, String)> = c
                .query_row(
                    "SELECT signal_id, data, at FROM signals WHERE run_id = ?1 AND step_id = ?2",
                    params![run_id, step_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            row.map(|(signal_id, data, at)| Ok(Signal { signal_id, data: serde_json::from_str(&data)?, at }))
                .transpose()
        })()
    }
}
