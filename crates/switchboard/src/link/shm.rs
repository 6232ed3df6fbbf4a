//! [`ShmLink`]: two SPSC byte rings in one sealed memfd.
//!
//! The connecting side creates the segment and passes it with `SCM_RIGHTS`
//! over the rendezvous socket (`sb1/L<uid>/l/<name>`); the acceptor checks
//! the connector's uid and the segment's layout and answers `OK`. After that
//! the socket carries nothing: it stays open only so that each side learns
//! of the other's death as a hang-up. Data moves through the rings, with
//! futex wake-ups when a side sleeps (see [`WaitMode`]).
//!
//! Decisions:
//! - A blocked `send`/`recv` checks for a hung-up peer every
//!   [`PEER_CHECK`]; a call that does not block does not check (a syscall
//!   per message would cost more than the message), so a send to a peer
//!   that was killed succeeds while its queue has room, as on a socket.
//! - A closed or dead peer's already-sent messages are still received;
//!   `BrokenPipe` comes after the last of them.
//! - A message larger than a ring is sent as several chunks; a receive that
//!   times out part-way keeps the chunks it has and resumes later.

use std::time::{Duration, Instant};

use switchboard_shm::duplex::{Duplex, SegmentMem};
use switchboard_shm::ring::{wait_ready_or_peer, ConsumerState, ProducerState, Ring, RingError, WaitMode, Waited};
use switchboard_sys::socket::{wait_readable, Conn, Listener};
use switchboard_sys::{AsFd, Errno};

use super::{Link, DEFAULT_MAX_MESSAGE};
use crate::error::{Error, Result};
use crate::namespace::link_address;

/// How often a blocked call checks that the peer is still there.
pub const PEER_CHECK: Duration = Duration::from_millis(50);
const HELLO: &[u8] = b"SBL1";
const ACCEPTED: &[u8] = b"OK";
const HANDSHAKE: Duration = Duration::from_secs(10);

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
    tx: usize,
    producer: ProducerState,
    consumer: ConsumerState,
    partial: Vec<u8>,
    opts: ShmLinkOptions,
}

fn ring_error(e: RingError) -> Error {
    match e {
        RingError::Closed => Error::BrokenPipe,
        RingError::Corrupt(why) => Error::Malformed(why.into()),
    }
}

