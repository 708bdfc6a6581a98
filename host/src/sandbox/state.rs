//! The per-attempt store state: WASI context, memory limiter, log capture.

use super::policy::{HttpGate, KvSession, StreamSession};
use crate::capability::Redactor;
use crate::contract::{LogLevel, LogLine, LogSource};
use bytes::Bytes;
use std::sync::{Arc, Mutex, PoisonError};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Cuts `s` to at most `max` bytes (on a character boundary) and appends
/// `marker` when anything was cut.
pub fn truncate_marked(s: &mut String, max: usize, marker: &str) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(marker);
    }
}

/// Longest log line kept; longer lines are cut and marked.
pub const MAX_LOG_LINE: usize = 4 << 10;

/// The error a memory grow past the limit raises (and traps with).
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded: asked for {requested} bytes, the limit is {limit}")]
pub struct MemoryLimitExceeded {
    /// The limit in bytes.
    pub limit: u64,
    /// What the guest asked the total to become, in bytes.
    pub requested: u64,
}

/// The error the epoch callback raises once the deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the attempt's wall-time deadline passed")]
pub struct DeadlineExceeded;

/// Caps the instance's total linear memory and records its peak.
pub struct Limiter {
    limit: u64,
    total: u64,
    /// The last grant, undone if the grow then fails.
    last_grant: Option<(u64, u64)>,
    /// Largest total memory granted.
    pub peak: u64,
    /// The request that was refused, if one was.
    pub refused: Option<u64>,
}

impl Limiter {
    fn new(limit: u64) -> Self {
        Self { limit, total: 0, last_grant: None, peak: 0, refused: None }
    }
}

/// Most table elements per table; a table bomb fails its `table.grow`.
pub const MAX_TABLE_ELEMENTS: usize = 20_000;
/// Most core instances one component may create.
pub const MAX_CORE_INSTANCES: usize = 16;
/// Most linear memories one component may create.
pub const MAX_MEMORIES: usize = 2;
/// Most tables one component may create.
pub const MAX_TABLES: usize = 8;
/// Most resources (streams, pollables, ...) one attempt may hold at once.
pub const MAX_RESOURCES: usize = 4096;
/// Most log lines kept per attempt, whatever their size.
pub const MAX_LOG_LINES: usize = 1000;
/// What each kept line costs against the byte budget beyond its text.
const LINE_OVERHEAD: usize = 32;

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let new_total = (self.total - (current as u64).min(self.total)).saturating_add(desired as u64);
        if new_total > self.limit {
            self.refused = Some(new_total);
            return Err(wasmtime::Error::new(MemoryLimitExceeded { limit: self.limit, requested: new_total }));
        }
        self.last_grant = Some((self.total, new_total));
        self.total = new_total;
        self.peak = self.peak.max(new_total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The grow was granted here but failed later (past the memory's own
        // maximum, or mmap failed): the memory did not grow, so undo the grant.
        if let Some((before, after)) = self.last_grant.take()
            && self.total == after
        {
            self.total = before;
        }
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Collects log lines under a byte budget.
pub struct LogSink {
    lines: Vec<LogLine>,
    used: usize,
    budget: usize,
    dropped: usize,
}

impl LogSink {
    /// A sink that keeps up to `budget` bytes of messages.
    pub fn new(budget: usize) -> Self {
        Self { lines: Vec::new(), used: 0, budget, dropped: 0 }
    }

    /// Adds a line, or counts it as dropped when over budget.
    pub fn push(&mut self, level: LogLevel, source: LogSource, mut message: String) -> Option<&LogLine> {
        let is_host = source == LogSource::Host;
        if !is_host && (self.used + LINE_OVERHEAD > self.budget || self.lines.len() >= MAX_LOG_LINES) {
            self.dropped += 1;
            return None;
        }
        truncate_marked(&mut message, MAX_LOG_LINE, " [line truncated]");
        // The host's own notes (lines dropped, ...) are never dropped themselves.
        if !is_host && self.used + message.len() + LINE_OVERHEAD > self.budget {
            self.dropped += 1;
            return None;
        }
        if !is_host {
            self.used += message.len() + LINE_OVERHEAD;
        }
        self.lines.push(LogLine { level, source, message });
        self.lines.last()
    }

    /// The lines kept, with a closing host line when some were dropped.
    pub fn finish(mut self) -> Vec<LogLine> {
        if self.dropped > 0 {
            self.lines.push(LogLine {
                level: LogLevel::Warn,
                source: LogSource::Host,
                message: format!(
                    "{} log line(s) dropped: an attempt keeps at most {MAX_LOG_LINES} lines and {} bytes",
                    self.dropped, self.budget
                ),
            });
        }
        self.lines
    }
}

/// A guest's stdout or stderr: keeps the first `capacity` bytes, drops the rest
/// without failing the guest's write.
#[derive(Clone)]
pub struct CapturePipe {
    inner: Arc<Mutex<Capture>>,
}

struct Capture {
    buf: Vec<u8>,
    capacity: usize,
    dropped: u64,
}

impl CapturePipe {
    /// A pipe that keeps at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self { inner: Arc::new(Mutex::new(Capture { buf: Vec::new(), capacity, dropped: 0 })) }
    }

    fn append(&self, bytes: &[u8]) {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let room = c.capacity.saturating_sub(c.buf.len());
        let take = room.min(bytes.len());
        c.buf.extend_from_slice(&bytes[..take]);
        c.dropped += (bytes.len() - take) as u64;
    }

    /// The captured text (lossy UTF-8) and how many bytes were dropped.
    pub fn take(&self) -> (String, u64) {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let buf = std::mem::take(&mut c.buf);
        (String::from_utf8_lossy(&buf).into_owned(), c.dropped)
    }
}

impl IsTerminal for CapturePipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturePipe {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

/// Writes accepted per `check-write`: large enough for any sane line.
const WRITE_PERMIT: usize = 64 << 10;

impl OutputStream for CapturePipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturePipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturePipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Identity fields attached to every guest log event.
#[derive(Clone)]
pub struct LogTags {
    /// The run id.
    pub run_id: String,
    /// The step id.
    pub step_id: String,
    /// The attempt number.
    pub attempt: u32,
}

/// The data of one attempt's `Store`.
pub struct StepState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) logs: LogSink,
    pub(crate) tags: LogTags,
    pub(crate) http_ctx: WasiHttpCtx,
    pub(crate) http: HttpGate,
    pub(crate) kv: KvSession,
    pub(crate) stream: StreamSession,
    pub(crate) redactor: Redactor,
}

