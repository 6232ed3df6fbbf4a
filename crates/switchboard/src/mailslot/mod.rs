//! Mailslots (spec 03): one-way queued messages from many writers to one
//! server, on this machine and by broadcast to every machine of the local
//! network segment.
//!
//! ## How it works
//! The server ([`Mailslot`]) owns a message queue in shared memory
//! (`switchboard_shm::mailslot`) and binds the name as an abstract socket
//! (`sb1/G/m/<name>`, folded to lower case, machine-wide as classic mailslot
//! names are) as a rendezvous service: the process's responder checks each
//! opener's credentials against the ACL (default: the server's uid only) and
//! the server sends it the queue and its *life token* (`switchboard_sys::life`),
//! which a keeper thread of the server holds for the server's lifetime.
//! A writer ([`MailslotClient`]) then appends whole messages to the queue
//! directly — no system call per message — and reads the life token (one
//! load) before each write, so a write after the server closed or was killed
//! fails at once with `NotFound` (03-S10).
//!
//! A writer of `\\HOST\mailslot\NAME` writes to mailslot NAME on HOST
//! through this user's network gateway ([`crate::remote`], 13-S03). The
//! classic name is ambiguous (a computer or a domain); here it is a host
//! while a gateway runs for the user (a host that does not answer is 53,
//! never a broadcast of what was meant for one host), and, with no gateway,
//! a domain — this network segment, as `\\*` is. A writer of
//! `\\*\mailslot\NAME` reaches every gateway's host when a gateway runs
//! here (13-S04), and also sends each message
//! as one UDP datagram to the broadcast address of every interface that is
//! up, loopback included, on a configurable port ([`BroadcastConfig`]); the
//! datagram format is documented in the `net` module's source and below.
//! A server created with [`MailslotOptions::receive_broadcasts`] listens on
//! that port and queues each datagram for its name, so local and network
//! messages arrive in one queue; [`Mailslot::read_from`] tells them apart
//! (03-S13).
//!
//! ## Decisions where the classic API leaves room
//! - Receiving broadcasts is opt-in: it opens a UDP port to the network,
//!   and switchboard lets nobody in unless told to. A server that does not
//!   opt in receives only local writers.
//! - A bare `NAME` is accepted beside `\\.\mailslot\NAME` (Windows
//!   refuses it at create with `ERROR_INVALID_NAME`), for the reasons the
//!   pipe module gives.
//! - A max message size of 0 ("any size") means up to [`ANY_SIZE_LIMIT`]
//!   bytes: the queue holds at least two maximal messages. So does a size
//!   above [`LARGEST_MAX`] (such as `0xFFFFFFFF`, which Windows accepts):
//!   no queue holds two such messages. The server's [`Mailslot::info`]
//!   reports the size as it was given (0 stays 0), as `GetMailslotInfo`
//!   does; a writer's info and [`MailslotClient::max_message_size`] report
//!   the size its writes may have.
//! - A full queue fails a write with `QueueFull` (1816, the classic
//!   not-enough-quota) at once: classic mailslot writes never block. Set
//!   [`MailslotClient::set_write_timeout`] to wait for room instead.
//!   Broadcasts arriving at a full queue are dropped and counted.
//! - A write after the server closed or died fails with `NotFound` (2),
//!   as an open would.
//! - The datagram carries the writer's random id and a sequence number; a
//!   receiver drops repeats within the last 64 numbers of each of the last
//!   1024 senders. Datagrams that do not decode are dropped and counted
//!   ([`Mailslot::network_stats`]).
//!
//! ## Datagram format (version 1, integers little-endian)
//! `"SBM1"`, sender id `u64`, sequence `u32`, name length `u8` (1..=255),
//! the name (UTF-8), the message (at most 424 bytes).
//!
//! ```
//! use std::time::Duration;
//! use switchboard::mailslot::{Mailslot, MailslotClient};
//!
//! let name = format!("doc-{}", std::process::id());
//! let server = Mailslot::create(&name, 0, Duration::ZERO)?;
//! let client = MailslotClient::open(&name)?;
//! client.write(b"hello")?;
//! let mut buf = [0u8; 64];
//! let n = server.read(&mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! assert_eq!(server.read(&mut buf).unwrap_err().win32(), 121); // empty: ERROR_SEM_TIMEOUT
//! # Ok::<(), switchboard::Error>(())
//! ```

