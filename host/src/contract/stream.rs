//! [`StreamSink`]: where a step's emitted items go (`weft:step/stream`). The
//! engine implements it with bounded buffers to the step's consumers; the
//! sandbox calls it from the guest's `emit`.

use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// What [`StreamSink::emit`] returns.
pub type StreamFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Takes the items one attempt of a step emits, in order.
pub trait StreamSink: Send + Sync {
    /// Takes one item, `bytes` long as JSON text; waits while the consumers'
    /// buffer is full. `Err` says why no more items are taken (the run is
    /// stopping): the step should stop emitting.
    fn emit(&self, item: Value, bytes: usize) -> StreamFuture<'_>;
}
