//! Completion ports as a cross-process packet queue (spec 04, S01–S10).
//!
//! Classic completion ports are per-process; using one across processes (a
//! server publishes its pid and port handle, clients duplicate the handle and
//! post) is an extension, supported and documented here as such: a port is a
//! named (or unnamed) object like a mapping, so it can be opened by name,
//! sent over a connection, or taken from a process by pid + handle
//! ([`Port::from_process`], `pidfd_getfd`).
//!
//! The queue lives in shared memory (see `switchboard_shm::port`): FIFO
//! across all posters, exactly-once delivery, LIFO release of waiting
//! consumers, and no corruption or blocking when any poster or consumer is
//! killed at any instruction.
//!
//! Decisions:
//! - The *server* is the handle that created the port. Dropping it (or its
//!   process dying) closes the port: waiters get `AbandonedWait` (735),
//!   later posts `InvalidHandle` (6). The port carries its creator's
//!   process life token (`switchboard_sys::life`): a post checks it with one
//!   load, so a post after the server's `kill -9` fails at once, and a
//!   consumer or a poster blocked on a full queue sleeps on it too, so the
//!   server's death ends its wait at once.
//! - Concurrency: a consumer counts as running from the get that returned a
//!   packet until its next get (or its death). `0` means the number of CPUs.
//! - A full queue blocks the poster, or fails with `QueueFull` (1816) when
//!   the port was built with [`Overflow::Fail`].
//! - At most 64 consumers may wait at once on one port.
//!
//! ```
//! use switchboard::port::Port;
//! use std::time::Duration;
//! let port = Port::create(None, 1)?;
//! port.post(8, 42, 0xfeed)?;
//! let p = port.get(Some(Duration::ZERO))?;
//! assert_eq!((p.bytes, p.key, p.overlapped), (8, 42, 0xfeed));
//! # Ok::<(), switchboard::Error>(())
//! ```

use switchboard_shm::peer::{Peer, PEER_BACKSTOP};
use switchboard_shm::port::{PortError, PortQueue};
use switchboard_shm::segment::Segment;
use switchboard_shm::wait::Watched;
use switchboard_sys::epoll::Epoll;
use switchboard_sys::eventfd::EventFd;
use switchboard_sys::life::LifeWatch;
use switchboard_sys::process::HandleValue;
use switchboard_sys::process::Pidfd;
use switchboard_sys::socket::Conn;
use switchboard_sys::{AsFd, BorrowedFd};

pub use switchboard_shm::port::Packet;

use crate::error::{Error, Result};
use crate::namespace::{self, Acl, Endpoint, Kind};
use crate::time::Deadline;

/// What a post does when the queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Wait for room (default).
    #[default]
    Block,
    /// Fail with `QueueFull`.
    Fail,
}

/// How to create a port. Finish with [`PortBuilder::create`].
#[derive(Debug)]
pub struct PortBuilder<'a> {
    name: Option<&'a str>,
    concurrency: u32,
    capacity: u32,
    overflow: Overflow,
    acl: Acl,
}

