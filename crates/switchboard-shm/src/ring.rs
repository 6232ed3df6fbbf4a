//! A single-producer single-consumer byte ring for variable-size records.
//!
//! Layout: a [`RingCtl`] (cache-padded indices and futex words) and a data
//! area of `cap` bytes (a power of two). Positions are `u64` byte counts that
//! only grow (wrapping: a peer may publish any value, and no arithmetic on
//! one may overflow); `pos & (cap - 1)` is the offset in the data area. A record is
//! an 8-byte header — `u32` length with bit 31 "more chunks follow" and
//! bit 30 "marked" (a record its user gives a meaning of its own), `u32`
//! [`RECORD_MAGIC`] — then the payload, padded to 8 bytes. Records may wrap
//! around the end of the data area (copied in two parts); headers never do,
//! since every record starts 8-aligned and `cap` is a multiple of 8.
//! Messages larger than [`Ring::max_chunk`] travel as several chunks.
//!
//! ## Fields and their writers
//! - `tail`: the producer, after the record's bytes are written (Release;
//!   the consumer's Acquire load of `tail` makes the bytes visible).
//! - `head`: the consumer, after it copied the record out (Release; the
//!   producer's Acquire load of `head` makes the space reusable).
//! - `data_seq`/`consumer_waiting`: the consumer sleeps on `data_seq` after
//!   setting `consumer_waiting`; the producer bumps `data_seq` and wakes it
//!   if the flag is set (Dekker-style, both `SeqCst`).
//! - `space_seq`/`producer_waiting`: the same, the other way round.
//! - The waiting words are bit sets: [`SLEEPING`] (a futex sleeper, set and
//!   cleared around its sleep) and, in `consumer_waiting`, [`BELL`] (the
//!   consumer armed its doorbell: the producer side rings it after
//!   publishing, see [`Ring::bell_armed`]). Both are read-modify-written so
//!   neither clobbers the other.
//!
//! Each side keeps its own index in private memory and only *publishes* it
//! to the shared word; the peer's index is loaded, validated (`head <= tail
//! <= head + cap`) and never trusted further. A header that does not make
//! sense is a [`RingError::Corrupt`], never a panic, an out-of-bounds access
//! or a hang.

use std::time::{Duration, Instant};

pub use crate::peer::{Peer, PEER_BACKSTOP};
use crate::sync::futex::{self, WatchWord};
use crate::sync::{cpu, AtomicU32, AtomicU64, Ordering};

/// Waiting-word bit: a futex sleeper is (or is about to be) asleep.
pub const SLEEPING: u32 = 1;
/// Waiting-word bit: the consumer sleeps on its doorbell, not the futex.
pub const BELL: u32 = 2;

/// Bytes of a record header.
pub const RECORD_HEADER: usize = 8;
/// The second word of every record header.
pub const RECORD_MAGIC: u32 = 0x5342_5231; // "SBR1"
const MORE: u32 = 1 << 31;
/// Header bit: a record its user marked (a link's loaned sample), never
/// part of a chunked message. Free since a chunk is under 2^29 bytes.
const MARK: u32 = 1 << 30;
/// Smallest ring capacity.
pub const MIN_CAPACITY: usize = 64;

/// The control block of one ring. All-zero is the valid empty state.
#[repr(C)]
#[derive(Debug)]
pub struct RingCtl {
    tail: AtomicU64,
    /// Where the producer last woke the consumer (a [`cpu`] stamp), on
    /// the line it writes anyway.
    producer_cpu: AtomicU32,
    _pad0a: u32,
    /// The consumer's position as the last of several producers taking
    /// turns saw it ([`Ring::shared_producer`]); a hint, validated on use.
    seen_head: AtomicU64,
    _pad0: [u32; 10],
    head: AtomicU64,
    /// Where the consumer last woke the producer.
    consumer_cpu: AtomicU32,
    _pad1: [u32; 13],
    data_seq: AtomicU32,
    consumer_waiting: AtomicU32,
    /// Threads waiting for the ring to become readable without reading
    /// (a wait on a pipe end as an object); the producer wakes them all.
    watchers: AtomicU32,
    _pad2: [u32; 13],
    space_seq: AtomicU32,
    producer_waiting: AtomicU32,
    closed: AtomicU32,
    _pad3: [u32; 13],
}

