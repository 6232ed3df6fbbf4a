//! The rendezvous under attack: a process of another user (uid 65534,
//! started with `setpriv`) or a hostile same-user holder tries to hang,
//! fool or exhaust a victim's set-up path. Each test failed before the
//! rendezvous checked what it now checks.

mod util;

use std::time::{Duration, Instant};

use switchboard::mailslot::{MailslotClient, MailslotOptions};
use switchboard::mapping::{Access, Mapping};
use switchboard::namespace::Acl;
use switchboard::pipe::named::{call_named_pipe, wait_named_pipe, PipeClient, PipeOptions};
use switchboard::sync::Event;
use switchboard::Error;
use switchboard_sys::socket::{Conn, Listener};
use util::{hold, role, say, unique, Peer, Watchdog};

const NOBODY: u32 = 65534;

fn root() -> bool {
    let me = switchboard_sys::process::uid();
    if me != 0 {
        eprintln!("skipped: the attacker runs as uid {NOBODY}, which needs root to start");
    }
    me == 0
}

/// The documented addresses (see `rendezvous`): Local objects of `uid`,
/// machine-wide pipes, pipe waits and mailslots.
fn object_address(uid: &str, name: &str) -> String {
    format!("sb1/L{uid}/k/{name}")
}
fn global_address(family: char, name: &str) -> String {
    format!("sb1/G/{family}/{name}")
}

/// Binds `addr` with a backlog of 0 and fills the backlog with
/// connections nobody accepts.
fn squat_full(addr: &str) -> (Listener, Vec<Conn>) {
    let listener = Listener::bind_with_backlog(addr.as_bytes(), 0).expect("bind the victim's address");
    let mut held = Vec::new();
    while let Ok(c) = Conn::connect(addr.as_bytes(), Some(Instant::now() + Duration::from_millis(100))) {
        held.push(c);
        assert!(held.len() < 64, "the backlog never filled");
    }
    (listener, held)
}

fn code<T>(r: switchboard::Result<T>) -> u32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.win32(),
    }
}

#[test]
fn names_s09_attack_another_users_full_backlog_cannot_hang_create_open_or_ls() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
    let test = "names_s09_attack_another_users_full_backlog_cannot_hang_create_open_or_ls";
    if role().is_some() {
        let a = util::args();
        let (uid, obj, pipe, slot) = (&a[0], &a[1], &a[2], &a[3]);
        let _held = [
            squat_full(&object_address(uid, obj)),
            squat_full(&global_address('p', pipe)),
            squat_full(&global_address('q', pipe)),
            squat_full(&global_address('m', slot)),
        ];
        hold("squatting");
    }
    if !root() {
        return;
    }
    let (obj, pipe, slot) = (unique("full-obj"), unique("full-pipe"), unique("full-slot"));
    let me = switchboard_sys::process::uid().to_string();
    let mut attacker = Peer::spawn_as(NOBODY, test, "attacker", &[&me, &obj, &pipe, &slot]);
    attacker.expect("squatting");
    let mine_name = unique("mine");
    let mine = Event::create(mine_name.as_str(), true, false).unwrap();
    // Each call would block forever in connect before; now each ends at
    // its deadline, concurrently so the test takes one deadline.
    std::thread::scope(|s| {
        let create = s.spawn(|| code(Event::create(obj.as_str(), true, false)));
        let open = s.spawn(|| code(Event::open(&obj)));
        let pipe_open = s.spawn(|| code(PipeClient::open(&pipe)));
        let pipe_wait = s.spawn(|| code(wait_named_pipe(&pipe, Some(Duration::from_secs(1)))));
        let mailslot = s.spawn(|| code(MailslotClient::open(&slot)));
        let listed = switchboard::namespace::list();
        assert!(listed.iter().any(|e| e.name == mine_name), "ls still lists live objects: {listed:?}");
        assert_eq!(create.join().unwrap(), 121, "create: ERROR_SEM_TIMEOUT");
        assert_eq!(open.join().unwrap(), 121, "open: ERROR_SEM_TIMEOUT");
        assert_eq!(pipe_open.join().unwrap(), 121, "pipe open: ERROR_SEM_TIMEOUT");
        assert_eq!(pipe_wait.join().unwrap(), 121, "pipe wait: ERROR_SEM_TIMEOUT");
        assert_eq!(mailslot.join().unwrap(), 121, "mailslot open: ERROR_SEM_TIMEOUT");
    });
    drop(mine);
    attacker.dismiss();
}

