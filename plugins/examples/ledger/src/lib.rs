//! Records an entry in a ledger; its compensation voids that entry.
//!
//! `run` input: `{"kind": "persist", "data": {...}}`. The entry id is derived
//! from the idempotency key, so a retried attempt writes the same entry.
//! Output: `{"entry_id", "kind", "bytes"}`. `compensate` voids the entry it
//! is given and refuses (as `invalid-input`) an entry this step did not write.
//! With `"fail": "retryable" | "fatal"` in the input, `run` fails that way
//! instead (to demonstrate retries and sagas).

use serde::{Deserialize, Serialize};
use weft_plugin::{Context, StepError, Value};

#[derive(Deserialize)]
struct Entry {
    kind: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    fail: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Receipt {
    entry_id: String,
    kind: String,
    bytes: usize,
}

fn entry_id(key: &str) -> String {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("le_{h:016x}")
}

fn record(ctx: &mut Context, e: Entry) -> Result<Receipt, StepError> {
    match e.fail.as_deref() {
        Some("retryable") => return Err(StepError::retryable(format!("ledger unavailable (attempt {})", ctx.attempt))),
        Some("fatal") => return Err(StepError::fatal(format!("ledger refused the `{}` entry", e.kind))),
        _ => {}
    }
    if e.kind.is_empty() {
        return Err(StepError::invalid_input("kind is empty"));
    }
    let bytes = e.data.to_string().len();
    let id = entry_id(&ctx.idempotency_key);
    weft_plugin::info(&format!("ledger entry {id}: {} ({bytes} bytes)", e.kind));
    Ok(Receipt { entry_id: id, kind: e.kind, bytes })
}

fn void(ctx: &mut Context, _e: Entry, r: Receipt) -> Result<(), StepError> {
    if r.entry_id != entry_id(&ctx.idempotency_key) {
        return Err(StepError::invalid_input(format!("entry {} was not written by this step", r.entry_id)));
    }
    weft_plugin::info(&format!("voided ledger entry {} ({})", r.entry_id, r.kind));
    Ok(())
}

weft_plugin::effect_step!(run = record, compensate = void);