#[cfg(not(loom))]
#[allow(unsafe_code)]
// SAFETY: repr(C), atomics and integers only, any bit pattern valid.
unsafe impl crate::segment::Shared for RingCtl {}

impl RingCtl {
    /// An empty control block (for rings outside shared memory: tests, loom).
    pub fn new() -> RingCtl {
        RingCtl {
            tail: AtomicU64::new(0),
            producer_cpu: AtomicU32::new(0),
            _pad0a: 0,
            seen_head: AtomicU64::new(0),
            _pad0: [0; 10],
            head: AtomicU64::new(0),
            consumer_cpu: AtomicU32::new(0),
            _pad1: [0; 13],
            data_seq: AtomicU32::new(0),
            consumer_waiting: AtomicU32::new(0),
            watchers: AtomicU32::new(0),
            _pad2: [0; 13],
            space_seq: AtomicU32::new(0),
            producer_waiting: AtomicU32::new(0),
            closed: AtomicU32::new(0),
            _pad3: [0; 13],
        }
    }
}

impl Default for RingCtl {
    fn default() -> Self {
        RingCtl::new()
    }
}

/// The data area of a ring: `cap` bytes that both sides copy in and out of.
pub trait RingMem {
    /// Copies `buf.len()` bytes at `offset` (`offset + len <= cap`) out.
    fn read(&self, offset: usize, buf: &mut [u8]);
    /// Copies `data` in at `offset` (`offset + len <= cap`).
    fn write(&self, offset: usize, data: &[u8]);
}

/// Why a ring operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The peer wrote indices or a header that cannot be valid.
    Corrupt(&'static str),
    /// The other side closed the ring.
    Closed,
}

/// The producer's private state: its position, and the consumer's as
/// last seen (validated then), so that a push reads the consumer's cache
/// line only when the room it knows of runs out.
#[derive(Debug, Default)]
pub struct ProducerState {
    tail: u64,
    /// A consumer position at most the real one (`None`: not seen yet).
    seen_head: Option<u64>,
    /// Producers take turns on this ring: what one sees of the consumer
    /// is kept in the ring for the next ([`Ring::shared_producer`]).
    shared: bool,
}

/// The consumer's private state: its position.
#[derive(Debug, Default)]
pub struct ConsumerState {
    head: u64,
}

/// The front record of a ring, as [`Ring::front`] validated it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Payload length.
    pub len: usize,
    /// More chunks of the same message follow.
    pub more: bool,
    /// Pushed with [`Ring::try_push_marked`].
    pub marked: bool,
    /// Bytes the record takes in the ring (header and padding included).
    size: u64,
}

impl ProducerState {
    /// The state at `tail` (for producers that keep it in shared memory
    /// under a lock, like a pipe end held by several processes).
    pub fn at(tail: u64) -> Self {
        ProducerState { tail, seen_head: None, shared: false }
    }
    /// The position.
    pub fn position(&self) -> u64 {
        self.tail
    }
}

impl ConsumerState {
    /// The state at `head` (see [`ProducerState::at`]).
    pub fn at(head: u64) -> Self {
        ConsumerState { head }
    }
    /// The position.
    pub fn position(&self) -> u64 {
        self.head
    }
}

impl<T: RingMem + ?Sized> RingMem for &T {
    fn read(&self, offset: usize, buf: &mut [u8]) {
        (**self).read(offset, buf)
    }
    fn write(&self, offset: usize, data: &[u8]) {
        (**self).write(offset, data)
    }
}

/// A view of one ring: its control block, data area and capacity.
#[derive(Debug)]
pub struct Ring<'a, M: RingMem> {
    ctl: &'a RingCtl,
    mem: M,
    cap: u64,
}

fn align8(n: usize) -> usize {
    (n + 7) & !7
}

impl<'a, M: RingMem> Ring<'a, M> {
    /// A ring over `ctl` and `mem` of `cap` bytes.
    ///
    /// # Errors
    /// `Corrupt` unless `cap` is a power of two of at least [`MIN_CAPACITY`].
    pub fn new(ctl: &'a RingCtl, mem: M, cap: usize) -> Result<Self, RingError> {
        if !cap.is_power_of_two() || cap < MIN_CAPACITY || cap > u32::MAX as usize / 2 {
            return Err(RingError::Corrupt("ring capacity is not a power of two in range"));
        }
        Ok(Ring { ctl, mem, cap: cap as u64 })
    }

