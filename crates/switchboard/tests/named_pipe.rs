//! Spec 02, S09–S25 — named pipes, across processes where the statement
//! is about processes.

mod util;

use std::time::Duration;

use std::os::fd::AsFd;
use switchboard::pipe::named::{
    call_named_pipe, wait_named_pipe, PipeAccess, PipeClient, PipeOptions, PipeServer, PipeType, ReadMode,
};

use switchboard::{Connection, Error};
use switchboard_sys::socket::Listener;
use util::{done, hear, hold, role, say, unique, Peer, Watchdog};

fn message_pipe() -> PipeOptions {
    PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message)
}

fn message_client(name: &str) -> PipeClient {
    let c = PipeClient::open(name).unwrap();
    c.set_read_mode(ReadMode::Message).unwrap();
    c
}

#[test]
fn pipe_s09_options_are_accepted_and_shape_the_pipe() {
    let name = unique("s09");
    let server = PipeOptions::new()
        .access(PipeAccess::Inbound)
        .pipe_type(PipeType::Message)
        .read_mode(ReadMode::Message)
        .max_instances(3)
        .buffer(8192)
        .default_timeout(Duration::from_millis(200))
        .first_instance(true)
        .reject_remote(true)
        .create(&format!(r"\\.\pipe\{name}"))
        .unwrap();
    assert_eq!(server.name(), name.to_lowercase());
    let client = PipeClient::open(&name.to_uppercase()).expect("pipe names compare case-insensitively");
    assert_eq!(client.pipe_type(), PipeType::Message);
    client.write(b"in").unwrap();
    assert!(matches!(client.read(&mut [0u8; 4]), Err(Error::AccessDenied(_))), "inbound: the client only writes");
    assert!(matches!(server.write(b"out"), Err(Error::AccessDenied(_))), "inbound: the server only reads");
    let mut buf = [0u8; 4];
    assert_eq!(server.read(&mut buf).unwrap(), 2);
}

#[test]
fn pipe_s10_instances_share_the_name_with_limits_and_same_access() {
    let name = unique("s10");
    let opts = PipeOptions::new().max_instances(2);
    let a = opts.create(&name).unwrap();
    let _b = opts.create(&name).unwrap();
    assert!(matches!(opts.create(&name), Err(Error::PipeBusy)), "a third instance over max 2");
    assert_eq!(Error::PipeBusy.win32(), 231);
    assert!(matches!(opts.clone().first_instance(true).create(&name), Err(Error::AccessDenied(_))));
    assert!(matches!(opts.clone().access(PipeAccess::Outbound).create(&name), Err(Error::AccessDenied(_))));
    // Two clients, one per instance; a third finds both busy.
    let _c1 = PipeClient::open(&name).unwrap();
    let _c2 = PipeClient::open(&name).unwrap();
    assert!(matches!(PipeClient::open(&name), Err(Error::PipeBusy)));
    drop(a);
    let _c = opts.create(&name).expect("room again once an instance closed");
}

#[test]
fn pipe_s11_byte_type_with_message_read_mode_is_invalid() {
    let err = PipeOptions::new().read_mode(ReadMode::Message).create(&unique("s11")).unwrap_err();
    assert!(matches!(err, Error::InvalidParameter(_)), "{err:?}");
    assert_eq!(err.win32(), 87);
}

#[test]
fn pipe_s12_connect_blocks_until_a_client_and_reports_an_early_one() {
    let _w = Watchdog::test();
    if let Some(r) = role() {
        assert_eq!(r, "client");
        let c = PipeClient::open(&util::args()[0]).unwrap();
        c.write(b"late").unwrap();
        hold("connected");
    }
    let name = unique("s12");
    // A client that connected before connect() was called.
    let early = PipeServer::create(&name).unwrap();
    let c = PipeClient::open(&name).unwrap();
    assert!(early.connect().unwrap().already_connected);
    drop(c);
    // connect() waits for a client in another process.
    let second = PipeServer::create(&format!("{name}-2")).unwrap();
    assert!(matches!(second.connect_timeout(Some(Duration::from_millis(30))), Err(Error::Timeout)));
    let mut peer = Peer::spawn(
        "pipe_s12_connect_blocks_until_a_client_and_reports_an_early_one",
        "client",
        &[&format!("{name}-2")],
    );
    second.connect().unwrap();
    let mut buf = [0u8; 8];
    let n = second.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"late");
    peer.expect("connected");
    peer.dismiss();
}

#[test]
fn pipe_s13_open_not_found_and_busy() {
    let name = unique("s13");
    assert!(matches!(PipeClient::open(&name), Err(Error::NotFound(_))));
    let _server = PipeOptions::new().max_instances(1).create(&name).unwrap();
    let _first = PipeClient::open(&name).unwrap();
    let err = PipeClient::open(&name).unwrap_err();
    assert!(matches!(err, Error::PipeBusy), "{err:?}");
}