impl<'a> PortBuilder<'a> {
    /// The port's name (`None`: unnamed, shareable by handle only).
    pub fn name(mut self, name: impl Into<Option<&'a str>>) -> Self {
        self.name = name.into();
        self
    }
    /// Consumers released at once (0: the number of CPUs).
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = n;
        self
    }
    /// Packets the queue holds (default 4096).
    pub fn capacity(mut self, n: u32) -> Self {
        self.capacity = n;
        self
    }
    /// What a post does when the queue is full.
    pub fn overflow(mut self, o: Overflow) -> Self {
        self.overflow = o;
        self
    }
    /// Who besides this user may open it.
    pub fn acl(mut self, acl: Acl) -> Self {
        self.acl = acl;
        self
    }

    /// Creates the port, or opens the existing one of that name.
    ///
    /// # Errors
    /// `InvalidParameter` for a capacity of 0 or over 1 Mi packets,
    /// `InvalidHandle` when the name holds another kind, `InvalidName`.
    pub fn create(self) -> Result<Port> {
        let addr = namespace::address_for(Kind::Port, self.name)?;
        let concurrency = match self.concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            n => n,
        };
        let mut make = || {
            let (fd, _q) = PortQueue::create(self.capacity, concurrency)
                .map_err(|_| Error::InvalidParameter("port capacity must be 1..=1048576 packets"))?;
            let life = crate::rendezvous::process_life()?.fd().try_clone_to_owned()?;
            let bell = EventFd::new()?.as_fd().try_clone_to_owned()?;
            Ok((vec![fd, life, bell], namespace::describe(Kind::Port, 0, self.overflow as u8)))
        };
        Port::attach(namespace::create_or_open(Kind::Port, &addr, &self.acl, &mut make)?)
    }
}

/// A completion port.
#[derive(Debug)]
pub struct Port {
    endpoint: Endpoint,
    queue: PortQueue<Segment>,
    /// The server's process life token; `None` in the server's own handle.
    server_life: Option<LifeWatch>,
    overflow: Overflow,
    /// The port's doorbell, shared by every holder: rung by a post while a
    /// consumer sleeps on it.
    bell: EventFd,
    /// Whether this handle armed the doorbell since its last get.
    armed: std::sync::atomic::AtomicBool,
    /// The doorbell descriptor: the bell, and the server process's pidfd
    /// (readable when it exits, kept open here), in one epoll set; made on
    /// first use.
    doorbell: std::sync::OnceLock<(Epoll, Option<Pidfd>)>,
}

fn port_error(e: PortError) -> Error {
    match e {
        PortError::Closed => Error::AbandonedWait,
        PortError::QueueFull => Error::QueueFull,
        PortError::TimedOut => Error::WaitTimeout,
        PortError::TooManyWaiters => Error::InvalidParameter("more than 64 consumers wait on this port"),
        PortError::Corrupt => Error::Malformed("port queue".into()),
        PortError::Stalled => Error::Timeout,
    }
}

impl Port {
    /// Starts building a port.
    pub fn builder<'a>() -> PortBuilder<'a> {
        PortBuilder { name: None, concurrency: 0, capacity: 4096, overflow: Overflow::Block, acl: Acl::default() }
    }

