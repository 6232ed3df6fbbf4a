//! [`ShmLink`]: two SPSC byte rings in one sealed memfd.
//!
//! A listener is a rendezvous service of the link family
//! (`sb1/L<uid>/l/<name>`): the responder admits connectors its ACL allows
//! (default: this user only) and grants them at once; admitted connections
//! wait, at most 128 of them, for [`ShmLinkListener::accept`].
//! The connecting side creates the segment and sends it with `SCM_RIGHTS`
//! in a link-family message; the acceptor checks the segment's layout.
//! After that the socket carries only the memory of zero-copy samples
//! (below); it stays open so that each side learns of the other's death as
//! a hang-up. Data moves through the
//! rings, with futex wake-ups when a side sleeps (see [`WaitMode`]).
//!
//! Each side hands the other its process's life token during the
//! handshake (`switchboard_sys::life`, held by the rendezvous responder
//! thread): a blocked `send`/`recv` sleeps on its ring word *and* the
//! peer's token word (`futex_waitv`), so the peer's death — `kill -9`
//! included — ends the wait at once, with no polling.
//!
//! ## Doorbells
//! Each side also hands the other an eventfd, its *bell*. A thread that
//! waits on several things at once — links, pipes, sockets, in one `poll`
//! loop or under tokio — arms the link's doorbell ([`ShmLink::arm_doorbell`])
//! and sleeps on [`ShmLink::doorbell`], one descriptor that becomes readable
//! when the peer publishes a message while the bell is armed, or when the
//! peer hangs up. The peer rings only while the bell is armed (one load per
//! send otherwise), and the next receive disarms it.
//!
//! Decisions:
//! - A send checks the peer's token first (one load): a send to a peer
//!   that died is `BrokenPipe` at once.
//! - A [`ShmLink::pair`] has no tokens to exchange (both ends are in this
//!   process); a blocked call on one checks for a hung-up peer every
//!   [`PEER_CHECK`].
//! - A closed or dead peer's already-sent messages are still received;
//!   `BrokenPipe` comes after the last of them.
//! - A message larger than a ring is sent as several chunks; a receive that
//!   times out part-way keeps the chunks it has and resumes later.
//! - `connect` returns once its segment is sent, before `accept` picks the
//!   link up (as a socket connect completes into the backlog); messages
//!   sent meanwhile wait in the ring.
//!
//! ## Zero-copy samples
//! [`ShmLink::loan`] gives the sender fresh shared memory to fill;
//! [`ShmLink::send_loan`] freezes it (sealed against writes) and sends its
//! descriptor over the socket, then a *marked* ring record holding its
//! length, so a sample keeps its place among copied messages.
//! [`ShmLink::recv_borrowed`] maps it read-only ([`Sample`]); a plain
//! receive copies it out like any message. A marked record whose
//! descriptor is missing, not sealed, shorter than claimed, or over the
//! maximum is `Malformed` (see [`super::loan`]).

use std::sync::Arc;
use std::time::Instant;

use switchboard_shm::duplex::{Duplex, SegmentMem};
use switchboard_shm::ring::{wait_ready_or_peer, ConsumerState, ProducerState, Ring, RingError, WaitMode, Waited};
use switchboard_shm::ring::{Peer, PEER_BACKSTOP};
use switchboard_sys::epoll::Epoll;
use switchboard_sys::eventfd::EventFd;
use switchboard_sys::life::LifeWatch;
use switchboard_sys::sealed::{Draft, Frozen};
use switchboard_sys::socket::{Conn, Cred};
use switchboard_sys::{AsFd, BorrowedFd, Errno, OwnedFd};

use super::loan::{Body, Loan, Sample};
use super::{Link, DEFAULT_MAX_MESSAGE};
use crate::error::{Error, Result};
use crate::namespace::{named_address, Acl};
use crate::rendezvous::{self, wire, Backlog, Failure, Family, Service, Status, Trust};
use crate::time::Deadline;

/// How often a blocked call on an in-process pair checks that the peer is still there.
pub use switchboard_shm::peer::PEER_CHECK;

/// How a [`ShmLink`] is set up. Chosen by the connecting side (it creates the rings).
#[derive(Clone, Copy, Debug)]
pub struct ShmLinkOptions {
    /// Bytes per ring (a power of two, at least 64). Default 1 MiB.
    pub capacity: usize,
    /// How this side waits. Default adaptive, 20 µs spin.
    pub wait: WaitMode,
    /// Largest message sent or accepted. Default 64 MiB.
    pub max_message: usize,
}

