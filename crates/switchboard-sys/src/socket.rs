//! Rendezvous sockets: abstract-namespace `AF_UNIX` `SOCK_SEQPACKET`.
//!
//! An abstract socket name lives in the kernel, not on the file system: when
//! the last descriptor of the bound socket closes — including by `kill -9` —
//! the name is gone and nothing is left in `/tmp` or `$XDG_RUNTIME_DIR`.
//! Abstract names are per network namespace and limited to
//! [`ABSTRACT_NAME_MAX`] bytes; callers hash longer names.
//!
//! Sequenced packets keep message boundaries, carry descriptors
//! (`SCM_RIGHTS`) and report the peer's death as end-of-file.

use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{
    self, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

use crate::Result;

/// Longest abstract name (sun_path is 108 bytes, one is the leading NUL).
pub const ABSTRACT_NAME_MAX: usize = 107;

/// Most descriptors sent or received in one message.
pub const MAX_FDS: usize = 8;

/// The identity of the process at the other end of a connection
/// (`SO_PEERCRED`, recorded by the kernel at `connect`/`listen` time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cred {
    /// Process id.
    pub pid: u32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

fn seqpacket(flags: SocketFlags) -> Result<OwnedFd> {
    net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC | flags, None)
}

/// A listening socket bound to an abstract name, in non-blocking mode.
#[derive(Debug)]
pub struct Listener(OwnedFd);

impl Listener {
    /// Binds `name` and listens.
    ///
    /// # Errors
    /// `EADDRINUSE` when the name is taken, `EINVAL` for an over-long name.
    pub fn bind(name: &[u8]) -> Result<Listener> {
        Listener::bind_with_backlog(name, 128)
    }

    /// Binds `name` and listens with a backlog of `backlog` pending
    /// connections.
    ///
    /// # Errors
    /// As [`Listener::bind`].
    pub fn bind_with_backlog(name: &[u8], backlog: i32) -> Result<Listener> {
        let fd = seqpacket(SocketFlags::NONBLOCK)?;
        net::bind(&fd, &SocketAddrUnix::new_abstract_name(name)?)?;
        net::listen(&fd, backlog)?;
        Ok(Listener(fd))
    }

    /// Adopts a listening socket received from another process, after
    /// checking that it is one: an `AF_UNIX` `SOCK_SEQPACKET` socket in the
    /// listening state. A peer that sends a regular file, a pipe or a
    /// connected socket where a listener belongs is refused here, before
    /// anything polls or accepts on it.
    ///
    /// # Errors
    /// `ENOTSOCK` for a descriptor that is not a socket, `EPROTOTYPE` for
    /// a socket of another family or type, `EINVAL` for one not listening.
    pub fn adopt(fd: OwnedFd) -> Result<Listener> {
        if net::sockopt::socket_domain(&fd)? != AddressFamily::UNIX
            || net::sockopt::socket_type(&fd)? != SocketType::SEQPACKET
        {
            return Err(Errno::PROTOTYPE);
        }
        if !net::sockopt::socket_acceptconn(&fd)? {
            return Err(Errno::INVAL);
        }
        Ok(Listener(fd))
    }

