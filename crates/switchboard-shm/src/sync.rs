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
