//! `switchboard pipe serve|connect|send|call`.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use switchboard::pipe::named::{call_named_pipe, PipeClient, PipeOptions, PipeType, ReadMode};
use switchboard::Error;

use crate::EXIT_TIMEOUT;

use crate::cli::parse_duration;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum PipeCmd {
    /// Serve a pipe: print every message (or line of bytes) each client sends;
    /// clients are served one after another.
    #[command(after_help = "Example:\n  switchboard pipe serve demo-pipe --message --echo &")]
    Serve {
        /// `NAME` or `\\.\pipe\NAME`.
        name: String,
        /// A message pipe (each write one message) instead of a byte pipe.
        #[arg(long)]
        message: bool,
        /// Write every message back to its sender.
        #[arg(long)]
        echo: bool,
        /// Exit after serving this many clients (default: serve forever).
        #[arg(long)]
        clients: Option<u32>,
        /// Serve in the background: return once the pipe exists, printing
        /// the server's pid (what clients send is not printed).
        #[arg(long)]
        detach: bool,
    },
    /// Connect to a pipe: standard input goes to the pipe, the pipe to standard output.
    #[command(after_help = "Example:\n  echo hello | switchboard pipe connect demo-pipe --timeout 5s")]
    Connect {
        /// The pipe: `NAME` or `\\.\pipe\NAME`.
        name: String,
        /// Wait this long for a free instance.
        #[arg(long, alias = "wait", value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
        timeout: Duration,
        /// After standard input ends, keep printing replies this long.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "300ms")]
        linger: Duration,
    },
    /// Send each MESSAGE as one write, then close.
    #[command(after_help = "Example:\n  switchboard pipe send demo-pipe one two")]
    Send {
        /// The pipe: `NAME` or `\\.\pipe\NAME`.
        name: String,
        /// The messages, each one write.
        #[arg(required = true)]
        messages: Vec<String>,
    },
    /// Send one message and print the one-message reply (classic CallNamedPipe).
    #[command(after_help = "Example:\n  switchboard pipe call demo-pipe \"are you there?\"")]
    Call {
        /// The pipe: `NAME` or `\\.\pipe\NAME`.
        name: String,
        /// The request message.
        message: String,
        /// Wait this long for a free instance (exit code 3 when none).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
        timeout: Duration,
    },
}

/// Largest message `serve` and `call` read in one go.
const MAX_MESSAGE: usize = 1 << 20;

pub fn run(cmd: PipeCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PipeCmd::Serve { name, message, echo, clients, .. } => serve(&name, message, echo, clients),
        PipeCmd::Connect { name, timeout, linger } => connect(&name, timeout, linger),
        PipeCmd::Send { name, messages } => {
            let client = PipeClient::open_wait(&name, Duration::from_secs(5))?;
            for m in &messages {
                client.write(m.as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        PipeCmd::Call { name, message, timeout } => {
            let mut reply = vec![0u8; MAX_MESSAGE];
            match call_named_pipe(&name, message.as_bytes(), &mut reply, timeout) {
                Ok(n) => {
                    out!("{}", String::from_utf8_lossy(&reply[..n]));
                    Ok(ExitCode::SUCCESS)
                }
                Err(Error::Timeout) => {
                    note!("pipe {name}: no free instance in time (ERROR_SEM_TIMEOUT, 121)");
                    Ok(ExitCode::from(EXIT_TIMEOUT))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn serve(name: &str, message: bool, echo: bool, clients: Option<u32>) -> anyhow::Result<ExitCode> {
    let opts = if message {
        PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message)
    } else {
        PipeOptions::new()
    };
    let server = opts.create(name)?;
    if super::detach::detached() {
        out!("serving pipe {}", server.name());
        super::detach::ready();
    } else {
        note!("serving pipe {} (pid {})", server.name(), std::process::id());
    }
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut served = 0;
    while clients.is_none_or(|n| served < n) {
        server.connect()?;
        let pid = server.client_process_id()?;
        loop {
            let n = match server.read(&mut buf) {
                Ok(n) => n,
                Err(Error::BrokenPipe) => break,
                Err(e) => return Err(e.into()),
            };
            let mut out = std::io::stdout().lock();
            writeln!(out, "{pid}: {}", String::from_utf8_lossy(&buf[..n]).trim_end_matches('\n'))?;
            out.flush()?;
            if echo {
                match server.write(&buf[..n]) {
                    Ok(()) | Err(Error::NoData) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        server.disconnect()?;
        served += 1;
    }
    Ok(ExitCode::SUCCESS)
}

fn connect(name: &str, wait: Duration, linger: Duration) -> anyhow::Result<ExitCode> {
    let client = PipeClient::open_wait(name, wait)?;
    std::thread::scope(|s| -> anyhow::Result<()> {
        let pipe = &client;
        s.spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut out = std::io::stdout();
            while let Ok(n) = pipe.read(&mut buf) {
                if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                    break;
                }
            }
        });
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stdin.read(&mut buf)?;
            if n == 0 {
                // Give replies to what was sent a moment to arrive, then
                // leave the reader to the process exit.
                std::thread::sleep(linger);
                std::process::exit(0);
            }
            client.write(&buf[..n])?;
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
