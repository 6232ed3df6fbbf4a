//! `switchboard message listen|post|send|copydata`.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use switchboard::message::{find_receiver, Message, Receiver, Sender, WM_APP, WM_COPYDATA, WM_NULL, WM_QUIT, WM_USER};
use switchboard::namespace::Acl;
use switchboard::Error;

use crate::cli::{parse_duration, Timeout};
use crate::EXIT_TIMEOUT;

#[derive(Debug, Subcommand)]
pub enum MessageCmd {
    /// Create a receiver and print every message that reaches it (sent,
    /// posted, data copies), until a WM_QUIT (its code is the exit code) or
    /// --count messages.
    #[command(after_help = "Example:\n  switchboard message listen demo-rx --reply 42 &\n  \
                            switchboard message send demo-rx WM_USER+1 7\n\n\
                            Each line: how it came (sent, posted, copydata), the message, wparam, lparam, \
                            the sender's pid and uid; a data copy's size and its first 200 bytes as text follow \
                            (--format json: one object per line).")]
    Listen {
        /// The receiver's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// What a sent message returns (a data copy returns its byte count).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        reply: i64,
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// Let every user find it (its messages pass the filter only with --allow).
        #[arg(long)]
        everyone: bool,
        /// Messages other users may send (the classic message filter), e.g. WM_COPYDATA.
        #[arg(long, value_name = "MSG", value_parser = parse_msg)]
        allow: Vec<u32>,
    },
    /// Post a message and return at once (WM_QUIT with wparam CODE ends a listener).
    #[command(after_help = "Example:\n  switchboard message post demo-rx WM_USER 1 2\n  \
                            switchboard message post demo-rx WM_QUIT 0")]
    Post {
        #[command(flatten)]
        m: MessageArgs,
    },
    /// Send a message, wait for the receiver's result and print it.
    #[command(after_help = "Example:\n  switchboard message send demo-rx WM_USER+1 7 --timeout 2s --abort-if-hung")]
    Send {
        #[command(flatten)]
        m: MessageArgs,
        #[command(flatten)]
        timeout: Timeout,
        /// Fail at once (exit code 3) when the receiver is hung.
        #[arg(long)]
        abort_if_hung: bool,
    },
    /// Copy data to a receiver (classic WM_COPYDATA): the arguments joined
    /// by spaces, or standard input when there are none; print the result.
    #[command(after_help = "Example:\n  switchboard message copydata demo-rx hello there\n  \
                            head -c 8M /dev/urandom | switchboard message copydata demo-rx --tag 7")]
    Copydata {
        /// The receiver's name.
        name: String,
        /// The data (default: standard input).
        data: Vec<String>,
        /// The tag the receiver sees (classic dwData).
        #[arg(long, default_value_t = 0)]
        tag: u64,
        /// Give up after this long (exit code 3); default: wait forever.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<Duration>,
    },
}

/// A receiver and a message for it (`post`, `send`).
#[derive(Debug, Args)]
pub struct MessageArgs {
    /// The receiver's name.
    name: String,
    /// The message: a number (decimal or 0x…) or WM_NULL, WM_QUIT, WM_USER[+N], WM_APP[+N].
    #[arg(value_parser = parse_msg)]
    msg: u32,
    /// The first parameter.
    #[arg(default_value_t = 0)]
    wparam: u64,
    /// The second parameter.
    #[arg(default_value_t = 0, allow_negative_numbers = true)]
    lparam: i64,
}

/// A message number: decimal, `0x…`, or a classic name with an offset.
fn parse_msg(text: &str) -> Result<u32, String> {
    let (base, offset) = text.split_once('+').unwrap_or((text, "0"));
    let number = |t: &str| match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    };
    let base = match base.to_ascii_uppercase().as_str() {
        "WM_NULL" => Some(WM_NULL),
        "WM_QUIT" => Some(WM_QUIT),
        "WM_COPYDATA" => Some(WM_COPYDATA),
        "WM_USER" => Some(WM_USER),
        "WM_APP" => Some(WM_APP),
        _ => number(base),
    };
    base.zip(number(offset))
        .and_then(|(b, o)| b.checked_add(o))
        .ok_or_else(|| format!("{text:?} is not a message (a number, 0x…, or WM_USER+N, WM_APP+N, WM_QUIT…)"))
}

/// A data copy's text shown at most: the rest is counted, not printed.
const SHOWN: usize = 200;

