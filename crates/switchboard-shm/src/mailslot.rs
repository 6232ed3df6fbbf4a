//! A mailslot's message queue: many writers, one reader, in one segment.
//!
//! ```text
//! 0     segment header
//! 64    SlotInfo { capacity, max_message }
//! 128   write lock (an abandonable MutexState)
//! 192   RingCtl
//! 512   ring data (capacity bytes)
//! ```
//!
//! Writers take the write lock, append one ring record and release it, so
//! messages never interleave and each writer's order is kept. The lock is
//! the named mutex's: a writer killed while holding it hands it over as
//! abandoned. Nothing needs repair then, because the next writer starts at
//! the ring's *published* tail — a record is visible to the reader only once
//! its bytes are all written and the tail moves past it, so a half-written
//! record is simply overwritten.
//!
//! Every record's payload starts with an [`Origin`]: one tag byte for a
//! local writer, or the tag plus the sender's address and id for a message
//! that came from the network (spec 03-S13). The reader (the mailslot's
//! server, one process) keeps its position privately and publishes it as
//! the ring's head; everything a writer wrote is validated before use.

use std::time::{Duration, Instant};

use crate::mutex::{LockGaveUp, MutexState};
use crate::ring::{wait_ready, wait_ready_or_peer, ConsumerState, Peer, Record, Ring, RingCtl, RingError};
use crate::ring::{RingMem, WaitMode, Waited, MIN_CAPACITY, RECORD_HEADER};
use crate::segment::{Kind, Segment, SegmentError, Shared};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use switchboard_sys::{AsFd, OwnedFd};

const INFO_OFFSET: usize = 64;
const LOCK_OFFSET: usize = 128;
const CTL_OFFSET: usize = 192;
const DATA_OFFSET: usize = 512;
/// Bytes of the largest origin header.
pub const ORIGIN_MAX: usize = 27;
const LOCAL: u8 = 0;
const NETWORK: u8 = 1;

#[repr(C)]
#[derive(Debug)]
struct SlotInfo {
    capacity: AtomicU64,
    max_message: AtomicU64,
    /// The server's read timeout in ms (`u64::MAX`: forever), for writers' info.
    read_timeout_ms: AtomicU64,
    /// The server's network counts, by [`NetCount`], for writers' info.
    /// Only the server adds to them; a writer that scribbles them fools
    /// only what it is shown.
    net: [AtomicU64; NET_COUNTS],
}

/// What a mailslot's server counts of the datagrams that reach it from the
/// network (spec 03-S11..S13); kept in the segment so that a writer's
/// `info` shows them too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetCount {
    /// Queued as a message.
    Delivered,
    /// A repeat of a (sender, sequence) already seen.
    Duplicate,
    /// Did not decode.
    Malformed,
    /// Well formed, for another mailslot name.
    Foreign,
    /// Dropped because the queue was full.
    Overflowed,
}

/// How many [`NetCount`]s there are.
pub const NET_COUNTS: usize = 5;

#[allow(unsafe_code)]
// SAFETY: repr(C), atomics only, any bit pattern valid.
unsafe impl Shared for SlotInfo {}

const _: () = assert!(CTL_OFFSET + std::mem::size_of::<RingCtl>() <= DATA_OFFSET);
const _: () = assert!(INFO_OFFSET + std::mem::size_of::<SlotInfo>() <= LOCK_OFFSET);

/// Where a message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A writer on this machine.
    Local,
    /// A datagram from the network.
    Network {
        /// The sender's IPv6 address (IPv4 as v4-mapped).
        addr: [u8; 16],
        /// The sender's UDP port.
        port: u16,
        /// The sender's id from the datagram.
        sender: u64,
    },
}

impl Origin {
    fn encode(&self, out: &mut [u8; ORIGIN_MAX]) -> usize {
        match *self {
            Origin::Local => {
                out[0] = LOCAL;
                1
            }
            Origin::Network { addr, port, sender } => {
                out[0] = NETWORK;
                out[1..17].copy_from_slice(&addr);
                out[17..19].copy_from_slice(&port.to_le_bytes());
                out[19..27].copy_from_slice(&sender.to_le_bytes());
                ORIGIN_MAX
            }
        }
    }

