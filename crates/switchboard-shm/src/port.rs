//! The completion-port packet queue in shared memory (spec 04).
//!
//! A bounded FIFO of fixed packets plus a table of waiting consumers, all
//! guarded by a [`MutexState`] — the same abandonable futex mutex as the
//! named mutex. Why a lock and not a lock-free queue: in a lock-free MPMC
//! queue a poster killed between claiming a slot and publishing it leaves a
//! hole that stops every consumer at that slot. Here every mutation under
//! the lock is *crash-consistent* — a packet is written before the index that
//! publishes it, a waiter's slot is filled before the state that grants it —
//! and a process killed while holding the lock hands it to the next taker as
//! abandoned. A kill at any instruction therefore loses at most the packet
//! being posted (or the packet already handed to the consumer that died).
//!
//! Release order: a poster hands its packet *directly* to the waiting
//! consumer with the highest stamp (the most recent waiter: LIFO, S07); only
//! when no consumer may be released does the packet join the queue.
//!
//! Concurrency (S08): the `running` table holds the thread ids of consumers
//! that returned from a get and have not called get again; a consumer is
//! released only while fewer than `concurrency` of them are alive.
//!
//! Fields and their writers: everything is written under `lock`, except a
//! waiter's `state`, which the waiter resets from GRANTED/ABANDONED to EMPTY
//! after reading its packet, and which wakes it (futex word).

use std::time::{Duration, Instant};

use crate::mutex::{LockGaveUp, Locked, MutexState};
use crate::peer::Peer;
#[cfg(not(loom))]
use crate::segment::{Kind, Segment, SegmentError, Shared};
use crate::sync::{cpu, futex, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
use switchboard_sys::{AsFd, OwnedFd};

/// Most consumers waiting at once on one port.
#[cfg(not(loom))]
pub const MAX_WAITERS: usize = 64;
/// Most consumers counted as running at once.
#[cfg(not(loom))]
pub const MAX_RUNNING: usize = 64;
/// Under loom: tables small enough to explore every interleaving.
#[cfg(loom)]
pub const MAX_WAITERS: usize = 2;
/// Under loom: see [`MAX_WAITERS`].
#[cfg(loom)]
pub const MAX_RUNNING: usize = 2;

const EMPTY: u32 = 0;
const WAITING: u32 = 1;
const GRANTED: u32 = 2;
const ABANDONED: u32 = 3;
/// A poster claimed the waiter (under the lock) and is writing its packet.
const GRANTING: u32 = 4;

/// One completion packet. Opaque: never interpreted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    /// Bytes transferred.
    pub bytes: u32,
    /// Completion key.
    pub key: u64,
    /// Overlapped value.
    pub overlapped: u64,
}

/// One packet's place in the queue (opaque).
#[repr(C)]
#[derive(Debug, Default)]
pub struct Slot {
    bytes: AtomicU32,
    _pad: AtomicU32,
    key: AtomicU64,
    overlapped: AtomicU64,
}

impl Slot {
    fn store(&self, p: Packet) {
        self.bytes.store(p.bytes, Ordering::Relaxed);
        self.key.store(p.key, Ordering::Relaxed);
        self.overlapped.store(p.overlapped, Ordering::Relaxed);
    }
    fn load(&self) -> Packet {
        Packet {
            bytes: self.bytes.load(Ordering::Relaxed),
            key: self.key.load(Ordering::Relaxed),
            overlapped: self.overlapped.load(Ordering::Relaxed),
        }
    }
}

#[repr(C)]
#[derive(Debug, Default)]
struct Waiter {
    tid: AtomicU32,
    state: AtomicU32,
    stamp: AtomicU64,
    packet: Slot,
    /// Set while the waiter sleeps in the kernel, so a poster that grants
    /// to a spinning waiter skips the wake syscall (Dekker with `state`).
    sleeping: AtomicU32,
    _pad: AtomicU32,
    /// One waiter per cache line: a grant moves one line, not two.
    _line: [AtomicU32; 4],
}

/// The control block. Laid out by who writes what: the first cache line
/// holds what every post and get writes (the lock, the waiter stamp and the
/// first running entries), so that a hand-off moves that line once, not
/// three; each waiter has a line of its own.
#[repr(C)]
#[derive(Debug)]
pub struct PortCtl {
    lock: MutexState,
    stamp: AtomicU64,
    /// Bit `i` set: waiter slot `i` may be in use (not EMPTY), so that a
    /// post or get looks at those slots only, not all 64 lines. Set under
    /// the lock when a slot is taken; cleared by whoever empties it,
    /// *before* it does (so a set bit never hides a free slot, and a slot
    /// is reused only once both say so). A hint a peer may scribble: every
    /// slot found through it is checked.
    occupied: AtomicU64,
    /// Bit `i` set: `running[i]` holds a thread id. Kept with the table
    /// under the lock, so that the common checks read one word, not four
    /// lines; recomputed from the table whenever the liveness of running
    /// threads is asked (so a scribbled mask only costs that).
    running_mask: AtomicU64,
    running: [AtomicU32; MAX_RUNNING],
    closed: AtomicU32,
    concurrency: AtomicU32,
    capacity: AtomicU32,
    space_waiters: AtomicU32,
    space_seq: AtomicU32,
    /// Consumers sleeping on the port's doorbell (each adds one when it
    /// arms, takes it back at its next get). Posters ring the bell while it
    /// is non-zero; one left by a dead consumer costs a ring per post.
    bells: AtomicU32,
    /// Bumped when a packet joins the queue or the port closes, while
    /// `watchers` (threads waiting on the port as an object, without
    /// taking a packet) is non-zero; they sleep on it.
    watch_seq: AtomicU32,
    watchers: AtomicU32,
    /// Where a poster last woke a sleeping consumer (a [`cpu`] stamp): a
    /// consumer does not spin for a packet from a poster on its own CPU.
    poster_cpu: AtomicU32,
    _pad: AtomicU32,
    head: AtomicU64,
    tail: AtomicU64,
    _align: [AtomicU64; 4],
    waiters: [Waiter; MAX_WAITERS],
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<Waiter>() == 64);
    assert!(std::mem::offset_of!(PortCtl, waiters) % 64 == 0);
    assert!(std::mem::offset_of!(PortCtl, running) < 64);
};

