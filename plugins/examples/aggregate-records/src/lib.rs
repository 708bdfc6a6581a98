//! Groups records by a field and aggregates numeric fields per group.
//!
//! Input: `{"records": [{"region": "eu", "amount": 12.5}, ...], "group_by": "region",
//! "sum": ["amount"]}`. Output: one group per distinct value of `group_by`, in
//! first-seen order, with its `count` and, for each field in `sum`, its `sum`,
//! `min`, `max` and `mean`. Records that lack the group field are counted in
//! `ungrouped`; non-numeric values of a summed field are an `invalid-input`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weft_plugin::{Context, StepError, Value};

#[derive(Deserialize)]
struct Request {
    records: Vec<weft_plugin::serde_json::Map<String, Value>>,
    group_by: String,
    #[serde(default)]
    sum: Vec<String>,
}

#[derive(Serialize, Default, Clone)]
struct Stats {
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
}

#[derive(Serialize)]
struct Group {
    key: Value,
    count: u64,
    fields: BTreeMap<String, Stats>,
}

#[derive(Serialize)]
struct Report {
    group_by: String,
    groups: Vec<Group>,
    ungrouped: u64,
    total_records: usize,
}

fn aggregate(_ctx: &mut Context, req: Request) -> Result<Report, StepError> {
    if req.group_by.is_empty() {
        return Err(StepError::invalid_input("group_by is empty: name the field to group on"));
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut ungrouped = 0;
    for (i, rec) in req.records.iter().enumerate() {
        let Some(key) = rec.get(&req.group_by).filter(|v| !v.is_null()) else {
            ungrouped += 1;
            continue;
        };
        let key_text = key.to_string();
        let gi = *index.entry(key_text).or_insert_with(|| {
            groups.push(Group {
                key: key.clone(),
                count: 0,
                fields: req.sum.iter().map(|f| (f.clone(), Stats::default())).collect(),
            });
            groups.len() - 1
        });
        let group = &mut groups[gi];
        group.count += 1;
        for field in &req.sum {
            let Some(v) = rec.get(field).filter(|v| !v.is_null()) else {
                continue;
            };
            let x = v.as_f64().ok_or_else(|| {
                StepError::invalid_input(format!("records[{i}].{field} is {v}, which is not a number"))
            })?;
            let s = group.fields.entry(field.clone()).or_default();
            s.sum += x;
            s.min = Some(s.min.map_or(x, |m| m.min(x)));
            s.max = Some(s.max.map_or(x, |m| m.max(x)));
        }
    }
    for g in &mut groups {
        for s in g.fields.values_mut() {
            if s.min.is_some() {
                s.mean = Some(s.sum / g.count as f64);
            }
        }
    }
    Ok(Report { group_by: req.group_by, groups, ungrouped, total_records: req.records.len() })
}

weft_plugin::compute_step!(aggregate);
