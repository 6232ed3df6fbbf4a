//! Spec 01, S11–S19 — named mutex, semaphore, event, wait on several.
//! Statements about processes run across real processes; the mutex's
//! abandonment is tested with `kill -9`.

mod util;

use std::time::Duration;

use switchboard::sync::{
    signal_and_wait, wait_all, wait_any, Event, Mutex, MutexInfo, Semaphore, Timer, WaitMany, WaitStatus, Waitable,
};
use switchboard::Error;
use util::{done, hear, hold, role, say, unique, Peer, Watchdog};

const LONG: Duration = Duration::from_secs(60);

#[test]
fn mapping_s11_mutex_create_or_open_across_processes() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        let m = Mutex::create(util::args()[0].as_str(), true).unwrap();
        say(&format!("existed={}", m.already_existed()));
        hear();
        m.release().unwrap();
        hold("released");
    }
    let n = unique("s11");
    assert!(matches!(Mutex::open(&n), Err(Error::NotFound(_))));
    let mut peer = Peer::spawn("mapping_s11_mutex_create_or_open_across_processes", "owner", &[&n]);
    peer.expect("existed=false");
    let m = Mutex::create(n.as_str(), true).unwrap();
    assert!(m.already_existed());
    assert_eq!(m.try_wait(), WaitStatus::TimedOut, "initially_owned is ignored for an existing mutex");
    let opened = Mutex::open(&n).unwrap();
    peer.tell("release");
    peer.expect("released");
    assert_eq!(opened.wait_timeout(LONG), WaitStatus::Acquired);
    opened.release().unwrap();
    peer.dismiss();
}

#[test]
fn mapping_s12_mutex_is_recursive_and_only_its_owner_releases() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        let m = Mutex::open(&util::args()[0]).unwrap();
        let err = m.release().unwrap_err();
        say(&format!("release {}", err.win32()));
        done();
    }
    let n = unique("s12");
    let m = Mutex::create(n.as_str(), false).unwrap();
    for _ in 0..3 {
        assert_eq!(m.wait(), WaitStatus::Acquired);
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(m.try_wait(), WaitStatus::TimedOut);
            assert!(matches!(m.release(), Err(Error::NotOwner)));
        });
    });
    let mut peer = Peer::spawn("mapping_s12_mutex_is_recursive_and_only_its_owner_releases", "other", &[&n]);
    assert_eq!(peer.next(), "release 288");
    peer.finish();
    m.release().unwrap();
    m.release().unwrap();
    assert!(m.owner().is_some(), "one acquisition left");
    m.release().unwrap();
    assert!(m.owner().is_none());
    assert_eq!(m.release().unwrap_err().win32(), 288);
}

/// Peer role of the mutex tests: take the mutex named by the first argument
/// and hold it until the parent says to go on (or kills us).
fn own_mutex_until_told() -> ! {
    let m = Mutex::open(&util::args()[0]).unwrap();
    assert_eq!(m.wait(), WaitStatus::Acquired);
    hold("owned")
}

/// Peer role of the wait tests: say "waiting", wait once on `obj`, say
/// "released", exit.
fn wait_once_then_exit(obj: &dyn Waitable) -> ! {
    say("waiting");
    assert_eq!(obj.wait_timeout(LONG), WaitStatus::Acquired);
    say("released");
    done()
}

#[test]
fn mapping_s13_owner_killed_abandons_the_mutex_to_the_next_waiter() {
    let _w = Watchdog::test();
    if role().is_some() {
        own_mutex_until_told();
    }
    let n = unique("s13");
    let m = Mutex::create(n.as_str(), false).unwrap();
    let mut peer = Peer::spawn("mapping_s13_owner_killed_abandons_the_mutex_to_the_next_waiter", "owner", &[&n]);
    peer.expect("owned");
    assert_eq!(m.owner().map(|(_, pid)| pid), Some(peer.pid));
    std::thread::scope(|s| {
        // A waiter blocked with no timeout while the owner is killed.
        let waiter = s.spawn(|| {
            let status = m.wait();
            let owner = m.owner();
            m.release().unwrap();
            (status, owner)
        });
        peer.kill9();
        let (status, owner) = waiter.join().unwrap();
        assert_eq!(status, WaitStatus::Abandoned);
        assert_eq!(owner.map(|(_, pid)| pid), Some(std::process::id()), "the waiter owns it");
    });
    assert_eq!(m.try_wait(), WaitStatus::Acquired, "after release it is an ordinary mutex again");
    m.release().unwrap();
}

