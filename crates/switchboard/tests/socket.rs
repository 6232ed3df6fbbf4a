//! Spec 10, S01–S06 — sockets, across processes where the statement is
//! about processes. Only loopback and Unix sockets are used.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use switchboard::socket::{
    handle_of, peer_credentials, receive_socket, send_socket, take_socket, Framed, SeqpacketConn, SocketOptions,
    UnixAddr,
};
use switchboard::{Connection, Error, HandleValue};
use switchboard_sys::net::is_cloexec;
use switchboard_sys::socket::Listener;
use util::{done, hear, hold, role, say, unique, Peer, Watchdog};

fn abstract_addr(tag: &str) -> UnixAddr {
    UnixAddr::Abstract(unique(tag).into_bytes())
}

fn temp_path(tag: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique(tag))
}

#[test]
fn socket_s01_every_kind_works_and_every_descriptor_is_close_on_exec() {
    let opts = SocketOptions::new();
    // TCP
    let l = opts.tcp_listen("127.0.0.1:0").unwrap();
    let mut c = opts.tcp_connect(l.local_addr().unwrap()).unwrap();
    let (mut s, _) = opts.accept(&l).unwrap();
    c.write_all(b"tcp").unwrap();
    let mut b3 = [0u8; 3];
    s.read_exact(&mut b3).unwrap();
    assert_eq!(&b3, b"tcp");
    // UDP
    let u1 = opts.udp_bind("127.0.0.1:0").unwrap();
    let u2 = opts.udp_bind("127.0.0.1:0").unwrap();
    u1.send_to(b"udp", u2.local_addr().unwrap()).unwrap();
    assert_eq!(u2.recv(&mut b3).unwrap(), 3);
    // Unix stream, path form
    let path = temp_path("s01");
    let ul = opts.unix_listen(&UnixAddr::Path(path.clone())).unwrap();
    let mut uc = opts.unix_connect(&UnixAddr::Path(path.clone())).unwrap();
    let (mut us, _) = ul.accept().unwrap();
    uc.write_all(b"uds").unwrap();
    us.read_exact(&mut b3).unwrap();
    // Unix seqpacket: message boundaries kept
    let sa = abstract_addr("s01sp");
    let sl = opts.seqpacket_listen(&sa).unwrap();
    let sc = opts.seqpacket_connect(&sa).unwrap();
    let ss = sl.accept().unwrap();
    sc.send(b"one").unwrap();
    sc.send(b"").unwrap();
    sc.send(b"three").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(ss.recv(&mut buf).unwrap(), 3);
    assert_eq!(ss.recv(&mut buf).unwrap(), 0);
    assert!(matches!(ss.recv(&mut [0u8; 2]), Err(Error::InsufficientBuffer { needed: 5 })), "kept queued");
    assert_eq!(ss.recv(&mut buf).unwrap(), 5);
    // Unix datagram
    let da = abstract_addr("s01dg");
    let d1 = opts.unix_datagram(Some(&da)).unwrap();
    let d2 = opts.unix_datagram(None).unwrap();
    let UnixAddr::Abstract(name) = &da else { unreachable!() };
    use std::os::linux::net::SocketAddrExt;
    d2.send_to_addr(b"dgram", &std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap()).unwrap();
    assert_eq!(d1.recv(&mut buf).unwrap(), 5);
    let fds: Vec<(&str, std::os::fd::BorrowedFd<'_>)> = vec![
        ("tcp listener", l.as_fd()),
        ("tcp stream", c.as_fd()),
        ("tcp accepted", s.as_fd()),
        ("udp", u1.as_fd()),
        ("unix listener", ul.as_fd()),
        ("unix stream", uc.as_fd()),
        ("unix accepted", us.as_fd()),
        ("seqpacket listener", sl.as_fd()),
        ("seqpacket", sc.as_fd()),
        ("seqpacket accepted", ss.as_fd()),
        ("datagram", d1.as_fd()),
        ("datagram unbound", d2.as_fd()),
    ];
    for (what, fd) in fds {
        assert!(is_cloexec(fd), "{what} is not close-on-exec");
    }
    drop(ul);
    let _ = std::fs::remove_file(path);
}

