//! Internet sockets with the options and queries std does not offer.
//!
//! # Safety
//! [`broadcast_addresses`] walks the list `getifaddrs(3)` returns: every
//! pointer in it is the C library's, valid until `freeifaddrs`, and is
//! checked for null before it is read.

#![allow(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{bind, socket_with, sockopt, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::Result;

/// What a socket descriptor is, as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketShape {
    /// `AF_INET`/`AF_INET6` (false: `AF_UNIX` or other).
    pub inet: bool,
    /// `AF_UNIX`.
    pub unix: bool,
    /// `SOCK_STREAM`, `SOCK_DGRAM` or `SOCK_SEQPACKET` as 1, 2, 5.
    pub kind: u32,
    /// Whether it listens.
    pub listening: bool,
}

/// Describes a socket descriptor.
///
/// # Errors
/// `ENOTSOCK` for anything that is not a socket.
pub fn shape<Fd: AsFd>(fd: Fd) -> Result<SocketShape> {
    let domain = sockopt::socket_domain(&fd)?;
    let kind = sockopt::socket_type(&fd)?;
    let kind = if kind == SocketType::STREAM {
        1
    } else if kind == SocketType::DGRAM {
        2
    } else if kind == SocketType::SEQPACKET {
        5
    } else {
        0
    };
    Ok(SocketShape {
        inet: domain == AddressFamily::INET || domain == AddressFamily::INET6,
        unix: domain == AddressFamily::UNIX,
        kind,
        listening: sockopt::socket_acceptconn(&fd).unwrap_or(false),
    })
}

/// Whether a descriptor is close-on-exec.
pub fn is_cloexec<Fd: AsFd>(fd: Fd) -> bool {
    rustix::io::fcntl_getfd(fd).is_ok_and(|f| f.contains(rustix::io::FdFlags::CLOEXEC))
}

/// A Unix socket address: a path on the file system or an abstract name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnixAddr {
    /// A path (a socket file is created on bind).
    Path(std::path::PathBuf),
    /// An abstract name (nothing on the file system; gone with the socket).
    Abstract(Vec<u8>),
}

impl UnixAddr {
    fn raw(&self) -> Result<SocketAddrUnix> {
        match self {
            UnixAddr::Path(p) => SocketAddrUnix::new(p.as_path()),
            UnixAddr::Abstract(n) => SocketAddrUnix::new_abstract_name(n),
        }
    }
}

/// The kinds of Unix socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnixKind {
    /// `SOCK_STREAM`.
    Stream,
    /// `SOCK_SEQPACKET`.
    Seqpacket,
    /// `SOCK_DGRAM`.
    Datagram,
}

fn unix_socket(kind: UnixKind) -> Result<OwnedFd> {
    let t = match kind {
        UnixKind::Stream => SocketType::STREAM,
        UnixKind::Seqpacket => SocketType::SEQPACKET,
        UnixKind::Datagram => SocketType::DGRAM,
    };
    socket_with(AddressFamily::UNIX, t, SocketFlags::CLOEXEC, None)
}

/// A Unix socket of `kind` bound to `addr`, listening unless a datagram
/// socket. A path whose socket file is stale (nobody accepts on it: its
/// server died) is replaced; a live one is `EADDRINUSE`.
///
/// # Errors
/// `EADDRINUSE`, `EACCES`, `ENAMETOOLONG`.
pub fn unix_bind(kind: UnixKind, addr: &UnixAddr) -> Result<OwnedFd> {
    let fd = unix_socket(kind)?;
    let raw = addr.raw()?;
    match bind(&fd, &raw) {
        Err(Errno::ADDRINUSE) => {
            let UnixAddr::Path(p) = addr else { return Err(Errno::ADDRINUSE) };
            if !is_stale(kind, addr) {
                return Err(Errno::ADDRINUSE);
            }
            std::fs::remove_file(p).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::ADDRINUSE))?;
            bind(&fd, &raw)?;
        }
        other => other?,
    }
    if kind != UnixKind::Datagram {
        rustix::net::listen(&fd, 128)?;
    }
    Ok(fd)
}

/// Whether the file at `addr` is a socket file with nobody behind it (a
/// connect to any other kind of file is refused too: those are never stale).
fn is_stale(kind: UnixKind, addr: &UnixAddr) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let UnixAddr::Path(p) = addr else { return false };
    if !std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket()) {
        return false;
    }
    let Ok(probe) = unix_socket(kind) else { return false };
    let Ok(raw) = addr.raw() else { return false };
    matches!(rustix::net::connect(&probe, &raw), Err(Errno::CONNREFUSED))
}

/// A Unix socket of `kind` connected to `addr` (datagram: its default
/// peer). A connect to a listener whose backlog is full waits up to
/// `timeout` (the kernel bounds it by the send timeout), then `EAGAIN`.
///
/// # Errors
/// `ECONNREFUSED`/`ENOENT` when nobody listens, `EAGAIN` at the timeout.
pub fn unix_connect(kind: UnixKind, addr: &UnixAddr, timeout: Option<Duration>) -> Result<OwnedFd> {
    let fd = unix_socket(kind)?;
    set_timeout(&fd, true, timeout)?;
    rustix::net::connect(&fd, &addr.raw()?)?;
    set_timeout(&fd, true, None)?;
    Ok(fd)
}

