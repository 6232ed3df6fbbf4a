//! `switchboard advise`: which mechanism for a job. It asks the first
//! seed's questions (across machines? other languages? a peer the user
//! picks or a well-known name? one peer or many? how big, how fast? a
//! window? must data outlive its sender?), as flags or interactively, and
//! recommends mechanisms with the reason for each and, unless told not to,
//! the round trip measured on this machine by a quick bench of each one.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::json;

/// Where the peers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Reach {
    /// Processes on this machine.
    Local,
    /// Processes on other machines too.
    Network,
}

/// Who the other side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PeerKind {
    /// A process this one starts (a child): the two need no name.
    Child,
    /// A server found by a well-known name.
    Named,
}

/// How many receive each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Fanout {
    /// One peer.
    One,
    /// Many writers into one reader.
    ManyToOne,
    /// One writer to every listener.
    Broadcast,
}

/// The answers, as flags (any left out is asked when stdin is a terminal,
/// else takes its default).
#[derive(Debug, Args)]
pub struct Answers {
    /// Where the peers are.
    #[arg(long, value_enum)]
    pub reach: Option<Reach>,
    /// A peer not written with switchboard (another language or system).
    #[arg(long)]
    pub foreign: bool,
    /// Who the other side is.
    #[arg(long, value_enum)]
    pub peer: Option<PeerKind>,
    /// How many receive each message.
    #[arg(long, value_enum)]
    pub fanout: Option<Fanout>,
    /// A typical message, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub size: Option<usize>,
    /// The program has a window (a desktop application).
    #[arg(long)]
    pub window: bool,
    /// Data must outlive the process that wrote it.
    #[arg(long)]
    pub persist: bool,
    /// Do not measure (the reasons alone, at once).
    #[arg(long)]
    pub no_measure: bool,
    /// Print JSON instead of a table (same as `--format json`).
    #[arg(long)]
    pub json: bool,
}

/// One recommendation.
struct Pick {
    mechanism: &'static str,
    api: &'static str,
    /// The bench path that measures it, if any.
    path: Option<&'static str>,
    why: String,
}

fn pick(mechanism: &'static str, api: &'static str, path: Option<&'static str>, why: impl Into<String>) -> Pick {
    Pick { mechanism, api, path, why: why.into() }
}

/// The questions once answered: flags first, then a terminal, then defaults.
struct Job {
    reach: Reach,
    foreign: bool,
    peer: PeerKind,
    fanout: Fanout,
    size: usize,
    window: bool,
    persist: bool,
}

fn ask<T: Copy>(question: &str, choices: &[(&str, T)], default: T) -> T {
    let names: Vec<&str> = choices.iter().map(|c| c.0).collect();
    eprint!("{question} [{}] ", names.join("/"));
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return default;
    }
    let line = line.trim();
    choices.iter().find(|c| c.0 == line).map_or(default, |c| c.1)
}

fn job(a: &Answers) -> Job {
    let asking = std::io::stdin().is_terminal() && a.reach.is_none() && a.peer.is_none() && a.fanout.is_none();
    let yes_no = [("no", false), ("yes", true)];
    if !asking {
        return Job {
            reach: a.reach.unwrap_or(Reach::Local),
            foreign: a.foreign,
            peer: a.peer.unwrap_or(PeerKind::Named),
            fanout: a.fanout.unwrap_or(Fanout::One),
            size: a.size.unwrap_or(64),
            window: a.window,
            persist: a.persist,
        };
    }
    Job {
        reach: ask(
            "Across the network, or this machine only?",
            &[("local", Reach::Local), ("network", Reach::Network)],
            Reach::Local,
        ),
        foreign: ask("Is a peer written in another language or on another system?", &yes_no, false),
        peer: ask(
            "Does your program start its peer, or find a server by name?",
            &[("child", PeerKind::Child), ("named", PeerKind::Named)],
            PeerKind::Named,
        ),
        fanout: ask(
            "One peer, many writers into one reader, or one writer to every listener?",
            &[("one", Fanout::One), ("many-to-one", Fanout::ManyToOne), ("broadcast", Fanout::Broadcast)],
            Fanout::One,
        ),
        size: a.size.unwrap_or_else(|| ask("A typical message?", &[("small", 64), ("4k", 4096), ("1m", 1 << 20)], 64)),
        window: ask("Does the program have a window?", &yes_no, false),
        persist: ask("Must data outlive the process that wrote it?", &yes_no, false),
    }
}

