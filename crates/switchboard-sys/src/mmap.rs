//! Mapped regions of a file descriptor, with race-free, fault-guarded access.
//!
//! A [`Region`] is memory another process may write at any moment, so it never
//! hands out `&[u8]`/`&mut [u8]`: bytes move in and out through
//! [`Region::read`] and [`Region::write`], which copy with relaxed atomic
//! loads and stores (plain `mov`s on x86-64, but defined behaviour under the
//! Rust memory model when a peer writes concurrently), and single words are
//! reached as atomics.
//!
//! # Faults
//!
//! A file-backed mapping raises `SIGBUS` when someone truncates the file under
//! it. Accesses through [`Region::read`]/[`Region::write`] are *guarded*: a
//! process-wide `SIGBUS` handler recognises a fault inside the range that the
//! current thread is copying, maps a zero page over the lost page so the copy
//! can finish, and the accessor returns [`AccessError::Fault`]. The region is
//! poisoned from then on (every later access fails the same way). A fault
//! anywhere else is passed to the previously installed handler, or kills the
//! process as it would have without switchboard.
//!
//! # Safety
//!
//! Invariants of this module:
//! - `Region::ptr .. ptr+len` is a live mapping owned by the `Region` and
//!   unmapped only in `Drop`.
//! - Every access is bounds-checked against `len` before any pointer is formed.
//! - Memory is only touched through atomics (`AtomicU8`/`AtomicU64`), which
//!   are valid for any bit pattern and for concurrent access.

#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Once;

use rustix::fd::AsFd;
use rustix::mm::{madvise, mmap, msync, munmap, Advice, MapFlags, MsyncFlags, ProtFlags};

use crate::Result;

/// How a region may be accessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Read only; writes are refused with [`AccessError::ReadOnly`].
    Read,
    /// Read and write, shared with every other mapping of the same object.
    ReadWrite,
    /// Read and write, but writes stay private to this mapping.
    CopyOnWrite,
}

/// Why an access to a [`Region`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// `offset + len` lies outside the region.
    OutOfBounds,
    /// A write to a read-only region.
    ReadOnly,
    /// The backing file shrank under the mapping (`SIGBUS` was caught).
    Fault,
}

/// A shared or private mapping of (part of) a file descriptor.
#[derive(Debug)]
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    prot: Protection,
    poisoned: AtomicBool,
}

// SAFETY: the region is plain memory accessed only through atomics; the
// pointer is not tied to the creating thread.
unsafe impl Send for Region {}
// SAFETY: see `Send`; all shared access goes through atomic operations.
unsafe impl Sync for Region {}

/// The kernel's page size.
pub fn page_size() -> usize {
    rustix::param::page_size()
}

impl Region {
    /// Maps `len` bytes of `fd` starting at `offset` (a multiple of the page size).
    ///
    /// # Errors
    /// `EINVAL` for a zero length or unaligned offset, `EACCES` when the fd's
    /// open mode does not allow `prot`, `ENOMEM`.
    pub fn map<Fd: AsFd>(fd: Fd, offset: u64, len: usize, prot: Protection) -> Result<Region> {
        install_sigbus_guard();
        let (flags, map) = match prot {
            Protection::Read => (ProtFlags::READ, MapFlags::SHARED),
            Protection::ReadWrite => (ProtFlags::READ | ProtFlags::WRITE, MapFlags::SHARED),
            Protection::CopyOnWrite => (ProtFlags::READ | ProtFlags::WRITE, MapFlags::PRIVATE),
        };
        // SAFETY: a fresh mapping chosen by the kernel (null hint) aliases no
        // Rust object; the result is checked before use.
        let ptr = unsafe { mmap(std::ptr::null_mut(), len, flags, map, fd, offset)? };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(rustix::io::Errno::NOMEM)?;
        Ok(Region { ptr, len, prot, poisoned: AtomicBool::new(false) })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (never true for a mapped region).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The protection the region was mapped with.
    pub fn protection(&self) -> Protection {
        self.prot
    }

    /// Base address, for layers that place `#[repr(C)]` atomics in the region.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Whether an earlier access faulted; a poisoned region refuses all access.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
    }

