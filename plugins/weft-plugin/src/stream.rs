//! Emitting items while the step runs (`weft:step/stream`), for the nodes
//! that consume this step's stream (`stream_from`) in streaming mode.
//!
//! ```ignore
//! for n in 0..input.count {
//!     weft_plugin::emit(&n)?;
//! }
//! ```
//!
//! `emit` waits while the consumers' buffer is full (backpressure). On a
//! retry or a resumed run the host skips the items it already took, by
//! position, so emit the same items in the same order on every attempt.

use crate::StepError;
use crate::compute_bindings::weft::step::stream as wit;
use serde::Serialize;

/// Why an item was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError {
    /// The item could not be serialized, is not valid JSON or is too large.
    Invalid(String),
    /// Every consumer stopped, or the run is stopping: stop emitting.
    Closed(String),
}

impl std::fmt::Display for EmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(m) => write!(f, "the item was refused: {m}"),
            Self::Closed(m) => write!(f, "the stream is closed: {m}"),
        }
    }
}

impl std::error::Error for EmitError {}

/// An item that cannot be emitted fails the step for good; so does emitting
/// into a closed stream (the run is stopping anyway).
impl From<EmitError> for StepError {
    fn from(e: EmitError) -> Self {
        StepError::fatal(e.to_string())
    }
}

/// Emits one item (anything `serde` can serialize) to this step's consumers.
pub fn emit<T: Serialize + ?Sized>(item: &T) -> Result<(), EmitError> {
    let text = serde_json::to_string(item).map_err(|e| EmitError::Invalid(e.to_string()))?;
    wit::emit(&text).map_err(|e| match e {
        wit::StreamError::Invalid(m) => EmitError::Invalid(m),
        wit::StreamError::Closed(m) => EmitError::Closed(m),
    })
}