#[test]
fn names_s09_attack_another_users_squatted_names_are_refused_unless_trusted() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
    let test = "names_s09_attack_another_users_squatted_names_are_refused_unless_trusted";
    if role().is_some() {
        let a = util::args();
        let global = format!("Global\\{}", a[0]);
        let _m = Mapping::builder().name(global.as_str()).size(4096).acl(Acl::everyone()).create().unwrap();
        let _p = PipeOptions::new().acl(Acl::everyone()).create(&a[1]).unwrap();
        let _s = MailslotOptions::new().acl(Acl::everyone()).create(&a[2]).unwrap();
        let event = format!("Global\\{}", a[3]);
        let _e = Event::builder().name(event.as_str()).acl(Acl::everyone()).create().unwrap();
        hold("squatting");
    }
    if !root() {
        return;
    }
    let (map, pipe, slot, event) = (unique("sq-map"), unique("sq-pipe"), unique("sq-slot"), unique("sq-event"));
    let mut attacker = Peer::spawn_as(NOBODY, test, "attacker", &[&map, &pipe, &slot, &event]);
    attacker.expect("squatting");
    let global = format!("Global\\{map}");
    // Before, create opened the attacker's mapping and wrote into it.
    let e = Mapping::create(global.as_str(), 4096).unwrap_err();
    assert!(matches!(e, Error::AccessDenied(_)), "{e}");
    assert_eq!(code(Mapping::open(&global, Access::Write)), 5);
    assert_eq!(code(PipeClient::open(&pipe)), 5, "a pipe client would hand its data to the attacker");
    let mut reply = [0u8; 16];
    assert_eq!(code(call_named_pipe(&pipe, b"secret", &mut reply, Duration::from_secs(5))), 5);
    assert_eq!(code(MailslotClient::open(&slot)), 5, "a mailslot writer would hand its data to the attacker");
    // Naming the owner opens it, and says whose it is.
    let trusted = Mapping::open_trusting(&global, Access::Read, NOBODY).unwrap();
    assert_eq!(trusted.owner_uid(), NOBODY);
    let created = Mapping::builder().name(global.as_str()).size(4096).trust_owner(NOBODY).create().unwrap();
    assert!(created.already_existed());
    // The refused clients above each took the attacker's one instance for
    // a moment (a server grants it on connect; the client refuses after):
    // until its server sees them gone, the pipe is busy — the classic
    // client retries on PipeBusy.
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match PipeClient::open_trusting(&pipe, NOBODY) {
            Ok(_) => break,
            Err(Error::PipeBusy) if std::time::Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("a pipe client that names the owner opens it: {e:?}"),
        }
    }
    if let Err(e) = MailslotClient::open_trusting(&slot, NOBODY) {
        panic!("a mailslot writer that names the owner opens it: {e:?}");
    }
    // Sync objects: refused on create, believed when the owner is named.
    let event = format!("Global\\{event}");
    assert_eq!(code(Event::builder().name(event.as_str()).create()), 5);
    let trusted = Event::builder().name(event.as_str()).trust_owner(NOBODY).create().unwrap();
    assert!(trusted.already_existed() && trusted.owner_uid() == NOBODY);
    attacker.dismiss();
}

/// How a wait address answered each of `n` connections a flood kept open.
fn flood(addr: &str, n: usize) -> (usize, usize, usize) {
    let (mut denied, mut busy, mut waiting) = (0, 0, 0);
    let mut kept = Vec::new();
    for _ in 0..n {
        let Ok(c) = Conn::connect(addr.as_bytes(), Some(Instant::now() + Duration::from_secs(10))) else { break };
        let mut buf = [0u8; 64];
        match c.recv(&mut buf, Some(Instant::now() + Duration::from_secs(10))) {
            Ok(Some((n, _))) if n >= 4 && buf[3] == 1 => denied += 1,
            Ok(Some((n, _))) if n >= 4 && buf[3] == 2 => busy += 1,
            Ok(Some(_)) => waiting += 1,
            other => panic!("no answer: {other:?}"),
        }
        kept.push(c);
    }
    (denied, busy, waiting)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn pipe_s14_attack_wait_queries_are_acl_checked_and_bounded() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
    let test = "pipe_s14_attack_wait_queries_are_acl_checked_and_bounded";
    if role().is_some() {
        let a = util::args();
        let n: usize = a[1].parse().unwrap();
        let (denied, busy, waiting) = flood(&a[0], n);
        hold(&format!("denied={denied} busy={busy} waiting={waiting}"));
    }
    if !root() {
        return;
    }
    let name = unique("waitflood");
    let server = PipeOptions::new().create(&name).unwrap();
    // Take the only instance: from now on every wait query must wait.
    let _client = PipeClient::open(&name).unwrap();
    server.connect().unwrap();
    let addr = global_address('q', &name);
    let before = open_fds();

    // Another user: refused by the ACL, and nothing of theirs is kept.
    let mut other = Peer::spawn_as(NOBODY, test, "flood", &[&addr, "2000"]);
    assert_eq!(other.next(), "denied=2000 busy=0 waiting=0");
    assert!(open_fds() <= before + 4, "the pipe kept another user's sockets: {} → {}", before, open_fds());
    other.dismiss();

    // The same user: at most MAX_WAITERS are kept, the rest told busy.
    let max = switchboard::pipe::named::MAX_WAITERS;
    let mut same = Peer::spawn(test, "flood", &[&addr, "300"]);
    assert_eq!(same.next(), format!("denied=0 busy={} waiting={max}", 300 - max));
    assert!(open_fds() <= before + max + 4, "fds grew past the bound: {} → {}", before, open_fds());
    // Waiters that hung up are dropped: room for new ones.
    same.kill9();
    let mut again = Peer::spawn(test, "flood", &[&addr, "10"]);
    assert_eq!(again.next(), "denied=0 busy=0 waiting=10");
    again.dismiss();
    drop(server);
}

