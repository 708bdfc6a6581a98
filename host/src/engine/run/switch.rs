//! The nodes that run nothing and finish as soon as they are decided:
//! `conditional` (its first case that holds picks which of its dependents
//! run) and `parallel` (a fork/join point whose output is its input). They
//! make no attempt: `step_scheduled` and `step_completed` are journaled
//! together.

use super::Run;
use super::state::State;
use crate::workflow::NodeKind;
use crate::workflow::expr::Bound;
use serde_json::{Map, Value, json};

impl Run {
    /// Whether node `i` completes as soon as it is decided.
    pub(super) fn is_inline(&self, i: usize) -> bool {
        matches!(self.wf.nodes[i].kind, NodeKind::Switch(_) | NodeKind::Join)
    }

    /// The output of an inline node `i` with `input`: a conditional's
    /// choice, `{"case": k, "chosen": [...]}` (`case` is the index of the
    /// case taken, `"default"`, or null when none held), or a join's input.
    pub(super) fn inline_output(
        &self,
        i: usize,
        input: &Map<String, Value>,
        bound: Option<&Bound>,
    ) -> Result<Value, String> {
        match &self.wf.nodes[i].kind {
            NodeKind::Switch(cases) => {
                for (k, case) in cases.iter().enumerate() {
                    let holds = match &case.when {
                        None => true,
                        Some(w) => {
                            let bound = bound.ok_or("internal error: a case was evaluated without a scope")?;
                            w.eval_bool_in(bound).map_err(|m| format!("case {k} `when`: {m}"))?
                        }
                    };
                    if holds {
                        let label = if case.when.is_some() { json!(k) } else { json!("default") };
                        return Ok(json!({ "case": label, "chosen": case.then }));
                    }
                }
                Ok(json!({ "case": null, "chosen": [] }))
            }
            _ => Ok(Value::Object(input.clone())),
        }
    }

    /// Why node `i` is not run although its dependencies are done: a
    /// conditional it depends on names it in a case and did not choose it.
    /// A conditional that did not complete (its failure tolerated, or
    /// skipped with `run_if_dependency_skipped` on its dependents) chose
    /// nothing: no branch it guards runs.
    pub(super) fn not_chosen(&self, i: usize) -> Option<String> {
        let id = &self.wf.nodes[i].id;
        for &d in &self.wf.graph.dependencies[i] {
            let NodeKind::Switch(cases) = &self.wf.nodes[d].kind else { continue };
            if !cases.iter().any(|c| c.then.contains(id)) {
                continue;
            }
            if self.state[d] != State::Completed {
                return Some(format!("conditional `{}` chose nothing (it did not complete)", self.wf.nodes[d].id));
            }
            let chosen: Vec<&str> = self.outputs[d]
                .as_ref()
                .and_then(|o| o.get("chosen"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !chosen.contains(&id.as_str()) {
                let picked = if chosen.is_empty() { "none".to_string() } else { chosen.join(", ") };
                return Some(format!("conditional `{}` did not choose it (it chose: {picked})", self.wf.nodes[d].id));
            }
        }
        None
    }
}
