//! Hostile fixture: returns a 100 MB JSON string (`{"mb": N}` changes the size).

use weft_plugin::{Context, StepError, Value};

fn huge(_ctx: &mut Context, input: &str) -> Result<String, StepError> {
    let mb =
        serde_json::from_str::<Value>(input).ok().and_then(|v| v.get("mb").and_then(Value::as_f64)).unwrap_or(100.0);
    let bytes = (mb.clamp(0.0, 4096.0) * 1_000_000.0) as usize;
    let mut out = String::with_capacity(bytes + 2);
    out.push('"');
    out.extend(std::iter::repeat_n('x', bytes));
    out.push('"');
    Ok(out)
}

weft_plugin::compute_step_raw!(huge);
