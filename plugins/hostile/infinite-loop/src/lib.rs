//! Hostile fixture: never returns.

use weft_plugin::{Context, StepError, Value};

fn spin(_ctx: &mut Context, _input: Value) -> Result<Value, StepError> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

weft_plugin::compute_step!(spin);