    /// The largest payload of one chunk: half the ring, so a full-size chunk
    /// can always be written once the consumer has caught up.
    pub fn max_chunk(&self) -> usize {
        self.cap as usize / 2 - RECORD_HEADER
    }

    /// Marks the ring closed and wakes both sides.
    pub fn close(&self) {
        self.ctl.closed.store(1, Ordering::SeqCst);
        self.ctl.data_seq.fetch_add(1, Ordering::SeqCst);
        self.ctl.space_seq.fetch_add(1, Ordering::SeqCst);
        futex::wake(&self.ctl.data_seq, u32::MAX >> 1);
        futex::wake(&self.ctl.space_seq, u32::MAX >> 1);
    }

    /// Whether either side closed the ring.
    pub fn is_closed(&self) -> bool {
        self.ctl.closed.load(Ordering::SeqCst) != 0
    }

    fn write_wrapped(&self, pos: u64, data: &[u8]) {
        let at = (pos & (self.cap - 1)) as usize;
        let first = data.len().min(self.cap as usize - at);
        self.mem.write(at, &data[..first]);
        if first < data.len() {
            self.mem.write(0, &data[first..]);
        }
    }

    fn read_wrapped(&self, pos: u64, buf: &mut [u8]) {
        let at = (pos & (self.cap - 1)) as usize;
        let first = buf.len().min(self.cap as usize - at);
        self.mem.read(at, &mut buf[..first]);
        if first < buf.len() {
            self.mem.read(0, &mut buf[first..]);
        }
    }

    /// Appends one chunk if there is room; `Ok(false)` when full.
    ///
    /// # Errors
    /// `Corrupt` when the consumer's published index is impossible, `Closed`.
    ///
    /// # Panics
    /// If `chunk` is longer than [`Ring::max_chunk`] (a caller bug).
    pub fn try_push(&self, st: &mut ProducerState, chunk: &[u8], more: bool) -> Result<bool, RingError> {
        self.try_push_parts(st, &[chunk], more)
    }

    /// Appends one chunk made of `parts` (copied in one after the other, as
    /// one record) if there is room; `Ok(false)` when full.
    ///
    /// # Errors
    /// As [`Ring::try_push`].
    ///
    /// # Panics
    /// If the parts together are longer than [`Ring::max_chunk`] (a caller bug).
    pub fn try_push_parts(&self, st: &mut ProducerState, parts: &[&[u8]], more: bool) -> Result<bool, RingError> {
        self.push_record(st, parts, if more { MORE } else { 0 })
    }

    /// Appends one marked record (see [`Record::marked`]) if there is room.
    ///
    /// # Errors
    /// As [`Ring::try_push`].
    ///
    /// # Panics
    /// If `chunk` is longer than [`Ring::max_chunk`] (a caller bug).
    pub fn try_push_marked(&self, st: &mut ProducerState, chunk: &[u8]) -> Result<bool, RingError> {
        self.push_record(st, &[chunk], MARK)
    }

