//! Sockets (spec 10): TCP, UDP and Unix stream / seqpacket / datagram
//! sockets with safe defaults, shared between processes, plus frames.
//!
//! The sockets are std's own types (`TcpListener`, `TcpStream`,
//! `UdpSocket`, `UnixListener`, `UnixStream`, `UnixDatagram`) and two for
//! what std lacks ([`SeqpacketListener`], [`SeqpacketConn`]); what this
//! module adds is how they are made ([`SocketOptions`]) and moved:
//!
//! - every descriptor is close-on-exec (S01);
//! - a bound address is exclusive: no `SO_REUSEPORT` unless asked for with
//!   [`SocketOptions::reuse_port`], and then shared only with sockets that
//!   asked too — nobody can hijack a port (S02). TCP listeners set
//!   `SO_REUSEADDR`, which on Linux only lets a restarted server bind past
//!   old connections in `TIME_WAIT`, never a second listener;
//! - a socket can be duplicated into another process, over a connection
//!   ([`send_socket`] / [`receive_socket`]) or by pid + handle
//!   ([`take_socket`]); both then use it, and the kernel destroys it at the
//!   last close (S03). The receiver names the type it expects and gets
//!   `InvalidHandle` for anything else;
//! - Unix sockets report the peer's pid, uid and gid ([`peer_credentials`]),
//!   take path or abstract addresses ([`UnixAddr`]), and binding a path
//!   whose socket file a dead process left behind replaces it (S04);
//! - [`Framed`] sends length-prefixed frames over any stream with a maximum
//!   size; an oversized frame is an error, not an allocation (S05);
//! - connect, read and write have timeouts, and writes have one by default
//!   ([`DEFAULT_WRITE_TIMEOUT`]): a peer that stops reading never hangs the
//!   writer forever (S06).
//!
//! ```
//! use switchboard::socket::{SocketOptions, UnixAddr};
//! use std::io::{Read, Write};
//!
//! let addr = UnixAddr::Abstract(format!("doc-socket-{}", std::process::id()).into_bytes());
//! let opts = SocketOptions::new();
//! let listener = opts.unix_listen(&addr)?;
//! let mut client = opts.unix_connect(&addr)?;
//! let (mut server, _) = listener.accept()?;
//! client.write_all(b"ping")?;
//! let mut buf = [0u8; 4];
//! server.read_exact(&mut buf)?;
//! assert_eq!(switchboard::socket::peer_credentials(&server)?.pid, std::process::id());
//! # Ok::<(), switchboard::Error>(())
//! ```

mod framed;

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use switchboard_sys::net::{self as sysnet, SocketShape, UnixKind};
use switchboard_sys::process::HandleValue;
use switchboard_sys::socket::Conn;
use switchboard_sys::Errno;

pub use framed::{FrameStream, Framed};
pub use switchboard_sys::net::UnixAddr;
pub use switchboard_sys::socket::Cred;

use crate::error::{Error, Result};
use crate::rendezvous::{self, wire, Backlog, Failure, Family, Service, Status};

/// Default write timeout of every socket made here.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How sockets are made. Timeouts of `None` block forever.
#[derive(Clone, Debug)]
pub struct SocketOptions {
    reuse_port: bool,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            reuse_port: false,
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            read_timeout: None,
            write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
        }
    }
}

/// The typed error for a socket call's errno: nobody listening is
/// `NotFound`, a timeout `Timeout`, a gone peer `BrokenPipe`.
fn sock_error(e: Errno) -> Error {
    match e {
        Errno::CONNREFUSED | Errno::NOENT => Error::NotFound("nobody listens at that address".into()),
        Errno::AGAIN | Errno::TIMEDOUT => Error::Timeout,
        Errno::PIPE | Errno::CONNRESET => Error::BrokenPipe,
        other => Error::sys(other),
    }
}

fn one_addr(addr: impl ToSocketAddrs) -> Result<SocketAddr> {
    addr.to_socket_addrs()?.next().ok_or(Error::InvalidParameter("the address resolves to nothing"))
}

impl SocketOptions {
    /// Exclusive addresses, 30 s connect timeout, blocking reads, 60 s write timeout.
    pub fn new() -> Self {
        Self::default()
    }
    /// Share the port with other sockets that ask for it too (`SO_REUSEPORT`).
    pub fn reuse_port(mut self, yes: bool) -> Self {
        self.reuse_port = yes;
        self
    }
    /// How long a connect may take.
    pub fn connect_timeout(mut self, t: Option<Duration>) -> Self {
        self.connect_timeout = t;
        self
    }
    /// How long a read may wait.
    pub fn read_timeout(mut self, t: Option<Duration>) -> Self {
        self.read_timeout = t;
        self
    }
    /// How long a write may wait for a peer that does not read.
    pub fn write_timeout(mut self, t: Option<Duration>) -> Self {
        self.write_timeout = t;
        self
    }

