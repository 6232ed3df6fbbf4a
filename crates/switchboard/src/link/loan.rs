//! Zero-copy samples for [`ShmLink`](super::ShmLink): a [`Loan`] to fill
//! and send, a [`Sample`] to read where it was written.
//!
//! A loan is fresh shared memory that only the sender can reach; sending
//! it freezes it (the kernel then refuses every write and resize, to
//! everyone) and hands its descriptor to the receiver, whose [`Sample`]
//! maps those very pages read-only. Nothing is copied, whatever the size,
//! and nothing is recycled: a receiver that keeps a sample forever keeps
//! only that sample's memory, and can neither block the sender nor see
//! its bytes change (see `switchboard_sys::sealed`).
//!
//! ```
//! use switchboard::link::{Link, ShmLink, ShmLinkOptions};
//! use switchboard::time::Deadline;
//!
//! let (mut a, mut b) = ShmLink::pair(ShmLinkOptions::default())?;
//! let mut loan = a.loan(4 << 20)?; // 4 MiB, larger than the ring
//! loan[..5].copy_from_slice(b"frame");
//! a.send_loan(loan)?;
//! let sample = b.recv_borrowed(Deadline::NEVER)?;
//! assert!(sample.is_shared());
//! assert_eq!((&sample[..5], sample.len()), (&b"frame"[..], 4 << 20));
//! # Ok::<(), switchboard::Error>(())
//! ```

use switchboard_sys::sealed::{Draft, Frozen};

/// A buffer in shared memory, zero-filled, to fill and then send with
/// [`ShmLink::send_loan`](super::ShmLink::send_loan). Only this process
/// can reach it until then; dropping it unsent frees it.
#[derive(Debug)]
pub struct Loan(pub(super) Draft);

impl std::ops::Deref for Loan {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::DerefMut for Loan {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// A received message, read where the sender wrote it when it came as a
/// [`Loan`] (else copied out of the ring as usual). Its bytes cannot
/// change while it lives; dropping it releases the memory.
#[derive(Debug)]
pub struct Sample(pub(super) Body);

#[derive(Debug)]
pub(super) enum Body {
    Copied(Vec<u8>),
    Shared(Frozen),
}

impl Sample {
    /// Whether the bytes are the sender's loaned memory (not a copy).
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Body::Shared(_))
    }

    /// The bytes as an owned vector (a copy for a shared sample).
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Body::Copied(v) => v,
            Body::Shared(f) => f.to_vec(),
        }
    }
}

impl std::ops::Deref for Sample {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Body::Copied(v) => v,
            Body::Shared(f) => f,
        }
    }
}
