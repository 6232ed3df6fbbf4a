//! Spec 04 — completion ports as a cross-process message queue.

mod util;

use std::time::Duration;

use switchboard::port::{Overflow, Packet, Port};
use switchboard::{Error, HandleValue};
use util::{done, hear, hold, role, say, unique, Peer, Watchdog};

const LONG: Option<Duration> = Some(Duration::from_secs(60));
const POLL: Option<Duration> = Some(Duration::ZERO);

fn pk(bytes: u32, key: u64, overlapped: u64) -> Packet {
    Packet { bytes, key, overlapped }
}

#[test]
fn port_s01_packet_values_are_opaque() {
    let port = Port::create(None, 1).unwrap();
    let odd = [pk(0, 0, 0), pk(u32::MAX, u64::MAX, u64::MAX), pk(1, 1 << 63, 0xdead_beef_dead_beef)];
    for p in odd {
        port.post(p.bytes, p.key, p.overlapped).unwrap();
    }
    for p in odd {
        assert_eq!(port.get(POLL).unwrap(), p);
    }
}

#[test]
fn port_s02_create_open_and_take_from_a_process() {
    let _w = Watchdog::test();
    if let Some(r) = role() {
        let a = util::args();
        let port = match r.as_str() {
            "by-name" => Port::open(&a[0]).unwrap(),
            _ => Port::from_process(a[0].parse().unwrap(), HandleValue(a[1].parse().unwrap())).unwrap(),
        };
        port.post(7, 7, 7).unwrap();
        done();
    }
    let test = "port_s02_create_open_and_take_from_a_process";
    let n = unique("p02");
    assert!(matches!(Port::open(&n), Err(Error::NotFound(_))));
    let port = Port::create(n.as_str(), 2).unwrap();
    assert!(!port.already_existed());
    assert_eq!(port.concurrency(), 2);
    Peer::spawn(test, "by-name", &[&n]).finish();
    let me = std::process::id().to_string();
    Peer::spawn(test, "by-handle", &[&me, &port.handle().to_string()]).finish();
    assert_eq!(port.get(LONG).unwrap(), pk(7, 7, 7));
    assert_eq!(port.get(LONG).unwrap(), pk(7, 7, 7));
}

#[test]
fn port_s03_post_blocks_only_when_full_or_fails_by_policy() {
    let _w = Watchdog::test();
    let failing = Port::builder().capacity(2).concurrency(1).overflow(Overflow::Fail).create().unwrap();
    failing.post(1, 1, 1).unwrap();
    failing.post(2, 2, 2).unwrap();
    let err = failing.post(3, 3, 3).unwrap_err();
    assert!(matches!(err, Error::QueueFull), "{err}");
    let blocking = Port::builder().capacity(1).concurrency(1).create().unwrap();
    blocking.post(1, 0, 0).unwrap();
    std::thread::scope(|s| {
        let poster = s.spawn(|| blocking.post(2, 0, 0));
        // The poster is blocked until a get makes room.
        assert_eq!(blocking.get(LONG).unwrap().bytes, 1);
        poster.join().unwrap().unwrap();
    });
    assert_eq!(blocking.get(LONG).unwrap().bytes, 2);
}

#[test]
fn port_s04_get_timeout_and_poll() {
    let port = Port::create(None, 1).unwrap();
    assert_eq!(port.get(POLL).unwrap_err().win32(), 258);
    assert!(matches!(port.get(Some(Duration::from_millis(20))), Err(Error::WaitTimeout)));
    port.post(1, 2, 3).unwrap();
    assert_eq!(port.get(POLL).unwrap(), pk(1, 2, 3));
}