    /// Creates a port (or opens the existing one of that name) (S02).
    ///
    /// # Errors
    /// As [`PortBuilder::create`].
    pub fn create<'a>(name: impl Into<Option<&'a str>>, concurrency: u32) -> Result<Port> {
        Port::builder().name(name).concurrency(concurrency).create()
    }

    /// Opens an existing port by name (S02).
    ///
    /// # Errors
    /// `NotFound`, `InvalidHandle`, `AccessDenied`.
    pub fn open(name: &str) -> Result<Port> {
        Port::open_as(name, None)
    }

    /// Opens an existing `Global\` port whose creator is user
    /// `owner_uid` (a plain [`Port::open`] believes only the caller's user
    /// or root).
    ///
    /// # Errors
    /// As [`Port::open`].
    pub fn open_trusting(name: &str, owner_uid: u32) -> Result<Port> {
        Port::open_as(name, Some(owner_uid))
    }

    fn open_as(name: &str, owner: Option<u32>) -> Result<Port> {
        let addr = namespace::address_for(Kind::Port, Some(name))?.trusting(owner);
        Port::attach(namespace::open(Kind::Port, &addr)?)
    }

    /// The uid of the user who created the port.
    pub fn owner_uid(&self) -> u32 {
        self.endpoint.owner_uid()
    }

    /// Takes handle `handle` of process `pid` — the classic
    /// `DuplicateHandle` trick, done with `pidfd_getfd` (S02).
    ///
    /// # Errors
    /// `HandleTakingRefused` when the OS forbids it: send the port over a
    /// connection instead ([`Port::send`] / [`Port::receive`]).
    pub fn from_process(pid: u32, handle: HandleValue) -> Result<Port> {
        Port::attach(namespace::take_from_process(Kind::Port, pid, handle)?)
    }

    /// Receives a port sent with [`Port::send`].
    ///
    /// # Errors
    /// `Timeout`, `InvalidHandle`, `Malformed`.
    pub fn receive(conn: &Conn, timeout: impl Into<Deadline>) -> Result<Port> {
        Port::attach(namespace::receive(Kind::Port, conn, timeout)?)
    }

    fn attach(endpoint: Endpoint) -> Result<Port> {
        let fd = endpoint.fd(0).ok_or_else(|| Error::Malformed("port without a queue".into()))?;
        let queue = PortQueue::open(fd).map_err(|e| Error::Malformed(e.to_string()))?;
        let server_life = match (endpoint.existed, endpoint.fd(1)) {
            (false, _) => None,
            (true, Some(life)) => Some(
                LifeWatch::open(life).map_err(|e| Error::Malformed(format!("the port server's life token: {e}")))?,
            ),
            (true, None) => return Err(Error::Malformed("a port without its server's life token".into())),
        };
        let overflow =
            if endpoint.info().protection == Overflow::Fail as u8 { Overflow::Fail } else { Overflow::Block };
        let bell = endpoint.fd(2).ok_or_else(|| Error::Malformed("a port without its doorbell".into()))?;
        let bell = EventFd::adopt(bell.try_clone_to_owned()?)
            .map_err(|_| Error::Malformed("the port's doorbell is not an eventfd".into()))?;
        let armed = std::sync::atomic::AtomicBool::new(false);
        Ok(Port { endpoint, queue, server_life, overflow, bell, armed, doorbell: std::sync::OnceLock::new() })
    }

    /// Sends this port over a connection.
    ///
    /// # Errors
    /// `EPIPE` when the peer is gone.
    pub fn send(&self, conn: &Conn) -> Result<()> {
        self.endpoint.send(conn)
    }

    /// The handle value other processes can take with [`Port::from_process`].
    pub fn handle(&self) -> HandleValue {
        self.endpoint.handle()
    }

    /// Whether the name already existed.
    pub fn already_existed(&self) -> bool {
        self.endpoint.existed
    }

    /// The concurrency value.
    pub fn concurrency(&self) -> u32 {
        self.queue.concurrency()
    }

    /// Consumers blocked in a get on this port (in any process).
    pub fn waiting(&self) -> u64 {
        self.queue.waiting()
    }

    /// Packets waiting in the queue.
    pub fn queued(&self) -> u64 {
        self.queue.queued()
    }

    /// Posts a packet (S03). Values are opaque.
    ///
    /// # Errors
    /// `InvalidHandle` once the port is closed; `QueueFull` when full and
    /// the port's policy is [`Overflow::Fail`]; `Timeout` (121) when a
    /// thread holding the port's lock keeps it for a second (a stopped
    /// process, or a lock word a hostile peer wrote) — a post never waits
    /// on another thread longer than that.
    pub fn post(&self, bytes: u32, key: u64, overlapped: u64) -> Result<()> {
        let closed = || Error::InvalidHandle { wanted: "port", found: "a closed port" };
        // One load: the server's death closes the port for posters at once.
        if self.server_life.as_ref().is_some_and(|l| !l.alive()) {
            self.queue.close();
            return Err(closed());
        }
        let block = self.overflow == Overflow::Block;
        let backstop = || self.creator_alive();
        self.queue.post(Packet { bytes, key, overlapped }, block, self.server(&backstop)).map_err(|e| match e {
            PortError::Closed => closed(),
            other => port_error(other),
        })?;
        // SYNC: the post published (SeqCst) before this load; a consumer
        // arms (SeqCst) before looking at the queue (Dekker).
        if self.queue.bell_armed() {
            self.bell.notify();
        }
        Ok(())
    }

    /// The slow check behind the server's life token (a `kill(pid, 0)`).
    fn creator_alive(&self) -> bool {
        switchboard_sys::process::is_alive(self.endpoint.info().creator_pid)
    }

    /// The server as a waiter on the queue sees it: its token's word to
    /// sleep on, `backstop` asked now and then.
    fn server<'a>(&'a self, backstop: &'a dyn Fn() -> bool) -> Peer<'a> {
        match &self.server_life {
            None => Peer::PRESENT,
            Some(life) => match life.sleep_word() {
                Some(watch) => Peer { watch: Some(watch), alive: backstop, every: PEER_BACKSTOP },
                None => Peer { watch: None, alive: &|| false, every: PEER_BACKSTOP },
            },
        }
    }

    /// Takes the oldest packet, waiting at most `timeout` (`None`: forever,
    /// zero: poll) (S04).
    ///
    /// # Errors
    /// `WaitTimeout` (258) with no packet; `AbandonedWait` (735) when the port
    /// is closed.
    pub fn get(&self, timeout: impl Into<Deadline>) -> Result<Packet> {
        self.disarm_doorbell();
        self.check_server()?;
        let deadline = timeout.into().instant();
        let me = switchboard_sys::process::tid();
        let backstop = || self.creator_alive();
        self.queue.get(me, deadline, self.server(&backstop)).map_err(port_error)
    }

    /// Takes 1..=`entries.len()` packets as soon as one is available (S05);
    /// returns how many.
    ///
    /// # Errors
    /// As [`Port::get`]; `InvalidParameter` for an empty slice.
    pub fn get_many(&self, entries: &mut [Packet], timeout: impl Into<Deadline>) -> Result<usize> {
        if entries.is_empty() {
            return Err(Error::InvalidParameter("get_many needs room for at least one packet"));
        }
        let mut got = vec![self.get(timeout)?];
        self.queue.drain(switchboard_sys::process::tid(), entries.len(), &mut got);
        entries[..got.len()].copy_from_slice(&got);
        Ok(got.len())
    }

    /// Closes the port for everyone (S09); the server's handle does this on drop.
    pub fn close(&self) {
        self.queue.close();
        self.bell.notify();
    }

    /// One load: a dead server's port is closed for consumers at once.
    fn check_server(&self) -> Result<()> {
        if self.server_life.as_ref().is_some_and(|l| !l.alive()) {
            self.close();
            return Err(Error::AbandonedWait);
        }
        Ok(())
    }

    /// Takes a queued packet without waiting (see [`Port::get`]).
    ///
    /// # Errors
    /// `WaitTimeout` (258) when none is queued; `AbandonedWait` when closed.
    pub fn try_get(&self) -> Result<Packet> {
        self.get(Deadline::now())
    }

    /// A descriptor for `poll`/`epoll`/tokio that becomes readable when a
    /// packet is posted while this handle's doorbell is armed
    /// ([`Port::arm_doorbell`]), the port closes, or its server process
    /// ends (`kill -9` included: its pidfd is in the set); the next get
    /// disarms it. Every holder shares the one bell: a post wakes every
    /// sleeper on it, and one of them gets the packet.
    ///
    /// # Errors
    /// When the epoll set cannot be made (out of descriptors).
    pub fn doorbell(&self) -> Result<BorrowedFd<'_>> {
        if self.doorbell.get().is_none() {
            let set = Epoll::new()?;
            set.add(self.bell.as_fd(), 0)?;
            let mut server = None;
            if let Some(life) = &self.server_life {
                // Checked alive after the pidfd is open, so the pidfd cannot
                // be a later process's that reused the pid.
                match Pidfd::open(self.endpoint.info().creator_pid) {
                    Ok(pidfd) if life.alive() => {
                        set.add(pidfd.as_fd(), 1)?;
                        server = Some(pidfd);
                    }
                    // Already gone: ring, so that the next get reports it.
                    _ => self.bell.notify(),
                }
            }
            let _ = self.doorbell.set((set, server));
        }
        Ok(self.doorbell.get().expect("set above").0.as_fd())
    }

    /// Arms the doorbell before a sleep on it; `true` when there is no need
    /// to sleep (a packet is queued, or the port is closed).
    pub fn arm_doorbell(&self) -> bool {
        if !self.armed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.queue.arm_bell(true);
        }
        self.queue.queued() > 0 || self.queue.is_closed()
    }

    fn disarm_doorbell(&self) {
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.queue.arm_bell(false);
            self.bell.drain();
        }
    }
}

