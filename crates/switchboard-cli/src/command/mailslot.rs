//! `switchboard mailslot create|read|write|info`.

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;
use switchboard::mailslot::{BroadcastConfig, MailslotClient, MailslotOptions, Sender, WAIT_FOREVER};
use switchboard::Error;

use crate::cli::{BroadcastArgs, MailslotCmd};
use crate::EXIT_TIMEOUT;

pub fn run(cmd: MailslotCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        MailslotCmd::Create { name, max_size, broadcast, net, count, .. } => {
            let opts = MailslotOptions::new().max_message_size(max_size).read_timeout(WAIT_FOREVER);
            serve(&name, opts, broadcast.then(|| config(&net)), count)
        }
        MailslotCmd::Read { name, timeout, count, broadcast, net } => {
            let opts = MailslotOptions::new().read_timeout(timeout);
            serve(&name, opts, broadcast.then(|| config(&net)), Some(count))
        }
        MailslotCmd::Write { name, messages, timeout, net } => {
            let mut client = MailslotClient::open_with(&name, &config(&net))?;
            client.set_write_timeout(timeout);
            for m in &messages {
                client.write(m.as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        MailslotCmd::Info { name, json: j } => info(&name, j || json),
    }
}

fn config(net: &BroadcastArgs) -> BroadcastConfig {
    net.port.map_or_else(BroadcastConfig::default, BroadcastConfig::on_port)
}

/// Creates the mailslot and prints up to `count` messages as they arrive.
fn serve(
    name: &str,
    opts: MailslotOptions,
    net: Option<BroadcastConfig>,
    count: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let opts = match net {
        Some(c) => opts.receive_broadcasts(c),
        None => opts,
    };
    let slot = opts.create(name)?;
    if super::detach::detached() {
        out!("mailslot {} ready", slot.name());
        super::detach::ready();
    } else {
        note!("mailslot {} ready (pid {})", slot.name(), std::process::id());
    }
    let mut buf = vec![0u8; slot.info()?.max_message_size];
    let mut read = 0;
    while count.is_none_or(|n| read < n) {
        let r = match slot.read_from(&mut buf) {
            Ok(r) => r,
            Err(Error::Timeout) => {
                note!("mailslot {}: no message in time (ERROR_SEM_TIMEOUT, 121)", slot.name());
                return Ok(ExitCode::from(EXIT_TIMEOUT));
            }
            Err(e) => return Err(e.into()),
        };
        let from = match r.sender {
            Sender::Local => "local".to_owned(),
            Sender::Network { host, .. } => host.to_string(),
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{from}: {}", String::from_utf8_lossy(&buf[..r.len]))?;
        out.flush()?;
        read += 1;
    }
    Ok(ExitCode::SUCCESS)
}

fn info(name: &str, as_json: bool) -> anyhow::Result<ExitCode> {
    let i = MailslotClient::open(name)?.info()?;
    let timeout = if i.read_timeout == WAIT_FOREVER { None } else { Some(i.read_timeout.as_millis() as u64) };
    if as_json {
        let v = json!({
            "max_message_size": i.max_message_size,
            "next_size": i.next_size,
            "count": i.count,
            "read_timeout_ms": timeout,
        });
        out!("{v}");
    } else {
        let next = i.next_size.map_or("none".to_owned(), |n| format!("{n} B"));
        let t = timeout.map_or("forever".to_owned(), |ms| format!("{ms} ms"));
        out!("max message {} B, {} queued, next {next}, read timeout {t}", i.max_message_size, i.count);
    }
    Ok(ExitCode::SUCCESS)
}
