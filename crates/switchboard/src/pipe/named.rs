//! Named pipes (spec 02, S09–S25): server instances, clients, byte and
//! message modes, connect / wait / disconnect, transact, peek, peer identity.
//!
//! ## How it works
//! A pipe name is an abstract socket (`sb1/G/p/<name>`, names folded to
//! lower case, machine-wide as classic pipe names are). The process that
//! creates the first instance binds it and runs it as a rendezvous service
//! (with a second one, `sb1/G/q/<name>`, for `wait_named_pipe`). A client
//! connects; the process's responder checks its credentials against the
//! ACL (default: the creator's uid only); the pipe picks a listening instance,
//! creates the instance's data plane — a shared-memory link whose reader
//! and writer positions live in shared state ([`switchboard_shm::pipe`]) —
//! and sends it to the client with `SCM_RIGHTS`. The client's `open` thus
//! succeeds at once, even before the server calls [`PipeServer::connect`]
//! (which then reports `already_connected`, classic `ERROR_PIPE_CONNECTED`).
//! The socket stays open only to report either side's death as a hang-up.
//!
//! ## Decisions where the classic API leaves room
//! - Every instance of one name lives in the process that created the first
//!   one; `create` of an existing name from another process is
//!   `AccessDenied` (as `first_instance` is).
//! - A client end can be handed to another process ([`PipeClient::send`],
//!   [`PipeClient::receive`]); both then read and write the same end, and a
//!   message-mode read cut short by one is continued by the other (S18).
//! - A client that never finished opening — it refused the server (the
//!   holder was not of a trusted user), or died between the grant and its
//!   acknowledgement — does not hold the instance: the next client that
//!   needs it gets it. One that opened and left keeps it busy until the
//!   server disconnects and connects (S15).
//! - After [`PipeServer::disconnect`] the client's calls fail with
//!   `PipeNotConnected` (233); unread data both ways is discarded.
//! - Writes wait while the peer's buffer is full (S25); a waiting call
//!   checks every 50 ms that the peer is alive, so a peer killed with
//!   `kill -9` turns into `BrokenPipe` / `NoData`, never a hang.
//!
//! ## Where it differs from Windows on purpose
//! Wine's `pipe.c` pins the classic behaviour; these differences are kept:
//! - A bare `NAME` is accepted beside `\\.\pipe\NAME` (Windows refuses
//!   it with `ERROR_INVALID_NAME`). Here a bare name cannot mean a file,
//!   as `CreateFile("name")` would; every correct Windows program passes
//!   the prefix and works unchanged; Rust callers and the CLI use short
//!   names. Only a program that counts on the refusal sees a difference.
//! - A writer killed in the middle of a message longer than one ring
//!   chunk leaves the part it wrote, which the next writer ends (S18:
//!   another holder of the same end may be continuing it); Windows
//!   discards it.
//! - A server write just after the client process was *killed* may
//!   succeed until the hang-up is seen (microseconds later, by the
//!   process's responder); after a client's close it is `NoData` at once.
//! - A pipe end waited on as an object ([`crate::sync::wait_any`]) is
//!   signalled while a read would not wait (data, or the other end gone).
//!   A Windows pipe handle is signalled while no I/O is pending on it — at
//!   once after `CreateNamedPipe` (Wine's `test_signaled`) — which says
//!   nothing about data; programs wait on an overlapped event instead,
//!   which [`crate::overlapped`] gives as a port packet.
//! - In byte read mode a peek reports 0 bytes left in the message;
//!   Windows reports the count it copied, negated as a `DWORD` (Wine's
//!   `pipe.c`: `left == -4` after a 4-byte peek), which no program can use.
//! - Overlapped I/O completes on a port through an association
//!   ([`crate::overlapped`], spec 04-S11), which owns the end; the result
//!   is taken by overlapped id rather than written into a caller's buffer.
//!
//! ```
//! use switchboard::pipe::named::{PipeClient, PipeOptions, PipeType, ReadMode};
//!
//! let name = format!("doc-{}", std::process::id());
//! let server = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message).create(&name)?;
//! let client = PipeClient::open(&name)?;
//! client.write(b"hello")?;
//! server.connect()?;
//! let mut buf = [0u8; 16];
//! let n = server.read(&mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! # Ok::<(), switchboard::Error>(())
//! ```

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use switchboard_shm::peer::{Peer, PEER_BACKSTOP, PEER_CHECK};
use switchboard_shm::pipe::{Channel, ChannelError, Framing, PeekOutcome};
use switchboard_sys::eventfd::EventFd;
use switchboard_sys::socket::{Conn, Cred, Listener};

use crate::error::{Error, Result};
use crate::namespace::{pipe_addresses, Acl};
use crate::rendezvous::{self, wire, Answer, Failure, Family, Handler, HangupWatch, Service, Status, Trust};

/// Classic `PIPE_UNLIMITED_INSTANCES`.
pub const UNLIMITED_INSTANCES: u32 = 255;
/// Default ring size of each direction (classic buffer sizes are hints too).
pub const DEFAULT_BUFFER: usize = 64 * 1024;
/// The open reply's flag of a pipe that refuses remote clients.
const REJECTS_REMOTE: u8 = 1;
/// Most `wait_named_pipe` callers one pipe keeps waiting; more are `PipeBusy`.
pub const MAX_WAITERS: usize = 64;

/// Which way data flows, seen from the server (classic `PIPE_ACCESS_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipeAccess {
    /// Client → server.
    Inbound = 1,
    /// Server → client.
    Outbound = 2,
    /// Both ways.
    Duplex = 3,
}

/// How writes are framed (classic `PIPE_TYPE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipeType {
    /// A byte stream.
    Byte = 0,
    /// Each write is one message.
    Message = 1,
}

/// How reads treat messages (classic `PIPE_READMODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// Bytes of several messages run together.
    Byte,
    /// At most one message per read.
    Message,
}

/// What a peek saw (S21).
pub type PipePeek = PeekOutcome;

/// Options of a pipe instance (classic `CreateNamedPipe` parameters).
#[derive(Clone, Debug)]
pub struct PipeOptions {
    access: PipeAccess,
    pipe_type: PipeType,
    read_mode: ReadMode,
    max_instances: u32,
    buffer: usize,
    default_timeout: Duration,
    first_instance: bool,
    reject_remote: bool,
    acl: Acl,
}

impl Default for PipeOptions {
    fn default() -> Self {
        PipeOptions {
            access: PipeAccess::Duplex,
            pipe_type: PipeType::Byte,
            read_mode: ReadMode::Byte,
            max_instances: UNLIMITED_INSTANCES,
            buffer: DEFAULT_BUFFER,
            default_timeout: Duration::ZERO,
            first_instance: false,
            reject_remote: false,
            acl: Acl::default(),
        }
    }
}

/// Whether [`PipeServer::connect`] found its client already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connected {
    /// The client connected before `connect` was called (classic 535).
    pub already_connected: bool,
}