    /// Decodes the start of a record of `len` payload bytes.
    fn decode(head: &[u8]) -> Option<(Origin, usize)> {
        match *head.first()? {
            LOCAL => Some((Origin::Local, 1)),
            NETWORK if head.len() >= ORIGIN_MAX => {
                let addr = head[1..17].try_into().ok()?;
                let port = u16::from_le_bytes(head[17..19].try_into().ok()?);
                let sender = u64::from_le_bytes(head[19..27].try_into().ok()?);
                Some((Origin::Network { addr, port, sender }, ORIGIN_MAX))
            }
            _ => None,
        }
    }
}

/// Why a queue operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The message is longer than the mailslot's maximum.
    TooBig {
        /// The maximum.
        max: usize,
    },
    /// No room before the deadline.
    Full,
    /// The reader closed the queue (or died).
    Closed,
    /// Nothing arrived before the deadline.
    TimedOut,
    /// A writer left impossible indices or headers.
    Corrupt(&'static str),
}

impl From<RingError> for QueueError {
    fn from(e: RingError) -> Self {
        match e {
            RingError::Closed => QueueError::Closed,
            RingError::Corrupt(why) => QueueError::Corrupt(why),
        }
    }
}

/// The next message, as [`Queue::next`] validated it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Next {
    /// Where it came from.
    pub origin: Origin,
    /// Its length in bytes.
    pub len: usize,
    skip: usize,
    rec: Record,
}

/// A mapped mailslot queue.
#[derive(Debug)]
pub struct Queue {
    seg: Segment,
    capacity: usize,
    max_message: usize,
}

struct Mem<'a>(&'a Segment);

impl RingMem for Mem<'_> {
    fn read(&self, offset: usize, buf: &mut [u8]) {
        let r = self.0.read(DATA_OFFSET + offset, buf);
        debug_assert!(r.is_ok(), "inside the checked layout");
    }
    fn write(&self, offset: usize, data: &[u8]) {
        let r = self.0.write(DATA_OFFSET + offset, data);
        debug_assert!(r.is_ok(), "inside the checked layout");
    }
}

/// The ring capacity that holds messages of `max_message` bytes (at least
/// `wanted` bytes in all).
pub fn capacity_for(max_message: usize, wanted: usize) -> usize {
    let one = 2 * (RECORD_HEADER + ORIGIN_MAX + max_message + 8);
    one.max(wanted).max(4096).next_power_of_two()
}

fn valid(capacity: u64, max_message: u64, len: usize) -> bool {
    capacity.is_power_of_two()
        && capacity >= MIN_CAPACITY as u64
        && capacity <= u64::from(u32::MAX / 2)
        && DATA_OFFSET as u64 + capacity == len as u64
        && max_message + (ORIGIN_MAX as u64) <= capacity / 2 - RECORD_HEADER as u64
}

impl Queue {
    /// Creates a queue for messages of up to `max_message` bytes whose
    /// ring holds about `capacity` bytes (rounded up to fit two maximal
    /// messages, to a power of two).
    ///
    /// # Errors
    /// `BadSize` when that is over 1 GiB; system errors.
    pub fn create(max_message: usize, capacity: usize) -> Result<(OwnedFd, Queue), SegmentError> {
        let capacity = capacity_for(max_message, capacity);
        if capacity > (u32::MAX / 2) as usize {
            return Err(SegmentError::BadSize);
        }
        let (fd, seg) = Segment::create_sized(Kind::Mailslot, DATA_OFFSET + capacity, "switchboard-mailslot")?;
        let info: &SlotInfo = seg.object_at(INFO_OFFSET)?;
        info.capacity.store(capacity as u64, Ordering::Relaxed);
        info.max_message.store(max_message as u64, Ordering::Relaxed);
        Ok((fd, Queue { seg, capacity, max_message }))
    }

    /// Maps a queue received from its server and checks its layout.
    ///
    /// # Errors
    /// A [`SegmentError`] for anything that does not check out.
    pub fn open<Fd: AsFd>(fd: Fd) -> Result<Queue, SegmentError> {
        let seg = Segment::open(fd, Kind::Mailslot)?;
        let info: &SlotInfo = seg.object_at(INFO_OFFSET)?;
        let (capacity, max_message) = (info.capacity.load(Ordering::Relaxed), info.max_message.load(Ordering::Relaxed));
        if !valid(capacity, max_message, seg.len()) {
            return Err(SegmentError::BadSize);
        }
        Ok(Queue { seg, capacity: capacity as usize, max_message: max_message as usize })
    }

