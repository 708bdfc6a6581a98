//! The records a run's output lists: the actions its steps emitted, those
//! that could not be delivered, and its errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One emitted action (the ONEX orchestrator contract's ModelAction shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Unique id.
    pub action_id: String,
    /// compute, effect, reduce, orchestrate or custom.
    pub action_type: String,
    /// The node it is for.
    pub target_node: String,
    /// Its data (an object).
    pub payload: Value,
}

/// An action that was not delivered: it named a node that does not depend on
/// the step that emitted it, or no node of the workflow at all (listed under
/// `output_variables.undelivered_actions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndeliveredAction {
    /// The action's id (as in `actions_emitted`).
    pub action_id: String,
    /// The step that emitted it.
    pub source_node: String,
    /// The node it named.
    pub target_node: String,
    /// Why it was not delivered and what to do, in one sentence.
    pub reason: String,
}

/// One error (the contract's `{step_id, error_type, message}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The step, or `workflow` for run-level errors.
    pub step_id: String,
    /// A failure kind (`timeout`, `trap`, `plugin_error`, ...) or a run-level
    /// error (`cancelled`, `expression`, `compensation_failed`).
    pub error_type: String,
    /// What happened.
    pub message: String,
}
