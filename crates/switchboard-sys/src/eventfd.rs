//! A counter fd used to wake a `poll` loop from another thread.

use rustix::event::{eventfd, EventfdFlags};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::Result;

/// An `eventfd(2)` in non-blocking, close-on-exec mode.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// Creates a counter starting at zero.
    ///
    /// # Errors
    /// The kernel's error (`EMFILE`, `ENOMEM`).
    pub fn new() -> Result<Self> {
        eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map(Self)
    }

    /// Adopts a descriptor received from another process, after checking
    /// it is an eventfd: anything else (a pipe the peer never reads, say)
    /// could block or mislead the writer.
    ///
    /// # Errors
    /// `EINVAL` for a descriptor that is not an eventfd.
    pub fn adopt(fd: OwnedFd) -> Result<Self> {
        use rustix::fd::AsRawFd;
        let target =
            std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|_| rustix::io::Errno::INVAL)?;
        if target.as_os_str() != "anon_inode:[eventfd]" {
            return Err(rustix::io::Errno::INVAL);
        }
        // Never block in notify, whatever the sender set.
        let flags = rustix::fs::fcntl_getfl(&fd)?;
        rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)?;
        Ok(Self(fd))
    }

    /// Another descriptor for the same counter (close-on-exec).
    ///
    /// # Errors
    /// `EMFILE`.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self(rustix::io::fcntl_dupfd_cloexec(&self.0, 0)?))
    }

    /// Adds one to the counter, making the fd readable.
    pub fn notify(&self) {
        // A full counter (2^64 - 2) is already readable: nothing is lost.
        let _ = rustix::io::write(&self.0, &1u64.to_ne_bytes());
    }

    /// Resets the counter to zero.
    pub fn drain(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.0, &mut buf);
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adopt_takes_eventfds_only() {
        let e = EventFd::new().unwrap();
        let copy = EventFd::adopt(e.try_clone().unwrap().0).unwrap();
        copy.notify();
        let (r, _w) = crate::pipe::pipe().unwrap();
        assert!(EventFd::adopt(r).is_err(), "a pipe is not a doorbell");
        let file = rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        assert!(EventFd::adopt(file).is_err());
    }
}