#[test]
fn pipe_s14_wait_named_pipe_waits_times_out_and_fails_fast_without_a_pipe() {
    let _w = Watchdog::test();
    let name = unique("s14");
    assert!(matches!(wait_named_pipe(&name, Some(Duration::from_secs(30))), Err(Error::NotFound(_))));
    let server = PipeOptions::new().default_timeout(Duration::from_millis(40)).create(&name).unwrap();
    wait_named_pipe(&name, None).expect("an instance listens");
    let _client = PipeClient::open(&name).unwrap();
    server.connect().unwrap();
    // Every instance busy: the server's default timeout, then SemTimeout.
    let err = wait_named_pipe(&name, None).unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    assert_eq!(err.win32(), 121);
    // A waiter is released when an instance starts listening.
    std::thread::scope(|s| {
        let waiter = s.spawn(|| wait_named_pipe(&name, Some(Duration::from_secs(60))));
        let _more = PipeServer::create(&name).unwrap();
        waiter.join().unwrap().expect("released by the new instance");
    });
}

/// S15 is about clients that opened: one that was granted the instance
/// and left without acknowledging it (it refused the server, or died
/// mid-open) does not hold the instance for the next client.
#[test]
fn pipe_s15_a_client_that_never_acknowledged_the_grant_does_not_hold_the_instance() {
    let name = unique("s15-unacked");
    let server = PipeOptions::new().max_instances(1).create(&name).unwrap();
    let deadline = Some(std::time::Instant::now() + Duration::from_secs(60));
    let raw = Connection::connect(format!("sb1/G/p/{}", name.to_lowercase()).as_bytes(), deadline).unwrap();
    let mut reply = [0u8; 4096];
    let got = raw.recv(&mut reply, deadline).unwrap();
    assert!(got.is_some_and(|(n, fds)| n > 0 && fds.len() == 3), "the server granted its one instance");
    drop(raw);
    let client = PipeClient::open(&name).expect("the unacknowledged grant does not hold the instance");
    server.connect().unwrap();
    client.write(b"x").unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(server.read(&mut buf).unwrap(), 1);
}

#[test]
fn pipe_s15_an_instance_whose_client_left_stays_busy_until_disconnect_and_connect() {
    let name = unique("s15");
    let server = PipeOptions::new().max_instances(1).create(&name).unwrap();
    drop(PipeClient::open(&name).unwrap());
    assert!(matches!(PipeClient::open(&name), Err(Error::PipeBusy)), "busy before the server connected");
    server.connect().unwrap();
    assert!(matches!(PipeClient::open(&name), Err(Error::PipeBusy)), "busy while not disconnected");
    server.disconnect().unwrap();
    assert!(matches!(PipeClient::open(&name), Err(Error::PipeBusy)), "not listening before connect()");
    std::thread::scope(|s| {
        let t = s.spawn(|| server.connect().unwrap());
        // connect() makes the instance listen: the open succeeds.
        let c = loop {
            match PipeClient::open(&name) {
                Ok(c) => break c,
                Err(Error::PipeBusy) => wait_named_pipe(&name, Some(Duration::from_secs(60))).unwrap(),
                Err(e) => panic!("{e:?}"),
            }
        };
        t.join().unwrap();
        c.write(b"again").unwrap();
    });
}

#[test]
fn pipe_s16_disconnect_drops_the_client_and_discards_unread_data() {
    let name = unique("s16");
    let server = PipeServer::create(&name).unwrap();
    let client = PipeClient::open(&name).unwrap();
    server.connect().unwrap();
    client.write(b"unread").unwrap();
    server.write(b"also unread").unwrap();
    server.disconnect().unwrap();
    assert!(matches!(server.read(&mut [0u8; 8]), Err(Error::PipeNotConnected)));
    assert!(matches!(server.write(b"x"), Err(Error::PipeNotConnected)));
    assert_eq!(Error::PipeNotConnected.win32(), 233);
    assert!(matches!(client.read(&mut [0u8; 16]), Err(Error::PipeNotConnected)), "discarded, not drained");
    assert!(matches!(client.write(b"x"), Err(Error::PipeNotConnected)));
}

#[test]
fn pipe_s17_each_write_is_one_message_zero_length_included() {
    let name = unique("s17");
    let server = message_pipe().create(&name).unwrap();
    let client = PipeClient::open(&name).unwrap();
    for m in [&b"one"[..], b"", b"three"] {
        client.write(m).unwrap();
    }
    let mut buf = [0u8; 16];
    for want in [&b"one"[..], b"", b"three"] {
        let n = server.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], want);
    }
}

