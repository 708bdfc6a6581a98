//! What an attempt was refused: each denial becomes a `capability_denied`
//! line in the step's log and a count in its attempt report.

use std::sync::{Arc, Mutex, PoisonError};

/// The denials of one attempt, shared with the gates that record them.
#[derive(Debug, Clone, Default)]
pub struct Denials(Arc<Mutex<Vec<String>>>);

impl Denials {
    /// Records that `capability` refused something, and why.
    pub fn record(&self, capability: &str, what: String) {
        let line = format!("capability_denied {capability}: {what}");
        tracing::warn!(target: "weft::capability", "{line}");
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(line);
    }

    /// The lines recorded so far, oldest first, leaving none.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
