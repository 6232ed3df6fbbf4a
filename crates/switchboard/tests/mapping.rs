//! Spec 01, S01–S10 — file mapping. One test per statement, across processes
//! where the statement is about processes.

mod util;

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use switchboard::mapping::{allocation_granularity, Access, Mapping, Protection};
use switchboard::sync::Event;
use switchboard::Error;
use util::{done, hear, hold, role, say, unique, Peer, Watchdog};

/// A scratch file under cargo's per-target temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str, contents: &[u8]) -> Scratch {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique(tag));
        std::fs::write(&path, contents).unwrap();
        Scratch(path)
    }
    fn rw(&self) -> File {
        OpenOptions::new().read(true).write(true).open(&self.0).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn mapping_s01_create_is_zero_filled_and_size_zero_is_invalid() {
    let m = Mapping::create(unique("s01").as_str(), 100_000).unwrap();
    assert_eq!(m.size(), 100_000);
    let v = m.map_view(Access::Read, 0, 0).unwrap();
    assert!(v.read_vec(0, v.len()).unwrap().iter().all(|b| *b == 0));
    let err = Mapping::create(unique("s01z").as_str(), 0).unwrap_err();
    assert_eq!(err.win32(), 87, "{err}");
    assert!(!util::listed(&unique("s01z")));
    let err = Mapping::create(unique("s01h").as_str(), u64::MAX).unwrap_err();
    assert_eq!(err.win32(), 87, "{err}");
    assert!(err.to_string().contains("largest a mapping can have"), "says why: {err}");
}

#[test]
fn mapping_s02_every_process_creates_and_the_first_initialises() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        let m = Mapping::create(util::args()[0].as_str(), 8192).unwrap();
        if !m.already_existed() {
            m.map_view(Access::Write, 0, 0).unwrap().write(0, b"first").unwrap();
        }
        hold(&format!("existed={} size={}", m.already_existed(), m.size()));
    }
    let n = unique("s02");
    let mut peer = Peer::spawn("mapping_s02_every_process_creates_and_the_first_initialises", "creator", &[&n]);
    assert_eq!(peer.next(), "existed=false size=8192");
    let m = Mapping::create(n.as_str(), 4096).unwrap();
    assert!(m.already_existed());
    assert_eq!(m.size(), 8192, "the existing mapping's size wins");
    assert_eq!(m.map_view(Access::Read, 0, 0).unwrap().read_vec(0, 5).unwrap(), b"first");
    peer.dismiss();
}

#[test]
fn mapping_s03_open_finds_an_existing_mapping_or_not_found() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        let _m = Mapping::create(util::args()[0].as_str(), 4096).unwrap();
        hold("created");
    }
    let n = unique("s03");
    assert!(matches!(Mapping::open(&n, Access::Read), Err(Error::NotFound(_))));
    let mut peer = Peer::spawn("mapping_s03_open_finds_an_existing_mapping_or_not_found", "creator", &[&n]);
    peer.expect("created");
    let m = Mapping::open(&n, Access::Write).unwrap();
    assert_eq!(m.size(), 4096);
    peer.dismiss();
}

#[test]
fn mapping_s04_file_backed_sizes() {
    let data = Scratch::new("s04", b"0123456789");
    let m = Mapping::from_file(&data.rw(), 0, None).unwrap();
    assert_eq!(m.size(), 10, "size 0 means the file's size");
    assert_eq!(m.map_view(Access::Read, 0, 0).unwrap().read_vec(0, 10).unwrap(), b"0123456789");

    let empty = Scratch::new("s04e", b"");
    let err = Mapping::from_file(&empty.rw(), 0, None).unwrap_err();
    assert_eq!(err.win32(), 1006, "{err}");

    let grow = Scratch::new("s04g", b"abc");
    let m = Mapping::from_file(&grow.rw(), 100_000, None).unwrap();
    assert_eq!(std::fs::metadata(&grow.0).unwrap().len(), 100_000, "a writable file grows");
    assert_eq!(m.size(), 100_000);
    // The size is fixed: a view past it is refused even if the file grows later.
    grow.rw().set_len(300_000).unwrap();
    assert!(matches!(m.map_view(Access::Read, 0, 200_000), Err(Error::AccessDenied(_))));

    let ro = File::open(&data.0).unwrap();
    let err = Mapping::builder().file(&ro).size(1 << 20).protection(Protection::ReadOnly).create().unwrap_err();
    assert_eq!(err.win32(), 5, "a read-only file cannot grow: {err}");
}

