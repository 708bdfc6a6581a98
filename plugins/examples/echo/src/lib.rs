//! Returns its input unchanged: the smallest useful step.

use weft_plugin::{Context, StepError, Value};

fn echo(_ctx: &mut Context, input: Value) -> Result<Value, StepError> {
    Ok(input)
}

weft_plugin::compute_step!(echo);