#[cfg(feature = "tokio")]
pub mod asyncio;
pub(crate) mod net;

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use switchboard_shm::mailslot::{NetCount, Origin, Queue, QueueError};
use switchboard_shm::pipe::PEER_CHECK;
use switchboard_shm::ring::PEER_BACKSTOP;
use switchboard_shm::ring::{ConsumerState, Peer, WaitMode};
use switchboard_sys::eventfd::EventFd;
use switchboard_sys::life::{LifeToken, LifeWatch};
use switchboard_sys::socket::{poll_readable, Conn, Cred};

pub use net::{BroadcastConfig, NetStats, DEFAULT_PORT, MAX_BROADCAST};

use crate::error::{Error, Result};
use crate::name::Name;
use crate::namespace::{mailslot_address, Acl};
use crate::remote::{self, Request};
use crate::rendezvous::{self, wire, Failure, Family, Handler, Service, Status, Trust};

/// A read timeout that never expires (classic `MAILSLOT_WAIT_FOREVER`).
pub const WAIT_FOREVER: Duration = Duration::MAX;
/// The largest message of a mailslot created with max size 0 ("any size").
pub const ANY_SIZE_LIMIT: usize = 64 * 1024;
/// The largest max message size a queue is sized for; a larger one means
/// any size, as 0 does.
pub const LARGEST_MAX: usize = 1 << 28;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn timeout_ms(t: Duration) -> u64 {
    if t == WAIT_FOREVER {
        u64::MAX
    } else {
        u64::try_from(t.as_millis()).unwrap_or(u64::MAX - 1)
    }
}

fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// A local mailslot name (`NAME` or `\\.\mailslot\NAME`), folded.
fn local_name(name: &str) -> Result<String> {
    match parse(name)? {
        Name::Mailslot(n) => Ok(n),
        _ => Err(Error::InvalidName { name: name.to_owned(), why: "a server needs NAME or \\\\.\\mailslot\\NAME" }),
    }
}

fn parse(name: &str) -> Result<Name> {
    let full = if name.starts_with(r"\\") { name.to_owned() } else { format!(r"\\.\mailslot\{name}") };
    match Name::parse(&full)? {
        n @ (Name::Mailslot(_) | Name::MailslotBroadcast { .. }) => Ok(n),
        _ => Err(Error::InvalidName { name: name.to_owned(), why: "expected NAME or \\\\.\\mailslot\\NAME" }),
    }
}

/// How to create a mailslot. Finish with [`MailslotOptions::create`].
#[derive(Clone, Debug)]
pub struct MailslotOptions {
    max_message_size: usize,
    read_timeout: Duration,
    queue_bytes: usize,
    acl: Acl,
    broadcast: Option<BroadcastConfig>,
    wait: WaitMode,
}

impl Default for MailslotOptions {
    fn default() -> Self {
        MailslotOptions {
            max_message_size: 0,
            read_timeout: WAIT_FOREVER,
            queue_bytes: 64 * 1024,
            acl: Acl::default(),
            broadcast: None,
            wait: WaitMode::default(),
        }
    }
}

