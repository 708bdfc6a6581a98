//! The polyglot example's first step, in Rust: totals an order's lines.

use serde::{Deserialize, Serialize};
use weft_plugin::{Context, StepError};

#[derive(Deserialize)]
struct Line {
    sku: String,
    qty: u32,
    unit_cents: u64,
}

#[derive(Deserialize)]
struct Order {
    order_id: String,
    lines: Vec<Line>,
}

#[derive(Serialize)]
struct Tally {
    order_id: String,
    lines: usize,
    units: u64,
    total_cents: u64,
}

fn tally(_ctx: &mut Context, order: Order) -> Result<Tally, StepError> {
    let mut total: u64 = 0;
    for line in &order.lines {
        let cost = line
            .unit_cents
            .checked_mul(u64::from(line.qty))
            .and_then(|c| total.checked_add(c))
            .ok_or_else(|| StepError::invalid_input(format!("line `{}` overflows the total", line.sku)))?;
        total = cost;
    }
    eprintln!("tally: {} lines, {total} cents", order.lines.len());
    Ok(Tally {
        order_id: order.order_id,
        lines: order.lines.len(),
        units: order.lines.iter().map(|l| u64::from(l.qty)).sum(),
        total_cents: total,
    })
}

weft_plugin::compute_step!(tally);