macro_rules! setter {
    ($(#[$m:meta])* $name:ident: $t:ty) => {
        $(#[$m])*
        #[must_use]
        pub fn $name(mut self, v: $t) -> Self {
            self.$name = v;
            self
        }
    };
}

impl PipeOptions {
    /// Duplex, byte type, byte read mode, unlimited instances, 64 KiB.
    pub fn new() -> Self {
        PipeOptions::default()
    }
    setter!(/// Data direction.
        access: PipeAccess);
    setter!(/// Byte or message type.
        pipe_type: PipeType);
    setter!(/// The server end's read mode.
        read_mode: ReadMode);
    setter!(/// 1..=255 ([`UNLIMITED_INSTANCES`] = no limit).
        max_instances: u32);
    setter!(/// Bytes each direction buffers (a hint: rounded up to a power of two, at least 4 KiB).
        buffer: usize);
    setter!(/// What `wait_named_pipe` waits by default (zero: 50 ms).
        default_timeout: Duration);
    setter!(/// Fail with `AccessDenied` unless this creates the name.
        first_instance: bool);
    setter!(/// Refuse remote clients (classic `PIPE_REJECT_REMOTE_CLIENTS`):
        /// a gateway's [`PipeClient::open_for_remote`] is `AccessDenied`.
        reject_remote: bool);
    setter!(/// Who may open the pipe (default: the creator's user only).
        acl: Acl);

    /// Creates one server instance of pipe `name` (S09, S10).
    ///
    /// # Errors
    /// `InvalidParameter` for a byte pipe with message read mode (S11) or
    /// out-of-range values; `PipeBusy` beyond max instances; `AccessDenied`
    /// for `first_instance` on an existing name, another access mode than the
    /// existing instances', or a name held by another process; `InvalidName`.
    pub fn create(&self, name: &str) -> Result<PipeServer> {
        if self.pipe_type == PipeType::Byte && self.read_mode == ReadMode::Message {
            return Err(Error::InvalidParameter("a byte-type pipe cannot have message read mode"));
        }
        if self.max_instances == 0 || self.max_instances > UNLIMITED_INSTANCES {
            return Err(Error::InvalidParameter("max instances must be 1..=255"));
        }
        let (folded, open_addr, query_addr) = pipe_addresses(name)?;
        let pipe = Pipe::find_or_bind(&folded, &open_addr, &query_addr, self)?;
        let id = pipe.add_instance(self)?;
        Ok(PipeServer {
            pipe,
            id,
            read_mode: Mutex::new(self.read_mode),
            active: Mutex::new(None),
            timeouts: Timeouts::default(),
        })
    }
}

#[derive(Debug)]
enum Slot {
    /// Clients may connect to it; listening since this stamp (a client
    /// goes to the instance listening longest, as the classic pipe does).
    Listening(u64),
    /// A client connected; the server has not called `connect` yet.
    Pending(Box<End>),
    /// Connected (or its client left; busy until `disconnect`).
    Busy,
    /// Disconnected; not listening until `connect` is called.
    Idle,
}

#[derive(Debug)]
struct Instances {
    slots: HashMap<u64, Slot>,
    next_id: u64,
    /// `wait_named_pipe` callers to tell when an instance listens.
    waiters: Vec<Conn>,
    /// Orders instances by when they started listening.
    listen_clock: u64,
}

impl Instances {
    /// The next listening stamp.
    fn stamp(&mut self) -> u64 {
        self.listen_clock += 1;
        self.listen_clock
    }
}

/// Everything of one pipe name in this process.
#[derive(Debug)]
struct Pipe {
    name: String,
    opts: PipeOptions,
    state: Mutex<Instances>,
    changed: Condvar,
    /// The open and wait services, started once the pipe exists.
    services: Mutex<Vec<Service>>,
}

/// Admits clients of a pipe's open address.
struct OpenHandler(Weak<Pipe>);
/// Admits `wait_named_pipe` callers of a pipe's wait address.
struct WaitHandler(Weak<Pipe>);

impl Handler for OpenHandler {
    fn admit(&self, conn: Conn, peer: Cred) {
        if let Some(pipe) = self.0.upgrade() {
            pipe.answer_open(conn, peer);
        }
    }
}

impl Handler for WaitHandler {
    fn admit(&self, conn: Conn, _peer: Cred) {
        if let Some(pipe) = self.0.upgrade() {
            pipe.answer_query(conn);
        }
    }
}

fn registry() -> MutexGuard<'static, HashMap<String, Weak<Pipe>>> {
    static PIPES: LazyLock<Mutex<HashMap<String, Weak<Pipe>>>> = LazyLock::new(Mutex::default);
    PIPES.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ring_capacity(hint: usize) -> usize {
    hint.clamp(4096, 16 << 20).next_power_of_two()
}

/// Binds `addr` (a name this process just released is waited for there).
fn bind(addr: &[u8]) -> Result<Listener> {
    rendezvous::bind_server(addr)?.ok_or_else(|| Error::AccessDenied("the pipe name is held by another process".into()))
}

impl Pipe {
    fn find_or_bind(name: &str, open_addr: &[u8], query_addr: &[u8], opts: &PipeOptions) -> Result<Arc<Pipe>> {
        let mut reg = registry();
        if let Some(pipe) = reg.get(name).and_then(Weak::upgrade) {
            if opts.first_instance {
                return Err(Error::AccessDenied("first_instance: the pipe already exists".into()));
            }
            if pipe.opts.access != opts.access {
                return Err(Error::AccessDenied("another access mode than the existing instances".into()));
            }
            return Ok(pipe);
        }
        let open = bind(open_addr)?;
        let query = bind(query_addr)?;
        let uid = switchboard_sys::process::uid();
        let mut opts = opts.clone();
        opts.acl = opts.acl.with_owner(uid);
        let acl = opts.acl.clone();
        let pipe = Arc::new(Pipe {
            name: name.to_owned(),
            opts,
            state: Mutex::new(Instances { slots: HashMap::new(), next_id: 1, waiters: Vec::new(), listen_clock: 0 }),
            changed: Condvar::new(),
            services: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&pipe);
        let open = Service::start(Family::PIPE, Arc::new(open), acl.clone(), Arc::new(OpenHandler(weak.clone())))?;
        let query = Service::start(Family::PIPE_WAIT, Arc::new(query), acl, Arc::new(WaitHandler(weak)))?;
        lock(&pipe.services).extend([open, query]);
        reg.insert(name.to_owned(), Arc::downgrade(&pipe));
        Ok(pipe)
    }

    fn add_instance(&self, opts: &PipeOptions) -> Result<u64> {
        let mut st = lock(&self.state);
        let limit = self.opts.max_instances.min(opts.max_instances);
        if limit != UNLIMITED_INSTANCES && st.slots.len() >= limit as usize {
            return Err(Error::PipeBusy);
        }
        let id = st.next_id;
        st.next_id += 1;
        let since = st.stamp();
        st.slots.insert(id, Slot::Listening(since));
        self.listening_now(&mut st);
        Ok(id)
    }

    /// An instance started listening: release every `wait_named_pipe`.
    fn listening_now(&self, st: &mut Instances) {
        for conn in st.waiters.drain(..) {
            let _ = self.send_query_reply(&conn, 1);
        }
    }

    /// The wait family's body: instances listening (u8), the pipe's
    /// default timeout in ms (u32 LE, 0: none).
    fn send_query_reply(&self, conn: &Conn, listening: usize) -> Result<()> {
        let ms = u32::try_from(self.opts.default_timeout.as_millis()).unwrap_or(u32::MAX);
        let mut body = vec![listening.min(255) as u8];
        body.extend_from_slice(&ms.to_le_bytes());
        wire::send(conn, Family::PIPE_WAIT, Status::Granted, &body, &[])
    }

    /// A client the ACL admitted connected to the open address. The pipe
    /// family's body: pipe type (u8), access (u8); one descriptor, the
    /// instance's channel segment.
    fn answer_open(&self, conn: Conn, cred: Cred) {
        let mut st = lock(&self.state);
        let listening = |st: &Instances| {
            st.slots
                .iter()
                .filter_map(|(id, s)| if let Slot::Listening(since) = s { Some((*since, *id)) } else { None })
                .min()
                .map(|(_, id)| id)
        };
        let mut free = listening(&st);
        if free.is_none() {
            // A client granted an instance that left without acknowledging
            // the grant never opened (it refused this server, or died
            // mid-open): it does not keep the instance busy (S15 is about
            // clients that opened).
            let stamp = st.stamp();
            for slot in st.slots.values_mut() {
                if matches!(slot, Slot::Pending(end) if end.conn.hung_up() && !end.client_confirmed()) {
                    *slot = Slot::Listening(stamp);
                }
            }
            free = listening(&st);
        }
        let Some(id) = free else {
            let _ = wire::send(&conn, Family::PIPE, Status::Busy, &[], &[]);
            return;
        };
        let Ok((seg_fd, chan)) = Channel::create(ring_capacity(self.opts.buffer), 1) else { return };
        // Both doorbells are made here: the server's (rung by the client)
        // and the client's (rung by the server).
        let (Ok(server_bell), Ok(client_bell)) = (EventFd::new(), EventFd::new()) else { return };
        let limits = Limits { max_instances: self.opts.max_instances, instances: st.slots.len() as u32 };
        let flags = if self.opts.reject_remote { REJECTS_REMOTE } else { 0 };
        let body = limits.append_to(vec![self.opts.pipe_type as u8, self.opts.access as u8, flags]);
        let fds = [seg_fd.as_fd(), server_bell.as_fd(), client_bell.as_fd()];
        if wire::send(&conn, Family::PIPE, Status::Granted, &body, &fds).is_err() {
            return;
        }
        let kind = (self.opts.pipe_type, self.opts.access);
        let end = End::new(conn, chan, seg_fd, cred, kind, true, (server_bell, client_bell));
        st.slots.insert(id, Slot::Pending(Box::new(end)));
        self.changed.notify_all();
    }

    /// A `wait_named_pipe` caller the ACL admitted connected to the wait
    /// address. With no instance listening it is kept, to be told when one
    /// does — at most [`MAX_WAITERS`] of them, after dropping those that
    /// hung up; past that it is told `Busy`.
    fn answer_query(&self, conn: Conn) {
        let mut st = lock(&self.state);
        let listening = st.slots.values().filter(|s| matches!(s, Slot::Listening(_))).count();
        if listening > 0 {
            let _ = self.send_query_reply(&conn, listening);
            return;
        }
        st.waiters.retain(|w| !w.hung_up());
        if st.waiters.len() >= MAX_WAITERS {
            let _ = wire::send(&conn, Family::PIPE_WAIT, Status::Busy, &[], &[]);
        } else if self.send_query_reply(&conn, 0).is_ok() {
            st.waiters.push(conn);
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let mut reg = registry();
        if reg.get(&self.name).is_some_and(|w| w.strong_count() == 0) {
            reg.remove(&self.name);
        }
    }
}

/// One connected end (either side) of an instance.
#[derive(Debug)]
struct End {
    conn: Conn,
    chan: Channel,
    seg_fd: OwnedFd,
    peer: Cred,
    pipe_type: PipeType,
    access: PipeAccess,
    server: bool,
    /// Closes the channel the moment the other end hangs up (its last
    /// holder closed, or died); `None` when the responder could not watch,
    /// and blocked calls then look every `PEER_CHECK`.
    watch: Option<HangupWatch>,
    /// This end's doorbell (the other end's bell is in `chan`).
    bell: EventFd,
    /// Server side: the client acknowledged the grant (it opened).
    confirmed: std::sync::atomic::AtomicBool,
    /// Unique in this process: tells one connection's end from the next
    /// (the tokio adapter registers a new client's doorbell by it).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    id: usize,
}

fn channel_error(e: ChannelError, writing: bool) -> Error {
    match e {
        ChannelError::Closed if writing => Error::NoData,
        ChannelError::Closed | ChannelError::Broken => Error::BrokenPipe,
        ChannelError::Disconnected => Error::PipeNotConnected,
        ChannelError::TimedOut => Error::Timeout,
        ChannelError::Corrupt(why) => Error::Malformed(why.into()),
    }
}

impl End {
    /// `bells`: (this end's, the other end's).
    fn new(
        conn: Conn,
        mut chan: Channel,
        seg_fd: OwnedFd,
        peer: Cred,
        kind: (PipeType, PipeAccess),
        server: bool,
        bells: (EventFd, EventFd),
    ) -> End {
        let (bell, peer_bell) = bells;
        chan.set_peer_bell(peer_bell);
        // The other end's hang-up closes the channel and rings this end's
        // bell, so a reader asleep on it learns of it too.
        let watch = Channel::open(&seg_fd, 0).ok().zip(bell.try_clone().ok()).and_then(|(view, ring)| {
            let on_gone = Box::new(move || {
                view.close();
                ring.notify();
            });
            HangupWatch::start(&conn, on_gone).ok()
        });
        let (pipe_type, access) = kind;
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        End { conn, chan, seg_fd, peer, pipe_type, access, server, watch, bell, confirmed: Default::default(), id }
    }

    /// Arms this end's doorbell (see [`PipeClient::arm_doorbell`]).
    fn arm_doorbell(&self) -> bool {
        self.chan.arm_bell(true)
    }

    /// Runs `f` with this end's view of its peer: the hang-up watch closes
    /// the channel at once, so asking the socket is only a backstop.
    fn with_peer<T>(&self, f: impl FnOnce(Peer<'_>) -> T) -> T {
        let connected = || !self.conn.hung_up();
        let every = if self.watch.is_some() { PEER_BACKSTOP } else { PEER_CHECK };
        f(Peer { watch: None, alive: &connected, every })
    }

    fn may_read(&self) -> bool {
        match self.access {
            PipeAccess::Duplex => true,
            PipeAccess::Inbound => self.server,
            PipeAccess::Outbound => !self.server,
        }
    }

    fn read(&self, buf: &mut [u8], mode: ReadMode) -> Result<usize> {
        self.read_deadline(buf, mode, None)
    }

    fn read_deadline(&self, buf: &mut [u8], mode: ReadMode, deadline: Option<Instant>) -> Result<usize> {
        if !self.may_read() {
            return Err(Error::AccessDenied("this end of the pipe only writes".into()));
        }
        if self.chan.bell_armed() {
            self.chan.arm_bell(false);
            self.bell.drain();
        }
        let framing = if mode == ReadMode::Message { Framing::Message } else { Framing::Bytes };
        match self.with_peer(|peer| self.chan.read(buf, framing, deadline, peer)) {
            Ok(o) if o.more => Err(Error::MoreData { received: o.len }),
            Ok(o) => Ok(o.len),
            Err(e) => Err(channel_error(e, false)),
        }
    }

    fn write(&self, data: &[u8]) -> Result<()> {
        self.write_deadline(data, None)
    }

    fn write_deadline(&self, data: &[u8], deadline: Option<Instant>) -> Result<()> {
        if self.may_read() && self.access != PipeAccess::Duplex {
            return Err(Error::AccessDenied("this end of the pipe only reads".into()));
        }
        self.with_peer(|peer| self.chan.write(data, deadline, peer)).map_err(|e| channel_error(e, true))
    }

    fn flush(&self) -> Result<()> {
        self.with_peer(|peer| self.chan.flush(None, peer)).map_err(|e| channel_error(e, true))
    }

    /// Writes `data` if it fits at once (see `Channel::try_write`).
    fn try_write(&self, data: &[u8]) -> Result<bool> {
        if self.may_read() && self.access != PipeAccess::Duplex {
            return Err(Error::AccessDenied("this end of the pipe only reads".into()));
        }
        self.with_peer(|peer| self.chan.try_write(data, peer)).map_err(|e| channel_error(e, true))
    }

    fn peek(&self, buf: &mut [u8]) -> Result<PipePeek> {
        if !self.may_read() {
            return Err(Error::AccessDenied("this end of the pipe only writes".into()));
        }
        let framing = if self.pipe_type == PipeType::Message { Framing::Message } else { Framing::Bytes };
        self.chan.peek(buf, framing).map_err(|e| channel_error(e, false))
    }

    fn transact(&self, request: &[u8], reply: &mut [u8], mode: ReadMode) -> Result<usize> {
        if self.pipe_type != PipeType::Message || mode != ReadMode::Message {
            return Err(Error::BadPipe("transact needs a message pipe in message read mode"));
        }
        // Unread data would be taken for the reply: refuse, and send
        // nothing (classic `TransactNamedPipe`).
        if self.chan.has_data() {
            return Err(Error::PipeBusy);
        }
        self.write(request)?;
        self.read(reply, mode)
    }
}

/// What a client sends on its connection once it has checked and taken
/// the server's grant: it has opened.
const OPENED: [u8; 1] = [b'o'];

impl End {
    /// Server side: whether the client acknowledged the grant ([`OPENED`]);
    /// looked for without waiting, remembered once seen.
    fn client_confirmed(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.confirmed.load(SeqCst) {
            let mut buf = [0u8; 8];
            if let Ok(Some((n, _))) = self.conn.recv(&mut buf, Some(Instant::now())) {
                self.confirmed.store(buf[..n] == OPENED, SeqCst);
            }
        }
        self.confirmed.load(SeqCst)
    }

    /// Tells ends apart for wait-all: the instance's memory, and the side.
    fn identity(&self) -> u64 {
        crate::sync::DESCRIPTOR_IDENTITY
            | switchboard_sys::ready::identity(self.seg_fd.as_fd()) << 1
            | u64::from(self.server)
    }
}

/// A pipe end as an object to wait on: signalled while a read would not
/// wait (data, or the other end gone). The wait reads nothing. With no
/// end (a server instance with no client) it is never signalled.
struct EndWaiter<E> {
    end: Option<E>,
    /// The word and count slept on with no end (nobody changes them).
    idle: (std::sync::atomic::AtomicU32, std::sync::atomic::AtomicU32),
}

impl<E: std::ops::Deref<Target = End>> EndWaiter<E> {
    fn new(end: Option<E>) -> Self {
        EndWaiter { end, idle: Default::default() }
    }

    fn readable(&self) -> bool {
        // Without a hang-up watch, nobody closes the channel when the
        // other end goes: ask the socket (the waiter also polls).
        self.end.as_ref().is_some_and(|e| e.chan.readable() || (e.watch.is_none() && e.conn.hung_up()))
    }
}

impl<E: std::ops::Deref<Target = End>> switchboard_shm::wait::Waitable for EndWaiter<E> {
    fn try_take(&self, _: u32) -> Option<switchboard_shm::wait::Outcome> {
        self.readable().then_some(switchboard_shm::wait::Outcome::Acquired)
    }
    fn available(&self, _: u32) -> bool {
        self.readable()
    }
    fn untake(&self) {}
    fn sleep_word(&self) -> (&std::sync::atomic::AtomicU32, u32) {
        let word = self.end.as_ref().map_or(&self.idle.0, |e| e.chan.watch_signal().0);
        (word, word.load(std::sync::atomic::Ordering::SeqCst))
    }
    fn waiters(&self) -> &std::sync::atomic::AtomicU32 {
        self.end.as_ref().map_or(&self.idle.1, |e| e.chan.watch_signal().1)
    }
    fn has_owner(&self) -> bool {
        self.end.as_ref().is_some_and(|e| e.watch.is_none())
    }
}

impl Drop for End {
    fn drop(&mut self) {
        self.chan.release_holder();
    }
}

/// The settings every handle of a pipe end has: its read and write
/// timeouts and non-blocking mode (in a `Timeouts` field named `timeouts`).
macro_rules! handle_settings {
    () => {
        /// Sets how long a read waits for data (`None`: as long as it
        /// takes), after which it fails with `Timeout` (121). For this
        /// handle only.
        pub fn set_read_timeout(&self, timeout: Option<Duration>) {
            self.timeouts.set(Some(timeout), None);
        }

        /// Sets how long a write waits for room (`None`: as long as it
        /// takes), after which it fails with `Timeout` (121); a message
        /// longer than the buffer may then have gone in part, and the next
        /// write ends it.
        pub fn set_write_timeout(&self, timeout: Option<Duration>) {
            self.timeouts.set(None, Some(timeout));
        }

        /// Non-blocking mode (classic `PIPE_NOWAIT`): a read with nothing
        /// to read fails at once with `NoData` (232), and a server's
        /// [`PipeServer::connect`] with no client fails at once with
        /// `PipeListening` (536) while the instance listens. Writes still
        /// wait for room (use `try_write` not to).
        pub fn set_nowait(&self, nowait: bool) {
            self.timeouts.set_nowait(nowait);
        }
    };
}

/// One server instance of a named pipe.
#[derive(Debug)]
pub struct PipeServer {
    pipe: Arc<Pipe>,
    id: u64,
    read_mode: Mutex<ReadMode>,
    active: Mutex<Option<Arc<End>>>,
    timeouts: Timeouts,
}

/// A handle's read and write timeouts (`None`: wait as long as it takes),
/// and whether it is in non-blocking mode (`PIPE_NOWAIT`).
#[derive(Debug, Default)]
struct Timeouts {
    read_write: Mutex<(Option<Duration>, Option<Duration>)>,
    nowait: std::sync::atomic::AtomicBool,
}

impl Timeouts {
    fn nowait(&self) -> bool {
        self.nowait.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_nowait(&self, nowait: bool) {
        self.nowait.store(nowait, std::sync::atomic::Ordering::Relaxed);
    }

    /// A read of `end`: at once in non-blocking mode (`NoData` when empty,
    /// as the classic `PIPE_NOWAIT` read), otherwise within the timeout.
    fn read_on(&self, end: &End, buf: &mut [u8], mode: ReadMode) -> Result<usize> {
        if !self.nowait() {
            return end.read_deadline(buf, mode, self.read());
        }
        match end.read_deadline(buf, mode, Some(Instant::now())) {
            Err(Error::Timeout) => Err(Error::NoData),
            other => other,
        }
    }

    fn read(&self) -> Option<Instant> {
        lock(&self.read_write).0.map(|t| Instant::now() + t)
    }
    fn write(&self) -> Option<Instant> {
        lock(&self.read_write).1.map(|t| Instant::now() + t)
    }
    fn set(&self, read: Option<Option<Duration>>, write: Option<Option<Duration>>) {
        let mut t = lock(&self.read_write);
        if let Some(r) = read {
            t.0 = r;
        }
        if let Some(w) = write {
            t.1 = w;
        }
    }
}

impl PipeServer {
    /// Creates an instance with default options (duplex byte pipe).
    ///
    /// # Errors
    /// As [`PipeOptions::create`].
    pub fn create(name: &str) -> Result<PipeServer> {
        PipeOptions::new().create(name)
    }

    /// Waits until a client connects (S12). A client already connected is
    /// a success with `already_connected` (classic `ERROR_PIPE_CONNECTED`).
    ///
    /// # Errors
    /// None today; the signature leaves room for the network gateway.
    pub fn connect(&self) -> Result<Connected> {
        if self.timeouts.nowait() {
            return self.connect_timeout(Duration::ZERO).map_err(|e| match e {
                Error::Timeout => Error::PipeListening,
                other => other,
            });
        }
        self.connect_timeout(None)
    }

    /// Whether a client is connected: the active one, or one that
    /// connected before [`PipeServer::connect`] (which this adopts, as the
    /// instance's I/O does).
    pub fn is_connected(&self) -> bool {
        self.end().is_ok()
    }

    /// [`PipeServer::connect`], giving up after `timeout` with `Timeout` (121).
    ///
    /// # Errors
    /// `Timeout`.
    pub fn connect_timeout(&self, timeout: impl Into<crate::time::Deadline>) -> Result<Connected> {
        if lock(&self.active).is_some() {
            return Ok(Connected { already_connected: true });
        }
        let deadline = timeout.into().instant();
        let mut st = lock(&self.pipe.state);
        let mut first = true;
        loop {
            if self.adopt_pending(&mut st).is_some() {
                return Ok(Connected { already_connected: first });
            }
            if !matches!(st.slots.get(&self.id), Some(Slot::Listening(_))) {
                let since = st.stamp();
                st.slots.insert(self.id, Slot::Listening(since));
                self.pipe.listening_now(&mut st);
            }
            first = false;
            st = crate::time::wait_until(&self.pipe.changed, st, deadline)?;
        }
    }

    /// Drops the client's end and discards unread data (S16). Until the
    /// next [`PipeServer::connect`] the instance does not listen and its
    /// I/O fails with `PipeNotConnected`.
    ///
    /// # Errors
    /// `PipeNotConnected` when no client is connected.
    pub fn disconnect(&self) -> Result<()> {
        let mut st = lock(&self.pipe.state);
        let active = lock(&self.active).take();
        let pending = st.slots.insert(self.id, Slot::Idle);
        match (active, pending) {
            (Some(end), _) => end.chan.disconnect(),
            (None, Some(Slot::Pending(end))) => end.chan.disconnect(),
            (None, previous) => {
                st.slots.insert(self.id, previous.unwrap_or(Slot::Idle));
                return Err(Error::PipeNotConnected);
            }
        }
        Ok(())
    }

    /// The connected end (a client that connected before `connect` counts).
    /// With none: `PipeListening` while the instance listens (it has had
    /// no client since), `PipeNotConnected` after a disconnect.
    fn end(&self) -> Result<Arc<End>> {
        if let Some(end) = lock(&self.active).clone() {
            return Ok(end);
        }
        let mut st = lock(&self.pipe.state);
        self.adopt_pending(&mut st).ok_or_else(|| match st.slots.get(&self.id) {
            Some(Slot::Listening(_)) => Error::PipeListening,
            _ => Error::PipeNotConnected,
        })
    }

    /// Makes a client that connected to this instance (`Pending`) its
    /// active end, the instance `Busy`; `None` when no client is pending.
    fn adopt_pending(&self, st: &mut Instances) -> Option<Arc<End>> {
        match st.slots.remove(&self.id) {
            Some(Slot::Pending(end)) => {
                st.slots.insert(self.id, Slot::Busy);
                let end: Arc<End> = Arc::from(end);
                *lock(&self.active) = Some(end.clone());
                Some(end)
            }
            other => {
                st.slots.insert(self.id, other.unwrap_or(Slot::Idle));
                None
            }
        }
    }

    /// Reads (see [`PipeClient::read`]).
    ///
    /// # Errors
    /// `MoreData`, `BrokenPipe`, `PipeNotConnected`, `AccessDenied`.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.timeouts.read_on(&*self.end()?, buf, *lock(&self.read_mode))
    }

    /// Writes one message (message type) or bytes, waiting for room (S25).
    ///
    /// # Errors
    /// `NoData` when the client is gone, `PipeNotConnected`, `AccessDenied`.
    pub fn write(&self, data: &[u8]) -> Result<()> {
        self.end()?.write_deadline(data, self.timeouts.write())
    }

    handle_settings!();

    /// Waits until the client has read everything written to it (classic
    /// `FlushFileBuffers`): write, flush, then [`PipeServer::disconnect`]
    /// loses no reply.
    ///
    /// # Errors
    /// `BrokenPipe` when the client left with some of it unread,
    /// `PipeNotConnected`, `PipeListening`.
    pub fn flush(&self) -> Result<()> {
        self.end()?.flush()
    }

    /// Looks without consuming (S21).
    ///
    /// # Errors
    /// `BadPipe` with no client (as the classic peek on a disconnected
    /// server end), `BrokenPipe` once the client left and its data is read,
    /// `AccessDenied`.
    pub fn peek(&self, buf: &mut [u8]) -> Result<PipePeek> {
        let end = self.end().map_err(|e| match e {
            Error::PipeNotConnected | Error::PipeListening => Error::BadPipe("no client is connected"),
            other => other,
        })?;
        end.peek(buf)
    }

    /// Writes `request` and reads one reply message (S22).
    ///
    /// # Errors
    /// `InvalidParameter` unless message type and read mode; `MoreData` for a short buffer.
    pub fn transact(&self, request: &[u8], reply: &mut [u8]) -> Result<usize> {
        self.end()?.transact(request, reply, *lock(&self.read_mode))
    }

    /// Sets the read mode (S20).
    ///
    /// # Errors
    /// `InvalidParameter` for message read mode on a byte-type pipe.
    pub fn set_read_mode(&self, mode: ReadMode) -> Result<()> {
        check_read_mode(self.pipe.opts.pipe_type, mode)?;
        *lock(&self.read_mode) = mode;
        Ok(())
    }

    /// Writes if it fits at once (see [`PipeClient::try_write`]).
    ///
    /// # Errors
    /// As [`PipeServer::write`].
    pub fn try_write(&self, data: &[u8]) -> Result<bool> {
        self.end()?.try_write(data)
    }

    /// Reads, waiting until `deadline` (`Timeout` then).
    pub(crate) fn read_deadline(&self, buf: &mut [u8], deadline: Instant) -> Result<usize> {
        self.end()?.read_deadline(buf, *lock(&self.read_mode), Some(deadline))
    }

    /// Reads what is there without waiting (see [`PipeClient::try_read`]).
    ///
    /// # Errors
    /// As [`PipeServer::read`]; `Timeout` when empty.
    pub fn try_read(&self, buf: &mut [u8]) -> Result<usize> {
        self.end()?.read_deadline(buf, *lock(&self.read_mode), Some(Instant::now()))
    }

    /// The connected client's doorbell side, as [`PipeClient::doorbell`]
    /// (a descriptor of its own, valid for this connection).
    ///
    /// # Errors
    /// `PipeNotConnected`; `EMFILE`.
    pub fn doorbell(&self) -> Result<OwnedFd> {
        Ok(self.end()?.bell.as_fd().try_clone_to_owned()?)
    }

    /// Which client is connected now, as a key that changes with it
    /// (`None`: none).
    #[cfg(feature = "tokio")]
    pub(crate) fn connection_key(&self) -> Option<usize> {
        self.end().ok().map(|end| end.id)
    }

    /// Arms the doorbell (see [`PipeClient::arm_doorbell`]).
    ///
    /// # Errors
    /// `PipeNotConnected`.
    pub fn arm_doorbell(&self) -> Result<bool> {
        Ok(self.end()?.arm_doorbell())
    }

    /// The client's process id (S24).
    ///
    /// # Errors
    /// `ElementNotFound` (1168) with no client connected, as the classic
    /// `GetNamedPipeClientProcessId` after a disconnect.
    pub fn client_process_id(&self) -> Result<u32> {
        match self.end() {
            Ok(end) => Ok(end.peer.pid),
            Err(Error::PipeNotConnected | Error::PipeListening) => {
                Err(Error::ElementNotFound("no client is connected"))
            }
            Err(e) => Err(e),
        }
    }

    /// The client's user id (S24).
    ///
    /// # Errors
    /// `PipeNotConnected`.
    pub fn client_uid(&self) -> Result<u32> {
        Ok(self.end()?.peer.uid)
    }

    /// The pipe's folded name.
    pub fn name(&self) -> &str {
        &self.pipe.name
    }

    /// What the classic `GetNamedPipeInfo` and `GetNamedPipeHandleState`
    /// tell a server: type, read mode, buffer size, instances.
    pub fn info(&self) -> PipeInfo {
        let instances = lock(&self.pipe.state).slots.len();
        PipeInfo {
            pipe_type: self.pipe.opts.pipe_type,
            read_mode: *lock(&self.read_mode),
            buffer: ring_capacity(self.pipe.opts.buffer),
            max_instances: self.pipe.opts.max_instances,
            instances,
        }
    }
}

/// An end's view of its pipe ([`PipeServer::info`], [`PipeClient::info`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipeInfo {
    /// Byte or message pipe.
    pub pipe_type: PipeType,
    /// This end's read mode.
    pub read_mode: ReadMode,
    /// Bytes each direction buffers (the size asked for, rounded up to a
    /// power of two between 4 KiB and 16 MiB).
    pub buffer: usize,
    /// Most instances ([`UNLIMITED_INSTANCES`]: no limit).
    pub max_instances: u32,
    /// Instances that exist now.
    pub instances: usize,
}

impl Drop for PipeServer {
    /// The last instance of a name unbinds it here and now, so the name is
    /// free the moment this returns (Wine's pipe.c: a server closes its last
    /// instance and creates the name again at once). It must not wait for
    /// the pipe's last reference: the responder thread holds one for a
    /// moment while it admits a client, and a name released on that thread
    /// was still bound when this drop returned (found by a loaded test run).
    fn drop(&mut self) {
        let mut reg = registry();
        let last = {
            let mut st = lock(&self.pipe.state);
            st.slots.remove(&self.id);
            st.slots.is_empty()
        };
        if !last {
            return;
        }
        // A create from now on makes a new pipe of this name.
        if reg.get(&self.pipe.name).is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.pipe))) {
            reg.remove(&self.pipe.name);
        }
        let services = std::mem::take(&mut *lock(&self.pipe.services));
        drop(reg);
        // Unbinds both addresses and waits until the responder let go of them.
        drop(services);
    }
}

fn check_read_mode(pipe_type: PipeType, mode: ReadMode) -> Result<()> {
    if pipe_type == PipeType::Byte && mode == ReadMode::Message {
        return Err(Error::InvalidParameter("message read mode needs a message-type pipe"));
    }
    Ok(())
}

impl crate::sync::sealed::Sealed for PipeServer {
    fn waiter(&self) -> crate::sync::sealed::Waiter<'_> {
        crate::sync::sealed::Waiter::Made(Box::new(EndWaiter::new(self.end().ok())))
    }
    fn identity(&self) -> u64 {
        self.end().map_or(crate::sync::DESCRIPTOR_IDENTITY | (self as *const PipeServer as u64), |e| e.identity())
    }
}

