//! SIGTERM for the commands that drive runs (`weft run`, `weft resume`,
//! `weft worker`): the first one drains the engine (no new step starts,
//! steps in flight finish up to the run's `shutdown_timeout_ms`, leases are
//! given up, runs stay resumable); a second SIGTERM or a Ctrl-C then stops
//! the process at once.

use super::exit;
use super::output::noteln;
use tokio::signal::unix::{SignalKind, signal};
use weft::engine::Engine;

/// Drains `engine` on the first SIGTERM; exits at once on a second signal.
/// `what` says what is drained, for the note on stderr.
/// The handler is in place when this returns.
pub fn drain_on_sigterm(engine: Engine, what: &'static str) {
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        tracing::warn!("SIGTERM cannot be handled here; it stops the process at once");
        return;
    };
    tokio::spawn(async move {
        if term.recv().await.is_none() {
            return;
        }
        noteln!(
            "weft: SIGTERM: draining {what}: no new step starts, steps in flight may finish (up to the run's \
             shutdown_timeout_ms), then leases are given up and runs stay resumable; a second signal stops at once"
        );
        engine.drain();
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        noteln!("weft: stopped at once (second signal); unfinished runs are left as a crash leaves them: resumable");
        std::process::exit(i32::from(exit::TERMINATED));
    });
}
