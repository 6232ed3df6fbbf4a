//! Waiting for the signals that ask a process to stop (`SIGINT`,
//! `SIGTERM`, `SIGHUP`), so a long-running command can clean up.
//!
//! # Safety
//!
//! The `sigset_t` is initialised by `sigemptyset` before any other use,
//! and only passed by reference to the libc calls that read or write it.

#![allow(unsafe_code)]

use crate::{Errno, Result};

/// The stop signals, blocked in the thread that made it (and every thread
/// it starts afterwards): they wait for [`Termination::wait`] instead of
/// ending the process.
#[derive(Clone, Copy)]
pub struct Termination {
    set: libc::sigset_t,
}

impl std::fmt::Debug for Termination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Termination")
    }
}

/// Blocks `SIGINT`, `SIGTERM` and `SIGHUP` in the calling thread. Call it
/// before starting threads: they inherit the mask, so none of them takes
/// the signal's default action.
///
/// # Errors
/// The kernel's `pthread_sigmask` error.
pub fn block_termination() -> Result<Termination> {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    // SAFETY: initialised just above.
    let mut set = unsafe { set.assume_init() };
    for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: an initialised set and a valid signal number.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    // SAFETY: a valid set; the old mask is not asked for (null).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(Errno::from_raw_os_error(rc));
    }
    Ok(Termination { set })
}

impl Termination {
    /// Waits until one of the stop signals comes: its number.
    pub fn wait(&self) -> i32 {
        let mut sig = 0;
        loop {
            // SAFETY: a valid, initialised set and a place for the number.
            if unsafe { libc::sigwait(&self.set, &mut sig) } == 0 {
                return sig;
            }
        }
    }
}
