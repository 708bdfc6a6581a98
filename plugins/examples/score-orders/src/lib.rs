//! Prices one `for_each` shard of orders.
//!
//! Input (from the host, once per shard): `{"items": [{"id", "lines":
//! [{"sku", "qty", "unit_price_cents"}]}], "shard": k, "shards": n, "with":
//! {"tax_rate_bps": 2000, "large_order_cents": 100000}}`. Output:
//! `{"shard": k, "orders": [{"id", "total_cents", "large"}], "total_cents",
//! "large_orders"}`. Totals are computed in integer cents (tax rounded half
//! up); a line with a negative quantity or price is an `invalid-input`.

use serde::{Deserialize, Serialize};
use weft_plugin::{Context, StepError};

#[derive(Deserialize)]
struct Line {
    sku: String,
    qty: i64,
    unit_price_cents: i64,
}

#[derive(Deserialize)]
struct Order {
    id: String,
    lines: Vec<Line>,
}

#[derive(Deserialize, Default)]
struct With {
    #[serde(default)]
    tax_rate_bps: i64,
    #[serde(default)]
    large_order_cents: Option<i64>,
}

#[derive(Deserialize)]
struct Input {
    items: Vec<Order>,
    #[serde(default)]
    shard: u64,
    #[serde(default)]
    with: Option<With>,
}

#[derive(Serialize)]
struct Priced {
    id: String,
    total_cents: i64,
    large: bool,
}

#[derive(Serialize)]
struct Output {
    shard: u64,
    orders: Vec<Priced>,
    total_cents: i64,
    large_orders: u64,
}

fn score_orders(_ctx: &mut Context, input: Input) -> Result<Output, StepError> {
    let with = input.with.unwrap_or_default();
    let mut orders = Vec::with_capacity(input.items.len());
    for order in input.items {
        let mut net: i64 = 0;
        for line in &order.lines {
            if line.qty < 0 || line.unit_price_cents < 0 {
                return Err(StepError::invalid_input(format!(
                    "order `{}`: line `{}` has a negative quantity or price",
                    order.id, line.sku
                )));
            }
            net = net
                .checked_add(line.qty.checked_mul(line.unit_price_cents).ok_or_else(|| overflow(&order.id))?)
                .ok_or_else(|| overflow(&order.id))?;
        }
        let tax = (net.checked_mul(with.tax_rate_bps).ok_or_else(|| overflow(&order.id))? + 5_000) / 10_000;
        let total_cents = net + tax;
        let large = with.large_order_cents.is_some_and(|l| total_cents >= l);
        orders.push(Priced { id: order.id, total_cents, large });
    }
    let total_cents = orders.iter().map(|o| o.total_cents).sum();
    let large_orders = orders.iter().filter(|o| o.large).count() as u64;
    Ok(Output { shard: input.shard, orders, total_cents, large_orders })
}

fn overflow(id: &str) -> StepError {
    StepError::invalid_input(format!("order `{id}`: its total overflows 64-bit cents"))
}

weft_plugin::compute_step!(score_orders);
