//! A manual- or auto-reset event in shared memory.
//!
//! The futex word encodes `generation << 1 | signalled`. `set` turns the bit
//! on; `reset` turns it off; a manual-reset `pulse` bumps the generation with
//! the bit off, so every waiter that armed before the pulse sees a new
//! generation and is released, while later waiters are not. An auto-reset
//! `pulse` sets the bit only if someone is waiting, and the one waiter that
//! takes it clears it.
//!
//! `PulseEvent` is documented as unreliable in its classic form; here an
//! auto-reset pulse can, in a narrow race with a waiter timing out, leave the
//! event set for the next waiter.

use crate::sync::{AtomicU32, Ordering};
use crate::wait::{wake_if_waiting, Outcome, Waitable};

const SIGNALLED: u32 = 1;

/// The shared state of a named event.
#[repr(C)]
#[derive(Debug, Default)]
pub struct EventState {
    word: AtomicU32,
    manual: AtomicU32,
    waiters: AtomicU32,
}

#[cfg(not(loom))]
#[allow(unsafe_code)]
// SAFETY: repr(C), atomics only, any bit pattern valid.
unsafe impl crate::segment::Shared for EventState {}

impl EventState {
    /// Sets the reset mode and initial state (creator only, before sharing).
    pub fn init(&self, manual_reset: bool, initially_set: bool) {
        self.manual.store(u32::from(manual_reset), Ordering::Relaxed);
        self.word.store(u32::from(initially_set), Ordering::Relaxed);
    }

    /// Whether the event is manual-reset.
    pub fn is_manual(&self) -> bool {
        self.manual.load(Ordering::Relaxed) != 0
    }

    /// Whether the event is currently signalled.
    pub fn is_set(&self) -> bool {
        self.word.load(Ordering::SeqCst) & SIGNALLED != 0
    }

    fn wake(&self) {
        let n = if self.is_manual() { i32::MAX as u32 } else { 1 };
        wake_if_waiting(&self.word, &self.waiters, n);
    }

    /// Signals the event: releases all waiters (manual) or one (auto).
    /// Returns whether it was signalled before.
    pub fn set(&self) -> bool {
        let before = self.word.fetch_or(SIGNALLED, Ordering::SeqCst);
        self.wake();
        before & SIGNALLED != 0
    }

    /// Un-signals the event. Returns whether it was signalled before.
    pub fn reset(&self) -> bool {
        self.word.fetch_and(!SIGNALLED, Ordering::SeqCst) & SIGNALLED != 0
    }

    /// Releases the waiters present now (manual: all; auto: one) and leaves
    /// the event unsignalled. Returns whether it was signalled before.
    pub fn pulse(&self) -> bool {
        if self.is_manual() {
            let before =
                self.word.fetch_update(Ordering::SeqCst, Ordering::Relaxed, |w| Some(((w >> 1).wrapping_add(1)) << 1));
            self.wake();
            before.unwrap_or_else(|w| w) & SIGNALLED != 0
        } else if self.waiters.load(Ordering::SeqCst) > 0 {
            self.set()
        } else {
            // Nobody to release: the event ends reset, even one that was
            // set (as `PulseEvent` leaves it).
            self.reset()
        }
    }
}

impl Waitable for EventState {
    fn arm(&self) -> u32 {
        self.word.load(Ordering::SeqCst)
    }
    fn try_take(&self, armed: u32) -> Option<Outcome> {
        if self.is_manual() {
            return self.available(armed).then_some(Outcome::Acquired);
        }
        self.word
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |w| (w & SIGNALLED != 0).then_some(w & !SIGNALLED))
            .ok()
            .map(|_| Outcome::Acquired)
    }
    fn available(&self, armed: u32) -> bool {
        let w = self.word.load(Ordering::SeqCst);
        w & SIGNALLED != 0 || (self.is_manual() && w >> 1 != armed >> 1)
    }
    fn untake(&self) {
        if !self.is_manual() {
            self.set();
        }
    }
    fn sleep_word(&self) -> (&AtomicU32, u32) {
        (&self.word, self.word.load(Ordering::SeqCst))
    }
    fn waiters(&self) -> &AtomicU32 {
        &self.waiters
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn auto_reset_releases_one_then_resets() {
        let e = EventState::default();
        e.init(false, true);
        assert_eq!(e.try_take(0), Some(Outcome::Acquired));
        assert_eq!(e.try_take(0), None);
    }

    #[test]
    fn manual_pulse_releases_armed_waiters_only() {
        let e = EventState::default();
        e.init(true, false);
        let armed = e.arm();
        e.pulse();
        assert!(!e.is_set());
        assert_eq!(e.try_take(armed), Some(Outcome::Acquired));
        assert_eq!(e.try_take(e.arm()), None);
    }
}