impl Default for ShmLinkOptions {
    fn default() -> Self {
        ShmLinkOptions { capacity: 1 << 20, wait: WaitMode::default(), max_message: DEFAULT_MAX_MESSAGE }
    }
}

/// A message link through shared memory.
#[derive(Debug)]
pub struct ShmLink {
    duplex: Duplex,
    conn: Conn,
    /// The peer process's life token (none for an in-process pair).
    peer_life: Option<LifeWatch>,
    bells: Bells,
    /// The doorbell descriptor (this side's bell and the connection's
    /// hang-up in one epoll set), made on first use.
    doorbell: std::sync::OnceLock<Epoll>,
    tx: usize,
    producer: ProducerState,
    consumer: ConsumerState,
    partial: Vec<u8>,
    /// A send gave up part-way and its abandon record is still to push.
    abandoned: bool,
    /// The peer's credentials as admitted (accepted links).
    peer_cred: Option<Cred>,
    opts: ShmLinkOptions,
}

fn ring_error(e: RingError) -> Error {
    match e {
        RingError::Closed => Error::BrokenPipe,
        RingError::Corrupt(why) => Error::Malformed(why.into()),
    }
}

impl ShmLink {
    fn new(duplex: Duplex, conn: Conn, peer: (Option<LifeWatch>, Bells), tx: usize, opts: ShmLinkOptions) -> ShmLink {
        let (peer_life, bells) = peer;
        ShmLink {
            duplex,
            conn,
            peer_life,
            bells,
            doorbell: std::sync::OnceLock::new(),
            tx,
            producer: ProducerState::default(),
            consumer: ConsumerState::default(),
            partial: Vec::new(),
            abandoned: false,
            peer_cred: None,
            opts,
        }
    }

    /// A connected pair in this process (tests, and handing one end to a child).
    ///
    /// # Errors
    /// `InvalidParameter` for a bad capacity; system errors.
    pub fn pair(opts: ShmLinkOptions) -> Result<(ShmLink, ShmLink)> {
        let (a, b) = Conn::pair()?;
        let (fd, duplex) = Duplex::create(opts.capacity).map_err(|_| bad_capacity())?;
        let other = Duplex::open(&fd).map_err(|e| Error::Malformed(e.to_string()))?;
        let (bell_a, bell_b) = (EventFd::new()?, EventFd::new()?);
        let bells_a = Bells { peer: bell_b.try_clone()?, mine: bell_a.try_clone()?, armed: false };
        let bells_b = Bells { peer: bell_a, mine: bell_b, armed: false };
        Ok((ShmLink::new(duplex, a, (None, bells_a), 0, opts), ShmLink::new(other, b, (None, bells_b), 1, opts)))
    }

    /// Connects to the [`ShmLinkListener`] bound under `name`.
    ///
    /// # Errors
    /// `NotFound` when nobody listens, `AccessDenied` when the listener
    /// belongs to another user (root too, for a Local name) or its ACL
    /// refuses us, `PipeBusy` when too many connections wait for its
    /// accept, `Timeout`, `InvalidParameter`.
    pub fn connect(name: &str, opts: ShmLinkOptions) -> Result<ShmLink> {
        Granted::ask(name, opts)?.hello()
    }

    /// Connects to the listener of `family` at `addr` (a mechanism's own
    /// rendezvous, served by [`ShmLinkListener::serve`]): the link, who
    /// holds the listener, and the descriptors its grant added.
    pub(crate) fn connect_at(
        family: Family,
        addr: &[u8],
        trust: Trust,
        name: &str,
        opts: ShmLinkOptions,
    ) -> Result<(ShmLink, Cred, Vec<OwnedFd>)> {
        let (granted, extra) = Granted::ask_at(family, addr, trust, name, opts)?;
        let owner = granted.owner;
        Ok((granted.hello()?, owner, extra))
    }

    /// Who is at the other end (kernel-reported at connect; for an
    /// accepted link, at admission, so a peer that already hung up is
    /// still known).
    pub(crate) fn peer_cred(&self) -> Result<Cred> {
        match self.peer_cred {
            Some(c) => Ok(c),
            None => Ok(self.conn.peer_cred()?),
        }
    }