#[cfg(not(loom))]
#[allow(unsafe_code)]
// SAFETY: repr(C), atomics only (MutexState is Shared), any bit pattern valid.
unsafe impl Shared for PortCtl {}
#[cfg(not(loom))]
#[allow(unsafe_code)]
// SAFETY: repr(C), atomics only, any bit pattern valid.
unsafe impl Shared for Slot {}

/// Where a queue's control block and packet slots live: a shared segment,
/// or (for loom models) plain memory.
pub trait PortMem {
    /// The control block.
    fn ctl(&self) -> &PortCtl;
    /// Slot `index` (`index < capacity`, checked by the caller).
    fn slot(&self, index: usize) -> &Slot;
}

#[cfg(not(loom))]
impl PortMem for Segment {
    fn ctl(&self) -> &PortCtl {
        self.object_at(CTL_OFFSET).expect("layout checked on open")
    }
    fn slot(&self, index: usize) -> &Slot {
        let at = SLOTS_OFFSET + index * std::mem::size_of::<Slot>();
        self.object_at(at).expect("in bounds: the segment size was checked against the capacity")
    }
}

const CTL_OFFSET: usize = 64;
const SLOTS_OFFSET: usize = 8192;
const _: () = assert!(CTL_OFFSET + std::mem::size_of::<PortCtl>() <= SLOTS_OFFSET);

/// Why a port operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortError {
    /// The port was closed (post: `InvalidHandle`; get: `AbandonedWait`).
    Closed,
    /// The queue is full and the policy is to fail.
    QueueFull,
    /// The deadline passed.
    TimedOut,
    /// More than [`MAX_WAITERS`] consumers wait at once.
    TooManyWaiters,
    /// The segment's parameters are impossible.
    Corrupt,
    /// The port's lock stayed held past [`stall_grace`](crate::peer::stall_grace) (a post).
    Stalled,
}

/// A port queue over its memory (a mapped [`Segment`] outside loom).
#[derive(Debug)]
pub struct PortQueue<M> {
    mem: M,
    capacity: u64,
}

/// The entries of a table (of at most 64) whose bit is set in `mask`,
/// with their index.
fn marked<T>(table: &[T], mask: u64) -> impl Iterator<Item = (usize, &T)> {
    table.iter().enumerate().filter(move |(i, _)| mask & (1 << i) != 0)
}

#[cfg(not(loom))]
fn alive(tid: u32) -> bool {
    tid != 0 && switchboard_sys::process::is_alive(tid)
}

#[cfg(loom)]
fn alive(tid: u32) -> bool {
    tid != 0
}

#[cfg(not(loom))]
impl PortQueue<Segment> {
    /// Bytes of a port segment with `capacity` packets.
    pub fn segment_size(capacity: u32) -> usize {
        SLOTS_OFFSET + capacity as usize * std::mem::size_of::<Slot>()
    }

    /// Creates a port queue of `capacity` packets (1..=1M).
    ///
    /// # Errors
    /// `BadSize` for an impossible capacity; system errors.
    pub fn create(capacity: u32, concurrency: u32) -> Result<(OwnedFd, Self), SegmentError> {
        if capacity == 0 || capacity > 1 << 20 {
            return Err(SegmentError::BadSize);
        }
        let (fd, seg) = Segment::create_sized(Kind::Port, Self::segment_size(capacity), "switchboard-port")?;
        let ctl: &PortCtl = seg.object_at(CTL_OFFSET)?;
        ctl.capacity.store(capacity, Ordering::Relaxed);
        ctl.concurrency.store(concurrency, Ordering::Relaxed);
        Ok((fd, PortQueue { mem: seg, capacity: u64::from(capacity) }))
    }

    /// Maps a port queue received from a peer and checks its layout.
    ///
    /// # Errors
    /// A [`SegmentError`] for anything that does not check out.
    pub fn open<Fd: AsFd>(fd: Fd) -> Result<Self, SegmentError> {
        let seg = Segment::open(fd, Kind::Port)?;
        let capacity = seg.object_at::<PortCtl>(CTL_OFFSET)?.capacity.load(Ordering::Relaxed);
        if capacity == 0 || capacity > 1 << 20 || Self::segment_size(capacity) != seg.len() {
            return Err(SegmentError::BadSize);
        }
        Ok(PortQueue { mem: seg, capacity: u64::from(capacity) })
    }
}

impl<M: PortMem> PortQueue<M> {
    fn ctl(&self) -> &PortCtl {
        self.mem.ctl()
    }

    fn slot(&self, index: u64) -> &Slot {
        self.mem.slot((index % self.capacity) as usize)
    }

