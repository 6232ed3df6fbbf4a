//! Spec 00 — names, scopes, lifetime, handle sharing. One test per statement.

mod util;

use std::time::Duration;

use switchboard::mapping::{Access, Mapping};
use switchboard::name::{Name, Scope};
use switchboard::namespace::{list, Acl, Kind, Principal};
use switchboard::sync::{Event, Mutex, Semaphore, WaitStatus};
use switchboard::{Connection, Error, HandleValue};
use util::{done, hear, hold, role, say, unique, Peer, Watchdog};

const NOBODY: u32 = 65534;

#[test]
fn names_s01_invalid_names_are_rejected_and_nothing_created() {
    let bad = [String::new(), "Local\\".into(), "a\\b".into(), "a\0b".into(), "x".repeat(257), "Other\\x".into()];
    for name in &bad {
        let err = Event::create(name.as_str(), true, false).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
        assert_eq!(err.win32(), 123);
        assert!(Mapping::create(name.as_str(), 4096).is_err());
    }
    let longest = format!("{}{}", unique("s01"), "y".repeat(200));
    let longest: String = longest.chars().take(256).collect();
    let e = Event::create(longest.as_str(), true, false).unwrap();
    assert!(util::listed(&longest), "a 256-character name is valid and listed");
    drop(e);
    assert!(!list().iter().any(|e| e.name.contains('\\')));
}

#[test]
fn names_s02_forms_and_scopes() {
    let _w = Watchdog::test();
    let n = unique("s02");
    // Plain NAME and Local\NAME are the same object; Global\NAME is another.
    let local = Mutex::create(n.as_str(), false).unwrap();
    let same = Mutex::open(&format!("Local\\{n}")).unwrap();
    assert!(!local.already_existed() && same.already_existed());
    assert!(matches!(Mutex::open(&format!("Global\\{n}")), Err(Error::NotFound(_))));
    let global = Mutex::create(format!("Global\\{n}").as_str(), false).unwrap();
    assert!(!global.already_existed());
    assert!(list().iter().any(|e| e.name == n && e.scope == Scope::Global));
    assert!(list().iter().any(|e| e.name == n && e.scope == Scope::Local));
    // The pipe and mailslot forms parse into their own kinds.
    assert_eq!(Name::parse(r"\\.\pipe\p").unwrap(), Name::Pipe("p".into()));
    assert!(matches!(Name::parse(r"\\host\pipe\p").unwrap(), Name::RemotePipe { .. }));
    assert!(matches!(Name::parse(r"\\*\mailslot\m").unwrap(), Name::MailslotBroadcast { domain: None, .. }));
    assert!(matches!(Name::parse(r"\\dom\mailslot\m").unwrap(), Name::MailslotBroadcast { domain: Some(_), .. }));
    // A pipe name cannot name a kernel object.
    assert!(matches!(Event::create(r"\\.\pipe\p", true, false), Err(Error::InvalidName { .. })));
}

#[test]
fn names_s03_kernel_names_are_case_sensitive_pipe_names_are_not() {
    let n = unique("S03-Case");
    let _e = Event::create(n.as_str(), true, false).unwrap();
    assert!(matches!(Event::open(&n.to_lowercase()), Err(Error::NotFound(_))));
    let other = Event::create(n.to_uppercase().as_str(), true, false).unwrap();
    assert!(!other.already_existed(), "a differently-cased name is another object");
    assert_eq!(Name::parse(r"\\.\PIPE\Build").unwrap(), Name::parse(r"\\.\pipe\build").unwrap());
    assert_eq!(Name::parse(r"\\.\MailSlot\Q").unwrap(), Name::parse(r"\\.\mailslot\q").unwrap());
}

#[test]
fn names_s04_kernel_kinds_share_one_namespace() {
    let _w = Watchdog::test();
    if let Some(r) = role() {
        assert_eq!(r, "event-holder");
        let _e = Event::create(util::args()[0].as_str(), true, false).unwrap();
        hold("created");
    }
    let n = unique("s04");
    let mut peer = Peer::spawn("names_s04_kernel_kinds_share_one_namespace", "event-holder", &[&n]);
    peer.expect("created");
    let err = Mapping::create(n.as_str(), 4096).unwrap_err();
    assert_eq!(err.win32(), 6, "{err}");
    assert!(matches!(Mutex::create(n.as_str(), false), Err(Error::InvalidHandle { .. })));
    assert!(matches!(Semaphore::open(&n), Err(Error::InvalidHandle { .. })));
    // The holder's event is unaffected.
    let e = Event::open(&n).unwrap();
    e.set();
    assert!(e.is_set());
    peer.dismiss();
}