impl crate::sync::sealed::Sealed for Port {
    fn waiter(&self) -> crate::sync::sealed::Waiter<'_> {
        let (word, count) = self.queue.watch_signal();
        let ready = move || self.queue.signalled() || self.server_life.as_ref().is_some_and(|l| !l.alive());
        let watch = self.server_life.as_ref().and_then(|l| l.sleep_word());
        crate::sync::sealed::Waiter::Made(Box::new(Watched { word, count, ready, watch, poll: false }))
    }
    fn identity(&self) -> u64 {
        self.endpoint.identity()
    }
}

/// Signalled while a packet is queued or the port is closed (its server
/// gone included): a [`Port::get`] would not wait. The wait takes nothing.
impl crate::sync::Waitable for Port {}

impl Drop for Port {
    fn drop(&mut self) {
        if self.server_life.is_none() {
            self.close();
        }
    }
}

/// A [`Port`] whose gets are awaited in tokio's reactor on the port's
/// doorbell (feature `tokio`): a waiting get parks no thread.
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct AsyncPort {
    port: Port,
    bell: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
}

#[cfg(feature = "tokio")]
impl AsyncPort {
    /// Wraps `port`; must be called inside a tokio runtime.
    ///
    /// # Errors
    /// When the doorbell cannot be registered.
    pub fn new(port: Port) -> Result<AsyncPort> {
        let bell = switchboard_sys::reactor::register_readable(port.doorbell()?.try_clone_to_owned()?)?;
        Ok(AsyncPort { port, bell })
    }