/// An unbound Unix datagram socket.
///
/// # Errors
/// `EMFILE`.
pub fn unix_unbound(kind: UnixKind) -> Result<OwnedFd> {
    unix_socket(kind)
}

/// Accepts one connection (blocking, close-on-exec).
///
/// # Errors
/// The kernel's `accept4` error.
pub fn accept<Fd: AsFd>(fd: Fd) -> Result<OwnedFd> {
    rustix::net::accept_with(fd, SocketFlags::CLOEXEC)
}

/// A TCP listener on `addr`. Without `reuse_port`, nobody else can bind the
/// port while it lives (no `SO_REUSEPORT`; `SO_REUSEADDR` only lets a
/// restarted server bind past connections in `TIME_WAIT`, which on Linux
/// never admits a second listener). With it, every socket that also asks
/// shares the port.
///
/// # Errors
/// `EADDRINUSE`, `EACCES`.
pub fn tcp_listen(addr: SocketAddr, reuse_port: bool) -> Result<std::net::TcpListener> {
    let fd = inet_socket(addr, SocketType::STREAM)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_reuseport(&fd, reuse_port)?;
    bind(&fd, &addr)?;
    rustix::net::listen(&fd, 128)?;
    Ok(std::net::TcpListener::from(fd))
}

/// A UDP socket bound to `addr`, exclusive unless `reuse_port` (then
/// shared with every socket that also asks).
///
/// # Errors
/// `EADDRINUSE`, `EACCES`.
pub fn udp_bind(addr: SocketAddr, reuse_port: bool) -> Result<UdpSocket> {
    let fd = inet_socket(addr, SocketType::DGRAM)?;
    sockopt::set_socket_reuseport(&fd, reuse_port)?;
    bind(&fd, &addr)?;
    Ok(UdpSocket::from(fd))
}

fn inet_socket(addr: SocketAddr, t: SocketType) -> Result<OwnedFd> {
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    socket_with(family, t, SocketFlags::CLOEXEC, None)
}

/// Sets `SO_RCVTIMEO` (`recv`) or `SO_SNDTIMEO` (`send`); `None` blocks.
///
/// # Errors
/// `EINVAL`.
pub fn set_timeout<Fd: AsFd>(fd: Fd, send: bool, t: Option<Duration>) -> Result<()> {
    let which = if send { sockopt::Timeout::Send } else { sockopt::Timeout::Recv };
    sockopt::set_socket_timeout(fd, which, t.filter(|t| !t.is_zero()))
}

/// A UDP socket bound to `addr` that other sockets may bind too
/// (`SO_REUSEADDR`): every one of them receives each broadcast datagram,
/// which is how several mailslot servers on one host share one port.
/// Broadcasting from it is allowed (`SO_BROADCAST`). Close-on-exec.
///
/// # Errors
/// `EADDRINUSE` when a socket without `SO_REUSEADDR` holds the port, `EACCES`
/// for a privileged port.
pub fn udp_bind_shared(addr: SocketAddrV4) -> Result<UdpSocket> {
    let fd = inet_socket(SocketAddr::V4(addr), SocketType::DGRAM)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_broadcast(&fd, true)?;
    bind(&fd, &addr)?;
    Ok(UdpSocket::from(fd))
}

/// The broadcast address of every IPv4 interface that is up: the directed
/// broadcast of each broadcast-capable interface, and `127.255.255.255`
/// when the loopback interface is up. Sorted, without duplicates.
pub fn broadcast_addresses() -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `list` or fails.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return out;
    }
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a non-null node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        let flags = ifa.ifa_flags;
        let up = flags & libc::IFF_UP as u32 != 0;
        if up && flags & libc::IFF_LOOPBACK as u32 != 0 && is_ipv4(ifa.ifa_addr) {
            out.push(Ipv4Addr::new(127, 255, 255, 255));
        } else if up && flags & libc::IFF_BROADCAST as u32 != 0 && is_ipv4(ifa.ifa_addr) {
            // On Linux the broadcast address travels in ifa_ifu.
            if let Some(a) = ipv4_of(ifa.ifa_ifu) {
                out.push(a);
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    out.sort_unstable();
    out.dedup();
    out
}

fn is_ipv4(sa: *const libc::sockaddr) -> bool {
    // SAFETY: a non-null sockaddr from getifaddrs has at least its family.
    !sa.is_null() && i32::from(unsafe { (*sa).sa_family }) == libc::AF_INET
}

fn ipv4_of(sa: *const libc::sockaddr) -> Option<Ipv4Addr> {
    if !is_ipv4(sa) {
        return None;
    }
    // SAFETY: an AF_INET sockaddr from getifaddrs is a sockaddr_in.
    let sin = unsafe { &*sa.cast::<libc::sockaddr_in>() };
    Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_shared_sockets_bind_one_port_and_both_get_a_broadcast() {
        let a = udp_bind_shared(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let port = a.local_addr().unwrap().port();
        let b = udp_bind_shared(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).unwrap();
        let tx = udp_bind_shared(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        tx.send_to(b"hi", (Ipv4Addr::new(127, 255, 255, 255), port)).unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(s.recv(&mut buf).unwrap(), 2);
        }
    }

    #[test]
    fn loopback_broadcast_is_listed_when_lo_is_up() {
        assert!(broadcast_addresses().contains(&Ipv4Addr::new(127, 255, 255, 255)));
    }
}
