//! Hostile fixture: a finite but long computation (about 10^11 iterations).
//! `{"iterations": N}` sets the count, so a small N finishes normally.

use weft_plugin::{Context, StepError, Value, json};

fn burn(_ctx: &mut Context, input: Value) -> Result<Value, StepError> {
    let n = input.get("iterations").and_then(Value::as_u64).unwrap_or(100_000_000_000);
    let mut acc: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        acc = std::hint::black_box(acc.rotate_left(5) ^ i);
    }
    Ok(json!({ "acc": acc, "iterations": n }))
}

weft_plugin::compute_step!(burn);