    fn push_record(&self, st: &mut ProducerState, parts: &[&[u8]], flags: u32) -> Result<bool, RingError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        assert!(len <= self.max_chunk(), "chunk larger than max_chunk");
        if self.is_closed() {
            return Err(RingError::Closed);
        }
        let need = (RECORD_HEADER + align8(len)) as u64;
        // The room known from the consumer's position as last seen (at
        // most its real one: it only grows) is room for sure; only when
        // it runs out is the consumer's line read again.
        let room = st.seen_head.and_then(|h| self.cap.checked_sub(st.tail.wrapping_sub(h)));
        if room.is_none_or(|room| room < need) {
            // SYNC: Acquire pairs with the consumer's Release store of head in pop_front.
            let head = self.ctl.head.load(Ordering::Acquire);
            let used = Some(st.tail.wrapping_sub(head))
                .filter(|u| *u <= self.cap)
                .ok_or(RingError::Corrupt("head ahead of tail"))?;
            st.seen_head = Some(head);
            if st.shared {
                self.ctl.seen_head.store(head, Ordering::Relaxed);
            }
            if self.cap - used < need {
                return Ok(false);
            }
        }
        let mut header = [0u8; RECORD_HEADER];
        header[..4].copy_from_slice(&(len as u32 | flags).to_le_bytes());
        header[4..].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        let mut at = st.tail.wrapping_add(RECORD_HEADER as u64);
        for part in parts {
            self.write_wrapped(at, part);
            at = at.wrapping_add(part.len() as u64);
        }
        self.write_wrapped(st.tail, &header);
        st.tail = st.tail.wrapping_add(need);
        // SYNC: SeqCst (a Release) pairs with the consumer's load of tail, and
        // orders against its store of consumer_waiting (Dekker).
        self.ctl.tail.store(st.tail, Ordering::SeqCst);
        let sleeping = self.ctl.consumer_waiting.load(Ordering::SeqCst) & SLEEPING != 0;
        let watched = self.ctl.watchers.load(Ordering::SeqCst) != 0;
        if sleeping || watched {
            cpu::stamp(&self.ctl.producer_cpu);
            self.ctl.data_seq.fetch_add(1, Ordering::SeqCst);
            futex::wake(&self.ctl.data_seq, if watched { u32::MAX >> 1 } else { 1 });
        }
        Ok(true)
    }

    /// The state of a producer that takes its turn on a ring several
    /// producers share under a lock (a mailslot's writers, a pipe end's):
    /// it starts at the published position, and with the consumer's
    /// position as the previous producer saw it, so that its push reads
    /// the consumer's cache line only when that room runs out. (The lock
    /// orders the turns; a value no honest producer could have left only
    /// costs a fresh look.)
    pub fn shared_producer(&self) -> ProducerState {
        ProducerState {
            tail: self.published_tail(),
            seen_head: Some(self.ctl.seen_head.load(Ordering::Relaxed)),
            shared: true,
        }
    }

    /// The producer position last published: where the next producer starts
    /// when several share the ring under a lock (a producer that died before
    /// publishing left nothing the consumer can see).
    pub fn published_tail(&self) -> u64 {
        self.ctl.tail.load(Ordering::SeqCst)
    }

    /// The consumer position last published.
    pub fn published_head(&self) -> u64 {
        self.ctl.head.load(Ordering::SeqCst)
    }

    /// Bytes published and not yet consumed, validated.
    fn available(&self, st: &ConsumerState) -> Result<u64, RingError> {
        // SYNC: Acquire (SeqCst) pairs with the producer's store of tail in try_push.
        let tail = self.ctl.tail.load(Ordering::SeqCst);
        Some(tail.wrapping_sub(st.head)).filter(|a| *a <= self.cap).ok_or(RingError::Corrupt("tail outside the ring"))
    }

    /// Whether a chunk is waiting (for wait loops).
    pub fn has_data(&self, st: &ConsumerState) -> bool {
        !matches!(self.available(st), Ok(0))
    }

    /// Whether `len` bytes of payload would fit now (for wait loops). An
    /// impossible consumer index also ends the wait, so that the push then
    /// reports it as `Corrupt` instead of waiting for room that never comes.
    pub fn has_room(&self, st: &ProducerState, len: usize) -> bool {
        let head = self.ctl.head.load(Ordering::SeqCst);
        let need = (RECORD_HEADER + align8(len)) as u64;
        let used = st.tail.wrapping_sub(head);
        used > self.cap || self.cap - used >= need || self.is_closed()
    }

    /// The record at `pos` (`avail` bytes published from there): its
    /// payload length, whether more chunks follow, and its size in the ring.
    fn record_at(&self, pos: u64, avail: u64) -> Result<Record, RingError> {
        if avail < RECORD_HEADER as u64 || avail % 8 != 0 {
            return Err(RingError::Corrupt("partial record published"));
        }
        let mut header = [0u8; RECORD_HEADER];
        self.read_wrapped(pos, &mut header);
        let word = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        if u32::from_le_bytes(header[4..].try_into().expect("4 bytes")) != RECORD_MAGIC {
            return Err(RingError::Corrupt("bad record magic"));
        }
        let len = (word & !(MORE | MARK)) as usize;
        let size = (RECORD_HEADER + align8(len)) as u64;
        if len > self.max_chunk() || size > avail {
            return Err(RingError::Corrupt("record longer than what was published"));
        }
        let (more, marked) = (word & MORE != 0, word & MARK != 0);
        if more && marked {
            return Err(RingError::Corrupt("a marked record is never a chunk"));
        }
        Ok(Record { len, more, marked, size })
    }

    /// The front record, validated, or `None` when the ring is empty.
    ///
    /// # Errors
    /// `Corrupt` for impossible indices or headers, `Closed` when the ring is
    /// empty and closed.
    pub fn front(&self, st: &ConsumerState) -> Result<Option<Record>, RingError> {
        let avail = self.available(st)?;
        if avail == 0 {
            return if self.is_closed() { Err(RingError::Closed) } else { Ok(None) };
        }
        self.record_at(st.head, avail).map(Some)
    }

    /// Copies payload bytes `from..from + buf.len()` of the front record
    /// (which [`Ring::front`] returned, so its bounds are checked).
    pub fn read_front(&self, st: &ConsumerState, from: usize, buf: &mut [u8]) {
        self.read_record(st.head, from, buf);
    }

    /// Copies payload bytes of the record at `pos` (a position
    /// [`Ring::records`] returned, with `from + buf.len()` within its length).
    pub fn read_record(&self, pos: u64, from: usize, buf: &mut [u8]) {
        self.read_wrapped(pos.wrapping_add((RECORD_HEADER + from) as u64), buf);
    }

    /// Every published record from the consumer's position on, as
    /// `(position, payload length, more chunks follow)`, validated; for peeking.
    ///
    /// # Errors
    /// `Corrupt` for impossible indices or headers.
    pub fn records(&self, st: &ConsumerState) -> Result<Vec<(u64, usize, bool)>, RingError> {
        let avail = self.available(st)?;
        let mut seen = 0;
        let mut out = Vec::new();
        while seen < avail {
            let pos = st.head.wrapping_add(seen);
            let rec = self.record_at(pos, avail - seen)?;
            out.push((pos, rec.len, rec.more));
            seen += rec.size;
        }
        Ok(out)
    }

    /// Drops the front record `rec` ([`Ring::front`]'s answer for this
    /// `st`, already validated) and tells a waiting producer there is room.
    pub fn pop_front(&self, st: &mut ConsumerState, rec: &Record) {
        let need = rec.size;
        st.head = st.head.wrapping_add(need);
        // SYNC: SeqCst (a Release) pairs with the producer's Acquire load of
        // head, and orders against its store of producer_waiting (Dekker).
        self.ctl.head.store(st.head, Ordering::SeqCst);
        if self.ctl.producer_waiting.load(Ordering::SeqCst) & SLEEPING != 0 {
            cpu::stamp(&self.ctl.consumer_cpu);
            self.ctl.space_seq.fetch_add(1, Ordering::SeqCst);
            futex::wake(&self.ctl.space_seq, 1);
        }
    }

    /// Removes one chunk, appending its payload to `out`. Returns
    /// `Some(more)` for a chunk, `None` when the ring is empty.
    ///
    /// # Errors
    /// `Corrupt` for impossible indices or headers, `Closed` when the ring is
    /// empty and closed.
    pub fn try_pop(&self, st: &mut ConsumerState, out: &mut Vec<u8>) -> Result<Option<bool>, RingError> {
        let Some(rec) = self.front(st)? else { return Ok(None) };
        let start = out.len();
        out.resize(start + rec.len, 0);
        self.read_front(st, 0, &mut out[start..]);
        self.pop_front(st, &rec);
        Ok(Some(rec.more))
    }

    /// How the consumer waits for data: its flag, its word, and where the
    /// producer last ran.
    pub fn data_signal(&self) -> Signal<'_> {
        Signal { flag: &self.ctl.consumer_waiting, seq: &self.ctl.data_seq, peer_cpu: &self.ctl.producer_cpu }
    }

    /// A wait for data without reading it (a pipe end waited on as an
    /// object): (word to sleep on, count of such waiters). Register in the
    /// count, *then* read the word, *then* look for data; the producer
    /// publishes, *then* bumps the word and wakes every watcher if the
    /// count is non-zero (both `SeqCst`). The consumer's own flag is not
    /// touched, so a watcher and a blocked read never hide a wake from
    /// each other.
    pub fn watch_signal(&self) -> (&'a AtomicU32, &'a AtomicU32) {
        (&self.ctl.data_seq, &self.ctl.watchers)
    }

    /// Arms (`true`) or disarms the consumer's doorbell. While armed, the
    /// producer side rings the consumer's bell after each record it
    /// publishes ([`Ring::bell_armed`]).
    ///
    /// Arm, *then* look for data ([`Ring::has_data`]) before sleeping on
    /// the bell: the producer publishes, *then* looks at the bit (both
    /// `SeqCst`, Dekker), so one of the two sees the other.
    pub fn arm_bell(&self, on: bool) {
        if on {
            self.ctl.consumer_waiting.fetch_or(BELL, Ordering::SeqCst);
        } else {
            self.ctl.consumer_waiting.fetch_and(!BELL, Ordering::SeqCst);
        }
    }

    /// Whether the consumer sleeps on its doorbell (the producer side asks
    /// after publishing, and rings it).
    pub fn bell_armed(&self) -> bool {
        self.ctl.consumer_waiting.load(Ordering::SeqCst) & BELL != 0
    }

    /// How the producer waits for room: its flag, its word, and where the
    /// consumer last ran.
    pub fn space_signal(&self) -> Signal<'_> {
        Signal { flag: &self.ctl.producer_waiting, seq: &self.ctl.space_seq, peer_cpu: &self.ctl.consumer_cpu }
    }
}

