//! The link contract (see `switchboard::link`), checked by one conformance
//! suite over every link, plus cross-process crash tests.

mod util;

use std::time::{Duration, Instant};

use switchboard::link::{Link, ShmLink, ShmLinkListener, ShmLinkOptions, StreamLink, StreamLinkListener, WaitMode};
use switchboard::Error;
use util::{role, say, unique, Peer, Watchdog};

type Boxed = Box<dyn Link + Send>;
/// One conformance check: it gets two connected ends.
type Case = fn(Boxed, Boxed);
const LONG: Duration = Duration::from_secs(60);

fn recv(l: &mut Boxed) -> Vec<u8> {
    let mut buf = Vec::new();
    l.recv_timeout(&mut buf, LONG).unwrap();
    buf
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Every size arrives whole, both ways, through an echoing peer.
fn sizes_round_trip(mut a: Boxed, mut b: Boxed) {
    let sizes = [0, 1, 7, 8, 63, 64, 4095, 4096, 65_536, 1 << 20, 3 << 20];
    let echo = std::thread::spawn(move || {
        for _ in sizes {
            let m = recv(&mut b);
            b.send(&m).unwrap();
        }
    });
    for (i, len) in sizes.into_iter().enumerate() {
        let msg = pattern(len, i as u8);
        a.send(&msg).unwrap();
        assert_eq!(recv(&mut a), msg, "size {len}");
    }
    echo.join().unwrap();
}

/// Many messages from a concurrent sender arrive in order, exactly once.
fn order_is_kept(a: Boxed, mut b: Boxed) {
    let mut a = a;
    let sender = std::thread::spawn(move || {
        for i in 0..20_000u32 {
            a.send(&i.to_le_bytes().repeat((i % 5) as usize + 1)).unwrap();
        }
        a
    });
    for i in 0..20_000u32 {
        assert_eq!(recv(&mut b), i.to_le_bytes().repeat((i % 5) as usize + 1));
    }
    let _a = sender.join().unwrap();
}

/// A timed-out receive loses nothing.
fn timeout_loses_nothing(mut a: Boxed, mut b: Boxed) {
    let mut buf = Vec::new();
    assert!(matches!(b.recv_timeout(&mut buf, Duration::from_millis(5)), Err(Error::Timeout)));
    assert!(matches!(b.try_recv(&mut buf), Err(Error::Timeout)));
    a.send(b"late").unwrap();
    assert_eq!(recv(&mut b), b"late");
}

/// Oversized sends are refused and the link goes on.
fn oversize_is_refused(mut a: Boxed, mut b: Boxed) {
    let too_big = vec![0u8; a.max_message() + 1];
    assert!(matches!(a.send(&too_big), Err(Error::InvalidParameter(_))));
    a.send(b"still fine").unwrap();
    assert_eq!(recv(&mut b), b"still fine");
}

/// A closed peer's messages are delivered, then BrokenPipe, never a hang.
fn peer_close_is_broken_pipe_after_its_messages(mut a: Boxed, mut b: Boxed) {
    for i in 0..3u8 {
        a.send(&[i; 100]).unwrap();
    }
    drop(a);
    for i in 0..3u8 {
        assert_eq!(recv(&mut b), [i; 100]);
    }
    let mut buf = Vec::new();
    assert!(matches!(b.recv_timeout(&mut buf, LONG), Err(Error::BrokenPipe)));
    let sent = (0..64).try_for_each(|_| b.send(&[0u8; 65536]));
    assert!(matches!(sent, Err(Error::BrokenPipe)), "sending to a closed peer fails: {sent:?}");
}

fn conformance(make: &dyn Fn() -> (Boxed, Boxed)) {
    let _w = Watchdog::test();
    let cases: [(&str, Case); 5] = [
        ("sizes_round_trip", sizes_round_trip),
        ("order_is_kept", order_is_kept),
        ("timeout_loses_nothing", timeout_loses_nothing),
        ("oversize_is_refused", oversize_is_refused),
        ("peer_close_is_broken_pipe_after_its_messages", peer_close_is_broken_pipe_after_its_messages),
    ];
    for (name, case) in cases {
        eprintln!("conformance: {name}");
        let (a, b) = make();
        case(a, b);
    }
}

fn shm_pair(opts: ShmLinkOptions) -> (Boxed, Boxed) {
    let (a, b) = ShmLink::pair(opts).unwrap();
    (Box::new(a), Box::new(b))
}

#[test]
fn link_conformance_shm_default() {
    conformance(&|| shm_pair(ShmLinkOptions::default()));
}

#[test]
fn link_conformance_shm_small_ring_busy_poll_chunks_and_wraps() {
    let opts = ShmLinkOptions { capacity: 4096, wait: WaitMode::BusyPoll, max_message: 8 << 20 };
    conformance(&|| shm_pair(opts));
}

#[test]
fn link_conformance_shm_blocking() {
    let opts = ShmLinkOptions { capacity: 64 * 1024, wait: WaitMode::Blocking, ..Default::default() };
    conformance(&|| shm_pair(opts));
}

#[test]
fn link_conformance_shm_over_a_named_listener() {
    conformance(&|| {
        let name = unique("link");
        let listener = ShmLinkListener::bind(&name).unwrap();
        let t = std::thread::spawn(move || listener.accept(Some(LONG)).unwrap());
        let a = ShmLink::connect(&name, ShmLinkOptions::default()).unwrap();
        (Box::new(a), Box::new(t.join().unwrap()))
    });
}

#[test]
fn link_conformance_stream_unix() {
    conformance(&|| {
        let (a, b) = StreamLink::pair().unwrap();
        (Box::new(a.with_max_message(8 << 20)), Box::new(b.with_max_message(8 << 20)))
    });
}

#[test]
fn link_conformance_stream_tcp() {
    conformance(&|| {
        let listener = StreamLinkListener::bind_tcp("127.0.0.1:0").unwrap();
        let port = listener.port().unwrap();
        let t = std::thread::spawn(move || listener.accept().unwrap());
        let a = StreamLink::connect_tcp(("127.0.0.1", port)).unwrap();
        (Box::new(a), Box::new(t.join().unwrap()))
    });
}

#[test]
fn link_conformance_message_mode_named_pipe() {
    use switchboard::pipe::named::{PipeClient, PipeOptions, PipeType, ReadMode};
    conformance(&|| {
        let name = unique("pipelink");
        let opts = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message);
        let server = opts.create(&name).unwrap();
        let client = PipeClient::open(&name).unwrap();
        server.connect().unwrap();
        let max = 8 << 20;
        let a = client.into_link().unwrap().with_max_message(max);
        let b = server.into_link().unwrap().with_max_message(max);
        (Box::new(a), Box::new(b))
    });
}