/// ntdll `sync.c` (test_mutant, `NtQueryMutant`): the recursion count,
/// whether the caller owns it, and the abandoned state — set while the
/// owner (another process, killed) is dead and nobody has taken it, cleared
/// by the next acquisition.
#[test]
fn mapping_s13_wine_test_mutant_query_reports_recursion_owner_and_abandonment() {
    let _w = Watchdog::test();
    if role().is_some() {
        own_mutex_until_told();
    }
    let n = unique("s13q");
    let m = Mutex::create(n.as_str(), true).unwrap();
    assert_eq!(m.wait_timeout(Duration::ZERO), WaitStatus::Acquired);
    let info = m.info();
    assert_eq!((info.recursion, info.owned_by_caller, info.abandoned), (2, true, false));
    m.release().unwrap();
    m.release().unwrap();
    assert_eq!(m.info(), MutexInfo { owner: None, recursion: 0, owned_by_caller: false, abandoned: false });
    let mut peer =
        Peer::spawn("mapping_s13_wine_test_mutant_query_reports_recursion_owner_and_abandonment", "owner", &[&n]);
    peer.expect("owned");
    let info = m.info();
    assert_eq!((info.recursion, info.owned_by_caller, info.abandoned), (1, false, false));
    peer.kill9();
    assert!(m.info().abandoned, "its owner died holding it");
    assert_eq!(m.wait_timeout(Duration::ZERO), WaitStatus::Abandoned);
    let info = m.info();
    assert_eq!((info.recursion, info.owned_by_caller, info.abandoned), (1, true, false), "taken over");
    m.release().unwrap();
}

/// `SignalObjectAndWait`: signal one object, then wait on another; a peer
/// that answers the signal by signalling back is never missed. A failed
/// signal (a mutex the caller does not own) waits for nothing.
#[test]
fn mapping_s19_signal_and_wait_signals_one_and_waits_on_another() {
    let _w = Watchdog::test();
    let test = "mapping_s19_signal_and_wait_signals_one_and_waits_on_another";
    if role().is_some() {
        let a = util::args();
        let ping = Event::open(&a[0]).unwrap();
        let pong = Semaphore::open(&a[1]).unwrap();
        for _ in 0..100 {
            assert_eq!(ping.wait_timeout(LONG), WaitStatus::Acquired);
            pong.release(1).unwrap();
        }
        done();
    }
    let (ping_name, pong_name) = (unique("s19ping"), unique("s19pong"));
    let ping = Event::create(ping_name.as_str(), false, false).unwrap();
    let pong = Semaphore::create(pong_name.as_str(), 0, 1).unwrap();
    let mut peer = Peer::spawn(test, "ponger", &[&ping_name, &pong_name]);
    for _ in 0..100 {
        assert_eq!(signal_and_wait(&ping, &pong, LONG).unwrap(), WaitStatus::Acquired);
    }
    peer.finish();
    let m = Mutex::create(None, false).unwrap();
    assert!(matches!(signal_and_wait(&m, &pong, LONG), Err(Error::NotOwner)), "not the owner: no wait");
}