#[test]
fn port_s05_get_many_takes_what_is_there() {
    let port = Port::create(None, 1).unwrap();
    let mut entries = [Packet::default(); 8];
    for n in 0..5 {
        port.post(n, n as u64, 0).unwrap();
    }
    assert_eq!(port.get_many(&mut entries, LONG).unwrap(), 5);
    assert_eq!(entries[..5].iter().map(|p| p.bytes).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    for n in 0..12 {
        port.post(n, 0, 0).unwrap();
    }
    assert_eq!(port.get_many(&mut entries, LONG).unwrap(), 8);
    assert_eq!(port.get_many(&mut entries, LONG).unwrap(), 4);
    assert!(matches!(port.get_many(&mut entries, POLL), Err(Error::WaitTimeout)));
}

#[test]
fn port_s06_fifo_across_posters_and_exactly_once_across_consumers() {
    let _w = Watchdog::test();
    if let Some(r) = role() {
        let a = util::args();
        let port = Port::open(&a[0]).unwrap();
        if r == "poster" {
            let id: u64 = a[1].parse().unwrap();
            for seq in 0..2000u64 {
                port.post(0, id, seq).unwrap();
            }
            done();
        }
        let mut got = Vec::new();
        while let Ok(p) = port.get(Some(Duration::from_secs(2))) {
            if p.key == u64::MAX {
                break;
            }
            got.push(format!("{}:{}", p.key, p.overlapped));
        }
        say(&got.join(","));
        hold("consumed");
    }
    let test = "port_s06_fifo_across_posters_and_exactly_once_across_consumers";
    let n = unique("p06");
    let port = Port::builder().name(n.as_str()).concurrency(8).capacity(64).create().unwrap();
    let mut consumers: Vec<Peer> = (0..2).map(|_| Peer::spawn(test, "consumer", &[&n])).collect();
    let mut posters: Vec<Peer> = (0..3).map(|i| Peer::spawn(test, "poster", &[&n, &i.to_string()])).collect();
    posters.iter_mut().for_each(Peer::finish);
    // Tell each consumer to stop, after everything posted.
    for _ in 0..2 {
        port.post(0, u64::MAX, 0).unwrap();
    }
    let mut all = Vec::new();
    for c in &mut consumers {
        let line = c.next();
        let mut last = [None::<u64>; 3];
        for item in line.split(',').filter(|s| !s.is_empty()) {
            let (k, s) = item.split_once(':').unwrap();
            let (k, s): (usize, u64) = (k.parse().unwrap(), s.parse().unwrap());
            assert!(last[k].is_none_or(|prev| prev < s), "poster {k}'s packets out of order at {s}");
            last[k] = Some(s);
            all.push((k, s));
        }
        c.expect("consumed");
        c.dismiss();
    }
    all.sort_unstable();
    let expected: Vec<(usize, u64)> = (0..3).flat_map(|k| (0..2000).map(move |s| (k, s))).collect();
    assert_eq!(all, expected, "every packet delivered exactly once");
}

#[test]
fn port_s07_waiters_are_released_lifo() {
    let _w = Watchdog::test();
    let port = Port::create(None, 8).unwrap();
    std::thread::scope(|s| {
        let mut threads = Vec::new();
        for i in 0..3u64 {
            threads.push(s.spawn(|| port.get(LONG).unwrap()));
            // Each waiter must be registered before the next one starts.
            util::eventually("waiter registered", || port.waiting() == i + 1);
        }
        for n in 0..3 {
            port.post(n, 0, 0).unwrap();
        }
        let got: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap().bytes).collect();
        assert_eq!(got, [2, 1, 0], "the most recent waiter got the first packet");
    });
}

#[test]
fn port_s08_concurrency_limits_released_consumers() {
    let _w = Watchdog::test();
    let port = Port::create(None, 1).unwrap();
    let (took_first, first_taken) = std::sync::mpsc::channel();
    let (go_on, may_go_on) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        // The "runner" takes a packet and so counts as running.
        let port = &port;
        let runner = s.spawn(move || {
            port.post(1, 0, 0).unwrap();
            assert_eq!(port.get(LONG).unwrap().bytes, 1);
            took_first.send(()).unwrap();
            may_go_on.recv().unwrap();
            // Its next get ends its running period, so it may take packet 2 itself.
            assert_eq!(port.get(LONG).unwrap().bytes, 2);
            port.post(3, 0, 0).unwrap();
            assert_eq!(port.queued(), 1, "still not released: the runner runs again");
            // Then the runner thread exits while counted as running.
        });
        first_taken.recv().unwrap();
        let other = s.spawn(|| port.get(LONG).unwrap().bytes);
        util::eventually("the other consumer waits", || port.waiting() == 1);
        port.post(2, 0, 0).unwrap();
        assert_eq!(port.queued(), 1, "not released while one consumer runs (concurrency 1)");
        go_on.send(()).unwrap();
        runner.join().unwrap();
        // A consumer that exited stops counting: the waiter gets packet 3.
        assert_eq!(other.join().unwrap(), 3);
    });
}