/// Signalled while a read would not wait: data, or the client gone. With
/// no client connected, never (as a classic pipe handle with no I/O
/// pending). The wait reads nothing.
impl crate::sync::Waitable for PipeServer {}

impl crate::sync::sealed::Sealed for PipeClient {
    fn waiter(&self) -> crate::sync::sealed::Waiter<'_> {
        crate::sync::sealed::Waiter::Made(Box::new(EndWaiter::new(Some(&self.end))))
    }
    fn identity(&self) -> u64 {
        self.end.identity()
    }
}

/// Signalled while a read would not wait: data, or the server gone or
/// disconnected. The wait reads nothing.
impl crate::sync::Waitable for PipeClient {}

/// A client end of a named pipe.
#[derive(Debug)]
pub struct PipeClient {
    end: End,
    read_mode: Mutex<ReadMode>,
    timeouts: Timeouts,
    limits: Limits,
}

/// What the server tells a client of its pipe's instances when it opens
/// (the tail of the open reply and of a handed-over end: two `u32` LE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Limits {
    max_instances: u32,
    /// Instances when the client opened.
    instances: u32,
}

impl Limits {
    fn append_to(self, mut body: Vec<u8>) -> Vec<u8> {
        body.extend_from_slice(&self.max_instances.to_le_bytes());
        body.extend_from_slice(&self.instances.to_le_bytes());
        body
    }