/// How one side of a ring waits ([`Ring::data_signal`], [`Ring::space_signal`]).
#[derive(Clone, Copy, Debug)]
pub struct Signal<'a> {
    /// The waiting-word bits this side raises ([`SLEEPING`]).
    flag: &'a AtomicU32,
    /// The word it sleeps on, bumped by the other side.
    seq: &'a AtomicU32,
    /// The other side's [`cpu`] stamp: an adaptive wait does not spin for
    /// a peer that last ran on its own CPU.
    peer_cpu: &'a AtomicU32,
}

/// How a side waits for its ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitMode {
    /// Spin without ever sleeping (lowest latency, burns a core).
    BusyPoll,
    /// Spin for `spin`, then sleep on the futex. A cross-core futex wake
    /// costs ~4–5 µs per hop on a typical VM, so a spin budget shorter than
    /// that degrades to always sleeping. A peer that last ran on the
    /// waiter's own CPU cannot answer while it spins: then it sleeps at
    /// once (see [`cpu`]).
    Adaptive {
        /// The spin budget.
        spin: Duration,
    },
    /// Sleep on the futex at once.
    Blocking,
}

impl Default for WaitMode {
    fn default() -> Self {
        WaitMode::Adaptive { spin: Duration::from_micros(20) }
    }
}

