//! Every exit code `weft` uses, in one place.

use std::process::ExitCode;
use weft::contract::{ExecutionStatus, FailureKind};

/// Success: the command did what it was asked, the run completed, the host is healthy.
pub const OK: u8 = 0;
/// The host failed (I/O, the store's backend), or `weft health` found a problem.
pub const HOST_ERROR: u8 = 1;
/// The command's arguments or inputs are wrong: a usage error.
pub const USAGE: u8 = 2;
/// The run ended `failed`.
pub const RUN_FAILED: u8 = 3;
/// The run ended `cancelled`.
pub const RUN_CANCELLED: u8 = 4;
/// A second Ctrl-C stopped the process at once (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;
/// SIGTERM drained the run, or a second signal stopped the process: the run
/// is left resumable (128 + SIGTERM, as shells report it).
pub const TERMINATED: u8 = 143;
/// stdout was closed by its reader (128 + SIGPIPE, as shells report it).
pub const BROKEN_PIPE: u8 = 141;

/// The exit code of `weft plugin call` for an attempt that failed this way.
pub fn for_failure(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::Timeout => 10,
        FailureKind::OutOfFuel => 11,
        FailureKind::MemoryLimit => 12,
        FailureKind::Trap => 13,
        FailureKind::PluginError => 14,
        FailureKind::InvalidOutput => 15,
        FailureKind::ComponentInvalid => 16,
        FailureKind::CircuitOpen => 17,
    }
}

/// The exit code of a command that ends with a run: 0 completed, 4
/// cancelled, 143 drained (left resumable), 3 otherwise.
pub fn for_status(status: ExecutionStatus) -> u8 {
    match status {
        ExecutionStatus::Completed => OK,
        ExecutionStatus::Cancelled => RUN_CANCELLED,
        ExecutionStatus::Paused => TERMINATED,
        _ => RUN_FAILED,
    }
}

/// `code` as the process's exit code.
pub fn code(code: u8) -> ExitCode {
    ExitCode::from(code)
}