    /// The largest message, in bytes.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    fn ring(&self) -> Ring<'_, Mem<'_>> {
        let ctl: &RingCtl = self.seg.object_at(CTL_OFFSET).expect("inside the checked layout");
        Ring::new(ctl, Mem(&self.seg), self.capacity).expect("capacity checked")
    }

    fn lock(&self) -> &MutexState {
        self.seg.object_at(LOCK_OFFSET).expect("inside the checked layout")
    }

    /// Appends one message, waiting for room up to `timeout` (`None`: for
    /// as long as `reader` says the reader is there).
    ///
    /// # Errors
    /// `TooBig` (nothing queued), `Full` when no room came in time,
    /// `Closed` when the reader is gone, `Corrupt`.
    pub fn push(
        &self,
        origin: Origin,
        msg: &[u8],
        timeout: Option<Duration>,
        reader: Peer<'_>,
    ) -> Result<(), QueueError> {
        if msg.len() > self.max_message {
            return Err(QueueError::TooBig { max: self.max_message });
        }
        let mut head = [0u8; ORIGIN_MAX];
        let n = origin.encode(&mut head);
        let ring = self.ring();
        // The clock is read only when the lock is taken or the queue full.
        let mut deadline = None;
        let mut until = || *deadline.get_or_insert_with(|| timeout.and_then(|t| Instant::now().checked_add(t)));
        // An abandoned lock needs no repair: see the module docs. Another
        // writer holds the lock only for one append, so waiting for it is
        // not waiting for room: even a zero write timeout waits up to
        // `stall_grace()` for it (past that the holder is stalled, and the write
        // fails as if full).
        let _held = match self.lock().try_lock() {
            Some((held, _outcome)) => held,
            None => match self.lock().lock_until(lock_deadline(until()), reader) {
                Ok((held, _outcome)) => held,
                Err(LockGaveUp::TimedOut) => return Err(QueueError::Full),
                Err(LockGaveUp::PeerGone) => return Err(QueueError::Closed),
            },
        };
        let mut st = ring.shared_producer();
        loop {
            if ring.try_push_parts(&mut st, &[&head[..n], msg], false)? {
                return Ok(());
            }
            let until = until();
            let ready = &mut || ring.has_room(&st, n + msg.len());
            match wait_ready_or_peer(ready, ring.space_signal(), WaitMode::Blocking, until, reader) {
                Waited::Ready => {}
                Waited::TimedOut => return Err(QueueError::Full),
                Waited::PeerGone => return Err(QueueError::Closed),
            }
        }
    }

    /// Arms (`true`) or disarms the reader's doorbell: while armed, a
    /// writer rings the reader's bell after queueing a message (see
    /// [`Ring::arm_bell`]).
    pub fn arm_bell(&self, on: bool) {
        self.ring().arm_bell(on);
    }

    /// Whether the reader sleeps on its doorbell (a writer asks after
    /// queueing, and rings it).
    pub fn bell_armed(&self) -> bool {
        self.ring().bell_armed()
    }

    /// The next message (reader side), or `None` when the queue is empty.
    ///
    /// # Errors
    /// `Corrupt` for anything a writer could not have written.
    pub fn next(&self, st: &ConsumerState) -> Result<Option<Next>, QueueError> {
        let ring = self.ring();
        let Some(rec) = ring.front(st)? else { return Ok(None) };
        let mut head = [0u8; ORIGIN_MAX];
        let n = rec.len.min(ORIGIN_MAX);
        ring.read_front(st, 0, &mut head[..n]);
        let (origin, skip) = Origin::decode(&head[..n]).ok_or(QueueError::Corrupt("bad message origin"))?;
        Ok(Some(Next { origin, len: rec.len - skip, skip, rec }))
    }

    /// Copies the message `next` (this reader's [`Queue::next`]) into
    /// `buf[..next.len]` and removes it.
    ///
    /// # Panics
    /// If `buf` is shorter than the message (a caller bug).
    pub fn take(&self, st: &mut ConsumerState, next: &Next, buf: &mut [u8]) {
        let ring = self.ring();
        ring.read_front(st, next.skip, &mut buf[..next.len]);
        ring.pop_front(st, &next.rec);
    }

    /// How many messages are queued.
    ///
    /// # Errors
    /// `Corrupt`.
    pub fn count(&self, st: &ConsumerState) -> Result<usize, QueueError> {
        Ok(self.ring().records(st)?.len())
    }

    /// Waits until a message is queued or `deadline` passes; whether one is.
    pub fn wait_message(&self, st: &ConsumerState, deadline: Option<Instant>, mode: WaitMode) -> bool {
        let ring = self.ring();
        wait_ready(&mut || ring.has_data(st), ring.data_signal(), mode, deadline)
    }

    /// The queue as an object to wait on without reading (see
    /// [`Ring::watch_signal`]): (word, count of its sleepers).
    pub fn watch_signal(&self) -> (&AtomicU32, &AtomicU32) {
        self.ring().watch_signal()
    }

    /// Whether a message is queued past `st`.
    pub fn has_message(&self, st: &ConsumerState) -> bool {
        self.ring().has_data(st)
    }

    /// The reader's starting position.
    pub fn reader(&self) -> ConsumerState {
        ConsumerState::at(0)
    }

    /// Where the reader is now, as it published it: for a writer's look at
    /// the queue ([`Queue::count`], [`Queue::next`] on it are a snapshot
    /// that the reader may invalidate at any moment).
    pub fn published_reader(&self) -> ConsumerState {
        ConsumerState::at(self.ring().published_head())
    }

    fn info(&self) -> &SlotInfo {
        self.seg.object_at(INFO_OFFSET).expect("inside the checked layout")
    }

    /// Publishes the server's read timeout (ms, `u64::MAX` = forever).
    pub fn set_read_timeout_ms(&self, ms: u64) {
        self.info().read_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// The server's read timeout as it published it.
    pub fn read_timeout_ms(&self) -> u64 {
        self.info().read_timeout_ms.load(Ordering::Relaxed)
    }

    /// Counts one datagram from the network (server side).
    pub fn count_net(&self, what: NetCount) {
        self.info().net[what as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The network counts, indexed by [`NetCount`].
    pub fn net_counts(&self) -> [u64; NET_COUNTS] {
        std::array::from_fn(|i| self.info().net[i].load(Ordering::Relaxed))
    }

    /// Closes the queue: waiting and later writers get `Closed`.
    pub fn close(&self) {
        self.ring().close();
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.ring().is_closed()
    }
}

/// When a writer stops waiting for the write lock: its own deadline, but
/// no sooner than [`stall_grace`](crate::peer::stall_grace) from now.
fn lock_deadline(deadline: Option<Instant>) -> Option<Instant> {
    let grace = Instant::now().checked_add(crate::peer::stall_grace())?;
    deadline.map(|d| d.max(grace))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIVE: Peer<'static> = Peer { watch: None, alive: &|| true, every: Duration::from_millis(50) };

    fn read_all(q: &Queue, st: &mut ConsumerState) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(next) = q.next(st).unwrap() {
            let mut buf = vec![0; next.len];
            q.take(st, &next, &mut buf);
            out.push(buf);
        }
        out
    }

    #[test]
    fn messages_come_out_whole_in_order_with_their_origin() {
        let (fd, q) = Queue::create(100, 0).unwrap();
        let w = Queue::open(&fd).unwrap();
        let net = Origin::Network { addr: [7; 16], port: 9, sender: 42 };
        w.push(Origin::Local, b"one", Some(Duration::MAX), ALIVE).unwrap();
        w.push(net, b"", Some(Duration::MAX), ALIVE).unwrap();
        w.push(Origin::Local, &[5; 100], Some(Duration::MAX), ALIVE).unwrap();
        assert_eq!(w.push(Origin::Local, &[5; 101], Some(Duration::MAX), ALIVE), Err(QueueError::TooBig { max: 100 }));
        let mut st = q.reader();
        assert_eq!(q.count(&st).unwrap(), 3);
        let first = q.next(&st).unwrap().unwrap();
        assert_eq!((first.origin, first.len), (Origin::Local, 3));
        q.take(&mut st, &first, &mut [0; 3]);
        assert_eq!(q.next(&st).unwrap().unwrap().origin, net);
        assert_eq!(read_all(&q, &mut st), vec![vec![], vec![5; 100]]);
    }

    #[test]
    fn a_full_queue_fails_a_writer_at_its_deadline_and_closing_stops_writers() {
        let (_fd, q) = Queue::create(1000, 0).unwrap();
        let now = Some(Duration::ZERO);
        while q.push(Origin::Local, &[1; 1000], now, ALIVE).is_ok() {}
        assert_eq!(q.push(Origin::Local, &[1; 1000], now, ALIVE), Err(QueueError::Full));
        assert_eq!(
            q.push(
                Origin::Local,
                &[1; 1000],
                None,
                Peer { watch: None, alive: &|| false, every: Duration::from_millis(50) }
            ),
            Err(QueueError::Closed)
        );
        q.close();
        assert_eq!(q.push(Origin::Local, b"x", Some(Duration::MAX), ALIVE), Err(QueueError::Closed));
    }

    #[test]
    fn a_zero_timeout_writer_waits_out_another_writers_append_but_not_a_stalled_one() {
        let (fd, q) = Queue::create(64, 4096).unwrap();
        let w = Queue::open(&fd).unwrap();
        let zero = Some(Duration::ZERO);
        std::thread::scope(|s| {
            let held = q.lock().lock();
            let writer = s.spawn(|| w.push(Origin::Local, b"after you", zero, ALIVE));
            std::thread::sleep(Duration::from_millis(100));
            drop(held);
            assert_eq!(writer.join().unwrap(), Ok(()), "contention is not a full queue");
        });
        let _stalled = q.lock().lock();
        let started = Instant::now();
        std::thread::scope(|s| {
            assert_eq!(s.spawn(|| w.push(Origin::Local, b"x", zero, ALIVE)).join().unwrap(), Err(QueueError::Full));
        });
        assert!(started.elapsed() >= crate::peer::stall_grace(), "gave the holder its grace");
        assert_eq!(read_all(&q, &mut q.reader()), vec![b"after you".to_vec()]);
    }

    #[test]
    fn a_writer_that_dies_mid_message_leaves_nothing_the_reader_sees() {
        let (fd, q) = Queue::create(64, 4096).unwrap();
        let w = std::sync::Arc::new(Queue::open(&fd).unwrap());
        w.push(Origin::Local, b"before", Some(Duration::MAX), ALIVE).unwrap();
        // A writer thread takes the lock, scribbles a half record past the
        // published tail, and exits holding the lock.
        let w2 = w.clone();
        std::thread::spawn(move || {
            std::mem::forget(w2.lock().lock());
            let tail = w2.ring().published_tail() as usize;
            w2.seg.write(DATA_OFFSET + tail % w2.capacity, &[0xff; 40]).unwrap();
        })
        .join()
        .unwrap();
        let mut st = q.reader();
        assert_eq!(q.count(&st).unwrap(), 1);
        w.push(Origin::Local, b"after", Some(Duration::from_secs(5)), ALIVE).unwrap();
        assert_eq!(read_all(&q, &mut st), vec![b"before".to_vec(), b"after".to_vec()]);
    }

    #[test]
    fn a_forged_layout_or_origin_is_refused() {
        let (fd, q) = Queue::create(64, 4096).unwrap();
        let info: &SlotInfo = q.seg.object_at(INFO_OFFSET).unwrap();
        info.max_message.store(1 << 20, Ordering::Relaxed);
        assert_eq!(Queue::open(&fd).unwrap_err(), SegmentError::BadSize);
        info.max_message.store(64, Ordering::Relaxed);
        let mut p = crate::ring::ProducerState::at(0);
        assert!(q.ring().try_push(&mut p, &[9, 1, 2], false).unwrap());
        assert_eq!(q.next(&q.reader()), Err(QueueError::Corrupt("bad message origin")));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Whatever a hostile writer scribbles over the queue, the reader
        /// gets messages or a typed error: never a panic, an out-of-bounds
        /// access or a hang.
        #[test]
        fn a_hostile_writer_cannot_crash_the_reader(
            writes in proptest::collection::vec((0usize..4096 + DATA_OFFSET, proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64)), 1..8),
        ) {
            let (fd, q) = Queue::create(100, 4096).unwrap();
            let w = Queue::open(&fd).unwrap();
            for i in 0..5u8 {
                w.push(Origin::Local, &[i; 40], Some(Duration::ZERO), ALIVE).unwrap();
            }
            for (at, bytes) in &writes {
                let _ = q.seg.write(*at, bytes);
            }
            let mut st = q.reader();
            let _ = q.count(&st);
            for _ in 0..16 {
                match q.next(&st) {
                    Ok(Some(next)) => {
                        let mut buf = vec![0; next.len];
                        q.take(&mut st, &next, &mut buf);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            let _ = Queue::open(&fd);
        }
    }
}
