//! Memory written once, then frozen by the kernel and handed over: the
//! zero-copy sample.
//!
//! A [`Draft`] is a fresh memfd mapped read-write in this process only
//! (nobody else holds its descriptor yet), so it is plain `&mut [u8]`.
//! [`Draft::freeze`] unmaps it and seals it against writes
//! (`F_SEAL_WRITE`: the kernel refuses it while a writable shared mapping
//! exists, and refuses every later write, writable mapping and resize);
//! the descriptor is then sent over a socket. [`Frozen::open`] checks the
//! seals and maps the memory read-only: since no process can change or
//! shrink those pages any more, they are plain `&[u8]`, with no copy, no
//! data race a hostile sender could start, and no `SIGBUS`.
//!
//! Nothing is shared that could be recycled behind a reader's back: each
//! sample is its own memfd, freed by the kernel when the last descriptor
//! and mapping are gone (a reader that never lets go holds only its own
//! sample, and a killed process leaves nothing behind). The price is a
//! handful of system calls per sample, whatever its size, and fresh pages
//! (zero-filled on first touch) for each one.
//!
//! # Safety
//!
//! Invariants of this module:
//! - A `Mapped` owns `ptr .. ptr + len`, a live shared mapping unmapped
//!   only in its `Drop`.
//! - A `Draft`'s memfd has never left this value (it is created here and
//!   only returned by `freeze`, after its mapping is gone): no other
//!   mapping of it can write, so `&mut self` is exclusive access.
//! - A `Frozen` is only made from a memfd whose seals forbid writing and
//!   shrinking (checked before mapping): its bytes can never change and
//!   never disappear while mapped, so `&[u8]` over them is sound.

#![allow(unsafe_code)]

use std::ptr::NonNull;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{fcntl_add_seals, fcntl_get_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
use rustix::io::Errno;
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

use crate::Result;

/// The seals a frozen sample must carry.
const FROZEN: SealFlags = SealFlags::WRITE.union(SealFlags::SHRINK).union(SealFlags::GROW).union(SealFlags::SEAL);

/// A mapping owned by one value: `ptr .. ptr + len`, unmapped on drop.
#[derive(Debug)]
struct Mapped {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a mapping is plain memory, not tied to the thread that made it.
unsafe impl Send for Mapped {}
// SAFETY: shared access is read-only (`&[u8]`); writes need `&mut`.
unsafe impl Sync for Mapped {}

impl Mapped {
    fn map<Fd: AsFd>(fd: Fd, len: usize, prot: ProtFlags) -> Result<Option<Mapped>> {
        if len == 0 {
            return Ok(None);
        }
        // SAFETY: a fresh mapping chosen by the kernel (null hint) aliases
        // no Rust object; the result is checked before use.
        let ptr = unsafe { mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0)? };
        Ok(Some(Mapped { ptr: NonNull::new(ptr.cast::<u8>()).ok_or(Errno::NOMEM)?, len }))
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: `ptr .. ptr + len` is the mapping this value owns; no
        // borrow of it outlives `self`.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn bytes(m: &Option<Mapped>) -> &[u8] {
    match m {
        // SAFETY: the mapping is live for `m`'s lifetime and `len` long;
        // for a Draft nobody else can write it (the descriptor is ours
        // alone), for a Frozen nobody can (sealed, checked on open).
        Some(m) => unsafe { std::slice::from_raw_parts(m.ptr.as_ptr(), m.len) },
        None => &[],
    }
}

/// A sample being written: `len` bytes, zero-filled, for this process only.
#[derive(Debug)]
pub struct Draft {
    fd: OwnedFd,
    map: Option<Mapped>,
}

impl Draft {
    /// A zero-filled draft of `len` bytes (pages are allocated as they are
    /// first written: an untouched draft costs no memory).
    ///
    /// # Errors
    /// `ENOMEM`, `EMFILE`, `EINVAL` for a length the kernel refuses.
    pub fn new(len: usize) -> Result<Draft> {
        let fd = memfd_create("switchboard-sample", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        ftruncate(&fd, len as u64)?;
        let map = Mapped::map(&fd, len, ProtFlags::READ | ProtFlags::WRITE)?;
        Ok(Draft { fd, map })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len)
    }

    /// Whether the draft is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Allocates every page now, in one system call
    /// (`MADV_POPULATE_WRITE`), instead of one fault per 4 KiB page as
    /// they are first written: for a draft about to be filled whole.
    ///
    /// # Errors
    /// `ENOMEM`; `EINVAL` on kernels before 5.14.
    pub fn prefault(&mut self) -> Result<()> {
        match &self.map {
            // SAFETY: advice on the mapping this draft owns; populating
            // changes no byte (the pages are zero either way).
            Some(m) => unsafe {
                rustix::mm::madvise(m.ptr.as_ptr().cast(), m.len, rustix::mm::Advice::LinuxPopulateWrite)
            },
            None => Ok(()),
        }
    }

    /// Unmaps the draft and seals it: from now on nobody can change or
    /// resize it. Returns the descriptor to send.
    ///
    /// # Errors
    /// `EBUSY` if a writable mapping of it survives (cannot happen: the
    /// only one was this draft's), the kernel's `fcntl` error.
    pub fn freeze(mut self) -> Result<OwnedFd> {
        drop(self.map.take());
        fcntl_add_seals(&self.fd, FROZEN)?;
        Ok(self.fd)
    }
}

impl std::ops::Deref for Draft {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        bytes(&self.map)
    }
}

impl std::ops::DerefMut for Draft {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.map {
            // SAFETY: as in `bytes`, and `&mut self` makes this the only
            // borrow of the mapping.
            Some(m) => unsafe { std::slice::from_raw_parts_mut(m.ptr.as_ptr(), m.len) },
            None => &mut [],
        }
    }
}

