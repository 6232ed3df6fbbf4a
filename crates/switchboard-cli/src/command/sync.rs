//! `switchboard mutex|semaphore|event …`.

use std::process::ExitCode;

use anyhow::Context;
use switchboard::sync::{Event, Mutex, Semaphore, WaitStatus};

use super::hold;
use crate::cli::{EventCmd, MutexCmd, SemaphoreCmd};
use crate::EXIT_TIMEOUT;

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
    let (name, action): (String, fn(&Event)) = match cmd {
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
    action(&Event::open(&name)?);
    out!("event {name}: done");
    Ok(ExitCode::SUCCESS)
}
