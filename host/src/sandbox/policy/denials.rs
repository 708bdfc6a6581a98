//! What an attempt was refused: each denial is counted in its attempt
//! report, and the first [`MAX_DENIAL_LINES`] become `capability_denied`
//! lines in the step's log (redacted and traced with the rest of the log),
//! so a guest that loops on a denied door cannot grow the host's memory or
//! the journal.

use std::sync::{Arc, Mutex, PoisonError};

/// Most denial lines kept per attempt; later denials are only counted.
pub const MAX_DENIAL_LINES: usize = 16;

/// The denials of one attempt, shared with the gates that record them.
#[derive(Debug, Clone, Default)]
pub struct Denials(Arc<Mutex<Recorded>>);

#[derive(Debug, Default)]
struct Recorded {
    lines: Vec<String>,
    count: u32,
}

impl Denials {
    /// Records that `capability` refused something, and why.
    pub fn record(&self, capability: &str, what: String) {
        let mut r = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        r.count = r.count.saturating_add(1);
        if r.lines.len() < MAX_DENIAL_LINES {
            r.lines.push(format!("capability_denied {capability}: {what}"));
        }
    }

    /// How many denials were recorded so far.
    pub fn count(&self) -> u32 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).count
    }

    /// The lines kept and the number of denials, leaving none; a last line
    /// says how many were not kept.
    pub fn take(&self) -> (Vec<String>, u32) {
        let mut r = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut lines = std::mem::take(&mut r.lines);
        let count = std::mem::take(&mut r.count);
        let unlisted = (count as usize).saturating_sub(lines.len());
        if unlisted > 0 {
            lines.push(format!("capability_denied: {unlisted} more denial(s) not listed"));
        }
        (lines, count)
    }
}
