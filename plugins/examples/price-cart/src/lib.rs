//! Prices a cart in integer cents: subtotal, the best discount, tax, shipping.
//!
//! Input: `{"items": [{"sku": "A", "qty": 2, "unit_price_cents": 1250}],
//! "discount_codes": ["SAVE10"], "tax_rate_bps": 2000, "shipping_cents": 499,
//! "free_shipping_over_cents": 5000}`.
//! Known codes: `SAVE10` (10 %), `SAVE25` (25 %, carts of 100.00 or more),
//! `HALFOFF` (50 %, at most 20.00 off). Unknown codes are listed, not fatal.
//! Tax is applied after the discount, rounded half up to the cent.

use serde::{Deserialize, Serialize};
use weft_plugin::{Context, StepError};

#[derive(Deserialize)]
struct Item {
    sku: String,
    qty: i64,
    unit_price_cents: i64,
}

#[derive(Deserialize)]
struct Cart {
    items: Vec<Item>,
    #[serde(default)]
    discount_codes: Vec<String>,
    #[serde(default)]
    tax_rate_bps: i64,
    #[serde(default)]
    shipping_cents: i64,
    #[serde(default)]
    free_shipping_over_cents: Option<i64>,
}

#[derive(Serialize)]
struct Line {
    sku: String,
    qty: i64,
    line_total_cents: i64,
}

#[derive(Serialize)]
struct Priced {
    lines: Vec<Line>,
    subtotal_cents: i64,
    discount_code: Option<String>,
    discount_cents: i64,
    unknown_codes: Vec<String>,
    tax_cents: i64,
    shipping_cents: i64,
    total_cents: i64,
}

/// The discount a code gives on `subtotal`, or None when the code is unknown.
fn discount_for(code: &str, subtotal: i64) -> Option<i64> {
    match code.to_ascii_uppercase().as_str() {
        "SAVE10" => Some(subtotal / 10),
        "SAVE25" => Some(if subtotal >= 10_000 { subtotal / 4 } else { 0 }),
        "HALFOFF" => Some((subtotal / 2).min(2_000)),
        _ => None,
    }
}

fn price(_ctx: &mut Context, cart: Cart) -> Result<Priced, StepError> {
    if !(0..=10_000).contains(&cart.tax_rate_bps) {
        return Err(StepError::invalid_input(format!(
            "tax_rate_bps is {}; it must be between 0 and 10000",
            cart.tax_rate_bps
        )));
    }
    let mut lines = Vec::with_capacity(cart.items.len());
    let mut subtotal: i64 = 0;
    for (i, item) in cart.items.into_iter().enumerate() {
        if item.qty <= 0 || item.unit_price_cents < 0 {
            return Err(StepError::invalid_input(format!(
                "items[{i}] ({}) has qty {} and unit_price_cents {}; both must be positive",
                item.sku, item.qty, item.unit_price_cents
            )));
        }
        let line_total = item
            .qty
            .checked_mul(item.unit_price_cents)
            .ok_or_else(|| StepError::invalid_input(format!("items[{i}] total overflows")))?;
        subtotal =
            subtotal.checked_add(line_total).ok_or_else(|| StepError::invalid_input("cart subtotal overflows"))?;
        lines.push(Line { sku: item.sku, qty: item.qty, line_total_cents: line_total });
    }
    let mut best: Option<(String, i64)> = None;
    let mut unknown_codes = Vec::new();
    for code in cart.discount_codes {
        match discount_for(&code, subtotal) {
            Some(d) if best.as_ref().is_none_or(|(_, b)| d > *b) => best = Some((code.to_ascii_uppercase(), d)),
            Some(_) => {}
            None => unknown_codes.push(code),
        }
    }
    let (discount_code, discount_cents) = match best {
        Some((c, d)) => (Some(c), d),
        None => (None, 0),
    };
    let taxable = subtotal - discount_cents;
    let tax_cents = (taxable * cart.tax_rate_bps + 5_000) / 10_000;
    let shipping_cents = match cart.free_shipping_over_cents {
        Some(limit) if taxable >= limit => 0,
        _ => cart.shipping_cents,
    };
    Ok(Priced {
        lines,
        subtotal_cents: subtotal,
        discount_code,
        discount_cents,
        unknown_codes,
        tax_cents,
        shipping_cents,
        total_cents: taxable + tax_cents + shipping_cents,
    })
}

weft_plugin::compute_step!(price);