    /// The queue's lock for a call that may give up: at `deadline`
    /// (`TimedOut`) or when `server` is gone (`Closed`, and the port is
    /// closed) — so a lock word naming a live thread that never lets go
    /// (a hostile peer can write any tid) holds a caller no longer than it
    /// chose to wait. Only where giving up leaves nothing half done: before
    /// the caller changed anything, or a waiter that can take back its slot.
    fn lock_within(&self, deadline: Option<Instant>, server: Peer<'_>) -> Result<Locked<'_>, PortError> {
        match self.ctl().lock.lock_until(deadline, server) {
            Ok((held, _)) => Ok(held),
            Err(LockGaveUp::TimedOut) => Err(PortError::TimedOut),
            Err(LockGaveUp::PeerGone) => {
                server.wake_others();
                Err(PortError::Closed)
            }
        }
    }

    /// Unbounded: only tests take it so (to wedge it).
    #[cfg(test)]
    fn lock(&self) -> Locked<'_> {
        // Acquired or Abandoned: either way we own it, and every mutation
        // under it is crash-consistent, so the state is usable as it is.
        self.ctl().lock.lock().0
    }

    /// The concurrency value.
    pub fn concurrency(&self) -> u32 {
        self.ctl().concurrency.load(Ordering::Relaxed)
    }

    /// Packets queued (not yet handed to a consumer).
    pub fn queued(&self) -> u64 {
        let ctl = self.ctl();
        ctl.tail.load(Ordering::SeqCst).saturating_sub(ctl.head.load(Ordering::SeqCst))
    }

    /// Consumers currently registered as waiting.
    pub fn waiting(&self) -> u64 {
        self.ctl().waiters.iter().filter(|w| w.state.load(Ordering::SeqCst) == WAITING).count() as u64
    }

    /// Counts one more (`true`) or one fewer consumer sleeping on the
    /// port's doorbell. Arm, *then* look at [`PortQueue::queued`]; a poster
    /// queues, *then* looks at [`PortQueue::bell_armed`] (both `SeqCst`).
    pub fn arm_bell(&self, on: bool) {
        let bells = &self.ctl().bells;
        if on {
            bells.fetch_add(1, Ordering::SeqCst);
        } else {
            let _ = bells.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        }
    }

    /// Whether some consumer sleeps on the doorbell (a poster rings it).
    pub fn bell_armed(&self) -> bool {
        self.ctl().bells.load(Ordering::SeqCst) != 0
    }

    /// The port as an object to wait on, without taking a packet (the
    /// classic wait on a port handle): (word to sleep on, count of its
    /// sleepers). Register in the count, *then* read the word, *then* look
    /// at [`PortQueue::signalled`]: a post queues, *then* bumps the word
    /// if the count is non-zero (both `SeqCst`).
    pub fn watch_signal(&self) -> (&AtomicU32, &AtomicU32) {
        (&self.ctl().watch_seq, &self.ctl().watchers)
    }

    /// Whether a wait on the port as an object is satisfied: a packet is
    /// queued, or the port is closed (a get would not wait).
    pub fn signalled(&self) -> bool {
        self.queued() > 0 || self.is_closed()
    }

    fn wake_watchers(&self) {
        let ctl = self.ctl();
        if ctl.watchers.load(Ordering::SeqCst) != 0 {
            ctl.watch_seq.fetch_add(1, Ordering::SeqCst);
            futex::wake(&ctl.watch_seq, i32::MAX as u32);
        }
    }

    /// Whether the port was closed.
    pub fn is_closed(&self) -> bool {
        self.ctl().closed.load(Ordering::SeqCst) != 0
    }

    /// Consumers currently counted as running (alive ones); dead ones are
    /// removed from the table on the way.
    /// Running threads still alive (pruning dead ones from the table, and
    /// the mask made again from it).
    fn running(&self) -> usize {
        let ctl = self.ctl();
        let mut mask = 0u64;
        for (i, r) in ctl.running.iter().enumerate() {
            match r.load(Ordering::Relaxed) {
                0 => {}
                tid if alive(tid) => mask |= 1 << i,
                _ => r.store(0, Ordering::Relaxed),
            }
        }
        ctl.running_mask.store(mask, Ordering::Relaxed);
        mask.count_ones() as usize
    }

    fn set_running(&self, tid: u32, on: bool) {
        let ctl = self.ctl();
        let mask = ctl.running_mask.load(Ordering::Relaxed);
        if on {
            if let Some((i, r)) = marked(&ctl.running, !mask).find(|(_, r)| r.load(Ordering::Relaxed) == 0) {
                r.store(tid, Ordering::Relaxed);
                ctl.running_mask.store(mask | 1 << i, Ordering::Relaxed);
            }
        } else {
            let mut left = mask;
            for (i, r) in marked(&ctl.running, mask) {
                if r.load(Ordering::Relaxed) == tid {
                    r.store(0, Ordering::Relaxed);
                    left &= !(1 << i);
                }
            }
            ctl.running_mask.store(left, Ordering::Relaxed);
        }
    }

    fn may_release(&self) -> bool {
        let limit = self.concurrency() as usize;
        let counted = self.ctl().running_mask.load(Ordering::Relaxed).count_ones() as usize;
        // Liveness syscalls only when the count would stop a release.
        counted < limit || self.running() < limit
    }

