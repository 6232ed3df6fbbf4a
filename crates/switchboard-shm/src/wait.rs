//! Waiting on one or several shared objects.
//!
//! Every object is a [`Waitable`]: it can be taken if available, peeked, given
//! back, and offers a futex word to sleep on while unavailable. The blocking
//! functions here are written once over that trait:
//!
//! - [`wait_one`] — one object (`WaitForSingleObject`);
//! - [`wait_any`] — the lowest-indexed available object (`WaitForMultipleObjects`, `bWaitAll = FALSE`);
//! - [`wait_all`] — all objects at once (`bWaitAll = TRUE`).
//!
//! A `deadline` of `None` waits forever; a deadline already past makes a
//! single attempt (the classic zero timeout).
//!
//! ## Wake-up protocol
//!
//! A waiter increments the object's waiter count, *then* reads the sleep word
//! and re-tries, *then* sleeps on the word with the value it read. A releaser
//! changes the word, *then* wakes if the waiter count is non-zero (both with
//! `SeqCst`). Either the waiter sees the new value (and the futex returns at
//! once) or the releaser sees the waiter (and wakes it): no wake-up is lost.
//!
//! ## Wait-all
//!
//! [`wait_all`] takes nothing until every object *looks* available, then takes
//! them in order and gives back what it took if one was snatched meanwhile.
//! Between the peek and the roll-back another process may briefly see one of
//! the objects taken; the classic kernel-atomic wait-all has no such window.

use std::time::{Duration, Instant};

use crate::sync::futex::WatchWord;
use crate::sync::{AtomicU32, Ordering};

/// How often a waiter on an object with an owner re-checks that the owner
/// is alive (a dead owner cannot wake anyone).
pub const LIVENESS_POLL: Duration = Duration::from_millis(50);

/// The result of taking one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The object was signalled and is now taken.
    Acquired,
    /// A mutex whose owner died holding it; the caller now owns it.
    Abandoned,
    /// The deadline passed.
    TimedOut,
}

/// An object that can be waited on.
pub trait Waitable {
    /// A snapshot taken when a wait begins (an event's pulse generation).
    fn arm(&self) -> u32 {
        0
    }
    /// Takes the object if it is available now.
    fn try_take(&self, armed: u32) -> Option<Outcome>;
    /// Whether [`Waitable::try_take`] would succeed now (takes nothing).
    fn available(&self, armed: u32) -> bool;
    /// Gives back what a successful `try_take` took (wait-all roll-back).
    fn untake(&self);
    /// The futex word to sleep on and the value it holds while unavailable.
    fn sleep_word(&self) -> (&AtomicU32, u32);
    /// The count of sleeping waiters, so that releasers can skip the wake.
    fn waiters(&self) -> &AtomicU32;
    /// A second word to sleep on, which this process may only read (a
    /// peer's life token: its death makes a pipe end signalled), and the
    /// value it holds while nothing changed.
    fn watch_word(&self) -> Option<(WatchWord<'_>, u32)> {
        None
    }
    /// Called after the waiter registered in [`Waitable::waiters`] and
    /// before it reads its words and looks again: an object whose word is
    /// changed by a helper (a descriptor's readiness) arms the helper here.
    fn prepare_sleep(&self) {}
    /// Whether a sleeping waiter must wake periodically to detect a dead owner.
    fn has_owner(&self) -> bool {
        false
    }
    /// When this object becomes signalled by itself (a timer's due time):
    /// a waiter sleeps no longer than that.
    fn wake_at(&self) -> Option<Instant> {
        None
    }
}

/// Result of [`wait_any`] and [`wait_all`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signaled {
    /// Object `index` (for wait-all: the first abandoned one or 0) was taken.
    Object {
        /// Index into the slice that was waited on.
        index: usize,
        /// Whether it was an abandoned mutex.
        abandoned: bool,
    },
    /// The deadline passed.
    TimedOut,
}

fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

fn sleep_until(deadline: Option<Instant>, poll: bool) -> Option<Instant> {
    if !poll {
        return deadline;
    }
    let slice = Instant::now() + LIVENESS_POLL;
    Some(deadline.map_or(slice, |d| d.min(slice)))
}

/// Waits until `obj` can be taken, or `deadline`.
pub fn wait_one(obj: &dyn Waitable, deadline: Option<Instant>) -> Outcome {
    // The same loop as `wait_any`, without its heap-allocated `armed`: this
    // runs for every mutex, semaphore and event wait and every port lock.
    let objs = [obj];
    let armed = [obj.arm()];
    match sleep_loop(&objs, deadline, || take_first(&objs, &armed)) {
        Signaled::Object { abandoned: true, .. } => Outcome::Abandoned,
        Signaled::Object { .. } => Outcome::Acquired,
        Signaled::TimedOut => Outcome::TimedOut,
    }
}

fn take_first(objs: &[&dyn Waitable], armed: &[u32]) -> Option<Signaled> {
    objs.iter().zip(armed).enumerate().find_map(|(index, (o, a))| {
        o.try_take(*a).map(|out| Signaled::Object { index, abandoned: out == Outcome::Abandoned })
    })
}

/// Waits until any object can be taken and takes the lowest-indexed one.
///
/// # Panics
/// If `objs` is empty or longer than half of
/// [`switchboard_sys::futex::WAITV_MAX`] (each object may bring two words;
/// callers validate this and return `InvalidParameter`).
pub fn wait_any(objs: &[&dyn Waitable], deadline: Option<Instant>) -> Signaled {
    let armed: Vec<u32> = objs.iter().map(|o| o.arm()).collect();
    sleep_loop(objs, deadline, || take_first(objs, &armed))
}