#[test]
fn link_pipe_a_message_over_the_maximum_is_malformed_and_the_next_one_arrives() {
    use switchboard::pipe::named::{PipeClient, PipeOptions, PipeType, ReadMode};
    let _w = Watchdog::test();
    let name = unique("pipelink-max");
    let opts = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message);
    let server = opts.create(&name).unwrap();
    let mut a = PipeClient::open(&name).unwrap().into_link().unwrap();
    server.connect().unwrap();
    let mut b = server.into_link().unwrap().with_max_message(1024);
    // Larger than the pipe's buffer: the sender waits for the reader.
    let sender = std::thread::spawn(move || {
        a.send(&[7u8; 300_000]).unwrap();
        a.send(b"next").unwrap();
        a
    });
    let mut buf = Vec::new();
    assert!(matches!(b.recv_timeout(&mut buf, LONG), Err(Error::Malformed(_))));
    b.recv_timeout(&mut buf, LONG).unwrap();
    assert_eq!(buf, b"next");
    let _a = sender.join().unwrap();
    assert!(matches!(PipeClient::open(&unique("nope")).map(|c| c.into_link()), Err(Error::NotFound(_))));
}

#[test]
fn link_stream_frame_over_the_maximum_is_malformed_not_a_huge_allocation() {
    let (a, b) = StreamLink::pair().unwrap();
    let mut a = a.with_max_message(u32::MAX as usize);
    let mut b = b.with_max_message(1024);
    a.send(&[0u8; 2048]).unwrap();
    let mut buf = Vec::new();
    assert!(matches!(b.recv_timeout(&mut buf, LONG), Err(Error::Malformed(_))));
    assert!(matches!(b.recv_timeout(&mut buf, LONG), Err(Error::Malformed(_))), "stays poisoned");
}

