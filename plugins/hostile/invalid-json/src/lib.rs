//! Hostile fixture: returns text that is not JSON, and an action whose payload is not an object.

use weft_plugin::{Context, StepError};

fn garbage(_ctx: &mut Context, _input: &str) -> Result<String, StepError> {
    Ok("{\"unterminated\": [1, 2".to_string())
}

weft_plugin::compute_step_raw!(garbage);
