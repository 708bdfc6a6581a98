//! Charges a payment; its compensation refunds exactly that charge.
//!
//! `run` input: `{"order_id": "o-1", "amount_cents": 1999, "currency": "EUR",
//! "account": "acct-42"}`. The charge id is derived from the step's
//! idempotency key, so a retried attempt names the same charge and a payment
//! provider would deduplicate it. `compensate` checks that the output it is
//! given is the charge this input made and logs the refund it issued (the
//! host records the log line). It refuses, as `invalid-input`, to refund a
//! charge that does not match, and is a no-op for a declined charge.

use serde::{Deserialize, Serialize};
use weft_plugin::{Context, StepError};

const MAX_CHARGE_CENTS: i64 = 1_000_000;

#[derive(Deserialize)]
struct Charge {
    order_id: String,
    amount_cents: i64,
    currency: String,
    account: String,
}

#[derive(Serialize, Deserialize)]
struct Receipt {
    charge_id: String,
    order_id: String,
    status: String,
    amount_cents: i64,
    currency: String,
}

/// A short stable id from the idempotency key (FNV-1a, hex).
fn charge_id(key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("ch_{h:016x}")
}

fn charge(ctx: &mut Context, c: Charge) -> Result<Receipt, StepError> {
    if c.amount_cents <= 0 {
        return Err(StepError::invalid_input(format!("amount_cents is {}; it must be positive", c.amount_cents)));
    }
    if c.account.is_empty() {
        return Err(StepError::invalid_input("account is empty"));
    }
    let id = charge_id(&ctx.idempotency_key);
    let status = if c.amount_cents > MAX_CHARGE_CENTS { "declined" } else { "captured" };
    weft_plugin::info(&format!(
        "charge {id}: {} {} {} for order {} (attempt {})",
        status, c.amount_cents, c.currency, c.order_id, ctx.attempt
    ));
    Ok(Receipt {
        charge_id: id,
        order_id: c.order_id,
        status: status.to_string(),
        amount_cents: c.amount_cents,
        currency: c.currency,
    })
}

fn refund(ctx: &mut Context, c: Charge, r: Receipt) -> Result<(), StepError> {
    if r.order_id != c.order_id || r.amount_cents != c.amount_cents || r.currency != c.currency {
        return Err(StepError::invalid_input(format!(
            "receipt {} is for order {} ({} {}), not for order {} ({} {})",
            r.charge_id, r.order_id, r.amount_cents, r.currency, c.order_id, c.amount_cents, c.currency
        )));
    }
    if r.charge_id != charge_id(&ctx.idempotency_key) {
        return Err(StepError::invalid_input(format!(
            "charge {} was not made under this step's idempotency key",
            r.charge_id
        )));
    }
    if r.status != "captured" {
        weft_plugin::info(&format!("charge {} was {}; nothing to refund", r.charge_id, r.status));
        return Ok(());
    }
    weft_plugin::info(&format!("refunded charge {}: {} {}", r.charge_id, r.amount_cents, r.currency));
    Ok(())
}

weft_plugin::effect_step!(run = charge, compensate = refund);
