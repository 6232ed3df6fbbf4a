//! What a waiter on shared memory knows of its peer, so that a blocked
//! call ends when the peer is gone.
//!
//! The fast way is a *watched word*: the lock word of the peer's life token
//! (`switchboard_sys::life`), which the kernel changes and wakes when the
//! peer dies. A waiter sleeps on it beside its own word (`futex_waitv`), so
//! a death ends the wait at once. The slow way, `alive`, is asked between
//! slices of `every`: alone where no token was exchanged, and as a backstop
//! against a word a hostile peer keeps looking alive.

use std::time::{Duration, Instant};

use crate::sync::futex::{self, Wake, WatchWord};
use crate::sync::AtomicU32;

/// How often a waiter with no watched word asks whether its peer is
/// still there.
pub const PEER_CHECK: Duration = Duration::from_millis(50);

/// How often a waiter that watches its peer's word also asks the slow way
/// (a socket hang-up): only a hostile peer's word needs it.
pub const PEER_BACKSTOP: Duration = Duration::from_secs(1);

/// What a waiter knows of its peer.
#[derive(Clone, Copy)]
pub struct Peer<'a> {
    /// A word the kernel changes and wakes when the peer goes (a life
    /// token's lock word), and the value it holds while the peer lives:
    /// the waiter sleeps on it beside its ring word, so the peer's death
    /// ends the wait at once.
    pub watch: Option<(WatchWord<'a>, u32)>,
    /// Asked every `every` while waiting. Without a watched word this is
    /// how a death is noticed (a peer that dies wakes nobody); with one, a
    /// backstop against a word a hostile peer keeps looking alive.
    pub alive: &'a dyn Fn() -> bool,
    /// How often `alive` is asked.
    pub every: Duration,
}

impl std::fmt::Debug for Peer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("watch", &self.watch.map(|(w, v)| (w.load(), v)))
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl Peer<'_> {
    /// A peer that is always there (the caller itself, or no wait).
    pub const PRESENT: Peer<'static> = Peer { watch: None, alive: &|| true, every: PEER_BACKSTOP };

    /// Whether the watched word already says the peer is gone.
    pub fn gone_now(&self) -> bool {
        self.watch.is_some_and(|(w, alive)| w.load() != alive)
    }

    /// Sleeps while `*word == expected`, until woken, `until`, or (with a
    /// watched word) the peer's going.
    pub fn sleep(&self, word: &AtomicU32, expected: u32, until: Option<Instant>) -> Wake {
        match self.watch {
            Some((w, alive)) => futex::wait_or_watch(word, expected, w, alive, until),
            None => futex::wait(word, expected, until),
        }
    }

    /// After finding the peer gone: the kernel (or the owner's release)
    /// woke one sleeper on the watched word; wake every other one.
    pub fn wake_others(&self) {
        if let Some((w, _)) = self.watch {
            w.wake_all();
        }
    }
}

/// Microseconds of [`stall_grace`]; a plain std atomic (not loom's): a
/// process-wide setting, not shared state under test.
static STALL_GRACE_US: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000_000);

/// How long a caller that must not wait for long gives the holder of a
/// segment's lock (whose every critical section is a few stores) before
/// calling it stalled — a stopped process, or a lock word a hostile peer
/// wrote: a mailslot write's wait for the write lock, a port post's wait
/// for the port's lock, a port waiter's wait for a claimed grant. One
/// second unless [`set_stall_grace`] changed it.
pub fn stall_grace() -> Duration {
    Duration::from_micros(STALL_GRACE_US.load(std::sync::atomic::Ordering::Relaxed))
}

/// Sets [`stall_grace`] for this process. For the fuzz targets, whose
/// inputs wedge locks on purpose and would otherwise wait a second per
/// call; the behaviour is otherwise the same.
#[doc(hidden)]
pub fn set_stall_grace(grace: Duration) {
    let us = u64::try_from(grace.as_micros()).unwrap_or(u64::MAX);
    STALL_GRACE_US.store(us, std::sync::atomic::Ordering::Relaxed);
}
