//! Spec 05, S01–S11 — window messages and data copy, across processes
//! where the statement is about processes.

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use switchboard::message::{find_receiver, MsgWait, Receiver, ReceiverId, POSTED_QUOTA, WM_COPYDATA, WM_QUIT, WM_USER};
use switchboard::namespace::Acl;
use switchboard::sync::Event;
use switchboard::Error;
use util::{args, eventually, hear, role, say, unique, Peer, Watchdog};

const LONG: Duration = Duration::from_secs(60);

/// Peer side: a receiver whose procedure returns `wparam * 3` for
/// `WM_USER`, runs until quit.
fn tripling_receiver(name: &str) -> Receiver {
    Receiver::create(name, |_, m| match m.msg {
        WM_USER => m.wparam as i64 * 3,
        WM_COPYDATA => m.data.iter().map(|b| i64::from(*b)).sum::<i64>() ^ m.lparam,
        _ => -1,
    })
    .unwrap()
}

/// Peer side: a [`tripling_receiver`] under `args()[0]`. It says "created",
/// waits for the parent's word first when `hold` (fetching nothing
/// meanwhile), then runs its loop until `WM_QUIT`, whose code it exits with.
fn tripling_peer(hold: bool) -> ! {
    let rx = tripling_receiver(&args()[0]);
    say("created");
    if hold {
        hear();
    }
    std::process::exit(rx.run().unwrap())
}

/// Parent side: starts `test` as `role` with a receiver under `name` and
/// waits until it exists.
fn receiver_peer(test: &str, role: &str, name: &str) -> Peer {
    let mut peer = Peer::spawn(test, role, &[name]);
    peer.expect("created");
    peer
}