    /// (the head, the limits) of a body ending in [`Limits`]; `None` when
    /// it is too short. The values are the peer's word, used only to report.
    fn split(body: &[u8]) -> Option<(&[u8], Limits)> {
        let (head, tail) = body.split_at_checked(body.len().checked_sub(8)?)?;
        let word = |i: usize| u32::from_le_bytes(tail[i..i + 4].try_into().expect("4 bytes"));
        Some((head, Limits { max_instances: word(0), instances: word(4) }))
    }
}

fn decode_kind(pipe_type: u8, access: u8) -> Result<(PipeType, PipeAccess)> {
    let t = match pipe_type {
        0 => PipeType::Byte,
        1 => PipeType::Message,
        _ => return Err(Error::Malformed("unknown pipe type".into())),
    };
    Ok((t, PipeAccess::try_from(access)?))
}

/// The access of its classic value (`PIPE_ACCESS_*`: 1, 2, 3), as a peer
/// sent it.
impl TryFrom<u8> for PipeAccess {
    type Error = Error;

    fn try_from(access: u8) -> Result<PipeAccess> {
        match access {
            1 => Ok(PipeAccess::Inbound),
            2 => Ok(PipeAccess::Outbound),
            3 => Ok(PipeAccess::Duplex),
            _ => Err(Error::Malformed(format!("unknown pipe access {access}"))),
        }
    }
}

