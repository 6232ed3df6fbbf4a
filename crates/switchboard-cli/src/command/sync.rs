//! `switchboard mutex|semaphore|event|timer …`.

use std::process::ExitCode;

use anyhow::Context;
use switchboard::sync::{Event, Mutex, Semaphore, Timer, WaitStatus};

use super::hold;
use crate::EXIT_TIMEOUT;

use crate::cli::{parse_duration, Hold, Timeout};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum MutexCmd {
    /// Create (or open) a mutex and hold the handle (not the lock).
    #[command(after_help = "Example:\n  switchboard mutex create build-lock &")]
    Create {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        #[command(flatten)]
        hold: Hold,
    },
    /// Acquire the mutex, run a command, release.
    #[command(after_help = "Example:\n  switchboard mutex run build-lock --timeout 30s -- make")]
    Run {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        #[command(flatten)]
        timeout: Timeout,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Show the owner, if any.
    #[command(after_help = "Example:\n  switchboard mutex info build-lock")]
    Info {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SemaphoreCmd {
    /// Create (or open) a semaphore and hold it.
    #[command(after_help = "Example:\n  switchboard semaphore create slots --initial 2 --maximum 2 &")]
    Create {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// The initial count.
        #[arg(long, default_value_t = 0)]
        initial: u32,
        /// The largest count.
        #[arg(long, default_value_t = 1)]
        maximum: u32,
        #[command(flatten)]
        hold: Hold,
    },
    /// Add counts; prints the previous count.
    #[command(after_help = "Example:\n  switchboard semaphore release slots 1")]
    Release {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// Counts to add.
        #[arg(default_value_t = 1)]
        count: u32,
    },
    /// Take one count.
    #[command(after_help = "Example:\n  switchboard semaphore wait slots --timeout 5s")]
    Wait {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Show count and maximum.
    #[command(after_help = "Example:\n  switchboard semaphore info slots")]
    Info {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventCmd {
    /// Create (or open) an event and hold it.
    #[command(after_help = "Example:\n  switchboard event create ready --manual &")]
    Create {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// Manual-reset (default: auto-reset).
        #[arg(long)]
        manual: bool,
        /// Initially signalled.
        #[arg(long)]
        set: bool,
        #[command(flatten)]
        hold: Hold,
    },
    /// Signal the event.
    #[command(after_help = "Example:\n  switchboard event set ready")]
    Set {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
    },
    /// Un-signal the event.
    #[command(after_help = "Example:\n  switchboard event reset ready")]
    Reset {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
    },
    /// Release current waiters and leave it unsignalled.
    #[command(after_help = "Example:\n  switchboard event pulse ready")]
    Pulse {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
    },
    /// Wait until signalled.
    #[command(after_help = "Example:\n  switchboard event wait ready --timeout 5s")]
    Wait {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        #[command(flatten)]
        timeout: Timeout,
    },
}

#[derive(Debug, Subcommand)]
pub enum TimerCmd {
    /// Create (or open) a waitable timer (not running) and hold it.
    #[command(after_help = "Example:\n  switchboard timer create tick --manual &")]
    Create {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// Manual-reset (stays signalled once due; default: auto-reset, one waiter per firing).
        #[arg(long)]
        manual: bool,
        #[command(flatten)]
        hold: Hold,
    },
    /// Start it: due after DUE, then every --period.
    #[command(after_help = "Example:\n  switchboard timer set tick 2s --period 500ms")]
    Set {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// When it is first due, from now (500ms, 5s, 2m; a bare number is milliseconds).
        #[arg(value_parser = parse_duration)]
        due: std::time::Duration,
        /// Fire again every this long (default: once).
        #[arg(long, value_parser = parse_duration)]
        period: Option<std::time::Duration>,
    },
    /// Stop it (a signalled timer stays signalled).
    #[command(after_help = "Example:\n  switchboard timer cancel tick")]
    Cancel {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
    },
    /// Wait until it is due.
    #[command(after_help = "Example:\n  switchboard timer wait tick --timeout 5s")]
    Wait {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        #[command(flatten)]
        timeout: Timeout,
    },
}

pub fn timer(cmd: TimerCmd) -> anyhow::Result<ExitCode> {
    let open = |name: &str| Timer::builder().name(name).open();
    match cmd {
        TimerCmd::Create { name, manual, hold: h } => {
            let t = Timer::builder().name(name.as_str()).manual_reset(manual).create()?;
            let mode = if t.is_manual_reset() { "manual-reset" } else { "auto-reset" };
            hold(&format!("timer {name} ({mode})"), t.already_existed(), &h)
        }
        TimerCmd::Set { name, due, period } => {
            open(&name)?.set(due, period);
            let every = period.map_or(String::new(), |p| format!(", then every {p:?}"));
            out!("timer {name}: due in {due:?}{every}");
            Ok(ExitCode::SUCCESS)
        }
        TimerCmd::Cancel { name } => {
            let was = if open(&name)?.cancel() { "it was running" } else { "it was not running" };
            out!("timer {name}: cancelled ({was})");
            Ok(ExitCode::SUCCESS)
        }
        TimerCmd::Wait { name, timeout } => {
            let t = open(&name)?;
            Ok(waited(wait_for(&t, timeout.timeout), &format!("timer {name}")))
        }
    }
}

fn waited(status: WaitStatus, what: &str) -> ExitCode {
    match status {
        WaitStatus::Acquired => {
            out!("{what}: signalled");
            ExitCode::SUCCESS
        }
        WaitStatus::Abandoned => {
            out!("{what}: abandoned (its owner died holding it; check the data it protects)");
            ExitCode::SUCCESS
        }
        WaitStatus::TimedOut => {
            note!("{what}: timed out (WAIT_TIMEOUT, 258)");
            ExitCode::from(EXIT_TIMEOUT)
        }
    }
}

/// `switchboard wait`: any (or all) of `objects`, each `KIND:NAME`.
pub fn wait(objects: &[String], all: bool, timeout: Option<std::time::Duration>) -> anyhow::Result<ExitCode> {
    use switchboard::sync::{wait_all, wait_any, WaitMany, Waitable};
    let held: Vec<Box<dyn Waitable>> = objects.iter().map(|spec| open_waitable(spec)).collect::<anyhow::Result<_>>()?;
    let refs: Vec<&dyn Waitable> = held.iter().map(|o| o.as_ref()).collect();
    let got = if all { wait_all(&refs, timeout) } else { wait_any(&refs, timeout) }?;
    let (status, what) = match got {
        WaitMany::Signaled(_) if all => {
            out!("all {} signalled", refs.len());
            return Ok(ExitCode::SUCCESS);
        }
        WaitMany::Signaled(i) => (WaitStatus::Acquired, format!("{i} {}", objects[i])),
        WaitMany::Abandoned(i) => (WaitStatus::Abandoned, format!("{i} {}", objects[i])),
        WaitMany::TimedOut => (WaitStatus::TimedOut, "wait".to_owned()),
    };
    Ok(waited(status, &what))
}

fn open_waitable(spec: &str) -> anyhow::Result<Box<dyn switchboard::sync::Waitable>> {
    let (kind, name) = spec
        .split_once(':')
        .with_context(|| format!("{spec:?}: give KIND:NAME (event, mutex, semaphore, timer, port) or process:PID"))?;
    let opened: Box<dyn switchboard::sync::Waitable> = match kind {
        "event" => Box::new(Event::open(name)?),
        "mutex" => Box::new(Mutex::open(name)?),
        "semaphore" => Box::new(Semaphore::open(name)?),
        "timer" => Box::new(Timer::open(name)?),
        "port" => Box::new(switchboard::port::Port::open(name)?),
        "process" => {
            let pid = name.parse().with_context(|| format!("{name:?} is not a process id"))?;
            Box::new(switchboard::process::Process::open(pid)?)
        }
        other => anyhow::bail!("{other:?} cannot be waited on: use event, mutex, semaphore, timer, port or process"),
    };
    Ok(opened)
}

fn wait_for(w: &dyn switchboard::sync::Waitable, timeout: Option<std::time::Duration>) -> WaitStatus {
    match timeout {
        Some(t) => w.wait_timeout(t),
        None => w.wait(),
    }
}

pub fn mutex(cmd: MutexCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        MutexCmd::Create { name, hold: h } => {
            let m = Mutex::create(name.as_str(), false)?;
            hold(&format!("mutex {name}"), m.already_existed(), &h)
        }
        MutexCmd::Run { name, timeout, command } => {
            let m = Mutex::create(name.as_str(), false)?;
            match wait_for(&m, timeout.timeout) {
                WaitStatus::TimedOut => return Ok(waited(WaitStatus::TimedOut, &format!("mutex {name}"))),
                WaitStatus::Abandoned => note!("mutex {name}: abandoned by a dead owner; running anyway"),
                WaitStatus::Acquired => {}
            }
            let status = std::process::Command::new(&command[0])
                .args(&command[1..])
                .status()
                .with_context(|| format!("running {:?}", command[0]))?;
            m.release()?;
            Ok(ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8))
        }
        MutexCmd::Info { name } => {
            let m = Mutex::open(&name)?;
            match m.owner() {
                Some((tid, pid)) => out!("mutex {name}: owned by thread {tid} of process {pid}"),
                None => out!("mutex {name}: free"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn semaphore(cmd: SemaphoreCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SemaphoreCmd::Create { name, initial, maximum, hold: h } => {
            let s = Semaphore::create(name.as_str(), initial, maximum)?;
            hold(&format!("semaphore {name} ({}/{})", s.count(), s.maximum()), s.already_existed(), &h)
        }
        SemaphoreCmd::Release { name, count } => {
            let prev = Semaphore::open(&name)?.release(count)?;
            out!("semaphore {name}: previous count {prev}");
            Ok(ExitCode::SUCCESS)
        }
        SemaphoreCmd::Wait { name, timeout } => {
            let s = Semaphore::open(&name)?;
            Ok(waited(wait_for(&s, timeout.timeout), &format!("semaphore {name}")))
        }
        SemaphoreCmd::Info { name } => {
            let s = Semaphore::open(&name)?;
            out!("semaphore {name}: count {} of maximum {}", s.count(), s.maximum());
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn event(cmd: EventCmd) -> anyhow::Result<ExitCode> {
    let (name, action): (String, fn(&Event) -> bool) = match cmd {
        EventCmd::Create { name, manual, set, hold: h } => {
            let e = Event::create(name.as_str(), manual, set)?;
            let mode = if e.is_manual_reset() { "manual-reset" } else { "auto-reset" };
            return hold(&format!("event {name} ({mode})"), e.already_existed(), &h);
        }
        EventCmd::Wait { name, timeout } => {
            let e = Event::open(&name)?;
            return Ok(waited(wait_for(&e, timeout.timeout), &format!("event {name}")));
        }
        EventCmd::Set { name } => (name, Event::set),
        EventCmd::Reset { name } => (name, Event::reset),
        EventCmd::Pulse { name } => (name, Event::pulse),
    };
    let was = if action(&Event::open(&name)?) { "set" } else { "not set" };
    out!("event {name}: done (it was {was})");
    Ok(ExitCode::SUCCESS)
}
