//! Waiting with a deadline: the one place a blocking call turns its
//! deadline into a condition-variable wait.

use std::sync::{Condvar, MutexGuard};
use std::time::Instant;

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