    fn check(&self, offset: usize, len: usize) -> std::result::Result<(), AccessError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {}
            _ => return Err(AccessError::OutOfBounds),
        }
        if self.is_poisoned() {
            return Err(AccessError::Fault);
        }
        Ok(())
    }

    /// The 4-byte-aligned word at `offset` as an atomic, or `None` when out of
    /// bounds or misaligned. Atomics are valid for any bit pattern and for
    /// concurrent access by other processes.
    pub fn atomic_u32(&self, offset: usize) -> Option<&AtomicU32> {
        self.check(offset, 4).ok()?;
        if offset % 4 != 0 || self.prot == Protection::Read {
            return None;
        }
        // SAFETY: in bounds and aligned (checked; the base is page-aligned),
        // the borrow is tied to `self`, which keeps the mapping alive.
        Some(unsafe { AtomicU32::from_ptr(self.as_ptr().add(offset).cast()) })
    }

    /// The 4-byte-aligned word at `offset` as a futex word to load, sleep
    /// on and wake — also in a read-only mapping, since nothing can store
    /// through it; `None` when out of bounds or misaligned.
    pub fn watch_u32(&self, offset: usize) -> Option<crate::futex::WatchWord<'_>> {
        self.check(offset, 4).ok()?;
        if offset % 4 != 0 {
            return None;
        }
        // SAFETY: in bounds and aligned; the borrow is tied to `self`; the
        // `WatchWord` only loads, waits and wakes, none of which writes, so
        // it is sound on read-only memory too.
        Some(crate::futex::WatchWord::new(unsafe { AtomicU32::from_ptr(self.as_ptr().add(offset).cast()) }))
    }

    /// Loads the 4-byte-aligned word at `offset` (Acquire), also from a
    /// read-only mapping; `None` when out of bounds or misaligned.
    pub fn load_u32(&self, offset: usize) -> Option<u32> {
        self.check(offset, 4).ok()?;
        if offset % 4 != 0 {
            return None;
        }
        // SAFETY: in bounds and aligned; an atomic load of a native word
        // does not write, so it is sound on read-only memory as well.
        Some(unsafe { AtomicU32::from_ptr(self.as_ptr().add(offset).cast()) }.load(Ordering::Acquire))
    }

    /// The 8-byte-aligned word at `offset` as an atomic (see [`Region::atomic_u32`]).
    pub fn atomic_u64(&self, offset: usize) -> Option<&AtomicU64> {
        self.check(offset, 8).ok()?;
        if offset % 8 != 0 || self.prot == Protection::Read {
            return None;
        }
        // SAFETY: as in `atomic_u32`.
        Some(unsafe { AtomicU64::from_ptr(self.as_ptr().add(offset).cast()) })
    }

    /// Copies bytes out as fast as the CPU can (`rep movsb` from 256 bytes
    /// on). Unlike [`Region::read`], an aligned word a peer writes meanwhile
    /// may be seen half old, half new; use it where a protocol guarantees
    /// that nobody writes the bytes being copied (ring records).
    ///
    /// # Errors
    /// As [`Region::read`].
    pub fn read_bulk(&self, offset: usize, buf: &mut [u8]) -> std::result::Result<(), AccessError> {
        if buf.len() < BULK {
            return self.read(offset, buf);
        }
        self.check(offset, buf.len())?;
        // SAFETY: `offset..+len` is in bounds (checked), `buf` is ours.
        self.guarded(offset, buf.len(), |base| unsafe { bulk_copy(buf.as_mut_ptr(), base, buf.len()) })
    }

    /// Copies bytes in as fast as the CPU can (see [`Region::read_bulk`]).
    ///
    /// # Errors
    /// As [`Region::write`].
    pub fn write_bulk(&self, offset: usize, data: &[u8]) -> std::result::Result<(), AccessError> {
        if data.len() < BULK {
            return self.write(offset, data);
        }
        if self.prot == Protection::Read {
            return Err(AccessError::ReadOnly);
        }
        self.check(offset, data.len())?;
        // SAFETY: in bounds (checked) and writable (checked); `data` is ours.
        self.guarded(offset, data.len(), |base| unsafe { bulk_copy(base, data.as_ptr(), data.len()) })
    }

    /// Copies `buf.len()` bytes starting at `offset` out of the region.
    ///
    /// # Errors
    /// [`AccessError::OutOfBounds`], or [`AccessError::Fault`] when the
    /// backing file shrank under the mapping.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> std::result::Result<(), AccessError> {
        self.check(offset, buf.len())?;
        self.guarded(offset, buf.len(), |base| {
            for_each_chunk(base, buf.len(), |pos, width| match width {
                8 => {
                    // SAFETY: `base+pos` is 8-aligned and in bounds (for_each_chunk).
                    let v = unsafe { AtomicU64::from_ptr(base.add(pos).cast()) }.load(Ordering::Relaxed);
                    buf[pos..pos + 8].copy_from_slice(&v.to_ne_bytes());
                }
                _ => {
                    // SAFETY: `base+pos` is in bounds (for_each_chunk).
                    buf[pos] = unsafe { AtomicU8::from_ptr(base.add(pos)) }.load(Ordering::Relaxed);
                }
            })
        })
    }

    /// Copies `data` into the region starting at `offset`.
    ///
    /// # Errors
    /// [`AccessError::ReadOnly`], [`AccessError::OutOfBounds`], or
    /// [`AccessError::Fault`] when the backing file shrank under the mapping.
    pub fn write(&self, offset: usize, data: &[u8]) -> std::result::Result<(), AccessError> {
        if self.prot == Protection::Read {
            return Err(AccessError::ReadOnly);
        }
        self.check(offset, data.len())?;
        self.guarded(offset, data.len(), |base| {
            for_each_chunk(base, data.len(), |pos, width| match width {
                8 => {
                    let v = u64::from_ne_bytes(data[pos..pos + 8].try_into().expect("8 bytes"));
                    // SAFETY: `base+pos` is 8-aligned and in bounds (for_each_chunk).
                    unsafe { AtomicU64::from_ptr(base.add(pos).cast()) }.store(v, Ordering::Relaxed);
                }
                _ => {
                    // SAFETY: `base+pos` is in bounds (for_each_chunk).
                    unsafe { AtomicU8::from_ptr(base.add(pos)) }.store(data[pos], Ordering::Relaxed);
                }
            })
        })
    }

    /// Writes the dirty pages of `offset..offset+len` to the backing file and
    /// waits for the write (`msync(MS_SYNC)`).
    ///
    /// # Errors
    /// `EINVAL` for a range outside the region, `EIO` from the file system.
    pub fn flush(&self, offset: usize, len: usize) -> Result<()> {
        if self.check(offset, len).is_err() {
            return Err(rustix::io::Errno::INVAL);
        }
        let page = page_size();
        let start = offset - offset % page;
        let len = (offset + len - start).max(1);
        // SAFETY: `start..start+len` lies inside our own live mapping
        // (page-rounded down from a checked offset; msync accepts a tail
        // shorter than a page).
        unsafe { msync(self.as_ptr().add(start).cast::<c_void>(), len, MsyncFlags::SYNC) }
    }

    /// Faults every page of the region in now (`MADV_POPULATE_WRITE`, or
    /// `MADV_POPULATE_READ` for a read-only region), so that the first touch
    /// of each page later costs no page fault — for rings, whose first pass
    /// through fresh pages would otherwise put a fault every few messages.
    /// Kernels before 5.14 lack it: then this does nothing.
    ///
    /// # Errors
    /// `ENOMEM`/`EFAULT` when the memory cannot be provided (e.g. the file
    /// behind it was truncated).
    pub fn populate(&self) -> Result<()> {
        let advice = match self.prot {
            Protection::Read => Advice::LinuxPopulateRead,
            Protection::ReadWrite | Protection::CopyOnWrite => Advice::LinuxPopulateWrite,
        };
        // SAFETY: the whole range is our own live mapping; populating
        // neither changes its contents nor unmaps anything.
        match unsafe { madvise(self.as_ptr().cast::<c_void>(), self.len, advice) } {
            Err(rustix::io::Errno::INVAL) => Ok(()),
            other => other,
        }
    }

    fn guarded(&self, offset: usize, len: usize, copy: impl FnOnce(*mut u8)) -> std::result::Result<(), AccessError> {
        // SAFETY: offset was bounds-checked by the caller.
        let base = unsafe { self.as_ptr().add(offset) };
        GUARD.with(|g| g.set(Guard { start: base as usize, end: base as usize + len, faulted: false }));
        copy(base);
        let faulted = GUARD.with(|g| g.replace(Guard::IDLE).faulted);
        if faulted {
            self.poisoned.store(true, Ordering::Relaxed);
            return Err(AccessError::Fault);
        }
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: we own the mapping (module invariant) and nothing borrows it
        // past the `Region`'s lifetime.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// From this many bytes on, copies use the CPU's string-copy instruction.
const BULK: usize = 256;

/// Copies `len` bytes with `rep movsb` (x86-64; fast-string microcode makes
/// it as fast as a vectorised memcpy for large copies).
///
/// Another process may write the shared side while we copy. Rust has no
/// racy-but-defined `memcpy`; the inline assembly is opaque to the compiler
/// and its effect is that of a sequence of relaxed single-byte atomic
/// accesses (each byte access is indivisible on x86), which is defined
/// behaviour under concurrent writes: the reader may see a mix of old and
/// new bytes, never UB. Callers validate what they read.
///
/// # Safety
/// `dst..dst+len` must be writable and `src..src+len` readable for the
/// duration of the call; the ranges must not overlap.
#[cfg(target_arch = "x86_64")]
unsafe fn bulk_copy(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller guarantees both ranges; `rep movsb` with the
    // direction flag clear (guaranteed by the ABI) touches exactly them.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Portable fallback: relaxed atomic byte copies.
///
/// # Safety
/// As the x86-64 version.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn bulk_copy(dst: *mut u8, src: *const u8, len: usize) {
    for i in 0..len {
        // SAFETY: in bounds per the caller's contract.
        unsafe {
            AtomicU8::from_ptr(dst.add(i))
                .store(AtomicU8::from_ptr(src.add(i) as *mut u8).load(Ordering::Relaxed), Ordering::Relaxed)
        };
    }
}

/// Walks `len` bytes from `base` in the widest aligned steps: single bytes up
/// to 8-byte alignment, then 8-byte words, then the tail in bytes.
fn for_each_chunk(base: *mut u8, len: usize, mut f: impl FnMut(usize, usize)) {
    let mut pos = 0;
    while pos < len {
        let addr = base as usize + pos;
        let width = if addr % 8 == 0 && len - pos >= 8 { 8 } else { 1 };
        f(pos, width);
        pos += width;
    }
}

#[derive(Clone, Copy)]
struct Guard {
    start: usize,
    end: usize,
    faulted: bool,
}

impl Guard {
    const IDLE: Guard = Guard { start: 0, end: 0, faulted: false };
}

thread_local! {
    // Const-initialised and without a destructor, so reading it from the
    // signal handler touches only this thread's TLS block.
    static GUARD: Cell<Guard> = const { Cell::new(Guard::IDLE) };
}

static INSTALL: Once = Once::new();
static mut PREVIOUS: Option<libc::sigaction> = None;

fn install_sigbus_guard() {
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
        // `on_sigbus` has the SA_SIGINFO signature; PREVIOUS is written once,
        // here, before the handler can run.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &action, &mut old) == 0 {
                *std::ptr::addr_of_mut!(PREVIOUS) = Some(old);
            }
        }
    });
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let ours = GUARD.with(|g| {
        let guard = g.get();
        let hit = addr >= guard.start && addr < guard.end;
        if hit {
            g.set(Guard { faulted: true, ..guard });
        }
        hit
    });
    if ours {
        let page = page_size();
        let at = addr - addr % page;
        // SAFETY: replaces one page of the faulting mapping — which this
        // thread is copying and which the Region will refuse to touch again
        // (poisoned) — with zeroes so the interrupted copy can complete.
        unsafe {
            libc::mmap(
                at as *mut c_void,
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            );
        }
        return;
    }
    chain_previous(sig, info, ctx);
}

