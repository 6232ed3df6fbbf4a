//! `switchboard port create|post|get`.

use std::process::ExitCode;

use switchboard::port::{Overflow, Packet, Port};

use crate::cli::PortCmd;
use crate::EXIT_TIMEOUT;

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