/// The recommendations for `job`, best first.
fn recommend(job: &Job) -> Vec<Pick> {
    let mut picks = Vec::new();
    if job.reach == Reach::Network || job.foreign {
        let why = if job.reach == Reach::Network {
            "the one mechanism here that crosses machines today (remote pipes and mailslots come with the gateway)"
        } else {
            "length-prefixed frames any language can speak; the other mechanisms need switchboard on both sides"
        };
        picks.push(pick("socket (TCP, framed)", "switchboard::link::StreamLink::connect_tcp", Some("stream_tcp"), why));
        if job.reach == Reach::Local {
            picks.push(pick(
                "socket (Unix, framed)",
                "switchboard::link::StreamLink::connect_unix",
                Some("stream_unix"),
                "the same frames without the TCP stack, same machine only",
            ));
        }
        if job.fanout == Fanout::Broadcast {
            picks.push(pick(
                "mailslot broadcast",
                r#"switchboard::mailslot::MailslotClient::open(r"\\*\mailslot\NAME")"#,
                None,
                "one UDP datagram per message to every host's mailslot of that name (a documented format)",
            ));
        }
        return picks;
    }
    if job.persist {
        picks.push(pick(
            "file mapping backed by a file",
            "switchboard::mapping::Mapping (file-backed)",
            Some("memcpy"),
            "the data lives in the file and outlives every process; named mappings and queues die with their last holder",
        ));
    }
    if job.window {
        picks.push(pick(
            "window messages, data copy, clipboard",
            "switchboard::message (planned)",
            None,
            "a desktop program's own loop; planned (messages + clipboard issue) — use a pipe until then",
        ));
    }
    match job.fanout {
        Fanout::ManyToOne => {
            picks.push(pick(
                "mailslot",
                "switchboard::mailslot::{Mailslot, MailslotClient}",
                Some("mailslot"),
                "many writers append whole messages to one reader's queue; no connection per writer",
            ));
            picks.push(pick(
                "completion port",
                "switchboard::port::Port",
                Some("port"),
                "when each message is a small fixed packet (bytes, key, id) taken by a pool of threads: a concurrency limit, the most recent waiter woken first",
            ));
        }
        Fanout::Broadcast => picks.push(pick(
            "manual-reset event + file mapping",
            "switchboard::sync::Event + switchboard::mapping::Mapping",
            Some("futex"),
            "every listener wakes on one set and reads the shared state; nothing is copied per listener",
        )),
        Fanout::One => {}
    }
    if job.size >= 1 << 20 {
        picks.push(pick(
            "file mapping (shared memory)",
            "switchboard::mapping::Mapping",
            Some("memcpy"),
            "large data is written once where the peer reads it; a link or pipe copies it through a ring",
        ));
        if job.fanout == Fanout::One {
            picks.push(pick(
                "zero-copy samples on a link",
                "switchboard::link::ShmLink::{loan, send_loan, recv_borrowed}",
                Some("shm_loan"),
                "each message handed over without a copy, at the same cost at any size; the kernel seals it, so the receiver reads bytes nobody can change (writing fresh pages has its own cost: see the link docs)",
            ));
        }
    }
    if job.fanout == Fanout::One {
        if job.peer == PeerKind::Child {
            picks.push(pick(
                "anonymous pipe",
                "switchboard::pipe::anon",
                Some("pipe"),
                "a child's stdin/stdout: no name, nothing to clean up, any program on the other end",
            ));
        }
        picks.push(pick(
            "shared-memory link",
            "switchboard::link::ShmLink",
            Some("shm_link_busy"),
            "the lowest latency between two processes: rings in shared memory, no system call on the fast path",
        ));
        picks.push(pick(
            "named pipe",
            "switchboard::pipe::named",
            Some("pipe_message_transact"),
            "a well-known name, message or byte mode, instances per client, peer identity",
        ));
    }
    picks
}

pub fn run(a: &Answers, json_out: bool) -> anyhow::Result<ExitCode> {
    let job = job(a);
    let picks = recommend(&job);
    let measured: Vec<Option<(std::time::Duration, usize)>> = picks
        .iter()
        .map(|p| match (a.no_measure, p.path) {
            (false, Some(path)) => super::bench::measure(path, job.size).ok(),
            _ => None,
        })
        .collect();
    let shown = |m: &Option<(std::time::Duration, usize)>| {
        m.map_or_else(|| "—".to_owned(), |(d, at)| format!("{:.2} µs at {at} B", d.as_secs_f64() * 1e6))
    };
    if json_out || a.json {
        let rows: Vec<serde_json::Value> = picks
            .iter()
            .zip(&measured)
            .map(|(p, m)| {
                json!({"mechanism": p.mechanism, "api": p.api, "bench_path": p.path,
                       "round_trip_p50_us": m.map(|(d, _)| d.as_secs_f64() * 1e6),
                       "bench_payload": m.map(|(_, at)| at), "why": p.why})
            })
            .collect();
        out!("{}", serde_json::to_string_pretty(&json!({"size": job.size, "recommendations": rows}))?);
    } else {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header(["mechanism", "use", "round trip here", "why"]);
        for (p, m) in picks.iter().zip(&measured) {
            t.add_row([p.mechanism, p.api, &shown(m), &p.why]);
        }
        out!("{t}");
        out!(
            "Round trips: p50 of a quick bench on this machine, at the payload each path runs nearest to {} B \
             (`switchboard bench` for all).",
            job.size
        );
    }
    Ok(ExitCode::SUCCESS)
}