    /// Sets how this side waits.
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.opts.wait = mode;
    }

    fn ring(&self, which: usize) -> Ring<'_, SegmentMem<'_>> {
        self.duplex.ring(which)
    }

    /// Waits in slices until `ready`, the deadline, or the peer's death.
    fn await_ring(&self, sending: bool, need: usize, deadline: Option<Instant>) -> Result<bool> {
        let ring = self.ring(if sending { self.tx } else { 1 - self.tx });
        let signal = if sending { ring.space_signal() } else { ring.data_signal() };
        let mut ready = || {
            ring.is_closed()
                || if sending { ring.has_room(&self.producer, need) } else { ring.has_data(&self.consumer) }
        };
        // A try (`Deadline::now`): one look, no clock read, no wait.
        if deadline.is_some_and(crate::time::is_past) {
            return match ready() {
                true => Ok(true),
                false => self.check_peer().map(|()| false),
            };
        }
        let connected = || !self.conn.hung_up();
        let peer = match &self.peer_life {
            None => Peer { watch: None, alive: &connected, every: PEER_CHECK },
            Some(life) => match life.sleep_word() {
                Some(watch) => Peer { watch: Some(watch), alive: &connected, every: PEER_BACKSTOP },
                None if ready() => return Ok(true),
                None => return Err(Error::BrokenPipe),
            },
        };
        match wait_ready_or_peer(&mut ready, signal, self.opts.wait, deadline, peer) {
            Waited::Ready => Ok(true),
            Waited::TimedOut => Ok(false),
            // One last look: the peer may have sent before dying.
            Waited::PeerGone if ready() => Ok(true),
            Waited::PeerGone => Err(Error::BrokenPipe),
        }
    }

    /// Pushes one record, waiting for room until `deadline` (`Timeout`).
    fn push(&mut self, chunk: &[u8], piece: Piece, deadline: Option<Instant>) -> Result<()> {
        loop {
            let tx = self.tx;
            let ring = self.duplex.ring(tx);
            let pushed = match piece {
                Piece::Chunk { more } => ring.try_push(&mut self.producer, chunk, more),
                Piece::Loan | Piece::Abandon => ring.try_push_marked(&mut self.producer, chunk),
            };
            if pushed.map_err(ring_error)? {
                // SYNC: the push published (SeqCst) before this load; the
                // peer armed (SeqCst) before looking for data (Dekker).
                if ring.bell_armed() {
                    self.bells.peer.notify();
                }
                return Ok(());
            }
            if !self.await_ring(true, chunk.len(), deadline)? {
                return Err(Error::Timeout);
            }
        }
    }
}

/// What a ring record carries.
#[derive(Clone, Copy)]
enum Piece {
    /// A message's bytes (more chunks follow, or not).
    Chunk { more: bool },
    /// A loaned sample's length; its memory travels over the socket.
    Loan,
    /// An empty marked record: the message under way was abandoned at its
    /// sender's deadline; the receiver drops the part it has.
    Abandon,
}

/// The byte a loaned sample's descriptor travels with.
const LOAN_TAG: &[u8] = b"L";

/// What [`ShmLink::next`] found.
enum Incoming {
    /// A copied message, whole in `partial`.
    Message,
    /// A loaned sample.
    Loaned(Frozen),
}

impl ShmLink {
    /// Fresh shared memory of `len` bytes (zero-filled) to fill and send
    /// with [`ShmLink::send_loan`], without a copy at either end.
    ///
    /// # Errors
    /// `InvalidParameter` over the link's maximum message; `ENOMEM`.
    pub fn loan(&self, len: usize) -> Result<Loan> {
        if len > self.opts.max_message {
            return Err(Error::InvalidParameter("message larger than the link's maximum"));
        }
        Ok(Loan(Draft::new(len)?))
    }

    /// Sends a loan: freezes it (nobody can change it any more) and hands
    /// its memory to the peer, in order with this side's other messages.
    /// Blocks only while the peer's queue is full — for samples, the
    /// socket that carries their descriptors: a few hundred unreceived
    /// samples (about 270 with Linux's default socket buffer).
    ///
    /// # Errors
    /// `BrokenPipe` when the peer is gone.
    pub fn send_loan(&mut self, loan: Loan) -> Result<()> {
        self.check_peer()?;
        let len = loan.len() as u64;
        let fd = loan.0.freeze()?;
        self.send_descriptor(&fd)?;
        self.push(&len.to_le_bytes(), Piece::Loan, None)
    }

