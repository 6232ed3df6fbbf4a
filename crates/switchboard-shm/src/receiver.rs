//! A message receiver's status in shared memory, which its senders read:
//! when its thread last fetched messages and whether it is waiting for
//! them now, so that a sender can tell a hung receiver (spec 05-S11)
//! without asking it.
//!
//! The receiver's thread writes it; senders count posts in it. A sender
//! that scribbles on it (any admitted sender maps it writable) can make
//! other senders' hung and quota checks wrong — an `abort_if_hung` send
//! that gives up early or waits its whole timeout, posts refused as a full
//! queue — and nothing more: every value is a plain number, and whether
//! the receiver is gone is learnt from each session, never from here.

use crate::segment::{Kind, Segment, SegmentError, Shared};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use switchboard_sys::{AsFd, OwnedFd};

/// The shared status, laid out by who writes what and how often: the
/// receiver's clock (every turn of its loop) on one cache line, what every
/// call reads (closed, id) on another, the post count (every post) on a third.
#[repr(C)]
#[derive(Debug, Default)]
pub struct ReceiverState {
    /// When the thread last fetched messages (monotonic nanoseconds).
    fetched_ns: AtomicU64,
    /// Non-zero while the thread waits for messages (it is then not hung).
    waiting: AtomicU32,
    _line0: [AtomicU32; 13],
    /// Non-zero once the receiver is destroyed.
    closed: AtomicU32,
    _pad: AtomicU32,
    /// The receiver's id (set once by its creator).
    id: AtomicU64,
    _line1: [AtomicU64; 6],
    /// Posted messages not yet taken by the receiver's loop: senders count
    /// up (refused at the quota), the receiver counts down.
    queued: AtomicU32,
}

const _: () = assert!(std::mem::offset_of!(ReceiverState, closed) == 64);
const _: () = assert!(std::mem::offset_of!(ReceiverState, queued) == 128);

/// How stale the fetch time may get before a fetch writes it again (the
/// hung limit is seconds; a write per turn would move the line each time).
const FETCH_GRAIN_NS: u64 = 1_000_000;

#[allow(unsafe_code)]
// SAFETY: repr(C), atomics only, any bit pattern valid.
unsafe impl Shared for ReceiverState {}

/// A receiver's status segment.
#[derive(Debug)]
pub struct Status(Segment);

impl Status {
    /// Creates a status segment: (its descriptor, the status).
    ///
    /// # Errors
    /// System errors.
    pub fn create() -> Result<(OwnedFd, Status), SegmentError> {
        let (fd, seg) = Segment::create(Kind::Receiver, "switchboard-receiver")?;
        seg.object::<ReceiverState>()?;
        Ok((fd, Status(seg)))
    }

    /// Maps a status segment received from a receiver, checking its layout.
    ///
    /// # Errors
    /// A [`SegmentError`] for anything that does not check out.
    pub fn open<Fd: AsFd>(fd: Fd) -> Result<Status, SegmentError> {
        let seg = Segment::open(fd, Kind::Receiver)?;
        seg.object::<ReceiverState>()?;
        Ok(Status(seg))
    }

    fn state(&self) -> &ReceiverState {
        self.0.object().expect("checked on create and open")
    }

    /// The receiver's thread fetched messages at `now_ns`, and is (or is
    /// no longer) waiting for more.
    pub fn fetched(&self, now_ns: u64, waiting: bool) {
        let s = self.state();
        if now_ns.saturating_sub(s.fetched_ns.load(Ordering::Relaxed)) >= FETCH_GRAIN_NS {
            s.fetched_ns.store(now_ns, Ordering::Relaxed);
        }
        if (s.waiting.load(Ordering::Relaxed) != 0) != waiting {
            s.waiting.store(u32::from(waiting), Ordering::Release);
        }
    }

    /// Whether the receiver counts as hung at `now_ns`: not waiting for
    /// messages, and its last fetch more than `limit_ns` ago.
    pub fn hung(&self, now_ns: u64, limit_ns: u64) -> bool {
        let s = self.state();
        s.waiting.load(Ordering::Acquire) == 0
            && s.closed.load(Ordering::Relaxed) == 0
            && now_ns.saturating_sub(s.fetched_ns.load(Ordering::Relaxed)) > limit_ns
    }

    /// Counts one more posted message, unless `quota` are queued already.
    pub fn try_queue(&self, quota: u32) -> bool {
        self.state().queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q < quota).then_some(q + 1)).is_ok()
    }

    /// Counts one posted message fewer (taken by the loop, refused, or not sent).
    pub fn dequeued(&self) {
        let _ = self.state().queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| q.checked_sub(1));
    }

    /// Sets the receiver's id (its creator, before sharing).
    pub fn set_id(&self, id: u64) {
        self.state().id.store(id, Ordering::Relaxed);
    }

    /// The receiver's id as its creator set it (a peer may have written
    /// anything: use it only to find a receiver of one's own).
    pub fn id(&self) -> u64 {
        self.state().id.load(Ordering::Relaxed)
    }

    /// Marks the receiver destroyed.
    pub fn close(&self) {
        self.state().closed.store(1, Ordering::Release);
    }

    /// Whether the receiver was destroyed.
    pub fn is_closed(&self) -> bool {
        self.state().closed.load(Ordering::Acquire) != 0
    }
}