fn describe(how: &str, msg: u32, wparam: u64, lparam: i64, from: &Sender, data: &[u8], json: bool) -> String {
    let text = String::from_utf8_lossy(&data[..data.len().min(SHOWN)]);
    if json {
        let mut v = json!({
            "how": how, "msg": msg, "wparam": wparam, "lparam": lparam,
            "pid": from.pid, "uid": from.uid,
        });
        if how == "copydata" {
            v["bytes"] = json!(data.len());
            v["text"] = json!(text);
            v["truncated"] = json!(data.len() > SHOWN);
        }
        return v.to_string();
    }
    let base = format!("{how} msg={msg:#06x} wparam={wparam} lparam={lparam} from pid={} uid={}", from.pid, from.uid);
    match how {
        "copydata" if data.len() <= SHOWN => format!("{base} bytes={}: {text}", data.len()),
        "copydata" => format!("{base} bytes={}: {text}…", data.len()),
        _ => base,
    }
}

fn timed_out(what: &str) -> ExitCode {
    note!("{what}: no answer in time (ERROR_TIMEOUT, 121)");
    ExitCode::from(EXIT_TIMEOUT)
}

pub fn run(cmd: MessageCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        MessageCmd::Listen { name, reply, count, everyone, allow } => {
            let seen = std::rc::Rc::new(std::cell::Cell::new(0u64));
            let counter = seen.clone();
            let builder = Receiver::builder(&name);
            let builder = if everyone { builder.acl(Acl::everyone()) } else { builder };
            let rx = builder.create(move |_, m: &Message<'_>| {
                let how = match (m.msg, m.sent) {
                    (WM_COPYDATA, _) => "copydata",
                    (_, true) => "sent",
                    (_, false) => "posted",
                };
                out!("{}", describe(how, m.msg, m.wparam, m.lparam, &m.from, m.data, json));
                counter.set(counter.get() + 1);
                if m.msg == WM_COPYDATA {
                    m.data.len() as i64
                } else {
                    reply
                }
            })?;
            for msg in allow {
                rx.allow(msg);
            }
            note!("receiver {name} (id {:#x}, pid {}): listening", rx.id().0, std::process::id());
            loop {
                if count.is_some_and(|c| seen.get() >= c) {
                    return Ok(ExitCode::SUCCESS);
                }
                let p = rx.get(switchboard::time::Deadline::NEVER)?;
                if p.msg == WM_QUIT {
                    note!("WM_QUIT {}", p.wparam as i32);
                    return Ok(ExitCode::from(p.wparam as u8));
                }
                rx.dispatch(&p);
            }
        }
        MessageCmd::Post { m: MessageArgs { name, msg, wparam, lparam } } => {
            find_receiver(&name)?.post(msg, wparam, lparam)?;
            out!("posted msg={msg:#06x} wparam={wparam} lparam={lparam}");
            Ok(ExitCode::SUCCESS)
        }
        MessageCmd::Send { m: MessageArgs { name, msg, wparam, lparam }, timeout, abort_if_hung } => {
            let to = find_receiver(&name)?;
            let result = match timeout.timeout {
                Some(t) => to.send_timeout(msg, wparam, lparam, t, abort_if_hung),
                None if abort_if_hung => to.send_timeout(msg, wparam, lparam, Duration::MAX, true),
                None => to.send(msg, wparam, lparam),
            };
            match result {
                Ok(r) => {
                    out!("{r}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(Error::Timeout) => Ok(timed_out(&name)),
                Err(e) => Err(e.into()),
            }
        }
        MessageCmd::Copydata { name, data, tag, timeout } => {
            let bytes = if data.is_empty() {
                let mut b = Vec::new();
                std::io::stdin().lock().read_to_end(&mut b)?;
                b
            } else {
                data.join(" ").into_bytes()
            };
            let to = find_receiver(&name)?;
            match to.send_copydata_timeout(None, tag, &bytes, timeout) {
                Ok(r) => {
                    out!("{r}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(Error::Timeout) => Ok(timed_out(&name)),
                Err(e) => Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_numbers_take_classic_names_offsets_and_hex() {
        assert_eq!(super::parse_msg("WM_USER+1"), Ok(0x401));
        assert_eq!(super::parse_msg("wm_app"), Ok(0x8000));
        assert_eq!(super::parse_msg("0x4a"), Ok(0x4a));
        assert_eq!(super::parse_msg("18"), Ok(18));
        assert_eq!(super::parse_msg("WM_QUIT"), Ok(0x12));
        assert!(super::parse_msg("WM_NOPE").is_err());
        assert!(super::parse_msg("0xFFFFFFFF+1").is_err());
    }
}
