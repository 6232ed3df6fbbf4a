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

/// Like `println!`, but a closed stdout (the reader went away, as in
/// `switchboard ls | head -1`) ends the command quietly with exit 0
/// instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::stdout_failed(&e);
        }
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
    match command::run(cli.command, cli.format == cli::Format::Json) {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            ExitCode::from(1)
        }
    }
}

/// Stdout failed: a reader that went away is not an error (exit 0);
/// anything else is reported (exit 1).
pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    note!("switchboard: error: writing to stdout: {e}");
    std::process::exit(1)
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