#[test]
fn port_s09_closing_wakes_waiters_and_refuses_posts() {
    let _w = Watchdog::test();
    if role().is_some() {
        let port = Port::create(util::args()[0].as_str(), 1).unwrap();
        say(&port.handle().to_string());
        hear();
        done();
    }
    let port = Port::create(None, 1).unwrap();
    let client = Port::from_process(std::process::id(), port.handle()).unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| client.get(LONG));
        util::eventually("waiting", || port.waiting() == 1);
        drop(port);
        let err = waiter.join().unwrap().unwrap_err();
        assert_eq!(err.win32(), 735, "{err}");
    });
    assert_eq!(client.post(1, 1, 1).unwrap_err().win32(), 6);
    // The server process killed while a client waits.
    let n = unique("p09");
    let mut server = Peer::spawn("port_s09_closing_wakes_waiters_and_refuses_posts", "server", &[&n]);
    let _handle = server.next();
    let client = Port::open(&n).unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| client.get(LONG));
        server.kill9();
        assert!(matches!(waiter.join().unwrap(), Err(Error::AbandonedWait)));
    });
    assert!(matches!(client.post(1, 1, 1), Err(Error::InvalidHandle { .. })));
}

/// The server's death closes the port for posters too: a post blocked on a
/// full queue wakes at the server's `kill -9` (it slept on the server's
/// life token) and later posts fail at once. Before, the blocked post
/// waited forever and a post to a dead server's port with room succeeded.
#[test]
fn port_s09_a_dead_servers_port_wakes_blocked_posters_and_refuses_posts() {
    let _w = Watchdog::test();
    if role().is_some() {
        let _port = Port::builder().name(util::args()[0].as_str()).capacity(1).concurrency(1).create().unwrap();
        say("serving");
        hear();
        done();
    }
    let n = unique("p09dead");
    let mut server =
        Peer::spawn("port_s09_a_dead_servers_port_wakes_blocked_posters_and_refuses_posts", "server", &[&n]);
    server.expect("serving");
    let client = Port::open(&n).unwrap();
    client.post(1, 1, 1).unwrap();
    std::thread::scope(|s| {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let client = &client;
        let blocked = s.spawn(move || {
            tid_tx.send(switchboard_sys::process::tid()).unwrap();
            client.post(2, 2, 2)
        });
        let tid = tid_rx.recv().unwrap();
        util::eventually("the poster sleeps on the full queue", || util::asleep_in_futex(tid));
        server.kill9();
        let err = blocked.join().unwrap().unwrap_err();
        assert_eq!(err.win32(), 6, "{err}");
    });
    let err = client.post(3, 3, 3).unwrap_err();
    assert!(matches!(err, Error::InvalidHandle { .. }), "{err}");
}

#[test]
fn port_s10_posters_and_consumers_killed_at_any_point_corrupt_nothing() {
    let _w = Watchdog::test();
    if let Some(r) = role() {
        let port = Port::open(&util::args()[0]).unwrap();
        say("started");
        let mut seq = 0u64;
        loop {
            if r == "poster" {
                port.post(1, 1, seq).unwrap();
                seq += 1;
            } else {
                let _ = port.get(Some(Duration::from_millis(1)));
            }
        }
    }
    let test = "port_s10_posters_and_consumers_killed_at_any_point_corrupt_nothing";
    let n = unique("p10");
    let port = Port::builder().name(n.as_str()).concurrency(64).capacity(256).create().unwrap();
    let random = std::collections::hash_map::RandomState::new();
    for round in 0..10u64 {
        let mut peers: Vec<Peer> =
            ["poster", "poster", "consumer", "consumer"].iter().map(|r| Peer::spawn(test, r, &[&n])).collect();
        for (i, p) in peers.iter_mut().enumerate() {
            p.expect("started");
            // Fault injection: let it run a random while, then kill it wherever it is.
            let jitter = std::hash::BuildHasher::hash_one(&random, (round, i)) % 5_000;
            std::thread::sleep(Duration::from_micros(jitter));
            p.kill9();
        }
        // Nothing is stuck: we can post and get at once, FIFO intact.
        while port.get(POLL).is_ok() {}
        port.post(9, 9, round).unwrap();
        port.post(9, 9, round + 100).unwrap();
        assert_eq!(port.get(LONG).unwrap(), pk(9, 9, round), "round {round}");
        assert_eq!(port.get(LONG).unwrap(), pk(9, 9, round + 100), "round {round}");
        assert!(matches!(port.get(POLL), Err(Error::WaitTimeout)));
    }
}

