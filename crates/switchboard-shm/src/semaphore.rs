//! A counting semaphore in shared memory.
//!
//! `count` is the futex word: waiters sleep while it is zero. `max` is
//! written once by the creator. A hostile peer can set any values; the worst
//! it causes is a refused release or a wait that never succeeds, never UB.

use crate::sync::{AtomicU32, Ordering};
use crate::wait::{wake_if_waiting, Outcome, Waitable};

/// The shared state of a named semaphore.
#[repr(C)]
#[derive(Debug, Default)]
pub struct SemaphoreState {
    count: AtomicU32,
    max: AtomicU32,
    waiters: AtomicU32,
}

#[cfg(not(loom))]
#[allow(unsafe_code)]
// SAFETY: repr(C), atomics only, any bit pattern valid.
unsafe impl crate::segment::Shared for SemaphoreState {}

/// A release would exceed the semaphore's maximum count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyPosts;

impl SemaphoreState {
    /// Sets the initial and maximum counts (creator only, before sharing).
    pub fn init(&self, initial: u32, max: u32) {
        self.max.store(max, Ordering::Relaxed);
        self.count.store(initial, Ordering::Relaxed);
    }

    /// The current count.
    pub fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// The maximum count.
    pub fn max(&self) -> u32 {
        self.max.load(Ordering::Relaxed)
    }

    /// Adds `n` to the count and returns the previous count.
    ///
    /// # Errors
    /// [`TooManyPosts`] when the count would exceed the maximum; nothing changes.
    pub fn release(&self, n: u32) -> Result<u32, TooManyPosts> {
        let max = self.max();
        // SYNC: Release pairs with the Acquire CAS in try_take.
        let prev = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |c| c.checked_add(n).filter(|v| *v <= max))
            .map_err(|_| TooManyPosts)?;
        wake_if_waiting(&self.count, &self.waiters, n);
        Ok(prev)
    }
}

impl Waitable for SemaphoreState {
    fn try_take(&self, _: u32) -> Option<Outcome> {
        // SYNC: Acquire pairs with the release in `release`.
        self.count
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |c| c.checked_sub(1))
            .ok()
            .map(|_| Outcome::Acquired)
    }
    fn available(&self, _: u32) -> bool {
        self.count() > 0
    }
    fn untake(&self) {
        let _ = self.release(1);
    }
    fn sleep_word(&self) -> (&AtomicU32, u32) {
        (&self.count, 0)
    }
    fn waiters(&self) -> &AtomicU32 {
        &self.waiters
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn release_past_max_changes_nothing() {
        let s = SemaphoreState::default();
        s.init(1, 2);
        assert_eq!(s.release(2), Err(TooManyPosts));
        assert_eq!(s.count(), 1);
        assert_eq!(s.release(1), Ok(1));
        assert_eq!(s.try_take(0), Some(Outcome::Acquired));
    }
}
