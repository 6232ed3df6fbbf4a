//! A recursive, abandonable mutex in shared memory.
//!
//! `owner` is the futex word and holds the owning thread's id (0 = free).
//! Thread ids are unique machine-wide among live threads, and `kill(tid, 0)`
//! answers for any thread, so a waiter that finds the owner gone takes the
//! mutex over with a compare-and-swap from the dead id and reports
//! [`Outcome::Abandoned`] (the classic `WAIT_ABANDONED`). A dead owner wakes
//! no one, so sleeping waiters re-check every [`crate::wait::LIVENESS_POLL`].
//!
//! Fields and their writers:
//! - `owner`: CAS 0→tid by an acquirer, CAS dead→tid by a taker-over,
//!   store 0 by the owner on final release.
//! - `recursion`, `owner_pid`: written only by the current owner.
//! - `waiters`: every waiter, around its sleep.
//!
//! Thread ids can be reused after a thread dies; with Linux's default
//! `pid_max` of 4 194 304 a reuse inside one wait is not a practical concern.

use std::time::{Duration, Instant};

use crate::peer::Peer;
use crate::sync::{AtomicU32, Ordering};
use crate::wait::{wake_if_waiting, Outcome, Waitable};

/// The shared state of a named mutex.
#[repr(C)]
#[derive(Debug, Default)]
pub struct MutexState {
    owner: AtomicU32,
    recursion: AtomicU32,
    owner_pid: AtomicU32,
    waiters: AtomicU32,
}

#[cfg(not(loom))]
#[allow(unsafe_code)]
// SAFETY: repr(C), atomics only, any bit pattern valid.
unsafe impl crate::segment::Shared for MutexState {}

/// The caller does not own the mutex it tried to release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotOwner;

#[cfg(not(loom))]
fn me() -> (u32, u32) {
    (switchboard_sys::process::tid(), switchboard_sys::process::pid())
}

#[cfg(not(loom))]
fn alive(tid: u32) -> bool {
    switchboard_sys::process::is_alive(tid)
}

#[cfg(loom)]
fn me() -> (u32, u32) {
    // Distinct non-zero ids per loom thread.
    let id = format!("{:?}", loom::thread::current().id());
    let n: u32 = id.chars().filter(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0);
    (n + 1, 1)
}

#[cfg(loom)]
fn alive(_tid: u32) -> bool {
    true
}

impl MutexState {
    /// Takes ownership for the calling thread if `initially_owned` (creator
    /// only, before sharing).
    pub fn init(&self, initially_owned: bool) {
        if initially_owned {
            self.become_owner(me());
        }
    }

    fn become_owner(&self, (tid, pid): (u32, u32)) {
        self.owner.store(tid, Ordering::SeqCst);
        self.recursion.store(1, Ordering::Relaxed);
        self.owner_pid.store(pid, Ordering::Relaxed);
    }

    /// How many acquisitions the owner holds (0 when free).
    pub fn recursion(&self) -> u32 {
        match self.owner.load(Ordering::SeqCst) {
            0 => 0,
            _ => self.recursion.load(Ordering::Relaxed),
        }
    }

    /// Whether the owner died holding it and nobody has taken it since.
    pub fn is_abandoned(&self) -> bool {
        match self.owner.load(Ordering::SeqCst) {
            0 => false,
            tid => !alive(tid),
        }
    }

    /// The owning thread id and process id, if owned.
    pub fn owner(&self) -> Option<(u32, u32)> {
        match self.owner.load(Ordering::SeqCst) {
            0 => None,
            tid => Some((tid, self.owner_pid.load(Ordering::Relaxed))),
        }
    }