#[test]
fn pipe_s18_partial_message_read_continues_in_another_process() {
    let _w = Watchdog::test();
    if role().is_some() {
        assert_eq!(hear(), "go");
        let via = Connection::connect(util::args()[0].as_bytes(), None).unwrap();
        let end = PipeClient::receive(&via, Some(Duration::from_secs(60))).unwrap();
        let mut buf = [0u8; 64];
        let n = end.read(&mut buf).unwrap();
        say(&String::from_utf8_lossy(&buf[..n]));
        done();
    }
    let name = unique("s18");
    let server = message_pipe().create(&name).unwrap();
    let client = message_client(&name);
    server.connect().unwrap();
    let long: Vec<u8> = b"0123456789abcdefghij".to_vec();
    server.write(&long).unwrap();
    server.write(b"next").unwrap();
    // This process reads the first 5 bytes: MoreData, the rest stays.
    let mut small = [0u8; 5];
    let err = client.read(&mut small).unwrap_err();
    assert!(matches!(err, Error::MoreData { received: 5 }), "{err:?}");
    assert_eq!(err.win32(), 234);
    assert_eq!(&small, b"01234");
    // A thread of this process continues the same message…
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut five = [0u8; 5];
            assert!(matches!(client.read(&mut five), Err(Error::MoreData { received: 5 })));
            assert_eq!(&five, b"56789");
        });
    });
    // …and another process holding the same end finishes it.
    let addr = format!("sb1-test/{}", unique("s18-via"));
    let listener = Listener::bind(addr.as_bytes()).unwrap();
    let mut peer = Peer::spawn("pipe_s18_partial_message_read_continues_in_another_process", "reader", &[&addr]);
    peer.tell("go");
    switchboard_sys::socket::wait_readable(listener.as_fd(), None).unwrap();
    let via = listener.accept().unwrap().expect("the peer connected");
    client.send(&via).unwrap();
    assert_eq!(peer.next(), "abcdefghij");
    peer.finish();
    let mut buf = [0u8; 8];
    let n = client.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"next", "the next message is whole");
}

const S18_TORN: &str = "pipe_s18_a_holder_killed_mid_message_leaves_a_torn_message_the_next_writer_ends";

#[test]
fn pipe_s18_a_holder_killed_mid_message_leaves_a_torn_message_the_next_writer_ends() {
    let _w = Watchdog::test();
    if role().is_some() {
        let via = Connection::connect(util::args()[0].as_bytes(), None).unwrap();
        let end = PipeClient::receive(&via, Some(Duration::from_secs(60))).unwrap();
        say("writing");
        // Far more than the 4 KiB buffer: this blocks between chunks until killed.
        end.write(&vec![b'T'; 1 << 20]).unwrap();
        unreachable!("the server never reads this whole message");
    }
    let name = unique("s18torn");
    let server = message_pipe().buffer(4096).create(&name).unwrap();
    let client = message_client(&name);
    server.connect().unwrap();
    let addr = format!("sb1-test/{}", unique("s18torn-via"));
    let listener = Listener::bind(addr.as_bytes()).unwrap();
    let mut peer = Peer::spawn(S18_TORN, "writer", &[&addr]);
    switchboard_sys::socket::wait_readable(listener.as_fd(), None).unwrap();
    let via = listener.accept().unwrap().expect("the peer connected");
    client.send(&via).unwrap();
    peer.expect("writing");
    util::eventually("the peer filled the buffer", || server.peek(&mut []).unwrap().available >= 2048);
    peer.kill9();
    let mut big = vec![0u8; 2 << 20];
    std::thread::scope(|s| {
        // This holder writes next: it takes the abandoned write lock and must
        // first end the torn message (its write waits for room meanwhile).
        let after = s.spawn(|| client.write(b"after"));
        let n = server.read(&mut big).unwrap();
        assert!(n > 0 && n < 1 << 20, "the torn message ends early ({n} bytes)");
        assert!(big[..n].iter().all(|b| *b == b'T'), "the torn message holds only its own bytes");
        let n = server.read(&mut big).unwrap();
        assert_eq!(&big[..n], b"after", "the next writer's message is whole and separate");
        after.join().unwrap().unwrap();
    });
}

#[test]
fn pipe_s19_byte_read_mode_runs_messages_together() {
    let name = unique("s19");
    let srv = message_pipe().create(&name).unwrap();
    let client = PipeClient::open(&name).unwrap();
    srv.write(b"ab").unwrap();
    srv.write(b"cd").unwrap();
    let mut buf = [0u8; 16];
    let n = client.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"abcd", "client ends start in byte read mode");
}