#[test]
fn link_unknown_name_is_not_found() {
    let err = ShmLink::connect(&unique("nobody"), ShmLinkOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    assert!(matches!(StreamLink::connect_unix(&unique("nobody")), Err(Error::NotFound(_))));
}

/// Peer role: connect, send `count` numbered messages, say "sent", then
/// block forever (the parent kills us).
fn send_then_wait_to_be_killed(mut link: Box<dyn Link>, count: u32) -> ! {
    for i in 0..count {
        link.send(&i.to_le_bytes()).unwrap();
    }
    say("sent");
    let mut buf = Vec::new();
    let _ = link.recv(&mut buf);
    util::done()
}

fn killed_peer(test: &str, transport: &str, mut accept: impl FnMut() -> Boxed, arg: &str) {
    let _w = Watchdog::test();
    let mut peer = Peer::spawn(test, transport, &[arg]);
    let mut link = accept();
    peer.expect("sent");
    // Blocked in recv while the peer dies, after everything it sent.
    for i in 0..1000u32 {
        assert_eq!(recv(&mut link), i.to_le_bytes(), "message {i} lost");
    }
    let started = Instant::now();
    let waiter = std::thread::spawn(move || {
        let mut buf = Vec::new();
        link.recv_timeout(&mut buf, LONG)
    });
    peer.kill9();
    let got = waiter.join().unwrap();
    assert!(matches!(got, Err(Error::BrokenPipe)), "{got:?} after {:?}", started.elapsed());
}

#[test]
fn link_shm_peer_killed_mid_conversation_loses_nothing_and_hangs_nothing() {
    if role().is_some() {
        let link = ShmLink::connect(&util::args()[0], ShmLinkOptions::default()).unwrap();
        send_then_wait_to_be_killed(Box::new(link), 1000);
    }
    let name = unique("killed");
    let listener = ShmLinkListener::bind(&name).unwrap();
    killed_peer(
        "link_shm_peer_killed_mid_conversation_loses_nothing_and_hangs_nothing",
        "shm",
        || Box::new(listener.accept(Some(LONG)).unwrap()),
        &name,
    );
}

#[test]
fn link_tcp_peer_killed_mid_conversation_loses_nothing_and_hangs_nothing() {
    if role().is_some() {
        let port: u16 = util::args()[0].parse().unwrap();
        let link = StreamLink::connect_tcp(("127.0.0.1", port)).unwrap();
        send_then_wait_to_be_killed(Box::new(link), 1000);
    }
    let listener = StreamLinkListener::bind_tcp("127.0.0.1:0").unwrap();
    let port = listener.port().unwrap().to_string();
    killed_peer(
        "link_tcp_peer_killed_mid_conversation_loses_nothing_and_hangs_nothing",
        "tcp",
        || Box::new(listener.accept().unwrap()),
        &port,
    );
}

#[test]
fn names_s10_listing_ignores_link_listeners_and_leaves_them_untouched() {
    let _w = Watchdog::test();
    let name = unique("listed-link");
    let listener = ShmLinkListener::bind(&name).unwrap();
    assert!(!switchboard::namespace::list().iter().any(|e| e.name == name), "a link is not a kernel object");
    // Listing must not have left a connection in the listener's backlog.
    assert!(matches!(listener.accept(Some(Duration::from_millis(20))), Err(Error::Timeout)));
    let t = std::thread::spawn(move || listener.accept(Some(LONG)).unwrap());
    let mut a = ShmLink::connect(&name, ShmLinkOptions::default()).unwrap();
    let mut b = t.join().unwrap();
    a.send(b"after ls").unwrap();
    let mut buf = Vec::new();
    b.recv_timeout(&mut buf, LONG).unwrap();
    assert_eq!(buf, b"after ls");
}

/// Doorbells: one poll loop waits on two links (to two peer processes) and
/// a socket at once, receiving only with `try_recv`; a killed peer's
/// doorbell rings too, and its link then says BrokenPipe.
#[test]
fn link_doorbell_one_poll_loop_waits_on_two_links_and_a_socket() {
    use std::os::unix::net::UnixDatagram;
    use switchboard_sys::AsFd;
    let _w = Watchdog::test();
    let test = "link_doorbell_one_poll_loop_waits_on_two_links_and_a_socket";
    if role().is_some() {
        let a = util::args();
        let mut link = ShmLink::connect(&a[0], ShmLinkOptions::default()).unwrap();
        for i in 0..100u32 {
            link.send(&[a[1].as_bytes(), &i.to_le_bytes()].concat()).unwrap();
        }
        util::hold("sent");
    }
    let name = unique("doorbell");
    let listener = ShmLinkListener::bind(&name).unwrap();
    let mut peers = [Peer::spawn(test, "sender", &[&name, "a"]), Peer::spawn(test, "sender", &[&name, "b"])];
    let mut links = [listener.accept(Some(LONG)).unwrap(), listener.accept(Some(LONG)).unwrap()];
    let (sock, other) = UnixDatagram::pair().unwrap();
    let poker = std::thread::spawn(move || other.send(b"socket").unwrap());
    let (mut got, mut socket_seen) = (Vec::new(), false);
    // Which link is peer a's: they connect in either order.
    let mut from_a = [false, false];
    let deadline = Instant::now() + LONG;
    while got.len() < 200 || !socket_seen {
        assert!(Instant::now() < deadline, "the loop did not get everything: {} messages", got.len());
        let ring_now = links.iter_mut().map(|l| l.arm_doorbell()).collect::<Vec<_>>();
        if !ring_now.iter().any(|r| *r) {
            let fds = [links[0].doorbell().unwrap(), links[1].doorbell().unwrap(), sock.as_fd()];
            switchboard_sys::socket::poll_readable(&fds, Some(LONG)).unwrap();
        }
        for (i, link) in links.iter_mut().enumerate() {
            let mut buf = Vec::new();
            while link.try_recv(&mut buf).is_ok() {
                from_a[i] = buf[0] == b'a';
                got.push(buf.clone());
            }
        }
        let mut b = [0u8; 16];
        if let Ok(n) = sock.recv(&mut b).map_err(drop).and_then(|n| if n > 0 { Ok(n) } else { Err(()) }) {
            assert_eq!(&b[..n], b"socket");
            socket_seen = true;
            sock.set_nonblocking(true).unwrap();
        }
    }
    poker.join().unwrap();
    for tag in [b'a', b'b'] {
        let mine: Vec<_> =
            got.iter().filter(|m| m[0] == tag).map(|m| u32::from_le_bytes(m[1..5].try_into().unwrap())).collect();
        assert_eq!(mine, (0..100).collect::<Vec<_>>(), "peer {} in order, exactly once", tag as char);
    }
    // A killed peer rings the doorbell (hang-up) and the link says so.
    let a = if from_a[0] { 0 } else { 1 };
    peers[0].expect("sent");
    peers[0].kill9();
    if !links[a].arm_doorbell() {
        let fds = [links[a].doorbell().unwrap()];
        assert_eq!(switchboard_sys::socket::poll_readable(&fds, Some(LONG)).unwrap(), [true]);
    }
    let mut buf = Vec::new();
    assert!(matches!(links[a].try_recv(&mut buf), Err(Error::BrokenPipe)));
    peers[1].expect("sent");
    peers[1].dismiss();
}

/// Regression: a connection waiting for `accept` whose connector had
/// already sent its segment was taken for hung up (it was readable) and
/// dropped when the next connector arrived.
#[test]
fn link_connectors_waiting_for_accept_are_all_accepted() {
    let _w = Watchdog::test();
    let name = unique("waiting");
    let listener = ShmLinkListener::bind(&name).unwrap();
    let mut connectors: Vec<ShmLink> =
        (0..3).map(|_| ShmLink::connect(&name, ShmLinkOptions::default()).unwrap()).collect();
    for (i, c) in connectors.iter_mut().enumerate() {
        c.send(&[i as u8]).unwrap();
    }
    let mut seen: Vec<u8> = (0..3).map(|_| recv_one(&mut listener.accept(Some(LONG)).unwrap())).collect();
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2]);
}

