//! The data plane of a named-pipe instance: a [`Duplex`] link whose two ends
//! may each be held by several threads and processes at once.
//!
//! A [`ShmLink`](../../switchboard/link/index.html) keeps each side's ring
//! position privately; a pipe end cannot, because classic pipe handles are
//! shared: in message read mode a read into a short buffer leaves the rest of
//! the message for the *next read by any holder of that end* (spec 02-S18).
//! So each direction's reader position — the ring's published head plus
//! the bytes of the front record already read — and writer position (the
//! ring's published tail) are shared, each guarded by an abandonable [`MutexState`]
//! (the named mutex's lock: a holder killed mid-read or mid-write hands it
//! over as abandoned instead of blocking the others forever).
//!
//! Messages are one or more ring records; every record but the last has the
//! "more" bit. A writer killed (or timed out) between two chunks of one
//! message leaves `writing` set; the next writer ends the torn message
//! with an empty final chunk so that it cannot merge with its own.
//!
//! End 0 is the client (writes ring 0, reads ring 1), end 1 the server.

use std::time::Instant;

use crate::duplex::{Duplex, SegmentMem};
use crate::mutex::{LockGaveUp, Locked, MutexState};
use crate::ring::{wait_ready_or_peer, ConsumerState, Peer, ProducerState, Ring, RingError, Signal, WaitMode, Waited};
use crate::segment::{SegmentError, Shared};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use switchboard_sys::eventfd::EventFd;
use switchboard_sys::{AsFd, OwnedFd};

/// How often a waiting reader or writer asks whether the peer is alive.
pub use crate::peer::PEER_CHECK;

/// One direction's shared bookkeeping. The positions themselves are the
/// ring's published head and tail (one store each, so a holder killed at
/// any instruction leaves none stale); this adds what a ring cannot hold.
///
/// Readers' fields and writers' fields are on cache lines of their own:
/// on one line, every message moved it between the writing and the
/// reading process four times (each side's lock and unlock), where the
/// ring itself moves its lines once.
#[repr(C)]
#[derive(Debug)]
struct DirCtl {
    read_lock: MutexState,
    /// The ring head `offset` belongs to: once the head moves on (the
    /// record was popped), the offset no longer counts.
    offset_at: AtomicU64,
    /// Bytes of the front record already read (message read mode).
    offset: AtomicU32,
    _readers_line: [AtomicU32; 9],
    write_lock: MutexState,
    /// A message of several chunks is being written.
    writing: AtomicU32,
    _writers_line: [AtomicU32; 11],
}

const _: () = {
    assert!(std::mem::offset_of!(DirCtl, write_lock) == 64);
    assert!(std::mem::size_of::<DirCtl>() == 128);
    assert!(std::mem::size_of::<PipeCtl>() <= crate::duplex::EXTRA_SIZE);
};

impl DirCtl {
    /// Bytes of the record at ring position `head` already read. Read
    /// under the read lock (its acquire orders these loads).
    fn read_offset(&self, head: u64) -> usize {
        if self.offset_at.load(Ordering::Acquire) == head {
            self.offset.load(Ordering::Acquire) as usize
        } else {
            0
        }
    }

    /// Records a partial read of the record at `head`. A holder killed
    /// between the two stores leaves either the old offset of this record
    /// or an offset that does not count: the next reader re-reads at most
    /// what the dead one took.
    fn set_read_offset(&self, head: u64, offset: usize) {
        self.offset.store(offset as u32, Ordering::Release);
        self.offset_at.store(head, Ordering::Release);
    }
}

/// The shared state of both directions.
#[repr(C)]
#[derive(Debug)]
pub struct PipeCtl {
    dirs: [DirCtl; 2],
    holders: [AtomicU32; 2],
    disconnected: AtomicU32,
    _pad: AtomicU32,
}

#[allow(unsafe_code)]
// SAFETY: repr(C), atomics only (MutexState is Shared), any bit pattern valid.
unsafe impl Shared for PipeCtl {}

