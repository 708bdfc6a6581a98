//! A stream consumer: folds a micro-batch of readings into running
//! statistics, per sensor and over all.
//!
//! Input (from the host, once per micro-batch): `{"items": [{"sensor",
//! "value"}, ...], "state": <the previous output, or null>, "with":
//! {"threshold": 90}}`. Output, the new state: `{"count", "sum", "min",
//! "max", "mean", "alerts", "sensors": {name: {"count", "sum"}}}`, where
//! `alerts` counts readings above `threshold`. Items that are not readings
//! are an `invalid-input`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weft_plugin::{Context, StepError};

#[derive(Deserialize)]
struct Reading {
    sensor: String,
    value: f64,
}

#[derive(Deserialize, Default)]
struct With {
    #[serde(default)]
    threshold: Option<f64>,
}

#[derive(Serialize, Deserialize, Default, Clone)]
struct PerSensor {
    count: u64,
    sum: f64,
}

#[derive(Serialize, Deserialize, Default)]
struct Stats {
    count: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    alerts: u64,
    sensors: BTreeMap<String, PerSensor>,
}

#[derive(Deserialize)]
struct Input {
    items: Vec<weft_plugin::Value>,
    #[serde(default)]
    state: Option<Stats>,
    #[serde(default)]
    with: Option<With>,
}

fn window_stats(_ctx: &mut Context, input: Input) -> Result<Stats, StepError> {
    let mut s = input.state.unwrap_or_default();
    let threshold = input.with.unwrap_or_default().threshold;
    for (k, item) in input.items.into_iter().enumerate() {
        let r: Reading = weft_plugin::serde_json::from_value(item)
            .map_err(|e| StepError::invalid_input(format!("item {k} is not a reading ({{sensor, value}}): {e}")))?;
        s.count += 1;
        s.sum += r.value;
        s.min = Some(s.min.map_or(r.value, |m| m.min(r.value)));
        s.max = Some(s.max.map_or(r.value, |m| m.max(r.value)));
        if threshold.is_some_and(|t| r.value > t) {
            s.alerts += 1;
        }
        let per = s.sensors.entry(r.sensor).or_default();
        per.count += 1;
        per.sum += r.value;
    }
    s.mean = (s.count > 0).then(|| s.sum / s.count as f64);
    Ok(s)
}

weft_plugin::compute_step!(window_stats);