impl ShmLink {
    fn new(duplex: Duplex, conn: Conn, tx: usize, opts: ShmLinkOptions) -> ShmLink {
        ShmLink {
            duplex,
            conn,
            tx,
            producer: ProducerState::default(),
            consumer: ConsumerState::default(),
            partial: Vec::new(),
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
        Ok((ShmLink::new(duplex, a, 0, opts), ShmLink::new(other, b, 1, opts)))
    }

    /// Connects to the [`ShmLinkListener`] bound under `name`.
    ///
    /// # Errors
    /// `NotFound` when nobody listens, `AccessDenied` when the listener
    /// belongs to another user or refuses us, `Timeout`, `InvalidParameter`.
    pub fn connect(name: &str, opts: ShmLinkOptions) -> Result<ShmLink> {
        let conn = match Conn::connect(&link_address(name)?) {
            Ok(c) => c,
            Err(Errno::CONNREFUSED) => return Err(Error::NotFound(name.to_owned())),
            Err(e) => return Err(e.into()),
        };
        if conn.peer_cred()?.uid != switchboard_sys::process::uid() {
            return Err(Error::AccessDenied("the link name is held by another user"));
        }
        let (fd, duplex) = Duplex::create(opts.capacity).map_err(|_| bad_capacity())?;
        conn.send(HELLO, &[fd.as_fd()])?;
        let mut ack = [0u8; 8];
        match conn.recv(&mut ack, Some(Instant::now() + HANDSHAKE)) {
            Ok(Some((n, _))) if &ack[..n] == ACCEPTED => Ok(ShmLink::new(duplex, conn, 0, opts)),
            Ok(Some(_)) => Err(Error::AccessDenied("the listener refused the link")),
            Ok(None) | Err(Errno::CONNRESET) => Err(Error::BrokenPipe),
            Err(Errno::TIMEDOUT) => Err(Error::Timeout),
            Err(e) => Err(e.into()),
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
        match wait_ready_or_peer(&mut ready, signal, self.opts.wait, deadline, PEER_CHECK, &|| !self.conn.hung_up()) {
            Waited::Ready => Ok(true),
            Waited::TimedOut => Ok(false),
            // One last look: the peer may have sent before dying.
            Waited::PeerGone if ready() => Ok(true),
            Waited::PeerGone => Err(Error::BrokenPipe),
        }
    }

    fn push(&mut self, chunk: &[u8], more: bool) -> Result<()> {
        loop {
            let tx = self.tx;
            let pushed = self.duplex.ring(tx).try_push(&mut self.producer, chunk, more).map_err(ring_error)?;
            if pushed {
                return Ok(());
            }
            self.await_ring(true, chunk.len(), None)?;
        }
    }
}

fn bad_capacity() -> Error {
    Error::InvalidParameter("ring capacity must be a power of two between 64 bytes and 2 GiB")
}

impl Link for ShmLink {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.opts.max_message {
            return Err(Error::InvalidParameter("message larger than the link's maximum"));
        }
        let max_chunk = self.ring(self.tx).max_chunk();
        if msg.len() <= max_chunk {
            return self.push(msg, false);
        }
        let mut parts = msg.chunks(max_chunk).peekable();
        while let Some(part) = parts.next() {
            self.push(part, parts.peek().is_some())?;
        }
        Ok(())
    }

    fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> Result<()> {
        let rx = 1 - self.tx;
        loop {
            let popped = self.duplex.ring(rx).try_pop(&mut self.consumer, &mut self.partial);
            match popped.map_err(ring_error)? {
                Some(false) => {
                    std::mem::swap(buf, &mut self.partial);
                    self.partial.clear();
                    return Ok(());
                }
                Some(true) if self.partial.len() > self.opts.max_message => {
                    return Err(Error::Malformed("the peer sent a message over the maximum".into()));
                }
                Some(true) => {}
                None => {
                    if !self.await_ring(false, 0, deadline)? {
                        return Err(Error::Timeout);
                    }
                }
            }
        }
    }

    fn max_message(&self) -> usize {
        self.opts.max_message
    }
}

impl Drop for ShmLink {
    fn drop(&mut self) {
        // Tell the peer at once; the socket closing tells it too.
        self.ring(0).close();
        self.ring(1).close();
    }
}

/// Accepts [`ShmLink`]s under a name.
#[derive(Debug)]
pub struct ShmLinkListener {
    listener: Listener,
    opts: ShmLinkOptions,
}

impl ShmLinkListener {
    /// Listens under `name` (`NAME`, `Local\NAME` or `Global\NAME`).
    ///
    /// # Errors
    /// `InvalidName`; `AddrInUse` when another listener has the name.
    pub fn bind(name: &str) -> Result<ShmLinkListener> {
        let listener = Listener::bind(&link_address(name)?)?;
        Ok(ShmLinkListener { listener, opts: ShmLinkOptions::default() })
    }

    /// Sets the wait mode and maximum message of accepted links.
    #[must_use]
    pub fn with_options(mut self, opts: ShmLinkOptions) -> ShmLinkListener {
        self.opts = opts;
        self
    }

    /// Accepts one link, waiting at most `timeout` (`None`: forever).
    /// Connectors of another user, or with a malformed segment, are refused
    /// and the wait goes on.
    ///
    /// # Errors
    /// `Timeout`; system errors.
    pub fn accept(&self, timeout: Option<Duration>) -> Result<ShmLink> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            match wait_readable(self.listener.as_fd(), deadline) {
                Err(Errno::TIMEDOUT) => return Err(Error::Timeout),
                Err(e) => return Err(e.into()),
                Ok(()) => {}
            }
            if let Some(conn) = self.listener.accept()? {
                if let Ok(link) = self.handshake(conn) {
                    return Ok(link);
                }
            }
        }
    }

    fn handshake(&self, conn: Conn) -> Result<ShmLink> {
        if conn.peer_cred()?.uid != switchboard_sys::process::uid() {
            let _ = conn.send(b"NO", &[]);
            return Err(Error::AccessDenied("link connector is another user"));
        }
        let mut hello = [0u8; 8];
        let (n, fds) = conn.recv(&mut hello, Some(Instant::now() + HANDSHAKE))?.ok_or(Error::BrokenPipe)?;
        if &hello[..n] != HELLO || fds.len() != 1 {
            return Err(Error::Malformed("bad link hello".into()));
        }
        let duplex = Duplex::open(&fds[0]).map_err(|e| Error::Malformed(e.to_string()))?;
        conn.send(ACCEPTED, &[])?;
        let opts = ShmLinkOptions { capacity: duplex.capacity(), ..self.opts };
        Ok(ShmLink::new(duplex, conn, 1, opts))
    }
}