    /// Takes the next packet, awaiting one without a thread. Cancel-safe:
    /// a packet is taken only when this returns it.
    ///
    /// # Errors
    /// `AbandonedWait` (735) once the port is closed.
    pub async fn get(&self) -> Result<Packet> {
        let mut get = Get { port: &self.port, armed: false };
        crate::bell::until_rung(&self.bell, &mut get).await?
    }

    /// The port itself.
    pub fn get_ref(&self) -> &Port {
        &self.port
    }
}

/// One get through the doorbell. Each waiting get counts itself among the
/// port's sleepers (several may wait on one handle at once) and takes
/// itself back when it ends, even when cancelled.
#[cfg(feature = "tokio")]
struct Get<'a> {
    port: &'a Port,
    armed: bool,
}

#[cfg(feature = "tokio")]
impl crate::bell::Doorbelled for Get<'_> {
    type Output = Result<Packet>;
    fn attempt(&mut self) -> Option<Result<Packet>> {
        if let Err(e) = self.port.check_server() {
            return Some(Err(e));
        }
        let deadline = Deadline::now().instant();
        let me = switchboard_sys::process::tid();
        let backstop = || self.port.creator_alive();
        match self.port.queue.get(me, deadline, self.port.server(&backstop)).map_err(port_error) {
            Err(Error::WaitTimeout) => None,
            other => Some(other),
        }
    }
    fn arm(&mut self) -> bool {
        if !self.armed {
            self.armed = true;
            self.port.queue.arm_bell(true);
        }
        self.port.queue.queued() > 0 || self.port.queue.is_closed()
    }
}

#[cfg(feature = "tokio")]
impl Drop for Get<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.port.queue.arm_bell(false);
        }
    }
}