    fn apply<F: AsFd>(&self, s: F) -> Result<F> {
        sysnet::set_timeout(&s, false, self.read_timeout)?;
        sysnet::set_timeout(&s, true, self.write_timeout)?;
        Ok(s)
    }

    /// A TCP listener (S02: exclusive unless [`SocketOptions::reuse_port`]).
    /// Accepted streams get this value's timeouts through [`SocketOptions::accept`].
    ///
    /// # Errors
    /// `AddrInUse` (as `Io`), `AccessDenied` for a privileged port.
    pub fn tcp_listen(&self, addr: impl ToSocketAddrs) -> Result<TcpListener> {
        Ok(sysnet::tcp_listen(one_addr(addr)?, self.reuse_port)?)
    }

    /// Accepts a TCP connection and gives it this value's timeouts.
    ///
    /// # Errors
    /// The accept error.
    pub fn accept(&self, l: &TcpListener) -> Result<(TcpStream, SocketAddr)> {
        let (s, a) = l.accept()?;
        Ok((self.apply(s)?, a))
    }

    /// Connects over TCP within the connect timeout.
    ///
    /// # Errors
    /// `Timeout`, `NotFound` when refused, other connect errors.
    pub fn tcp_connect(&self, addr: impl ToSocketAddrs) -> Result<TcpStream> {
        let addr = one_addr(addr)?;
        let s = match self.connect_timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t),
            None => TcpStream::connect(addr),
        };
        let s = s.map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Error::Timeout,
            std::io::ErrorKind::ConnectionRefused => Error::NotFound(addr.to_string()),
            _ => Error::Io(e),
        })?;
        self.apply(s)
    }

    /// A UDP socket bound to `addr` (S02: exclusive unless reuse_port).
    ///
    /// # Errors
    /// `AddrInUse` (as `Io`).
    pub fn udp_bind(&self, addr: impl ToSocketAddrs) -> Result<UdpSocket> {
        self.apply(sysnet::udp_bind(one_addr(addr)?, self.reuse_port)?)
    }

    /// A Unix stream listener; a stale socket file at a path is replaced (S04).
    ///
    /// # Errors
    /// `AddrInUse` (as `Io`) while a live listener holds the address.
    pub fn unix_listen(&self, addr: &UnixAddr) -> Result<UnixListener> {
        Ok(UnixListener::from(sysnet::unix_bind(UnixKind::Stream, addr)?))
    }

    /// Connects a Unix stream.
    ///
    /// # Errors
    /// `NotFound` when nobody listens, `Timeout` when the listener's backlog
    /// stays full for the connect timeout.
    pub fn unix_connect(&self, addr: &UnixAddr) -> Result<UnixStream> {
        let fd = sysnet::unix_connect(UnixKind::Stream, addr, self.connect_timeout).map_err(sock_error)?;
        self.apply(UnixStream::from(fd))
    }

    /// A Unix datagram socket, bound to `addr` when given.
    ///
    /// # Errors
    /// `AddrInUse` (as `Io`).
    pub fn unix_datagram(&self, addr: Option<&UnixAddr>) -> Result<UnixDatagram> {
        let fd = match addr {
            Some(a) => sysnet::unix_bind(UnixKind::Datagram, a)?,
            None => sysnet::unix_unbound(UnixKind::Datagram)?,
        };
        self.apply(UnixDatagram::from(fd))
    }

    /// A Unix seqpacket listener; a stale socket file is replaced (S04).
    ///
    /// # Errors
    /// `AddrInUse` (as `Io`) while a live listener holds the address.
    pub fn seqpacket_listen(&self, addr: &UnixAddr) -> Result<SeqpacketListener> {
        Ok(SeqpacketListener { fd: sysnet::unix_bind(UnixKind::Seqpacket, addr)?, opts: self.clone() })
    }

    /// Connects a Unix seqpacket socket.
    ///
    /// # Errors
    /// As [`SocketOptions::unix_connect`].
    pub fn seqpacket_connect(&self, addr: &UnixAddr) -> Result<SeqpacketConn> {
        let fd = sysnet::unix_connect(UnixKind::Seqpacket, addr, self.connect_timeout).map_err(sock_error)?;
        Ok(SeqpacketConn { fd: self.apply(fd)? })
    }
}

/// A listening Unix `SOCK_SEQPACKET` socket.
#[derive(Debug)]
pub struct SeqpacketListener {
    fd: OwnedFd,
    opts: SocketOptions,
}

impl SeqpacketListener {
    /// Accepts one connection (with the listener's options' timeouts).
    ///
    /// # Errors
    /// The accept error.
    pub fn accept(&self) -> Result<SeqpacketConn> {
        Ok(SeqpacketConn { fd: self.opts.apply(sysnet::accept(&self.fd)?)? })
    }
}

