//! The epoch ticker: the clock behind every attempt's wall-time deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use wasmtime::Engine;

/// One thread that advances the engine's epoch every tick while any attempt
/// is running, and sleeps otherwise.
pub struct Ticker {
    shared: Arc<TickerShared>,
    thread: Option<JoinHandle<()>>,
}

struct TickerShared {
    active: AtomicUsize,
    stop: AtomicBool,
}

/// Keeps the ticker running while held; one per running attempt.
pub struct TickerGuard<'a> {
    ticker: &'a Ticker,
}

impl Drop for TickerGuard<'_> {
    fn drop(&mut self) {
        self.ticker.shared.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Ticker {
    /// Starts the ticker thread for `engine`.
    pub fn start(engine: Engine, tick: std::time::Duration) -> std::io::Result<Self> {
        let shared = Arc::new(TickerShared { active: AtomicUsize::new(0), stop: AtomicBool::new(false) });
        let s = shared.clone();
        let thread = std::thread::Builder::new().name("weft-epoch".into()).spawn(move || {
            while !s.stop.load(Ordering::Acquire) {
                if s.active.load(Ordering::Acquire) == 0 {
                    std::thread::park();
                    continue;
                }
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        })?;
        Ok(Self { shared, thread: Some(thread) })
    }

    /// Marks one attempt as running until the guard drops.
    pub fn enter(&self) -> TickerGuard<'_> {
        if self.shared.active.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(t) = &self.thread
        {
            t.thread().unpark();
        }
        TickerGuard { ticker: self }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