#[test]
fn mapping_s05_views_cannot_exceed_the_mappings_protection() {
    let ro = Mapping::builder().size(4096).protection(Protection::ReadOnly).create().unwrap();
    assert!(matches!(ro.map_view(Access::Write, 0, 0), Err(Error::AccessDenied(_))));
    ro.map_view(Access::Read, 0, 0).unwrap();

    let n = unique("s05");
    let named = Mapping::builder().name(n.as_str()).size(4096).protection(Protection::WriteCopy).create().unwrap();
    assert_eq!(Mapping::open(&n, Access::Write).unwrap_err().win32(), 5);
    let reader = Mapping::open(&n, Access::Read).unwrap();
    assert!(matches!(reader.map_view(Access::Write, 0, 0), Err(Error::AccessDenied(_))));

    // Copy-on-write: writes stay in the view.
    let shared = Mapping::create(None, 4096).unwrap();
    let cow = shared.map_view(Access::Copy, 0, 0).unwrap();
    cow.write(0, b"private").unwrap();
    assert_eq!(shared.map_view(Access::Read, 0, 0).unwrap().read_vec(0, 7).unwrap(), [0u8; 7]);
    let read_only = named.map_view(Access::Read, 0, 0).unwrap();
    assert!(matches!(read_only.write(0, b"x"), Err(Error::AccessDenied(_))));
}

/// Wine `virtual.c` (test_MapViewOfFile): a handle's access is a set of
/// rights — one opened with FILE_MAP_WRITE maps a write view but not a
/// read view (ERROR_ACCESS_DENIED), one opened with FILE_MAP_READ maps a
/// read or copy view but not a write view; FILE_MAP_ALL_ACCESS (and the
/// creator's handle) maps any.
#[test]
fn mapping_s05_wine_test_map_view_of_file_needs_the_handles_exact_right() {
    let n = unique("s05rights");
    let creator = Mapping::create(n.as_str(), 4096).unwrap();
    for view in [Access::Read, Access::Write, Access::Copy, Access::All] {
        creator.map_view(view, 0, 0).unwrap_or_else(|e| panic!("the creator maps {view:?}: {e}"));
    }
    let write = Mapping::open(&n, Access::Write).unwrap();
    let err = write.map_view(Access::Read, 0, 0).unwrap_err();
    assert_eq!(err.win32(), 5, "a write handle, a read view: {err}");
    write.map_view(Access::Write, 0, 0).unwrap().write(0, b"rw").unwrap();
    let read = Mapping::open(&n, Access::Read).unwrap();
    assert_eq!(read.map_view(Access::Write, 0, 0).unwrap_err().win32(), 5);
    assert_eq!(read.map_view(Access::Read, 0, 0).unwrap().read_vec(0, 2).unwrap(), b"rw");
    read.map_view(Access::Copy, 0, 0).unwrap();
    let all = Mapping::open(&n, Access::All).unwrap();
    all.map_view(Access::Read, 0, 0).unwrap();
    all.map_view(Access::Write, 0, 0).unwrap();
}

#[test]
fn mapping_s06_view_offsets_granularity_length_and_coherence() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        let a = util::args();
        let m = Mapping::open(&a[0], Access::Write).unwrap();
        let written = Event::open(&a[1]).unwrap();
        let v = m.map_view(Access::Write, allocation_granularity(), 0).unwrap();
        v.write(5, b"from the peer").unwrap();
        written.set();
        done();
    }
    assert_eq!(allocation_granularity(), 65536);
    let n = unique("s06");
    let m = Mapping::create(n.as_str(), 3 * 65536).unwrap();
    let err = m.map_view(Access::Read, 4096, 0).unwrap_err();
    assert_eq!(err.win32(), 1132, "{err}");
    assert_eq!(m.map_view(Access::Read, 65536, 0).unwrap().len(), 2 * 65536, "len 0 maps to the end");
    assert!(matches!(m.map_view(Access::Read, 4 * 65536, 0), Err(Error::AccessDenied(_))));

    let ev_name = unique("s06e");
    let written = Event::create(ev_name.as_str(), true, false).unwrap();
    let view = m.map_view(Access::Read, 65536, 65536).unwrap();
    let mut peer = Peer::spawn("mapping_s06_view_offsets_granularity_length_and_coherence", "writer", &[&n, &ev_name]);
    assert_eq!(written.wait(), switchboard::sync::WaitStatus::Acquired);
    assert_eq!(view.read_vec(5, 13).unwrap(), b"from the peer");
    peer.finish();
}

