//! `--detach`: run a holder or server in the background and return once it
//! is ready, printing its ready line (with its pid) — so a shell script can
//! go on using the object at once, with no sleep and no race.
//!
//! The parent re-runs the same command line without `--detach`, with
//! `SWITCHBOARD_DETACHED=1`; the child prints one ready line on standard
//! output, then points its standard output and error at `/dev/null` and
//! goes on holding or serving. The parent prints that line and exits 0. A
//! child that fails before it is ready passes its exit code and error on.

use std::io::BufRead;
use std::process::{Command, ExitCode, Stdio};

const ENV: &str = "SWITCHBOARD_DETACHED";

/// Starts this command again in the background and waits until it is ready.
pub fn spawn() -> anyhow::Result<ExitCode> {
    let args: Vec<_> = std::env::args_os().skip(1).filter(|a| a != "--detach").collect();
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .env(ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no pipe from the detached process"))?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    if line.is_empty() {
        // It ended before it was ready; its error went to our stderr.
        let code = child.wait()?.code().unwrap_or(1);
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }
    out!("{} (detached, pid {})", line.trim_end(), child.id());
    Ok(ExitCode::SUCCESS)
}

/// In the child: after printing the ready line, stop writing to the
/// parent, who has gone.
pub fn ready() {
    if std::env::var_os(ENV).is_some() {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = switchboard::raw::silence_stdio();
    }
}

/// Whether this process is the detached child.
pub fn detached() -> bool {
    std::env::var_os(ENV).is_some()
}
