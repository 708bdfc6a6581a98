//! The `weft` command-line tool: parses the command line, sets up tracing
//! and the async runtime, and hands the command to [`cli`].

use clap::Parser;
use std::process::ExitCode;

mod cli;

use cli::output::noteln;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,weft::guest=off")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            noteln!("weft: could not start the async runtime: {e}");
            return ExitCode::from(cli::exit::HOST_ERROR);
        }
    };
    match runtime.block_on(args.command.execute()) {
        Ok(code) => code,
        Err(e) => {
            noteln!("weft: {e:#}");
            ExitCode::from(cli::error_exit_code(&e))
        }
    }
}