#[test]
fn mapping_s07_flush_writes_the_file_before_returning() {
    let f = Scratch::new("s07", &[0u8; 8192]);
    let m = Mapping::from_file(&f.rw(), 0, None).unwrap();
    let v = m.map_view(Access::Write, 0, 0).unwrap();
    v.write(4000, b"durable").unwrap();
    v.flush(4000, 7).unwrap();
    let on_disk = std::fs::read(&f.0).unwrap();
    assert_eq!(&on_disk[4000..4007], b"durable");
    assert!(matches!(v.flush(8000, 1000), Err(Error::InvalidParameter(_))));
}

#[test]
fn mapping_s08_views_keep_the_mapping_alive_after_the_handle_closes() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        let m = Mapping::create(util::args()[0].as_str(), 4096).unwrap();
        let v = m.map_view(Access::Write, 0, 0).unwrap();
        drop(m);
        v.write(0, b"still here").unwrap();
        say("handle closed, view open");
        hear();
        drop(v);
        hold("view closed");
    }
    let n = unique("s08");
    let mut peer = Peer::spawn("mapping_s08_views_keep_the_mapping_alive_after_the_handle_closes", "owner", &[&n]);
    peer.expect("handle closed, view open");
    let m = Mapping::open(&n, Access::Read).unwrap();
    let v = m.map_view(Access::Read, 0, 0).unwrap();
    drop(m);
    peer.tell("close the view");
    peer.expect("view closed");
    assert_eq!(v.read_vec(0, 10).unwrap(), b"still here", "our view keeps the memory valid");
    peer.dismiss();
    drop(v);
    assert!(matches!(Mapping::open(&n, Access::Read), Err(Error::NotFound(_))));
}

#[test]
fn mapping_s09_concurrent_peer_writes_are_seen_whole_words_never_torn() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        let a = util::args();
        let v = Mapping::open(&a[0], Access::Write).unwrap().map_view(Access::Write, 0, 0).unwrap();
        let stop = Event::open(&a[1]).unwrap();
        say("writing");
        let mut k: u8 = 0;
        while stop.try_wait() != switchboard::sync::WaitStatus::Acquired {
            k = k.wrapping_add(1);
            v.write(0, &[k; 4096]).unwrap();
        }
        done();
    }
    let (n, stop_name) = (unique("s09"), unique("s09stop"));
    let m = Mapping::create(n.as_str(), 4096).unwrap();
    let stop = Event::create(stop_name.as_str(), true, false).unwrap();
    let v = m.map_view(Access::Read, 0, 0).unwrap();
    let mut peer =
        Peer::spawn("mapping_s09_concurrent_peer_writes_are_seen_whole_words_never_torn", "writer", &[&n, &stop_name]);
    peer.expect("writing");
    let mut buf = vec![0u8; 4096];
    let mut changes = 0;
    let mut last = 0u8;
    for _ in 0..20_000 {
        v.read(0, &mut buf).unwrap();
        for word in buf.chunks_exact(8) {
            assert!(word.iter().all(|b| *b == word[0]), "torn 8-byte word {word:?}");
        }
        if buf[0] != last {
            changes += 1;
            last = buf[0];
        }
    }
    stop.set();
    peer.finish();
    assert!(changes > 0, "the peer's writes were visible");
}

#[test]
fn mapping_s10_truncated_file_is_an_error_not_a_crash() {
    let _w = Watchdog::test();
    if let Some(_r) = role() {
        let path = &util::args()[0];
        OpenOptions::new().write(true).open(path).unwrap().set_len(0).unwrap();
        done();
    }
    let f = Scratch::new("s10", &[7u8; 3 * 4096]);
    let m = Mapping::from_file(&f.rw(), 0, None).unwrap();
    let v = m.map_view(Access::Write, 0, 0).unwrap();
    assert_eq!(v.read_vec(8192, 1).unwrap(), [7]);
    let mut peer =
        Peer::spawn("mapping_s10_truncated_file_is_an_error_not_a_crash", "truncator", &[f.0.to_str().unwrap()]);
    peer.finish();
    let err = v.read_vec(8192, 1).unwrap_err();
    assert!(matches!(err, Error::ViewFault), "{err}");
    assert_eq!(err.win32(), 999);
    assert!(matches!(v.write(0, b"x"), Err(Error::ViewFault)), "the view stays unusable");
}
