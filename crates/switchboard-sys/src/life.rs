//! Life tokens: whether an owner is still there, readable by other processes
//! without a system call.
//!
//! A [`LifeToken`] is a process-shared *robust* pthread mutex in a one-page
//! memfd. An owner thread locks it ([`LifeToken::hold`]) and keeps it for
//! as long as the object it stands for exists. Other processes map the page
//! read-only ([`LifeWatch`]) and read the mutex's lock word:
//!
//! - the owner's thread id: alive;
//! - `0`: the owner released it (an orderly close);
//! - the `FUTEX_OWNER_DIED` bit: the owner thread died holding it. The kernel
//!   sets this bit itself when it tears down a dying thread (the robust-futex
//!   list glibc registers for every thread), so it holds for `kill -9` too.
//!
//! So a "is the server still there?" check on every write costs one load,
//! where asking the kernel (`poll` on a socket, `kill(pid, 0)`) costs a
//! system call (~180 ns on the development VM).
//!
//! A watcher can also *sleep* on the word ([`LifeWatch::sleep_word`], with
//! `futex_waitv` beside the word it really waits for): the holder sets the
//! `FUTEX_WAITERS` bit when it takes the token, so the kernel wakes a
//! sleeper when it marks the owner dead, and glibc's unlock wakes one on an
//! orderly release. Both wake only *one* sleeper, so a watcher that finds
//! the token no longer alive wakes the rest ([`LifeWatch::wake_watchers`]).
//! A peer's death thus ends a blocked wait at once, with no polling.
//!
//! # Safety
//! The mutex lives in memory no other process can write: the memfd is
//! sealed with `F_SEAL_FUTURE_WRITE` after the owner mapped it, so watchers
//! can only map it read-only. A hostile peer therefore cannot corrupt the
//! mutex (glibc links a held robust mutex into the holder's robust list
//! through pointers stored *in* the mutex; a writable mutex would let a peer
//! redirect them). The lock word's position (the first `int`, `__lock`) is
//! glibc's ABI; [`LifeToken::hold`] checks it holds the caller's thread id
//! after locking and refuses to work otherwise.

#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::sync::Arc;

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
use rustix::io::Errno;

use crate::futex::WatchWord;
use crate::mmap::{page_size, Protection, Region};
use crate::Result;

/// `FUTEX_OWNER_DIED`: set by the kernel in a robust futex whose owner died.
const OWNER_DIED: u32 = 0x4000_0000;
/// `FUTEX_TID_MASK`.
const TID_MASK: u32 = 0x3fff_ffff;
/// `FUTEX_WAITERS`: someone may sleep on the word; wake them on change.
const FUTEX_WAITERS: u32 = 0x8000_0000;

/// What a watcher sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// The owner thread holds the token.
    Alive,
    /// The owner released it.
    Released,
    /// The owner thread died holding it.
    Died,
}

/// The owner's side of a life token.
#[derive(Debug)]
pub struct LifeToken {
    region: Region,
    fd: OwnedFd,
}

/// Proof that the calling thread holds a [`LifeToken`]; dropping it
/// releases the token. Not `Send`: a robust mutex is released by the thread
/// that locked it.
#[derive(Debug)]
pub struct LifeHold {
    // Kept alive by the hold: if a hold is leaked, the mutex stays mapped,
    // since glibc and the kernel may still walk the thread's robust list
    // through it.
    token: Arc<LifeToken>,
    _not_send: PhantomData<*const ()>,
}

impl LifeToken {
    /// Creates an unheld token.
    ///
    /// # Errors
    /// `ENOMEM`, `EMFILE`, or the error of `pthread_mutex_init`.
    pub fn create() -> Result<LifeToken> {
        let fd = memfd_create("switchboard-life", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        ftruncate(&fd, page_size() as u64)?;
        let region = Region::map(&fd, 0, page_size(), Protection::ReadWrite)?;
        fcntl_add_seals(&fd, SealFlags::GROW | SealFlags::SHRINK | SealFlags::FUTURE_WRITE | SealFlags::SEAL)?;
        let token = LifeToken { region, fd };
        token.init()?;
        Ok(token)
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= 4096);
        self.region.as_ptr().cast()
    }