impl MailslotOptions {
    /// The defaults: any size, wait forever, 64 KiB of queue, owner only,
    /// local writers only.
    pub fn new() -> Self {
        Self::default()
    }
    /// Largest message in bytes (0, or more than [`LARGEST_MAX`]: any size
    /// up to [`ANY_SIZE_LIMIT`]).
    pub fn max_message_size(mut self, n: usize) -> Self {
        self.max_message_size = n;
        self
    }
    /// How long a read waits for a message ([`WAIT_FOREVER`], or `ZERO`).
    pub fn read_timeout(mut self, t: Duration) -> Self {
        self.read_timeout = t;
        self
    }
    /// Bytes of queued messages the mailslot holds (rounded up to hold at
    /// least two maximal messages).
    pub fn queue_bytes(mut self, n: usize) -> Self {
        self.queue_bytes = n;
        self
    }
    /// Who besides this user may write.
    pub fn acl(mut self, acl: Acl) -> Self {
        self.acl = acl;
        self
    }
    /// Also queue broadcasts from the network (03-S11).
    pub fn receive_broadcasts(mut self, config: BroadcastConfig) -> Self {
        self.broadcast = Some(config);
        self
    }
    /// How a read waits (default: spin 20 µs, then sleep).
    pub fn wait_mode(mut self, mode: WaitMode) -> Self {
        self.wait = mode;
        self
    }

    /// Creates the mailslot `name` (`NAME` or `\\.\mailslot\NAME`) (S02).
    ///
    /// # Errors
    /// `AlreadyExists` (183) when a server holds the name, `InvalidName`,
    /// `InvalidParameter` for a max size over 1 GiB, system errors from
    /// binding the broadcast port.
    pub fn create(&self, name: &str) -> Result<Mailslot> {
        let folded = local_name(name)?;
        let addr = mailslot_address(&folded);
        let Some(listener) = rendezvous::bind_server(&addr)? else { return Err(Error::AlreadyExists(folded)) };
        let max = match self.max_message_size {
            0 => ANY_SIZE_LIMIT,
            n if n > LARGEST_MAX => ANY_SIZE_LIMIT,
            n => n,
        };
        let (queue_fd, queue) = Queue::create(max, self.queue_bytes)
            .map_err(|_| Error::InvalidParameter("the mailslot's max message size is too large"))?;
        let udp = self.broadcast.as_ref().map(net::bind_receiver).transpose()?;
        let core = Arc::new(Core {
            name: folded,
            queue,
            queue_fd,
            life: Arc::new(LifeToken::create()?),
            stop: AtomicBool::new(false),
            wake: EventFd::new()?,
            bell: EventFd::new()?,
            port: udp.as_ref().and_then(|u| u.local_addr().ok()).map(|a| a.port()),
        });
        let (tx, rx) = mpsc::channel();
        let c = core.clone();
        let keeper = std::thread::Builder::new()
            .name("switchboard-mailslot".into())
            .spawn(move || keep(&c, udp.as_ref(), &tx))
            .map_err(Error::Io)?;
        rx.recv().map_err(|_| Error::BrokenPipe)??;
        core.queue.set_read_timeout_ms(timeout_ms(self.read_timeout));
        let acl = self.acl.clone().with_owner(switchboard_sys::process::uid());
        let mut slot = Mailslot {
            core: core.clone(),
            reader: Mutex::new(ConsumerState::at(0)),
            read_timeout: Mutex::new(self.read_timeout),
            service: None,
            keeper: Some(keeper),
            wait: self.wait,
            given_max: self.max_message_size,
        };
        slot.service = Some(Service::start(Family::MAILSLOT, Arc::new(listener), acl, core)?);
        Ok(slot)
    }
}

/// What the server, its keeper thread and its service share.
#[derive(Debug)]
struct Core {
    name: String,
    queue: Queue,
    queue_fd: OwnedFd,
    life: Arc<LifeToken>,
    stop: AtomicBool,
    /// Rung to stop the keeper thread.
    wake: EventFd,
    /// The reader's doorbell: writers ring it while the reader armed it.
    bell: EventFd,
    /// The UDP port broadcasts arrive on, when receiving them.
    port: Option<u16>,
}

/// A writer the ACL admitted: the mailslot family's body is the max
/// message size (u32 LE); the descriptors are the queue, the server's life
/// token and the reader's doorbell.
impl Handler for Core {
    fn admit(&self, conn: Conn, _peer: Cred) {
        let body = (self.queue.max_message() as u32).to_le_bytes();
        let fds = [self.queue_fd.as_fd(), self.life.fd(), self.bell.as_fd()];
        let _ = wire::send(&conn, Family::MAILSLOT, Status::Granted, &body, &fds);
    }
}

