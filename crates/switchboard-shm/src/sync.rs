//! The one place shared-memory code gets its atomics and its futex from.
//!
//! Under `cfg(loom)` the atomics are loom's and the futex is a yield (a
//! spurious wake-up, which every caller must already tolerate), so the
//! algorithms in this crate can be model-checked unchanged.

#[cfg(not(loom))]
pub use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Futex wait and wake on a word of type [`AtomicU32`].
pub mod futex {
    use super::AtomicU32;
    use std::time::Instant;

    pub use switchboard_sys::futex::{Wake, WatchWord};

    /// Sleeps while `*word == expected`, until woken or `deadline`.
    #[cfg(not(loom))]
    pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
        switchboard_sys::futex::wait(word, expected, deadline)
    }

    /// Sleeps while `*word == expected` and `watch` holds `watch_expected`.
    #[cfg(not(loom))]
    pub fn wait_or_watch(
        word: &AtomicU32,
        expected: u32,
        watch: WatchWord<'_>,
        watch_expected: u32,
        deadline: Option<Instant>,
    ) -> Wake {
        switchboard_sys::futex::wait_or_watch(word, expected, watch, watch_expected, deadline)
    }

    /// Under loom: a spurious wake-up (a watched word is a real futex word,
    /// outside the model).
    #[cfg(loom)]
    pub fn wait_or_watch(
        _word: &AtomicU32,
        _expected: u32,
        _watch: WatchWord<'_>,
        _watch_expected: u32,
        _deadline: Option<Instant>,
    ) -> Wake {
        loom::thread::yield_now();
        Wake::Woken
    }

    /// Wakes up to `n` waiters.
    #[cfg(not(loom))]
    pub fn wake(word: &AtomicU32, n: u32) {
        switchboard_sys::futex::wake(word, n);
    }

    /// Under loom: a spurious wake-up.
    #[cfg(loom)]
    pub fn wait(_word: &AtomicU32, _expected: u32, _deadline: Option<Instant>) -> Wake {
        loom::thread::yield_now();
        Wake::Woken
    }

    /// Under loom: nothing to do (waiters never really sleep).
    #[cfg(loom)]
    pub fn wake(_word: &AtomicU32, _n: u32) {}
}

/// Where each side of a shared object last ran, so that a waiter does not
/// spin for a peer that cannot run while it spins.
///
/// A side *stamps* a word with its CPU (`sched_getcpu`, a vDSO call) when
/// it wakes a sleeping peer (a system call follows anyway, so the stamp
/// costs nothing on the fast path); a waiter about to spin asks
/// [`cpu::shared_with`] whether that word names its own CPU. If so, the
/// peer it waits for can only run once this thread yields: spinning would
/// burn the rest of a scheduler quantum (measured: 47 µs per hop instead of
/// 4), so it sleeps at once.
///
/// The stamp is a hint that corrects itself: peers that move onto one CPU
/// spin in vain once, then sleep, and the wake that follows stamps the new
/// CPU; peers that move apart sleep once more, and the next wake stamps
/// them apart. A stale or hostile value costs a spin or a sleep, never a
/// lost wake-up.
pub mod cpu {
    use super::{AtomicU32, Ordering};

    /// This thread's CPU plus one (0 is "not known": never equal to a stamp).
    #[cfg(not(loom))]
    pub fn current() -> u32 {
        u32::try_from(switchboard_sys::process::current_cpu()).map_or(0, |c| c.wrapping_add(1))
    }

    /// Under loom: not known (the model never spins).
    #[cfg(loom)]
    pub fn current() -> u32 {
        0
    }

    /// Records the caller's CPU in `word` (written only when it changed, so
    /// a side that stays put keeps the cache line clean).
    pub fn stamp(word: &AtomicU32) {
        let me = current();
        if word.load(Ordering::Relaxed) != me {
            word.store(me, Ordering::Relaxed);
        }
    }

    /// Whether the side that stamped `word` last ran on this thread's CPU.
    pub fn shared_with(word: &AtomicU32) -> bool {
        let me = current();
        me != 0 && word.load(Ordering::Relaxed) == me
    }
}