#[test]
fn pipe_s20_client_starts_in_byte_mode_and_message_mode_needs_a_message_pipe() {
    let bytes = unique("s20b");
    let _s = PipeServer::create(&bytes).unwrap();
    let c = PipeClient::open(&bytes).unwrap();
    assert!(matches!(c.set_read_mode(ReadMode::Message), Err(Error::InvalidParameter(_))));
    c.set_read_mode(ReadMode::Byte).unwrap();
    let msgs = unique("s20m");
    let s = message_pipe().create(&msgs).unwrap();
    let c = PipeClient::open(&msgs).unwrap();
    s.write(b"xy").unwrap();
    s.write(b"z").unwrap();
    c.set_read_mode(ReadMode::Message).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap(), 2, "one message per read once in message mode");
}

#[test]
fn pipe_s21_peek_never_consumes() {
    let name = unique("s21");
    let server = message_pipe().create(&name).unwrap();
    let client = message_client(&name);
    let mut buf = [0u8; 4];
    assert_eq!(client.peek(&mut buf).unwrap().available, 0);
    server.write(b"hello!").unwrap();
    server.write(b"xyz").unwrap();
    let p = client.peek(&mut buf).unwrap();
    // Left in the message: what a read would still find after the copy
    // (classic lpBytesLeftThisMessage).
    assert_eq!((p.copied, p.available, p.left_in_message), (4, 9, 2));
    assert_eq!(&buf, b"hell");
    assert!(matches!(client.read(&mut buf), Err(Error::MoreData { received: 4 })));
    let p = client.peek(&mut buf).unwrap();
    assert_eq!((p.copied, p.available, p.left_in_message), (2, 5, 0), "after a partial read");
    let mut rest = [0u8; 8];
    assert_eq!(client.read(&mut rest).unwrap(), 2);
    assert_eq!(&rest[..2], b"o!");
}

/// A peek answers at once while another thread's read of the same end
/// waits for data (as the classic peek does beside a pending read); the
/// read still gets the message. (Before issue 10 the peek waited behind the
/// reader's lock — and behind a lock word a hostile peer wrote, for good.)
#[test]
fn pipe_s21_peek_answers_at_once_beside_a_blocked_read() {
    let _w = Watchdog::test();
    let name = unique("s21b");
    let server = message_pipe().create(&name).unwrap();
    let client = message_client(&name);
    std::thread::scope(|s| {
        let reader = util::spawn_asleep(s, || {
            let mut buf = [0u8; 8];
            let n = server.read(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        let p = server.peek(&mut [0u8; 4]).unwrap();
        assert_eq!((p.copied, p.available), (0, 0), "nothing yet, and no wait for the read");
        client.write(b"late").unwrap();
        assert_eq!(reader.join().unwrap(), b"late");
    });
}

#[test]
fn pipe_s22_transact_and_call_named_pipe() {
    let _w = Watchdog::test();
    let name = unique("s22");
    let server = message_pipe().max_instances(1).create(&name).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..2 {
                server.connect().unwrap();
                let mut req = [0u8; 64];
                let n = server.read(&mut req).unwrap();
                let mut reply = b"re:".to_vec();
                reply.extend_from_slice(&req[..n]);
                server.write(&reply).unwrap();
                // Wait for the client to finish before dropping it.
                let _ = server.read(&mut req);
                server.disconnect().unwrap();
            }
        });
        let client = message_client(&name);
        let mut short = [0u8; 4];
        let err = client.transact(b"question", &mut short).unwrap_err();
        assert!(matches!(err, Error::MoreData { received: 4 }), "{err:?}");
        let mut rest = [0u8; 16];
        let n = client.read(&mut rest).unwrap();
        assert_eq!([&short[..], &rest[..n]].concat(), b"re:question");
        drop(client);
        let mut reply = [0u8; 32];
        let n = call_named_pipe(&name, b"call", &mut reply, Duration::from_secs(60)).unwrap();
        assert_eq!(&reply[..n], b"re:call");
    });
    let bytes = unique("s22b");
    let _s = PipeServer::create(&bytes).unwrap();
    let c = PipeClient::open(&bytes).unwrap();
    // Wine pipe.c: transact on a byte pipe is ERROR_BAD_PIPE.
    let err = c.transact(b"x", &mut [0u8; 4]).unwrap_err();
    assert!(matches!(err, Error::BadPipe(_)) && err.win32() == 230, "{err:?}");
}

