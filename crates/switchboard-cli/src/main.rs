//! The `switchboard` command: every mechanism from a shell, `ls`, and `tour`.
//!
//! Exit codes: 0 success; 1 error (the classic error name and number are
//! printed); 2 usage error; 3 a wait timed out (`WAIT_TIMEOUT`).

#![forbid(unsafe_code)]

/// Like `eprintln!`, but a closed or broken stderr is ignored instead of
/// panicking (a status line must never take the command down).
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod cli;
mod command;

use std::process::ExitCode;

use clap::Parser;

/// Exit code for a wait that timed out.
pub const EXIT_TIMEOUT: u8 = 3;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match command::run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            ExitCode::from(1)
        }
    }
}

fn report(err: &anyhow::Error) {
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            return;
        }
    }
    match err.downcast_ref::<switchboard::Error>() {
        Some(e) => note!("switchboard: error: {e} ({}, {})", e.win32_name(), e.win32()),
        None => note!("switchboard: error: {err:#}"),
    }
}