    /// Accepts one pending connection, if any (never blocks).
    ///
    /// # Errors
    /// The kernel's error other than `EAGAIN`.
    pub fn accept(&self) -> Result<Option<Conn>> {
        match net::accept_with(&self.0, SocketFlags::CLOEXEC) {
            Ok(fd) => Ok(Some(Conn(fd))),
            Err(Errno::AGAIN) | Err(Errno::INTR) | Err(Errno::CONNABORTED) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The abstract name this socket is bound to.
    ///
    /// # Errors
    /// `EINVAL` when the socket is not an abstract `AF_UNIX` socket.
    pub fn name(&self) -> Result<Vec<u8>> {
        let addr: SocketAddrUnix = net::getsockname(&self.0)?.try_into().map_err(|_| Errno::INVAL)?;
        addr.abstract_name().map(<[u8]>::to_vec).ok_or(Errno::INVAL)
    }

    /// The socket's inode number, as `/proc/net/unix` and `/proc/PID/fd` show it.
    ///
    /// # Errors
    /// The kernel's `fstat` error.
    pub fn inode(&self) -> Result<u64> {
        Ok(rustix::fs::fstat(&self.0)?.st_ino)
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// One end of a connected sequenced-packet socket.
#[derive(Debug)]
pub struct Conn(OwnedFd);

impl Conn {
    /// Connects to the abstract name `name`, waiting at most until
    /// `deadline` (`None`: as long as it takes) for room in the listener's
    /// backlog.
    ///
    /// A blocking `AF_UNIX` connect sleeps while the listener's backlog is
    /// full, and a listener that never accepts keeps it full: without a
    /// bound, anyone who binds the name first could hang every connector.
    /// The kernel bounds that sleep by the socket's send timeout
    /// (`SO_SNDTIMEO`), which is set to the time left for the connect and
    /// cleared after it.
    ///
    /// # Errors
    /// `ECONNREFUSED`/`ENOENT` when nobody listens under that name,
    /// `ETIMEDOUT` at the deadline, `EINVAL` for an over-long name.
    pub fn connect(name: &[u8], deadline: Option<Instant>) -> Result<Conn> {
        let addr = SocketAddrUnix::new_abstract_name(name)?;
        loop {
            let fd = seqpacket(SocketFlags::empty())?;
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Errno::TIMEDOUT);
                }
                // A zero timeout would mean "forever": at least 1 µs.
                let left = left.max(Duration::from_micros(1));
                net::sockopt::set_socket_timeout(&fd, net::sockopt::Timeout::Send, Some(left))?;
            }
            match net::connect(&fd, &addr) {
                Ok(()) => {
                    if deadline.is_some() {
                        net::sockopt::set_socket_timeout(&fd, net::sockopt::Timeout::Send, None)?;
                    }
                    return Ok(Conn(fd));
                }
                Err(Errno::AGAIN) | Err(Errno::INPROGRESS) => return Err(Errno::TIMEDOUT),
                // A fresh socket for another try: an interrupted connect may
                // leave this one half-connected.
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// A connected pair (for passing handles between related processes).
    ///
    /// # Errors
    /// `EMFILE`, `ENFILE`.
    pub fn pair() -> Result<(Conn, Conn)> {
        let (a, b) = net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)?;
        Ok((Conn(a), Conn(b)))
    }

    /// Adopts a connected socket (for example one inherited by a child).
    pub fn from_fd(fd: OwnedFd) -> Conn {
        Conn(fd)
    }

    /// Another descriptor for the same connection (close-on-exec).
    ///
    /// # Errors
    /// `EMFILE`.
    pub fn try_clone(&self) -> Result<Conn> {
        Ok(Conn(rustix::io::fcntl_dupfd_cloexec(&self.0, 0)?))
    }

    /// The peer's credentials as recorded by the kernel.
    ///
    /// # Errors
    /// The kernel's `getsockopt` error.
    pub fn peer_cred(&self) -> Result<Cred> {
        peer_cred(&self.0)
    }

    /// Whether the peer hung up (closed its last copy, or died): `POLLHUP`
    /// or `POLLRDHUP`, not mere readability, so unread data from a live
    /// peer does not count. Never blocks; a failed poll counts as still
    /// connected.
    pub fn hung_up(&self) -> bool {
        use rustix::event::{poll, PollFd, PollFlags};
        let mut fds = [PollFd::new(&self.0, PollFlags::IN | PollFlags::RDHUP)];
        match poll(&mut fds, Some(&rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 })) {
            Ok(_) => fds[0].revents().intersects(PollFlags::HUP | PollFlags::RDHUP | PollFlags::ERR),
            Err(_) => false,
        }
    }

    /// Whether the peer hung up with nothing left to read: a peer that
    /// sent a message and then closed still has that message to give.
    pub fn hung_up_and_drained(&self) -> bool {
        if !self.hung_up() {
            return false;
        }
        let mut byte = [0u8; 1];
        !matches!(net::recv(&self.0, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT), Ok((n, _)) if n > 0)
    }

    /// Sends one message with up to [`MAX_FDS`] descriptors, without blocking.
    ///
    /// # Errors
    /// `EPIPE` when the peer is gone, `EAGAIN` when its queue is full,
    /// `EINVAL` for too many descriptors.
    pub fn send(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        if fds.len() > MAX_FDS {
            return Err(Errno::INVAL);
        }
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() {
            control.push(SendAncillaryMessage::ScmRights(fds));
        }
        let iov = [std::io::IoSlice::new(bytes)];
        let sent = net::sendmsg(&self.0, &iov, &mut control, SendFlags::DONTWAIT | SendFlags::NOSIGNAL)?;
        if sent != bytes.len() {
            return Err(Errno::MSGSIZE);
        }
        Ok(())
    }

    /// Receives one message into `buf` together with any descriptors, waiting
    /// until `deadline`. Returns `Ok(None)` at end-of-file (peer closed).
    ///
    /// # Errors
    /// `ETIMEDOUT` at the deadline, `EMSGSIZE` when the message did not fit
    /// `buf` (it is consumed), the kernel's error otherwise.
    pub fn recv(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<Option<(usize, Vec<OwnedFd>)>> {
        wait_readable(self.0.as_fd(), deadline)?;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [std::io::IoSliceMut::new(buf)];
        let msg = net::recvmsg(&self.0, &mut iov, &mut control, RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC)?;
        let mut fds = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = m {
                fds.extend(rights);
            }
        }
        if msg.flags.contains(net::ReturnFlags::TRUNC) {
            return Err(Errno::MSGSIZE);
        }
        if msg.bytes == 0 && fds.is_empty() {
            return Ok(None);
        }
        Ok(Some((msg.bytes, fds)))
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// The credentials of the process at the other end of any connected Unix
/// socket (`SO_PEERCRED`).
///
/// # Errors
/// `ENOTCONN`, `EOPNOTSUPP` for sockets that are not Unix sockets.
pub fn peer_cred<Fd: AsFd>(fd: Fd) -> Result<Cred> {
    let c = net::sockopt::socket_peercred(fd)?;
    Ok(Cred { pid: c.pid.as_raw_nonzero().get() as u32, uid: c.uid.as_raw(), gid: c.gid.as_raw() })
}

/// Sends one packet on a connected seqpacket or datagram socket, blocking
/// up to the socket's send timeout; never raises `SIGPIPE`.
///
/// # Errors
/// `EPIPE` when the peer is gone, `EAGAIN` at the send timeout, `EMSGSIZE`.
pub fn send_packet<Fd: AsFd>(fd: Fd, bytes: &[u8]) -> Result<usize> {
    net::send(fd, bytes, SendFlags::NOSIGNAL)
}

/// Receives one packet, blocking up to the socket's receive timeout.
/// Returns its length and whether it was longer than `buf` (the rest is lost).
///
/// # Errors
/// `EAGAIN` at the receive timeout.
pub fn recv_packet<Fd: AsFd>(fd: Fd, buf: &mut [u8]) -> Result<(usize, bool)> {
    let cap = buf.len();
    let (n, full) = net::recv(fd, buf, RecvFlags::TRUNC)?;
    Ok((n.min(cap), full > cap))
}

/// The length of the next packet, without taking it (blocking up to the
/// receive timeout; 0 at end of stream).
///
/// # Errors
/// `EAGAIN` at the receive timeout.
pub fn peek_packet_len<Fd: AsFd>(fd: Fd) -> Result<usize> {
    let (_, full) = net::recv(fd, &mut [0u8; 0][..], RecvFlags::PEEK | RecvFlags::TRUNC)?;
    Ok(full)
}

/// Waits until `fd` is readable (or hung up), or `deadline` passes.
///
/// # Errors
/// `ETIMEDOUT` at the deadline.
pub fn wait_readable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<()> {
    wait_for(fd, rustix::event::PollFlags::IN, deadline)
}

/// Waits until `fd` has room to write (or is hung up), or `deadline` passes.
///
/// # Errors
/// `ETIMEDOUT` at the deadline.
pub fn wait_writable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<()> {
    wait_for(fd, rustix::event::PollFlags::OUT, deadline)
}

fn wait_for(fd: BorrowedFd<'_>, events: rustix::event::PollFlags, deadline: Option<Instant>) -> Result<()> {
    loop {
        let mut fds = [rustix::event::PollFd::new(&fd, events)];
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                Some(rustix::event::Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as i64 })
            }
        };
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) => return Err(Errno::TIMEDOUT),
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Waits until any of `fds` is readable, or `timeout_ms` passes (`None` =
/// forever); returns the readiness of each.
///
/// # Errors
/// The kernel's `poll` error other than `EINTR`.
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Option<std::time::Duration>) -> Result<Vec<bool>> {
    let mut pfds: Vec<_> = fds.iter().map(|fd| rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)).collect();
    let ts = timeout.map(|t| rustix::event::Timespec { tv_sec: t.as_secs() as i64, tv_nsec: t.subsec_nanos() as i64 });
    match rustix::event::poll(&mut pfds, ts.as_ref()) {
        Ok(_) | Err(Errno::INTR) => Ok(pfds.iter().map(|p| !p.revents().is_empty()).collect()),
        Err(e) => Err(e),
    }
}

/// One listening abstract socket as `/proc/net/unix` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbstractListener {
    /// The abstract name (without the leading NUL).
    pub name: Vec<u8>,
    /// The socket inode.
    pub inode: u64,
}

