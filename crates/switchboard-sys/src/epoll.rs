//! A readiness set: many descriptors, one wait (`epoll(7)`).
//!
//! Each descriptor is added with a caller-chosen 64-bit token, which
//! [`Epoll::wait`] hands back for every descriptor that is ready.
//! Level-triggered: a descriptor still ready after the caller handled it is
//! reported again by the next wait.

use std::time::Duration;

use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;

use crate::Result;

/// An epoll instance (close-on-exec).
#[derive(Debug)]
pub struct Epoll(OwnedFd);

impl Epoll {
    /// Creates an empty set.
    ///
    /// # Errors
    /// `EMFILE`, `ENFILE`, `ENOMEM`.
    pub fn new() -> Result<Epoll> {
        epoll::create(CreateFlags::CLOEXEC).map(Epoll)
    }

    /// Watches `fd` for readability (and hang-up), reported as `token`.
    ///
    /// # Errors
    /// `EEXIST` when `fd` is already in the set, `ENOSPC` at the user's
    /// epoll watch limit.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> Result<()> {
        epoll::add(&self.0, fd, EventData::new_u64(token), EventFlags::IN)
    }

    /// Watches `fd`, a connected socket, for its peer's hang-up only (the
    /// peer closed its last copy, or died), reported as `token`. Data
    /// arriving does not report.
    ///
    /// # Errors
    /// As [`Epoll::add`].
    pub fn add_hangup(&self, fd: BorrowedFd<'_>, token: u64) -> Result<()> {
        epoll::add(&self.0, fd, EventData::new_u64(token), EventFlags::RDHUP | EventFlags::HUP)
    }

    /// Stops watching `fd`. Must be called before the last descriptor of
    /// a file that other processes also hold is closed here: the kernel
    /// keeps watching an open file description until every copy is closed.
    ///
    /// # Errors
    /// `ENOENT` when `fd` is not in the set.
    pub fn delete(&self, fd: BorrowedFd<'_>) -> Result<()> {
        epoll::delete(&self.0, fd)
    }

    /// Waits until some descriptors are ready or `timeout` passes (`None`:
    /// forever), and puts their tokens into `ready` (cleared first). An
    /// interrupted wait returns with `ready` empty.
    ///
    /// # Errors
    /// The kernel's `epoll_wait` error other than `EINTR`.
    pub fn wait(&self, ready: &mut Vec<u64>, timeout: Option<Duration>) -> Result<()> {
        ready.clear();
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        let ts =
            timeout.map(|t| rustix::event::Timespec { tv_sec: t.as_secs() as i64, tv_nsec: t.subsec_nanos() as i64 });
        match epoll::wait(&self.0, rustix::buffer::spare_capacity(&mut events), ts.as_ref()) {
            Ok(_) => {}
            Err(Errno::INTR) => return Ok(()),
            Err(e) => return Err(e),
        }
        ready.extend(events.iter().map(|e| e.data.u64()));
        Ok(())
    }
}

impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventfd::EventFd;

    #[test]
    fn reports_the_tokens_of_ready_descriptors() {
        let set = Epoll::new().unwrap();
        let (a, b) = (EventFd::new().unwrap(), EventFd::new().unwrap());
        set.add(a.as_fd(), 7).unwrap();
        set.add(b.as_fd(), 9).unwrap();
        let mut ready = Vec::new();
        set.wait(&mut ready, Some(Duration::ZERO)).unwrap();
        assert!(ready.is_empty());
        b.notify();
        set.wait(&mut ready, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(ready, [9]);
        set.delete(b.as_fd()).unwrap();
        set.wait(&mut ready, Some(Duration::ZERO)).unwrap();
        assert!(ready.is_empty(), "a deleted descriptor is no longer reported");
    }

    #[test]
    fn a_hangup_watch_reports_the_peers_close_not_its_data() {
        let set = Epoll::new().unwrap();
        let (a, b) = crate::socket::Conn::pair().unwrap();
        set.add_hangup(a.as_fd(), 3).unwrap();
        b.send(b"data", &[]).unwrap();
        let mut ready = Vec::new();
        set.wait(&mut ready, Some(Duration::ZERO)).unwrap();
        assert!(ready.is_empty(), "data is not a hang-up");
        drop(b);
        set.wait(&mut ready, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(ready, [3]);
    }
}
