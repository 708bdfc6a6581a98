//! Action delivery (ModelAction): a completed step's emitted actions reach
//! the nodes downstream of it. They are decided only after the emitter
//! completes, in every mode, so delivery never depends on timing. Actions to
//! any other node are listed as not delivered, with the reason, and kept in
//! `actions_emitted` all the same.

use super::Run;
use crate::contract::{ActionRecord, EmittedAction, UndeliveredAction};
use crate::workflow::closest;
use serde_json::json;
use std::collections::HashSet;

/// How many undeliverable actions to unknown nodes get a did-you-mean (each
/// one scans every node id).
const SUGGESTIONS: usize = 10;

impl Run {
    /// Delivers the actions `step_id` (node `i`) emitted, or records why not.
    pub(super) fn deliver(&mut self, i: usize, step_id: &str, actions: &[ActionRecord]) {
        for record in actions {
            let target = &record.target_node;
            let reason = match self.index(target) {
                Some(t) if self.is_downstream(i, t) => {
                    self.delivered[t].push(json!({
                        "action_id": record.action_id,
                        "action_type": record.action_type,
                        "source_node": step_id,
                        "payload": record.payload,
                    }));
                    None
                }
                Some(_) => Some(format!(
                    "`{target}` does not depend on `{step_id}`, so it may already have been decided when the \
                     action came; add `{step_id}` to the `depends_on` of `{target}` (directly or through \
                     other nodes) to deliver it"
                )),
                None => {
                    let hint = (self.undelivered.len() < SUGGESTIONS)
                        .then(|| {
                            let ids: Vec<&str> = self.wf.nodes.iter().map(|n| n.id.as_str()).collect();
                            closest(target, &ids).map(|c| format!(" (did you mean `{c}`?)"))
                        })
                        .flatten()
                        .unwrap_or_default();
                    Some(format!("no node of this workflow is named `{target}`{hint}"))
                }
            };
            if let Some(reason) = reason {
                self.undelivered.push(UndeliveredAction {
                    action_id: record.action_id.clone(),
                    source_node: step_id.to_string(),
                    target_node: target.clone(),
                    reason,
                });
            }
            self.actions.push(record.clone());
        }
    }

    /// Whether node `to` depends on node `from`, directly or through others.
    /// Walks up from `to` and never below `from` in topological order, so an
    /// action to a nearby dependent costs a step or two, not the whole graph.
    fn is_downstream(&self, from: usize, to: usize) -> bool {
        if self.topo_pos[to] <= self.topo_pos[from] {
            return false;
        }
        let mut stack = vec![to];
        let mut seen = HashSet::new();
        while let Some(k) = stack.pop() {
            for &d in &self.wf.graph.dependencies[k] {
                if d == from {
                    return true;
                }
                if self.topo_pos[d] > self.topo_pos[from] && seen.insert(d) {
                    stack.push(d);
                }
            }
        }
        false
    }
}

/// The records of the actions one attempt emitted, each with a fresh id.
pub(super) fn action_records(emitted: &[EmittedAction]) -> Vec<ActionRecord> {
    emitted
        .iter()
        .map(|a| ActionRecord {
            action_id: uuid::Uuid::new_v4().to_string(),
            action_type: a.action_type.as_str().to_string(),
            target_node: a.target_node.clone(),
            payload: a.payload.clone(),
        })
        .collect()
}
