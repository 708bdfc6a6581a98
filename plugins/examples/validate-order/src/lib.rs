//! Validates an order and normalises it: every problem is reported at once.
//!
//! Input: `{"order_id": "...", "currency": "EUR", "customer": {"id": "...", "email": "..."},
//! "items": [{"sku": "...", "qty": 2, "unit_price_cents": 1250}]}`.
//! A valid order comes back normalised (SKUs upper-cased, currency upper-cased)
//! with its item count, and a `compute` action asks the node named by
//! `price_with` (default `price_cart`; empty: no action) to price it.
//! An invalid one fails with `invalid-input` listing every problem.

use serde::{Deserialize, Serialize};
use weft_plugin::{ActionKind, Context, StepError, json};

const CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "JPY", "CHF"];
const MAX_ITEMS: usize = 500;

#[derive(Deserialize)]
struct Customer {
    id: String,
    email: String,
}

#[derive(Deserialize, Serialize, Clone)]
struct Item {
    sku: String,
    qty: i64,
    unit_price_cents: i64,
}

#[derive(Deserialize)]
struct Order {
    order_id: String,
    currency: String,
    customer: Customer,
    items: Vec<Item>,
    /// The node the pricing action is for.
    #[serde(default = "default_pricer")]
    price_with: String,
}

fn default_pricer() -> String {
    "price_cart".into()
}

#[derive(Serialize)]
struct Validated {
    valid: bool,
    order_id: String,
    currency: String,
    customer_id: String,
    item_count: usize,
    total_qty: i64,
    items: Vec<Item>,
}

fn validate(ctx: &mut Context, order: Order) -> Result<Validated, StepError> {
    let mut problems = Vec::new();
    if order.order_id.trim().is_empty() {
        problems.push("order_id is empty".to_string());
    }
    let currency = order.currency.to_ascii_uppercase();
    if !CURRENCIES.contains(&currency.as_str()) {
        problems.push(format!("currency `{}` is not one of {}", order.currency, CURRENCIES.join(", ")));
    }
    if order.customer.id.trim().is_empty() {
        problems.push("customer.id is empty".to_string());
    }
    let email = &order.customer.email;
    let at = email.find('@');
    if !matches!(at, Some(i) if i > 0 && i + 1 < email.len() && email[i + 1..].contains('.')) {
        problems.push(format!("customer.email `{email}` is not an email address"));
    }
    if order.items.is_empty() {
        problems.push("items is empty: an order needs at least one item".to_string());
    }
    if order.items.len() > MAX_ITEMS {
        problems.push(format!("items has {} entries; at most {MAX_ITEMS} are allowed", order.items.len()));
    }
    let mut items = Vec::with_capacity(order.items.len());
    for (i, item) in order.items.iter().enumerate() {
        if item.sku.trim().is_empty() {
            problems.push(format!("items[{i}].sku is empty"));
        }
        if item.qty <= 0 {
            problems.push(format!("items[{i}].qty is {}; it must be at least 1", item.qty));
        }
        if item.unit_price_cents < 0 {
            problems.push(format!("items[{i}].unit_price_cents is negative ({})", item.unit_price_cents));
        }
        items.push(Item { sku: item.sku.trim().to_ascii_uppercase(), ..item.clone() });
    }
    if !problems.is_empty() {
        weft_plugin::warn(&format!("order {} rejected: {} problem(s)", order.order_id, problems.len()));
        return Err(StepError::invalid_input(problems.join("; ")));
    }
    let total_qty = items.iter().map(|i| i.qty).sum();
    weft_plugin::info(&format!("order {} is valid ({} items)", order.order_id, items.len()));
    if !order.price_with.is_empty() {
        ctx.emit(ActionKind::Compute, order.price_with.clone(), &json!({ "order_id": order.order_id }))?;
    }
    Ok(Validated {
        valid: true,
        order_id: order.order_id,
        currency,
        customer_id: order.customer.id,
        item_count: items.len(),
        total_qty,
        items,
    })
}

weft_plugin::compute_step!(validate);