/// A connected Unix `SOCK_SEQPACKET` socket: reliable, ordered messages.
#[derive(Debug)]
pub struct SeqpacketConn {
    fd: OwnedFd,
}

impl SeqpacketConn {
    /// Sends one message (waits up to the write timeout for room).
    ///
    /// # Errors
    /// `Timeout`, `BrokenPipe`, `EMSGSIZE` (as `Io`) for a message over the socket buffer.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        switchboard_sys::socket::send_packet(&self.fd, msg).map(drop).map_err(sock_error)
    }

    /// Receives one message, whole (waits up to the read timeout). A
    /// message longer than `buf` is `InsufficientBuffer` with its size and
    /// stays queued (with one reader; two readers may race for it). As with
    /// std's sockets, `Ok(0)` is an empty message or the end of the stream.
    ///
    /// # Errors
    /// `Timeout`, `InsufficientBuffer`.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        let needed = switchboard_sys::socket::peek_packet_len(&self.fd).map_err(sock_error)?;
        if needed > buf.len() {
            return Err(Error::InsufficientBuffer { needed });
        }
        Ok(switchboard_sys::socket::recv_packet(&self.fd, buf).map_err(sock_error)?.0)
    }
}

impl AsFd for SeqpacketListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsFd for SeqpacketConn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<OwnedFd> for SeqpacketListener {
    fn from(fd: OwnedFd) -> Self {
        SeqpacketListener { fd, opts: SocketOptions::default() }
    }
}

impl From<OwnedFd> for SeqpacketConn {
    fn from(fd: OwnedFd) -> Self {
        SeqpacketConn { fd }
    }
}

/// The credentials of the process at the other end of a Unix socket (S04).
///
/// # Errors
/// `Io` for a socket that is not a connected Unix socket.
pub fn peer_credentials(s: &impl AsFd) -> Result<Cred> {
    Ok(switchboard_sys::socket::peer_cred(s)?)
}

/// A socket type that can travel between processes (S03).
pub trait Shareable: AsFd + From<OwnedFd> {
    /// What it is, for error messages.
    const WHAT: &'static str;
    /// Whether a descriptor of this shape is one.
    fn fits(shape: SocketShape) -> bool;
}

macro_rules! shareable {
    ($t:ty, $what:literal, |$s:ident| $fits:expr) => {
        impl Shareable for $t {
            const WHAT: &'static str = $what;
            fn fits($s: SocketShape) -> bool {
                $fits
            }
        }
    };
}

shareable!(TcpListener, "TCP listener", |s| s.inet && s.kind == 1 && s.listening);
shareable!(TcpStream, "TCP stream", |s| s.inet && s.kind == 1 && !s.listening);
shareable!(UdpSocket, "UDP socket", |s| s.inet && s.kind == 2);
shareable!(UnixListener, "Unix stream listener", |s| s.unix && s.kind == 1 && s.listening);
shareable!(UnixStream, "Unix stream", |s| s.unix && s.kind == 1 && !s.listening);
shareable!(UnixDatagram, "Unix datagram socket", |s| s.unix && s.kind == 2);
shareable!(SeqpacketListener, "Unix seqpacket listener", |s| s.unix && s.kind == 5 && s.listening);
shareable!(SeqpacketConn, "Unix seqpacket connection", |s| s.unix && s.kind == 5 && !s.listening);

/// Duplicates `s` into the process at the other end of `via` (S03): one
/// rendezvous-wire message of the socket family, empty body, one
/// descriptor.
///
/// # Errors
/// `BrokenPipe` when the peer is gone.
pub fn send_socket(via: &Conn, s: &impl AsFd) -> Result<()> {
    wire::send(via, Family::SOCKET, Status::Granted, &[], &[s.as_fd()]).map_err(|e| match e {
        Error::Io(io) if io.raw_os_error() == Some(Errno::PIPE.raw_os_error()) => Error::BrokenPipe,
        other => other,
    })
}

fn checked<T: Shareable>(fd: OwnedFd) -> Result<T> {
    match sysnet::shape(&fd) {
        Ok(shape) if T::fits(shape) => Ok(T::from(fd)),
        Ok(_) => Err(Error::InvalidHandle { wanted: T::WHAT, found: "another kind of socket" }),
        Err(_) => Err(Error::InvalidHandle { wanted: T::WHAT, found: "a descriptor that is not a socket" }),
    }
}