/// What an attempt's capabilities prepared beside its WASI context.
pub struct Sessions {
    /// The outbound HTTP gate.
    pub http: HttpGate,
    /// The key-value session.
    pub kv: KvSession,
    /// Where emitted items go.
    pub stream: StreamSession,
    /// Replaces secret values wherever the host writes.
    pub redactor: Redactor,
}

impl StepState {
    /// State for one attempt, with the WASI context and the sessions its
    /// capabilities prepared.
    pub fn new(wasi: WasiCtx, sessions: Sessions, memory_limit: u64, log_budget: usize, tags: LogTags) -> Self {
        let Sessions { http, kv, stream, redactor } = sessions;
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Self {
            wasi,
            table,
            limiter: Limiter::new(memory_limit),
            logs: LogSink::new(log_budget),
            tags,
            http_ctx: WasiHttpCtx::new(),
            http,
            kv,
            stream,
            redactor,
        }
    }

    /// Records a guest log line (secrets redacted) and forwards it to `tracing`.
    pub fn log(&mut self, level: LogLevel, source: LogSource, mut message: String) {
        self.redactor.in_place(&mut message);
        let Some(line) = self.logs.push(level, source, message) else {
            return;
        };
        let tags = &self.tags;
        // Escape control characters so that a guest cannot forge log records.
        let msg = line.message.escape_debug().to_string();
        let (run_id, step_id, attempt) = (&tags.run_id, &tags.step_id, tags.attempt);
        let src = match source {
            LogSource::Log => "log",
            LogSource::Stdout => "stdout",
            LogSource::Stderr => "stderr",
            LogSource::Host => "host",
        };
        match level {
            LogLevel::Trace => tracing::trace!(target: "weft::guest", run_id, step_id, attempt, source = src, "{msg}"),
            LogLevel::Debug => tracing::debug!(target: "weft::guest", run_id, step_id, attempt, source = src, "{msg}"),
            LogLevel::Info => tracing::info!(target: "weft::guest", run_id, step_id, attempt, source = src, "{msg}"),
            LogLevel::Warn => tracing::warn!(target: "weft::guest", run_id, step_id, attempt, source = src, "{msg}"),
            LogLevel::Error => tracing::error!(target: "weft::guest", run_id, step_id, attempt, source = src, "{msg}"),
        }
    }
}

impl WasiHttpView for StepState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http_ctx, table: &mut self.table, hooks: &mut self.http }
    }
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