    /// The most recent waiter. Its liveness is not asked (a system call
    /// on every grant, a quarter of a round trip): a packet granted to a
    /// waiter that died is put back at the head of the queue by
    /// [`PortQueue::reclaim_dead_grants`], which every path that hands a
    /// packet out runs first — so no packet behind it can overtake it.
    fn latest_waiter(&self) -> Option<&Waiter> {
        let mut best: Option<&Waiter> = None;
        for w in self.in_use() {
            if w.state.load(Ordering::SeqCst) != WAITING {
                continue;
            }
            if best.is_none_or(|b| w.stamp.load(Ordering::Relaxed) > b.stamp.load(Ordering::Relaxed)) {
                best = Some(w);
            }
        }
        best
    }

    /// Puts back, at the head of the queue, packets granted to consumers
    /// that died before taking them (killed while waiting, or between the
    /// grant and the read). Under the lock, before any packet is handed
    /// out (port_s10: a packet behind a swallowed one must not overtake
    /// it); costs a system call only per GRANTED slot found, which a
    /// consumer empties as soon as it runs.
    fn reclaim_dead_grants(&self) {
        let ctl = self.ctl();
        for w in self.in_use() {
            if w.state.load(Ordering::SeqCst) != GRANTED || alive(w.tid.load(Ordering::Relaxed)) {
                continue;
            }
            let (head, tail) = (ctl.head.load(Ordering::SeqCst), ctl.tail.load(Ordering::SeqCst));
            if tail.wrapping_sub(head) >= self.capacity {
                continue;
            }
            // Written before the index that publishes it (crash-consistent).
            if head > 0 {
                self.slot(head - 1).store(w.packet.load());
                ctl.head.store(head - 1, Ordering::SeqCst);
            } else {
                // Nothing was ever taken: the queue's front is its only end.
                self.slot(tail).store(w.packet.load());
                ctl.tail.store(tail.wrapping_add(1), Ordering::SeqCst);
            }
            self.vacate(w);
        }
    }

    /// Claims the waiter a post releases (WAITING→GRANTING), if any may be
    /// released. Claimed before anything changes: a waiter giving up at
    /// its deadline (CAS WAITING→EMPTY, without the lock) either wins, and
    /// the packet is queued, or loses and waits for the grant.
    fn claim_waiter(&self) -> Option<&Waiter> {
        let ctl = self.ctl();
        let claim =
            |w: &Waiter| w.state.compare_exchange(WAITING, GRANTING, Ordering::SeqCst, Ordering::SeqCst).is_ok();
        // The common case, one consumer's slot in use and room under the
        // concurrency limit: claimed by one compare-exchange, the first
        // touch of the waiter's line (a load first would fetch the line
        // shared and then upgrade it: two coherence transfers where one
        // does; measured: 0.92 → 0.82 µs a round trip, median of five
        // runs). Nothing to reclaim: the only slot in use waits.
        let occupied = ctl.occupied.load(Ordering::SeqCst);
        if occupied.is_power_of_two()
            && (ctl.running_mask.load(Ordering::Relaxed).count_ones() as usize) < self.concurrency() as usize
        {
            let w = ctl.waiters.get(occupied.trailing_zeros() as usize)?;
            if claim(w) {
                return Some(w);
            }
        }
        self.reclaim_dead_grants();
        // The concurrency count is asked only when there is a waiter to
        // release (it may cost a liveness system call per running consumer).
        self.latest_waiter().filter(|_| self.may_release()).filter(|w| claim(w))
    }

    /// A free waiter slot, now marked in use (under the lock).
    fn free_slot(&self) -> Option<&Waiter> {
        let ctl = self.ctl();
        let free = !ctl.occupied.load(Ordering::SeqCst);
        let (_, w) = marked(&ctl.waiters, free).find(|(_, w)| w.state.load(Ordering::SeqCst) == EMPTY)?;
        ctl.occupied.fetch_or(self.bit(w), Ordering::SeqCst);
        Some(w)
    }

    /// The waiter slots that may be in use (see `PortCtl::occupied`).
    fn in_use(&self) -> impl Iterator<Item = &Waiter> {
        let ctl = self.ctl();
        marked(&ctl.waiters, ctl.occupied.load(Ordering::SeqCst)).map(|(_, w)| w)
    }

    /// The bit of slot `w` in `PortCtl::occupied`.
    fn bit(&self, w: &Waiter) -> u64 {
        let base = self.ctl().waiters.as_ptr() as usize;
        1 << ((w as *const Waiter as usize - base) / std::mem::size_of::<Waiter>())
    }

    /// Empties slot `w`: its bit first, then its state.
    fn vacate(&self, w: &Waiter) {
        self.ctl().occupied.fetch_and(!self.bit(w), Ordering::SeqCst);
        w.state.store(EMPTY, Ordering::SeqCst);
    }

    /// The packet a released consumer gets: the oldest queued one if any
    /// (then `p` joins the queue), else `p` itself.
    fn oldest_then_enqueue(&self, p: Packet) -> Packet {
        let ctl = self.ctl();
        let (head, tail) = (ctl.head.load(Ordering::SeqCst), ctl.tail.load(Ordering::SeqCst));
        if head >= tail {
            return p;
        }
        let oldest = self.slot(head).load();
        // The freed head slot makes room for `p` even in a full queue.
        ctl.head.store(head.wrapping_add(1), Ordering::SeqCst);
        self.slot(tail).store(p);
        ctl.tail.store(tail.wrapping_add(1), Ordering::SeqCst);
        oldest
    }