    /// Releases one level of ownership; the last release frees the mutex and
    /// wakes one waiter.
    ///
    /// # Errors
    /// [`NotOwner`] when the calling thread does not own the mutex.
    pub fn release(&self) -> Result<(), NotOwner> {
        let (tid, _) = me();
        if self.owner.load(Ordering::SeqCst) != tid {
            return Err(NotOwner);
        }
        let depth = self.recursion.load(Ordering::Relaxed);
        if depth > 1 {
            self.recursion.store(depth - 1, Ordering::Relaxed);
            return Ok(());
        }
        self.recursion.store(0, Ordering::Relaxed);
        self.owner_pid.store(0, Ordering::Relaxed);
        // SYNC: SeqCst store pairs with the waiter's SeqCst waiters increment
        // (see crate::wait's wake-up protocol) and the acquirer's CAS.
        self.owner.store(0, Ordering::SeqCst);
        wake_if_waiting(&self.owner, &self.waiters, 1);
        Ok(())
    }
}

/// A lock taken with [`MutexState::lock`]; released on drop (also on an
/// early return).
#[derive(Debug)]
pub struct Locked<'a>(&'a MutexState);

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.0.release();
    }
}

impl MutexState {
    /// Takes the lock for a short critical section, waiting as long as it
    /// takes; the outcome says whether a dead holder abandoned it (the
    /// caller's data must then be usable as the dead holder left it).
    /// Uncontended, this is one compare-and-swap.
    pub fn lock(&self) -> (Locked<'_>, Outcome) {
        let outcome = match self.try_take(self.arm()) {
            Some(taken) => taken,
            None => loop {
                match crate::wait::wait_one(self, None) {
                    Outcome::TimedOut => {}
                    taken => break taken,
                }
            },
        };
        (Locked(self), outcome)
    }
}

/// Why [`MutexState::lock_until`] gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockGaveUp {
    /// The deadline passed with the lock held by another live thread.
    TimedOut,
    /// The peer the caller works with is gone.
    PeerGone,
}

impl MutexState {
    /// Takes the lock if it is free (or abandoned) now, without waiting.
    pub fn try_lock(&self) -> Option<(Locked<'_>, Outcome)> {
        self.try_take(self.arm()).map(|taken| (Locked(self), taken))
    }

    /// Takes the lock as [`MutexState::lock`] does, but gives up at
    /// `deadline` or when `peer` is gone — so a lock word naming a live
    /// thread that never lets go (a hostile peer can write any tid there)
    /// holds the caller no longer than it chose to wait.
    ///
    /// # Errors
    /// [`LockGaveUp`].
    pub fn lock_until(&self, deadline: Option<Instant>, peer: Peer<'_>) -> Result<(Locked<'_>, Outcome), LockGaveUp> {
        if let Some(taken) = self.try_lock() {
            return Ok(taken);
        }
        if let Some(taken) = self.spin_for_release() {
            return Ok(taken);
        }
        loop {
            let slice = Instant::now() + peer.every;
            match crate::wait::wait_one(self, Some(deadline.map_or(slice, |d| d.min(slice)))) {
                Outcome::TimedOut => {}
                taken => return Ok((Locked(self), taken)),
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(LockGaveUp::TimedOut);
            }
            if peer.gone_now() || !(peer.alive)() {
                return Err(LockGaveUp::PeerGone);
            }
        }
    }
}

/// How long [`MutexState::lock_until`] spins for a holder to let go
/// before sleeping: its critical sections last a few hundred nanoseconds,
/// and a futex sleep and wake costs several microseconds (tens on a busy
/// VM) — with two threads taking turns, sleeping at every collision made
/// a flooded port deliver 0.26 M packets a second.
pub const LOCK_SPIN: Duration = Duration::from_micros(2);

impl MutexState {
    /// Spins up to [`LOCK_SPIN`] for the lock to be let go, looking at the
    /// owner word only (no liveness system call), and takes it then.
    #[cfg(not(loom))]
    fn spin_for_release(&self) -> Option<(Locked<'_>, Outcome)> {
        let until = Instant::now() + LOCK_SPIN;
        // Pause turns since the clock was last read: it is read every 16,
        // however the turns are grouped, so the spin ends near LOCK_SPIN.
        let mut turns = 0u32;
        // Looks at the owner word less and less often (1, 2, 4 … 32 pause
        // turns apart): every look takes the line from the holder, which
        // then waits to get it back for its next write inside the
        // critical section. Four writers flooding one port: 0.76 → 0.85 M
        // packets a second (`bench --fan-in 4`, two runs each).
        let mut pause = 1u32;
        loop {
            for _ in 0..pause {
                std::hint::spin_loop();
            }
            turns += pause;
            pause = (pause * 2).min(32);
            if self.owner.load(Ordering::Relaxed) == 0 {
                if let Some(taken) = self.try_lock() {
                    return Some(taken);
                }
            }
            if turns >= 16 {
                turns = 0;
                if Instant::now() >= until {
                    return None;
                }
            }
        }
    }

