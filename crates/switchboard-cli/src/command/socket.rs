//! `switchboard socket listen|send`: frames (a little-endian `u32` length,
//! then the bytes; see `switchboard::socket::Framed`) over TCP or Unix
//! stream sockets.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use switchboard::socket::{peer_credentials, FrameStream, Framed, SocketOptions, UnixAddr};
use switchboard::Error;

use crate::EXIT_TIMEOUT;

use crate::cli::parse_duration;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SocketCmd {
    /// Listen on ADDR and print every frame each client sends ("PEER: TEXT");
    /// clients are served one after another. Unix peers show as "pid N uid U".
    #[command(after_help = "Example:\n  switchboard socket listen unix:@frames --count 2 &")]
    Listen {
        /// `tcp:HOST:PORT` (port 0 picks one), `unix:PATH` or `unix:@NAME` (abstract).
        addr: String,
        /// Exit after this many frames.
        #[arg(long)]
        count: Option<u64>,
        /// Wait at most this long for each frame (exit code 3 when none came).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// Let other sockets that ask share the port (SO_REUSEPORT).
        #[arg(long)]
        reuse_port: bool,
    },
    /// Connect to ADDR and send each MESSAGE as one frame.
    #[command(after_help = "Example:\n  switchboard socket send unix:@frames hello world")]
    Send {
        /// `tcp:HOST:PORT`, `unix:PATH` or `unix:@NAME` (abstract).
        addr: String,
        /// The messages, each one frame.
        #[arg(required = true)]
        messages: Vec<String>,
    },
}

/// Largest frame printed or sent.
const MAX_FRAME: usize = 1 << 20;

enum Addr {
    Tcp(String),
    Unix(UnixAddr),
}

fn parse(addr: &str) -> anyhow::Result<Addr> {
    if let Some(rest) = addr.strip_prefix("tcp:") {
        return Ok(Addr::Tcp(rest.to_owned()));
    }
    let rest = addr.strip_prefix("unix:").context("expected tcp:HOST:PORT, unix:PATH or unix:@NAME")?;
    Ok(Addr::Unix(match rest.strip_prefix('@') {
        Some(name) => UnixAddr::Abstract(name.as_bytes().to_vec()),
        None => UnixAddr::Path(rest.into()),
    }))
}

pub fn run(cmd: SocketCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SocketCmd::Listen { addr, count, timeout, reuse_port } => listen(&parse(&addr)?, count, timeout, reuse_port),
        SocketCmd::Send { addr, messages } => {
            let opts = SocketOptions::new();
            match parse(&addr)? {
                Addr::Tcp(a) => send(Framed::new(opts.tcp_connect(a.as_str())?, MAX_FRAME), &messages),
                Addr::Unix(a) => send(Framed::new(opts.unix_connect(&a)?, MAX_FRAME), &messages),
            }
        }
    }
}

fn send<S: FrameStream>(mut framed: Framed<S>, messages: &[String]) -> anyhow::Result<ExitCode> {
    for m in messages {
        framed.send(m.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `listen` has left to do.
struct Budget {
    left: Option<u64>,
    timeout: Option<Duration>,
}

fn listen(addr: &Addr, count: Option<u64>, timeout: Option<Duration>, reuse: bool) -> anyhow::Result<ExitCode> {
    let opts = SocketOptions::new().reuse_port(reuse);
    let mut budget = Budget { left: count, timeout };
    match addr {
        Addr::Tcp(a) => {
            let l = opts.tcp_listen(a.as_str())?;
            note!("listening on tcp:{}", l.local_addr()?);
            while budget.left != Some(0) {
                let (s, peer) = opts.accept(&l)?;
                if let Some(code) = print_frames(Framed::new(s, MAX_FRAME), &peer.to_string(), &mut budget)? {
                    return Ok(code);
                }
            }
        }
        Addr::Unix(a) => {
            let l = opts.unix_listen(a)?;
            note!("listening on unix socket (pid {})", std::process::id());
            while budget.left != Some(0) {
                let (s, _) = l.accept()?;
                let c = peer_credentials(&s)?;
                let peer = format!("pid {} uid {}", c.pid, c.uid);
                if let Some(code) = print_frames(Framed::new(s, MAX_FRAME), &peer, &mut budget)? {
                    return Ok(code);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one client's frames until it leaves (`None`) or the budget says stop.
fn print_frames<S: FrameStream>(mut f: Framed<S>, peer: &str, b: &mut Budget) -> anyhow::Result<Option<ExitCode>> {
    let mut buf = Vec::new();
    while b.left != Some(0) {
        match f.recv_deadline(&mut buf, b.timeout) {
            Ok(()) => {}
            Err(Error::BrokenPipe) => return Ok(None),
            Err(Error::Timeout) => {
                note!("no frame in time (ERROR_SEM_TIMEOUT, 121)");
                return Ok(Some(ExitCode::from(EXIT_TIMEOUT)));
            }
            Err(e) => return Err(e.into()),
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{peer}: {}", String::from_utf8_lossy(&buf))?;
        out.flush()?;
        b.left = b.left.map(|n| n - 1);
    }
    Ok(Some(ExitCode::SUCCESS))
}
