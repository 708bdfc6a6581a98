//! Writing to stdout and stderr. stdout is the command's result: when its
//! reader goes away (`weft runs show ID | head`), the process exits quietly
//! with [`BROKEN_PIPE`], as Unix tools do, instead of panicking; any other
//! write error (a full disk) exits with [`HOST_ERROR`], saying so. stderr is
//! progress and notes, best effort: a closed stderr never stops a command.

use super::exit::{BROKEN_PIPE, HOST_ERROR};
use std::io::Write;

/// Writes `text` to stdout.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(BROKEN_PIPE));
        }
        note(&format!("weft: could not write the result to stdout: {e}\n"));
        std::process::exit(i32::from(HOST_ERROR));
    }
}

/// Writes `text` to stderr, if it can.
pub fn note(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Prints a document on stdout, indented, with the keys of every object in
/// sorted order (as `runs show` and `health` have always printed them).
pub fn print_sorted(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let value = serde_json::to_value(value)?;
    out(&format!("{}\n", serde_json::to_string_pretty(&value)?));
    Ok(())
}

/// `println!` to stdout through [`out`].
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::output::out(&format!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` to stderr through [`note`].
macro_rules! noteln {
    ($($arg:tt)*) => { $crate::cli::output::note(&format!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {noteln, outln};

/// Prints `value` on stdout as one line (`json`) or indented (`pretty`).
pub fn print_json(value: &impl serde::Serialize, format: &str) -> anyhow::Result<()> {
    let text = if format == "json" { serde_json::to_string(value)? } else { serde_json::to_string_pretty(value)? };
    outln!("{text}");
    Ok(())
}