    /// Under loom: no spinning (a model explores the sleep path).
    #[cfg(loom)]
    fn spin_for_release(&self) -> Option<(Locked<'_>, Outcome)> {
        None
    }
}

impl Waitable for MutexState {
    fn try_take(&self, _: u32) -> Option<Outcome> {
        let mine = me();
        // A free lock is taken by one compare-and-swap, the first touch of
        // its line: a load first fetches a line another process wrote last
        // as shared, and the swap then upgrades it — two transfers where
        // one does, on every hand-over between processes.
        // SYNC: SeqCst CAS pairs with the owner's SeqCst store of 0 in release.
        let cur = match self.owner.compare_exchange(0, mine.0, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => {
                self.become_owner(mine);
                return Some(Outcome::Acquired);
            }
            Err(cur) => cur,
        };
        if cur == mine.0 {
            let depth = self.recursion.load(Ordering::Relaxed);
            self.recursion.store(depth.saturating_add(1), Ordering::Relaxed);
            return Some(Outcome::Acquired);
        }
        if alive(cur) {
            return None;
        }
        // SYNC: SeqCst CAS pairs with the owner's SeqCst store of 0 in release.
        self.owner.compare_exchange(cur, mine.0, Ordering::SeqCst, Ordering::Relaxed).ok()?;
        self.become_owner(mine);
        Some(Outcome::Abandoned)
    }
    fn available(&self, _: u32) -> bool {
        match self.owner.load(Ordering::SeqCst) {
            0 => true,
            tid => tid == me().0 || !alive(tid),
        }
    }
    fn untake(&self) {
        let _ = self.release();
    }
    fn sleep_word(&self) -> (&AtomicU32, u32) {
        (&self.owner, self.owner.load(Ordering::SeqCst))
    }
    fn waiters(&self) -> &AtomicU32 {
        &self.waiters
    }
    fn has_owner(&self) -> bool {
        true
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A hostile peer can write the id of any live thread into the word:
    /// `lock_until` still ends, at the deadline or when the peer is gone.
    #[test]
    fn a_lock_held_by_a_live_foreign_thread_gives_up_at_the_deadline_or_the_peers_end() {
        let m = MutexState::default();
        m.owner.store(1, Ordering::SeqCst); // pid 1: alive, and never lets go
        let soon = Some(Instant::now() + std::time::Duration::from_millis(20));
        assert_eq!(m.lock_until(soon, Peer::PRESENT).err(), Some(LockGaveUp::TimedOut));
        let gone = Peer { watch: None, alive: &|| false, every: std::time::Duration::from_millis(5) };
        assert_eq!(m.lock_until(None, gone).err(), Some(LockGaveUp::PeerGone));
    }

    #[test]
    fn recursive_for_owner_and_refused_for_others() {
        let m = MutexState::default();
        m.init(true);
        assert_eq!(m.try_take(0), Some(Outcome::Acquired));
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(m.try_take(0), None);
                assert_eq!(m.release(), Err(NotOwner));
            });
        });
        m.release().unwrap();
        m.release().unwrap();
        assert_eq!(m.release(), Err(NotOwner));
    }

    #[test]
    fn a_dead_owner_thread_abandons_the_mutex() {
        let m = MutexState::default();
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(m.try_take(0), Some(Outcome::Acquired)));
        });
        // The thread has exited (scope joined) while owning the mutex; the
        // kernel may reap it a moment after join, so wait rather than try.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        assert_eq!(crate::wait::wait_one(&m, Some(deadline)), Outcome::Abandoned);
        m.release().unwrap();
    }
}
