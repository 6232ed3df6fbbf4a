//! A waitable timer's state in shared memory (the classic
//! `CreateWaitableTimer` / `SetWaitableTimer`).
//!
//! No thread and no daemon keeps time: the due time is a `CLOCK_MONOTONIC`
//! instant (one clock for every process of the machine) stored in the
//! segment, and a waiter that finds it in the future sleeps until then
//! ([`Waitable::wake_at`]) or until the timer is set again (the `seq`
//! word, bumped by every set and cancel).
//!
//! - Manual-reset (notification) timer: signalled once due, and stays so
//!   until it is set again.
//! - Auto-reset (synchronization) timer: once due, releases one waiter and
//!   is unsignalled; a periodic one is due again one period later.
//!
//! Every word is a peer's to write: a due time or period of any value makes
//! waits end by their deadline, never spin (a period is at least 1 ms).

use std::time::{Duration, Instant};

use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{wake_if_waiting, Outcome, Waitable};

/// The shortest period: a scribbled period of 0 or 1 ns cannot make a
/// waiter spin through billions of periods.
const MIN_PERIOD_NS: u64 = 1_000_000;

/// The timer, in its segment.
#[repr(C)]
#[derive(Debug, Default)]
pub struct TimerState {
    /// When it is next due, in `CLOCK_MONOTONIC` ns; 0: not running.
    due: AtomicU64,
    /// Its period in ns; 0: one-shot.
    period: AtomicU64,
    /// A manual-reset timer's "has fired since it was set" latch.
    fired: AtomicU32,
    /// 1: manual-reset (notification) timer.
    manual: AtomicU32,
    /// Bumped by every set and cancel: sleepers recompute their wake time.
    seq: AtomicU32,
    waiters: AtomicU32,
}

#[cfg(not(loom))]
// SAFETY: `#[repr(C)]`, atomics only, valid for every bit pattern.
#[allow(unsafe_code)]
unsafe impl crate::segment::Shared for TimerState {}

/// This machine's monotonic clock, in ns (the same in every process).
fn now_ns() -> u64 {
    switchboard_sys::process::monotonic_ns()
}

impl TimerState {
    /// Initializes a new timer (not running).
    pub fn init(&self, manual_reset: bool) {
        self.manual.store(u32::from(manual_reset), Ordering::Relaxed);
    }

    /// Whether it is a manual-reset timer.
    pub fn is_manual(&self) -> bool {
        self.manual.load(Ordering::Relaxed) != 0
    }

    /// Sets it due `due` from now, then every `period` (`None`: once); a
    /// signalled timer becomes unsignalled. Returns whether it was running.
    pub fn set(&self, due: Duration, period: Option<Duration>) -> bool {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let period = period.map_or(0, |p| ns(p).max(MIN_PERIOD_NS));
        self.fired.store(0, Ordering::SeqCst);
        self.period.store(period, Ordering::SeqCst);
        let was = self.due.swap(now_ns().saturating_add(ns(due)).max(1), Ordering::SeqCst);
        self.bump();
        was != 0
    }

    /// Stops it (a signalled timer stays signalled, as `CancelWaitableTimer`
    /// leaves it). Returns whether it was running.
    pub fn cancel(&self) -> bool {
        let was = self.due.swap(0, Ordering::SeqCst);
        self.bump();
        was != 0
    }

    fn bump(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        wake_if_waiting(&self.seq, &self.waiters, i32::MAX as u32);
    }

    /// Whether a wait would be satisfied now (without taking it).
    pub fn is_signalled(&self) -> bool {
        self.available(0)
    }

    /// When it is next due, as an [`Instant`] of this process (`None`: not
    /// running).
    fn due_instant(&self) -> Option<Instant> {
        let due = self.due.load(Ordering::SeqCst);
        if due == 0 {
            return None;
        }
        let now = now_ns();
        Some(Instant::now() + Duration::from_nanos(due.saturating_sub(now)))
    }
}

impl Waitable for TimerState {
    fn try_take(&self, _: u32) -> Option<Outcome> {
        let now = now_ns();
        let due = self.due.load(Ordering::SeqCst);
        let reached = due != 0 && now >= due;
        if self.is_manual() {
            if reached {
                self.fired.store(1, Ordering::SeqCst);
            }
            return (self.fired.load(Ordering::SeqCst) != 0).then_some(Outcome::Acquired);
        }
        if !reached {
            return None;
        }
        // One waiter takes each firing: the next due time (or none) is
        // published with a CAS only one taker wins.
        let period = self.period.load(Ordering::SeqCst);
        let next = if period == 0 {
            0
        } else {
            let periods = (now - due) / period.max(MIN_PERIOD_NS) + 1;
            due.saturating_add(periods.saturating_mul(period.max(MIN_PERIOD_NS)))
        };
        self.due.compare_exchange(due, next, Ordering::SeqCst, Ordering::SeqCst).ok().map(|_| Outcome::Acquired)
    }

    fn available(&self, _: u32) -> bool {
        let due = self.due.load(Ordering::SeqCst);
        let reached = due != 0 && now_ns() >= due;
        reached || (self.is_manual() && self.fired.load(Ordering::SeqCst) != 0)
    }

    fn untake(&self) {
        // Taken by a wait-all that then gave up: fire again at once.
        if !self.is_manual() {
            let _ = self.due.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
            self.bump();
        }
    }

    fn sleep_word(&self) -> (&AtomicU32, u32) {
        (&self.seq, self.seq.load(Ordering::SeqCst))
    }

    fn waiters(&self) -> &AtomicU32 {
        &self.waiters
    }

    fn wake_at(&self) -> Option<Instant> {
        self.due_instant()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn an_auto_reset_timer_fires_once_per_period_and_a_scribbled_period_cannot_spin() {
        let t = TimerState::default();
        t.init(false);
        assert_eq!(t.try_take(0), None, "not running");
        t.set(Duration::ZERO, None);
        assert_eq!(t.try_take(0), Some(Outcome::Acquired));
        assert_eq!(t.try_take(0), None, "one-shot: one firing");
        t.set(Duration::ZERO, Some(Duration::from_secs(3600)));
        assert_eq!(t.try_take(0), Some(Outcome::Acquired));
        assert_eq!(t.try_take(0), None, "next firing an hour on");
        t.period.store(1, Ordering::SeqCst);
        t.due.store(1, Ordering::SeqCst);
        assert_eq!(t.try_take(0), Some(Outcome::Acquired), "a scribbled period of 1 ns");
        assert!(t.due.load(Ordering::SeqCst) > now_ns(), "skips to the next period after now");
    }
}
