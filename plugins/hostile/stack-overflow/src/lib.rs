//! Hostile fixture: unbounded recursion.

use weft_plugin::{Context, StepError, Value, json};

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64, pad: [u64; 16]) -> u64 {
    let next = std::hint::black_box([pad[0].wrapping_add(depth); 16]);
    recurse(depth + 1, next).wrapping_add(next[3])
}

fn overflow(_ctx: &mut Context, _input: Value) -> Result<Value, StepError> {
    Ok(json!({ "never": recurse(0, [0; 16]) }))
}

weft_plugin::compute_step!(overflow);
