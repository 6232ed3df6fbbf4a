//! A descriptor's readiness as a futex word: the bridge that lets one
//! `futex_waitv` sleep wait for sync objects (futex words in shared memory)
//! and descriptors (a process's pidfd, a socket) at once.
//!
//! Linux has no futex that a descriptor can wake (`FUTEX_FD` is long gone)
//! and no descriptor for a futex word, so one side must be carried over.
//! Here a descriptor is: a [`ReadyWord`] registers a copy of it, one-shot,
//! in an epoll set that one thread per process (started on first use,
//! named `switchboard-ready`) sleeps on. When the descriptor becomes
//! readable, that thread bumps the registration's word and wakes every
//! sleeper on it. The thread is idle in `epoll_wait` otherwise: it never
//! polls and keeps no time.
//!
//! The protocol for a waiter: [`ReadyWord::arm`], *then* read the word,
//! *then* check the descriptor itself ([`ReadyWord::is_ready`]), *then*
//! sleep on the word with the value read. Arming a descriptor that is
//! already ready reports it at once, so no readiness is lost between the
//! check and the sleep.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::Result;

/// The process's bridge: its epoll set and the words its registrations
/// bump, keyed by token.
struct Hub {
    epoll: OwnedFd,
    words: Mutex<HashMap<u64, Weak<AtomicU32>>>,
    next: AtomicU64,
    /// The process that started the thread (a forked child starts its own).
    pid: u32,
}

static HUB: Mutex<Option<Arc<Hub>>> = Mutex::new(None);

fn hub() -> Result<Arc<Hub>> {
    let mut slot = HUB.lock().unwrap_or_else(|p| p.into_inner());
    let me = crate::process::pid();
    if let Some(h) = slot.as_ref().filter(|h| h.pid == me) {
        return Ok(h.clone());
    }
    let hub = Arc::new(Hub {
        epoll: epoll::create(CreateFlags::CLOEXEC)?,
        words: Mutex::new(HashMap::new()),
        next: AtomicU64::new(1),
        pid: me,
    });
    let run = hub.clone();
    std::thread::Builder::new()
        .name("switchboard-ready".into())
        .spawn(move || run.serve())
        .map_err(|e| e.raw_os_error().map_or(rustix::io::Errno::AGAIN, rustix::io::Errno::from_raw_os_error))?;
    *slot = Some(hub.clone());
    Ok(hub)
}

impl Hub {
    fn serve(&self) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        loop {
            events.clear();
            // EINTR and friends: look again. The set lives as long as the
            // process (the thread holds the hub), so no other error occurs.
            if epoll::wait(&self.epoll, rustix::buffer::spare_capacity(&mut events), None).is_err() {
                continue;
            }
            let words = self.words.lock().unwrap_or_else(|p| p.into_inner());
            for token in events.iter().map(|e| e.data.u64()) {
                if let Some(word) = words.get(&token).and_then(Weak::upgrade) {
                    word.fetch_add(1, Ordering::SeqCst);
                    crate::futex::wake_all(&word);
                }
            }
        }
    }
}

/// A descriptor's readiness (readable, or hung up) as a futex word.
#[derive(Debug)]
pub struct ReadyWord {
    hub: Arc<Hub>,
    token: u64,
    /// A copy of the caller's descriptor: the epoll set keys on the
    /// descriptor number, so two registrations of one file never collide,
    /// and this copy is still open when [`Drop`] takes it out of the set.
    fd: OwnedFd,
    word: Arc<AtomicU32>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("pid", &self.pid).finish_non_exhaustive()
    }
}

const WATCH: EventFlags = EventFlags::IN.union(EventFlags::ONESHOT);

impl ReadyWord {
    /// Registers `fd`, armed.
    ///
    /// # Errors
    /// Out of descriptors (`EMFILE`), the user's epoll watch limit
    /// (`ENOSPC`), a descriptor epoll cannot watch (`EPERM`: a regular
    /// file), or the bridge thread could not start.
    pub fn new(fd: BorrowedFd<'_>) -> Result<ReadyWord> {
        let hub = hub()?;
        let fd = rustix::io::fcntl_dupfd_cloexec(fd, 0)?;
        let token = hub.next.fetch_add(1, Ordering::Relaxed);
        let word = Arc::new(AtomicU32::new(0));
        hub.words.lock().unwrap_or_else(|p| p.into_inner()).insert(token, Arc::downgrade(&word));
        if let Err(e) = epoll::add(&hub.epoll, &fd, EventData::new_u64(token), WATCH) {
            hub.words.lock().unwrap_or_else(|p| p.into_inner()).remove(&token);
            return Err(e);
        }
        Ok(ReadyWord { hub, token, fd, word })
    }

    /// Re-arms the one-shot registration before a sleep: the next time
    /// the descriptor is (or already is) readable, the word changes.
    pub fn arm(&self) {
        // Fails only if the registration is gone, which Drop alone does.
        let _ = epoll::modify(&self.hub.epoll, &self.fd, EventData::new_u64(self.token), WATCH);
    }

    /// The word to sleep on; it changes whenever an armed registration
    /// fires.
    pub fn word(&self) -> &AtomicU32 {
        &self.word
    }

    /// Whether the descriptor is readable (or hung up) now.
    pub fn is_ready(&self) -> bool {
        matches!(poll_readable(self.fd.as_fd()), Ok(n) if n > 0)
    }
}

/// One `poll` for readability (or hang-up) that does not wait: how many
/// descriptors are ready (0 or 1).
pub(crate) fn poll_readable(fd: BorrowedFd<'_>) -> Result<usize> {
    let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
    let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
    rustix::event::poll(&mut fds, Some(&zero))
}

/// Tells files apart: equal for two descriptors of one open file
/// (device and inode number), 0 when `fstat` fails.
pub fn identity(fd: BorrowedFd<'_>) -> u64 {
    rustix::fs::fstat(fd).map_or(0, |st| st.st_dev.rotate_left(40) ^ st.st_ino)
}

impl AsFd for ReadyWord {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for ReadyWord {
    fn drop(&mut self) {
        let _ = epoll::delete(&self.hub.epoll, &self.fd);
        self.hub.words.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_descriptor_becoming_readable_changes_the_word_and_wakes_its_sleeper() {
        let bell = crate::eventfd::EventFd::new().unwrap();
        let ready = ReadyWord::new(bell.as_fd()).unwrap();
        assert!(!ready.is_ready());
        ready.arm();
        let seen = ready.word().load(Ordering::SeqCst);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                bell.notify();
            });
            let until = Instant::now() + Duration::from_secs(30);
            while ready.word().load(Ordering::SeqCst) == seen && Instant::now() < until {
                crate::futex::wait(ready.word(), seen, Some(until));
            }
        });
        assert_ne!(ready.word().load(Ordering::SeqCst), seen, "woken by the bridge, not the deadline");
        assert!(ready.is_ready());
    }

    #[test]
    fn arming_a_ready_descriptor_reports_it_at_once_and_two_copies_coexist() {
        let bell = crate::eventfd::EventFd::new().unwrap();
        bell.notify();
        let a = ReadyWord::new(bell.as_fd()).unwrap();
        let b = ReadyWord::new(bell.as_fd()).unwrap();
        for r in [&a, &b] {
            r.arm();
            let until = Instant::now() + Duration::from_secs(30);
            while r.word().load(Ordering::SeqCst) == 0 && Instant::now() < until {
                crate::futex::wait(r.word(), 0, Some(until));
            }
            assert_ne!(r.word().load(Ordering::SeqCst), 0);
        }
    }
}
