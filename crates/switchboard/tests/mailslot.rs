//! Spec 03, S01–S11 and S13 — mailslots, across processes where the
//! statement is about processes. Broadcast tests talk only to loopback or to
//! network namespaces the test creates itself.

mod util;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use switchboard::mailslot::{Mailslot, MailslotClient, MailslotOptions, WAIT_FOREVER};
use switchboard::Error;
use util::{done, hear, hold, role, say, unique, Peer, Watchdog};

const LONG: Duration = Duration::from_secs(60);

fn win32(e: &std::io::Error) -> u32 {
    e.get_ref().and_then(|i| i.downcast_ref::<Error>()).map_or(0, Error::win32)
}

fn read_one(server: &Mailslot) -> Vec<u8> {
    let mut buf = vec![0u8; 128 * 1024];
    let n = server.read(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn mailslot_s01_a_server_only_reads_and_a_client_only_writes() {
    let name = unique("ms01");
    let mut server = Mailslot::create(&name, 0, Duration::ZERO).unwrap();
    let mut client = MailslotClient::open(&name).unwrap();
    let e = Write::write(&mut server, b"x").unwrap_err();
    assert_eq!((e.kind(), win32(&e)), (std::io::ErrorKind::PermissionDenied, 5));
    let e = Read::read(&mut client, &mut [0u8; 8]).unwrap_err();
    assert_eq!((e.kind(), win32(&e)), (std::io::ErrorKind::PermissionDenied, 5));
    // The right directions work through the same traits.
    Write::write_all(&mut client, b"through io").unwrap();
    let mut buf = [0u8; 32];
    let n = Read::read(&mut server, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"through io");
}

#[test]
fn mailslot_s02_only_one_server_per_name_across_processes() {
    if let Some(r) = role() {
        assert_eq!(r, "server");
        let _m = Mailslot::create(&util::args()[0], 100, Duration::ZERO).unwrap();
        hold("created");
    }
    let _w = Watchdog::test();
    let name = unique("ms02");
    let mut peer = Peer::spawn("mailslot_s02_only_one_server_per_name_across_processes", "server", &[&name]);
    peer.expect("created");
    let e = Mailslot::create(&format!(r"\\.\mailslot\{}", name.to_uppercase()), 0, Duration::ZERO).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e:?}");
    assert_eq!(e.win32(), 183);
    assert_eq!(MailslotClient::open(&name).unwrap().max_message_size(), 100);
    peer.dismiss();
    // Max size 0 means any size (up to the documented bound).
    let any = Mailslot::create(&unique("ms02any"), 0, Duration::ZERO).unwrap();
    assert_eq!(any.largest_message(), switchboard::mailslot::ANY_SIZE_LIMIT);
}

/// Wine `mailslot.c`: `CreateMailslot` takes a max message size of
/// 0xFFFFFFFF, and `GetMailslotInfo` reports the size as given — 0 stays 0
/// (any size), 0xFFFFFFFF stays 0xFFFFFFFF — while both carry messages.
#[test]
fn mailslot_s08_wine_test_mailslot_info_reports_the_max_size_as_given() {
    let _w = Watchdog::test();
    for given in [0usize, 0xFFFF_FFFF, 7] {
        let name = unique("ms08max");
        let slot = Mailslot::create(&name, given, Duration::ZERO).unwrap();
        assert_eq!(slot.info().unwrap().max_message_size, given, "reported as given");
        let w = MailslotClient::open(&name).unwrap();
        w.write(b"1234567").unwrap();
        let mut buf = vec![0u8; slot.largest_message()];
        assert_eq!(slot.read(&mut buf).unwrap(), 7);
        if given == 7 {
            assert!(matches!(w.write(b"12345678"), Err(Error::InvalidParameter(_))), "a real limit still holds");
        }
    }
}

#[test]
fn mailslot_s03_opening_a_name_without_server_is_not_found() {
    let e = MailslotClient::open(&unique("ms03")).unwrap_err();
    assert_eq!(e.win32(), 2, "{e:?}");
    let e = MailslotClient::open(r"\\.\pipe\x").unwrap_err();
    assert_eq!(e.win32(), 123, "a pipe name is not a mailslot name: {e:?}");
}

#[test]
fn mailslot_s04_messages_are_whole_fifo_and_may_be_empty() {
    if let Some(_r) = role() {
        let c = MailslotClient::open(&util::args()[0]).unwrap();
        for m in [&b"first"[..], b"", &[7u8; 3000], b"last"] {
            c.write(m).unwrap();
        }
        done();
    }
    let _w = Watchdog::test();
    let name = unique("ms04");
    let server = Mailslot::create(&name, 0, WAIT_FOREVER).unwrap();
    let mut peer = Peer::spawn("mailslot_s04_messages_are_whole_fifo_and_may_be_empty", "writer", &[&name]);
    peer.finish();
    assert_eq!(read_one(&server), b"first");
    assert_eq!(read_one(&server), b"");
    assert_eq!(read_one(&server), vec![7u8; 3000]);
    assert_eq!(read_one(&server), b"last");
    assert_eq!(server.info().unwrap().count, 0);
}

#[test]
fn mailslot_s05_an_oversized_write_is_refused_at_the_writer_and_nothing_is_queued() {
    let name = unique("ms05");
    let server = Mailslot::create(&name, 16, Duration::ZERO).unwrap();
    let client = MailslotClient::open(&name).unwrap();
    assert_eq!(client.max_message_size(), 16);
    let e = client.write(&[1u8; 17]).unwrap_err();
    assert_eq!(e.win32(), 87, "{e:?}");
    client.write(&[2u8; 16]).unwrap();
    let info = server.info().unwrap();
    assert_eq!((info.count, info.next_size), (1, Some(16)));
}

#[test]
fn mailslot_s06_a_short_buffer_gets_insufficient_buffer_and_the_message_stays() {
    let name = unique("ms06");
    let server = Mailslot::create(&name, 0, Duration::ZERO).unwrap();
    MailslotClient::open(&name).unwrap().write(b"twelve bytes").unwrap();
    let mut small = [0u8; 5];
    let e = server.read(&mut small).unwrap_err();
    assert!(matches!(e, Error::InsufficientBuffer { needed: 12 }), "{e:?}");
    assert_eq!(e.win32(), 122);
    assert_eq!(server.info().unwrap().count, 1);
    assert_eq!(read_one(&server), b"twelve bytes");
}

#[test]
fn mailslot_s07_the_read_timeout_applies_to_every_read() {
    if let Some(_r) = role() {
        let c = MailslotClient::open(&util::args()[0]).unwrap();
        assert_eq!(hear(), "write");
        c.write(b"woken").unwrap();
        done();
    }
    let _w = Watchdog::test();
    let name = unique("ms07");
    let server = Mailslot::create(&name, 0, Duration::ZERO).unwrap();
    let mut buf = [0u8; 16];
    // Zero: an empty mailslot answers at once, every time.
    for _ in 0..3 {
        assert_eq!(server.read(&mut buf).unwrap_err().win32(), 121);
    }
    // A timeout: the read waits at least that long, then SemTimeout.
    server.set_read_timeout(Duration::from_millis(100));
    let t = Instant::now();
    assert!(matches!(server.read(&mut buf), Err(Error::Timeout)));
    assert!(t.elapsed() >= Duration::from_millis(100));
    let info = server.info().unwrap();
    assert_eq!(
        (info.read_timeout, info.max_message_size),
        (Duration::from_millis(100), 0),
        "max 0 is reported as given"
    );
    // Forever: a read blocks until a writer in another process writes.
    server.set_read_timeout(WAIT_FOREVER);
    let mut peer = Peer::spawn("mailslot_s07_the_read_timeout_applies_to_every_read", "writer", &[&name]);
    let reader = std::thread::scope(|s| {
        let r = s.spawn(|| read_one(&server));
        peer.tell("write");
        r.join().unwrap()
    });
    assert_eq!(reader, b"woken");
    peer.finish();
}

#[test]
fn mailslot_s08_info_reports_max_next_size_count_and_timeout() {
    let name = unique("ms08");
    let server = Mailslot::create(&name, 500, Duration::from_millis(7)).unwrap();
    let info = server.info().unwrap();
    assert_eq!((info.max_message_size, info.next_size, info.count), (500, None, 0));
    assert_eq!(info.read_timeout, Duration::from_millis(7));
    let c = MailslotClient::open(&name).unwrap();
    c.write(&[0; 300]).unwrap();
    c.write(b"").unwrap();
    let info = server.info().unwrap();
    assert_eq!((info.next_size, info.count), (Some(300), 2));
    read_one(&server);
    let info = server.info().unwrap();
    assert_eq!((info.next_size, info.count), (Some(0), 1));
}

/// Message `seq` of writer `w`: a header and a body derived from both, so
/// any interleaving or corruption shows.
fn pattern(w: u8, seq: u32) -> Vec<u8> {
    let len = 16 + (seq as usize * 37 % 2000);
    let mut m = vec![w ^ (seq as u8); len];
    m[0] = w;
    m[1..5].copy_from_slice(&seq.to_le_bytes());
    m
}

fn check_pattern(m: &[u8]) -> (u8, u32) {
    assert!(m.len() >= 5, "short message");
    let (w, seq) = (m[0], u32::from_le_bytes(m[1..5].try_into().unwrap()));
    assert_eq!(m, pattern(w, seq), "message {seq} of writer {w} is corrupt");
    (w, seq)
}

#[test]
fn mailslot_s09_many_writers_never_interleave_and_keep_their_order() {
    const WRITERS: u8 = 4;
    const EACH: u32 = 400;
    if let Some(_r) = role() {
        let a = util::args();
        let w: u8 = a[1].parse().unwrap();
        let mut c = MailslotClient::open(&a[0]).unwrap();
        c.set_write_timeout(WAIT_FOREVER);
        for seq in 0..EACH {
            c.write(&pattern(w, seq)).unwrap();
        }
        done();
    }
    let _w = Watchdog::test();
    let name = unique("ms09");
    let server = MailslotOptions::new().read_timeout(LONG).queue_bytes(16 * 1024).create(&name).unwrap();
    let test = "mailslot_s09_many_writers_never_interleave_and_keep_their_order";
    let mut peers: Vec<Peer> = (0..WRITERS).map(|w| Peer::spawn(test, "writer", &[&name, &w.to_string()])).collect();
    let mut next = [0u32; WRITERS as usize];
    for _ in 0..u32::from(WRITERS) * EACH {
        let (w, seq) = check_pattern(&read_one(&server));
        assert_eq!(seq, next[w as usize], "writer {w} out of order");
        next[w as usize] += 1;
    }
    peers.iter_mut().for_each(Peer::finish);
    assert_eq!(server.info().unwrap().count, 0);
}

#[test]
fn mailslot_s09_a_writer_killed_mid_write_never_corrupts_the_queue() {
    if let Some(_r) = role() {
        let a = util::args();
        let mut c = MailslotClient::open(&a[0]).unwrap();
        c.set_write_timeout(WAIT_FOREVER);
        say("writing");
        for seq in 0.. {
            let mut m = pattern(9, seq);
            m.resize(30_000 + seq as usize % 2000, 9 ^ seq as u8);
            c.write(&m).unwrap();
        }
    }
    let _w = Watchdog::test();
    let name = unique("ms09k");
    let server = MailslotOptions::new().read_timeout(LONG).max_message_size(32_000).create(&name).unwrap();
    let test = "mailslot_s09_a_writer_killed_mid_write_never_corrupts_the_queue";
    let mine = MailslotClient::open(&name).unwrap();
    let mut buf = vec![0u8; 32_000];
    for round in 0..5 {
        let mut peer = Peer::spawn(test, "writer", &[&name]);
        peer.expect("writing");
        // Let it get going (the queue fills and the writer blocks for room
        // while we read), then kill it wherever it is.
        for _ in 0..3 + round {
            server.read(&mut buf).unwrap();
        }
        peer.kill9();
        mine.write(b"survivor").unwrap();
        loop {
            let n = server.read(&mut buf).unwrap();
            if &buf[..n] == b"survivor" {
                break;
            }
            assert_eq!(buf[0], 9, "a message that is neither the killed writer's nor ours");
            let seq = u32::from_le_bytes(buf[1..5].try_into().unwrap());
            assert!(buf[5..n].iter().all(|b| *b == 9 ^ seq as u8), "torn message {seq}");
        }
        assert_eq!(server.info().unwrap().count, 0);
    }
}

#[test]
fn mailslot_s10_closing_the_server_destroys_the_mailslot_and_frees_the_name() {
    let name = unique("ms10");
    let server = Mailslot::create(&name, 0, Duration::ZERO).unwrap();
    let c = MailslotClient::open(&name).unwrap();
    c.write(b"unread").unwrap();
    drop(server);
    assert_eq!(c.write(b"late").unwrap_err().win32(), 2);
    assert_eq!(MailslotClient::open(&name).unwrap_err().win32(), 2);
    let again = Mailslot::create(&name, 0, Duration::ZERO).unwrap();
    assert_eq!(again.info().unwrap().count, 0, "unread messages died with the old server");
    assert_eq!(c.write(b"to the old one").unwrap_err().win32(), 2, "an old writer never reaches the new server");
}

#[test]
fn mailslot_s10_a_killed_server_fails_the_next_write_and_frees_the_name() {
    if let Some(_r) = role() {
        let _m = Mailslot::create(&util::args()[0], 0, WAIT_FOREVER).unwrap();
        hold("created");
    }
    let _w = Watchdog::test();
    let name = unique("ms10k");
    let mut peer =
        Peer::spawn("mailslot_s10_a_killed_server_fails_the_next_write_and_frees_the_name", "server", &[&name]);
    peer.expect("created");
    let c = MailslotClient::open(&name).unwrap();
    c.write(b"while alive").unwrap();
    peer.kill9();
    let e = c.write(b"after death").unwrap_err();
    assert_eq!(e.win32(), 2, "{e:?}");
    let mine = Mailslot::create(&name, 0, Duration::ZERO).unwrap();
    MailslotClient::open(&name).unwrap().write(b"new").unwrap();
    assert_eq!(read_one(&mine), b"new");
}

#[test]
fn mailslot_s10_a_writer_waiting_for_room_wakes_when_the_server_closes() {
    let _w = Watchdog::test();
    let name = unique("ms10w");
    let server = Mailslot::create(&name, 1000, Duration::ZERO).unwrap();
    let mut c = MailslotClient::open(&name).unwrap();
    while c.write(&[0; 1000]).is_ok() {}
    c.set_write_timeout(WAIT_FOREVER);
    std::thread::scope(|s| {
        let blocked = s.spawn(|| c.write(&[0; 1000]));
        // Whether or not the writer is already asleep, closing must end it.
        drop(server);
        assert_eq!(blocked.join().unwrap().unwrap_err().win32(), 2);
    });
}

/// Doorbells: a server waits on its mailslot's doorbell in a poll loop and
/// takes messages with `try_read_from` only; writers in two processes ring
/// it. (The loop could wait on links, pipes and sockets in the same poll.)
#[test]
fn mailslot_doorbell_a_poll_loop_reads_what_writers_in_other_processes_send() {
    let _w = Watchdog::test();
    let test = "mailslot_doorbell_a_poll_loop_reads_what_writers_in_other_processes_send";
    if role().is_some() {
        let a = util::args();
        let w = MailslotClient::open(&a[0]).unwrap();
        for i in 0..50u8 {
            w.write(&[a[1].as_bytes()[0], i]).unwrap();
        }
        util::done();
    }
    let name = unique("bell");
    let slot = MailslotOptions::new().queue_bytes(64 * 1024).create(&name).unwrap();
    let mut writers = [Peer::spawn(test, "writer", &[&name, "a"]), Peer::spawn(test, "writer", &[&name, "b"])];
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    while got.len() < 100 {
        if !slot.arm_doorbell() {
            let ready =
                switchboard_sys::socket::poll_readable(&[slot.doorbell()], Some(Duration::from_secs(60))).unwrap();
            assert_eq!(ready, [true], "the doorbell rang");
        }
        while let Ok(r) = slot.try_read_from(&mut buf) {
            got.push((buf[0], buf[1]));
            assert_eq!(r.len, 2);
        }
    }
    for tag in [b'a', b'b'] {
        let mine: Vec<u8> = got.iter().filter(|(t, _)| *t == tag).map(|(_, i)| *i).collect();
        assert_eq!(mine, (0..50).collect::<Vec<_>>(), "writer {} in order, exactly once", tag as char);
    }
    for w in &mut writers {
        w.finish();
    }
}

/// Wine `mailslot.c` (mailslot_test), call by call: an empty slot's read
/// times out (121) even into a zero-length buffer; the server cannot
/// write; two writers' messages and a zero-length one come out in order,
/// with the info's next size and count after each write and read; a
/// buffer one byte short is InsufficientBuffer (122) and keeps the message.
#[test]
fn mailslot_s08_wine_test_mailslot_info_and_order_call_by_call() {
    let _w = Watchdog::test();
    let name = unique("winems");
    let slot = Mailslot::create(&name, 0, Duration::ZERO).unwrap();
    assert_eq!(slot.read(&mut []).unwrap_err().win32(), 121, "a zero-length read of an empty slot");
    let mut buf = [0u8; 16];
    assert_eq!(slot.read(&mut buf).unwrap_err().win32(), 121);
    let info = |s: &Mailslot| {
        let i = s.info().unwrap();
        (i.next_size, i.count)
    };
    assert_eq!(info(&slot), (None, 0));
    let (w1, w2) = (MailslotClient::open(&name).unwrap(), MailslotClient::open(&name).unwrap());
    w1.write(b"a").unwrap();
    assert_eq!(info(&slot), (Some(1), 1));
    w2.write(b"bc").unwrap();
    assert_eq!(info(&slot), (Some(1), 2));
    w2.write(b"").unwrap();
    assert_eq!(info(&slot), (Some(1), 3));
    assert_eq!(slot.read(&mut buf).unwrap(), 1);
    assert_eq!(&buf[..1], b"a");
    assert_eq!(info(&slot), (Some(2), 2));
    assert_eq!(slot.read(&mut buf).unwrap(), 2);
    assert_eq!(&buf[..2], b"bc");
    assert_eq!(info(&slot), (Some(0), 1), "the zero-length message is next");
    assert_eq!(slot.read(&mut buf).unwrap(), 0);
    assert_eq!(info(&slot), (None, 0));
    assert_eq!(slot.read(&mut buf).unwrap_err().win32(), 121);
    w1.write(b"xy").unwrap();
    assert_eq!(slot.read(&mut buf[..1]).unwrap_err().win32(), 122, "one byte short");
    assert_eq!(info(&slot), (Some(2), 1), "the message stays");
}

/// A server that closes its mailslot and creates the name again at once
/// succeeds (as `CreateMailslot` after `CloseHandle` does), round after
/// round, even while other threads start processes.
#[test]
fn mailslot_s02_closing_a_mailslot_frees_the_name_at_once() {
    let _w = Watchdog::test();
    let name = unique("msrecreate");
    for round in 0..60 {
        let slot = Mailslot::create(&name, 0, Duration::ZERO).unwrap_or_else(|e| panic!("round {round}: {e}"));
        if round % 2 == 0 {
            MailslotClient::open(&name).unwrap().write(b"x").unwrap();
        }
        drop(slot);
    }
}
