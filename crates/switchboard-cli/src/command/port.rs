//! `switchboard port create|post|get`.

use std::process::ExitCode;

use switchboard::port::{Overflow, Packet, Port};

use crate::EXIT_TIMEOUT;

use crate::cli::{Hold, Timeout};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum PortCmd {
    /// Create a port and hold it (this process is its server: when it exits the port closes).
    #[command(after_help = "Example:\n  switchboard port create demo-jobs --concurrency 2 &")]
    Create {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// Consumers released at once (0: number of CPUs).
        #[arg(long, default_value_t = 0)]
        concurrency: u32,
        /// Packets the queue holds.
        #[arg(long, default_value_t = 4096)]
        capacity: u32,
        /// Fail posts when full instead of blocking.
        #[arg(long)]
        fail_when_full: bool,
        #[command(flatten)]
        hold: Hold,
    },
    /// Post one packet.
    #[command(after_help = "Example:\n  switchboard port post demo-jobs 512 7")]
    Post {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// The packet's byte count (opaque to the port).
        bytes: u32,
        /// The completion key (opaque).
        key: u64,
        /// The overlapped value (opaque).
        #[arg(default_value_t = 0)]
        overlapped: u64,
    },
    /// Take packets (up to --max) and print them.
    #[command(after_help = "Example:\n  switchboard port get demo-jobs --max 16 --timeout 1s")]
    Get {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        #[command(flatten)]
        timeout: Timeout,
        /// Most packets to take at once.
        #[arg(long, default_value_t = 1)]
        max: usize,
    },
}

pub fn run(cmd: PortCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PortCmd::Create { name, concurrency, capacity, fail_when_full, hold } => {
            let overflow = if fail_when_full { Overflow::Fail } else { Overflow::Block };
            let port = Port::builder()
                .name(name.as_str())
                .concurrency(concurrency)
                .capacity(capacity)
                .overflow(overflow)
                .create()?;
            let what = format!(
                "port {name} (concurrency {}, handle {} in pid {})",
                port.concurrency(),
                port.handle(),
                std::process::id()
            );
            super::hold(&what, port.already_existed(), &hold)
        }
        PortCmd::Post { name, bytes, key, overlapped } => {
            Port::open(&name)?.post(bytes, key, overlapped)?;
            out!("posted bytes={bytes} key={key} overlapped={overlapped}");
            Ok(ExitCode::SUCCESS)
        }
        PortCmd::Get { name, timeout, max } => {
            let port = Port::open(&name)?;
            let mut entries = vec![Packet::default(); max.max(1)];
            match port.get_many(&mut entries, timeout.timeout) {
                Ok(n) => {
                    for p in &entries[..n] {
                        out!("bytes={} key={} overlapped={}", p.bytes, p.key, p.overlapped);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(switchboard::Error::WaitTimeout) => {
                    note!("port {name}: no packet (WAIT_TIMEOUT, 258)");
                    Ok(ExitCode::from(EXIT_TIMEOUT))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}