    /// Receives the next message as a [`Sample`]: the sender's memory,
    /// read in place, when it came as a loan; else a copy, as
    /// [`Link::recv_deadline`] makes.
    ///
    /// # Errors
    /// As [`Link::recv_deadline`].
    pub fn recv_borrowed(&mut self, deadline: impl Into<Deadline>) -> Result<Sample> {
        Ok(Sample(match self.next(deadline.into().instant())? {
            Incoming::Message => Body::Copied(std::mem::take(&mut self.partial)),
            Incoming::Loaned(frozen) => Body::Shared(frozen),
        }))
    }

    fn check_peer(&self) -> Result<()> {
        match self.peer_died() {
            true => Err(Error::BrokenPipe),
            false => Ok(()),
        }
    }

    /// Whether the peer's process died (its life token says so; one load).
    fn peer_died(&self) -> bool {
        self.peer_life.as_ref().is_some_and(|l| !l.alive())
    }

    /// Queues a sample's descriptor on the socket, waiting while the
    /// peer's socket queue is full (as long as the peer is there).
    fn send_descriptor(&self, fd: &OwnedFd) -> Result<()> {
        loop {
            match self.conn.send(LOAN_TAG, &[fd.as_fd()]) {
                Ok(()) => return Ok(()),
                // Too many descriptors in flight for this user: the
                // peer's receives bring the count down, as for a full queue.
                Err(Errno::AGAIN | Errno::TOOMANYREFS) => {
                    let _ =
                        switchboard_sys::socket::wait_writable(self.conn.as_fd(), Some(Instant::now() + PEER_CHECK));
                    if self.conn.hung_up() {
                        return Err(Error::BrokenPipe);
                    }
                    self.check_peer()?;
                }
                Err(Errno::PIPE | Errno::CONNRESET) => return Err(Error::BrokenPipe),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Takes a loaned sample's memory from the socket: it was queued
    /// before its record was published, so it is there now or never.
    fn take_loan(&self, record: [u8; 8]) -> Result<Frozen> {
        let malformed = |why: String| Error::Malformed(format!("a loaned sample: {why}"));
        let mut tag = [0u8; 1];
        let fd = match self.conn.recv(&mut tag, Some(Instant::now())) {
            Ok(Some((1, fds))) if tag == LOAN_TAG && fds.len() == 1 => fds.into_iter().next().expect("one descriptor"),
            Ok(_) | Err(Errno::MSGSIZE) => return Err(malformed("the socket carried something else".into())),
            Err(_) => return Err(malformed("its memory never came".into())),
        };
        // Checked once the descriptor is taken, so that a refused sample
        // leaves the next one's in step.
        let len = usize::try_from(u64::from_le_bytes(record))
            .ok()
            .filter(|l| *l <= self.opts.max_message)
            .ok_or_else(|| malformed("larger than the link's maximum".into()))?;
        Frozen::open(fd, len).map_err(|e| malformed(format!("its memory is refused ({e})")))
    }

    /// The next message or sample, waiting until `deadline`.
    fn next(&mut self, deadline: Option<Instant>) -> Result<Incoming> {
        self.disarm_doorbell();
        let rx = 1 - self.tx;
        loop {
            let ring = self.duplex.ring(rx);
            let Some(rec) = ring.front(&self.consumer).map_err(ring_error)? else {
                if !self.await_ring(false, 0, deadline)? {
                    return Err(Error::Timeout);
                }
                continue;
            };
            if rec.marked && rec.len == 0 {
                ring.pop_front(&mut self.consumer, &rec);
                self.partial.clear();
                continue;
            }
            if rec.marked {
                let mut record = [0u8; 8];
                let whole = rec.len == record.len() && self.partial.is_empty();
                if whole {
                    ring.read_front(&self.consumer, 0, &mut record);
                }
                ring.pop_front(&mut self.consumer, &rec);
                if !whole {
                    self.partial.clear();
                    return Err(Error::Malformed("a marked record that is not a loaned sample".into()));
                }
                return self.take_loan(record).map(Incoming::Loaned);
            }
            let start = self.partial.len();
            self.partial.resize(start + rec.len, 0);
            ring.read_front(&self.consumer, 0, &mut self.partial[start..]);
            ring.pop_front(&mut self.consumer, &rec);
            if !rec.more {
                return Ok(Incoming::Message);
            }
            if self.partial.len() > self.opts.max_message {
                return Err(Error::Malformed("the peer sent a message over the maximum".into()));
            }
        }
    }
}

/// A connect half done: the listener granted it; the hello (the segment,
/// this process's life token and bell) is still to send.
struct Granted {
    family: Family,
    conn: Conn,
    /// Who holds the listener (checked against the trust asked for).
    owner: Cred,
    fd: OwnedFd,
    duplex: Duplex,
    life: OwnedFd,
    bell: OwnedFd,
    opts: ShmLinkOptions,
}

impl Granted {
    fn ask(name: &str, opts: ShmLinkOptions) -> Result<Granted> {
        let (scope, addr) = named_address(Family::LINK, name)?;
        let (granted, _) = Granted::ask_at(Family::LINK, &addr, Trust::for_scope(scope), name, opts)?;
        Ok(granted)
    }

    /// Asks the listener of `family` at `addr`; also returns the
    /// descriptors its grant carried after the life token and bell.
    fn ask_at(
        family: Family,
        addr: &[u8],
        trust: Trust,
        name: &str,
        opts: ShmLinkOptions,
    ) -> Result<(Granted, Vec<OwnedFd>)> {
        let (fd, duplex) = Duplex::create(opts.capacity).map_err(|_| bad_capacity())?;
        let deadline = rendezvous::answer_deadline(None);
        let answer = rendezvous::connect(family, addr, deadline, trust).map_err(|f| f.into_error(name))?;
        let mut fds = answer.fds.into_iter();
        let (Some(life), Some(bell)) = (fds.next(), fds.next()) else {
            return Err(Error::Malformed("a link grant without the listener's life token and bell".into()));
        };
        let owner = answer.owner;
        Ok((Granted { family, conn: answer.conn, owner, fd, duplex, life, bell, opts }, fds.collect()))
    }

    fn hello(self) -> Result<ShmLink> {
        let mine = rendezvous::process_life()?;
        let my_bell = EventFd::new()?;
        let fds = [self.fd.as_fd(), mine.fd(), my_bell.as_fd()];
        wire::send(&self.conn, self.family, Status::Granted, &[], &fds)?;
        let peer = (Some(peer_life(self.life)?), Bells { mine: my_bell, peer: peer_bell(self.bell)?, armed: false });
        Ok(ShmLink::new(self.duplex, self.conn, peer, 0, self.opts))
    }
}

/// The peer's life token, from the descriptor that should carry it.
fn peer_life(fd: OwnedFd) -> Result<LifeWatch> {
    LifeWatch::open(&fd).map_err(|e| Error::Malformed(format!("the peer's life token: {e}")))
}

/// The peer's bell, from the descriptor that should carry it.
fn peer_bell(fd: OwnedFd) -> Result<EventFd> {
    EventFd::adopt(fd).map_err(|_| Error::Malformed("the peer's bell is not an eventfd".into()))
}

/// This side's bell (rung by the peer) and the peer's (rung by us).
#[derive(Debug)]
struct Bells {
    mine: EventFd,
    peer: EventFd,
    /// Whether this side armed its doorbell since its last receive.
    armed: bool,
}

impl ShmLink {
    /// One descriptor for `poll`/`epoll`/tokio that becomes readable when
    /// a message arrives while the doorbell is armed, or the peer hangs up.
    /// Arm it with [`ShmLink::arm_doorbell`] before each sleep on it.
    ///
    /// # Errors
    /// When the epoll set cannot be made (out of descriptors).
    pub fn doorbell(&self) -> Result<BorrowedFd<'_>> {
        if self.doorbell.get().is_none() {
            let set = Epoll::new()?;
            set.add(self.bells.mine.as_fd(), 0)?;
            set.add_hangup(self.conn.as_fd(), 1)?;
            let _ = self.doorbell.set(set);
        }
        Ok(self.doorbell.get().expect("set above").as_fd())
    }

    /// Arms the doorbell before a sleep on [`ShmLink::doorbell`]: the peer
    /// rings it at its next message. Returns `true` when there is no need
    /// to sleep: a message (or the peer's close) is already there. The
    /// next receive disarms it.
    pub fn arm_doorbell(&mut self) -> bool {
        self.bells.armed = true;
        let ring = self.duplex.ring(1 - self.tx);
        ring.arm_bell(true);
        ring.has_data(&self.consumer) || ring.is_closed() || self.conn.hung_up()
    }

    fn disarm_doorbell(&mut self) {
        if self.bells.armed {
            self.ring(1 - self.tx).arm_bell(false);
            self.bells.mine.drain();
            self.bells.armed = false;
        }
    }
}

fn bad_capacity() -> Error {
    Error::InvalidParameter("ring capacity must be a power of two between 64 bytes and 2 GiB")
}

impl Link for ShmLink {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_deadline(msg, Deadline::NEVER)
    }

    fn send_deadline(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        if msg.len() > self.opts.max_message {
            return Err(Error::InvalidParameter("message larger than the link's maximum"));
        }
        self.check_peer()?;
        let deadline = deadline.instant();
        if self.abandoned {
            self.push(&[], Piece::Abandon, deadline)?;
            self.abandoned = false;
        }
        let max_chunk = self.ring(self.tx).max_chunk();
        if msg.len() <= max_chunk {
            return self.push(msg, Piece::Chunk { more: false }, deadline);
        }
        let mut parts = msg.chunks(max_chunk).peekable();
        let mut first = true;
        while let Some(part) = parts.next() {
            match self.push(part, Piece::Chunk { more: parts.peek().is_some() }, deadline) {
                Err(Error::Timeout) if !first => {
                    // Part-way: the peer drops what it has of this message
                    // at the abandon record, pushed now or before the next.
                    self.abandoned = self.push(&[], Piece::Abandon, Some(Instant::now())).is_err();
                    return Err(Error::Timeout);
                }
                other => other?,
            }
            first = false;
        }
        Ok(())
    }

    fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        match self.next(deadline.instant())? {
            Incoming::Message => {
                std::mem::swap(buf, &mut self.partial);
                self.partial.clear();
            }
            Incoming::Loaned(sample) => {
                buf.clear();
                buf.extend_from_slice(&sample);
            }
        }
        Ok(())
    }

