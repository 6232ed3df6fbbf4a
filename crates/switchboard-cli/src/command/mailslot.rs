//! `switchboard mailslot create|read|write|info`.

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;
use switchboard::mailslot::{BroadcastConfig, MailslotClient, MailslotOptions, NetStats, Sender, WAIT_FOREVER};
use switchboard::Error;

use crate::EXIT_TIMEOUT;

use crate::cli::parse_duration;
use clap::{Args, Subcommand};
use std::time::Duration;

/// Where mailslot broadcasts go and arrive.
#[derive(Debug, Args)]
pub struct BroadcastArgs {
    /// UDP port of broadcasts (default 13138, or $SWITCHBOARD_MAILSLOT_PORT).
    #[arg(long)]
    pub port: Option<u16>,
}

#[derive(Debug, Subcommand)]
pub enum MailslotCmd {
    /// Create a mailslot and print every message that arrives ("SENDER: TEXT"),
    /// until Ctrl-C or --count messages. This process is its server.
    #[command(after_help = "Example:\n  switchboard mailslot create inbox --max-size 400 &")]
    Create {
        /// `NAME` or `\\.\mailslot\NAME`.
        name: String,
        /// Largest message in bytes (0: any size).
        #[arg(long, default_value_t = 0)]
        max_size: usize,
        /// Also receive broadcasts from the network (opens a UDP port).
        #[arg(long)]
        broadcast: bool,
        #[command(flatten)]
        net: BroadcastArgs,
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// Serve in the background: return once the mailslot exists,
        /// printing the server's pid (what arrives is not printed).
        #[arg(long)]
        detach: bool,
    },
    /// Create a mailslot, read up to --count messages, print them, and exit
    /// (exit code 3 when none arrives within --timeout).
    #[command(after_help = "Example:\n  switchboard mailslot read inbox --count 2 --timeout 5s")]
    Read {
        /// The mailslot: `NAME` or `\\.\mailslot\NAME` (for write, `\\*\mailslot\NAME` broadcasts).
        name: String,
        /// Read timeout per message; 0 answers at once.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
        timeout: Duration,
        /// Messages to read.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Also receive broadcasts from the network (opens a UDP port).
        #[arg(long)]
        broadcast: bool,
        #[command(flatten)]
        net: BroadcastArgs,
    },
    /// Write each MESSAGE as one message; `\\*\mailslot\NAME` broadcasts.
    #[command(after_help = "Example:\n  switchboard mailslot write inbox hello \"second message\"")]
    Write {
        /// The mailslot: `NAME` or `\\.\mailslot\NAME` (for write, `\\*\mailslot\NAME` broadcasts).
        name: String,
        /// The messages, each one mailslot message.
        #[arg(required = true)]
        messages: Vec<String>,
        /// Wait this long for room in a full mailslot.
        #[arg(long, alias = "wait", value_name = "DURATION", value_parser = parse_duration, default_value = "0")]
        timeout: Duration,
        #[command(flatten)]
        net: BroadcastArgs,
    },
    /// Print a mailslot's max message size, queued count, next size and read timeout.
    #[command(after_help = "Example:\n  switchboard mailslot info inbox --json")]
    Info {
        /// The mailslot: `NAME` or `\\.\mailslot\NAME` (for write, `\\*\mailslot\NAME` broadcasts).
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

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
    let mut buf = vec![0u8; slot.largest_message()];
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
    let n = i.network;
    let timeout = if i.read_timeout == WAIT_FOREVER { None } else { Some(i.read_timeout.as_millis() as u64) };
    if as_json {
        let v = json!({
            "max_message_size": i.max_message_size,
            "next_size": i.next_size,
            "count": i.count,
            "read_timeout_ms": timeout,
            "network": {
                "delivered": n.delivered,
                "duplicates": n.duplicates,
                "malformed": n.malformed,
                "foreign": n.foreign,
                "overflowed": n.overflowed,
            },
        });
        out!("{v}");
    } else {
        let next = i.next_size.map_or("none".to_owned(), |n| format!("{n} B"));
        let t = timeout.map_or("forever".to_owned(), |ms| format!("{ms} ms"));
        out!("max message {} B, {} queued, next {next}, read timeout {t}", i.max_message_size, i.count);
        if n != NetStats::default() {
            out!(
                "network: {} delivered; dropped {} duplicate, {} malformed, {} for another name, {} on a full queue",
                n.delivered,
                n.duplicates,
                n.malformed,
                n.foreign,
                n.overflowed
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