/// After a message was queued: ring the reader's doorbell if it sleeps on
/// it (one load otherwise).
fn ring_if_armed(queue: &Queue, bell: &EventFd) {
    // SYNC: the push published (SeqCst) before this load; the reader armed
    // (SeqCst) before looking for a message (Dekker).
    if queue.bell_armed() {
        bell.notify();
    }
}

impl Core {
    /// Queues every datagram waiting on `udp` that is for this mailslot.
    fn drain(&self, udp: &UdpSocket, seen: &mut net::Seen, buf: &mut [u8]) {
        while let Ok((n, from)) = udp.recv_from(buf) {
            let counted = match net::judge(&buf[..n], &self.name, seen) {
                net::Verdict::Dropped(why) => why,
                net::Verdict::Deliver(d) => {
                    let now = Some(Duration::ZERO);
                    let reader = Peer { watch: None, alive: &|| true, every: PEER_CHECK };
                    match self.queue.push(net::origin_of(from, d.sender), d.message, now, reader) {
                        Ok(()) => {
                            ring_if_armed(&self.queue, &self.bell);
                            NetCount::Delivered
                        }
                        Err(_) => NetCount::Overflowed,
                    }
                }
            };
            self.queue.count_net(counted);
        }
    }
}

/// The server's keeper thread: holds the life token for the server's
/// lifetime (a robust lock must be held by a thread that lives exactly as
/// long as the server), and queues broadcasts when receiving them.
fn keep(core: &Core, udp: Option<&UdpSocket>, ready: &mpsc::Sender<Result<()>>) {
    let _hold = match LifeToken::hold(&core.life) {
        Ok(h) => h,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut seen = net::Seen::default();
    // One byte more than the largest valid datagram, so a longer one shows.
    let mut buf = vec![0u8; net::MAX_DATAGRAM + 1];
    while !core.stop.load(Ordering::SeqCst) {
        let mut fds = vec![core.wake.as_fd()];
        fds.extend(udp.map(AsFd::as_fd));
        let Ok(readable) = poll_readable(&fds, None) else { return };
        if let (Some(udp), Some(true)) = (udp, readable.get(1)) {
            core.drain(udp, &mut seen, &mut buf);
        }
    }
}

/// Who sent a message (03-S13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// A writer on this machine.
    Local,
    /// A broadcast from the network.
    Network {
        /// The sending host and port.
        host: SocketAddr,
        /// The writer's id from the datagram.
        sender_id: u64,
    },
}

impl From<Origin> for Sender {
    fn from(o: Origin) -> Self {
        match o {
            Origin::Local => Sender::Local,
            Origin::Network { addr, port, sender } => {
                let v6 = Ipv6Addr::from(addr);
                let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
                Sender::Network { host: SocketAddr::new(ip, port), sender_id: sender }
            }
        }
    }
}

/// One message as [`Mailslot::read_from`] returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes copied into the buffer: the whole message.
    pub len: usize,
    /// Who sent it.
    pub sender: Sender,
}

/// What [`Mailslot::info`] reports (classic `GetMailslotInfo`, S08).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailslotInfo {
    /// Largest message in bytes: the server reports the size as it was
    /// given at create (0: any size); a writer, the size its writes may
    /// have.
    pub max_message_size: usize,
    /// Size of the next message, `None` when the mailslot is empty.
    pub next_size: Option<usize>,
    /// Messages queued.
    pub count: usize,
    /// The read timeout.
    pub read_timeout: Duration,
    /// What the server's network receiver has seen (all zero when it does
    /// not receive broadcasts).
    pub network: NetStats,
}

/// A mailslot server: the only reader of its messages.
#[derive(Debug)]
pub struct Mailslot {
    core: Arc<Core>,
    reader: Mutex<ConsumerState>,
    read_timeout: Mutex<Duration>,
    /// Admits writers; `None` only while closing.
    service: Option<Service>,
    keeper: Option<JoinHandle<()>>,
    wait: WaitMode,
    /// The max message size as the creator gave it (what `info` reports).
    given_max: usize,
}

