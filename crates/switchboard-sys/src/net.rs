//! Internet sockets with the options and queries std does not offer.
//!
//! # Safety
//! [`broadcast_addresses`] walks the list `getifaddrs(3)` returns: every
//! pointer in it is the C library's, valid until `freeifaddrs`, and is
//! checked for null before it is read.

#![allow(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};

use rustix::net::{bind, socket_with, sockopt, AddressFamily, SocketFlags, SocketType};

use crate::Result;

/// A UDP socket bound to `addr` that other sockets may bind too
/// (`SO_REUSEADDR`): every one of them receives each broadcast datagram,
/// which is how several mailslot servers on one host share one port.
/// Broadcasting from it is allowed (`SO_BROADCAST`). Close-on-exec.
///
/// # Errors
/// `EADDRINUSE` when a socket without `SO_REUSEADDR` holds the port, `EACCES`
/// for a privileged port.
pub fn udp_bind_shared(addr: SocketAddrV4) -> Result<UdpSocket> {
    let fd = socket_with(AddressFamily::INET, SocketType::DGRAM, SocketFlags::CLOEXEC, None)?;
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