#[test]
fn port_s10_a_consumer_killed_while_waiting_never_swallows_a_packet() {
    let _w = Watchdog::test();
    if role().is_some() {
        let port = Port::open(&util::args()[0]).unwrap();
        say("waiting");
        let _ = port.get(LONG);
        done();
    }
    let n = unique("p10w");
    let port = Port::builder().name(n.as_str()).concurrency(8).create().unwrap();
    let mut peer = Peer::spawn("port_s10_a_consumer_killed_while_waiting_never_swallows_a_packet", "consumer", &[&n]);
    peer.expect("waiting");
    util::eventually("the consumer is registered as waiting", || port.waiting() == 1);
    peer.kill9();
    for i in 0..3 {
        port.post(i, 0, 0).unwrap();
    }
    for i in 0..3 {
        assert_eq!(port.get(LONG).unwrap().bytes, i, "packet {i} went to the dead consumer");
    }
}

/// Doorbells: a consumer waits on the port's doorbell in a poll loop and
/// takes packets with `try_get` only, while a poster in another process
/// posts; closing the port rings it too.
#[test]
fn port_doorbell_a_poll_loop_takes_what_another_process_posts() {
    let _w = Watchdog::test();
    let test = "port_doorbell_a_poll_loop_takes_what_another_process_posts";
    if role().is_some() {
        let port = Port::open(&util::args()[0]).unwrap();
        hear();
        for i in 0..100u64 {
            port.post(1, i, 0).unwrap();
        }
        done();
    }
    let name = unique("port-bell");
    let port = Port::builder().name(name.as_str()).capacity(256).create().unwrap();
    let mut poster = Peer::spawn(test, "poster", &[&name]);
    // Asleep on the doorbell before anything is posted.
    assert!(!port.arm_doorbell(), "nothing queued yet");
    poster.tell("go");
    let mut got = Vec::new();
    while got.len() < 100 {
        if !port.arm_doorbell() {
            let ready =
                switchboard_sys::socket::poll_readable(&[port.doorbell().unwrap()], Some(LONG.unwrap())).unwrap();
            assert_eq!(ready, [true], "the doorbell rang");
        }
        while let Ok(p) = port.try_get() {
            got.push(p.key);
        }
    }
    assert_eq!(got, (0..100).collect::<Vec<u64>>());
    poster.finish();
    // A close rings it: a sleeper learns the port is gone.
    let other = Port::open(&name).unwrap();
    assert!(!other.arm_doorbell());
    port.close();
    assert_eq!(
        switchboard_sys::socket::poll_readable(&[other.doorbell().unwrap()], Some(LONG.unwrap())).unwrap(),
        [true]
    );
    assert!(matches!(other.try_get(), Err(Error::AbandonedWait)));
}

/// A consumer asleep on a port's doorbell hears its server's `kill -9`:
/// the server's pidfd is in the doorbell, and the next get says the port
/// is gone.
#[test]
fn port_doorbell_rings_when_the_server_is_killed() {
    let _w = Watchdog::test();
    let test = "port_doorbell_rings_when_the_server_is_killed";
    if role().is_some() {
        let _port = Port::create(util::args()[0].as_str(), 1).unwrap();
        hold("serving");
    }
    let name = unique("port-bell-death");
    let mut server = Peer::spawn(test, "server", &[&name]);
    server.expect("serving");
    let client = Port::open(&name).unwrap();
    assert!(!client.arm_doorbell());
    let bell = client.doorbell().unwrap();
    assert_eq!(switchboard_sys::socket::poll_readable(&[bell], Some(std::time::Duration::ZERO)).unwrap(), [false]);
    server.kill9();
    assert_eq!(switchboard_sys::socket::poll_readable(&[bell], LONG).unwrap(), [true], "the server's death rang it");
    assert!(matches!(client.try_get(), Err(Error::AbandonedWait)));
}