/// Waits until `ready()` or `until`; returns whether it became ready.
///
/// `signal` is the side that waits ([`Ring::data_signal`] or
/// [`Ring::space_signal`]).
pub fn wait_ready(ready: &mut dyn FnMut() -> bool, signal: Signal<'_>, mode: WaitMode, until: Option<Instant>) -> bool {
    wait_watching(ready, signal, mode, until, None) == Waited::Ready
}

/// How [`wait_ready_or_peer`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// `ready()` became true.
    Ready,
    /// The deadline passed.
    TimedOut,
    /// The peer is gone (`ready()` was false just before).
    PeerGone,
}

/// [`wait_ready`] that also ends when the peer is gone: at once when its
/// watched word changes, else when `alive()` says so at the next slice.
pub fn wait_ready_or_peer(
    ready: &mut dyn FnMut() -> bool,
    signal: Signal<'_>,
    mode: WaitMode,
    deadline: Option<Instant>,
    peer: Peer<'_>,
) -> Waited {
    loop {
        let slice = Instant::now() + peer.every;
        match wait_watching(ready, signal, mode, Some(deadline.map_or(slice, |d| d.min(slice))), peer.watch) {
            Waited::Ready => return Waited::Ready,
            Waited::PeerGone => {
                peer.wake_others();
                return Waited::PeerGone;
            }
            Waited::TimedOut => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Waited::TimedOut;
        }
        if !(peer.alive)() {
            return Waited::PeerGone;
        }
    }
}