impl crate::sync::sealed::Sealed for Mailslot {
    fn waiter(&self) -> crate::sync::sealed::Waiter<'_> {
        let queue = &self.core.queue;
        let (word, count) = queue.watch_signal();
        // The reader's published position: a read in another thread may
        // hold the reader's lock for as long as it waits.
        let ready = move || queue.has_message(&queue.published_reader());
        let w = switchboard_shm::wait::Watched { word, count, ready, watch: None, poll: false };
        crate::sync::sealed::Waiter::Made(Box::new(w))
    }
    fn identity(&self) -> u64 {
        crate::sync::DESCRIPTOR_IDENTITY | switchboard_sys::ready::identity(self.core.queue_fd.as_fd())
    }
}

/// Signalled while a message is queued. The wait reads nothing.
impl crate::sync::Waitable for Mailslot {}

/// (next message size, message count) from reader position `st`.
fn sizes(queue: &Queue, st: &ConsumerState) -> std::result::Result<(Option<usize>, usize), QueueError> {
    Ok((queue.next(st)?.map(|n| n.len), queue.count(st)?))
}

fn queue_error(e: QueueError, name: &str) -> Error {
    match e {
        QueueError::TooBig { .. } => Error::InvalidParameter("the message is longer than the mailslot's maximum"),
        QueueError::Full => Error::QueueFull,
        QueueError::Closed => Error::NotFound(name.to_owned()),
        QueueError::TimedOut => Error::Timeout,
        QueueError::Corrupt(why) => Error::Malformed(format!("mailslot queue: {why}")),
    }
}

impl Mailslot {
    /// Creates mailslot `name` with a max message size (0: any size) and a
    /// read timeout ([`WAIT_FOREVER`], `ZERO`, or a duration) (S02).
    ///
    /// # Errors
    /// As [`MailslotOptions::create`].
    pub fn create(name: &str, max_message_size: usize, read_timeout: Duration) -> Result<Mailslot> {
        MailslotOptions::new().max_message_size(max_message_size).read_timeout(read_timeout).create(name)
    }