/// Wine `pipe.c` (test_TransactNamedPipe): a transact while unread data
/// waits in the pipe fails with ERROR_PIPE_BUSY and sends nothing — the
/// stale data is not taken for the reply.
#[test]
fn pipe_s22_wine_test_transact_busy_with_unread_data_sends_nothing() {
    let _w = Watchdog::test();
    let name = unique("s22busy");
    let server = message_pipe().create(&name).unwrap();
    let client = message_client(&name);
    server.connect().unwrap();
    server.write(b"stale").unwrap();
    let err = client.transact(b"request", &mut [0u8; 16]).unwrap_err();
    assert!(matches!(err, Error::PipeBusy) && err.win32() == 231, "{err:?}");
    assert_eq!(server.peek(&mut []).unwrap().available, 0, "the request was not sent");
    let mut buf = [0u8; 16];
    let n = client.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"stale", "the unread data is still there");
}

/// Wine `pipe.c` (test_DisconnectNamedPipe): I/O on an instance that has
/// never had a client is ERROR_PIPE_LISTENING; after a disconnect, server
/// and client I/O are ERROR_PIPE_NOT_CONNECTED, the client's peek too, the
/// server's peek ERROR_BAD_PIPE, and the client's process id
/// ERROR_NOT_FOUND.
#[test]
fn pipe_s16_wine_test_disconnect_named_pipe_codes() {
    let _w = Watchdog::test();
    let name = unique("s16codes");
    let server = message_pipe().create(&name).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(server.write(b"x").unwrap_err().win32(), 536, "write before any client");
    assert_eq!(server.read(&mut buf).unwrap_err().win32(), 536, "read before any client");
    let client = message_client(&name);
    server.connect().unwrap();
    client.write(b"waiting").unwrap();
    server.disconnect().unwrap();
    assert_eq!(client.write(b"x").unwrap_err().win32(), 233);
    assert_eq!(server.read(&mut buf).unwrap_err().win32(), 233, "read after disconnect, data waiting");
    assert_eq!(server.disconnect().unwrap_err().win32(), 233, "disconnect twice");
    assert_eq!(client.peek(&mut buf).unwrap_err().win32(), 233, "the client's peek");
    assert_eq!(server.peek(&mut buf).unwrap_err().win32(), 230, "the server's peek");
    assert_eq!(server.client_process_id().unwrap_err().win32(), 1168);
}

/// Wine `pipe.c` (test_CloseHandle): once the other end closed, the
/// reader still peeks and reads what was sent; then read and peek say
/// ERROR_BROKEN_PIPE (a peek-polling loop learns the peer left) and a
/// write ERROR_NO_DATA. A zero-length message followed by the close reads
/// as 0 bytes first, in byte read mode too.
#[test]
fn pipe_s23_wine_test_close_handle_peek_and_read_after_the_peer_closed() {
    let _w = Watchdog::test();
    for zero_length in [false, true] {
        let name = unique("s23close");
        let server = message_pipe().create(&name).unwrap();
        let client = PipeClient::open(&name).unwrap(); // byte read mode, as clients start
        server.connect().unwrap();
        let sent: &[u8] = if zero_length { b"" } else { b"Hello World" };
        server.write(sent).unwrap();
        drop(server);
        let mut buf = [0u8; 32];
        if !zero_length {
            assert_eq!(client.peek(&mut []).unwrap().available, sent.len(), "peek sees what is left");
        }
        assert_eq!(client.read(&mut buf).unwrap(), sent.len(), "zero-length message: {zero_length}");
        assert_eq!(&buf[..sent.len()], sent);
        assert_eq!(client.read(&mut buf).unwrap_err().win32(), 109, "then the close");
        assert_eq!(client.peek(&mut buf).unwrap_err().win32(), 109, "peek says so too");
        assert_eq!(client.write(b"x").unwrap_err().win32(), 232, "a write: no reader");
    }
}

/// A write waiting for room when the reader closes fails with
/// ERROR_BROKEN_PIPE (109); a write started after the close, ERROR_NO_DATA
/// (232), every time.
#[test]
fn pipe_s25_wine_test_a_blocked_write_whose_reader_closes_is_broken_pipe() {
    let _w = Watchdog::test();
    let name = unique("s25broken");
    let server = PipeOptions::new().buffer(4096).create(&name).unwrap();
    let client = PipeClient::open(&name).unwrap();
    server.connect().unwrap();
    std::thread::scope(|s| {
        // Far more than the buffer holds: the write waits for room.
        let writer = util::spawn_asleep(s, || client.write(&vec![7u8; 1 << 20]));
        drop(server);
        assert_eq!(writer.join().unwrap().unwrap_err().win32(), 109);
    });
    for _ in 0..20 {
        let server = PipeServer::create(&name).unwrap();
        let client = PipeClient::open(&name).unwrap();
        server.connect().unwrap();
        drop(client);
        assert_eq!(server.write(b"after").unwrap_err().win32(), 232);
    }
}

