//! Processes as objects to wait on (classic `OpenProcess` +
//! `WaitForSingleObject` on the process handle).
//!
//! A [`Process`] holds a pidfd, so it names one process for good: a later
//! process that reuses the pid is never confused with it. It is signalled
//! once the process has ended, and stays signalled; it can join sync
//! objects, ports and pipe ends in one [`crate::sync::wait_any`] or
//! [`crate::sync::wait_all`].
//!
//! ```
//! use std::time::Duration;
//! use switchboard::process::Process;
//! use switchboard::sync::{Waitable, WaitStatus};
//!
//! let mut child = std::process::Command::new("true").spawn()?;
//! let process = Process::open(child.id())?;
//! assert_eq!(process.wait_timeout(Duration::from_secs(30)), WaitStatus::Acquired);
//! assert!(process.has_ended());
//! child.wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Decision where the classic API leaves room: the exit code is not
//! offered. Linux tells it only to the parent (`waitid`), which std's
//! `Child` already does; a pidfd gives everyone else the ending itself.

/// Waiting for the signals that ask a process to stop (for long-running
/// commands that clean up before they exit).
pub use switchboard_sys::signal::{block_termination, Termination};

use switchboard_sys::process::Pidfd;

use crate::error::{Error, Result};
use crate::sync::sealed::{Sealed, Waiter};
use crate::sync::{Ready, Waitable, PROCESS_IDENTITY};

/// A process, waitable until it ends.
#[derive(Debug)]
pub struct Process {
    pid: u32,
    ready: Ready,
    /// Kept open for the life of the handle: it pins the identity.
    _pidfd: Pidfd,
}

impl Process {
    /// Opens process `pid` (classic `OpenProcess(SYNCHRONIZE, …)`).
    ///
    /// # Errors
    /// `InvalidParameter` (87) when there is no such process, as classic.
    pub fn open(pid: u32) -> Result<Process> {
        let pidfd = Pidfd::open(pid).map_err(|e| match e {
            switchboard_sys::Errno::SRCH | switchboard_sys::Errno::INVAL => {
                Error::InvalidParameter("no process with that id")
            }
            other => Error::sys(other),
        })?;
        let ready = Ready::new(std::os::fd::AsFd::as_fd(&pidfd))?;
        Ok(Process { pid, ready, _pidfd: pidfd })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Whether the process has ended (classic `GetExitCodeProcess` other
    /// than `STILL_ACTIVE`).
    pub fn has_ended(&self) -> bool {
        self.ready.is_ready()
    }
}

impl Sealed for Process {
    fn waiter(&self) -> Waiter<'_> {
        Waiter::Shared(&self.ready)
    }
    fn identity(&self) -> u64 {
        PROCESS_IDENTITY | u64::from(self.pid)
    }
}

impl Waitable for Process {}
