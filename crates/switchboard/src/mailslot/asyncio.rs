//! tokio for mailslot servers (feature `tokio`): [`AsyncMailslot`] awaits
//! the mailslot's doorbell, so a read that waits parks no thread.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> switchboard::Result<()> {
//! use switchboard::mailslot::{asyncio::AsyncMailslot, Mailslot, MailslotClient};
//! let name = format!("doc-async-{}", std::process::id());
//! let slot = AsyncMailslot::new(Mailslot::create(&name, 0, std::time::Duration::ZERO)?)?;
//! let writer = std::thread::spawn(move || MailslotClient::open(&name)?.write(b"hello"));
//! let mut buf = [0u8; 64];
//! let got = slot.read_from(&mut buf).await?;
//! assert_eq!(&buf[..got.len], b"hello");
//! writer.join().unwrap()?;
//! # Ok(()) }
//! ```

use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;

use super::{Mailslot, Received};
use crate::error::{Error, Result};

/// One read through the doorbell.
struct Read<'a> {
    slot: &'a Mailslot,
    buf: &'a mut [u8],
}

impl crate::bell::Doorbelled for Read<'_> {
    type Output = Result<Received>;
    fn attempt(&mut self) -> Option<Result<Received>> {
        match self.slot.try_read_from(self.buf) {
            Err(Error::Timeout) => None,
            other => Some(other),
        }
    }
    fn arm(&mut self) -> bool {
        self.slot.arm_doorbell()
    }
}

/// A [`Mailslot`] whose reads are awaited.
#[derive(Debug)]
pub struct AsyncMailslot {
    slot: Mailslot,
    bell: AsyncFd<OwnedFd>,
}

impl AsyncMailslot {
    /// Wraps `slot`; must be called inside a tokio runtime.
    ///
    /// # Errors
    /// When the doorbell cannot be registered (no runtime, out of descriptors).
    pub fn new(slot: Mailslot) -> Result<AsyncMailslot> {
        let fd = slot.doorbell().try_clone_to_owned()?;
        let bell = switchboard_sys::reactor::register_readable(fd)?;
        Ok(AsyncMailslot { slot, bell })
    }

    /// Reads the next message, awaiting one without a thread (the
    /// mailslot's read timeout does not apply). Cancel-safe: a message is
    /// taken only when this returns it.
    ///
    /// # Errors
    /// `InsufficientBuffer` (the message stays queued), `Malformed`.
    pub async fn read_from(&self, buf: &mut [u8]) -> Result<Received> {
        crate::bell::until_rung(&self.bell, &mut Read { slot: &self.slot, buf }).await?
    }

    /// The mailslot itself.
    pub fn get_ref(&self) -> &Mailslot {
        &self.slot
    }
}