fn chain_previous(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: PREVIOUS was written before the handler was installed and never
    // again; the previous handler is called with the arguments we received.
    unsafe {
        match *std::ptr::addr_of!(PREVIOUS) {
            Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN => {
                if old.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                        std::mem::transmute(old.sa_sigaction);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(old.sa_sigaction);
                    f(sig);
                }
            }
            _ => {
                // Default action: restore it and return; the faulting
                // instruction runs again and the kernel kills the process.
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_copies_round_trip_at_odd_offsets() {
        let fd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 65536).unwrap();
        let region = Region::map(&fd, 0, 65536, Protection::ReadWrite).unwrap();
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
        region.write_bulk(7, &data).unwrap();
        let mut out = vec![0u8; 5000];
        region.read_bulk(7, &mut out).unwrap();
        assert_eq!(out, data);
        region.read(7, &mut out).unwrap();
        assert_eq!(out, data, "bulk and word copies agree");
        assert_eq!(region.write_bulk(65000, &data), Err(AccessError::OutOfBounds));
    }

    #[test]
    fn shrinking_the_file_under_a_view_is_an_error_not_sigbus() {
        let fd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let page = page_size();
        rustix::fs::ftruncate(&fd, 2 * page as u64).unwrap();
        let region = Region::map(&fd, 0, 2 * page, Protection::ReadWrite).unwrap();
        region.write(page, b"hello").unwrap();
        rustix::fs::ftruncate(&fd, 0).unwrap();
        let mut buf = [0u8; 5];
        assert_eq!(region.read(page, &mut buf), Err(AccessError::Fault));
        assert_eq!(region.write(0, b"x"), Err(AccessError::Fault), "poisoned after a fault");
    }

    #[test]
    fn unaligned_copies_round_trip() {
        let fd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        let region = Region::map(&fd, 0, 4096, Protection::ReadWrite).unwrap();
        let data: Vec<u8> = (0..100u8).collect();
        region.write(3, &data).unwrap();
        let mut out = vec![0u8; 100];
        region.read(3, &mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(region.read(4000, &mut out), Err(AccessError::OutOfBounds));
    }
}
