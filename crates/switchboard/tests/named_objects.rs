//! The named-object contract (spec 00), one conformance suite run over
//! every kernel-object kind: mapping, mutex, semaphore, event, port.

mod util;

use std::time::Duration;

use switchboard::mapping::{Access, Mapping};
use switchboard::port::Port;
use switchboard::sync::{Event, Mutex, Semaphore};
use switchboard::{Connection, Error, HandleValue};
use util::{unique, Watchdog};

/// One handle on an object of any kind.
enum Obj {
    Mapping(Mapping),
    Mutex(Mutex),
    Semaphore(Semaphore),
    Event(Event),
    Port(Port),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Mapping,
    Mutex,
    Semaphore,
    Event,
    Port,
}

const KINDS: [Kind; 5] = [Kind::Mapping, Kind::Mutex, Kind::Semaphore, Kind::Event, Kind::Port];

impl Kind {
    fn create(self, name: &str) -> switchboard::Result<Obj> {
        Ok(match self {
            Kind::Mapping => Obj::Mapping(Mapping::create(name, 4096)?),
            Kind::Mutex => Obj::Mutex(Mutex::create(name, false)?),
            Kind::Semaphore => Obj::Semaphore(Semaphore::create(name, 1, 5)?),
            Kind::Event => Obj::Event(Event::create(name, true, false)?),
            Kind::Port => Obj::Port(Port::create(name, 1)?),
        })
    }

    fn open(self, name: &str) -> switchboard::Result<Obj> {
        Ok(match self {
            Kind::Mapping => Obj::Mapping(Mapping::open(name, Access::All)?),
            Kind::Mutex => Obj::Mutex(Mutex::open(name)?),
            Kind::Semaphore => Obj::Semaphore(Semaphore::open(name)?),
            Kind::Event => Obj::Event(Event::open(name)?),
            Kind::Port => Obj::Port(Port::open(name)?),
        })
    }

    fn receive(self, conn: &Connection) -> switchboard::Result<Obj> {
        let t = Some(Duration::from_secs(60));
        Ok(match self {
            Kind::Mapping => Obj::Mapping(Mapping::receive(conn, Access::All, t)?),
            Kind::Mutex => Obj::Mutex(Mutex::receive(conn, t)?),
            Kind::Semaphore => Obj::Semaphore(Semaphore::receive(conn, t)?),
            Kind::Event => Obj::Event(Event::receive(conn, t)?),
            Kind::Port => Obj::Port(Port::receive(conn, t)?),
        })
    }

    fn take(self, pid: u32, handle: HandleValue) -> switchboard::Result<Obj> {
        Ok(match self {
            Kind::Mapping => Obj::Mapping(Mapping::from_process(pid, handle, Access::All)?),
            Kind::Mutex => Obj::Mutex(Mutex::from_process(pid, handle)?),
            Kind::Semaphore => Obj::Semaphore(Semaphore::from_process(pid, handle)?),
            Kind::Event => Obj::Event(Event::from_process(pid, handle)?),
            Kind::Port => Obj::Port(Port::from_process(pid, handle)?),
        })
    }
}

impl Obj {
    fn existed(&self) -> bool {
        match self {
            Obj::Mapping(o) => o.already_existed(),
            Obj::Mutex(o) => o.already_existed(),
            Obj::Semaphore(o) => o.already_existed(),
            Obj::Event(o) => o.already_existed(),
            Obj::Port(o) => o.already_existed(),
        }
    }

    fn owner_uid(&self) -> u32 {
        match self {
            Obj::Mapping(o) => o.owner_uid(),
            Obj::Mutex(o) => o.owner_uid(),
            Obj::Semaphore(o) => o.owner_uid(),
            Obj::Event(o) => o.owner_uid(),
            Obj::Port(o) => o.owner_uid(),
        }
    }

    fn handle(&self) -> HandleValue {
        match self {
            Obj::Mapping(o) => o.handle(),
            Obj::Mutex(o) => o.handle(),
            Obj::Semaphore(o) => o.handle(),
            Obj::Event(o) => o.handle(),
            Obj::Port(o) => o.handle(),
        }
    }

    fn send(&self, conn: &Connection) -> switchboard::Result<()> {
        match self {
            Obj::Mapping(o) => o.send(conn),
            Obj::Mutex(o) => o.send(conn),
            Obj::Semaphore(o) => o.send(conn),
            Obj::Event(o) => o.send(conn),
            Obj::Port(o) => o.send(conn),
        }
    }