    /// Reads the next message, whole, waiting up to the read timeout (S04, S07).
    ///
    /// # Errors
    /// `Timeout` (121, `ERROR_SEM_TIMEOUT`) when none came in time;
    /// `InsufficientBuffer` (122) with the size needed when `buf` is too
    /// short — the message stays queued (S06); `Malformed` for a queue a
    /// writer corrupted.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.read_from(buf).map(|r| r.len)
    }

    /// As [`Mailslot::read`], also telling who sent the message (S13).
    ///
    /// # Errors
    /// As [`Mailslot::read`].
    pub fn read_from(&self, buf: &mut [u8]) -> Result<Received> {
        self.read_within(buf, None)
    }

    /// Reads a message if one is queued, without waiting (whatever the
    /// read timeout).
    ///
    /// # Errors
    /// `Timeout` (121) when the mailslot is empty; as [`Mailslot::read`].
    pub fn try_read_from(&self, buf: &mut [u8]) -> Result<Received> {
        self.read_within(buf, Some(Instant::now()))
    }

    /// A descriptor for `poll`/`epoll`/tokio that becomes readable when a
    /// writer queues a message while the doorbell is armed
    /// ([`Mailslot::arm_doorbell`]); the next read disarms it. One loop can
    /// so wait on this mailslot beside links, pipes and sockets.
    pub fn doorbell(&self) -> BorrowedFd<'_> {
        self.core.bell.as_fd()
    }

    /// Arms the doorbell before a sleep on it; `true` when a message is
    /// already queued (read instead of sleeping).
    pub fn arm_doorbell(&self) -> bool {
        let st = lock(&self.reader);
        self.core.queue.arm_bell(true);
        self.core.queue.next(&st).map_or(true, |n| n.is_some())
    }

    /// Reads one message, waiting until `deadline` (`Timeout` then).
    pub(crate) fn read_deadline(&self, buf: &mut [u8], deadline: Instant) -> Result<Received> {
        self.read_within(buf, Some(deadline))
    }

    /// `deadline` `None`: the mailslot's read timeout.
    fn read_within(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<Received> {
        let queue = &self.core.queue;
        let mut st = lock(&self.reader);
        if queue.bell_armed() {
            queue.arm_bell(false);
            self.core.bell.drain();
        }
        // The clock is read only when the mailslot is empty.
        let mut deadline = deadline.map(Some);
        loop {
            if let Some(next) = queue.next(&st).map_err(|e| queue_error(e, &self.core.name))? {
                if buf.len() < next.len {
                    return Err(Error::InsufficientBuffer { needed: next.len });
                }
                queue.take(&mut st, &next, buf);
                return Ok(Received { len: next.len, sender: next.origin.into() });
            }
            let until = *deadline.get_or_insert_with(|| deadline_after(*lock(&self.read_timeout)));
            if !queue.wait_message(&st, until, self.wait) {
                return Err(Error::Timeout);
            }
        }
    }

    /// Max message size, next message size, message count, read timeout (S08).
    ///
    /// # Errors
    /// `Malformed` for a queue a writer corrupted.
    pub fn info(&self) -> Result<MailslotInfo> {
        let st = lock(&self.reader);
        let (next_size, count) = sizes(&self.core.queue, &st).map_err(|e| queue_error(e, &self.core.name))?;
        let read_timeout = *lock(&self.read_timeout);
        let q = &self.core.queue;
        let network = NetStats::from_counts(q.net_counts());
        Ok(MailslotInfo { max_message_size: self.given_max, next_size, count, read_timeout, network })
    }

    /// The largest message a writer may send (the max message size, or
    /// [`ANY_SIZE_LIMIT`] for "any size"): a read buffer this long takes
    /// every message.
    pub fn largest_message(&self) -> usize {
        self.core.queue.max_message()
    }

    /// Changes the read timeout, and nothing else (S07).
    pub fn set_read_timeout(&self, timeout: Duration) {
        *lock(&self.read_timeout) = timeout;
        self.core.queue.set_read_timeout_ms(timeout_ms(timeout));
    }

    /// What the network receiver has delivered and dropped. A message is
    /// counted just after it is queued, so a reader may see it first.
    pub fn network_stats(&self) -> NetStats {
        NetStats::from_counts(self.core.queue.net_counts())
    }

    /// The UDP port broadcasts arrive on (`None`: not receiving them). With
    /// [`BroadcastConfig::port`] 0 the system picks a free one.
    pub fn broadcast_port(&self) -> Option<u16> {
        self.core.port
    }

    /// The mailslot's name, folded to lower case.
    pub fn name(&self) -> &str {
        &self.core.name
    }
}

impl Drop for Mailslot {
    fn drop(&mut self) {
        // Writers see the queue closed at once; the name goes with the
        // service, and the keeper, woken, releases the life token (S10).
        self.core.stop.store(true, Ordering::SeqCst);
        self.core.queue.close();
        self.service = None;
        self.core.wake.notify();
        if let Some(t) = self.keeper.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug)]
enum Target {
    Local { queue: Queue, life: LifeWatch, name: String, bell: EventFd },
    Broadcast(net::Broadcaster),
}

/// A mailslot writer (classic `CreateFile` on a mailslot name).
#[derive(Debug)]
pub struct MailslotClient {
    target: Target,
    /// A broadcast's copy for every gateway's host (`\\*\mailslot`).
    relay: Option<Box<Target>>,
    write_timeout: Duration,
}

impl MailslotClient {
    /// Opens mailslot `name` for writing: `NAME` or `\\.\mailslot\NAME` on
    /// this machine (S03), `\\HOST\mailslot\NAME` on another host through
    /// this user's gateway (S12, [`crate::remote`]), or `\\*\mailslot\NAME`
    /// to broadcast with the default [`BroadcastConfig`] (S11) and, when a
    /// gateway runs here, to every gateway's host (13-S04).
    ///
    /// # Errors
    /// `NotFound` (2) when no server holds a local name, `AccessDenied` by
    /// its ACL, `Timeout` when the server does not answer, `InvalidName`.
    pub fn open(name: &str) -> Result<MailslotClient> {
        MailslotClient::open_with(name, &BroadcastConfig::default())
    }