/// Waits until every object can be taken at once and takes them all.
///
/// # Panics
/// As [`wait_any`].
pub fn wait_all(objs: &[&dyn Waitable], deadline: Option<Instant>) -> Signaled {
    let armed: Vec<u32> = objs.iter().map(|o| o.arm()).collect();
    sleep_loop(objs, deadline, || take_all(objs, &armed))
}

fn take_all(objs: &[&dyn Waitable], armed: &[u32]) -> Option<Signaled> {
    if !objs.iter().zip(armed).all(|(o, a)| o.available(*a)) {
        return None;
    }
    let mut abandoned = None;
    for (i, (o, a)) in objs.iter().zip(armed).enumerate() {
        match o.try_take(*a) {
            Some(Outcome::Abandoned) => abandoned = abandoned.or(Some(i)),
            Some(_) => {}
            None => {
                objs[..i].iter().for_each(|t| t.untake());
                return None;
            }
        }
    }
    Some(Signaled::Object { index: abandoned.unwrap_or(0), abandoned: abandoned.is_some() })
}

/// The shared sleep loop: try, register as waiter, snapshot words, try again,
/// sleep on all words, repeat until `attempt` succeeds or the deadline passes.
fn sleep_loop(
    objs: &[&dyn Waitable],
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Option<Signaled>,
) -> Signaled {
    assert!(!objs.is_empty() && 2 * objs.len() <= switchboard_sys::futex::WAITV_MAX);
    let poll = objs.iter().any(|o| o.has_owner());
    loop {
        if let Some(s) = attempt() {
            return s;
        }
        if expired(deadline) {
            return Signaled::TimedOut;
        }
        objs.iter().for_each(|o| {
            o.waiters().fetch_add(1, Ordering::SeqCst);
            o.prepare_sleep();
        });
        let words: Vec<(&AtomicU32, u32)> = objs.iter().map(|o| o.sleep_word()).collect();
        let watches: Vec<(WatchWord<'_>, u32)> = objs.iter().filter_map(|o| o.watch_word()).collect();
        let got = attempt();
        if got.is_none() {
            let due = objs.iter().filter_map(|o| o.wake_at()).min();
            sleep_on(&words, &watches, [sleep_until(deadline, poll), due].into_iter().flatten().min());
        }
        objs.iter().for_each(|o| {
            o.waiters().fetch_sub(1, Ordering::SeqCst);
        });
        if let Some(s) = got {
            return s;
        }
    }
}

#[cfg(not(loom))]
fn sleep_on(words: &[(&AtomicU32, u32)], watches: &[(WatchWord<'_>, u32)], until: Option<Instant>) {
    if let ([(word, expected)], []) = (words, watches) {
        switchboard_sys::futex::wait(word, *expected, until);
    } else {
        // EINVAL/ENOSYS cannot happen for 1..=128 words on Linux >= 5.16
        // (callers wait on at most 64 objects, each with at most two
        // words); if it did, the loop would simply spin through `attempt`.
        let _ = switchboard_sys::futex::wait_any_watching(words, watches, until);
    }
}

#[cfg(loom)]
fn sleep_on(_words: &[(&AtomicU32, u32)], _watches: &[(WatchWord<'_>, u32)], _until: Option<Instant>) {
    loom::thread::yield_now();
}

/// Wakes sleepers on `word` after the caller changed it: `n` of them if any
/// are registered in `waiters`.
pub(crate) fn wake_if_waiting(word: &AtomicU32, waiters: &AtomicU32, n: u32) {
    if waiters.load(Ordering::SeqCst) > 0 {
        crate::sync::futex::wake(word, n);
    }
}

/// An object that is signalled while `ready()` holds, and that a wait
/// does not take (a port with packets queued, a pipe end with data to
/// read: the classic wait on such a handle leaves the packet or the data
/// for the call that takes it).
///
/// Whoever makes `ready()` true bumps `word` and wakes every sleeper on it
/// when `count` is non-zero; a waiter registers in `count`, *then* reads
/// `word`, *then* asks `ready()` (both sides `SeqCst`, Dekker).
pub struct Watched<'a, F: Fn() -> bool> {
    /// The word the readiness changes.
    pub word: &'a AtomicU32,
    /// The count of sleepers on `word`.
    pub count: &'a AtomicU32,
    /// Whether the object is signalled now.
    pub ready: F,
    /// A peer's life-token word to sleep on as well (its death makes the
    /// object signalled), and its value while the peer lives.
    pub watch: Option<(WatchWord<'a>, u32)>,
    /// Whether a sleeper must look again every [`LIVENESS_POLL`] (a peer's
    /// death that nobody would wake it for).
    pub poll: bool,
}

impl<F: Fn() -> bool> Waitable for Watched<'_, F> {
    fn try_take(&self, _: u32) -> Option<Outcome> {
        (self.ready)().then_some(Outcome::Acquired)
    }
    fn available(&self, _: u32) -> bool {
        (self.ready)()
    }
    fn untake(&self) {}
    fn sleep_word(&self) -> (&AtomicU32, u32) {
        (self.word, self.word.load(Ordering::SeqCst))
    }
    fn waiters(&self) -> &AtomicU32 {
        self.count
    }
    fn watch_word(&self) -> Option<(WatchWord<'_>, u32)> {
        self.watch
    }
    fn has_owner(&self) -> bool {
        self.poll
    }
}
