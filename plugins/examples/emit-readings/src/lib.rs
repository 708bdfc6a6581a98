//! A stream producer: emits `count` sensor readings while it runs, for the
//! nodes that consume its stream (`stream_from`).
//!
//! Input: `{"count": 1000, "sensors": ["a", "b"], "spike_every": 97}`.
//! Reading `i` is `{"seq": i, "sensor": sensors[i % len], "value": v}`, where
//! `v` follows a fixed saw-tooth and every `spike_every`-th reading spikes.
//! The sequence depends only on the input, so a retried or resumed producer
//! emits the same items in the same order (the host skips the ones it
//! already took). Output: `{"emitted": count}`.

use serde::Deserialize;
use weft_plugin::{Context, StepError, Value, emit, json};

#[derive(Deserialize)]
struct Input {
    count: u64,
    #[serde(default = "default_sensors")]
    sensors: Vec<String>,
    #[serde(default)]
    spike_every: u64,
}

fn default_sensors() -> Vec<String> {
    vec!["s1".into()]
}

fn emit_readings(_ctx: &mut Context, input: Input) -> Result<Value, StepError> {
    if input.sensors.is_empty() {
        return Err(StepError::invalid_input("`sensors` is empty; name at least one sensor"));
    }
    if input.count > 10_000_000 {
        return Err(StepError::invalid_input("`count` is over 10,000,000"));
    }
    for i in 0..input.count {
        let sensor = &input.sensors[(i % input.sensors.len() as u64) as usize];
        let mut value = 20.0 + (i % 10) as f64;
        if input.spike_every > 0 && i % input.spike_every == input.spike_every - 1 {
            value += 80.0;
        }
        emit(&json!({ "seq": i, "sensor": sensor, "value": value }))?;
    }
    Ok(json!({ "emitted": input.count }))
}

weft_plugin::compute_step!(emit_readings);