/// Wine `sync.c` test_signalandwait, call by call: an auto-reset event
/// signalled and waited on in one call is taken by the wait; a wait on an
/// unsignalled object times out after the signal went through; a semaphore
/// signalled past its maximum fails (TOO_MANY_POSTS, 298) and nothing is
/// waited for; 64 signalled events satisfy one wait.
#[test]
fn mapping_s19_wine_test_signalandwait_call_by_call() {
    let zero = Duration::ZERO;
    let (e0, e1) = (Event::create(None, false, false).unwrap(), Event::create(None, true, true).unwrap());
    assert_eq!(signal_and_wait(&e0, &e1, zero).unwrap(), WaitStatus::Acquired);
    assert!(e0.is_set(), "e0 is now signalled");
    assert_eq!(signal_and_wait(&e0, &e0, zero).unwrap(), WaitStatus::Acquired);
    assert_eq!(e0.try_wait(), WaitStatus::TimedOut, "the wait took the auto-reset event");
    assert_eq!(signal_and_wait(&e0, &e0, zero).unwrap(), WaitStatus::Acquired);
    e1.reset();
    assert_eq!(signal_and_wait(&e0, &e1, zero).unwrap(), WaitStatus::TimedOut);
    assert!(e0.is_set(), "signalled even though the wait timed out");

    let (s0, s1) = (Semaphore::create(None, 0, 1).unwrap(), Semaphore::create(None, 1, 1).unwrap());
    assert_eq!(signal_and_wait(&s0, &s1, zero).unwrap(), WaitStatus::Acquired);
    let e = signal_and_wait(&s0, &s1, zero).unwrap_err();
    assert_eq!(e.win32(), 298, "{e:?}");
    assert_eq!(s1.count(), 0, "nothing was waited for");
    assert_eq!(s0.release(1).unwrap_err().win32(), 298);
    assert_eq!(s1.release(1).unwrap(), 0);

    let events: Vec<Event> = (0..64).map(|_| Event::create(None, true, true).unwrap()).collect();
    let all: Vec<&dyn Waitable> = events.iter().map(|e| e as &dyn Waitable).collect();
    assert_eq!(wait_any(&all, zero).unwrap(), WaitMany::Signaled(0));
    assert_eq!(wait_all(&all, zero).unwrap(), WaitMany::Signaled(0));
    let e = Event::create(None, true, true).unwrap();
    let too_many: Vec<&dyn Waitable> = all.iter().copied().chain([&e as &dyn Waitable]).collect();
    assert_eq!(wait_any(&too_many, zero).unwrap_err().win32(), 87, "65 objects");
}

#[test]
fn mapping_s14_mutex_wait_returns_acquired_abandoned_or_timeout() {
    let _w = Watchdog::test();
    if role().is_some() {
        own_mutex_until_told();
    }
    let n = unique("s14");
    let m = Mutex::create(n.as_str(), false).unwrap();
    let mut peer = Peer::spawn("mapping_s14_mutex_wait_returns_acquired_abandoned_or_timeout", "owner", &[&n]);
    peer.expect("owned");
    assert_eq!(m.wait_timeout(Duration::from_millis(30)), WaitStatus::TimedOut);
    assert_eq!(m.try_wait(), WaitStatus::TimedOut);
    peer.kill9();
    assert_eq!(m.wait_timeout(LONG), WaitStatus::Abandoned);
    assert_eq!(m.wait_timeout(Duration::ZERO), WaitStatus::Acquired, "recursive re-acquire");
    m.release().unwrap();
    m.release().unwrap();
}

#[test]
fn mapping_s15_semaphore_release_returns_previous_and_refuses_past_maximum() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        let s = Semaphore::open(&util::args()[0]).unwrap();
        say(&format!("previous={}", s.release(2).unwrap()));
        let err = s.release(5).unwrap_err();
        say(&format!("error={}", err.win32()));
        done();
    }
    let n = unique("s15");
    assert!(matches!(Semaphore::create(None, 3, 2), Err(Error::InvalidParameter(_))));
    assert!(matches!(Semaphore::create(None, 0, 0), Err(Error::InvalidParameter(_))));
    let s = Semaphore::create(n.as_str(), 1, 4).unwrap();
    let mut peer =
        Peer::spawn("mapping_s15_semaphore_release_returns_previous_and_refuses_past_maximum", "releaser", &[&n]);
    assert_eq!(peer.next(), "previous=1");
    assert_eq!(peer.next(), "error=298");
    peer.finish();
    assert_eq!(s.count(), 3, "the refused release changed nothing");
    assert!(matches!(s.release(2), Err(Error::TooManyPosts)));
    assert_eq!(s.release(1).unwrap(), 3);
}