fn recv_one(link: &mut ShmLink) -> u8 {
    let mut buf = Vec::new();
    link.recv_timeout(&mut buf, LONG).unwrap();
    buf[0]
}

/// Zero-copy samples: another process sends loans (16 MiB, larger than
/// its ring; and empty) between copied messages. They arrive in order,
/// read in place (`is_shared`), and a plain receive copies a loan out like
/// any message.
#[test]
fn link_shm_loaned_samples_cross_processes_in_order_with_copied_messages() {
    const BIG: usize = 16 << 20;
    if role().is_some() {
        let mut link = ShmLink::connect(&util::args()[0], ShmLinkOptions::default()).unwrap();
        link.send(b"first").unwrap();
        let mut loan = link.loan(BIG).unwrap();
        loan[..4].copy_from_slice(b"head");
        loan[BIG - 4..].copy_from_slice(b"tail");
        link.send_loan(loan).unwrap();
        link.send(b"between").unwrap();
        link.send_loan(link.loan(0).unwrap()).unwrap();
        let mut copied = link.loan(3).unwrap();
        copied.copy_from_slice(b"abc");
        link.send_loan(copied).unwrap();
        util::done()
    }
    let _w = Watchdog::test();
    let name = unique("loans");
    let listener = ShmLinkListener::bind(&name).unwrap();
    let mut peer =
        Peer::spawn("link_shm_loaned_samples_cross_processes_in_order_with_copied_messages", "loan", &[&name]);
    let mut link = listener.accept(Some(LONG)).unwrap();
    let first = link.recv_borrowed(LONG).unwrap();
    assert_eq!((&first[..], first.is_shared()), (&b"first"[..], false));
    let big = link.recv_borrowed(LONG).unwrap();
    assert!(big.is_shared(), "a loan is read where it was written");
    assert_eq!((big.len(), &big[..4], &big[BIG - 4..]), (BIG, &b"head"[..], &b"tail"[..]));
    assert!(big[4..BIG - 4].iter().all(|b| *b == 0), "the rest of a loan is zero-filled");
    assert_eq!(&link.recv_borrowed(LONG).unwrap()[..], b"between");
    let empty = link.recv_borrowed(LONG).unwrap();
    assert!(empty.is_shared() && empty.is_empty());
    let mut buf = Vec::new();
    link.recv_timeout(&mut buf, LONG).unwrap();
    assert_eq!(buf, b"abc", "a plain receive copies a loan out");
    peer.finish();
    // The sample outlives its sender, and the link then says BrokenPipe.
    assert_eq!(&big[BIG - 4..], b"tail");
    assert!(matches!(link.recv_borrowed(LONG), Err(Error::BrokenPipe)));
}