impl PipeClient {
    /// Opens pipe `name` (`NAME` or `\\.\pipe\NAME`) (S13), or
    /// `\\HOST\pipe\NAME` through this user's gateway (S26, see
    /// [`crate::remote`]). The client end starts in byte read mode (S20).
    ///
    /// # Errors
    /// `NotFound` when no instance exists, `PipeBusy` when every instance is
    /// busy, `AccessDenied` by the pipe's ACL, `Timeout` when the server
    /// process does not answer.
    pub fn open(name: &str) -> Result<PipeClient> {
        PipeClient::open_as(name, Trust::UserOrRoot, false)
    }

    /// Opens pipe `name` served by a process of user `owner_uid`. A plain
    /// [`PipeClient::open`] believes only servers of the caller's user or
    /// root, so that another user who created the name first cannot
    /// receive what the caller writes.
    ///
    /// # Errors
    /// As [`PipeClient::open`].
    pub fn open_trusting(name: &str, owner_uid: u32) -> Result<PipeClient> {
        PipeClient::open_as(name, Trust::Owner(owner_uid), false)
    }

    /// Opens local pipe `name` for a client on another host: what a
    /// gateway calls before it relays (spec 13-S02). A pipe created with
    /// [`PipeOptions::reject_remote`] refuses with `AccessDenied`, and the
    /// instance stays free for a local client (S26).
    ///
    /// # Errors
    /// As [`PipeClient::open`].
    pub fn open_for_remote(name: &str) -> Result<PipeClient> {
        PipeClient::open_as(name, Trust::UserOrRoot, true)
    }