    fn init(&self) -> Result<()> {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: attr is initialised by pthread_mutexattr_init before any
        // other use and destroyed after; the mutex pointer is page-aligned,
        // inside our private read-write mapping, and not yet used by anyone.
        let rc = unsafe {
            let a = attr.as_mut_ptr();
            let mut rc = libc::pthread_mutexattr_init(a);
            if rc == 0 {
                rc = libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED);
                rc = if rc == 0 { libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST) } else { rc };
                rc = if rc == 0 { libc::pthread_mutex_init(self.mutex(), a) } else { rc };
                libc::pthread_mutexattr_destroy(a);
            }
            rc
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(Errno::from_raw_os_error(rc))
        }
    }

    /// Takes the token for the calling thread, which should live as long as
    /// the object the token stands for (its death reads as the owner's).
    ///
    /// # Errors
    /// `EDEADLK`/`EBUSY` when it is already held; `ENOTSUP` when the C
    /// library does not keep the lock word where this module reads it.
    pub fn hold(token: &Arc<LifeToken>) -> Result<LifeHold> {
        // SAFETY: the mutex was initialised in `create` and lives as long as
        // the token; trylock never blocks.
        let rc = unsafe { libc::pthread_mutex_trylock(token.mutex()) };
        if rc == libc::EOWNERDEAD {
            // A previous holder died: leave the mutex unrecoverable (it reads
            // as died for ever) rather than hold it.
            // SAFETY: trylock made this thread the owner.
            unsafe { libc::pthread_mutex_unlock(token.mutex()) };
        }
        if rc != 0 {
            return Err(Errno::from_raw_os_error(rc));
        }
        let hold = LifeHold { token: token.clone(), _not_send: PhantomData };
        if word(&token.region) & TID_MASK != crate::process::tid() {
            return Err(Errno::NOTSUP);
        }
        // Ask for wake-ups: on death the kernel wakes a sleeper only when
        // this bit is set; glibc's unlock does so too. Only the holder
        // changes the word while it holds it.
        if let Some(w) = token.region.atomic_u32(0) {
            w.fetch_or(FUTEX_WAITERS, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(hold)
    }

    /// The descriptor to give watchers (it can only be mapped read-only).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// What a watcher would see now.
    pub fn state(&self) -> Life {
        life_of(word(&self.region))
    }
}

impl Drop for LifeHold {
    fn drop(&mut self) {
        // SAFETY: this thread locked the mutex in `hold` (LifeHold is !Send).
        // glibc's unlock wakes one sleeper, since `hold` set FUTEX_WAITERS.
        unsafe { libc::pthread_mutex_unlock(self.token.mutex()) };
    }
}

/// A watcher's read-only view of a token.
#[derive(Debug)]
pub struct LifeWatch {
    region: Region,
}

impl LifeWatch {
    /// Maps a token received from its owner.
    ///
    /// # Errors
    /// `EINVAL` when the descriptor is not a one-page file; mapping errors.
    pub fn open<Fd: AsFd>(fd: Fd) -> Result<LifeWatch> {
        if crate::memfd::size(&fd)? != page_size() as u64 {
            return Err(Errno::INVAL);
        }
        Ok(LifeWatch { region: Region::map(&fd, 0, page_size(), Protection::Read)? })
    }

    /// The owner's state: one load, no system call.
    pub fn state(&self) -> Life {
        life_of(word(&self.region))
    }

    /// Whether the owner still holds the token.
    pub fn alive(&self) -> bool {
        self.state() == Life::Alive
    }

    /// The word to sleep on and the value it holds while the owner lives;
    /// `None` once it no longer does. Sleeping while the word equals that
    /// value ends when the owner releases the token or dies.
    pub fn sleep_word(&self) -> Option<(WatchWord<'_>, u32)> {
        let w = self.region.watch_u32(0)?;
        let v = w.load();
        (life_of(v) == Life::Alive).then_some((w, v))
    }

    /// Wakes every sleeper on the word: the release or death woke only one.
    pub fn wake_watchers(&self) {
        if let Some(w) = self.region.watch_u32(0) {
            w.wake_all();
        }
    }
}

fn word(region: &Region) -> u32 {
    region.load_u32(0).unwrap_or(0)
}

fn life_of(w: u32) -> Life {
    if w & OWNER_DIED != 0 {
        Life::Died
    } else if w & TID_MASK == 0 {
        Life::Released
    } else {
        Life::Alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_alive_while_held_and_released_after() {
        let t = Arc::new(LifeToken::create().unwrap());
        let w = LifeWatch::open(t.fd()).unwrap();
        assert_eq!(w.state(), Life::Released);
        let h = LifeToken::hold(&t).unwrap();
        assert!(w.alive());
        drop(h);
        assert_eq!(w.state(), Life::Released);
    }

    #[test]
    fn a_thread_that_exits_holding_the_token_reads_as_died() {
        let t = std::sync::Arc::new(LifeToken::create().unwrap());
        let w = LifeWatch::open(t.fd()).unwrap();
        let t2 = t.clone();
        std::thread::spawn(move || std::mem::forget(LifeToken::hold(&t2).unwrap())).join().unwrap();
        assert_eq!(w.state(), Life::Died);
    }

    /// Sleeps on the token until it is no longer alive; false on timeout.
    fn sleep_until_gone(w: &LifeWatch) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while let Some((word, v)) = w.sleep_word() {
            if word.wait(v, Some(deadline)) == crate::futex::Wake::TimedOut {
                return false;
            }
        }
        w.wake_watchers();
        true
    }

    #[test]
    fn sleepers_wake_when_the_holder_dies_or_releases() {
        for release in [false, true] {
            let t = Arc::new(LifeToken::create().unwrap());
            let (held_tx, held_rx) = std::sync::mpsc::channel();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let t2 = t.clone();
            let holder = std::thread::spawn(move || {
                let h = LifeToken::hold(&t2).unwrap();
                held_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                if release {
                    drop(h);
                } else {
                    std::mem::forget(h); // the thread exits holding it
                }
            });
            held_rx.recv().unwrap();
            // Two sleepers: the kernel (or glibc) wakes one, which wakes
            // the other. Both must be asleep before the holder goes.
            let (tid_tx, tid_rx) = std::sync::mpsc::channel();
            let sleepers: Vec<_> = (0..2)
                .map(|_| {
                    let w = LifeWatch::open(t.fd()).unwrap();
                    let tid_tx = tid_tx.clone();
                    std::thread::spawn(move || {
                        tid_tx.send(crate::process::tid()).unwrap();
                        sleep_until_gone(&w)
                    })
                })
                .collect();
            for tid in [tid_rx.recv().unwrap(), tid_rx.recv().unwrap()] {
                let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while !crate::process::blocked_in_futex(crate::process::pid(), tid) {
                    assert!(std::time::Instant::now() < until, "sleeper {tid} never showed as asleep in /proc");
                    std::thread::yield_now();
                }
            }
            go_tx.send(()).unwrap();
            holder.join().unwrap();
            for s in sleepers {
                assert!(s.join().unwrap(), "a sleeper was not woken (release: {release})");
            }
            let w = LifeWatch::open(t.fd()).unwrap();
            assert_eq!(w.state(), if release { Life::Released } else { Life::Died });
        }
    }

    #[test]
    fn watchers_cannot_map_the_token_writable() {
        let t = LifeToken::create().unwrap();
        assert!(Region::map(t.fd(), 0, page_size(), Protection::ReadWrite).is_err());
    }
}