    fn max_message(&self) -> usize {
        self.opts.max_message
    }

    fn ready(&self) -> bool {
        let ring = self.ring(1 - self.tx);
        ring.has_data(&self.consumer) || ring.is_closed()
    }

    fn doorbell(&self) -> Option<BorrowedFd<'_>> {
        ShmLink::doorbell(self).ok()
    }

    fn arm_doorbell(&mut self) -> bool {
        ShmLink::arm_doorbell(self)
    }

    fn peer_gone(&self) -> bool {
        self.ring(self.tx).is_closed() || self.peer_died() || self.conn.hung_up()
    }
}

impl Drop for ShmLink {
    fn drop(&mut self) {
        // Tell the peer at once; the socket closing tells it too.
        self.ring(0).close();
        self.ring(1).close();
    }
}

/// The link family's grant: the listener's process life token and a bell
/// for this link (kept until `accept`); the connector answers with its
/// segment, token and bell.
fn link_grant() -> Option<(Vec<OwnedFd>, EventFd)> {
    let life = rendezvous::process_life().ok()?.fd().try_clone_to_owned().ok()?;
    let bell = EventFd::new().ok()?;
    let copy = bell.as_fd().try_clone_to_owned().ok()?;
    Some((vec![life, copy], bell))
}

/// Accepts [`ShmLink`]s under a name.
#[derive(Debug)]
pub struct ShmLinkListener {
    family: Family,
    pending: Arc<Backlog<EventFd>>,
    _service: Service,
    opts: ShmLinkOptions,
}