    fn open_as(name: &str, trust: Trust, remote: bool) -> Result<PipeClient> {
        if let Ok(crate::name::Name::RemotePipe { host, name }) = crate::name::Name::parse(name) {
            // Through this user's gateway, which relays a private local
            // instance to the host (see `crate::remote`).
            let request = crate::remote::Request::OpenPipe { host, name };
            let local = crate::remote::open(&request)?.ok_or_else(crate::remote::no_gateway)?;
            return PipeClient::open_as(&local, Trust::User, false);
        }
        let (folded, open_addr, _) = pipe_addresses(name)?;
        let deadline = rendezvous::answer_deadline(None);
        let Answer { conn, owner, body, fds } =
            rendezvous::connect(Family::PIPE, &open_addr, deadline, trust).map_err(|f| f.into_error(&folded))?;
        let (Some((&[pipe_type, access, flags], limits)), Ok([seg_fd, server_bell, client_bell])) =
            (Limits::split(&body), <[OwnedFd; 3]>::try_from(fds))
        else {
            return Err(bad_reply());
        };
        if remote && flags & REJECTS_REMOTE != 0 {
            // Not acknowledged: the instance stays free.
            return Err(Error::AccessDenied(format!("pipe {folded} refuses remote clients")));
        }
        let (pipe_type, access) = decode_kind(pipe_type, access)?;
        let chan = Channel::open(&seg_fd, 0).map_err(|e| Error::Malformed(e.to_string()))?;
        let bells = (adopt_bell(client_bell)?, adopt_bell(server_bell)?);
        let end = End::new(conn, chan, seg_fd, owner, (pipe_type, access), false, bells);
        // Opened: the server may now hold the instance for this client
        // even after it leaves (S15). A server already gone reads nothing.
        let _ = end.conn.send(&OPENED, &[]);
        Ok(PipeClient { end, read_mode: Mutex::new(ReadMode::Byte), timeouts: Timeouts::default(), limits })
    }