    /// As [`MailslotClient::open`], broadcasting as `config` says.
    ///
    /// # Errors
    /// As [`MailslotClient::open`]; `BadNetPath` when no interface is up.
    pub fn open_with(name: &str, config: &BroadcastConfig) -> Result<MailslotClient> {
        MailslotClient::open_as(name, config, Trust::UserOrRoot)
    }

    /// Opens mailslot `name` served by a process of user `owner_uid`. A
    /// plain [`MailslotClient::open`] believes only servers of the caller's
    /// user or root, so that another user who created the name first
    /// cannot receive what the caller writes.
    ///
    /// # Errors
    /// As [`MailslotClient::open`].
    pub fn open_trusting(name: &str, owner_uid: u32) -> Result<MailslotClient> {
        MailslotClient::open_as(name, &BroadcastConfig::default(), Trust::Owner(owner_uid))
    }

    fn open_as(name: &str, config: &BroadcastConfig, trust: Trust) -> Result<MailslotClient> {
        let (target, relay) = match parse(name)? {
            Name::MailslotBroadcast { name, domain: None } => {
                // Every host: UDP datagrams on this segment (the classic
                // path), and every gateway's host when a gateway runs here.
                let relay = match remote::open(&Request::OpenMailslot { host: None, name: name.clone() })? {
                    Some(local) => Some(Box::new(open_local(local, Trust::User)?)),
                    None => None,
                };
                (Target::Broadcast(net::Broadcaster::new(&name, config)?), relay)
            }
            Name::MailslotBroadcast { name, domain: Some(host) } => {
                // One host, through this user's gateway (13-S03); with no
                // gateway, the classic domain broadcast on this segment.
                match remote::open(&Request::OpenMailslot { host: Some(host), name: name.clone() })? {
                    Some(local) => (open_local(local, Trust::User)?, None),
                    None => (Target::Broadcast(net::Broadcaster::new(&name, config)?), None),
                }
            }
            Name::Mailslot(name) => (open_local(name, trust)?, None),
            _ => unreachable!("parse returns mailslot names only"),
        };
        Ok(MailslotClient { target, relay, write_timeout: Duration::ZERO })
    }

    /// Writes one message (S04). Local: appended whole to the queue;
    /// broadcast: one datagram to every host of the segment.
    ///
    /// # Errors
    /// `InvalidParameter` (87) over the max message size, nothing queued
    /// (S05); `QueueFull` (1816) when the queue stays full past the write
    /// timeout; `NotFound` (2) once the server closed or died (S10);
    /// `BadNetPath` (53) for a broadcast over 424 bytes.
    pub fn write(&self, message: &[u8]) -> Result<()> {
        self.write_to(&self.target, message)?;
        match &self.relay {
            Some(relay) => self.write_to(relay, message),
            None => Ok(()),
        }
    }

    fn write_to(&self, target: &Target, message: &[u8]) -> Result<()> {
        match target {
            Target::Local { queue, life, name, bell } => {
                // One load: a closed or dead server fails the write at once.
                let Some((word, alive)) = life.sleep_word() else { return Err(Error::NotFound(name.clone())) };
                // A writer waiting for room sleeps on the server's life
                // token too: its close or death ends the wait at once.
                let still = || life.alive();
                let reader = Peer { watch: Some((word, alive)), alive: &still, every: PEER_BACKSTOP };
                // WAIT_FOREVER overflows any deadline: the queue then waits for good.
                let timeout = Some(self.write_timeout);
                queue.push(Origin::Local, message, timeout, reader).map_err(|e| queue_error(e, name))?;
                ring_if_armed(queue, bell);
                Ok(())
            }
            Target::Broadcast(b) => b.send(message),
        }
    }

    /// The largest message this mailslot takes, learned at open (S05).
    pub fn max_message_size(&self) -> usize {
        match &self.target {
            Target::Local { queue, .. } => queue.max_message(),
            Target::Broadcast(_) => MAX_BROADCAST,
        }
    }