impl ShmLinkListener {
    /// Listens under `name` (`NAME`, `Local\NAME` or `Global\NAME`),
    /// admitting only this user.
    ///
    /// # Errors
    /// `InvalidName`; `AddrInUse` when another listener has the name.
    pub fn bind(name: &str) -> Result<ShmLinkListener> {
        ShmLinkListener::bind_with_acl(name, &Acl::owner_only())
    }

    /// Listens under `name`, admitting this user and whom `acl` allows.
    ///
    /// # Errors
    /// As [`ShmLinkListener::bind`].
    pub fn bind_with_acl(name: &str, acl: &Acl) -> Result<ShmLinkListener> {
        let (_, addr) = named_address(Family::LINK, name)?;
        let listener =
            rendezvous::bind_server(&addr)?.ok_or_else(|| Error::Io(std::io::ErrorKind::AddrInUse.into()))?;
        ShmLinkListener::serve(Family::LINK, listener, acl, None)
    }

    /// Serves links on `listener` for `family`, admitting whom `acl`
    /// allows; each grant also carries a copy of `extra` (a mechanism's
    /// shared state), and admissions ring [`ShmLinkListener::arrivals`].
    pub(crate) fn serve(
        family: Family,
        listener: switchboard_sys::socket::Listener,
        acl: &Acl,
        extra: Option<OwnedFd>,
    ) -> Result<ShmLinkListener> {
        let grant = move || {
            let (mut fds, bell) = link_grant()?;
            if let Some(extra) = &extra {
                fds.push(extra.try_clone().ok()?);
            }
            Some((fds, bell))
        };
        let pending = Arc::new(Backlog::with_bell(family, Box::new(grant))?);
        let acl = acl.clone().with_owner(switchboard_sys::process::uid());
        let service = Service::start(family, Arc::new(listener), acl, pending.clone())?;
        Ok(ShmLinkListener { family, pending, _service: service, opts: ShmLinkOptions::default() })
    }