/// Lists the abstract listening sockets in this network namespace whose name
/// starts with `prefix`.
pub fn list_abstract_listeners(prefix: &[u8]) -> Vec<AbstractListener> {
    let Ok(text) = std::fs::read("/proc/net/unix") else { return Vec::new() };
    parse_proc_net_unix(&text, prefix)
}

fn parse_proc_net_unix(text: &[u8], prefix: &[u8]) -> Vec<AbstractListener> {
    const ACCEPTCON: u32 = 0x10000;
    let mut out = Vec::new();
    for line in text.split(|b| *b == b'\n').skip(1) {
        // Num RefCount Protocol Flags Type St Inode Path
        let fields: Vec<&[u8]> = line.split(|b| *b == b' ').filter(|f| !f.is_empty()).collect();
        if fields.len() < 8 {
            continue;
        }
        let flags = std::str::from_utf8(fields[3]).ok().and_then(|f| u32::from_str_radix(f, 16).ok());
        let inode = std::str::from_utf8(fields[6]).ok().and_then(|f| f.parse().ok());
        // The path may contain spaces: take everything after the inode.
        let path_start = line.windows(fields[6].len()).position(|w| w == fields[6]).map(|p| p + fields[6].len() + 1);
        let (Some(flags), Some(inode), Some(start)) = (flags, inode, path_start) else { continue };
        let Some(path) = line.get(start..).and_then(|p| p.strip_prefix(b"@")) else { continue };
        if flags & ACCEPTCON != 0 && path.starts_with(prefix) {
            out.push(AbstractListener { name: path.to_vec(), inode });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_abstract_entries_only() {
        let text = b"Num       RefCount Protocol Flags    Type St Inode Path\n\
0000000000000000: 00000002 00000000 00010000 0005 01 12345 @sb/x y\n\
0000000000000000: 00000002 00000000 00000000 0005 01 12346 @sb/conn\n\
0000000000000000: 00000002 00000000 00010000 0001 01 12347 /run/x.sock\n";
        let got = parse_proc_net_unix(text, b"sb/");
        assert_eq!(got, vec![AbstractListener { name: b"sb/x y".to_vec(), inode: 12345 }]);
    }

    fn unique(tag: &str) -> Vec<u8> {
        format!("sb-test/{tag}/{}/{:?}", std::process::id(), Instant::now()).into_bytes()
    }

    #[test]
    fn connect_to_a_full_backlog_gives_up_at_the_deadline() {
        let name = unique("full");
        let _listener = Listener::bind_with_backlog(&name, 0).unwrap();
        // Fill the backlog: nobody ever accepts.
        let mut held = Vec::new();
        let err = loop {
            match Conn::connect(&name, Some(Instant::now() + Duration::from_millis(200))) {
                Ok(c) => held.push(c),
                Err(e) => break e,
            }
            assert!(held.len() < 64, "the backlog never filled");
        };
        assert_eq!(err, Errno::TIMEDOUT);
        assert_eq!(Conn::connect(b"sb-test/nobody-here", None).unwrap_err(), Errno::CONNREFUSED);
    }

    #[test]
    fn adopt_refuses_what_is_not_a_listening_seqpacket_socket() {
        let (a, _b) = Conn::pair().unwrap();
        assert_eq!(Listener::adopt(a.0).unwrap_err(), Errno::INVAL, "a connected socket");
        let file = rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        assert_eq!(Listener::adopt(file).unwrap_err(), Errno::NOTSOCK, "a file");
        let udp = net::socket(AddressFamily::INET, SocketType::DGRAM, None).unwrap();
        assert_eq!(Listener::adopt(udp).unwrap_err(), Errno::PROTOTYPE, "a UDP socket");
        let l = Listener::bind(&unique("adopt")).unwrap();
        assert!(Listener::adopt(l.0).is_ok());
    }

    #[test]
    fn passes_descriptors_and_reports_eof() {
        let (a, b) = Conn::pair().unwrap();
        let (c, _d) = Conn::pair().unwrap();
        a.send(b"hi", &[c.as_fd()]).unwrap();
        let mut buf = [0u8; 16];
        let (n, fds) = b.recv(&mut buf, None).unwrap().unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"hi"[..], 1));
        assert!(!b.hung_up());
        a.send(b"unread", &[]).unwrap();
        assert!(!b.hung_up(), "unread data from a live peer is not a hang-up");
        drop(a);
        assert!(b.hung_up());
        assert_eq!(b.recv(&mut buf, None).unwrap().map(|(n, _)| n), Some(6));
        assert!(b.recv(&mut buf, None).unwrap().is_none());
    }
}
