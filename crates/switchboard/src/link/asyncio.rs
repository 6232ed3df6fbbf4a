//! tokio for shared-memory links (feature `tokio`): [`AsyncShmLink`]
//! awaits its link's doorbell, so a receive that waits parks no thread —
//! the task sleeps in tokio's reactor until the peer rings the bell or
//! hangs up.
//!
//! Sends are the link's own: they return at once unless the peer's ring is
//! full (1 MiB by default), and then block the calling worker until there
//! is room; a peer that reads slowly should get its own task.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> switchboard::Result<()> {
//! use switchboard::link::{asyncio::AsyncShmLink, Link, ShmLink, ShmLinkOptions};
//! let (a, mut b) = ShmLink::pair(ShmLinkOptions::default())?;
//! let mut a = AsyncShmLink::new(a)?;
//! let echo = std::thread::spawn(move || {
//!     let mut buf = Vec::new();
//!     b.recv(&mut buf).and_then(|()| b.send(&buf))
//! });
//! a.send(b"hello")?;
//! let mut reply = Vec::new();
//! a.recv(&mut reply).await?;
//! assert_eq!(reply, b"hello");
//! echo.join().unwrap()?;
//! # Ok(()) }
//! ```

use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;

use super::{Link, ShmLink};
use crate::error::{Error, Result};

/// One receive through the doorbell.
struct Receive<'a> {
    link: &'a mut ShmLink,
    buf: &'a mut Vec<u8>,
}

impl crate::bell::Doorbelled for Receive<'_> {
    type Output = Result<()>;
    fn attempt(&mut self) -> Option<Result<()>> {
        match self.link.try_recv(self.buf) {
            Err(Error::Timeout) => None,
            other => Some(other),
        }
    }
    fn arm(&mut self) -> bool {
        self.link.arm_doorbell()
    }
}

/// A [`ShmLink`] whose receives are awaited (see the module docs).
#[derive(Debug)]
pub struct AsyncShmLink {
    link: ShmLink,
    /// A copy of the link's doorbell descriptor, registered with tokio.
    bell: AsyncFd<OwnedFd>,
}

impl AsyncShmLink {
    /// Wraps `link`; must be called inside a tokio runtime.
    ///
    /// # Errors
    /// When the doorbell cannot be made or registered (no runtime, out of
    /// descriptors).
    pub fn new(link: ShmLink) -> Result<AsyncShmLink> {
        let fd = link.doorbell()?.try_clone_to_owned()?;
        let bell = switchboard_sys::reactor::register_readable(fd)?;
        Ok(AsyncShmLink { link, bell })
    }

    /// Sends one message (see the module docs on a full ring).
    ///
    /// # Errors
    /// As [`Link::send`].
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.link.send(msg)
    }

    /// Receives one message into `buf`, awaiting it without a thread.
    /// Cancel-safe: a message is taken only when this returns it.
    ///
    /// # Errors
    /// `BrokenPipe` once the peer is gone and everything it sent was
    /// received, `Malformed`.
    pub async fn recv(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        crate::bell::until_rung(&self.bell, &mut Receive { link: &mut self.link, buf }).await?
    }

    /// The link itself, for its blocking calls.
    pub fn get_mut(&mut self) -> &mut ShmLink {
        &mut self.link
    }

    /// Unwraps the link.
    pub fn into_inner(self) -> ShmLink {
        self.link
    }
}
