//! Shared segments: a mapped memfd with a checked header.
//!
//! Layout: a 64-byte [`Header`] at offset 0, the object at [`OBJECT_OFFSET`].
//! The creator writes the header before the segment's descriptor is shared
//! with anyone; an opener checks magic, version, kind and size and refuses
//! the segment with a [`SegmentError`] if any is wrong.
//!
//! # Safety
//!
//! [`Segment::object`] forms a `&T` into the mapping. That is sound because
//! `T: Shared` (every bit pattern valid, interior mutability only through
//! atomics), the offset is bounds- and alignment-checked, and the reference
//! cannot outlive the `Segment` that owns the mapping.

#![allow(unsafe_code)]

use std::fmt;

use switchboard_sys::mmap::{Protection, Region};
use switchboard_sys::{AsFd, Errno, OwnedFd};

/// "SWBOARD1" in little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SWBOARD1");
/// Bumped whenever any shared layout changes.
pub const LAYOUT_VERSION: u32 = 1;
/// Where the object starts.
pub const OBJECT_OFFSET: usize = 64;

/// What a segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// A named mutex.
    Mutex = 1,
    /// A named semaphore.
    Semaphore = 2,
    /// A named event.
    Event = 3,
    /// A shared-memory link: two byte rings.
    Link = 4,
    /// A completion port's packet queue.
    Port = 5,
    /// A mailslot's message queue.
    Mailslot = 6,
    /// A waitable timer.
    Timer = 7,
    /// A message receiver's status (what its senders may read).
    Receiver = 8,
}

/// A type that may be placed in shared memory.
///
/// # Safety
///
/// Implementors are `#[repr(C)]`, contain only integers and atomics (no
/// pointers, references, descriptors or heap), are valid for every bit
/// pattern including all zeroes, and mutate only through atomics.
pub unsafe trait Shared: Sized + Sync {}

/// The segment header.
#[repr(C)]
#[derive(Debug)]
pub struct Header {
    magic: crate::sync::AtomicU64,
    version: crate::sync::AtomicU32,
    kind: crate::sync::AtomicU32,
    size: crate::sync::AtomicU64,
}

// SAFETY: integers/atomics only, repr(C), any bit pattern valid.
unsafe impl Shared for Header {}

/// Why a segment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentError {
    /// The first 8 bytes are not [`MAGIC`].
    BadMagic,
    /// A layout version this build does not understand.
    BadVersion(u32),
    /// The segment holds another kind of object.
    WrongKind(u32),
    /// The header's size disagrees with the descriptor's, or is too small.
    BadSize,
    /// The descriptor's size is not sealed, so its sender could still
    /// shrink it under us: not a segment switchboard made.
    Unsealed,
    /// A system call failed.
    Sys(Errno),
}

impl fmt::Display for SegmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentError::BadMagic => write!(f, "not a switchboard segment (bad magic)"),
            SegmentError::BadVersion(v) => write!(f, "segment layout version {v}, expected {LAYOUT_VERSION}"),
            SegmentError::WrongKind(k) => write!(f, "segment holds object kind {k}"),
            SegmentError::BadSize => write!(f, "segment size does not match its header"),
            SegmentError::Unsealed => write!(f, "the segment's size is not sealed (not made by switchboard)"),
            SegmentError::Sys(e) => write!(f, "system error: {e}"),
        }
    }
}

impl std::error::Error for SegmentError {}

impl From<Errno> for SegmentError {
    fn from(e: Errno) -> Self {
        SegmentError::Sys(e)
    }
}

/// A mapped shared segment.
#[derive(Debug)]
pub struct Segment {
    region: Region,
}

/// Size of every sync-object segment: one page.
pub const SYNC_SEGMENT_SIZE: usize = 4096;
/// Largest segment [`Segment::populate`] faults in (16 MiB).
pub const POPULATE_LIMIT: usize = 16 << 20;
/// Largest segment an opener accepts from a peer (1 GiB).
pub const MAX_SEGMENT_SIZE: u64 = 1 << 30;

impl Segment {
    /// Creates a fresh zeroed one-page segment for `kind` and writes its header.
    ///
    /// # Errors
    /// The system error from creating or mapping the memfd.
    pub fn create(kind: Kind, debug_name: &str) -> Result<(OwnedFd, Segment), SegmentError> {
        Segment::create_sized(kind, SYNC_SEGMENT_SIZE, debug_name)
    }

    /// Creates a fresh zeroed segment of `size` bytes for `kind`.
    ///
    /// # Errors
    /// [`SegmentError::BadSize`] below one page or above
    /// [`MAX_SEGMENT_SIZE`]; the system error from creating or mapping it.
    pub fn create_sized(kind: Kind, size: usize, debug_name: &str) -> Result<(OwnedFd, Segment), SegmentError> {
        if size < SYNC_SEGMENT_SIZE || size as u64 > MAX_SEGMENT_SIZE {
            return Err(SegmentError::BadSize);
        }
        let fd = switchboard_sys::memfd::create_sealed(debug_name, size as u64)?;
        let region = Region::map(&fd, 0, size, Protection::ReadWrite)?;
        let seg = Segment { region };
        let h: &Header = seg.at(0)?;
        h.version.store(LAYOUT_VERSION, crate::sync::Ordering::Relaxed);
        h.kind.store(kind as u32, crate::sync::Ordering::Relaxed);
        h.size.store(size as u64, crate::sync::Ordering::Relaxed);
        // SYNC: pairs with the Acquire load of magic in `open`.
        h.magic.store(MAGIC, crate::sync::Ordering::Release);
        Ok((fd, seg))
    }

