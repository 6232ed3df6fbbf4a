//! Links: bidirectional, message-preserving connections between two processes.
//!
//! | link | transport | when |
//! |---|---|---|
//! | [`ShmLink`] | two SPSC byte rings in one sealed memfd, futex wake-ups | local, fastest |
//! | [`StreamLink`] | Unix or TCP stream, length-prefixed frames | remote, or a local fallback |
//! | `PipeLink` ([`crate::pipe::named::PipeLink`]) | a message-mode named pipe | classic pipe peers |
//!
//! With the `tokio` feature, `asyncio::AsyncShmLink` awaits a link's
//! doorbell ([`ShmLink::doorbell`]) instead of parking a thread.
//!
//! ## The contract (checked by one conformance suite over every link)
//! - Messages arrive whole, in order, exactly once; a zero-length message is a message.
//! - A message of any size up to [`Link::max_message`] is delivered (larger
//!   than a ring: streamed in chunks); a larger send is `InvalidParameter`
//!   and sends nothing.
//! - `send` blocks only while the peer's queue is full; on a
//!   [`ShmLink`], `send_deadline` gives up at its deadline and the peer
//!   receives nothing of that message.
//! - `recv_deadline` returns `Timeout` at the deadline and loses nothing: a
//!   later receive gets the message.
//! - When the peer is gone (closed, or killed by `kill -9`), messages it sent
//!   before are still delivered, then every call fails with `BrokenPipe` —
//!   never a hang.
//! - Bytes from the peer are untrusted: a malformed frame or ring state is
//!   `Malformed`, never a panic, UB or hang.

#[cfg(feature = "tokio")]
pub mod asyncio;
mod loan;
mod shm;
mod stream;

use std::time::Duration;

pub use self::loan::{Loan, Sample};
pub use self::shm::{ShmLink, ShmLinkListener, ShmLinkOptions};
pub use self::stream::{StreamLink, StreamLinkListener};
pub use switchboard_shm::ring::WaitMode;

use crate::error::Result;
use crate::time::Deadline;

/// Default largest message: 64 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

/// A bidirectional, message-preserving connection.
pub trait Link {
    /// Sends one message, blocking while the peer's queue is full.
    ///
    /// # Errors
    /// `InvalidParameter` for a message over [`Link::max_message`],
    /// `BrokenPipe` when the peer is gone.
    fn send(&mut self, msg: &[u8]) -> Result<()>;

    /// Sends one message, waiting for room only until `deadline`.
    /// `Timeout` means the message was not delivered: nothing of it, or
    /// (larger than a ring, part-way) a part the peer drops. By default
    /// (links whose sends cannot be taken back) the deadline is not
    /// honoured: as [`Link::send`].
    ///
    /// # Errors
    /// As [`Link::send`]; `Timeout` at the deadline.
    fn send_deadline(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        let _ = deadline;
        self.send(msg)
    }

    /// Receives one message into `buf` (replacing its contents), waiting
    /// until `deadline` ([`Deadline::NEVER`]: for good).
    ///
    /// # Errors
    /// `Timeout` at the deadline, `BrokenPipe` when the peer is gone and
    /// everything it sent was received, `Malformed` for bad peer bytes.
    fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()>;

    /// The largest message this link carries.
    fn max_message(&self) -> usize;

    /// Whether a receive may not have to wait: a cheap look (no system
    /// call) for a loop that spins over several links before it sleeps.
    /// `true` when the link cannot tell without one.
    fn ready(&self) -> bool {
        true
    }

    /// A descriptor that becomes readable when a message arrives after
    /// [`Link::arm_doorbell`], or the peer hangs up; `None` when the link
    /// has none (then the caller cannot sleep on several links at once).
    fn doorbell(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }

    /// Arms the doorbell before a sleep on it; `true` when there is no
    /// need to sleep (something is there already, or there is no bell).
    fn arm_doorbell(&mut self) -> bool {
        true
    }

    /// Whether the peer is known to be gone (closed its end, or its
    /// process died): a look, for a caller that learnt something changed
    /// and asks which link it was. `false` when the link cannot tell.
    fn peer_gone(&self) -> bool {
        false
    }

    /// Receives without waiting.
    ///
    /// # Errors
    /// As [`Link::recv_deadline`]; `Timeout` when nothing is there.
    fn try_recv(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.recv_deadline(buf, Deadline::now())
    }

    /// Receives, waiting forever.
    ///
    /// # Errors
    /// As [`Link::recv_deadline`].
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.recv_deadline(buf, Deadline::NEVER)
    }

    /// Receives, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Link::recv_deadline`].
    fn recv_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<()> {
        self.recv_deadline(buf, Deadline::after(timeout))
    }
}