#[test]
fn names_s08_attack_a_holder_that_sends_a_file_for_the_listener_is_refused() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
    let test = "names_s08_attack_a_holder_that_sends_a_file_for_the_listener_is_refused";
    if role().is_some() {
        let name = &util::args()[0];
        let addr = object_address(&switchboard_sys::process::uid().to_string(), name);
        // A genuine reply for this name, to replay with the wrong descriptor.
        let genuine = Event::create(name.as_str(), true, false).unwrap();
        let c = Conn::connect(addr.as_bytes(), None).unwrap();
        let mut reply = vec![0u8; 8192];
        let (n, _) = c.recv(&mut reply, None).unwrap().unwrap();
        drop((c, genuine));
        let listener = Listener::bind(addr.as_bytes()).unwrap();
        say("holding");
        let file = switchboard_sys::memfd::create_sealed("not-a-listener", 4096).unwrap();
        loop {
            switchboard_sys::socket::wait_readable(switchboard_sys::AsFd::as_fd(&listener), None).unwrap();
            if let Ok(Some(conn)) = listener.accept() {
                let _ = conn.send(&reply[..n], &[switchboard_sys::AsFd::as_fd(&file)]);
            }
        }
    }
    let name = unique("fakefd");
    let mut hostile = Peer::spawn(test, "hostile", &[&name]);
    hostile.expect("holding");
    let e = Event::open(&name).unwrap_err();
    assert!(matches!(e, Error::Malformed(_)), "{e}");
    assert_eq!(e.win32(), 13);
    hostile.kill9();
}

/// The control address of the serial pair that owns the pty at `path`.
fn serial_address(uid: &str, path: &str) -> String {
    format!("sb1/L{uid}/t/{path}")
}

/// Another user squats a pty's pair name with a full backlog: opening the
/// pty ends within the bounded wait as a plain pty (not fooled, not hung).
/// A same-user peer that sends garbage on a pair's control connection, or
/// never reads what the pair tells it, is cut off or left behind; the
/// pair's real ports go on.
#[test]
fn serial_s08_attack_squatters_garbage_and_deaf_peers_cannot_stop_a_pair() {
    use switchboard::serial::{events, SerialPair, SerialPort};
    let _w = Watchdog::test();
    let test = "serial_s08_attack_squatters_garbage_and_deaf_peers_cannot_stop_a_pair";
    if role().is_some() {
        let a = util::args();
        let _held = squat_full(&serial_address(&a[0], &a[1]));
        hold("squatting");
    }
    let me = switchboard_sys::process::uid().to_string();
    if root() {
        let _one_at_a_time = util::serial();
        let (_far, path) = switchboard::serial::pty().unwrap();
        let mut attacker = Peer::spawn_as(NOBODY, test, "attacker", &[&me, &path]);
        attacker.expect("squatting");
        let t = Instant::now();
        let port = SerialPort::open(&path).unwrap();
        assert!(t.elapsed() < Duration::from_secs(30), "open took {:?}", t.elapsed());
        assert_eq!(code(port.modem_status()), 50, "a plain pty: the squatter was not believed");
        attacker.dismiss();
    }
    let pair = SerialPair::new().unwrap();
    let addr = serial_address(&me, pair.path(0));
    let by = || Some(Instant::now() + Duration::from_secs(10));
    // A deaf peer: reaches the pair and never reads a word.
    let deaf = Conn::connect(addr.as_bytes(), by()).unwrap();
    // A garbage peer: its connection is closed by the pair.
    let garbage = Conn::connect(addr.as_bytes(), by()).unwrap();
    let mut buf = [0u8; 512];
    assert!(garbage.recv(&mut buf, by()).unwrap().is_some(), "the rendezvous reply");
    garbage.send(&[0xc1; 200], &[]).unwrap();
    let a = SerialPort::open(pair.path(0)).unwrap();
    let b = SerialPort::open(pair.path(1)).unwrap();
    b.set_event_mask(events::CTS).unwrap();
    // Enough changes to fill the deaf peer's queue many times over.
    for i in 0..2000 {
        a.set_rts(i % 2 == 1).unwrap();
    }
    assert!(b.modem_status().unwrap().cts);
    assert_eq!(b.wait_event(Some(Duration::from_secs(5))).unwrap(), events::CTS);
    // The garbage peer hears the end's state, then is cut off.
    let end = loop {
        match garbage.recv(&mut buf, by()) {
            Ok(Some(_)) => {}
            other => break other,
        }
    };
    assert!(matches!(end, Ok(None) | Err(switchboard_sys::Errno::CONNRESET)), "{end:?}");
    assert_eq!(a.write(b"still here").unwrap(), 10);
    b.set_timeouts(switchboard::serial::Timeouts {
        read_interval: 5000,
        read_total_constant: 30_000,
        ..Default::default()
    });
    let mut got = Vec::new();
    while got.len() < 10 {
        let n = b.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"still here");
    drop(deaf);
}