    /// Changes the object's state through this handle.
    fn touch(&self) {
        match self {
            Obj::Mapping(o) => o.map_view(Access::Write, 0, 0).unwrap().write(0, b"touched").unwrap(),
            Obj::Mutex(o) => assert_eq!(o.wait(), switchboard::sync::WaitStatus::Acquired),
            Obj::Semaphore(o) => {
                o.release(1).unwrap();
            }
            Obj::Event(o) => {
                o.set();
            }
            Obj::Port(o) => o.post(1, 2, 3).unwrap(),
        }
    }

    /// Whether the change made by [`Obj::touch`] through another handle
    /// shows through this one (the same object, not a copy).
    fn sees_touch(&self) -> bool {
        match self {
            Obj::Mapping(o) => o.map_view(Access::Read, 0, 7).unwrap().read_vec(0, 7).unwrap() == b"touched",
            Obj::Mutex(o) => o.owner().is_some_and(|(_, pid)| pid == std::process::id()),
            Obj::Semaphore(o) => o.count() >= 2,
            Obj::Event(o) => o.is_set(),
            Obj::Port(o) => o.get(Some(Duration::ZERO)).is_ok_and(|p| (p.bytes, p.key, p.overlapped) == (1, 2, 3)),
        }
    }
}

#[test]
fn names_s06_opening_a_name_nobody_holds_is_not_found_for_every_kind() {
    for kind in KINDS {
        let e = kind.open(&unique("nobody")).err().unwrap_or_else(|| panic!("{kind:?} opened nothing"));
        assert!(matches!(e, Error::NotFound(_)), "{kind:?}: {e}");
        assert_eq!(e.win32(), 2);
    }
}

#[test]
fn names_s05_create_again_opens_the_same_object_for_every_kind() {
    for kind in KINDS {
        let name = unique("again");
        let first = kind.create(&name).unwrap();
        assert!(!first.existed(), "{kind:?}");
        let second = kind.create(&name).unwrap();
        assert!(second.existed(), "{kind:?}: the second create opens the first");
        let opened = kind.open(&name).unwrap();
        first.touch();
        assert!(second.sees_touch(), "{kind:?}: one object, not a copy");
        first.touch();
        assert!(opened.sees_touch(), "{kind:?}: one object, not a copy");
        assert_eq!(opened.owner_uid(), switchboard_sys::process::uid(), "{kind:?}");
    }
}

#[test]
fn names_s04_every_kind_clashes_with_every_other_kind_on_one_name() {
    for held in KINDS {
        for wanted in KINDS.into_iter().filter(|k| *k != held) {
            let name = unique("clash");
            let _holder = held.create(&name).unwrap();
            let e = wanted.create(&name).err().unwrap_or_else(|| panic!("{wanted:?} over {held:?}"));
            assert!(matches!(e, Error::InvalidHandle { .. }), "{wanted:?} over {held:?}: {e}");
            assert_eq!(e.win32(), 6);
            assert!(matches!(wanted.open(&name), Err(Error::InvalidHandle { .. })), "{wanted:?} open over {held:?}");
        }
    }
}

#[test]
fn names_s07_the_name_goes_with_the_last_handle_for_every_kind() {
    for kind in KINDS {
        let name = unique("last");
        let a = kind.create(&name).unwrap();
        let b = kind.open(&name).unwrap();
        drop(a);
        assert!(kind.open(&name).is_ok(), "{kind:?}: one handle still holds it");
        drop(b);
        assert!(matches!(kind.open(&name), Err(Error::NotFound(_))), "{kind:?}: gone with the last handle");
        assert!(!kind.create(&name).unwrap().existed(), "{kind:?}: a fresh object");
    }
}

#[test]
fn names_s08_every_kind_passes_over_a_connection_and_by_pid_and_handle() {
    let _w = Watchdog::test();
    for kind in KINDS {
        let original = kind.create(&unique("passed")).unwrap();
        let (a, b) = Connection::pair().unwrap();
        original.send(&a).unwrap();
        let received = kind.receive(&b).unwrap();
        original.touch();
        assert!(received.sees_touch(), "{kind:?}: received the same object");
        let taken = kind.take(std::process::id(), original.handle()).unwrap();
        original.touch();
        assert!(taken.sees_touch(), "{kind:?}: took the same object");
        // A handle of another kind is refused with its kind named.
        let other = KINDS.into_iter().find(|k| *k != kind).unwrap();
        let e = other.take(std::process::id(), original.handle()).err().unwrap();
        assert!(matches!(e, Error::InvalidHandle { .. }), "{other:?} from a {kind:?}: {e}");
    }
}