/// Receives a socket [`send_socket`] sent, checking it is a `T`.
///
/// # Errors
/// `InvalidHandle` for anything that is not a `T`, `Malformed` for a
/// message that is not a socket, `Timeout`, `BrokenPipe`.
pub fn receive_socket<T: Shareable>(via: &Conn, timeout: impl Into<crate::time::Deadline>) -> Result<T> {
    let deadline = timeout.into().instant();
    let (body, fds) = rendezvous::receive(Family::SOCKET, via, deadline).map_err(|f| match f {
        Failure::Refused(e) => e,
        _ => Error::BrokenPipe,
    })?;
    match <[OwnedFd; 1]>::try_from(fds) {
        Ok([fd]) if body.is_empty() => checked(fd),
        _ => Err(Error::Malformed("a message that does not carry one socket".into())),
    }
}

/// A named meeting point for handing sockets between processes (S03): a
/// rendezvous service of the socket family. One side binds it and
/// accepts; the other connects; each then holds a [`Conn`] to pass sockets
/// over with [`send_socket`] and [`receive_socket`]. Admission is the
/// rendezvous's: this user only unless an ACL says otherwise, and the
/// connector believes only a holder of its own user (or root, for a
/// `Global\` name).
///
/// ```
/// use std::time::Duration;
/// use switchboard::socket::{receive_socket, send_socket, HandOff, SocketOptions};
/// let name = format!("doc-handoff-{}", std::process::id());
/// let point = HandOff::bind(&name)?;
/// let giver = std::thread::spawn(move || -> switchboard::Result<()> {
///     let conn = HandOff::connect(&name, Duration::from_secs(10))?;
///     let udp = SocketOptions::new().udp_bind("127.0.0.1:0")?;
///     send_socket(&conn, &udp)
/// });
/// let conn = point.accept(Duration::from_secs(10))?;
/// let _udp: std::net::UdpSocket = receive_socket(&conn, Duration::from_secs(10))?;
/// giver.join().unwrap()?;
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct HandOff {
    backlog: Arc<Backlog<()>>,
    _service: Service,
}

impl HandOff {
    /// Binds `name` (`NAME`, `Local\NAME` or `Global\NAME`), admitting
    /// only this user.
    ///
    /// # Errors
    /// `InvalidName`; `AlreadyExists` when another point has the name.
    pub fn bind(name: &str) -> Result<HandOff> {
        HandOff::bind_with_acl(name, &crate::namespace::Acl::owner_only())
    }

    /// As [`HandOff::bind`], admitting whom `acl` allows too.
    ///
    /// # Errors
    /// As [`HandOff::bind`].
    pub fn bind_with_acl(name: &str, acl: &crate::namespace::Acl) -> Result<HandOff> {
        let (scope, key) = crate::name::Name::parse_object(name)?;
        let addr = rendezvous::address(Family::SOCKET, scope, &key);
        let listener = rendezvous::bind_server(&addr)?.ok_or_else(|| Error::AlreadyExists(name.to_owned()))?;
        let backlog = Arc::new(Backlog::new(Family::SOCKET, Box::new(|| Some((Vec::new(), ())))));
        let acl = acl.clone().with_owner(switchboard_sys::process::uid());
        let service = Service::start(Family::SOCKET, Arc::new(listener), acl, backlog.clone())?;
        Ok(HandOff { backlog, _service: service })
    }

    /// The next connection to this point, waiting until `deadline`.
    ///
    /// # Errors
    /// `Timeout`.
    pub fn accept(&self, deadline: impl Into<crate::time::Deadline>) -> Result<Conn> {
        Ok(self.backlog.next(deadline.into().instant())?.conn)
    }

    /// Connects to the point `name`, within `deadline` (never: the default
    /// answer time).
    ///
    /// # Errors
    /// `NotFound` when nobody binds it, `AccessDenied`, `Timeout`.
    pub fn connect(name: &str, deadline: impl Into<crate::time::Deadline>) -> Result<Conn> {
        let (scope, key) = crate::name::Name::parse_object(name)?;
        let addr = rendezvous::address(Family::SOCKET, scope, &key);
        let by = deadline.into().instant().unwrap_or_else(|| rendezvous::answer_deadline(None));
        let answer = rendezvous::connect(Family::SOCKET, &addr, by, rendezvous::Trust::for_scope(scope))
            .map_err(|f| f.into_error(name))?;
        Ok(answer.conn)
    }
}

/// The value another process passes to [`take_socket`] to take `s`.
pub fn handle_of(s: &impl AsFd) -> HandleValue {
    HandleValue::of(s)
}

/// Takes socket `handle` of process `pid` (`pidfd_getfd`), checking it is a `T` (S03).
///
/// # Errors
/// `NotFound` for no such process, `HandleTakingRefused` when the kernel
/// refuses (another user, ptrace policy), `InvalidHandle` for no such
/// descriptor or one that is not a `T`.
pub fn take_socket<T: Shareable>(pid: u32, handle: HandleValue) -> Result<T> {
    checked(crate::namespace::take_fd(pid, handle, T::WHAT)?)
}