/// Parent side: serves `rx` until the peer says its next line.
fn serve_until_said(rx: &Receiver, peer: &mut Peer) -> String {
    let until = Instant::now() + LONG;
    loop {
        if let Some(line) = peer.try_next() {
            return line;
        }
        assert!(Instant::now() < until, "the peer said nothing");
        match rx.get(Duration::from_millis(20)) {
            Ok(p) => {
                rx.dispatch(&p);
            }
            Err(Error::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn message_s01_names_are_unique_and_a_receiver_is_found_from_another_process() {
    if role().is_some() {
        tripling_peer(false);
    }
    let _w = Watchdog::test();
    let name = unique("msg01");
    let mut peer =
        receiver_peer("message_s01_names_are_unique_and_a_receiver_is_found_from_another_process", "receiver", &name);
    let e = Receiver::create(&name, |_, _| 0).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e:?}");
    assert_eq!(e.win32(), 183);
    let entry = switchboard::namespace::list().into_iter().find(|e| e.name == name).expect("ls lists the receiver");
    assert_eq!((entry.kind.as_str(), entry.owner_pid), ("receiver", peer.pid));
    let to = find_receiver(&name).unwrap();
    assert_eq!(to.pid(), peer.pid);
    assert_eq!(to.send(WM_USER, 14, 0).unwrap(), 42);
    let e = find_receiver(&unique("msg01-nobody")).unwrap_err();
    assert_eq!(e.win32(), 2, "{e:?}");
    to.post(WM_QUIT, 0, 0).unwrap();
    peer.finish();
    // Its name is free once it is gone.
    drop(Receiver::create(&name, |_, _| 0).unwrap());
}

#[test]
fn message_s02_a_post_returns_at_once_and_past_the_quota_is_not_enough_quota() {
    if let Some(r) = role() {
        assert_eq!(r, "receiver");
        let rx = tripling_receiver(&args()[0]);
        say("created");
        hear(); // fetches nothing until told
        let mut got = 0u64;
        let mut in_order = true;
        loop {
            let p = rx.get(LONG).unwrap();
            if p.msg == WM_QUIT {
                break;
            }
            in_order &= p.wparam == got;
            got += 1;
        }
        say(&format!("{got} {in_order}"));
        util::done();
    }
    let _w = Watchdog::test();
    let name = unique("msg02");
    let mut peer =
        Peer::spawn("message_s02_a_post_returns_at_once_and_past_the_quota_is_not_enough_quota", "receiver", &[&name]);
    peer.expect("created");
    let to = find_receiver(&name).unwrap();
    for i in 0..u64::from(POSTED_QUOTA) {
        to.post(WM_USER, i, 0).unwrap();
    }
    let e = to.post(WM_USER, 99_999, 0).unwrap_err();
    assert_eq!(e.win32(), 1816, "{e:?}");
    assert!(matches!(e, Error::QueueFull));
    peer.tell("fetch");
    // Once the loop took them, posting works again: the quit gets in.
    let until = Instant::now() + LONG;
    loop {
        match to.post(WM_QUIT, 0, 0) {
            Ok(()) => break,
            Err(Error::QueueFull) if Instant::now() < until => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        peer.next(),
        format!("{POSTED_QUOTA} true"),
        "every accepted post, in order, and nothing of the refused one"
    );
    peer.finish();
}

#[test]
fn message_s03_a_send_returns_the_result_and_a_send_timeout_times_out() {
    if let Some(r) = role() {
        tripling_peer(r == "busy"); // busy: fetches nothing until told
    }
    let _w = Watchdog::test();
    let test = "message_s03_a_send_returns_the_result_and_a_send_timeout_times_out";
    let name = unique("msg03");
    let mut peer = receiver_peer(test, "loop", &name);
    let to = find_receiver(&name).unwrap();
    for i in 0..100 {
        assert_eq!(to.send(WM_USER, i, 0).unwrap(), i as i64 * 3);
    }
    assert_eq!(to.send_timeout(WM_USER, 5, 0, LONG, true).unwrap(), 15);
    to.post(WM_QUIT, 0, 0).unwrap();
    peer.finish();

    let busy_name = unique("msg03busy");
    let mut busy = receiver_peer(test, "busy", &busy_name);
    let to = find_receiver(&busy_name).unwrap();
    let e = to.send_timeout(WM_USER, 1, 0, Duration::from_millis(200), false).unwrap_err();
    assert_eq!(e.win32(), 121, "{e:?}");
    busy.tell("go");
    to.post(WM_QUIT, 0, 0).unwrap();
    busy.finish();
}

/// Two processes that send to each other's receivers while each is in its
/// own send: the waiting thread serves the incoming send (S03).
#[test]
fn message_s03_receivers_that_send_to_each_other_do_not_deadlock() {
    if let Some(r) = role() {
        assert_eq!(r, "b");
        let back = args()[1].clone();
        let rx = Receiver::create(&args()[0], move |_, m| {
            // While A waits for this send's result, ask A something.
            let a = find_receiver(&back).unwrap();
            a.send(WM_USER, m.wparam, 0).unwrap() + 1
        })
        .unwrap();
        say("created");
        std::process::exit(rx.run().unwrap());
    }
    let _w = Watchdog::test();
    let (a_name, b_name) = (unique("msg03a"), unique("msg03b"));
    let a = Receiver::create(&a_name, |_, m| m.wparam as i64 * 10).unwrap();
    let mut peer =
        Peer::spawn("message_s03_receivers_that_send_to_each_other_do_not_deadlock", "b", &[&b_name, &a_name]);
    peer.expect("created");
    let b = find_receiver(&b_name).unwrap();
    for i in 1..=20u64 {
        assert_eq!(b.send(WM_USER, i, 0).unwrap(), i as i64 * 10 + 1);
    }
    b.post(WM_QUIT, 0, 0).unwrap();
    peer.finish();
    drop(a);
}

#[test]
fn message_s04_a_data_copy_delivers_sender_tag_and_data_and_returns_the_result() {
    if let Some(r) = role() {
        assert_eq!(r, "receiver");
        let seen: Rc<RefCell<Vec<String>>> = Rc::default();
        let log = seen.clone();
        let rx = Receiver::create(&args()[0], move |_, m| {
            if m.msg != WM_COPYDATA {
                return -1;
            }
            log.borrow_mut().push(format!(
                "{:?} {} {} {}",
                m.from.receiver.map(|r| r.0),
                m.lparam,
                m.data.len(),
                m.sent
            ));
            m.data.iter().map(|b| i64::from(*b)).sum()
        })
        .unwrap();
        say("created");
        let code = rx.run().unwrap();
        for line in seen.borrow().iter() {
            say(line);
        }
        std::process::exit(code);
    }
    let _w = Watchdog::test();
    let name = unique("msg04");
    let mut peer = Peer::spawn(
        "message_s04_a_data_copy_delivers_sender_tag_and_data_and_returns_the_result",
        "receiver",
        &[&name],
    );
    peer.expect("created");
    let to = find_receiver(&name).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let before = data.clone();
    let sum: i64 = data.iter().map(|b| i64::from(*b)).sum();
    assert_eq!(to.send_copydata(Some(ReceiverId(77)), 9, &data).unwrap(), sum);
    assert_eq!(to.send_copydata(None, 0, b"").unwrap(), 0);
    assert_eq!(data, before, "the sender's buffer is untouched");
    to.post(WM_QUIT, 0, 0).unwrap();
    peer.expect("Some(77) 9 3000000 true");
    peer.expect("None 0 0 true");
    peer.finish();
}

#[test]
fn message_s05_posting_a_data_copy_is_message_sync_only() {
    let name = unique("msg05");
    let _rx = Receiver::create(&name, |_, _| 0).unwrap();
    let to = find_receiver(&name).unwrap();
    let e = to.post(WM_COPYDATA, 0, 0).unwrap_err();
    assert!(matches!(e, Error::MessageSyncOnly));
    assert_eq!(e.win32(), 1159);
}

/// Another user (uid 65534) reaches a `Global\` receiver only through its
/// ACL, its messages only through the filter; the receiver sees its pid
/// and uid as the kernel reports them.
#[test]
fn message_s06_the_sender_is_identified_and_other_users_pass_only_the_filter() {
    if let Some(r) = role() {
        assert_eq!(r, "nobody");
        let [open, closed, local] = <[String; 3]>::try_from(args()).unwrap();
        let e = find_receiver(&closed).unwrap_err();
        say(&format!("closed {}", e.win32()));
        let e = find_receiver(&local).unwrap_err();
        say(&format!("local {}", e.win32()));
        let to = find_receiver(&open).unwrap();
        say(&format!("refused {}", to.send(WM_USER, 1, 0).unwrap_err().win32()));
        say(&format!("allowed {}", to.send(WM_USER + 1, 2, 0).unwrap()));
        util::done();
    }
    let _w = Watchdog::test();
    let open = format!(r"Global\{}", unique("msg06open"));
    let closed = format!(r"Global\{}", unique("msg06closed"));
    let local = unique("msg06local");
    let from: Rc<RefCell<Vec<(u32, u32)>>> = Rc::default();
    let log = from.clone();
    let rx = Receiver::builder(&open)
        .acl(Acl::everyone())
        .create(move |_, m| {
            log.borrow_mut().push((m.from.pid, m.from.uid));
            m.wparam as i64 + 100
        })
        .unwrap();
    rx.allow(WM_USER + 1);
    let _closed = Receiver::create(&closed, |_, _| 0).unwrap();
    let _local = Receiver::create(&local, |_, _| 0).unwrap();
    let mut peer = Peer::spawn_as(
        65534,
        "message_s06_the_sender_is_identified_and_other_users_pass_only_the_filter",
        "nobody",
        &[&open, &closed, &local],
    );
    assert_eq!(serve_until_said(&rx, &mut peer), "closed 5", "a Global receiver admits only its user by default");
    assert_eq!(serve_until_said(&rx, &mut peer), "local 2", "a Local name is another user's name space");
    assert_eq!(serve_until_said(&rx, &mut peer), "refused 5", "the filter refuses another user's message");
    assert_eq!(serve_until_said(&rx, &mut peer), "allowed 102");
    peer.finish();
    assert_eq!(*from.borrow(), [(peer.pid, 65534)], "only the allowed message ran, identified");
    // The same user always passes.
    let to = find_receiver(&open).unwrap();
    let pending = std::thread::spawn(move || to.send(WM_USER, 5, 0).unwrap());
    let until = Instant::now() + LONG;
    while !pending.is_finished() {
        assert!(Instant::now() < until);
        let _ = rx.peek(false);
    }
    assert_eq!(pending.join().unwrap(), 105);
    assert_eq!(from.borrow()[1], (std::process::id(), switchboard_sys::process::uid()));
}

/// Posts queued before a send are returned after the send ran; each
/// sender's posts come in the order it posted them.
#[test]
fn message_s07_sends_run_before_posted_messages_which_keep_each_senders_order() {
    if let Some(r) = role() {
        assert_eq!(r, "sender");
        let to = find_receiver(&args()[0]).unwrap();
        for i in 0..100 {
            to.post(WM_USER, i, 0).unwrap();
        }
        say(&switchboard_sys::process::tid().to_string());
        say(&format!("sent {}", to.send(WM_USER + 1, 0, 0).unwrap()));
        util::done();
    }
    let _w = Watchdog::test();
    let name = unique("msg07");
    let order: Rc<RefCell<Vec<String>>> = Rc::default();
    let log = order.clone();
    let rx = Receiver::create(&name, move |_, m| {
        log.borrow_mut().push(format!("{}{}", if m.sent { "send" } else { "post" }, m.wparam));
        0
    })
    .unwrap();
    let mut peer =
        Peer::spawn("message_s07_sends_run_before_posted_messages_which_keep_each_senders_order", "sender", &[&name]);
    let tid: u32 = peer.next().parse().unwrap();
    // The send is queued once its thread sleeps waiting for the result.
    eventually("the sender blocks in its send", || switchboard_sys::process::blocked_in_futex(peer.pid, tid));
    for i in 0..100 {
        let p = rx.get(LONG).unwrap();
        assert_eq!(p.wparam, i);
        assert_eq!(p.from.pid, peer.pid);
        rx.dispatch(&p);
    }
    assert_eq!(peer.next(), "sent 0");
    peer.finish();
    let order = order.borrow();
    assert_eq!(order[0], "send0", "the send ran before the first posted message was returned");
    assert_eq!(order[1..], (0..100).map(|i| format!("post{i}")).collect::<Vec<_>>()[..]);
}

/// The receiver's process killed while a send waits for it, or its
/// receiver dropped: the pending send and later ones fail with 1400, at once.
#[test]
fn message_s08_a_dead_receiver_fails_pending_and_later_sends() {
    if let Some(r) = role() {
        assert_eq!(r, "receiver");
        let rx = Receiver::create(&args()[0], |_, _| {
            say("in the procedure");
            loop {
                std::thread::park();
            }
        })
        .unwrap();
        say("created");
        rx.run().unwrap();
        util::done();
    }
    let _w = Watchdog::test();
    let name = unique("msg08");
    let mut peer = Peer::spawn("message_s08_a_dead_receiver_fails_pending_and_later_sends", "receiver", &[&name]);
    peer.expect("created");
    let to = find_receiver(&name).unwrap();
    let pending = std::thread::spawn(move || {
        let e = to.send(WM_USER, 1, 0).unwrap_err();
        (e.win32(), to)
    });
    peer.expect("in the procedure");
    peer.kill9();
    let (code, to) = pending.join().unwrap();
    assert_eq!(code, 1400, "the pending send");
    assert_eq!(to.send(WM_USER, 1, 0).unwrap_err().win32(), 1400, "a later send");
    assert_eq!(to.post(WM_USER, 1, 0).unwrap_err().win32(), 1400, "a later post");
    assert_eq!(find_receiver(&name).unwrap_err().win32(), 2);

    // Dropped in this process.
    let rx = Receiver::create(&unique("msg08drop"), |_, _| 0).unwrap();
    let to = find_receiver(rx.name()).unwrap();
    drop(rx);
    assert_eq!(to.send_timeout(WM_USER, 1, 0, LONG, false).unwrap_err().win32(), 1400);
}

/// CPU time this thread has used (user + system), in clock ticks.
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command name (which may hold spaces) start at ")".
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn message_s08_a_killed_senders_session_is_dropped_and_the_loop_sleeps() {
    if let Some(r) = role() {
        assert_eq!(r, "sender");
        let to = find_receiver(&args()[0]).unwrap();
        to.post(WM_USER, 5, 0).unwrap();
        util::hold("posted");
    }
    let _w = Watchdog::test();
    let name = unique("msg08sender");
    let rx = Receiver::create(&name, |_, _| 0).unwrap();
    let mut peer =
        Peer::spawn("message_s08_a_killed_senders_session_is_dropped_and_the_loop_sleeps", "sender", &[&name]);
    peer.expect("posted");
    assert_eq!(rx.get(LONG).unwrap().wparam, 5);
    peer.kill9();
    // The dead sender's session hangs up: the loop must drop it, not wake
    // on its hang-up again and again (a spinning victim) until its timeout.
    let before = thread_cpu_ticks();
    assert!(matches!(rx.get(Duration::from_secs(1)), Err(Error::Timeout)));
    let used = thread_cpu_ticks() - before;
    assert!(used < 50, "the loop burned {used} ticks of CPU in a 1 s wait");
    assert!(format!("{rx:?}").contains("sessions: 0"), "{rx:?}");
}

#[test]
fn message_s09_a_64_mib_data_copy_arrives_whole() {
    if role().is_some() {
        tripling_peer(false);
    }
    let _w = Watchdog::test();
    let name = unique("msg09");
    let mut peer = receiver_peer("message_s09_a_64_mib_data_copy_arrives_whole", "receiver", &name);
    let to = find_receiver(&name).unwrap();
    let data: Vec<u8> = (0..64u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let sum: i64 = data.iter().map(|b| i64::from(*b)).sum();
    assert_eq!(to.send_copydata(None, 5, &data).unwrap(), sum ^ 5);
    to.post(WM_QUIT, 0, 0).unwrap();
    peer.finish();
}

#[test]
fn message_s10_a_loop_waits_on_its_queue_and_other_handles_at_once() {
    if let Some(r) = role() {
        let [rx_name, ev_name] = <[String; 2]>::try_from(args()).unwrap();
        match r.as_str() {
            "set" => {
                Event::builder().name(ev_name.as_str()).open().unwrap().set();
            }
            "post" => find_receiver(&rx_name).unwrap().post(WM_USER, 3, 0).unwrap(),
            "send" => say(&find_receiver(&rx_name).unwrap().send(WM_USER, 4, 0).unwrap().to_string()),
            _ => unreachable!(),
        }
        util::done();
    }
    let _w = Watchdog::test();
    let test = "message_s10_a_loop_waits_on_its_queue_and_other_handles_at_once";
    let (rx_name, ev_name) = (unique("msg10"), unique("msg10ev"));
    let rx = tripling_receiver(&rx_name);
    let ev = Event::builder().name(ev_name.as_str()).manual_reset(false).create().unwrap();
    assert_eq!(rx.wait_with(&[&ev], Duration::from_millis(50)).unwrap(), MsgWait::TimedOut);
    Peer::spawn(test, "set", &[&rx_name, &ev_name]).finish();
    assert_eq!(rx.wait_with(&[&ev], LONG).unwrap(), MsgWait::Object(0));
    // A sent message runs inside the wait, which goes on waiting.
    let mut sender = Peer::spawn(test, "send", &[&rx_name, &ev_name]);
    let mut post = Peer::spawn(test, "post", &[&rx_name, &ev_name]);
    assert_eq!(rx.wait_with(&[&ev], LONG).unwrap(), MsgWait::Message);
    post.finish();
    let p = rx.get(LONG).unwrap();
    assert_eq!((p.msg, p.wparam), (WM_USER, 3));
    // The send may still be on its way: serve until its result came back.
    while sender.try_next().is_none() {
        assert_ne!(rx.wait_with(&[&ev], Duration::from_millis(20)).unwrap(), MsgWait::Object(0));
    }
    sender.finish();
}

#[test]
fn message_s11_post_quit_ends_the_loop_after_earlier_posts_and_a_hung_receiver_aborts_at_once() {
    if role().is_some() {
        tripling_peer(true); // fetches nothing until told: hung
    }
    let _w = Watchdog::test();
    let name = unique("msg11");
    let seen: Rc<RefCell<Vec<u64>>> = Rc::default();
    let log = seen.clone();
    let rx = Receiver::create(&name, move |_, m| {
        log.borrow_mut().push(m.wparam);
        0
    })
    .unwrap();
    let to = find_receiver(&name).unwrap();
    for i in 1..=3 {
        to.post(WM_USER, i, 0).unwrap();
    }
    rx.post_quit(7).unwrap();
    to.post(WM_USER, 4, 0).unwrap();
    assert_eq!(rx.run().unwrap(), 7);
    assert_eq!(*seen.borrow(), [1, 2, 3], "the posts before the quit, not the one after");

    let hung_name = unique("msg11hung");
    let mut peer = receiver_peer(
        "message_s11_post_quit_ends_the_loop_after_earlier_posts_and_a_hung_receiver_aborts_at_once",
        "hung",
        &hung_name,
    );
    let to = find_receiver(&hung_name).unwrap();
    assert!(!to.is_hung(), "just created");
    eventually("the receiver counts as hung after 5 s without fetching", || to.is_hung());
    let asked = Instant::now();
    let e = to.send_timeout(WM_USER, 1, 0, LONG, true).unwrap_err();
    assert_eq!(e.win32(), 121);
    assert!(asked.elapsed() < LONG / 2, "failed at once, not at the timeout");
    peer.tell("go");
    to.post(WM_QUIT, 0, 0).unwrap();
    peer.finish();
}

/// A send's deadline holds while its data is still going in: a 64 MiB copy
/// to a receiver that does not fetch gives up at the timeout, and the same
/// session's next send arrives whole once the receiver fetches again.
#[test]
fn message_s03_a_timed_out_64_mib_copy_is_abandoned_and_the_next_send_arrives() {
    if role().is_some() {
        tripling_peer(true); // fetches nothing until told
    }
    let _w = Watchdog::test();
    let name = unique("msg03big");
    let mut peer =
        receiver_peer("message_s03_a_timed_out_64_mib_copy_is_abandoned_and_the_next_send_arrives", "receiver", &name);
    let to = find_receiver(&name).unwrap();
    let big = vec![1u8; 64 << 20];
    let asked = Instant::now();
    let e = to.send_copydata_timeout(None, 0, &big, Duration::from_millis(300)).unwrap_err();
    assert_eq!(e.win32(), 121, "{e:?}");
    assert!(asked.elapsed() < LONG / 2, "gave up at its deadline, not when the receiver came back");
    peer.tell("fetch");
    assert_eq!(to.send_copydata(None, 1, &[2u8; 1000]).unwrap(), 2000 ^ 1);
    assert_eq!(to.send(WM_USER, 5, 0).unwrap(), 15);
    to.post(WM_QUIT, 0, 0).unwrap();
    peer.finish();
}

/// `kill -9` at awkward moments: senders killed mid-copy and mid-send do
/// not disturb the receiver, which goes on serving; a receiver killed
/// mid-copy fails the sender with 1400 at once. Nothing is left behind.
#[test]
fn message_kill9_senders_and_receivers_mid_copy_leave_nothing_and_hang_no_one() {
    if let Some(r) = role() {
        let name = &args()[0];
        match r.as_str() {
            "sender" => {
                let to = find_receiver(name).unwrap();
                let big = vec![3u8; 32 << 20];
                say("sending");
                loop {
                    to.send_copydata(None, 0, &big).unwrap();
                    to.send(WM_USER, 1, 0).unwrap();
                }
            }
            "receiver" => {
                let rx = Receiver::create(name, |_, m| m.data.len() as i64).unwrap();
                say("created");
                std::process::exit(rx.run().unwrap());
            }
            _ => unreachable!(),
        }
    }
    let _w = Watchdog::test();
    let before = util::disk_snapshot();
    let test = "message_kill9_senders_and_receivers_mid_copy_leave_nothing_and_hang_no_one";
    let name = unique("msgkill");
    let rx = tripling_receiver(&name);
    let mut rng = util::Rng(0x5eed_0005);
    for _ in 0..6 {
        let mut sender = Peer::spawn(test, "sender", &[&name]);
        // Serve until it sends, then a little more, then kill it.
        assert_eq!(serve_until_said(&rx, &mut sender), "sending");
        for _ in 0..rng.next() % 40 {
            let _ = rx.get(Duration::from_millis(1));
        }
        sender.kill9();
    }
    let to = find_receiver(&name).unwrap();
    let pending = std::thread::spawn(move || to.send(WM_USER, 2, 0).unwrap());
    while !pending.is_finished() {
        let _ = rx.get(Duration::from_millis(10));
    }
    assert_eq!(pending.join().unwrap(), 6, "the receiver still serves");
    drop(rx);

    let rx_name = unique("msgkillrx");
    for _ in 0..4 {
        let mut receiver = Peer::spawn(test, "receiver", &[&rx_name]);
        receiver.expect("created");
        let to = find_receiver(&rx_name).unwrap();
        let copy = std::thread::spawn(move || {
            let big = vec![5u8; 48 << 20];
            loop {
                if let Err(e) = to.send_copydata(None, 0, &big) {
                    return e.win32();
                }
            }
        });
        std::thread::sleep(Duration::from_millis(rng.next() % 50));
        receiver.kill9();
        assert_eq!(copy.join().unwrap(), 1400);
    }
    assert_eq!(util::disk_snapshot(), before, "nothing left behind");
}