    /// Rung when a connector arrives (see [`ShmLinkListener::try_accept`]).
    pub(crate) fn arrivals(&self) -> BorrowedFd<'_> {
        self.pending.bell().expect("every listener's backlog has a bell")
    }

    /// Whether a connector was admitted and has not sent its hello yet
    /// (its arrival rang [`ShmLinkListener::arrivals`] once; a loop that
    /// sleeps on it looks again soon).
    pub(crate) fn handshaking(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Accepts a connector that is ready now, without waiting: `None`
    /// when none is (one still mid-handshake stays queued).
    pub(crate) fn try_accept(&self) -> Option<ShmLink> {
        while let Some(w) = self.pending.try_next() {
            match rendezvous::receive(self.family, &w.conn, Some(Instant::now())) {
                Err(Failure::Refused(Error::Timeout)) if w.admitted.elapsed() < rendezvous::ANSWER_TIMEOUT => {
                    self.pending.put_back(w);
                    return None;
                }
                Err(_) => continue,
                Ok((_, fds)) => {
                    if let Ok(link) = self.handshake(w, fds) {
                        return Some(link);
                    }
                }
            }
        }
        None
    }

    /// Sets the wait mode and maximum message of accepted links.
    #[must_use]
    pub fn with_options(mut self, opts: ShmLinkOptions) -> ShmLinkListener {
        self.opts = opts;
        self
    }

    /// Accepts one link, waiting at most `timeout` (`None`: forever).
    /// A connector whose segment does not arrive within the handshake
    /// timeout, or is malformed, is dropped and the wait goes on; one whose
    /// segment is still on its way when `timeout` ends stays queued for the
    /// next accept (found by `switchboard soak`: an accept with a short
    /// timeout used to drop a well-behaved connector, whose connect then
    /// failed with a broken pipe).
    ///
    /// # Errors
    /// `Timeout`.
    pub fn accept(&self, timeout: impl Into<crate::time::Deadline>) -> Result<ShmLink> {
        let deadline = timeout.into().instant();
        loop {
            let w = self.pending.next(deadline)?;
            // A connector sends its segment right after the grant: it has
            // the answer timeout from its admission, whatever accepts wait.
            let handshake = w.admitted + rendezvous::ANSWER_TIMEOUT;
            let by = deadline.map_or(handshake, |d| d.min(handshake));
            match rendezvous::receive(self.family, &w.conn, Some(by)) {
                Err(Failure::Refused(Error::Timeout)) if by < handshake => {
                    self.pending.put_back(w);
                    return Err(Error::Timeout);
                }
                Err(_) => continue,
                Ok((_, fds)) => {
                    if let Ok(link) = self.handshake(w, fds) {
                        return Ok(link);
                    }
                }
            }
        }
    }

    fn handshake(&self, w: crate::rendezvous::Waiting<EventFd>, fds: Vec<OwnedFd>) -> Result<ShmLink> {
        let (conn, mine) = (w.conn, w.kept);
        let Ok([fd, life, bell]) = <[_; 3]>::try_from(fds) else {
            return Err(Error::Malformed("a link hello without its segment, life token and bell".into()));
        };
        let duplex = Duplex::open(&fd).map_err(|e| Error::Malformed(e.to_string()))?;
        let peer = (Some(peer_life(life)?), Bells { mine, peer: peer_bell(bell)?, armed: false });
        let opts = ShmLinkOptions { capacity: duplex.capacity(), ..self.opts };
        let mut link = ShmLink::new(duplex, conn, peer, 1, opts);
        link.peer_cred = Some(w.peer);
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A peer that forges loaned samples (marked records with no memory,
    /// memory it can still write, memory shorter than claimed, a record of
    /// the wrong size, a size over the maximum) gets each refused as
    /// `Malformed`, never a hang or a view of writable memory, and the
    /// link goes on: the next message arrives.
    #[test]
    fn forged_loans_are_malformed_and_the_link_goes_on() {
        let (mut a, mut b) = ShmLink::pair(ShmLinkOptions::default()).unwrap();
        let forge = |a: &mut ShmLink, fd: Option<OwnedFd>, record: &[u8]| {
            if let Some(fd) = fd {
                a.conn.send(LOAN_TAG, &[fd.as_fd()]).unwrap();
            }
            a.push(record, Piece::Loan, None).unwrap();
            a.send(b"next").unwrap();
        };
        let sealed = |len| Draft::new(len).unwrap().freeze().unwrap();
        let writable = switchboard_sys::memfd::create_sealed("forged", 4096).unwrap();
        let cases: [(Option<OwnedFd>, Vec<u8>, &str); 5] = [
            (None, 8u64.to_le_bytes().to_vec(), "never came"),
            (Some(writable), 4096u64.to_le_bytes().to_vec(), "refused"),
            (Some(sealed(100)), 4096u64.to_le_bytes().to_vec(), "refused"),
            (Some(sealed(8)), vec![8, 0, 0, 0], "not a loaned sample"),
            (Some(sealed(8)), (1u64 << 40).to_le_bytes().to_vec(), "maximum"),
        ];
        for (fd, record, why) in cases {
            forge(&mut a, fd, &record);
            match b.recv_borrowed(Duration::from_secs(5)) {
                Err(Error::Malformed(m)) => assert!(m.contains(why), "{m:?}, expected {why:?}"),
                other => panic!("{other:?}, expected Malformed({why:?})"),
            }
            // A refused descriptor may stay queued: the next message still comes.
            assert_eq!(&b.recv_borrowed(Duration::from_secs(5)).unwrap()[..], b"next");
        }
    }

    /// A connector that sent and closed before the listener accepted it is
    /// still accepted, and its message delivered: another connector's
    /// admission, which prunes connectors that hung up, keeps it (found by
    /// the clipboard tests: a post to a receiver from a short-lived handle
    /// was lost).
    #[test]
    fn a_connector_that_sent_and_left_before_accept_is_still_delivered() {
        let name = format!("unit-left-{}", std::process::id());
        let listener = ShmLinkListener::bind(&name).unwrap();
        let opts = ShmLinkOptions { capacity: 4096, ..ShmLinkOptions::default() };
        let mut early = ShmLink::connect(&name, opts).unwrap();
        early.send(b"bye").unwrap();
        drop(early);
        let _late = ShmLink::connect(&name, opts).unwrap();
        let mut first = listener.accept(Duration::from_secs(60)).unwrap();
        let mut got = Vec::new();
        first.recv_timeout(&mut got, Duration::from_secs(60)).unwrap();
        assert_eq!(got, b"bye");
    }

    /// A connector granted but not yet done with its hello when an accept
    /// times out stays queued for the next accept (found by `switchboard
    /// soak`: the accept dropped it, and the connect failed with a broken
    /// pipe).
    #[test]
    fn an_accept_that_times_out_keeps_a_connector_mid_handshake() {
        let name = format!("unit-accept-{}", std::process::id());
        let listener = ShmLinkListener::bind(&name).unwrap();
        let opts = ShmLinkOptions { capacity: 4096, ..ShmLinkOptions::default() };
        let granted = Granted::ask(&name, opts).unwrap();
        assert!(matches!(listener.accept(Duration::ZERO), Err(Error::Timeout)), "no hello yet");
        let mut mine = granted.hello().expect("the connector was kept");
        let mut theirs = listener.accept(Duration::from_secs(60)).unwrap();
        mine.send(b"kept").unwrap();
        let mut got = Vec::new();
        theirs.recv_timeout(&mut got, Duration::from_secs(60)).unwrap();
        assert_eq!(got, b"kept");
    }
}