/// Spins (as `mode` says), then sleeps, until `ready()`, `until`, or the
/// watched word leaves its value.
fn wait_watching(
    ready: &mut dyn FnMut() -> bool,
    signal: Signal<'_>,
    mode: WaitMode,
    until: Option<Instant>,
    watch: Option<(WatchWord<'_>, u32)>,
) -> Waited {
    if ready() {
        return Waited::Ready;
    }
    // A deadline already past (a try: the classic zero timeout) makes no
    // spin: the spin looks at the clock only every 64 turns.
    if until.is_some_and(|u| Instant::now() >= u) {
        return Waited::TimedOut;
    }
    let spin_until = match mode {
        WaitMode::BusyPoll => None,
        WaitMode::Adaptive { .. } if cpu::shared_with(signal.peer_cpu) => {
            return sleep_until_ready(ready, signal, until, watch)
        }
        WaitMode::Adaptive { spin } => Some(Instant::now() + spin),
        // Straight to the futex: even a short spin would measure, and
        // behave, like a spin.
        WaitMode::Blocking => return sleep_until_ready(ready, signal, until, watch),
    };
    match spin_for(ready, spin_until, until, watch) {
        Some(done) => done,
        None => sleep_until_ready(ready, signal, until, watch),
    }
}

fn gone(watch: Option<(WatchWord<'_>, u32)>) -> bool {
    watch.is_some_and(|(w, alive)| w.load() != alive)
}

/// Spins until `ready()`, `until`, the peer's going (`Some`), or
/// `spin_until` (`None`: go to sleep).
fn spin_for(
    ready: &mut dyn FnMut() -> bool,
    spin_until: Option<Instant>,
    until: Option<Instant>,
    watch: Option<(WatchWord<'_>, u32)>,
) -> Option<Waited> {
    let mut n: u32 = 0;
    loop {
        n = n.wrapping_add(1);
        if ready() {
            return Some(Waited::Ready);
        }
        if n % 64 == 0 {
            if gone(watch) {
                return Some(if ready() { Waited::Ready } else { Waited::PeerGone });
            }
            let now = Instant::now();
            if until.is_some_and(|u| now >= u) {
                return Some(Waited::TimedOut);
            }
            if spin_until.is_some_and(|s| now >= s) {
                return None;
            }
        }
        std::hint::spin_loop();
    }
}

fn sleep_until_ready(
    ready: &mut dyn FnMut() -> bool,
    Signal { flag, seq, .. }: Signal<'_>,
    until: Option<Instant>,
    watch: Option<(WatchWord<'_>, u32)>,
) -> Waited {
    loop {
        flag.fetch_or(SLEEPING, Ordering::SeqCst);
        let seen = seq.load(Ordering::SeqCst);
        if ready() {
            flag.fetch_and(!SLEEPING, Ordering::SeqCst);
            return Waited::Ready;
        }
        let woke = match watch {
            Some((word, alive)) => futex::wait_or_watch(seq, seen, word, alive, until),
            None => futex::wait(seq, seen, until),
        };
        flag.fetch_and(!SLEEPING, Ordering::SeqCst);
        if ready() {
            return Waited::Ready;
        }
        if gone(watch) {
            return Waited::PeerGone;
        }
        if woke == futex::Wake::TimedOut {
            return Waited::TimedOut;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::RefCell;

    struct VecMem(RefCell<Vec<u8>>);
    impl RingMem for VecMem {
        fn read(&self, offset: usize, buf: &mut [u8]) {
            buf.copy_from_slice(&self.0.borrow()[offset..offset + buf.len()]);
        }
        fn write(&self, offset: usize, data: &[u8]) {
            self.0.borrow_mut()[offset..offset + data.len()].copy_from_slice(data);
        }
    }

    #[test]
    fn records_wrap_around_and_keep_order() {
        let ctl = RingCtl::new();
        let mem = VecMem(RefCell::new(vec![0; 64]));
        let ring = Ring::new(&ctl, &mem, 64).unwrap();
        let (mut p, mut c) = (ProducerState::default(), ConsumerState::default());
        let mut out = Vec::new();
        for i in 0..100u8 {
            let msg = vec![i; (i % 24) as usize];
            assert!(ring.try_push(&mut p, &msg, i % 2 == 0).unwrap());
            out.clear();
            assert_eq!(ring.try_pop(&mut c, &mut out).unwrap(), Some(i % 2 == 0));
            assert_eq!(out, msg);
        }
        assert_eq!(ring.try_pop(&mut c, &mut out).unwrap(), None);
    }

    #[test]
    fn full_ring_refuses_and_hostile_indices_are_errors() {
        let ctl = RingCtl::new();
        let mem = VecMem(RefCell::new(vec![0; 64]));
        let ring = Ring::new(&ctl, &mem, 64).unwrap();
        let mut p = ProducerState::default();
        assert!(ring.try_push(&mut p, &[1; 24], false).unwrap());
        assert!(ring.try_push(&mut p, &[2; 24], false).unwrap());
        assert!(!ring.try_push(&mut p, &[3; 8], false).unwrap(), "full");
        // A peer publishes a tail far beyond the ring: the consumer refuses.
        ctl.tail.store(1 << 40, Ordering::SeqCst);
        let mut c = ConsumerState::default();
        assert!(matches!(ring.try_pop(&mut c, &mut Vec::new()), Err(RingError::Corrupt(_))));
        // A header claiming more than was published.
        ctl.tail.store(16, Ordering::SeqCst);
        mem.write(0, &(1000u32).to_le_bytes());
        assert!(matches!(ring.try_pop(&mut c, &mut Vec::new()), Err(RingError::Corrupt(_))));
        // A consumer index ahead of the producer's.
        ctl.head.store(1 << 50, Ordering::SeqCst);
        assert!(ring.has_room(&p, 1), "a waiting producer stops waiting, and its push says why");
        assert!(matches!(ring.try_push(&mut p, &[1], false), Err(RingError::Corrupt(_))));
    }

    /// A peer whose last wake came from this thread's CPU cannot run while
    /// this thread spins: an adaptive wait sleeps at once instead of
    /// burning its spin budget (here ten seconds, so a spin would use the
    /// whole 300 ms wait in CPU time).
    #[test]
    fn an_adaptive_wait_does_not_spin_for_a_peer_on_its_own_cpu() {
        use switchboard_sys::process::{current_cpu, pin_to_cpu, thread_cpu_time};
        pin_to_cpu(current_cpu()).unwrap();
        let ctl = RingCtl::new();
        let mem = VecMem(RefCell::new(vec![0; 64]));
        let ring = Ring::new(&ctl, &mem, 64).unwrap();
        cpu::stamp(&ctl.producer_cpu);
        assert!(cpu::shared_with(&ctl.producer_cpu));
        let before = thread_cpu_time();
        let mode = WaitMode::Adaptive { spin: Duration::from_secs(10) };
        let until = Instant::now() + Duration::from_millis(300);
        assert!(!wait_ready(&mut || false, ring.data_signal(), mode, Some(until)));
        assert!(Instant::now() >= until, "the wait lasted until its deadline");
        let used = thread_cpu_time() - before;
        assert!(used < Duration::from_millis(100), "spun for a peer on the same CPU: {used:?} of CPU");
    }

    /// Positions a peer published just below `u64::MAX` (found by the fuzz
    /// target: the producer's `tail + 8` overflowed and panicked) wrap, and
    /// records keep their order across the wrap, peeked and popped.
    #[test]
    fn positions_wrap_past_u64_max() {
        let ctl = RingCtl::new();
        let mem = VecMem(RefCell::new(vec![0; 64]));
        let ring = Ring::new(&ctl, &mem, 64).unwrap();
        let start = u64::MAX - 39; // 8-aligned, as every record start is
        ctl.head.store(start, Ordering::SeqCst);
        ctl.tail.store(start, Ordering::SeqCst);
        let (mut p, mut c) = (ProducerState::at(ring.published_tail()), ConsumerState::at(ring.published_head()));
        let mut out = Vec::new();
        for i in 0..20u8 {
            let msg = vec![i; usize::from(i % 12)];
            assert!(ring.try_push(&mut p, &msg, false).unwrap());
            assert!(ring.try_push(&mut p, &[i], false).unwrap());
            assert_eq!(ring.records(&c).unwrap().len(), 2, "both records, across the wrap");
            for want in [&msg[..], &[i]] {
                out.clear();
                assert_eq!(ring.try_pop(&mut c, &mut out).unwrap(), Some(false));
                assert_eq!(out, want);
            }
        }
        assert!(c.position() < start, "the positions wrapped");
    }
}