/// A received sample: read-only memory nobody can change any more.
#[derive(Debug)]
pub struct Frozen {
    map: Option<Mapped>,
}

impl Frozen {
    /// Maps the first `len` bytes of a frozen sample received from a peer.
    ///
    /// # Errors
    /// `EPERM` when the descriptor is not a memfd sealed against writes and
    /// resizing (a peer could change the bytes under the reader), `EINVAL`
    /// when it is shorter than `len`, the kernel's `mmap` error.
    pub fn open(fd: OwnedFd, len: usize) -> Result<Frozen> {
        let seals = fcntl_get_seals(&fd).map_err(|_| Errno::PERM)?;
        if !seals.contains(SealFlags::WRITE | SealFlags::SHRINK) {
            return Err(Errno::PERM);
        }
        if crate::memfd::size(&fd)? < len as u64 {
            return Err(Errno::INVAL);
        }
        Ok(Frozen { map: Mapped::map(&fd, len, ProtFlags::READ)? })
    }
}

impl std::ops::Deref for Frozen {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        bytes(&self.map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_sample_reads_what_was_written_and_refuses_every_write() {
        let mut d = Draft::new(10_000).unwrap();
        d[..5].copy_from_slice(b"hello");
        d[9_999] = 7;
        let fd = d.freeze().unwrap();
        let copy = crate::memfd::duplicate(&fd).unwrap();
        let f = Frozen::open(fd, 10_000).unwrap();
        assert_eq!(&f[..5], b"hello");
        assert_eq!(f[9_999], 7);
        // Whoever else holds the descriptor can neither write, map it
        // writable, nor shrink it.
        assert_eq!(rustix::io::write(&copy, b"x").unwrap_err(), Errno::PERM);
        assert_eq!(Mapped::map(&copy, 4096, ProtFlags::READ | ProtFlags::WRITE).unwrap_err(), Errno::PERM);
        assert_eq!(ftruncate(&copy, 0).unwrap_err(), Errno::PERM);
        assert_eq!(f[9_999], 7);
    }

    #[test]
    fn unsealed_or_short_memory_is_refused() {
        let open = Draft::new(4096).unwrap();
        let fd = crate::memfd::duplicate(&open.fd).unwrap();
        assert_eq!(Frozen::open(fd, 4096).unwrap_err(), Errno::PERM, "still writable");
        let sealed = Draft::new(100).unwrap().freeze().unwrap();
        assert_eq!(Frozen::open(sealed, 101).unwrap_err(), Errno::INVAL, "shorter than claimed");
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert_eq!(Frozen::open(r, 1).unwrap_err(), Errno::PERM, "not a memfd");
        let empty = Frozen::open(Draft::new(0).unwrap().freeze().unwrap(), 0).unwrap();
        assert!(empty.is_empty());
    }
}