    /// Opens pipe `name`, waiting up to `timeout` for a free instance
    /// ([`wait_named_pipe`], then [`PipeClient::open`], again while another
    /// client takes the instance first).
    ///
    /// # Errors
    /// `NotFound` at once without a pipe; `Timeout` (121) when no instance
    /// became free in time; as [`PipeClient::open`].
    pub fn open_wait(name: &str, timeout: Duration) -> Result<PipeClient> {
        let deadline = Instant::now() + timeout;
        let remote = matches!(crate::name::Name::parse(name), Ok(crate::name::Name::RemotePipe { .. }));
        loop {
            if remote {
                // Another host's instances are asked by opening, again
                // every 50 ms while they are busy.
                match PipeClient::open(name) {
                    Err(Error::PipeBusy) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    other => return other,
                }
            }
            wait_named_pipe(name, Some(deadline.saturating_duration_since(Instant::now())))?;
            match PipeClient::open(name) {
                Err(Error::PipeBusy) if Instant::now() < deadline => {}
                other => return other,
            }
        }
    }

    /// Reads. Message read mode: at most one message; a buffer shorter than
    /// the message gets its first part and `MoreData` (234), and the next
    /// read by any holder of this end continues it (S18). Byte read mode:
    /// what is there, across messages (S19).
    ///
    /// # Errors
    /// `MoreData`, `BrokenPipe` once the server is gone and all is read,
    /// `PipeNotConnected` after the server disconnected, `AccessDenied`.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.timeouts.read_on(&self.end, buf, *lock(&self.read_mode))
    }

    /// Writes one message (message type) or bytes, waiting for room (S25).
    ///
    /// # Errors
    /// `NoData` when the server end is gone, `PipeNotConnected`, `AccessDenied`.
    pub fn write(&self, data: &[u8]) -> Result<()> {
        self.end.write_deadline(data, self.timeouts.write())
    }

    handle_settings!();

    /// Looks without consuming (S21).
    ///
    /// # Errors
    /// `BrokenPipe` once the server left and its data is read,
    /// `PipeNotConnected` after a disconnect, `AccessDenied` on a
    /// write-only end.
    pub fn peek(&self, buf: &mut [u8]) -> Result<PipePeek> {
        self.end.peek(buf)
    }

    /// Waits until the server has read everything written to it (classic
    /// `FlushFileBuffers`).
    ///
    /// # Errors
    /// `BrokenPipe` when the server left with some of it unread,
    /// `PipeNotConnected` after a disconnect.
    pub fn flush(&self) -> Result<()> {
        self.end.flush()
    }

    /// Writes `request` and reads one reply message (S22).
    ///
    /// # Errors
    /// `InvalidParameter` unless message type and read mode; `MoreData`.
    pub fn transact(&self, request: &[u8], reply: &mut [u8]) -> Result<usize> {
        self.end.transact(request, reply, *lock(&self.read_mode))
    }

    /// Sets the read mode (S20).
    ///
    /// # Errors
    /// `InvalidParameter` for message read mode on a byte-type pipe.
    pub fn set_read_mode(&self, mode: ReadMode) -> Result<()> {
        check_read_mode(self.end.pipe_type, mode)?;
        *lock(&self.read_mode) = mode;
        Ok(())
    }

    /// Writes `data` only if it can go in whole at once, without waiting:
    /// `Ok(false)` (nothing written) when it would have to wait for room.
    ///
    /// # Errors
    /// As [`PipeClient::write`].
    pub fn try_write(&self, data: &[u8]) -> Result<bool> {
        self.end.try_write(data)
    }

    /// Reads, waiting until `deadline` (`Timeout` then).
    pub(crate) fn read_deadline(&self, buf: &mut [u8], deadline: Instant) -> Result<usize> {
        self.end.read_deadline(buf, *lock(&self.read_mode), Some(deadline))
    }

    /// Reads what is there without waiting: `Timeout` (121) when nothing
    /// is; otherwise as [`PipeClient::read`].
    ///
    /// # Errors
    /// As [`PipeClient::read`]; `Timeout` when empty.
    pub fn try_read(&self, buf: &mut [u8]) -> Result<usize> {
        self.end.read_deadline(buf, *lock(&self.read_mode), Some(Instant::now()))
    }

    /// A descriptor for `poll`/`epoll`/tokio that becomes readable when the
    /// server writes while the doorbell is armed ([`PipeClient::arm_doorbell`]),
    /// or when the server's end goes; the next read disarms it. One loop can
    /// so wait on this pipe beside links, mailslots and sockets. (Holders
    /// that share this end share its doorbell too: one of them should wait
    /// on it at a time.)
    pub fn doorbell(&self) -> BorrowedFd<'_> {
        self.end.bell.as_fd()
    }

    /// Arms the doorbell before a sleep on it; `true` when there is no need
    /// to sleep (data, or the pipe's end, is already there).
    pub fn arm_doorbell(&self) -> bool {
        self.end.arm_doorbell()
    }

    /// The server's process id (S24).
    pub fn server_process_id(&self) -> u32 {
        self.end.peer.pid
    }

    /// The pipe's type.
    pub fn pipe_type(&self) -> PipeType {
        self.end.pipe_type
    }

    /// Which way the pipe's data flows, seen from the server.
    pub fn access(&self) -> PipeAccess {
        self.end.access
    }

    /// What the classic `GetNamedPipeInfo` and `GetNamedPipeHandleState`
    /// tell a client: type, this end's read mode, the buffer each direction
    /// holds, and the pipe's instances as the server said when this client
    /// opened (the server keeps the live count; classic asks it each time).
    pub fn info(&self) -> PipeInfo {
        PipeInfo {
            pipe_type: self.end.pipe_type,
            read_mode: *lock(&self.read_mode),
            buffer: self.end.chan.capacity(),
            max_instances: self.limits.max_instances,
            instances: self.limits.instances as usize,
        }
    }

    /// Hands this end to another process over `via`; both then hold it.
    ///
    /// # Errors
    /// The system error when `via`'s peer is gone.
    pub fn send(&self, via: &Conn) -> Result<()> {
        let peer_bell =
            self.end.chan.peer_bell().ok_or_else(|| Error::Malformed("a pipe end without its bells".into()))?;
        self.end.chan.add_holder();
        let body =
            self.limits.append_to(vec![self.end.pipe_type as u8, self.end.access as u8, *lock(&self.read_mode) as u8]);
        let fds = [self.end.conn.as_fd(), self.end.seg_fd.as_fd(), self.end.bell.as_fd(), peer_bell.as_fd()];
        wire::send(via, Family::PIPE, Status::Granted, &body, &fds).inspect_err(|_| {
            self.end.chan.release_holder();
        })
    }

    /// Receives an end sent with [`PipeClient::send`].
    ///
    /// # Errors
    /// `Timeout`, `Malformed`.
    pub fn receive(via: &Conn, timeout: impl Into<crate::time::Deadline>) -> Result<PipeClient> {
        let deadline = timeout.into().instant();
        let (body, fds) = rendezvous::receive(Family::PIPE, via, deadline).map_err(|f| match f {
            Failure::Refused(e) => e,
            _ => Error::BrokenPipe,
        })?;
        let (Some((&[pipe_type, access, read_mode], limits)), Ok([conn, seg_fd, bell, peer_bell])) =
            (Limits::split(&body), <[OwnedFd; 4]>::try_from(fds))
        else {
            return Err(Error::Malformed("not a pipe end".into()));
        };
        let (pipe_type, access) = decode_kind(pipe_type, access)?;
        let read_mode = if read_mode == ReadMode::Message as u8 { ReadMode::Message } else { ReadMode::Byte };
        let conn = Conn::from_fd(conn);
        let chan = Channel::open(&seg_fd, 0).map_err(|e| Error::Malformed(e.to_string()))?;
        let peer = conn.peer_cred()?;
        let bells = (adopt_bell(bell)?, adopt_bell(peer_bell)?);
        let end = End::new(conn, chan, seg_fd, peer, (pipe_type, access), false, bells);
        Ok(PipeClient { end, read_mode: Mutex::new(read_mode), timeouts: Timeouts::default(), limits })
    }
}