#[test]
fn names_s05_create_existing_opens_it_and_its_parameters_win() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        let a = util::args();
        let s = Semaphore::create(a[0].as_str(), 0, 100).unwrap();
        hold(&format!("existed={}", s.already_existed()));
    }
    let test = "names_s05_create_existing_opens_it_and_its_parameters_win";
    let n = unique("s05");
    // Four processes race to create; exactly one creates, the rest open.
    let mut peers: Vec<Peer> = (0..4).map(|_| Peer::spawn(test, "creator", &[&n])).collect();
    let created = peers.iter_mut().map(|p| p.next()).filter(|l| l == "existed=false").count();
    assert_eq!(created, 1, "exactly one process created the semaphore");
    let mine = Semaphore::create(n.as_str(), 3, 5).unwrap();
    assert!(mine.already_existed());
    assert_eq!((mine.count(), mine.maximum()), (0, 100), "the existing object's parameters win");
    for p in &mut peers {
        p.dismiss();
    }
}

#[test]
fn names_s06_opening_a_missing_name_is_not_found() {
    let n = unique("s06");
    for err in [
        Event::open(&n).unwrap_err(),
        Mutex::open(&n).unwrap_err(),
        Semaphore::open(&n).unwrap_err(),
        Mapping::open(&n, Access::Read).unwrap_err(),
    ] {
        assert!(matches!(err, Error::NotFound(_)), "{err}");
        assert_eq!(err.win32(), 2);
    }
}

#[test]
fn names_s07_object_outlives_its_creator_and_dies_with_its_last_holder() {
    let _w = Watchdog::test();
    if let Some(r) = role() {
        let n = &util::args()[0];
        let m = match r.as_str() {
            "creator" => Mapping::create(n.as_str(), 4096).unwrap(),
            _ => Mapping::open(n, Access::Write).unwrap(),
        };
        if r == "creator" {
            m.map_view(Access::Write, 0, 0).unwrap().write(0, b"kept").unwrap();
        }
        let _mutex = Mutex::create(format!("{n}-mutex").as_str(), true).unwrap();
        hold("holding");
    }
    let test = "names_s07_object_outlives_its_creator_and_dies_with_its_last_holder";
    let before = util::disk_snapshot();
    let n = unique("s07");
    let mut creator = Peer::spawn(test, "creator", &[&n]);
    creator.expect("holding");
    let mut holder = Peer::spawn(test, "holder", &[&n]);
    holder.expect("holding");
    creator.kill9();
    // The surviving holder keeps the object alive and answers openers.
    let m = Mapping::open(&n, Access::Read).unwrap();
    assert_eq!(m.map_view(Access::Read, 0, 4).unwrap().read_vec(0, 4).unwrap(), b"kept");
    drop(m);
    holder.kill9();
    util::eventually("the names disappear after the last holder is killed", || !util::listed(&n));
    assert!(matches!(Mapping::open(&n, Access::Read), Err(Error::NotFound(_))));
    assert!(matches!(Mutex::open(&format!("{n}-mutex")), Err(Error::NotFound(_))));
    assert_eq!(util::disk_snapshot(), before, "nothing left on disk");
}

#[test]
fn names_s07_creator_killed_mid_creation_leaves_nothing_and_blocks_no_one() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        // Bind the object's address the way a creator does first, then stop
        // before publishing: the moment a kill -9 is most awkward.
        let n = &util::args()[0];
        let addr = format!("sb1/L{}/k/{n}", switchboard_sys::process::uid());
        let _l = switchboard_sys::socket::Listener::bind(addr.as_bytes()).unwrap();
        hold("half-created");
    }
    let n = unique("s07half");
    let mut peer = Peer::spawn("names_s07_creator_killed_mid_creation_leaves_nothing_and_blocks_no_one", "half", &[&n]);
    peer.expect("half-created");
    peer.kill9();
    let e = Event::create(n.as_str(), false, false).unwrap();
    assert!(!e.already_existed(), "the half-made object vanished with its creator");
}

