//! Raw primitives for benchmarks and advanced users: futex wait/wake on a
//! word of a [`View`](crate::mapping::View) and CPU pinning.
//!
//! These are the floors the mechanisms are measured against; most programs
//! want [`sync`](crate::sync) instead.

use std::sync::atomic::AtomicU32;
use std::time::Instant;

use crate::error::{Error, Result};

/// Sleeps while `*word == expected` (a shared futex), until woken or `deadline`.
/// Returns `false` on timeout.
pub fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    switchboard_sys::futex::wait(word, expected, deadline) == switchboard_sys::futex::Wake::Woken
}

/// Wakes up to `n` sleepers on `word`.
pub fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    switchboard_sys::futex::wake(word, n)
}

/// Pins the calling thread to `cpu`.
///
/// # Errors
/// `InvalidParameter` for a CPU that does not exist or is not allowed.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    switchboard_sys::process::pin_to_cpu(cpu).map_err(|_| Error::InvalidParameter("no such CPU"))
}

/// The machine's monotonic clock in nanoseconds: one clock for every
/// process of the machine (an `Instant` cannot cross processes), so a
/// receiver can age a message another process stamped.
pub fn monotonic_ns() -> u64 {
    switchboard_sys::process::monotonic_ns()
}

/// The machine's online CPUs — not the affinity mask, so a child of a
/// pinned process still sees every CPU.
pub fn cpu_count() -> usize {
    switchboard_sys::process::online_cpus()
}

/// Points standard output and error at `/dev/null` (for a process that
/// detached from the one that started it; see the CLI's `--detach`).
///
/// # Errors
/// The system error.
pub fn silence_stdio() -> Result<()> {
    Ok(switchboard_sys::process::silence_stdio()?)
}

/// Whether thread `tid` of process `pid` is blocked in a futex wait right
/// now (for tests and benchmarks that act on a blocked call).
pub fn blocked_in_futex(pid: u32, tid: u32) -> bool {
    switchboard_sys::process::blocked_in_futex(pid, tid)
}
