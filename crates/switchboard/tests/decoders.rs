//! Property tests for everything that decodes bytes a peer controls: names
//! typed by users and rendezvous replies received from other processes.

use proptest::prelude::*;
use switchboard::mapping::{Access, Mapping};
use switchboard::name::Name;
use switchboard::sync::{Event, Mutex, Semaphore};
use switchboard::{Connection, Error};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any string either parses or is `InvalidName`; never a panic.
    #[test]
    fn names_s01_any_string_parses_or_is_invalid_name(s in "\\PC{0,300}") {
        match Name::parse(&s) {
            Ok(_) => {}
            Err(e) => prop_assert!(matches!(e, Error::InvalidName { .. }), "{e}"),
        }
    }

    /// Valid kernel-object names keep their exact spelling (case-sensitive).
    #[test]
    fn names_s03_object_names_round_trip_exactly(s in "[^\\\\\u{0}]{1,256}") {
        prop_assume!(!s.starts_with("\\\\"));
        match Name::parse(&s).unwrap() {
            Name::Object { name, .. } => prop_assert_eq!(name, s),
            other => prop_assert!(false, "parsed as {other:?}"),
        }
    }

    /// Whatever bytes and descriptors a peer sends where a handle is
    /// expected, receiving fails with a typed error — never a panic or hang.
    #[test]
    fn names_s08_hostile_handle_messages_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..512), with_fd in any::<bool>()) {
        let (a, b) = Connection::pair().unwrap();
        let (c, _d) = Connection::pair().unwrap();
        let fds = if with_fd { vec![switchboard_sys::AsFd::as_fd(&c)] } else { vec![] };
        if bytes.is_empty() && fds.is_empty() {
            drop(a);
        } else {
            a.send(&bytes, &fds).unwrap();
        }
        let timeout = Some(std::time::Duration::from_secs(5));
        prop_assert!(Mapping::receive(&b, Access::Read, timeout).is_err());
    }
}

/// A well-formed reply whose descriptor is not a switchboard object (or is
/// another kind) is refused with a typed error.
#[test]
fn names_s08_a_valid_reply_for_another_kind_is_invalid_handle() {
    let (a, b) = Connection::pair().unwrap();
    let e = Event::create(None, true, false).unwrap();
    e.send(&a).unwrap();
    let err = Mutex::receive(&b, None).unwrap_err();
    assert_eq!(err.win32(), 6, "{err}");
    e.send(&a).unwrap();
    let err = Semaphore::receive(&b, None).unwrap_err();
    assert!(matches!(err, Error::InvalidHandle { .. }));
}