#[test]
fn names_s08_handles_pass_over_connections_and_by_pid() {
    let _w = Watchdog::test();
    if let Some(r) = role() {
        let a = util::args();
        match r.as_str() {
            "sender" => {
                let conn = Connection::connect(a[0].as_bytes(), None).unwrap();
                let m = Mapping::create(None, 4096).unwrap();
                m.map_view(Access::Write, 0, 0).unwrap().write(0, b"passed").unwrap();
                m.send(&conn).unwrap();
                say(&format!("handle={}", m.handle()));
                hear();
            }
            _ => {
                // Another user may not take a handle from us.
                switchboard_sys::process::set_thread_ids(NOBODY, NOBODY).unwrap();
                let pid: u32 = a[0].parse().unwrap();
                let h = HandleValue(a[1].parse().unwrap());
                let err = Mapping::from_process(pid, h, Access::Read).unwrap_err();
                assert!(matches!(err, Error::HandleTakingRefused { .. }), "{err}");
                assert_eq!(err.win32(), 5);
                say(&format!("refused: {err}"));
            }
        }
        done();
    }
    let test = "names_s08_handles_pass_over_connections_and_by_pid";
    let rendezvous = unique("s08-rv");
    let listener = switchboard_sys::socket::Listener::bind(rendezvous.as_bytes()).unwrap();
    let mut sender = Peer::spawn(test, "sender", &[&rendezvous]);
    let conn = loop {
        switchboard_sys::socket::wait_readable(switchboard_sys::AsFd::as_fd(&listener), None).unwrap();
        if let Some(c) = listener.accept().unwrap() {
            break c;
        }
    };
    let received = Mapping::receive(&conn, Access::Read, Some(Duration::from_secs(60))).unwrap();
    assert_eq!(received.map_view(Access::Read, 0, 6).unwrap().read_vec(0, 6).unwrap(), b"passed");
    let handle: i32 = sender.next().strip_prefix("handle=").unwrap().parse().unwrap();
    let taken = Mapping::from_process(sender.pid, HandleValue(handle), Access::Write).unwrap();
    taken.map_view(Access::Write, 0, 0).unwrap().write(0, b"TAKEN!").unwrap();
    assert_eq!(received.map_view(Access::Read, 0, 6).unwrap().read_vec(0, 6).unwrap(), b"TAKEN!");
    // The OS refuses pidfd_getfd to an unprivileged other user: a clear error.
    let mut thief = Peer::spawn(test, "thief", &[&std::process::id().to_string(), &taken.handle().to_string()]);
    assert!(thief.next().starts_with("refused"));
    thief.finish();
    sender.dismiss();
}

#[test]
fn names_s09_other_users_are_refused_unless_the_acl_admits_them() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        switchboard_sys::process::set_thread_ids(NOBODY, NOBODY).unwrap();
        for n in util::args() {
            match Event::open(&format!("Global\\{n}")) {
                Ok(e) => {
                    e.set();
                    say("opened");
                }
                Err(e) => say(&format!("error {}", e.win32())),
            }
        }
        done();
    }
    let test = "names_s09_other_users_are_refused_unless_the_acl_admits_them";
    let (private, public, by_uid) = (unique("s09p"), unique("s09e"), unique("s09u"));
    let p = Event::create(format!("Global\\{private}").as_str(), true, false).unwrap();
    let e = Event::create_with_acl(format!("Global\\{public}").as_str(), true, false, &Acl::everyone()).unwrap();
    let u = Event::create_with_acl(
        format!("Global\\{by_uid}").as_str(),
        true,
        false,
        &Acl::owner_only().allow(Principal::Uid(NOBODY)),
    )
    .unwrap();
    let mut peer = Peer::spawn(test, "other-user", &[&private, &public, &by_uid]);
    assert_eq!(peer.next(), "error 5", "default ACL refuses another uid with AccessDenied");
    assert_eq!(peer.next(), "opened");
    assert_eq!(peer.next(), "opened");
    peer.finish();
    assert!(!p.is_set(), "the refused peer could not touch the object");
    assert_eq!(p.try_wait(), WaitStatus::TimedOut);
    assert!(e.is_set() && u.is_set());
}