    /// How long a write waits for room in a full queue (default `ZERO`:
    /// fail at once with `QueueFull`; [`WAIT_FOREVER`] waits while the
    /// server lives). Waiting behind another writer's append is not waiting
    /// for room: every write waits up to a second for that, whatever its
    /// timeout, so concurrent writers never see a spurious `QueueFull`.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        self.write_timeout = timeout;
    }

    /// A writer's look at the mailslot (an extension: classic
    /// `GetMailslotInfo` needs the server's handle): max size, read timeout,
    /// and a snapshot of the count and next size, which the server's reads
    /// may change at any moment.
    ///
    /// # Errors
    /// `InvalidParameter` for a broadcast writer (no queue to look at),
    /// `NotFound` once the server is gone, `Malformed`.
    pub fn info(&self) -> Result<MailslotInfo> {
        let Target::Local { queue, life, name, .. } = &self.target else {
            return Err(Error::InvalidParameter("a broadcast writer has no queue to look at"));
        };
        if !life.alive() {
            return Err(Error::NotFound(name.clone()));
        }
        // The reader moving on while we walk the records can make a walk
        // fail; a few tries get a consistent snapshot.
        let mut tries = 0;
        let (next_size, count) = loop {
            match sizes(queue, &queue.published_reader()) {
                Err(QueueError::Corrupt(_)) if tries < 3 => tries += 1,
                other => break other.map_err(|e| queue_error(e, name))?,
            }
        };
        let ms = queue.read_timeout_ms();
        let read_timeout = if ms == u64::MAX { WAIT_FOREVER } else { Duration::from_millis(ms) };
        let network = NetStats::from_counts(queue.net_counts());
        Ok(MailslotInfo { max_message_size: queue.max_message(), next_size, count, read_timeout, network })
    }

    /// Whether this writer broadcasts.
    pub fn is_broadcast(&self) -> bool {
        matches!(self.target, Target::Broadcast(_))
    }

    /// The id this writer puts in its datagrams (broadcast writers).
    pub fn sender_id(&self) -> Option<u64> {
        match &self.target {
            Target::Broadcast(b) => Some(b.sender_id()),
            Target::Local { .. } => None,
        }
    }
}

fn open_local(name: String, trust: Trust) -> Result<Target> {
    let deadline = rendezvous::answer_deadline(None);
    // The server closed while we asked: as good as never there.
    let answer = rendezvous::connect(Family::MAILSLOT, &mailslot_address(&name), deadline, trust)
        .map_err(|f: Failure| f.into_error(&name))?;
    let (4, Ok([queue_fd, life_fd, bell])) = (answer.body.len(), <[OwnedFd; 3]>::try_from(answer.fds)) else {
        return Err(Error::Malformed("a mailslot reply without its size, queue, life token and bell".into()));
    };
    let bell = EventFd::adopt(bell).map_err(|_| Error::Malformed("the mailslot's bell is not an eventfd".into()))?;
    let queue = Queue::open(&queue_fd).map_err(|e| Error::Malformed(e.to_string()))?;
    let life = LifeWatch::open(&life_fd).map_err(|e| Error::Malformed(format!("life token: {e}")))?;
    if !life.alive() {
        return Err(Error::NotFound(name));
    }
    Ok(Target::Local { queue, life, name, bell })
}

fn access_denied(what: &'static str) -> io::Error {
    Error::AccessDenied(what.into()).into()
}

/// Reads one message (as [`Mailslot::read`]).
impl io::Read for Mailslot {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(Mailslot::read(self, buf)?)
    }
}

/// A server only reads (S01): every write is `AccessDenied`.
impl io::Write for Mailslot {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(access_denied("a mailslot server only reads"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer only writes (S01): every read is `AccessDenied`.
impl io::Read for MailslotClient {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(access_denied("a mailslot client only writes"))
    }
}

/// Writes `buf` as one message (as [`MailslotClient::write`]).
impl io::Write for MailslotClient {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        MailslotClient::write(self, buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