/// Why a pipe operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelError {
    /// The other end is closed or dead (reads: after draining).
    Closed,
    /// The other end went away while this write waited for room (classic
    /// `ERROR_BROKEN_PIPE` there, where a write that finds it gone gets
    /// `ERROR_NO_DATA`).
    Broken,
    /// The server disconnected this instance.
    Disconnected,
    /// The deadline passed.
    TimedOut,
    /// The peer wrote impossible indices or headers.
    Corrupt(&'static str),
}

impl From<RingError> for ChannelError {
    fn from(e: RingError) -> Self {
        match e {
            RingError::Closed => ChannelError::Closed,
            RingError::Corrupt(why) => ChannelError::Corrupt(why),
        }
    }
}

/// How a read treats message boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// At most one message per read; a short buffer leaves the rest.
    Message,
    /// Bytes of several messages run together.
    Bytes,
}

/// What a read returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Bytes copied.
    pub len: usize,
    /// The message continues (message framing, buffer full).
    pub more: bool,
}

/// What a peek saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeekOutcome {
    /// Bytes copied into the buffer.
    pub copied: usize,
    /// Bytes readable in total.
    pub available: usize,
    /// Bytes of the current message a read would still find after taking
    /// what was copied (classic `lpBytesLeftThisMessage`; 0 for byte framing).
    pub left_in_message: usize,
}

/// One end of a pipe instance's data plane.
#[derive(Debug)]
pub struct Channel {
    duplex: Duplex,
    end: usize,
    wait: WaitMode,
    /// The other end's doorbell: rung after publishing into its inbound
    /// ring while it sleeps on it, and when this side closes.
    peer_bell: Option<EventFd>,
}

impl Channel {
    /// Creates an instance's data plane with rings of `capacity` bytes; the
    /// creator holds end `end`, the descriptor goes to the other end.
    ///
    /// # Errors
    /// `BadSize` for an invalid capacity; system errors.
    pub fn create(capacity: usize, end: usize) -> Result<(OwnedFd, Channel), SegmentError> {
        let (fd, duplex) = Duplex::create(capacity)?;
        let ctl: &PipeCtl = duplex.extra();
        ctl.holders[0].store(1, Ordering::Relaxed);
        ctl.holders[1].store(1, Ordering::Relaxed);
        Ok((fd, Channel { duplex, end: end & 1, wait: WaitMode::default(), peer_bell: None }))
    }

    /// Maps end `end` of a data plane received from a peer.
    ///
    /// # Errors
    /// A [`SegmentError`] for anything that does not check out.
    pub fn open<Fd: AsFd>(fd: Fd, end: usize) -> Result<Channel, SegmentError> {
        Ok(Channel { duplex: Duplex::open(fd)?, end: end & 1, wait: WaitMode::default(), peer_bell: None })
    }

    /// Bytes each direction's ring holds.
    pub fn capacity(&self) -> usize {
        self.duplex.capacity()
    }

    /// Sets the other end's doorbell (see [`Channel::arm_bell`]).
    pub fn set_peer_bell(&mut self, bell: EventFd) {
        self.peer_bell = Some(bell);
    }

    /// Arms (`true`) or disarms this end's doorbell: while armed, the other
    /// end rings its bell (this end's eventfd) after each chunk it
    /// publishes. Returns whether there is no need to sleep: data, or the
    /// channel's end, is already there.
    pub fn arm_bell(&self, on: bool) -> bool {
        let (ring, _) = self.inbound();
        ring.arm_bell(on);
        ring.has_data(&ConsumerState::at(ring.published_head())) || ring.is_closed() || self.disconnected()
    }

    /// The other end's doorbell (to hand over with this end).
    pub fn peer_bell(&self) -> Option<&EventFd> {
        self.peer_bell.as_ref()
    }

    /// Whether this end armed its doorbell.
    pub fn bell_armed(&self) -> bool {
        self.inbound().0.bell_armed()
    }

    fn ring_peer(&self) {
        if let Some(bell) = &self.peer_bell {
            bell.notify();
        }
    }