fn in_use(r: switchboard::Result<impl Sized>) -> bool {
    matches!(r, Err(Error::Io(e)) if e.kind() == ErrorKind::AddrInUse)
}

#[test]
fn socket_s02_a_bound_port_is_exclusive_unless_both_sides_opt_in() {
    let exclusive = SocketOptions::new();
    let sharing = SocketOptions::new().reuse_port(true);
    let l = exclusive.tcp_listen("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    assert!(in_use(exclusive.tcp_listen(("127.0.0.1", port))));
    assert!(in_use(sharing.tcp_listen(("127.0.0.1", port))), "reuse_port cannot hijack an exclusive port");
    assert!(TcpListener::bind(("127.0.0.1", port)).is_err(), "nor can std's SO_REUSEADDR listener");
    let u = exclusive.udp_bind("127.0.0.1:0").unwrap();
    let uport = u.local_addr().unwrap().port();
    assert!(in_use(sharing.udp_bind(("127.0.0.1", uport))));
    let hijack = switchboard_sys::net::udp_bind_shared(std::net::SocketAddrV4::new([127, 0, 0, 1].into(), uport));
    assert!(hijack.is_err(), "SO_REUSEADDR cannot join an exclusive UDP port");
    // Both opting in share.
    let a = sharing.tcp_listen("127.0.0.1:0").unwrap();
    let shared_port = a.local_addr().unwrap().port();
    assert!(sharing.tcp_listen(("127.0.0.1", shared_port)).is_ok());
    assert!(in_use(exclusive.tcp_listen(("127.0.0.1", shared_port))));
}

const S03: &str = "socket_s03_a_socket_shared_with_another_process_serves_both_until_the_last_close";

#[test]
fn socket_s03_a_socket_shared_with_another_process_serves_both_until_the_last_close() {
    if let Some(_r) = role() {
        let a = util::args();
        let conn = Connection::connect(a[0].as_bytes(), None).unwrap();
        let listener: TcpListener = receive_socket(&conn, Some(Duration::from_secs(60))).unwrap();
        // The other way: take the parent's UDP socket by pid + handle.
        let udp: UdpSocket = take_socket(a[1].parse().unwrap(), HandleValue(a[2].parse().unwrap())).unwrap();
        udp.send_to(b"taken", &a[3]).unwrap();
        say("got it");
        // Accept only once the parent has taken its own connection: two
        // processes blocked in accept on one socket race for each arrival.
        assert_eq!(hear(), "go");
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"child").unwrap();
        hold("served");
    }
    let _w = Watchdog::test();
    let rendezvous = unique("s03");
    let l = Listener::bind(rendezvous.as_bytes()).unwrap();
    let tcp = SocketOptions::new().tcp_listen("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let udp = SocketOptions::new().udp_bind("127.0.0.1:0").unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (pid, handle) = (std::process::id().to_string(), handle_of(&udp).0.to_string());
    let mut peer = Peer::spawn(S03, "child", &[&rendezvous, &pid, &handle, &sink.local_addr().unwrap().to_string()]);
    switchboard_sys::socket::wait_readable(l.as_fd(), None).unwrap();
    let conn = l.accept().unwrap().unwrap();
    send_socket(&conn, &tcp).unwrap();
    peer.expect("got it");
    let mut buf = [0u8; 8];
    sink.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(sink.recv(&mut buf).unwrap(), 5, "the child sent from the socket it took");
    // Both processes accept on the one listener: the parent first, then it
    // closes its copy and the child serves the next connection.
    let mut first = TcpStream::connect(addr).unwrap();
    let (mut mine, _) = tcp.accept().unwrap();
    mine.write_all(b"parent").unwrap();
    let mut got = [0u8; 6];
    first.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"parent");
    drop(tcp);
    peer.tell("go");
    let mut second = TcpStream::connect(addr).unwrap();
    let mut got = [0u8; 5];
    second.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"child");
    peer.expect("served");
    peer.dismiss();
    // The last holder is gone: the kernel destroyed the listener.
    assert_eq!(TcpStream::connect(addr).unwrap_err().kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn socket_s03_a_descriptor_of_the_wrong_kind_is_a_typed_error() {
    let (a, b) = Connection::pair().unwrap();
    let udp = SocketOptions::new().udp_bind("127.0.0.1:0").unwrap();
    send_socket(&a, &udp).unwrap();
    let e = receive_socket::<TcpListener>(&b, Some(Duration::from_secs(5))).unwrap_err();
    assert!(matches!(e, Error::InvalidHandle { wanted: "TCP listener", .. }), "{e:?}");
    let memfd = switchboard_sys::memfd::create_sealed("not-a-socket", 4096).unwrap();
    send_socket(&a, &memfd).unwrap();
    let e = receive_socket::<UdpSocket>(&b, Some(Duration::from_secs(5))).unwrap_err();
    assert!(matches!(e, Error::InvalidHandle { found: "a descriptor that is not a socket", .. }), "{e:?}");
    a.send(b"junk", &[]).unwrap();
    assert!(matches!(receive_socket::<UdpSocket>(&b, Some(Duration::from_secs(5))), Err(Error::Malformed(_))));
    let e = take_socket::<TcpStream>(std::process::id(), HandleValue(999_999)).unwrap_err();
    assert!(matches!(e, Error::InvalidHandle { found: "no such handle", .. }), "{e:?}");
}

const S04: &str = "socket_s04_unix_peers_are_identified_and_a_stale_socket_file_is_replaced";

#[test]
fn socket_s04_unix_peers_are_identified_and_a_stale_socket_file_is_replaced() {
    if let Some(r) = role() {
        let a = util::args();
        let addr = if a[0] == "path" {
            UnixAddr::Path(a[1].clone().into())
        } else {
            UnixAddr::Abstract(a[1].clone().into_bytes())
        };
        if r == "connect" {
            let mut s = SocketOptions::new().unix_connect(&addr).unwrap();
            s.write_all(b"x").unwrap();
            hear();
            done();
        }
        let _l = SocketOptions::new().unix_listen(&addr).unwrap();
        hold("listening");
    }
    let _w = Watchdog::test();
    let path = temp_path("s04");
    let path_s = path.to_str().unwrap().to_owned();
    let name = unique("s04");
    for (form, addr, text) in [
        ("path", UnixAddr::Path(path.clone()), path_s.clone()),
        ("abstract", UnixAddr::Abstract(name.clone().into_bytes()), name.clone()),
    ] {
        let l = SocketOptions::new().unix_listen(&addr).unwrap();
        let mut peer = Peer::spawn(S04, "connect", &[form, &text]);
        let (mut s, _) = l.accept().unwrap();
        s.read_exact(&mut [0u8; 1]).unwrap();
        let cred = peer_credentials(&s).unwrap();
        assert_eq!(cred.pid, peer.pid, "{form}");
        assert_eq!((cred.uid, cred.gid), (switchboard_sys::process::uid(), switchboard_sys::process::gid()));
        peer.tell("bye");
        peer.finish();
    }
    let _ = std::fs::remove_file(&path);
    // A live listener keeps its path; a killed one's leftover file is replaced.
    let mut peer = Peer::spawn(S04, "listen", &["path", &path_s]);
    peer.expect("listening");
    assert!(in_use(SocketOptions::new().unix_listen(&UnixAddr::Path(path.clone()))));
    peer.kill9();
    assert!(path.exists(), "the dead listener's socket file is still there");
    let l = SocketOptions::new().unix_listen(&UnixAddr::Path(path.clone())).unwrap();
    let _c = UnixStream::connect(&path).unwrap();
    drop(l);
    std::fs::remove_file(&path).unwrap();
    // A regular file in the way is not a stale socket: it is left alone.
    std::fs::write(&path, b"data").unwrap();
    assert!(SocketOptions::new().unix_listen(&UnixAddr::Path(path.clone())).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn socket_s05_frames_have_a_maximum_and_an_oversized_one_is_an_error_not_an_allocation() {
    let (a, mut raw) = UnixStream::pair().unwrap();
    let (c, d) = UnixStream::pair().unwrap();
    let mut tx = Framed::new(c, 1024);
    let mut rx = Framed::new(d, 1024);
    tx.send(b"first").unwrap();
    tx.send(&[]).unwrap();
    tx.send(&[9u8; 1024]).unwrap();
    assert!(matches!(tx.send(&[0u8; 1025]), Err(Error::InvalidParameter(_))), "nothing sent");
    let mut buf = Vec::new();
    for want in [&b"first"[..], b"", &[9u8; 1024]] {
        rx.recv(&mut buf).unwrap();
        assert_eq!(buf, want);
    }
    // A frame that arrives a byte at a time, across timeouts, comes out whole.
    let mut slow = Framed::new(a, 1024);
    let frame = [&7u32.to_le_bytes()[..], b"chunked"].concat();
    for byte in &frame {
        let t = Instant::now() + Duration::from_millis(1);
        assert!(matches!(slow.recv_deadline(&mut buf, t), Err(Error::Timeout)));
        raw.write_all(&[*byte]).unwrap();
    }
    slow.recv(&mut buf).unwrap();
    assert_eq!(buf, b"chunked");
    // A large frame (read straight into place) arriving in pieces across
    // timeouts, with the next frame right behind it in the same write.
    let (e, mut raw2) = UnixStream::pair().unwrap();
    let mut big_rx = Framed::new(e, 1 << 20);
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let stream = [&(big.len() as u32).to_le_bytes()[..], &big, &3u32.to_le_bytes(), b"end"].concat();
    for piece in stream.chunks(30_000) {
        let t = Instant::now() + Duration::from_millis(1);
        assert!(matches!(big_rx.recv_deadline(&mut buf, t), Err(Error::Timeout)));
        raw2.write_all(piece).unwrap();
    }
    big_rx.recv(&mut buf).unwrap();
    assert!(buf == big, "the large frame came out whole");
    big_rx.recv(&mut buf).unwrap();
    assert_eq!(buf, b"end", "and the frame behind it");
    // A hostile length: an error at once, no allocation of 4 GiB.
    raw.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let mut small = Vec::with_capacity(16);
    let e = slow.recv(&mut small).unwrap_err();
    assert!(matches!(&e, Error::Malformed(m) if m.contains("4294967295")), "{e:?}");
    assert!(small.capacity() < 1 << 20);
    assert!(matches!(slow.recv(&mut small), Err(Error::Malformed(_))), "the stream stays poisoned");
}

#[test]
fn socket_s06_connect_read_and_write_time_out_and_a_stalled_reader_never_hangs_the_writer() {
    let _w = Watchdog::test();
    let quick = Some(Duration::from_millis(200));
    // Read: nothing arrives.
    let addr = abstract_addr("s06");
    let opts = SocketOptions::new().read_timeout(quick).write_timeout(quick).connect_timeout(quick);
    let l = opts.unix_listen(&addr).unwrap();
    let mut c = opts.unix_connect(&addr).unwrap();
    let (_s, _) = l.accept().unwrap();
    let e = c.read(&mut [0u8; 8]).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{e:?}");
    // Write: the peer never reads; the writer gets an error, not a hang.
    let chunk = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let e = loop {
        if let Err(e) = c.write(&chunk) {
            break e;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the writer was never stopped");
    };
    assert!(matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{e:?}");
    // Frames report the same as Timeout.
    let mut framed = Framed::new(c, usize::MAX);
    assert!(matches!(framed.send(&chunk), Err(Error::Timeout)));
    // Seqpacket read timeout.
    let sa = abstract_addr("s06sp");
    let sl = opts.seqpacket_listen(&sa).unwrap();
    let sc: SeqpacketConn = opts.seqpacket_connect(&sa).unwrap();
    let _ss = sl.accept().unwrap();
    assert!(matches!(sc.recv(&mut [0u8; 8]), Err(Error::Timeout)));
    // Connect: a listener that never accepts, its backlog full.
    let full = abstract_addr("s06full");
    let _never = opts.unix_listen(&full).unwrap();
    let mut queued: Vec<UnixStream> = Vec::new();
    let e = loop {
        match opts.unix_connect(&full) {
            Ok(s) => queued.push(s),
            Err(e) => break e,
        }
        assert!(queued.len() < 10_000, "the backlog never filled");
    };
    assert!(matches!(e, Error::Timeout), "{e:?}");
    // A listener gone: NotFound, at once.
    drop(_never);
    assert!(matches!(opts.unix_connect(&full), Err(Error::NotFound(_))));
    // TCP connect to a closed port: refused, typed.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    assert!(matches!(opts.tcp_connect(("127.0.0.1", port)), Err(Error::NotFound(_))));
}
