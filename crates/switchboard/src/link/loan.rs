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
//! ## What it costs
//! Handing a sample over costs the same at any size (about a dozen system
//! calls: 22–28 µs per round trip at 64 B, 1 MiB and 16 MiB on the 2-core
//! VM, `switchboard bench --only shm_loan`). Writing it costs fresh pages:
//! each 4 KiB page is allocated and zeroed by the kernel on first touch,
//! several times dearer than writing warm memory, so a loan filled in full
//! is no faster than a copy through the ring (16 MiB filled at both ends:
//! 19.4 ms per round trip, against 6.8 ms for two copies through shared
//! memory). Loans pay where bytes are handed on without being rewritten
//! per message, or read only in part, and wherever the receiver must be
//! sure they cannot change. Pools that recycle samples (iceoryx2: 1.6 µs
//! at any size, 1.8 ms at 16 MiB filled) are faster because the publisher
//! keeps write access to memory its subscribers read, which a receiver
//! here never has to trust.
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

impl Loan {
    /// Allocates the loan's pages now, in one system call, rather than
    /// one page fault per 4 KiB as they are first written: call it before
    /// filling a large loan whole (measured in `bench/peers`: a 16 MiB
    /// round trip filled at both ends, 22.8 → 19.4 ms). An untouched loan
    /// costs nothing without it.
    ///
    /// # Errors
    /// `ENOMEM`; a kernel before 5.14 refuses it.
    pub fn prefault(&mut self) -> crate::Result<()> {
        Ok(self.0.prefault()?)
    }
}

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
