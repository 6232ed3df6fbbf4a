//! Futex wait and wake on 32-bit words that may live in shared memory.
//!
//! All operations are *shared* futexes (no `FUTEX_PRIVATE_FLAG`), so a word in
//! a `MAP_SHARED` region wakes waiters in every process that maps it.
//! Deadlines are [`Instant`]s; `None` waits forever.

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;
use rustix::time::{clock_gettime, ClockId, Timespec};

use crate::Result;

/// How a [`wait`] ended. Callers re-check their condition in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Woken by a `wake`, by a signal, or the word no longer held `expected`.
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// The largest number of words [`wait_any`] accepts (`futex_waitv` limit).
pub const WAITV_MAX: usize = 128;

fn remaining(deadline: Option<Instant>) -> Option<Option<Duration>> {
    match deadline {
        None => Some(None),
        Some(d) => d.checked_duration_since(Instant::now()).filter(|r| !r.is_zero()).map(Some),
    }
}

fn timespec(d: Duration) -> Timespec {
    Timespec { tv_sec: d.as_secs() as i64, tv_nsec: d.subsec_nanos() as i64 }
}

/// Sleeps while `*word == expected`, until woken or `deadline`.
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
    let Some(left) = remaining(deadline) else { return Wake::TimedOut };
    let ts = left.map(timespec);
    match futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()) {
        Err(Errno::TIMEDOUT) => Wake::TimedOut,
        // Ok, EAGAIN (value changed) and EINTR all mean "look again".
        _ => Wake::Woken,
    }
}

/// Wakes up to `n` waiters sleeping on `word`; returns how many were woken.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    futex::wake(word, futex::Flags::empty(), n).unwrap_or(0)
}

/// Wakes every waiter sleeping on `word`.
pub fn wake_all(word: &AtomicU32) -> usize {
    wake(word, i32::MAX as u32)
}

/// Sleeps until any `words[i]` no longer equals its expected value or a wake
/// arrives on it; returns `Some(i)` for the word that woke us (or any index
/// whose value had already changed), `None` at the deadline.
///
/// # Errors
/// `EINVAL` for more than [`WAITV_MAX`] words, `ENOSYS` before Linux 5.16.
pub fn wait_any(words: &[(&AtomicU32, u32)], deadline: Option<Instant>) -> Result<Option<usize>> {
    wait_any_watching(words, &[], deadline)
}

/// [`wait_any`] over `words` and, after them, `watches` (words this
/// process may only read); an index at or past `words.len()` is a watch.
///
/// # Errors
/// As [`wait_any`], counting both lists together.
pub fn wait_any_watching(
    words: &[(&AtomicU32, u32)],
    watches: &[(WatchWord<'_>, u32)],
    deadline: Option<Instant>,
) -> Result<Option<usize>> {
    let n = words.len() + watches.len();
    if n == 0 || n > WAITV_MAX {
        return Err(Errno::INVAL);
    }
    let Some(left) = remaining(deadline) else { return Ok(None) };
    let waits: Vec<futex::Wait> = words
        .iter()
        .copied()
        .chain(watches.iter().map(|(w, v)| (w.0, *v)))
        .map(|(word, expected)| {
            let mut w = futex::Wait::new();
            w.val = u64::from(expected);
            w.uaddr = futex::WaitPtr::new(word.as_ptr().cast());
            w.flags = futex::WaitFlags::SIZE_U32;
            w
        })
        .collect();
    // futex_waitv takes an absolute CLOCK_MONOTONIC deadline.
    let abs = left.map(|d| timespec(to_duration(clock_gettime(ClockId::Monotonic)) + d));
    match futex::waitv(&waits, futex::WaitvFlags::empty(), abs.as_ref(), ClockId::Monotonic) {
        Ok(i) => Ok(Some(i)),
        Err(Errno::TIMEDOUT) => Ok(None),
        // EAGAIN: some value already differs; EINTR: a signal. Report "look
        // again" as index 0; callers re-check every object anyway.
        Err(Errno::AGAIN) | Err(Errno::INTR) => Ok(Some(0)),
        Err(e) => Err(e),
    }
}

/// A futex word this process may only read (in a read-only mapping of
/// another process's memory, such as a peer's life token): it can be
/// loaded, slept on and woken, never stored to.
#[derive(Clone, Copy, Debug)]
pub struct WatchWord<'a>(&'a AtomicU32);

impl<'a> WatchWord<'a> {
    /// Wraps `word`, which must never be stored to through this handle.
    pub(crate) fn new(word: &'a AtomicU32) -> WatchWord<'a> {
        WatchWord(word)
    }

    /// The word's value.
    pub fn load(&self) -> u32 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sleeps while the word equals `expected` (see [`wait`]).
    pub fn wait(&self, expected: u32, deadline: Option<Instant>) -> Wake {
        wait(self.0, expected, deadline)
    }

    /// Wakes every sleeper on the word (waking needs no write access).
    pub fn wake_all(&self) -> usize {
        wake_all(self.0)
    }
}

/// Sleeps while `*word == expected` *and* `watch` holds `watch_expected`:
/// a wake on either word, or either one changing, ends the sleep. This is
/// how a waiter for data also hears of its peer's death.
pub fn wait_or_watch(
    word: &AtomicU32,
    expected: u32,
    watch: WatchWord<'_>,
    watch_expected: u32,
    deadline: Option<Instant>,
) -> Wake {
    match wait_any(&[(word, expected), (watch.0, watch_expected)], deadline) {
        Ok(None) => Wake::TimedOut,
        Ok(Some(_)) => Wake::Woken,
        // Before Linux 5.16 (no futex_waitv): the data word alone; the
        // caller's deadline or a later look at the watch word ends it.
        Err(_) => wait(word, expected, deadline),
    }
}

fn to_duration(ts: Timespec) -> Duration {
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wait_returns_at_once_when_value_differs() {
        let w = AtomicU32::new(1);
        assert_eq!(wait(&w, 0, None), Wake::Woken);
    }

    #[test]
    fn wait_times_out() {
        let w = AtomicU32::new(0);
        let d = Instant::now() + Duration::from_millis(20);
        assert_eq!(wait(&w, 0, Some(d)), Wake::TimedOut);
    }

    #[test]
    fn wait_any_wakes_on_second_word() {
        let words = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let w2 = words.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w2[1].store(1, std::sync::atomic::Ordering::SeqCst);
            wake_all(&w2[1]);
        });
        let r = wait_any(&[(&words[0], 0), (&words[1], 0)], Some(Instant::now() + Duration::from_secs(30)));
        t.join().unwrap();
        assert!(matches!(r, Ok(Some(_))));
    }
}