#[test]
fn mapping_s16_semaphore_wait_decrements_or_times_out() {
    let _w = Watchdog::test();
    if role().is_some() {
        wait_once_then_exit(&Semaphore::open(&util::args()[0]).unwrap());
    }
    let n = unique("s16");
    let s = Semaphore::create(n.as_str(), 1, 10).unwrap();
    assert_eq!(s.wait(), WaitStatus::Acquired);
    assert_eq!(s.count(), 0);
    assert_eq!(s.wait_timeout(Duration::from_millis(20)), WaitStatus::TimedOut);
    let mut peer = Peer::spawn("mapping_s16_semaphore_wait_decrements_or_times_out", "waiter", &[&n]);
    peer.expect("waiting");
    s.release(1).unwrap();
    peer.expect("released");
    peer.finish();
    assert_eq!(s.count(), 0, "the peer's wait took the count");
}

#[test]
fn mapping_s17_event_set_reset_pulse_wait() {
    let _w = Watchdog::test();
    if role().is_some() {
        wait_once_then_exit(&Event::open(&util::args()[0]).unwrap());
    }
    let n = unique("s17");
    let e = Event::create(n.as_str(), true, true).unwrap();
    assert!(e.is_set() && e.is_manual_reset());
    e.reset();
    assert_eq!(e.wait_timeout(Duration::from_millis(20)), WaitStatus::TimedOut);
    e.pulse();
    assert!(!e.is_set(), "a pulse with no waiters leaves the event unsignalled");
    let mut peer = Peer::spawn("mapping_s17_event_set_reset_pulse_wait", "waiter", &[&n]);
    peer.expect("waiting");
    e.set();
    peer.expect("released");
    peer.finish();
    // A pulse releases a thread that is waiting at the time.
    e.reset();
    std::thread::scope(|s| {
        let t = s.spawn(|| e.wait_timeout(LONG));
        util::eventually("the thread is waiting", || e.waiters() > 0);
        e.pulse();
        assert_eq!(t.join().unwrap(), WaitStatus::Acquired);
    });
    assert!(!e.is_set());
}

/// Wine `sync.c` (test_event): `PulseEvent` on an auto-reset event that is
/// set and has no waiter leaves it reset, as it does a manual-reset one.
#[test]
fn mapping_s17_wine_test_event_pulse_leaves_a_set_event_reset() {
    for manual in [false, true] {
        let e = Event::create(None, manual, true).unwrap();
        assert!(e.pulse(), "it was set");
        assert!(!e.is_set(), "manual reset {manual}: reset after the pulse");
        assert_eq!(e.wait_timeout(Duration::ZERO), WaitStatus::TimedOut);
        // ntdll sync.c: set and reset give the previous state.
        assert!(!e.set() && e.set(), "manual reset {manual}: unset, then set");
        assert!(e.reset() && !e.reset(), "manual reset {manual}: set, then unset");
    }
}

#[test]
fn mapping_s18_auto_reset_releases_one_manual_releases_all() {
    let _w = Watchdog::test();
    if role().is_some() {
        wait_once_then_exit(&Event::open(&util::args()[0]).unwrap());
    }
    let test = "mapping_s18_auto_reset_releases_one_manual_releases_all";
    // Auto-reset: each set releases exactly one of two waiters.
    let n = unique("s18a");
    let auto = Event::create(n.as_str(), false, false).unwrap();
    let mut waiters: Vec<Peer> = (0..2).map(|_| Peer::spawn(test, "waiter", &[&n])).collect();
    waiters.iter_mut().for_each(|p| p.expect("waiting"));
    auto.set();
    let first = wait_for_release(&mut waiters);
    assert!(!auto.is_set(), "the released waiter consumed the set");
    auto.set();
    let second = wait_for_release(&mut waiters);
    assert_ne!(first, second);
    assert!(!auto.is_set(), "the second set released the second waiter: the first set released only one");
    // Manual-reset: one set releases all three and stays set.
    let n = unique("s18m");
    let manual = Event::create(n.as_str(), true, false).unwrap();
    let mut waiters: Vec<Peer> = (0..3).map(|_| Peer::spawn(test, "waiter", &[&n])).collect();
    waiters.iter_mut().for_each(|p| p.expect("waiting"));
    manual.set();
    for p in &mut waiters {
        p.expect("released");
        p.finish();
    }
    assert!(manual.is_set(), "manual-reset stays set until reset");
    manual.reset();
    assert!(!manual.is_set());
}

