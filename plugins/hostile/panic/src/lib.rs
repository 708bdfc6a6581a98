//! Hostile fixture: panics.

use weft_plugin::{Context, StepError, Value};

fn explode(_ctx: &mut Context, _input: Value) -> Result<Value, StepError> {
    panic!("the plugin gave up: this step always panics");
}

weft_plugin::compute_step!(explode);