/// Waits until an instance of pipe `name` listens (S14). `None` waits the
/// server's default timeout (50 ms when it set none); success does not
/// reserve the instance.
///
/// # Errors
/// `NotFound` at once when the pipe does not exist; `Timeout` (classic
/// `ERROR_SEM_TIMEOUT`, 121) when no instance listened in time.
pub fn wait_named_pipe(name: &str, timeout: Option<Duration>) -> Result<()> {
    let (folded, _, query_addr) = pipe_addresses(name)?;
    let deadline = rendezvous::answer_deadline(None);
    let answer = rendezvous::connect(Family::PIPE_WAIT, &query_addr, deadline, Trust::UserOrRoot)
        .map_err(|f| f.into_error(&folded))?;
    let &[listening, a, b, c, d] = &answer.body[..] else { return Err(bad_reply()) };
    if listening > 0 {
        return Ok(());
    }
    let default = match u32::from_le_bytes([a, b, c, d]) {
        0 => Duration::from_millis(50),
        ms => Duration::from_millis(u64::from(ms)),
    };
    let deadline = Instant::now().checked_add(timeout.unwrap_or(default));
    match rendezvous::receive(Family::PIPE_WAIT, &answer.conn, deadline) {
        Ok(_) => Ok(()),
        Err(Failure::Refused(e)) => Err(e),
        Err(_) => Err(Error::BrokenPipe),
    }
}

/// A doorbell a peer sent: only an eventfd will do.
fn adopt_bell(fd: OwnedFd) -> Result<EventFd> {
    EventFd::adopt(fd).map_err(|_| Error::Malformed("a pipe doorbell that is not an eventfd".into()))
}

fn bad_reply() -> Error {
    Error::Malformed("a pipe reply that does not decode".into())
}

/// Opens pipe `name` (waiting up to `timeout` for an instance), sets message
/// read mode, transacts once and closes (S22, classic `CallNamedPipe`).
///
/// # Errors
/// As [`wait_named_pipe`], [`PipeClient::open`] and [`PipeClient::transact`].
pub fn call_named_pipe(name: &str, request: &[u8], reply: &mut [u8], timeout: Duration) -> Result<usize> {
    let client = PipeClient::open_wait(name, timeout)?;
    client.set_read_mode(ReadMode::Message)?;
    client.transact(request, reply)
}

/// A read's result as `std::io::Read` reports it: end of stream is
/// `Ok(0)`, a message cut short by the buffer is the bytes received.
pub(crate) fn io_read(r: Result<usize>) -> io::Result<usize> {
    match r {
        Err(Error::BrokenPipe) => Ok(0),
        Err(Error::MoreData { received }) => Ok(received),
        other => other.map_err(Into::into),
    }
}

macro_rules! io_impls {
    ($t:ty) => {
        impl io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                io_read(<$t>::read(self, buf))
            }
        }
        impl io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                <$t>::write(self, buf)?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
    };
}
io_impls!(PipeClient);
io_impls!(PipeServer);

/// Which end a [`PipeLink`] speaks from.
#[derive(Debug)]
enum LinkEnd {
    Client(PipeClient),
    Server(PipeServer),
}

/// A message-mode named pipe as a [`Link`](crate::link::Link): each
/// message is one pipe message, receives take deadlines, and the link
/// contract holds (`tests/links.rs` runs its conformance suite over it).
/// Make one with [`PipeClient::into_link`] or [`PipeServer::into_link`].
///
/// A pipe has no message limit of its own; the link's is
/// [`crate::link::DEFAULT_MAX_MESSAGE`] unless set. A received message
/// over it is read to its end, dropped, and reported `Malformed`.
#[derive(Debug)]
pub struct PipeLink {
    end: LinkEnd,
    max: usize,
    /// The part of a message read before a receive timed out.
    partial: Vec<u8>,
}

fn message_link(pipe_type: PipeType, end: LinkEnd) -> Result<PipeLink> {
    if pipe_type != PipeType::Message {
        return Err(Error::InvalidParameter("a pipe link needs a message-type pipe"));
    }
    Ok(PipeLink { end, max: crate::link::DEFAULT_MAX_MESSAGE, partial: Vec::new() })
}

impl PipeClient {
    /// This end as a [`PipeLink`] (message read mode is set).
    ///
    /// # Errors
    /// `InvalidParameter` for a byte-type pipe.
    pub fn into_link(self) -> Result<PipeLink> {
        self.set_read_mode(ReadMode::Message)?;
        message_link(self.end.pipe_type, LinkEnd::Client(self))
    }
}

impl PipeServer {
    /// This instance as a [`PipeLink`] (message read mode is set), once a
    /// client is connected.
    ///
    /// # Errors
    /// `InvalidParameter` for a byte-type pipe.
    pub fn into_link(self) -> Result<PipeLink> {
        self.set_read_mode(ReadMode::Message)?;
        message_link(self.pipe.opts.pipe_type, LinkEnd::Server(self))
    }
}

impl PipeLink {
    /// Sets the largest message sent and accepted.
    #[must_use]
    pub fn with_max_message(mut self, max: usize) -> PipeLink {
        self.max = max;
        self
    }
}

impl LinkEnd {
    fn with<T>(&self, f: impl FnOnce(&End) -> Result<T>) -> Result<T> {
        match self {
            LinkEnd::Server(s) => f(&*s.end()?),
            LinkEnd::Client(c) => f(&c.end),
        }
    }
}

/// Reads the rest of `end`'s current message into `partial`, keeping at
/// most `max + 1` bytes (the rest of an oversized message is dropped).
fn read_message(end: &End, partial: &mut Vec<u8>, max: usize, deadline: Option<Instant>) -> Result<()> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let (n, more) = match end.read_deadline(&mut chunk, ReadMode::Message, deadline) {
            Ok(n) => (n, false),
            Err(Error::MoreData { received }) => (received, true),
            Err(e) => return Err(e),
        };
        let room = (max + 1).saturating_sub(partial.len());
        partial.extend_from_slice(&chunk[..n.min(room)]);
        if !more {
            return Ok(());
        }
    }
}

/// The link contract's one word for "the other side is gone".
fn gone(e: Error) -> Error {
    match e {
        Error::NoData | Error::PipeNotConnected => Error::BrokenPipe,
        other => other,
    }
}

impl crate::link::Link for PipeLink {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::InvalidParameter("message larger than the link's maximum"));
        }
        self.end.with(|end| end.write(msg)).map_err(gone)
    }

    fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: crate::time::Deadline) -> Result<()> {
        let deadline = deadline.instant();
        let max = self.max;
        self.end.with(|end| read_message(end, &mut self.partial, max, deadline)).map_err(gone)?;
        let whole = std::mem::take(&mut self.partial);
        if whole.len() > self.max {
            return Err(Error::Malformed("the peer sent a message over the maximum".into()));
        }
        *buf = whole;
        Ok(())
    }

    fn max_message(&self) -> usize {
        self.max
    }
}
