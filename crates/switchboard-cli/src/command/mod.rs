//! One module per verb, holding its clap arguments and its run; `run` dispatches.

pub(crate) mod advise;
pub(crate) mod bench;
pub(crate) mod clip;
pub(crate) mod dde;
mod detach;
#[cfg(feature = "gateway")]
pub(crate) mod gateway;
#[cfg(feature = "inet")]
pub(crate) mod http;
mod ls;
pub(crate) mod mailslot;
pub(crate) mod mapping;
pub(crate) mod message;
pub(crate) mod pipe;
pub(crate) mod port;
pub(crate) mod rpc;
mod scenario;
pub(crate) mod serial;
mod soak;
pub(crate) mod socket;
pub(crate) mod sync;
mod tour;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{Command, Hold};

/// Runs `command`; `json`: the global `--format json`.
pub fn run(command: Command, json: bool) -> anyhow::Result<ExitCode> {
    if command.detach() && !detach::detached() {
        return detach::spawn();
    }
    match command {
        Command::Ls { json: j, host } => ls::run(j || json, host.as_deref()),
        Command::Mapping(c) => mapping::run(c),
        Command::Mutex(c) => sync::mutex(c),
        Command::Semaphore(c) => sync::semaphore(c),
        Command::Event(c) => sync::event(c),
        Command::Timer(c) => sync::timer(c),
        Command::Wait { objects, all, timeout } => sync::wait(&objects, all, timeout.timeout),
        Command::Port(c) => port::run(c),
        Command::Pipe(c) => pipe::run(c),
        Command::Mailslot(c) => mailslot::run(c, json),
        Command::Message(c) => message::run(c, json),
        Command::Clip(c) => clip::run(c, json),
        Command::Dde(c) => dde::run(c, json),
        Command::Rpc(c) => rpc::run(c, json),
        Command::Serial(c) => serial::run(c, json),
        #[cfg(feature = "inet")]
        Command::Http(c) => http::run(c, json),
        #[cfg(feature = "gateway")]
        Command::Gateway(a) => gateway::run(a, json),
        Command::Socket(c) => socket::run(c),
        Command::Advise(a) => advise::run(&a, json),
        Command::Tour { rounds } => tour::run(rounds),
        Command::Bench { quick, json: j, plot, only, same_core, fan_in } => {
            bench::run(quick, j || json, plot, &only, same_core, &fan_in)
        }
        Command::BenchPeer { args } => bench::peer(&args),
        Command::TourPeer { role, args } => tour::peer(&role, &args),
        Command::Soak { minutes, workers, seed } => soak::run(minutes, workers, seed),
        Command::SoakPeer { args } => soak::peer(&args),
    }
}

/// Prints what was created and keeps the process (and so the object) alive.
pub(crate) fn hold(what: &str, existed: bool, hold: &Hold) -> anyhow::Result<ExitCode> {
    let verb = if existed { "opened existing" } else { "created" };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{verb} {what}")?;
    out.flush()?;
    drop(out);
    detach::ready();
    match hold.duration() {
        Some(d) => std::thread::sleep(d),
        None => {
            note!("holding it; the object lives until this process exits (Ctrl-C)");
            loop {
                std::thread::park();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Holders of a named object besides this process, as `ls` counts them.
pub(crate) fn ls_holders(name: &str) -> usize {
    let bare = name.rsplit_once('\\').map_or(name, |(_, n)| n);
    switchboard::namespace::list().into_iter().find(|e| e.name == bare).map_or(0, |e| e.holders)
}

/// The median and 99th percentile of a set of round-trip samples.
///
/// # Panics
/// If `samples` is empty (every caller measures at least one round).
pub(crate) fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    let p50 = samples[samples.len() / 2];
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    (p50, p99)
}