    /// Maps a segment received from a peer and checks its header. The
    /// descriptor's size (sealed by the creator, so it cannot change under
    /// us) decides how much is mapped; the header must agree with it.
    ///
    /// # Errors
    /// A [`SegmentError`] naming the first check that failed.
    pub fn open<Fd: AsFd>(fd: Fd, kind: Kind) -> Result<Segment, SegmentError> {
        let len = switchboard_sys::memfd::size(&fd)?;
        if !switchboard_sys::memfd::is_size_sealed(&fd) {
            return Err(SegmentError::Unsealed);
        }
        if !(SYNC_SEGMENT_SIZE as u64..=MAX_SEGMENT_SIZE).contains(&len) {
            return Err(SegmentError::BadSize);
        }
        let region = Region::map(&fd, 0, len as usize, Protection::ReadWrite)?;
        let seg = Segment { region };
        let h: &Header = seg.at(0)?;
        // SYNC: pairs with the Release store of magic in `create_sized`.
        if h.magic.load(crate::sync::Ordering::Acquire) != MAGIC {
            return Err(SegmentError::BadMagic);
        }
        let version = h.version.load(crate::sync::Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(SegmentError::BadVersion(version));
        }
        let found = h.kind.load(crate::sync::Ordering::Relaxed);
        if found != kind as u32 {
            return Err(SegmentError::WrongKind(found));
        }
        if h.size.load(crate::sync::Ordering::Relaxed) != len {
            return Err(SegmentError::BadSize);
        }
        Ok(seg)
    }

    /// The segment's size in bytes.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Whether the segment is empty (never: segments are at least a page).
    pub fn is_empty(&self) -> bool {
        self.region.is_empty()
    }

    /// Faults the whole segment in now (see [`Region::populate`]) when it
    /// is at most [`POPULATE_LIMIT`] bytes; larger segments fault lazily.
    ///
    /// # Errors
    /// The system error.
    pub fn populate(&self) -> Result<(), SegmentError> {
        if self.len() <= POPULATE_LIMIT {
            self.region.populate()?;
        }
        Ok(())
    }

    /// The shared object of type `T` at `offset`.
    ///
    /// # Errors
    /// [`SegmentError::BadSize`] when `T` does not fit there or is misaligned.
    pub fn object_at<T: Shared>(&self, offset: usize) -> Result<&T, SegmentError> {
        self.at(offset)
    }

    /// Copies bytes out of the segment at full speed. A peer writing the
    /// same bytes meanwhile makes the copy a mix of old and new bytes (never
    /// UB); ring protocols guarantee nobody does.
    ///
    /// # Errors
    /// [`SegmentError::BadSize`] for a range outside the segment.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), SegmentError> {
        self.region.read_bulk(offset, buf).map_err(|_| SegmentError::BadSize)
    }

    /// Copies bytes into the segment at full speed (see [`Segment::read`]).
    ///
    /// # Errors
    /// [`SegmentError::BadSize`] for a range outside the segment.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), SegmentError> {
        self.region.write_bulk(offset, data).map_err(|_| SegmentError::BadSize)
    }

    /// The object of this segment.
    ///
    /// # Errors
    /// [`SegmentError::BadSize`] if `T` does not fit (a programming error).
    pub fn object<T: Shared>(&self) -> Result<&T, SegmentError> {
        self.at(OBJECT_OFFSET)
    }

    fn at<T: Shared>(&self, offset: usize) -> Result<&T, SegmentError> {
        let fits = offset.checked_add(std::mem::size_of::<T>()).is_some_and(|end| end <= self.region.len());
        // SAFETY: `offset` is in bounds (checked just above).
        let ptr = unsafe { self.region.as_ptr().add(offset.min(self.region.len())) };
        if !fits || ptr as usize % std::mem::align_of::<T>() != 0 {
            return Err(SegmentError::BadSize);
        }
        // SAFETY: in bounds and aligned (checked), `T: Shared` is valid for
        // any bytes and mutated only through atomics, and the borrow is tied
        // to `self`, which keeps the mapping alive.
        Ok(unsafe { &*ptr.cast::<T>() })
    }
}

// Layouts are part of the cross-process contract: assert them at compile time.
const _: () = {
    assert!(std::mem::size_of::<Header>() == 24);
    assert!(std::mem::size_of::<crate::mutex::MutexState>() == 16);
    assert!(std::mem::size_of::<crate::semaphore::SemaphoreState>() == 12);
    assert!(std::mem::size_of::<crate::event::EventState>() == 12);
    assert!(std::mem::size_of::<crate::timer::TimerState>() == 32);
    assert!(OBJECT_OFFSET >= std::mem::size_of::<Header>());
};

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor whose size is not sealed (a plain file would do too).
    fn rustix_free_unsealed() -> OwnedFd {
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        OwnedFd::from(f)
    }

    #[test]
    fn open_checks_kind_and_magic() {
        let (fd, _seg) = Segment::create(Kind::Event, "t").unwrap();
        assert!(Segment::open(&fd, Kind::Event).is_ok());
        assert_eq!(Segment::open(&fd, Kind::Mutex).unwrap_err(), SegmentError::WrongKind(3));
        let raw = switchboard_sys::memfd::create_sealed("junk", 4096).unwrap();
        assert_eq!(Segment::open(&raw, Kind::Event).unwrap_err(), SegmentError::BadMagic);
        let small = switchboard_sys::memfd::create_sealed("small", 16).unwrap();
        let unsealed = rustix_free_unsealed();
        assert_eq!(Segment::open(&unsealed, Kind::Event).unwrap_err(), SegmentError::Unsealed);
        assert_eq!(Segment::open(&small, Kind::Event).unwrap_err(), SegmentError::BadSize);
    }
}