/// Wine `pipe.c`: a client goes to the instance that has listened longest,
/// not to the first one created.
#[test]
fn pipe_s12_wine_test_a_client_goes_to_the_instance_listening_longest() {
    let _w = Watchdog::test();
    let name = unique("s12oldest");
    let a = PipeServer::create(&name).unwrap();
    let b = PipeServer::create(&name).unwrap();
    let _c1 = PipeClient::open(&name).unwrap();
    assert!(a.connect_timeout(Duration::ZERO).is_ok(), "a listened first");
    a.disconnect().unwrap();
    // a listens again, after b: the next client is b's.
    assert!(matches!(a.connect_timeout(Duration::from_millis(1)), Err(Error::Timeout)));
    let _c2 = PipeClient::open(&name).unwrap();
    assert!(b.connect_timeout(Duration::ZERO).is_ok(), "b has listened longest now");
    let _c3 = PipeClient::open(&name).unwrap();
    assert!(a.connect_timeout(Duration::ZERO).is_ok());
}

#[test]
fn pipe_s23_peer_closed_reader_drains_then_broken_pipe_writer_gets_no_data() {
    let _w = Watchdog::test();
    if role().is_some() {
        let c = PipeClient::open(&util::args()[0]).unwrap();
        c.write(b"last words").unwrap();
        hold("written");
    }
    let name = unique("s23");
    let server = message_pipe().create(&name).unwrap();
    let mut peer =
        Peer::spawn("pipe_s23_peer_closed_reader_drains_then_broken_pipe_writer_gets_no_data", "client", &[&name]);
    server.connect().unwrap();
    peer.expect("written");
    peer.kill9();
    let mut buf = [0u8; 32];
    let n = server.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"last words", "what was written before the death is read");
    assert!(matches!(server.read(&mut buf), Err(Error::BrokenPipe)));
    let w = server.write(b"x");
    assert!(matches!(w, Err(Error::NoData)), "{w:?}");
    // Graceful close on the other side, same answers.
    let name2 = unique("s23b");
    let s2 = PipeServer::create(&name2).unwrap();
    let c2 = PipeClient::open(&name2).unwrap();
    s2.write(b"bye").unwrap();
    drop(s2);
    let n = c2.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"bye");
    assert!(matches!(c2.read(&mut buf), Err(Error::BrokenPipe)));
    assert!(matches!(c2.write(b"x"), Err(Error::NoData)));
}

#[test]
fn pipe_s24_each_side_knows_the_other_process() {
    let _w = Watchdog::test();
    if role().is_some() {
        let c = PipeClient::open(&util::args()[0]).unwrap();
        say(&c.server_process_id().to_string());
        hold("open");
    }
    let name = unique("s24");
    let server = PipeServer::create(&name).unwrap();
    let mut peer = Peer::spawn("pipe_s24_each_side_knows_the_other_process", "client", &[&name]);
    assert_eq!(peer.next(), std::process::id().to_string());
    server.connect().unwrap();
    assert_eq!(server.client_process_id().unwrap(), peer.pid);
    assert_eq!(server.client_uid().unwrap(), switchboard_sys::process::uid());
    peer.expect("open");
    peer.dismiss();
}

#[test]
fn pipe_s25_a_full_buffer_blocks_the_writer_and_nothing_is_dropped() {
    let _w = Watchdog::test();
    let name = unique("s25");
    let server = message_pipe().buffer(4096).create(&name).unwrap();
    let client = message_client(&name);
    let messages: Vec<Vec<u8>> = (0..200u32).map(|i| vec![(i % 251) as u8; 100 + (i as usize * 37) % 3000]).collect();
    std::thread::scope(|s| {
        let sent = &messages;
        s.spawn(move || {
            for m in sent {
                client.write(m).unwrap();
            }
        });
        let mut buf = vec![0u8; 4096];
        for m in &messages {
            let n = server.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], &m[..]);
        }
    });
}

#[test]
fn pipe_s23_server_killed_with_a_client_connected_is_broken_pipe_not_a_hang() {
    let _w = Watchdog::test();
    if role().is_some() {
        let server = message_pipe().create(&util::args()[0]).unwrap();
        say("ready");
        server.connect().unwrap();
        server.write(b"before the end").unwrap();
        hold("written");
    }
    let name = unique("s23k");
    let mut peer =
        Peer::spawn("pipe_s23_server_killed_with_a_client_connected_is_broken_pipe_not_a_hang", "server", &[&name]);
    peer.expect("ready");
    let client = message_client(&name);
    peer.expect("written");
    // A reader blocked in another thread when the server dies is woken too.
    std::thread::scope(|s| {
        let mut buf = [0u8; 32];
        let n = client.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"before the end");
        let blocked = s.spawn(|| client.read(&mut [0u8; 32]));
        peer.kill9();
        assert!(matches!(blocked.join().unwrap(), Err(Error::BrokenPipe)));
    });
    assert!(matches!(client.write(b"x"), Err(Error::NoData)));
    assert!(matches!(PipeClient::open(&name), Err(Error::NotFound(_))), "the name died with its server");
}