/// A sender killed with loans in flight: every loan it sent arrives
/// intact, then BrokenPipe; a sample kept across the kill stays readable.
#[test]
fn link_shm_peer_killed_with_loans_in_flight_loses_none_and_hangs_nothing() {
    if role().is_some() {
        let mut link = ShmLink::connect(&util::args()[0], ShmLinkOptions::default()).unwrap();
        // Fewer than the socket queues (~270 descriptors on this machine),
        // so the sender never waits for a receiver that waits for it.
        for i in 0..100u32 {
            let mut loan = link.loan(64 << 10).unwrap();
            loan[..4].copy_from_slice(&i.to_le_bytes());
            link.send_loan(loan).unwrap();
        }
        say("sent");
        let mut buf = Vec::new();
        let _ = link.recv(&mut buf);
        util::done()
    }
    let _w = Watchdog::test();
    let name = unique("loankill");
    let listener = ShmLinkListener::bind(&name).unwrap();
    let test = "link_shm_peer_killed_with_loans_in_flight_loses_none_and_hangs_nothing";
    let mut peer = Peer::spawn(test, "loan", &[&name]);
    let mut link = listener.accept(Some(LONG)).unwrap();
    peer.expect("sent");
    let kept = link.recv_borrowed(LONG).unwrap();
    peer.kill9();
    assert_eq!(kept[..4], 0u32.to_le_bytes());
    for i in 1..100u32 {
        let s = link.recv_borrowed(LONG).unwrap();
        assert_eq!((s.len(), &s[..4]), (64 << 10, &i.to_le_bytes()[..]), "loan {i}");
    }
    assert!(matches!(link.recv_borrowed(LONG), Err(Error::BrokenPipe)));
    assert_eq!(kept[..4], 0u32.to_le_bytes());
}