/// Waits for a "released" line from any of `peers` (they are all blocked on
/// the same event) and returns the index of the one that said it.
fn wait_for_release(peers: &mut [Peer]) -> usize {
    let until = std::time::Instant::now() + LONG;
    loop {
        for (i, p) in peers.iter_mut().enumerate() {
            if p.try_next().as_deref() == Some("released") {
                p.finish();
                return i;
            }
        }
        assert!(std::time::Instant::now() < until, "no waiter was released");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn mapping_s19_wait_any_and_wait_all_across_processes() {
    let _w = Watchdog::test();
    if let Some(r) = role() {
        let a = util::args();
        let m = Mutex::open(&a[0]).unwrap();
        let s = Semaphore::open(&a[1]).unwrap();
        let e = Event::open(&a[2]).unwrap();
        assert_eq!(m.wait(), WaitStatus::Acquired);
        say("holding");
        match hear().as_str() {
            "set" => {
                e.set();
            }
            _ => {
                s.release(1).unwrap();
                e.set();
                m.release().unwrap();
            }
        }
        say("done");
        if r == "any" {
            // Stay alive (holding the mutex) until the parent has checked
            // that the event, not the mutex, woke it.
            hear();
        }
        done();
    }
    let test = "mapping_s19_wait_any_and_wait_all_across_processes";
    let (mn, sn, en) = (unique("s19m"), unique("s19s"), unique("s19e"));
    let m = Mutex::create(mn.as_str(), false).unwrap();
    let s = Semaphore::create(sn.as_str(), 0, 1).unwrap();
    let e = Event::create(en.as_str(), false, false).unwrap();
    let objs: [&dyn Waitable; 3] = [&m, &s, &e];
    assert!(matches!(wait_any(&[], None), Err(Error::InvalidParameter(_))));
    assert!(matches!(wait_all(&[&m, &m], None), Err(Error::InvalidParameter(_))));

    let mut peer = Peer::spawn(test, "any", &[&mn, &sn, &en]);
    peer.expect("holding");
    assert_eq!(wait_any(&objs, Some(Duration::from_millis(20))).unwrap(), WaitMany::TimedOut);
    peer.tell("set");
    assert_eq!(wait_any(&objs, Some(LONG)).unwrap(), WaitMany::Signaled(2));
    assert!(!e.is_set(), "wait_any took the auto-reset event");
    peer.expect("done");
    peer.tell("exit holding the mutex");
    peer.finish();
    // The peer exited holding the mutex: wait_any reports it abandoned.
    assert_eq!(wait_any(&objs, Some(LONG)).unwrap(), WaitMany::Abandoned(0));
    m.release().unwrap();

    let mut peer = Peer::spawn(test, "all", &[&mn, &sn, &en]);
    peer.expect("holding");
    assert_eq!(wait_all(&objs, Some(Duration::from_millis(20))).unwrap(), WaitMany::TimedOut);
    assert_eq!(s.count(), 0, "a timed-out wait_all took nothing");
    peer.tell("all");
    assert_eq!(wait_all(&objs, Some(LONG)).unwrap(), WaitMany::Signaled(0));
    assert_eq!(m.owner().map(|(_, p)| p), Some(std::process::id()));
    assert_eq!((s.count(), e.is_set()), (0, false), "wait_all took every object");
    peer.expect("done");
    peer.finish();
    m.release().unwrap();
}

/// Wine `sync.c` (test_waitable_timer): a named manual-reset timer set in
/// one process releases a waiter in another when it comes due (the waiter
/// sleeps until the due time: its own timeout is far longer), and stays
/// signalled until it is set again; cancel stops a running timer.
#[test]
fn mapping_s19_wine_test_waitable_timer_across_processes() {
    let _w = Watchdog::test();
    let test = "mapping_s19_wine_test_waitable_timer_across_processes";
    if role().is_some() {
        let t = Timer::builder().name(util::args()[0].as_str()).open().unwrap();
        say("waiting");
        let started = std::time::Instant::now();
        assert_eq!(t.wait_timeout(Duration::from_secs(100)), WaitStatus::Acquired, "released when due");
        // Woken by the due time (50 ms), not by its own timeout: nothing
        // but the timer ends this wait early.
        assert!(started.elapsed() < Duration::from_secs(50), "slept until its timeout");
        say("released");
        done();
    }
    let n = unique("timer");
    let t = Timer::builder().name(n.as_str()).manual_reset(true).create().unwrap();
    assert!(t.is_manual_reset() && !t.is_signalled(), "created not running");
    let mut peer = Peer::spawn(test, "waiter", &[&n]);
    peer.expect("waiting");
    assert!(!t.set(Duration::from_millis(50), None), "it was not running");
    peer.expect("released");
    peer.finish();
    assert!(t.is_signalled(), "a manual-reset timer stays signalled");
    assert_eq!(t.wait_timeout(Duration::ZERO), WaitStatus::Acquired);
    t.set(Duration::from_secs(3600), None);
    assert!(!t.is_signalled(), "set again: unsignalled until due");
    assert!(t.cancel(), "it was running");
    assert_eq!(t.wait_timeout(Duration::from_millis(20)), WaitStatus::TimedOut);
}

/// An auto-reset (synchronization) timer releases one wait per firing; a
/// periodic one fires again one period later, and a wait-any over a timer
/// and an event takes whichever is signalled.
#[test]
fn mapping_s19_wine_test_waitable_timer_auto_reset_and_periodic() {
    let _w = Watchdog::test();
    let t = Timer::builder().create().unwrap();
    t.set(Duration::ZERO, None);
    assert_eq!(t.wait_timeout(LONG), WaitStatus::Acquired);
    assert_eq!(t.wait_timeout(Duration::ZERO), WaitStatus::TimedOut, "one-shot: one firing");
    t.set(Duration::ZERO, Some(Duration::from_millis(10)));
    for firing in 0..3 {
        assert_eq!(t.wait_timeout(LONG), WaitStatus::Acquired, "firing {firing}");
    }
    t.set(Duration::ZERO, Some(Duration::from_secs(3600)));
    assert_eq!(t.wait_timeout(LONG), WaitStatus::Acquired);
    assert_eq!(t.wait_timeout(Duration::ZERO), WaitStatus::TimedOut, "the next firing is an hour on");
    let e = Event::create(None, false, false).unwrap();
    t.set(Duration::from_millis(30), None);
    assert_eq!(wait_any(&[&e, &t], LONG).unwrap(), WaitMany::Signaled(1), "the timer, when due");
}

/// Spec 01-S19 over the handles that are not sync objects (Wine `sync.c`
/// test_WaitForMultipleObjects with file and process handles): a port, a
/// named pipe end, a mailslot and a process wait beside an event, each
/// signalled by another process, and the wait takes nothing — the packet,
/// the bytes and the message are still there for the call that reads them.
#[test]
fn mapping_s19_wine_test_waitformultipleobjects_port_pipe_mailslot_and_process() {
    use switchboard::mailslot::{Mailslot, MailslotClient};
    use switchboard::pipe::named::{PipeClient, PipeServer};
    use switchboard::port::Port;
    use switchboard::process::Process;
    let _w = Watchdog::test();
    if role().is_some() {
        let a = util::args();
        let port = Port::open(&a[0]).unwrap();
        let pipe = PipeClient::open(&a[1]).unwrap();
        let slot = MailslotClient::open(&a[2]).unwrap();
        say("open");
        loop {
            match hear().as_str() {
                "post" => port.post(7, 8, 9).unwrap(),
                "pipe" => pipe.write(b"bytes").unwrap(),
                "slot" => slot.write(b"message").unwrap(),
                _ => hold("holding"),
            }
            say("sent");
        }
    }
    let test = "mapping_s19_wine_test_waitformultipleobjects_port_pipe_mailslot_and_process";
    let (pn, sn, mn) = (unique("s19port"), unique("s19pipe"), unique("s19slot"));
    let port = Port::create(pn.as_str(), 0).unwrap();
    let server = PipeServer::create(&sn).unwrap();
    let slot = Mailslot::create(&mn, 0, Duration::ZERO).unwrap();
    let quit = Event::create(None, true, false).unwrap();
    let short = Some(Duration::from_millis(20));

    // A server instance with no client is never signalled.
    assert_eq!(wait_any(&[&quit, &server], short).unwrap(), WaitMany::TimedOut);

    let mut peer = Peer::spawn(test, "peer", &[&pn, &sn, &mn]);
    peer.expect("open");
    server.connect().unwrap();
    let process = Process::open(peer.pid).unwrap();
    let objs: [&dyn Waitable; 5] = [&quit, &port, &server, &slot, &process];
    assert_eq!(wait_any(&objs, short).unwrap(), WaitMany::TimedOut);

    peer.tell("post");
    assert_eq!(wait_any(&objs, Some(LONG)).unwrap(), WaitMany::Signaled(1), "the port, once a packet is queued");
    peer.expect("sent");
    assert_eq!(wait_any(&objs, short).unwrap(), WaitMany::Signaled(1), "the wait took nothing");
    let p = port.get(Duration::ZERO).unwrap();
    assert_eq!((p.bytes, p.key, p.overlapped), (7, 8, 9));
    assert_eq!(wait_any(&objs, short).unwrap(), WaitMany::TimedOut);

    peer.tell("pipe");
    assert_eq!(wait_any(&objs, Some(LONG)).unwrap(), WaitMany::Signaled(2), "the pipe end, once data came");
    peer.expect("sent");
    assert_eq!(server.wait_timeout(Duration::ZERO), WaitStatus::Acquired, "the wait read nothing");
    let mut buf = [0u8; 16];
    assert_eq!(server.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"bytes");

    peer.tell("slot");
    assert_eq!(wait_any(&objs, Some(LONG)).unwrap(), WaitMany::Signaled(3), "the mailslot, once a message came");
    peer.expect("sent");
    assert_eq!(slot.read(&mut buf).unwrap(), 7, "the wait read nothing");
    assert_eq!(wait_any(&objs, short).unwrap(), WaitMany::TimedOut);

    // The peer is killed: its pipe end hangs up (a read would not wait)
    // and the process is signalled, and stays so.
    peer.kill9();
    assert_eq!(wait_all(&[&server, &process], Some(LONG)).unwrap(), WaitMany::Signaled(0));
    assert_eq!(wait_any(&[&quit, &process], short).unwrap(), WaitMany::Signaled(1));
    assert!(process.has_ended());
    assert!(matches!(Process::open(u32::MAX >> 2), Err(Error::InvalidParameter(_))));
}

/// Wait-all over a process that already ended and a mutex another process
/// holds: the waiter sleeps (it does not spin through a descriptor that
/// stays readable) until the mutex comes free, then owns it.
#[test]
fn mapping_s19_wait_all_over_an_ended_process_and_a_held_mutex_sleeps_until_both() {
    use switchboard::process::Process;
    let _w = Watchdog::test();
    if role().is_some() {
        let m = Mutex::open(&util::args()[0]).unwrap();
        assert_eq!(m.wait(), WaitStatus::Acquired);
        say("holding");
        hear();
        m.release().unwrap();
        hold("released");
    }
    let test = "mapping_s19_wait_all_over_an_ended_process_and_a_held_mutex_sleeps_until_both";
    let mn = unique("s19all");
    let m = Mutex::create(mn.as_str(), false).unwrap();
    let mut ended = std::process::Command::new("true").spawn().unwrap();
    let gone = Process::open(ended.id()).unwrap();
    ended.wait().unwrap();
    assert!(gone.has_ended());
    let mut peer = Peer::spawn(test, "holder", &[&mn]);
    peer.expect("holding");
    std::thread::scope(|s| {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (gone, m) = (&gone, &m);
        let waiter = util::spawn_asleep(s, move || {
            tid_tx.send(switchboard_sys::process::tid()).unwrap();
            let got = wait_all(&[gone, m], Some(LONG)).unwrap();
            let owner = m.owner();
            m.release().unwrap();
            (got, owner)
        });
        let tid = tid_rx.recv().unwrap();
        // Asleep, and staying asleep: a spin through the bridge would
        // switch in and out of the kernel thousands of times a second.
        let switches = |tid: u32| -> u64 {
            let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let before = switches(tid);
        std::thread::sleep(Duration::from_millis(300));
        let woke = switches(tid) - before;
        assert!(woke < 50, "the wait-all thread woke {woke} times in 300 ms");
        peer.tell("release");
        let (got, owner) = waiter.join().unwrap();
        assert_eq!(got, WaitMany::Signaled(0));
        assert_eq!(owner.map(|(_, p)| p), Some(std::process::id()), "wait-all took the mutex");
    });
    peer.expect("released");
    peer.dismiss();
}