/// Doorbells: a client waits on its pipe's doorbell in a poll loop and
/// reads with `try_read` only, while a server in another process writes;
/// the server's `kill -9` rings it too, and the pipe then says BrokenPipe.
#[test]
fn pipe_doorbell_a_poll_loop_reads_a_pipe_and_hears_its_servers_death() {
    let _w = Watchdog::test();
    let test = "pipe_doorbell_a_poll_loop_reads_a_pipe_and_hears_its_servers_death";
    if role().is_some() {
        let server = message_pipe().create(&util::args()[0]).unwrap();
        say("listening");
        server.connect().unwrap();
        for i in 0..50u8 {
            server.write(&[i]).unwrap();
        }
        hold("written");
    }
    let name = unique("pipe-bell");
    let mut peer = Peer::spawn(test, "server", &[&name]);
    peer.expect("listening");
    let client = PipeClient::open(&name).unwrap();
    client.set_read_mode(ReadMode::Message).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8];
    while got.len() < 50 {
        if !client.arm_doorbell() {
            let ready =
                switchboard_sys::socket::poll_readable(&[client.doorbell()], Some(Duration::from_secs(60))).unwrap();
            assert_eq!(ready, [true]);
        }
        while let Ok(n) = client.try_read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
    }
    assert_eq!(got, (0..50).collect::<Vec<u8>>());
    peer.expect("written");
    peer.kill9();
    if !client.arm_doorbell() {
        let ready =
            switchboard_sys::socket::poll_readable(&[client.doorbell()], Some(Duration::from_secs(60))).unwrap();
        assert_eq!(ready, [true], "the server's death rings the doorbell");
    }
    assert!(matches!(client.try_read(&mut buf), Err(Error::BrokenPipe)));
}

/// Wine `pipe.c`: a server that closes its last instance and creates the
/// same name again at once (as servers do in a loop) succeeds, with or
/// without a client that was connected.
#[test]
fn pipe_s10_wine_test_closing_the_last_instance_frees_the_name_at_once() {
    let _w = Watchdog::test();
    let name = unique("recreate");
    let mut old_client = None;
    for round in 0..60 {
        let server = message_pipe().max_instances(1).create(&name).unwrap_or_else(|e| panic!("round {round}: {e}"));
        if round % 3 == 0 {
            continue;
        }
        let client = message_client(&name);
        server.connect().unwrap();
        client.write(b"x").unwrap();
        assert_eq!(server.read(&mut [0u8; 4]).unwrap(), 1);
        drop(server);
        // The old client may still hold its end (it then reads BrokenPipe).
        if round % 3 == 1 {
            old_client = Some(client);
        } else {
            assert!(matches!(old_client.take().map(|c| c.read(&mut [0u8; 4])), None | Some(Err(Error::BrokenPipe))));
        }
    }
}

/// The same across processes: one process closes its last instance, and
/// another creates the name the moment it hears so.
#[test]
fn pipe_s10_wine_test_another_process_creates_the_name_once_the_last_instance_closed() {
    let _w = Watchdog::test();
    let test = "pipe_s10_wine_test_another_process_creates_the_name_once_the_last_instance_closed";
    if role().is_some() {
        let name = &util::args()[0];
        for _ in 0..20 {
            let server = message_pipe().create(name).unwrap();
            let client = message_client(name);
            server.connect().unwrap();
            drop(client);
            drop(server);
            say("closed");
            hear();
        }
        done();
    }
    let name = unique("recreate2");
    let mut peer = Peer::spawn(test, "closer", &[&name]);
    for round in 0..20 {
        peer.expect("closed");
        let server = message_pipe().create(&name).unwrap_or_else(|e| panic!("round {round}: {e}"));
        drop(server);
        peer.tell("again");
    }
    peer.finish();
}

