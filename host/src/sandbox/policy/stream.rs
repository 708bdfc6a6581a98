//! `weft:step/stream`: the items a step emits while it runs. Both worlds
//! import it; it needs no grant, since emitting reaches only the run's own
//! consumers. The engine hands each attempt a [`StreamSink`] (bounded
//! buffers to the consumers) in its grants; without one (a node that
//! nothing consumes, `weft plugin call`) items are counted and dropped.
//!
//! Each item must be valid JSON and at most [`MAX_ITEM_BYTES`]; an attempt
//! emits at most [`MAX_ITEMS`]. A refusal is the interface's own
//! `stream-error`, never a trap.

use super::Grants;
use super::capability::{AttemptWasi, Capability};
use crate::contract::StreamSink;
use crate::sandbox::bindings::compute::weft::step::stream as wit;
use crate::sandbox::state::StepState;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// The `stream` piece of the sandbox.
pub struct Stream;

/// Largest item one `emit` may pass, in bytes of JSON text.
pub const MAX_ITEM_BYTES: usize = 1 << 20;

/// Most items one attempt may emit.
pub const MAX_ITEMS: u64 = 10_000_000;

impl Capability for Stream {
    fn name(&self) -> &'static str {
        "stream"
    }

    fn link(&self, linker: &mut Linker<StepState>) -> anyhow::Result<()> {
        wit::add_to_linker::<StepState, HasSelf<StepState>>(linker, |s| s).map_err(anyhow::Error::from)
    }

    fn prepare(&self, attempt: &mut AttemptWasi<'_>, grants: &Grants) -> Result<(), String> {
        attempt.stream = StreamSession { sink: grants.stream.clone(), emitted: 0 };
        Ok(())
    }
}

/// Where one attempt's emitted items go.
#[derive(Default)]
pub struct StreamSession {
    sink: Option<Arc<dyn StreamSink>>,
    emitted: u64,
}

impl StreamSession {
    /// How many items the attempt emitted (taken or dropped).
    pub fn emitted(&self) -> u64 {
        self.emitted
    }
}

impl wit::Host for StepState {
    async fn emit(&mut self, item: String) -> Result<(), wit::StreamError> {
        if item.len() > MAX_ITEM_BYTES {
            return Err(wit::StreamError::Invalid(format!(
                "the item is {} bytes; an item may be at most {MAX_ITEM_BYTES} bytes of JSON",
                item.len()
            )));
        }
        if self.stream.emitted >= MAX_ITEMS {
            return Err(wit::StreamError::Closed(format!("an attempt may emit at most {MAX_ITEMS} items")));
        }
        let value: serde_json::Value = serde_json::from_str(&item)
            .map_err(|e| wit::StreamError::Invalid(format!("the item is not valid JSON: {e}")))?;
        self.stream.emitted += 1;
        match self.stream.sink.clone() {
            Some(sink) => sink.emit(value, item.len()).await.map_err(wit::StreamError::Closed),
            None => Ok(()),
        }
    }
}
