//! The segment of a shared-memory link: two rings, one per direction.
//!
//! ```text
//! 0     segment header
//! 64    DuplexInfo { capacity }
//! 128   RingCtl of ring 0 (connector → acceptor)
//! 384   RingCtl of ring 1 (acceptor → connector)
//! 640   room for a user of the link (EXTRA_SIZE bytes, e.g. a pipe's state)
//! 1024  data of ring 0 (capacity bytes), then data of ring 1
//! ```
//!
//! The creator (the connecting side) writes the capacity; the opener checks
//! it is a valid ring capacity and that the segment is exactly as large as
//! the layout says, so no offset derived from it can leave the mapping.

use crate::ring::{Ring, RingCtl, RingMem, MIN_CAPACITY};
use crate::segment::{Kind, Segment, SegmentError, Shared};
use crate::sync::{AtomicU64, Ordering};
use switchboard_sys::{AsFd, OwnedFd};

const INFO_OFFSET: usize = 64;
const CTL_OFFSETS: [usize; 2] = [128, 384];
const DATA_OFFSET: usize = 1024;
const EXTRA_OFFSET: usize = 640;
/// Bytes available to [`Duplex::extra`].
pub const EXTRA_SIZE: usize = DATA_OFFSET - EXTRA_OFFSET;

/// Link parameters stored in the segment.
#[repr(C)]
#[derive(Debug)]
pub struct DuplexInfo {
    capacity: AtomicU64,
}

#[allow(unsafe_code)]
// SAFETY: repr(C), one atomic, any bit pattern valid.
unsafe impl Shared for DuplexInfo {}

const _: () = {
    assert!(std::mem::size_of::<RingCtl>() == 256);
    assert!(CTL_OFFSETS[1] + std::mem::size_of::<RingCtl>() <= EXTRA_OFFSET);
};

/// Bytes of a link segment whose rings hold `capacity` bytes each.
pub fn segment_size(capacity: usize) -> usize {
    DATA_OFFSET + 2 * capacity
}

/// A mapped link segment.
#[derive(Debug)]
pub struct Duplex {
    seg: Segment,
    capacity: usize,
}

/// One ring's data area inside the segment.
#[derive(Debug)]
pub struct SegmentMem<'a> {
    seg: &'a Segment,
    base: usize,
}

impl RingMem for SegmentMem<'_> {
    fn read(&self, offset: usize, buf: &mut [u8]) {
        // In bounds by construction (Duplex::open checked the layout).
        let r = self.seg.read(self.base + offset, buf);
        debug_assert!(r.is_ok());
    }
    fn write(&self, offset: usize, data: &[u8]) {
        let r = self.seg.write(self.base + offset, data);
        debug_assert!(r.is_ok());
    }
}

fn valid_capacity(c: u64) -> bool {
    c.is_power_of_two() && c >= MIN_CAPACITY as u64 && c <= (u32::MAX / 2) as u64
}

impl Duplex {
    /// Creates a link segment with rings of `capacity` bytes (a power of two).
    ///
    /// # Errors
    /// `BadSize` for an invalid capacity; system errors.
    pub fn create(capacity: usize) -> Result<(OwnedFd, Duplex), SegmentError> {
        if !valid_capacity(capacity as u64) {
            return Err(SegmentError::BadSize);
        }
        let (fd, seg) = Segment::create_sized(Kind::Link, segment_size(capacity), "switchboard-link")?;
        seg.object_at::<DuplexInfo>(INFO_OFFSET)?.capacity.store(capacity as u64, Ordering::Relaxed);
        // A fault on the first pass through each fresh ring page would put a
        // several-µs stall every ~60 small messages (it showed as p99).
        seg.populate()?;
        Ok((fd, Duplex { seg, capacity }))
    }

    /// Maps a link segment received from the peer and checks its layout.
    ///
    /// # Errors
    /// A [`SegmentError`] for anything that does not check out.
    pub fn open<Fd: AsFd>(fd: Fd) -> Result<Duplex, SegmentError> {
        let seg = Segment::open(fd, Kind::Link)?;
        let capacity = seg.object_at::<DuplexInfo>(INFO_OFFSET)?.capacity.load(Ordering::Relaxed);
        if !valid_capacity(capacity) || segment_size(capacity as usize) != seg.len() {
            return Err(SegmentError::BadSize);
        }
        seg.populate()?;
        Ok(Duplex { seg, capacity: capacity as usize })
    }

    /// Ring capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The user's shared object in the link's spare room.
    ///
    /// # Panics
    /// If `T` is larger than [`EXTRA_SIZE`] (a caller bug).
    pub fn extra<T: Shared>(&self) -> &T {
        assert!(std::mem::size_of::<T>() <= EXTRA_SIZE, "object larger than the spare room");
        self.seg.object_at(EXTRA_OFFSET).expect("inside the checked layout")
    }

    /// Ring `which` (0: connector → acceptor, 1: acceptor → connector).
    ///
    /// # Panics
    /// If `which > 1` (a caller bug); the layout itself was checked on open.
    pub fn ring(&self, which: usize) -> Ring<'_, SegmentMem<'_>> {
        let ctl: &RingCtl = self.seg.object_at(CTL_OFFSETS[which]).expect("layout checked on open");
        let mem = SegmentMem { seg: &self.seg, base: DATA_OFFSET + which * self.capacity };
        Ring::new(ctl, mem, self.capacity).expect("capacity checked on open")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_capacity_is_refused() {
        let (fd, d) = Duplex::create(4096).unwrap();
        let mut out = Vec::new();
        let (mut p, mut c) = (Default::default(), Default::default());
        assert!(d.ring(0).try_push(&mut p, b"across", false).unwrap());
        let other = Duplex::open(&fd).unwrap();
        assert_eq!(other.ring(0).try_pop(&mut c, &mut out).unwrap(), Some(false));
        assert_eq!(out, b"across");
        d.seg.object_at::<DuplexInfo>(INFO_OFFSET).unwrap().capacity.store(1 << 20, Ordering::Relaxed);
        assert_eq!(Duplex::open(&fd).unwrap_err(), SegmentError::BadSize);
    }
}
