//! Registering a descriptor with tokio's reactor (feature `tokio`).
//!
//! tokio's `AsyncFd` registration is `unsafe` (the descriptor must stay
//! open and the same for the registration's lifetime); this module is the
//! one place that promises it, for an [`OwnedFd`], which owns exactly one
//! open descriptor for as long as it lives.
//!
//! # Safety
//! [`register_readable`] hands tokio an `OwnedFd`: its `as_raw_fd` always returns the
//! descriptor it owns, which stays open until the `AsyncFd` (which owns the
//! `OwnedFd`) is dropped or unwrapped.
#![allow(unsafe_code)]

use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Registers `fd` for readability with the current tokio runtime.
///
/// # Errors
/// The reactor's error (no runtime, out of resources).
///
/// # Panics
/// Outside a tokio runtime (tokio's own rule).
pub fn register_readable(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd owns one open descriptor and returns it from every
    // as_raw_fd call for as long as it lives; the AsyncFd owns the OwnedFd.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into_parts().1)
}