    /// Posts a packet. With `block`, waits for room while the queue is full
    /// — and while `server` is there: a server gone closes the port.
    ///
    /// # Errors
    /// `Closed`; `QueueFull` when full and not blocking; `Stalled` when the
    /// lock's holder keeps it past [`stall_grace`](crate::peer::stall_grace).
    pub fn post(&self, p: Packet, block: bool, server: Peer<'_>) -> Result<(), PortError> {
        loop {
            let ctl = self.ctl();
            let seen = ctl.space_seq.load(Ordering::SeqCst);
            {
                let _held = match self.lock_within(Some(Instant::now() + crate::peer::stall_grace()), server) {
                    Err(PortError::TimedOut) => return Err(PortError::Stalled),
                    other => other?,
                };
                if self.is_closed() {
                    return Err(PortError::Closed);
                }
                {
                    if let Some(w) = self.claim_waiter() {
                        w.packet.store(self.oldest_then_enqueue(p));
                        self.set_running(w.tid.load(Ordering::Relaxed), true);
                        // SYNC: Release pairs with the waiter's Acquire load of state.
                        w.state.store(GRANTED, Ordering::SeqCst);
                        let sleeping = w.sleeping.load(Ordering::SeqCst) != 0;
                        if sleeping {
                            cpu::stamp(&ctl.poster_cpu);
                        }
                        // Woken after the lock is let go: a waiter on this
                        // CPU runs at once, and would find the lock held by
                        // the poster it just preempted. (A wake that lands
                        // on a slot reused meanwhile is a spurious wake-up,
                        // which every waiter tolerates.)
                        drop(_held);
                        if sleeping {
                            futex::wake(&w.state, 1);
                        }
                        return Ok(());
                    }
                }
                let (head, tail) = (ctl.head.load(Ordering::SeqCst), ctl.tail.load(Ordering::SeqCst));
                if tail.wrapping_sub(head) < self.capacity {
                    self.slot(tail).store(p);
                    // Published only after the packet is written (crash-consistent).
                    ctl.tail.store(tail.wrapping_add(1), Ordering::SeqCst);
                    self.wake_watchers();
                    return Ok(());
                }
            }
            if !block {
                return Err(PortError::QueueFull);
            }
            if server.gone_now() || !(server.alive)() {
                server.wake_others();
                self.close();
                return Err(PortError::Closed);
            }
            ctl.space_waiters.fetch_add(1, Ordering::SeqCst);
            server.sleep(&ctl.space_seq, seen, Some(Instant::now() + server.every));
            ctl.space_waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn take_queued(&self, me: u32) -> Option<Packet> {
        let ctl = self.ctl();
        let (head, tail) = (ctl.head.load(Ordering::SeqCst), ctl.tail.load(Ordering::SeqCst));
        if head >= tail || tail - head > self.capacity || !self.may_release() {
            return None;
        }
        let p = self.slot(head).load();
        ctl.head.store(head.wrapping_add(1), Ordering::SeqCst);
        self.set_running(me, true);
        if ctl.space_waiters.load(Ordering::SeqCst) > 0 {
            ctl.space_seq.fetch_add(1, Ordering::SeqCst);
            futex::wake(&ctl.space_seq, 1);
        }
        Some(p)
    }

    /// Takes the next packet for consumer thread `me`, waiting until
    /// `deadline`. When `server` is gone while waiting, the port is closed.
    ///
    /// # Errors
    /// `Closed` (the port was closed while waiting), `TimedOut`, `TooManyWaiters`.
    pub fn get(&self, me: u32, deadline: Option<Instant>, server: Peer<'_>) -> Result<Packet, PortError> {
        let w = {
            let _held = self.lock_within(deadline, server)?;
            if self.is_closed() {
                return Err(PortError::Closed);
            }
            self.set_running(me, false);
            self.reclaim_dead_grants();
            if let Some(p) = self.take_queued(me) {
                return Ok(p);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(PortError::TimedOut);
            }
            let ctl = self.ctl();
            let w = self.free_slot().ok_or(PortError::TooManyWaiters)?;
            w.tid.store(me, Ordering::Relaxed);
            w.stamp.store(ctl.stamp.fetch_add(1, Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            w.state.store(WAITING, Ordering::SeqCst);
            w
        };
        if !cpu::shared_with(&self.ctl().poster_cpu) {
            spin_while_waiting(w, deadline);
        }
        loop {
            let until = Instant::now() + server.every;
            w.sleeping.store(1, Ordering::SeqCst);
            if w.state.load(Ordering::SeqCst) == WAITING {
                server.sleep(&w.state, WAITING, Some(deadline.map_or(until, |d| d.min(until))));
            }
            w.sleeping.store(0, Ordering::SeqCst);
            if let Some(done) = self.finish_wait(w, me, deadline, server) {
                return done;
            }
        }
    }

    /// After a wake-up: the outcome, or `None` to keep waiting.
    fn finish_wait(
        &self,
        w: &Waiter,
        me: u32,
        deadline: Option<Instant>,
        server: Peer<'_>,
    ) -> Option<Result<Packet, PortError>> {
        if let Some(done) = self.settled(w, deadline, server) {
            return Some(done);
        }
        // The lock word is the peer's to scribble: wait for it no longer
        // than the deadline, and then give up the slot without it.
        let _held = match self.lock_within(deadline, server) {
            Ok(held) => held,
            Err(why) => return self.give_up(w, why),
        };
        // GRANTING seen under the lock: its poster died between claiming
        // this waiter and granting it (a live one holds the lock from one
        // to the other). The packet it was writing is lost with it, as a
        // post cut short is; this waiter waits on, instead of for good.
        let _ = w.state.compare_exchange(GRANTING, WAITING, Ordering::SeqCst, Ordering::SeqCst);
        if w.state.load(Ordering::SeqCst) != WAITING {
            // Granted or closed meanwhile: the caller asks again.
            return None;
        }
        let outcome = if server.gone_now() || !(server.alive)() {
            server.wake_others();
            self.close_locked();
            Err(PortError::Closed)
        } else if let Some(p) = {
            self.reclaim_dead_grants();
            self.take_queued(me)
        } {
            Ok(p)
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            Err(PortError::TimedOut)
        } else {
            return None;
        };
        self.vacate(w);
        Some(outcome)
    }

    /// The outcome a waiter's slot already holds, if any (`None`: still
    /// waiting, or a grant in progress).
    fn settled(&self, w: &Waiter, deadline: Option<Instant>, server: Peer<'_>) -> Option<Result<Packet, PortError>> {
        // SYNC: Acquire pairs with the poster's Release store of GRANTED.
        match w.state.load(Ordering::SeqCst) {
            GRANTED => {
                let p = w.packet.load();
                self.vacate(w);
                Some(Ok(p))
            }
            ABANDONED => {
                self.vacate(w);
                Some(Err(PortError::Closed))
            }
            WAITING => None,
            GRANTING => {
                // A poster is writing the packet under the lock: moments.
                // One that never finishes (a peer's scribble) ends the wait
                // as corrupt a grace period after the deadline.
                if deadline.is_some_and(|d| Instant::now() >= d + crate::peer::stall_grace()) {
                    return Some(Err(PortError::Corrupt));
                }
                server.sleep(&w.state, GRANTING, Some(Instant::now() + Duration::from_millis(10)));
                None
            }
            // Only this waiter empties its own slot: anything else is a
            // peer's scribble.
            _ => Some(Err(PortError::Corrupt)),
        }
    }

    /// Leaves the wait without the lock: the slot goes back to EMPTY unless
    /// a poster claimed it first (then the grant is awaited as usual).
    fn give_up(&self, w: &Waiter, why: PortError) -> Option<Result<Packet, PortError>> {
        let occupied = &self.ctl().occupied;
        occupied.fetch_and(!self.bit(w), Ordering::SeqCst);
        match w.state.compare_exchange(WAITING, EMPTY, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => Some(Err(why)),
            Err(_) => {
                // Claimed first: the slot stays in use until the grant is read.
                occupied.fetch_or(self.bit(w), Ordering::SeqCst);
                None
            }
        }
    }

    /// Takes up to `max` more queued packets without waiting (for get-many).
    /// (A lock word a peer wedged costs it at most a second, then
    /// nothing more is taken.)
    pub fn drain(&self, me: u32, max: usize, out: &mut Vec<Packet>) {
        let until = Some(Instant::now() + crate::peer::stall_grace());
        let Ok(_held) = self.ctl().lock.lock_until(until, Peer::PRESENT) else { return };
        self.reclaim_dead_grants();
        while out.len() < max {
            // The caller is already running; do not count it twice.
            self.set_running(me, false);
            match self.take_queued(me) {
                Some(p) => out.push(p),
                None => {
                    self.set_running(me, true);
                    break;
                }
            }
        }
    }

    /// Closes the port: every waiter is woken with `Closed`, later posts fail.
    ///
    /// Closing never waits on a lock word a peer wedged: past
    /// a second it closes without the lock, which is safe because
    /// every step of closing is one atomic operation a poster's claim
    /// races fairly with.
    pub fn close(&self) {
        let held = self.ctl().lock.lock_until(Some(Instant::now() + crate::peer::stall_grace()), Peer::PRESENT);
        self.close_locked();
        drop(held);
    }

    fn close_locked(&self) {
        let ctl = self.ctl();
        ctl.closed.store(1, Ordering::SeqCst);
        self.wake_watchers();
        // Posters waiting for room learn of it at once too.
        ctl.space_seq.fetch_add(1, Ordering::SeqCst);
        futex::wake(&ctl.space_seq, i32::MAX as u32);
        for w in &ctl.waiters {
            if w.state.compare_exchange(WAITING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                futex::wake(&w.state, 1);
            }
        }
        ctl.space_seq.fetch_add(1, Ordering::SeqCst);
        futex::wake(&ctl.space_seq, i32::MAX as u32);
    }
}

/// How long a consumer spins for a packet before sleeping in the kernel
/// (longer than a cross-core futex wake, ~4–5 µs, so that a prompt poster
/// is met without one).
pub const SPIN: Duration = Duration::from_micros(20);

#[cfg(loom)]
fn spin_while_waiting(_: &Waiter, _: Option<Instant>) {}

#[cfg(not(loom))]
fn spin_while_waiting(w: &Waiter, deadline: Option<Instant>) {
    let until = Instant::now() + SPIN;
    let until = deadline.map_or(until, |d| d.min(until));
    let mut n = 0u32;
    // Through GRANTING too: a poster writing the packet is moments from
    // GRANTED, and leaving the spin for it would sleep (and cost the
    // poster a wake system call).
    while matches!(w.state.load(Ordering::Acquire), WAITING | GRANTING) {
        n = n.wrapping_add(1);
        if n % 64 == 0 && Instant::now() >= until {
            return;
        }
        std::hint::spin_loop();
    }
}

/// Plain memory for a queue, for loom models.
#[cfg(loom)]
#[derive(Debug)]
pub struct HeapPort {
    ctl: PortCtl,
    slots: Vec<Slot>,
}

#[cfg(loom)]
impl PortMem for HeapPort {
    fn ctl(&self) -> &PortCtl {
        &self.ctl
    }
    fn slot(&self, index: usize) -> &Slot {
        &self.slots[index]
    }
}

#[cfg(loom)]
impl PortQueue<HeapPort> {
    /// A queue of `capacity` packets in plain memory.
    pub fn in_memory(capacity: u32, concurrency: u32) -> Self {
        let ctl = PortCtl {
            lock: MutexState::default(),
            stamp: AtomicU64::new(0),
            occupied: AtomicU64::new(0),
            running_mask: AtomicU64::new(0),
            running: std::array::from_fn(|_| AtomicU32::new(0)),
            closed: AtomicU32::new(0),
            concurrency: AtomicU32::new(concurrency),
            capacity: AtomicU32::new(capacity),
            space_waiters: AtomicU32::new(0),
            space_seq: AtomicU32::new(0),
            bells: AtomicU32::new(0),
            watch_seq: AtomicU32::new(0),
            watchers: AtomicU32::new(0),
            poster_cpu: AtomicU32::new(0),
            _pad: AtomicU32::new(0),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            _align: std::array::from_fn(|_| AtomicU64::new(0)),
            waiters: std::array::from_fn(|_| Waiter::default()),
        };
        let slots = (0..capacity).map(|_| Slot::default()).collect();
        PortQueue { mem: HeapPort { ctl, slots }, capacity: u64::from(capacity) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn pk(n: u64) -> Packet {
        Packet { bytes: n as u32, key: n, overlapped: !n }
    }

    /// A live thread that holds the queue's lock and never lets go (as a
    /// hostile peer can fake) holds a get no longer than its deadline and
    /// a post no longer than its server lives or the stall grace lasts
    /// (before issue 10 a post waited for good: found by the fuzz target).
    #[test]
    fn a_wedged_lock_holds_a_get_until_its_deadline_and_a_post_for_its_grace() {
        let (_fd, q) = PortQueue::create(3, 8).unwrap();
        let (held_tx, held) = std::sync::mpsc::channel();
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            let q = &q;
            s.spawn(move || {
                std::mem::forget(q.lock());
                held_tx.send(()).unwrap();
                let _ = done.recv();
            });
            held.recv().unwrap();
            let soon = Some(Instant::now() + Duration::from_millis(20));
            assert_eq!(q.get(1, soon, Peer::PRESENT), Err(PortError::TimedOut));
            let gone = Peer { watch: None, alive: &|| false, every: Duration::from_millis(5) };
            assert_eq!(q.post(pk(1), true, gone), Err(PortError::Closed));
            let started = Instant::now();
            assert_eq!(q.post(pk(2), false, Peer::PRESENT), Err(PortError::Stalled));
            assert!(started.elapsed() >= crate::peer::stall_grace(), "the holder had its grace");
            done_tx.send(()).unwrap();
        });
    }

    /// Regression: a waiter state no poster writes made `get` recurse until
    /// the stack overflowed.
    #[test]
    fn a_scribbled_waiter_state_fails_the_waiting_get_as_corrupt() {
        let (_fd, q) = PortQueue::create(3, 8).unwrap();
        std::thread::scope(|s| {
            let get = s.spawn(|| q.get(1, None, Peer::PRESENT));
            let w = loop {
                if let Some(w) = q.ctl().waiters.iter().find(|w| w.state.load(Ordering::SeqCst) == WAITING) {
                    break w;
                }
                std::thread::yield_now();
            };
            w.state.store(0x5eed, Ordering::SeqCst);
            futex::wake(&w.state, 1);
            assert_eq!(get.join().unwrap(), Err(PortError::Corrupt));
        });
    }

    /// A lock wedged while a get already waits (registered in the waiter
    /// table) holds it no longer than its deadline either, and the slot is
    /// given back; a poster claiming first would have won the race instead.
    #[test]
    fn a_lock_wedged_after_a_get_registered_holds_it_only_until_its_deadline() {
        let (_fd, q) = PortQueue::create(3, 8).unwrap();
        std::thread::scope(|s| {
            let q = &q;
            let get = s.spawn(move || q.get(1, Some(Instant::now() + Duration::from_millis(300)), Peer::PRESENT));
            while !q.ctl().waiters.iter().any(|w| w.state.load(Ordering::SeqCst) == WAITING) {
                std::thread::yield_now();
            }
            // A live thread that takes the lock and never lets go.
            let (held_tx, held) = std::sync::mpsc::channel();
            let (done_tx, done) = std::sync::mpsc::channel::<()>();
            s.spawn(move || {
                std::mem::forget(q.lock());
                held_tx.send(()).unwrap();
                let _ = done.recv();
            });
            held.recv().unwrap();
            assert_eq!(get.join().unwrap(), Err(PortError::TimedOut));
            assert!(q.ctl().waiters.iter().all(|w| w.state.load(Ordering::SeqCst) == EMPTY), "slot given back");
            done_tx.send(()).unwrap();
        });
    }

    /// A poster killed between claiming a waiter (GRANTING) and granting
    /// it leaves the lock abandoned: the waiter, finding GRANTING under
    /// the lock, waits on and takes the next packet (it waited for good).
    #[test]
    fn a_waiter_whose_poster_died_mid_grant_takes_the_next_packet() {
        let (_fd, q) = PortQueue::create(4, 8).unwrap();
        std::thread::scope(|s| {
            let got = s.spawn(|| q.get(1, Some(Instant::now() + Duration::from_secs(10)), Peer::PRESENT));
            let w = loop {
                if let Some(w) = q.ctl().waiters.iter().find(|w| w.state.load(Ordering::SeqCst) == WAITING) {
                    break w;
                }
                assert!(!got.is_finished());
                std::thread::yield_now();
            };
            // What a poster killed mid-grant leaves: the claim, the lock
            // held by a thread that is gone.
            s.spawn(|| {
                let held = q.lock();
                w.state.store(GRANTING, Ordering::SeqCst);
                std::mem::forget(held);
            })
            .join()
            .unwrap();
            q.post(pk(5), false, Peer::PRESENT).unwrap();
            assert_eq!(got.join().unwrap(), Ok(pk(5)));
        });
    }

    #[test]
    fn fifo_and_full_queue_policy() {
        let (_fd, q) = PortQueue::create(3, 8).unwrap();
        for n in 0..3 {
            q.post(pk(n), false, Peer::PRESENT).unwrap();
        }
        assert_eq!(q.post(pk(9), false, Peer::PRESENT), Err(PortError::QueueFull));
        let me = switchboard_sys::process::tid();
        for n in 0..3 {
            assert_eq!(q.get(me, Some(Instant::now()), Peer::PRESENT), Ok(pk(n)));
        }
        assert_eq!(q.get(me, Some(Instant::now()), Peer::PRESENT), Err(PortError::TimedOut));
        q.close();
        assert_eq!(q.post(pk(1), false, Peer::PRESENT), Err(PortError::Closed));
    }

    /// Every way a wait ends gives its slot back, bit and state: a timed
    /// out wait, a granted one, one woken by close. Three times as many
    /// waits as there are slots, then no slot is marked in use.
    #[test]
    fn every_ended_wait_gives_its_waiter_slot_back() {
        let (_fd, q) = PortQueue::create(4, 64).unwrap();
        let me = switchboard_sys::process::tid();
        for round in 0..3 * MAX_WAITERS as u64 {
            let soon = Some(Instant::now() + Duration::from_millis(1));
            assert_eq!(q.get(me, soon, Peer::PRESENT), Err(PortError::TimedOut), "round {round}");
            std::thread::scope(|s| {
                let got = s.spawn(|| q.get(me, None, Peer::PRESENT));
                while q.waiting() == 0 {
                    std::thread::yield_now();
                }
                q.post(pk(round), false, Peer::PRESENT).unwrap();
                assert_eq!(got.join().unwrap(), Ok(pk(round)));
            });
        }
        assert_eq!(q.ctl().occupied.load(Ordering::SeqCst), 0);
        std::thread::scope(|s| {
            let got = s.spawn(|| q.get(me, None, Peer::PRESENT));
            while q.waiting() == 0 {
                std::thread::yield_now();
            }
            q.close();
            assert_eq!(got.join().unwrap(), Err(PortError::Closed));
        });
        assert_eq!(q.ctl().occupied.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_packet_granted_to_a_dead_consumer_is_requeued() {
        let (_fd, q) = PortQueue::create(4, 8).unwrap();
        // A thread id above pid_max: certainly not a live thread.
        let dead = u32::MAX / 2;
        let w = &q.ctl().waiters[5];
        w.tid.store(dead, Ordering::SeqCst);
        w.packet.store(pk(77));
        w.state.store(GRANTED, Ordering::SeqCst);
        q.ctl().occupied.fetch_or(1 << 5, Ordering::SeqCst);
        let me = switchboard_sys::process::tid();
        assert_eq!(q.get(me, Some(Instant::now()), Peer::PRESENT), Ok(pk(77)));
        assert_eq!(w.state.load(Ordering::SeqCst), EMPTY);
    }

    #[test]
    fn a_release_hands_over_the_oldest_queued_packet_first() {
        let (_fd, q) = PortQueue::create(8, 8).unwrap();
        q.post(pk(1), false, Peer::PRESENT).unwrap();
        // A live waiter appears while packet 1 is queued (as after a
        // concurrency limit lifts); the next post must give it packet 1.
        let w = &q.ctl().waiters[0];
        w.tid.store(switchboard_sys::process::tid(), Ordering::SeqCst);
        w.stamp.store(1, Ordering::SeqCst);
        w.state.store(WAITING, Ordering::SeqCst);
        q.ctl().occupied.fetch_or(1, Ordering::SeqCst);
        q.post(pk(2), false, Peer::PRESENT).unwrap();
        assert_eq!(w.state.load(Ordering::SeqCst), GRANTED);
        assert_eq!(w.packet.load(), pk(1));
        q.vacate(w);
        let me = switchboard_sys::process::tid();
        assert_eq!(q.get(me, Some(Instant::now()), Peer::PRESENT), Ok(pk(2)));
    }

    #[test]
    fn a_forged_capacity_is_refused() {
        let (fd, q) = PortQueue::create(4, 1).unwrap();
        q.ctl().capacity.store(1 << 19, Ordering::Relaxed);
        assert_eq!(PortQueue::open(&fd).unwrap_err(), SegmentError::BadSize);
    }
}