/// 04-S11: a named pipe's server end associated with a port — overlapped
/// reads of messages a client process writes complete as packets with the
/// association's key, the overlapped id and the byte count, and `take`
/// gives the data; an overlapped write completes the same way once the
/// client can read it.
#[test]
fn port_s11_overlapped_pipe_reads_and_writes_complete_on_the_port() {
    use switchboard::pipe::named::{PipeClient, PipeOptions, PipeType, ReadMode};
    let _w = Watchdog::test();
    let test = "port_s11_overlapped_pipe_reads_and_writes_complete_on_the_port";
    if role().is_some() {
        let client = PipeClient::open(&util::args()[0]).unwrap();
        client.set_read_mode(ReadMode::Message).unwrap();
        for msg in ["one", "two!", "three"] {
            client.write(msg.as_bytes()).unwrap();
        }
        let mut buf = [0u8; 16];
        let n = client.read(&mut buf).unwrap();
        say(std::str::from_utf8(&buf[..n]).unwrap());
        done();
    }
    let name = unique("s11pipe");
    let port = std::sync::Arc::new(Port::create(None, 1).unwrap());
    let server = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message).create(&name).unwrap();
    let mut peer = Peer::spawn(test, "client", &[&name]);
    server.connect().unwrap();
    let io = port.associate(server, 42).unwrap();
    for id in 1..=3 {
        io.read(64, id).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = port.get(LONG).unwrap();
        assert_eq!(p.key, 42);
        let data = io.take(p.overlapped).expect("the result waits for take").unwrap();
        assert_eq!(p.bytes as usize, data.len());
        got.push((p.overlapped, String::from_utf8(data).unwrap()));
    }
    assert_eq!(got, [(1, "one".into()), (2, "two!".into()), (3, "three".into())], "in the order started");
    io.write(b"reply".to_vec(), 9).unwrap();
    let p = port.get(LONG).unwrap();
    assert_eq!((p.key, p.overlapped, p.bytes), (42, 9, 5));
    assert_eq!(io.take(9).unwrap().unwrap(), b"");
    peer.expect("reply");
    peer.finish();
}

/// 04-S11 and `CancelIoEx`: a pending overlapped read, and one queued
/// behind it, cancelled, each complete with a packet of 0 bytes and the
/// error OperationAborted (995); a read pending when the writer process is
/// killed completes with BrokenPipe (109) — never a hang.
#[test]
fn port_s11_cancel_and_peer_death_complete_pending_reads() {
    use switchboard::pipe::named::{PipeClient, PipeServer};
    let _w = Watchdog::test();
    let test = "port_s11_cancel_and_peer_death_complete_pending_reads";
    if role().is_some() {
        let _client = PipeClient::open(&util::args()[0]).unwrap();
        hold("connected");
    }
    let name = unique("s11cancel");
    let port = std::sync::Arc::new(Port::create(None, 1).unwrap());
    let server = PipeServer::create(&name).unwrap();
    let mut peer = Peer::spawn(test, "client", &[&name]);
    peer.expect("connected");
    server.connect().unwrap();
    let io = port.associate(server, 5).unwrap();
    io.read(16, 1).unwrap();
    io.read(16, 2).unwrap();
    assert!(matches!(io.read(16, 2), Err(Error::InvalidParameter(_))), "an id in use");
    assert!(io.cancel(2), "queued");
    assert!(io.cancel(1), "running");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let p = port.get(LONG).unwrap();
        assert_eq!((p.key, p.bytes), (5, 0));
        let err = io.take(p.overlapped).unwrap().unwrap_err();
        assert_eq!(err.win32(), 995, "{err:?}");
        ids.push(p.overlapped);
    }
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    assert!(!io.cancel(1), "nothing left to cancel");
    io.read(16, 3).unwrap();
    peer.kill9();
    let p = port.get(LONG).unwrap();
    assert_eq!((p.overlapped, p.bytes), (3, 0));
    assert_eq!(io.take(3).unwrap().unwrap_err().win32(), 109);
}