#[test]
fn names_s10_listing_shows_kind_scope_name_owner_and_holders() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        let n = &util::args()[0];
        let _m = Mutex::create(n.as_str(), false).unwrap();
        let _g = Semaphore::create(format!("Global\\{n}").as_str(), 1, 1).unwrap();
        hold("created");
    }
    let n = unique("s10");
    let mut peer = Peer::spawn("names_s10_listing_shows_kind_scope_name_owner_and_holders", "creator", &[&n]);
    peer.expect("created");
    let _mine = Mutex::open(&n).unwrap();
    // A process that another test is starting right now holds copies of
    // this process's descriptors between its fork and its exec: wait for
    // the count to settle rather than catch one in that window.
    let settled = || {
        let entries: Vec<_> = list().into_iter().filter(|e| e.name == n).collect();
        (entries.len() == 2 && entries.iter().all(|e| e.holders == 1)).then_some(entries)
    };
    util::eventually("the listing settles on the peer as the only other holder", || settled().is_some());
    let entries = settled().unwrap_or_else(|| list().into_iter().filter(|e| e.name == n).collect());
    assert_eq!(entries.len(), 2, "{entries:?}");
    let local = entries.iter().find(|e| e.scope == Scope::Local).unwrap();
    assert_eq!((local.kind, local.owner_pid, local.holders), (Kind::Mutex, peer.pid, 1));
    let global = entries.iter().find(|e| e.scope == Scope::Global).unwrap();
    assert_eq!((global.kind, global.owner_pid, global.holders), (Kind::Semaphore, peer.pid, 1));
    peer.dismiss();
}

#[test]
fn names_s07_a_process_holding_only_a_view_killed_leaves_nothing() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        let m = Mapping::create(util::args()[0].as_str(), 65536).unwrap();
        let view = m.map_view(Access::Write, 0, 0).unwrap();
        drop(m);
        view.write(0, b"view only").unwrap();
        hold("holding a view");
    }
    let before = util::disk_snapshot();
    let n = unique("s07view");
    let mut peer = Peer::spawn("names_s07_a_process_holding_only_a_view_killed_leaves_nothing", "viewer", &[&n]);
    peer.expect("holding a view");
    assert!(util::listed(&n), "a view alone keeps the name alive");
    peer.kill9();
    util::eventually("the name disappears with the killed view holder", || !util::listed(&n));
    assert_eq!(util::disk_snapshot(), before);
}

#[test]
fn names_s07_kill9_at_random_points_never_hangs_or_leaks() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        // Churn through every operation on shared objects until killed.
        let n = &util::args()[0];
        say("churning");
        loop {
            let m = Mutex::create(format!("{n}-m").as_str(), false).unwrap();
            let status = m.wait_timeout(Duration::from_secs(60));
            assert_ne!(status, WaitStatus::TimedOut);
            let map = Mapping::create(format!("{n}-map").as_str(), 4096).unwrap();
            map.map_view(Access::Write, 0, 0).unwrap().write(0, &[7u8; 4096]).unwrap();
            Event::create(format!("{n}-e").as_str(), false, false).unwrap().set();
            let s = Semaphore::create(format!("{n}-s").as_str(), 0, 1_000_000).unwrap();
            let _ = s.release(1);
            m.release().unwrap();
        }
    }
    let test = "names_s07_kill9_at_random_points_never_hangs_or_leaks";
    let before = util::disk_snapshot();
    let n = unique("s07chaos");
    let random = std::collections::hash_map::RandomState::new();
    // We hold the objects throughout, so they outlive every killed peer and
    // each round checks what the kills left in them.
    let mutex = Mutex::create(format!("{n}-m").as_str(), false).unwrap();
    let map = Mapping::create(format!("{n}-map").as_str(), 4096).unwrap();
    let view = map.map_view(Access::Read, 0, 0).unwrap();
    let mut abandoned = 0;
    for round in 0..12u64 {
        let mut peers: Vec<Peer> = (0..3).map(|_| Peer::spawn(test, "churn", &[&n])).collect();
        for (i, p) in peers.iter_mut().enumerate() {
            p.expect("churning");
            // Fault injection, not synchronisation: let it run a random
            // while so the kill lands at an arbitrary instruction.
            let jitter = std::hash::BuildHasher::hash_one(&random, (round, i)) % 20_000;
            std::thread::sleep(Duration::from_micros(jitter));
            p.kill9();
        }
        // Whatever the peers were doing, the mutex is reachable at once:
        // free, or abandoned to us — never stuck.
        match mutex.wait_timeout(Duration::from_secs(30)) {
            WaitStatus::TimedOut => panic!("round {round}: a killed owner blocked the mutex"),
            WaitStatus::Abandoned => abandoned += 1,
            WaitStatus::Acquired => {}
        }
        mutex.release().unwrap();
        let bytes = view.read_vec(0, 4096).unwrap();
        assert!(bytes.iter().all(|b| *b == bytes[0]), "round {round}: a torn word in the mapping");
    }
    eprintln!("kill -9 chaos: {abandoned}/12 rounds ended with the mutex abandoned by a killed owner");
    drop((view, map, mutex));
    util::eventually("every churned object disappears", || !list().iter().any(|e| e.name.starts_with(&n)));
    assert_eq!(util::disk_snapshot(), before);
}