    /// Sets how this holder waits.
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.wait = mode;
    }

    fn ctl(&self) -> &PipeCtl {
        self.duplex.extra()
    }

    /// (ring, its control) this end reads from.
    fn inbound(&self) -> (Ring<'_, SegmentMem<'_>>, &DirCtl) {
        let dir = 1 - self.end;
        (self.duplex.ring(dir), &self.ctl().dirs[dir])
    }

    fn outbound(&self) -> (Ring<'_, SegmentMem<'_>>, &DirCtl) {
        (self.duplex.ring(self.end), &self.ctl().dirs[self.end])
    }

    /// Counts one more holder of this end (before handing it to another
    /// process), so that one holder closing does not close the end.
    pub fn add_holder(&self) {
        self.ctl().holders[self.end].fetch_add(1, Ordering::SeqCst);
    }

    /// This holder is done; the last holder of an end closes both rings:
    /// the peer's reads drain and then fail, its writes fail.
    pub fn release_holder(&self) {
        if self.ctl().holders[self.end].fetch_sub(1, Ordering::SeqCst) <= 1 {
            self.close();
        }
    }

    /// Closes both directions at once (the last holder left, or the peer died).
    pub fn close(&self) {
        self.duplex.ring(0).close();
        self.duplex.ring(1).close();
        self.ring_peer();
    }

    /// Server side: drops the client, discarding unread data both ways.
    pub fn disconnect(&self) {
        self.ctl().disconnected.store(1, Ordering::SeqCst);
        self.close();
    }

    fn disconnected(&self) -> bool {
        self.ctl().disconnected.load(Ordering::SeqCst) != 0
    }

    /// Writes one message (or, for byte pipes, one run of bytes), waiting
    /// for room while the peer's buffer is full (backpressure: nothing is
    /// dropped). A wait ends when `peer` is gone.
    ///
    /// # Errors
    /// `Closed` when the reading end is gone, `Disconnected`, `TimedOut`, `Corrupt`.
    pub fn write(&self, data: &[u8], deadline: Option<Instant>, peer: Peer<'_>) -> Result<(), ChannelError> {
        let (ring, dir) = self.outbound();
        let _held = self.take(&dir.write_lock, deadline, peer)?;
        // The ring's published tail is the one truth: a writer killed after
        // publishing a chunk but before any bookkeeping leaves nothing stale.
        let mut st = ring.shared_producer();
        if dir.writing.load(Ordering::Acquire) != 0 {
            // A long message was cut short (its writer died or timed out
            // between two chunks): end it here, so ours cannot merge with it.
            self.push(&ring, &mut st, &[], false, deadline, peer)?;
            dir.writing.store(0, Ordering::Release);
        }
        let max = ring.max_chunk();
        if data.len() <= max {
            return self.push(&ring, &mut st, data, false, deadline, peer);
        }
        dir.writing.store(1, Ordering::Release);
        let mut chunks = data.chunks(max).peekable();
        while let Some(chunk) = chunks.next() {
            self.push(&ring, &mut st, chunk, chunks.peek().is_some(), deadline, peer)?;
        }
        dir.writing.store(0, Ordering::Release);
        Ok(())
    }

    /// Waits until the other end has read everything this end wrote (the
    /// classic `FlushFileBuffers` on a pipe): an echo server that writes,
    /// flushes and disconnects does not destroy its reply.
    ///
    /// # Errors
    /// `Broken` when the other end went away leaving some of it unread,
    /// `Disconnected`, `TimedOut`, `Corrupt`.
    pub fn flush(&self, deadline: Option<Instant>, peer: Peer<'_>) -> Result<(), ChannelError> {
        let (ring, _) = self.outbound();
        loop {
            if self.disconnected() {
                return Err(ChannelError::Disconnected);
            }
            let unread = ring.published_tail().wrapping_sub(ring.published_head());
            if unread == 0 {
                return Ok(());
            }
            if ring.is_closed() {
                return Err(ChannelError::Broken);
            }
            let tail = ring.published_tail();
            let ready = &mut || ring.published_head() == tail || ring.is_closed() || self.disconnected();
            self.wait(ready, ring.space_signal(), deadline, peer)?;
        }
    }

    /// Writes `data` only if it can go in whole at once, without waiting:
    /// `Ok(false)` (nothing written) when it is larger than one chunk, the
    /// ring lacks room, or another holder is writing.
    ///
    /// # Errors
    /// As [`Channel::write`], `TimedOut` aside.
    pub fn try_write(&self, data: &[u8], peer: Peer<'_>) -> Result<bool, ChannelError> {
        if data.len() > self.outbound().0.max_chunk() {
            return Ok(false);
        }
        // One chunk with a deadline already passed: written whole, or not at all.
        match self.write(data, Some(Instant::now()), peer) {
            Ok(()) => Ok(true),
            Err(ChannelError::TimedOut) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn push(
        &self,
        ring: &Ring<'_, SegmentMem<'_>>,
        st: &mut ProducerState,
        chunk: &[u8],
        more: bool,
        deadline: Option<Instant>,
        peer: Peer<'_>,
    ) -> Result<(), ChannelError> {
        let mut waited = false;
        loop {
            if self.disconnected() {
                return Err(ChannelError::Disconnected);
            }
            let pushed = match ring.try_push(st, chunk, more) {
                Err(RingError::Closed) if waited => return Err(ChannelError::Broken),
                other => other?,
            };
            if pushed {
                // SYNC: published (SeqCst) before this load; the reader
                // armed (SeqCst) before looking for data (Dekker).
                if ring.bell_armed() {
                    self.ring_peer();
                }
                return Ok(());
            }
            let ready = &mut || ring.has_room(st, chunk.len());
            waited = true;
            match self.wait(ready, ring.space_signal(), deadline, peer) {
                Err(ChannelError::Closed) => return Err(ChannelError::Broken),
                other => other?,
            }
        }
    }

    /// Takes one of the channel's shared locks within the caller's deadline
    /// and while `peer` is there (a peer gone closes the channel).
    fn take<'m>(
        &self,
        m: &'m MutexState,
        deadline: Option<Instant>,
        peer: Peer<'_>,
    ) -> Result<Locked<'m>, ChannelError> {
        match m.lock_until(deadline, peer) {
            Ok((held, _)) => Ok(held),
            Err(LockGaveUp::TimedOut) => Err(ChannelError::TimedOut),
            Err(LockGaveUp::PeerGone) => {
                self.close();
                Err(ChannelError::Closed)
            }
        }
    }

    /// Waits for `ready` while `peer` is there; a dead
    /// peer closes the channel (the caller then sees `Closed`).
    fn wait(
        &self,
        ready: &mut dyn FnMut() -> bool,
        signal: Signal<'_>,
        deadline: Option<Instant>,
        peer: Peer<'_>,
    ) -> Result<(), ChannelError> {
        match wait_ready_or_peer(ready, signal, self.wait, deadline, peer) {
            Waited::Ready => Ok(()),
            Waited::TimedOut => Err(ChannelError::TimedOut),
            Waited::PeerGone => {
                self.close();
                Ok(())
            }
        }
    }

    /// Reads into `buf` (see [`Framing`]), waiting for data. In message
    /// framing a message longer than `buf` returns its first part with
    /// `more`; the next read by any holder continues it.
    ///
    /// # Errors
    /// `Closed` once the writing end is gone and everything is read,
    /// `Disconnected`, `TimedOut`, `Corrupt`.
    pub fn read(
        &self,
        buf: &mut [u8],
        framing: Framing,
        deadline: Option<Instant>,
        peer: Peer<'_>,
    ) -> Result<ReadOutcome, ChannelError> {
        let (ring, dir) = self.inbound();
        let _held = self.take(&dir.read_lock, deadline, peer)?;
        let mut st = ConsumerState::at(ring.published_head());
        let mut copied = 0;
        loop {
            if self.disconnected() {
                return Err(ChannelError::Disconnected);
            }
            let front = match ring.front(&st) {
                Err(RingError::Closed) if copied > 0 => return Ok(ReadOutcome { len: copied, more: false }),
                // Another thread may be closing the rings one after the
                // other: finish it, so this thread's next write sees the
                // channel closed too.
                Err(RingError::Closed) => {
                    self.close();
                    return Err(ChannelError::Closed);
                }
                other => other?,
            };
            let Some(rec) = front else {
                if copied > 0 && framing == Framing::Bytes {
                    return Ok(ReadOutcome { len: copied, more: false });
                }
                let ready = &mut || ring.has_data(&st) || ring.is_closed();
                self.wait(ready, ring.data_signal(), deadline, peer)?;
                continue;
            };
            let offset = dir.read_offset(st.position()).min(rec.len);
            let n = (rec.len - offset).min(buf.len() - copied);
            ring.read_front(&st, offset, &mut buf[copied..copied + n]);
            copied += n;
            if offset + n < rec.len {
                dir.set_read_offset(st.position(), offset + n);
                return Ok(ReadOutcome { len: copied, more: framing == Framing::Message });
            }
            // Popping moves the ring's head, which voids the offset at once.
            ring.pop_front(&mut st, &rec);
            // A zero-length message at the front is a read of 0 bytes in
            // byte framing too (the classic pipe returns it, then the
            // writer's close).
            if rec.len == 0 && !rec.more && copied == 0 {
                return Ok(ReadOutcome { len: 0, more: false });
            }
            let full = copied == buf.len();
            match framing {
                Framing::Message if !rec.more => return Ok(ReadOutcome { len: copied, more: false }),
                Framing::Message if full => return Ok(ReadOutcome { len: copied, more: true }),
                Framing::Bytes if full => return Ok(ReadOutcome { len: copied, more: false }),
                _ => {}
            }
        }
    }

    /// Looks at what is readable without consuming it: copies from the
    /// current message (message framing) or from everything (bytes).
    ///
    /// Takes no lock, so it never waits — not behind a read blocked for
    /// data (the classic peek does not wait for a pending read either), nor
    /// behind a lock word a hostile peer wrote. A peek that raced a reader
    /// (the head or the partial-read offset moved while it copied) looks
    /// again; one that keeps racing answers with its last look, which is
    /// bounds-checked like any other.
    ///
    /// # Errors
    /// `Closed` when nothing is left and the other end is gone,
    /// `Disconnected`, `Corrupt`.
    pub fn peek(&self, buf: &mut [u8], framing: Framing) -> Result<PeekOutcome, ChannelError> {
        let (ring, dir) = self.inbound();
        let position = || {
            let head = ring.published_head();
            (head, dir.read_offset(head))
        };
        let mut tries = 0;
        let out = loop {
            let before = position();
            let out = self.peek_once(buf, framing)?;
            tries += 1;
            if position() == before || tries == 64 {
                break out;
            }
        };
        // Nothing left to read and nobody to write more: say so, as a read
        // would (a peek-polling loop must learn the peer left).
        if out.available == 0 && self.disconnected() {
            return Err(ChannelError::Disconnected);
        }
        if out.available == 0 && ring.is_closed() {
            return Err(ChannelError::Closed);
        }
        Ok(out)
    }

    fn peek_once(&self, buf: &mut [u8], framing: Framing) -> Result<PeekOutcome, ChannelError> {
        let (ring, dir) = self.inbound();
        let st = ConsumerState::at(ring.published_head());
        let records = ring.records(&st)?;
        let mut skip = dir.read_offset(st.position());
        let mut out = PeekOutcome::default();
        let mut in_message = framing == Framing::Message;
        for &(pos, len, more) in &records {
            let from = skip.min(len);
            skip = 0;
            let part = len - from;
            out.available += part;
            if in_message || framing == Framing::Bytes {
                let n = part.min(buf.len() - out.copied);
                ring.read_record(pos, from, &mut buf[out.copied..out.copied + n]);
                out.copied += n;
                // What a read would still find of this message after
                // taking what was copied (classic `lpBytesLeftThisMessage`).
                if in_message {
                    out.left_in_message += part - n;
                }
            }
            in_message &= more;
        }
        Ok(out)
    }

    /// The inbound ring's watch signal (see [`Ring::watch_signal`]).
    pub fn watch_signal(&self) -> (&AtomicU32, &AtomicU32) {
        self.inbound().0.watch_signal()
    }

    /// Whether a read would not wait: data, or the channel's end (closed
    /// or disconnected), is there.
    pub fn readable(&self) -> bool {
        let (ring, _) = self.inbound();
        self.has_data() || ring.is_closed() || self.disconnected()
    }

    /// Whether this holder could read now without waiting (for polling).
    pub fn has_data(&self) -> bool {
        let (ring, _) = self.inbound();
        ring.has_data(&ConsumerState::at(ring.published_head()))
    }
}