/// 04-S11 with `ConnectNamedPipe` (Wine `pipe.c` test_overlapped and
/// test_completion): an overlapped connect on an instance bound to a port
/// completes as a packet `(0, key, id)` when a client process connects, and
/// a read started behind it then gets the client's message; a connect while
/// a client is already there fails at once with PIPE_CONNECTED (535) and
/// posts nothing; a pending connect is cancelled with OperationAborted.
#[test]
fn port_s11_wine_test_overlapped_connect_named_pipe_completes_on_the_port() {
    use switchboard::pipe::named::{PipeClient, PipeServer};
    let _w = Watchdog::test();
    let test = "port_s11_wine_test_overlapped_connect_named_pipe_completes_on_the_port";
    if role().is_some() {
        hear();
        let client = PipeClient::open(&util::args()[0]).unwrap();
        client.write(b"hello").unwrap();
        hold("connected");
    }
    let name = unique("s11connect");
    let port = std::sync::Arc::new(Port::create(None, 1).unwrap());
    let io = port.associate(PipeServer::create(&name).unwrap(), 77).unwrap();
    io.connect(1).unwrap();
    io.read(16, 2).unwrap();
    assert!(matches!(port.get(Duration::from_millis(20)), Err(Error::WaitTimeout)), "no client yet");
    let mut peer = Peer::spawn(test, "client", &[&name]);
    peer.tell("connect");
    let p = port.get(LONG).unwrap();
    assert_eq!((p.key, p.overlapped, p.bytes), (77, 1, 0), "the connect completes first");
    assert_eq!(io.take(1).unwrap().unwrap(), b"");
    let p = port.get(LONG).unwrap();
    assert_eq!((p.overlapped, p.bytes), (2, 5));
    assert_eq!(io.take(2).unwrap().unwrap(), b"hello");
    peer.expect("connected");
    let e = io.connect(3).unwrap_err();
    assert_eq!(e.win32(), 535, "{e:?}");
    assert!(matches!(port.get(Duration::from_millis(20)), Err(Error::WaitTimeout)), "and no packet");
    peer.dismiss();
    io.source().disconnect().unwrap();
    io.connect(4).unwrap();
    assert!(io.cancel(4));
    let p = port.get(LONG).unwrap();
    assert_eq!((p.overlapped, p.bytes), (4, 0));
    assert_eq!(io.take(4).unwrap().unwrap_err().win32(), 995);
}

/// 04-S11 with a mailslot: overlapped reads of what writer processes send.
#[test]
fn port_s11_overlapped_mailslot_reads_complete_on_the_port() {
    use switchboard::mailslot::{Mailslot, MailslotClient};
    let _w = Watchdog::test();
    let test = "port_s11_overlapped_mailslot_reads_complete_on_the_port";
    if role().is_some() {
        MailslotClient::open(&util::args()[0]).unwrap().write(b"posted by mail").unwrap();
        done();
    }
    let name = unique("s11slot");
    let port = std::sync::Arc::new(Port::create(None, 1).unwrap());
    let io = port.associate(Mailslot::create(&name, 0, Duration::ZERO).unwrap(), 3).unwrap();
    io.read(64, 77).unwrap();
    Peer::spawn(test, "writer", &[&name]).finish();
    let p = port.get(LONG).unwrap();
    assert_eq!((p.key, p.overlapped, p.bytes), (3, 77, 14));
    assert_eq!(io.take(77).unwrap().unwrap(), b"posted by mail");
    assert!(io.source().info().is_ok(), "the source stays usable");
}

/// Dropping an association never hangs: a write waiting for a reader that
/// does not read is left to finish on its own (the packet comes when the
/// reader leaves), and operations still queued complete as cancelled.
#[test]
fn port_s11_dropping_an_association_never_waits_for_a_stuck_write() {
    use switchboard::pipe::named::{PipeClient, PipeOptions};
    let _w = Watchdog::test();
    let name = unique("s11drop");
    let port = std::sync::Arc::new(Port::create(None, 1).unwrap());
    let server = PipeOptions::new().buffer(4096).create(&name).unwrap();
    let client = PipeClient::open(&name).unwrap();
    server.connect().unwrap();
    let io = port.associate(server, 1).unwrap();
    // Far more than the buffer holds, and the client does not read.
    io.write(vec![3u8; 1 << 20], 10).unwrap();
    io.read(16, 11).unwrap();
    util::eventually("the write started (it cannot finish: nobody reads)", || {
        client.peek(&mut []).is_ok_and(|p| p.available > 0)
    });
    drop(io);
    drop(client);
    // Both complete: the queued read as cancelled, the write as broken
    // once its reader left.
    let mut ids: Vec<(u64, u32)> = (0..2).map(|_| port.get(LONG).unwrap()).map(|p| (p.overlapped, p.bytes)).collect();
    ids.sort_unstable();
    assert_eq!(ids, [(10, 0), (11, 0)]);
}