/// `FlushFileBuffers` on a pipe: returns once the other process has read
/// everything written, so an echo server that writes, flushes and
/// disconnects never destroys its reply; a reader that leaves with data
/// unread makes the flush BrokenPipe.
#[test]
fn pipe_s16_flush_waits_until_the_reader_has_read_everything() {
    let _w = Watchdog::test();
    let test = "pipe_s16_flush_waits_until_the_reader_has_read_everything";
    if role().is_some() {
        let client = message_client(&util::args()[0]);
        say("connected");
        hear();
        let mut buf = [0u8; 16];
        for _ in 0..3 {
            let n = client.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"reply");
        }
        hold("read");
    }
    let name = unique("flush");
    let server = message_pipe().create(&name).unwrap();
    let mut peer = Peer::spawn(test, "reader", &[&name]);
    server.connect().unwrap();
    peer.expect("connected");
    for _ in 0..3 {
        server.write(b"reply").unwrap();
    }
    std::thread::scope(|s| {
        let flushed = util::spawn_asleep(s, || server.flush());
        assert!(!flushed.is_finished(), "nothing was read yet: the flush waits");
        peer.tell("read now");
        peer.expect("read");
        flushed.join().unwrap().unwrap();
    });
    server.disconnect().unwrap();
    peer.dismiss();
    // A reader gone with data unread.
    let server = message_pipe().create(&name).unwrap();
    let client = message_client(&name);
    server.connect().unwrap();
    server.write(b"never read").unwrap();
    drop(client);
    assert_eq!(server.flush().unwrap_err().win32(), 109);
}

/// `GetNamedPipeInfo` / `GetNamedPipeHandleState` for a server and a
/// client: type, read mode, buffer, maximum and current instances.
#[test]
fn pipe_s09_wine_test_named_pipe_info_describes_the_instance() {
    let name = unique("info");
    let opts = message_pipe().max_instances(3).buffer(5000);
    let a = opts.create(&name).unwrap();
    let info = a.info();
    assert_eq!((info.pipe_type, info.read_mode, info.buffer), (PipeType::Message, ReadMode::Message, 8192));
    assert_eq!((info.max_instances, info.instances), (3, 1));
    let _b = opts.create(&name).unwrap();
    assert_eq!(a.info().instances, 2);
    // The client end: what the server told it when it opened (classic
    // GetNamedPipeInfo on a client handle), in its own read mode.
    let client = PipeClient::open(&name).unwrap();
    let info = client.info();
    assert_eq!((info.pipe_type, info.read_mode, info.buffer), (PipeType::Message, ReadMode::Byte, 8192));
    assert_eq!((info.max_instances, info.instances), (3, 2));
    client.set_read_mode(ReadMode::Message).unwrap();
    assert_eq!(client.info().read_mode, ReadMode::Message);
}

/// Per-handle read and write timeouts: a read with nothing to read and a
/// write with no room each end with Timeout (121) after the handle's
/// timeout, lose nothing, and the pipe goes on working.
#[test]
fn pipe_s25_read_and_write_timeouts_end_a_wait_and_lose_nothing() {
    let _w = Watchdog::test();
    let name = unique("timeouts");
    let server = PipeOptions::new().buffer(4096).create(&name).unwrap();
    let client = PipeClient::open(&name).unwrap();
    server.connect().unwrap();
    server.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = [0u8; 8];
    assert_eq!(server.read(&mut buf).unwrap_err().win32(), 121, "nothing to read");
    client.write(b"late").unwrap();
    assert_eq!(server.read(&mut buf).unwrap(), 4, "what came later is read");
    client.set_write_timeout(Some(Duration::from_millis(20)));
    let mut written = 0;
    let err = loop {
        match client.write(&[1u8; 512]) {
            Ok(()) => written += 512,
            Err(e) => break e,
        }
    };
    assert_eq!(err.win32(), 121, "no room: {err:?}");
    server.set_read_timeout(Some(Duration::from_millis(20)));
    let mut drained = 0;
    let mut big = [0u8; 4096];
    while let Ok(n) = server.read(&mut big) {
        drained += n;
    }
    assert_eq!(drained, written, "every byte of the writes that succeeded, nothing of the one that timed out");
    client.write(b"again").unwrap();
    assert_eq!(server.read(&mut big).unwrap(), 5);
}

/// Wine `pipe.c` (PIPE_NOWAIT): in non-blocking mode a read of an empty
/// pipe fails at once with ERROR_NO_DATA, and a connect with no client with
/// ERROR_PIPE_LISTENING — the instance then listens, and the next connect
/// after a client came succeeds.
#[test]
fn pipe_s12_wine_test_nowait_read_and_connect_answer_at_once() {
    let _w = Watchdog::test();
    let name = unique("nowait");
    let server = message_pipe().create(&name).unwrap();
    server.set_nowait(true);
    assert_eq!(server.connect().unwrap_err().win32(), 536, "no client yet");
    let client = message_client(&name);
    server.connect().unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(server.read(&mut buf).unwrap_err().win32(), 232, "nothing to read");
    client.set_nowait(true);
    assert_eq!(client.read(&mut buf).unwrap_err().win32(), 232);
    client.write(b"now").unwrap();
    assert_eq!(server.read(&mut buf).unwrap(), 3);
    server.set_nowait(false);
    server.set_read_timeout(Some(Duration::from_millis(10)));
    assert_eq!(server.read(&mut buf).unwrap_err().win32(), 121, "blocking again, within its timeout");
}
