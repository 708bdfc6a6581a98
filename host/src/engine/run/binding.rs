//! Deciding a ready step: whether it must be skipped (a failed or skipped
//! dependency, a missing action, a false `when`), and its input (the default
//! mapping, or CEL expressions over the bound scope).

use super::Run;
use super::state::State;
use crate::contract::now_ms;
use crate::workflow::InputMapping;
use crate::workflow::expr::{Bound, CelValue, Meter, Uses, bind_with};
use serde_json::{Map, Value};

impl Run {
    /// The variables node `i`'s expressions read, bound for CEL. Only what
    /// they read is copied: a step's expressions cost the size of the outputs
    /// they name, not of every output so far.
    pub(super) fn bind(&self, i: usize, uses: &Uses) -> Bound {
        let steps: Vec<(&str, &Value)> = if uses.all_steps {
            let named = self.outputs.iter().enumerate();
            named.filter_map(|(j, out)| Some((self.wf.nodes[j].id.as_str(), out.as_ref()?))).collect()
        } else {
            let outputs = uses.steps.iter().filter_map(|id| Some((id, self.index(id)?)));
            outputs.filter_map(|(id, j)| Some((id.as_str(), self.outputs[j].as_ref()?))).collect()
        };
        // The run's context and metadata are converted once per run, then shared.
        let cached = |read: bool, cell: &std::cell::OnceCell<CelValue>, m: &Map<String, Value>| {
            if read {
                cell.get_or_init(|| CelValue::from_json(&Value::Object(m.clone()))).clone()
            } else {
                self.null.clone()
            }
        };
        let none: &[Value] = &[];
        bind_with(
            &cached(uses.reads("context"), &self.context_cel, &self.config.context),
            &steps,
            if uses.reads("actions") { &self.delivered[i] } else { none },
            &if uses.reads("run") { self.run_json() } else { Value::Null },
            &[
                &cached(uses.reads("metadata"), &self.metadata_cel, &self.config.metadata),
                &cached(uses.reads("config"), &self.config_cel, &self.config.settings.domain_specific_config),
            ],
            self.meter(),
        )
    }

    /// A meter for one node's evaluations: the operator's budget, stopped
    /// sooner by the run's global timeout or a cancel.
    pub(super) fn meter(&self) -> Meter {
        let left = self.config.global_timeout_ms.saturating_sub(now_ms().saturating_sub(self.started_ms));
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(left);
        Meter::new(self.expr_budget, Some(deadline), Some(self.cancel.clone()))
    }

    /// The input object of node `i`, or why it could not be computed.
    pub(super) fn input_for(&self, i: usize, bound: Option<&Bound>) -> Result<Map<String, Value>, String> {
        let node = &self.wf.nodes[i];
        let mut input = match &node.input {
            InputMapping::Default => {
                let deps = &self.wf.graph.dependencies[i];
                match deps.as_slice() {
                    [] => self.config.context.clone(),
                    [only] => match self.outputs[*only].clone() {
                        Some(Value::Object(m)) => m,
                        Some(other) => Map::from_iter([("value".to_string(), other)]),
                        None => Map::new(),
                    },
                    many => many
                        .iter()
                        .map(|&d| (self.wf.nodes[d].id.clone(), self.outputs[d].clone().unwrap_or(Value::Null)))
                        .collect(),
                }
            }
            InputMapping::Whole(e) => match e.eval_in(bound_for(bound)?).map_err(|m| format!("`input`: {m}"))? {
                Value::Object(m) => m,
                other => return Err(format!("`input` gave {other}, not an object")),
            },
            InputMapping::Fields(fields) => {
                let mut m = Map::new();
                let bound = bound_for(bound)?;
                for (k, e) in fields {
                    m.insert(k.clone(), e.eval_in(bound).map_err(|msg| format!("`input.{k}`: {msg}"))?);
                }
                m
            }
        };
        // With the default mapping, delivered actions arrive under `actions`;
        // an explicit mapping reads them from the `actions` variable itself.
        if matches!(node.input, InputMapping::Default)
            && !self.delivered[i].is_empty()
            && !input.contains_key("actions")
        {
            input.insert("actions".into(), Value::Array(self.delivered[i].clone()));
        }
        if let Some(fan) = &node.for_each {
            let items = fan.items.eval_in(bound_for(bound)?).map_err(|m| format!("`for_each`: {m}"))?;
            // Without `input:`, `with` is empty: the default input (the run's
            // context, for a root node) would copy the list into every shard.
            let with = match node.input {
                // Only the actions delivered to it, when there are any.
                InputMapping::Default => {
                    input.remove("actions").map(|a| Map::from_iter([("actions".into(), a)])).unwrap_or_default()
                }
                _ => input,
            };
            return self.fan_out_input(i, items, with);
        }
        Ok(input)
    }

    /// Why node `i` must be skipped, if it must.
    pub(super) fn skip_reason(&self, i: usize, bound: Option<&Bound>) -> Result<Option<String>, String> {
        let node = &self.wf.nodes[i];
        if !self.config.selected(i) {
            return Ok(Some("not selected by the run input's `steps`".into()));
        }
        if let Some(reason) = self.not_chosen(i) {
            return Ok(Some(reason));
        }
        for &d in &self.wf.graph.dependencies[i] {
            match self.state[d] {
                State::Failed => return Ok(Some(format!("dependency `{}` failed", self.wf.nodes[d].id))),
                State::Skipped if !node.run_if_dependency_skipped => {
                    return Ok(Some(format!("dependency `{}` was skipped", self.wf.nodes[d].id)));
                }
                _ => {}
            }
        }
        if node.requires_action && self.delivered[i].is_empty() {
            return Ok(Some("no action targeted this node (requires_action)".into()));
        }
        if let Some(w) = &node.when
            && !w.eval_bool_in(bound_for(bound)?).map_err(|m| format!("`when`: {m}"))?
        {
            return Ok(Some(format!("`when` is false: {}", w.source())));
        }
        Ok(None)
    }
}

/// The bound scope an expression needs (always there when the node has expressions).
fn bound_for(bound: Option<&Bound>) -> Result<&Bound, String> {
    bound.ok_or_else(|| "internal error: an expression was evaluated without a scope".to_string())
}
