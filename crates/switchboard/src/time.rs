//! Deadlines: [`Deadline`], the one type a blocking call takes for "until
//! when", and the one place a deadline becomes a condition-variable wait.

use std::sync::{Condvar, MutexGuard};
use std::time::{Duration, Instant};

/// Until when a blocking call may wait: an instant, or never (wait for
/// good). Every blocking call funnels its timeout into one.
///
/// Converts from a `Duration` (that long from now; one too long to
/// represent means never), an `Option<Duration>` (`None`: never) and an
/// `Instant`.
///
/// ```
/// use std::time::Duration;
/// use switchboard::Deadline;
/// let soon = Deadline::after(Duration::from_millis(10));
/// assert!(!soon.passed());
/// assert_eq!(Deadline::from(None::<Duration>), Deadline::NEVER);
/// assert!(Deadline::after(Duration::MAX).instant().is_none(), "too far: never");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// Wait for good.
    pub const NEVER: Deadline = Deadline(None);

    /// `timeout` from now (never, if that cannot be represented).
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(timeout))
    }

    /// At `instant`.
    pub fn at(instant: Instant) -> Deadline {
        Deadline(Some(instant))
    }

    /// Now: a single attempt, no wait (the classic zero timeout). It is
    /// an instant in the past (taken once), so that a try reads no clock.
    pub fn now() -> Deadline {
        Deadline(Some(the_past()))
    }

    /// The instant, or `None` for never.
    pub fn instant(self) -> Option<Instant> {
        self.0
    }

    /// Time left (zero once passed), or `None` for never.
    pub fn remaining(self) -> Option<Duration> {
        self.0.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether the deadline has passed.
    pub fn passed(self) -> bool {
        self.0.is_some_and(|d| is_past(d) || Instant::now() >= d)
    }
}

/// The instant [`Deadline::now`] is: the first time anyone asked, so in
/// the past of every later clock read.
fn the_past() -> Instant {
    static PAST: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *PAST.get_or_init(Instant::now)
}

/// Whether `instant` is known to have passed without reading the clock (a
/// deadline made by [`Deadline::now`], or earlier).
pub(crate) fn is_past(instant: Instant) -> bool {
    instant <= the_past()
}

impl From<Duration> for Deadline {
    fn from(timeout: Duration) -> Deadline {
        Deadline::after(timeout)
    }
}

impl From<Option<Duration>> for Deadline {
    fn from(timeout: Option<Duration>) -> Deadline {
        timeout.map_or(Deadline::NEVER, Deadline::after)
    }
}

impl From<Instant> for Deadline {
    fn from(instant: Instant) -> Deadline {
        Deadline::at(instant)
    }
}

impl Deadline {
    /// From an optional instant (`None`: never). Not a `From` impl, so that
    /// a bare `None` passed for a deadline means "no timeout" without
    /// naming its type.
    pub fn from_instant(instant: Option<Instant>) -> Deadline {
        Deadline(instant)
    }
}

use crate::error::{Error, Result};

/// Waits on `cv` with `guard` until notified or `deadline` (`None`:
/// forever). A poisoned lock is taken over: the state it guards is kept
/// consistent by its users, not by unwinding.
///
/// # Errors
/// `Timeout` (121) once the deadline has passed.
pub(crate) fn wait_until<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> Result<MutexGuard<'a, T>> {
    match deadline {
        None => Ok(cv.wait(guard).unwrap_or_else(|p| p.into_inner())),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout);
            }
            Ok(cv.wait_timeout(guard, left).unwrap_or_else(|p| p.into_inner()).0)
        }
    }
}
