//! Spec 06, S01–S10 and S12 — the clipboard, across processes where the
//! statement is about processes. Each test has a clipboard of its own (a
//! directory under the build's temporary directory), removed at its end.

mod util;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use switchboard::clipboard::{
    Clipboard, CF_DIB, CF_LOCALE, CF_TEXT, CF_UNICODETEXT, FIRST_REGISTERED, WM_CLIPBOARDUPDATE, WM_DESTROYCLIPBOARD,
    WM_RENDERALLFORMATS, WM_RENDERFORMAT,
};
use switchboard::message::{Receiver, WM_QUIT};
use util::{args, hear, role, say, unique, Peer, Watchdog};

const LONG: Duration = Duration::from_secs(60);

/// A clipboard of the test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        Scratch(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique(tag)))
    }
    fn clip(&self) -> Clipboard {
        Clipboard::at(&self.0).unwrap()
    }
    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn peer_clip() -> Clipboard {
    Clipboard::at(&args()[0]).unwrap()
}

#[test]
fn clipboard_s01_one_thread_has_it_open_and_close_when_not_open_is_1418() {
    if let Some(r) = role() {
        assert_eq!(r, "holder");
        let clip = peer_clip();
        clip.open(None).unwrap();
        say("open");
        hear();
        clip.close().unwrap();
        say("closed");
        hear();
        util::done();
    }
    let _w = Watchdog::test();
    let scratch = Scratch::new("clip01");
    let clip = scratch.clip();
    assert_eq!(clip.close().unwrap_err().win32(), 1418);
    let mut peer =
        Peer::spawn("clipboard_s01_one_thread_has_it_open_and_close_when_not_open_is_1418", "holder", &[scratch.arg()]);
    peer.expect("open");
    let e = clip.open(None).unwrap_err();
    assert_eq!(e.win32(), 5, "another process has it open: {e:?}");
    peer.tell("close");
    peer.expect("closed");
    clip.open_timeout(None, LONG).unwrap();
    clip.open(None).unwrap();
    let other = std::thread::spawn({
        let clip = clip.clone();
        move || clip.open(None).unwrap_err().win32()
    });
    assert_eq!(other.join().unwrap(), 5, "another thread of this process");
    clip.close().unwrap();
    assert_eq!(clip.close().unwrap_err().win32(), 1418, "one close closes");
    peer.tell("done");
    peer.finish();
}

#[test]
fn clipboard_s02_empty_needs_it_open_and_tells_the_previous_owner() {
    if let Some(r) = role() {
        assert_eq!(r, "owner");
        let clip = peer_clip();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = seen.clone();
        let rx = Receiver::create(&args()[1], move |_, m| {
            log.borrow_mut().push(m.msg);
            0
        })
        .unwrap();
        clip.open(Some(&rx)).unwrap();
        clip.empty().unwrap();
        clip.set_text("mine").unwrap();
        clip.close().unwrap();
        say(&format!("owner {}", clip.owner_pid().unwrap()));
        loop {
            let p = rx.get(LONG).unwrap();
            if p.msg == WM_QUIT {
                break;
            }
            rx.dispatch(&p);
        }
        say(&format!("{:?}", *seen.borrow()));
        util::done();
    }
    let _w = Watchdog::test();
    let scratch = Scratch::new("clip02");
    let clip = scratch.clip();
    assert_eq!(clip.empty().unwrap_err().win32(), 1418);
    let rx_name = unique("clip02rx");
    let mut peer = Peer::spawn(
        "clipboard_s02_empty_needs_it_open_and_tells_the_previous_owner",
        "owner",
        &[scratch.arg(), &rx_name],
    );
    assert_eq!(peer.next(), format!("owner {}", peer.pid));
    clip.open(None).unwrap();
    clip.empty().unwrap();
    assert_eq!(clip.formats().unwrap(), Vec::<u32>::new(), "everything dropped");
    clip.close().unwrap();
    assert_eq!(clip.owner_pid(), Some(std::process::id()), "the emptier owns it now");
    switchboard::message::find_receiver(&rx_name).unwrap().post(WM_QUIT, 0, 0).unwrap();
    assert_eq!(peer.next(), format!("[{WM_DESTROYCLIPBOARD}]"));
    peer.finish();
}

#[test]
fn clipboard_s03_formats_come_in_placement_order_then_synthesized() {
    let scratch = Scratch::new("clip03");
    let clip = scratch.clip();
    clip.open(None).unwrap();
    clip.empty().unwrap();
    let private = clip.register_format("switchboard test rich").unwrap();
    clip.set(private, b"<b>rich</b>").unwrap();
    clip.set(CF_DIB, &[1, 2, 3]).unwrap();
    clip.set(CF_UNICODETEXT, &[b'h', 0, b'i', 0]).unwrap();
    assert_eq!(clip.formats().unwrap(), [private, CF_DIB, CF_UNICODETEXT, CF_TEXT, CF_LOCALE]);
    clip.set(CF_DIB, &[9]).unwrap();
    assert_eq!(clip.get(CF_DIB).unwrap().unwrap(), [9], "a format placed again is replaced, in its place");
    assert_eq!(clip.formats().unwrap()[..2], [private, CF_DIB]);
    clip.close().unwrap();
}

#[test]
fn clipboard_s04_a_registered_format_has_one_id_in_every_process() {
    if let Some(r) = role() {
        assert_eq!(r, "register");
        say(&peer_clip().register_format(&args()[1]).unwrap().to_string());
        util::done();
    }
    let _w = Watchdog::test();
    let scratch = Scratch::new("clip04");
    let clip = scratch.clip();
    let a = clip.register_format("HTML Format").unwrap();
    let b = clip.register_format("Rich Text Format").unwrap();
    assert!((FIRST_REGISTERED..=0xFFFF).contains(&a) && a != b);
    assert_eq!(clip.register_format("html format").unwrap(), a, "case-insensitive");
    let test = "clipboard_s04_a_registered_format_has_one_id_in_every_process";
    let mut peer = Peer::spawn(test, "register", &[scratch.arg(), "HTML FORMAT"]);
    assert_eq!(peer.next(), a.to_string());
    peer.finish();
    let mut peer = Peer::spawn(test, "register", &[scratch.arg(), "PNG"]);
    let png: u32 = peer.next().parse().unwrap();
    peer.finish();
    assert!(png != a && png != b);
    assert_eq!(clip.format_name(png).as_deref(), Some("PNG"));
    assert!(clip.register_format("").is_err());
}

#[test]
fn clipboard_s05_text_formats_are_synthesized_from_each_other_with_a_locale() {
    let scratch = Scratch::new("clip05");
    let clip = scratch.clip();
    clip.open(None).unwrap();
    clip.empty().unwrap();
    clip.set(CF_TEXT, "grüß\0".as_bytes()).unwrap();
    let wide: Vec<u8> = "grüß\0".encode_utf16().flat_map(u16::to_le_bytes).collect();
    assert_eq!(clip.get(CF_UNICODETEXT).unwrap().unwrap(), wide);
    assert_eq!(clip.get(CF_LOCALE).unwrap().unwrap(), 0x0409u32.to_le_bytes());
    clip.empty().unwrap();
    clip.set(CF_UNICODETEXT, &wide).unwrap();
    assert_eq!(clip.get(CF_TEXT).unwrap().unwrap(), "grüß\0".as_bytes());
    assert_eq!(clip.get_text().unwrap().as_deref(), Some("grüß"));
    clip.set(CF_LOCALE, &0x0407u32.to_le_bytes()).unwrap();
    assert_eq!(clip.get(CF_LOCALE).unwrap().unwrap(), 0x0407u32.to_le_bytes(), "a placed locale is kept");
    clip.empty().unwrap();
    clip.set(CF_DIB, &[1]).unwrap();
    assert_eq!(clip.get(CF_TEXT).unwrap(), None, "no text, nothing synthesized");
    assert_eq!(clip.formats().unwrap(), [CF_DIB]);
    clip.close().unwrap();
}

#[test]
fn clipboard_s06_get_needs_it_open_and_returns_a_copy_or_none() {
    let scratch = Scratch::new("clip06");
    let clip = scratch.clip();
    assert_eq!(clip.get(CF_TEXT).unwrap_err().win32(), 1418);
    assert_eq!(clip.set(CF_TEXT, b"x").unwrap_err().win32(), 1418);
    clip.open(None).unwrap();
    clip.empty().unwrap();
    clip.set(CF_DIB, b"pixels").unwrap();
    let mut copy = clip.get(CF_DIB).unwrap().unwrap();
    copy[0] = b'P';
    assert_eq!(clip.get(CF_DIB).unwrap().unwrap(), b"pixels", "the caller's copy is its own");
    assert_eq!(clip.get(CF_HDROP_UNSET).unwrap(), None);
    clip.close().unwrap();
    assert!(clip.is_format_available(CF_DIB), "availability needs no open");
}

const CF_HDROP_UNSET: u32 = switchboard::clipboard::CF_HDROP;

/// The owner renders a delayed format when a getter in another process
/// asks; at a graceful exit it renders what it chooses and the rest
/// disappears; killed, its delayed formats disappear and rendered data stays.
#[test]
fn clipboard_s07_delayed_formats_are_rendered_by_the_owner_on_demand_and_at_exit() {
    if let Some(r) = role() {
        let clip = peer_clip();
        let render = clip.clone();
        let rx = Receiver::create(&args()[1], move |_, m| {
            match m.msg {
                WM_RENDERFORMAT => render.render(m.wparam as u32, format!("rendered {}", m.wparam).as_bytes()).unwrap(),
                // At exit: only the DIB.
                WM_RENDERALLFORMATS => render.render(CF_DIB, b"dib at exit").unwrap(),
                _ => {}
            }
            0
        })
        .unwrap();
        clip.open(Some(&rx)).unwrap();
        clip.empty().unwrap();
        for f in [CF_TEXT, CF_DIB, 0xC123] {
            clip.set_delayed(f).unwrap();
        }
        clip.close().unwrap();
        say("placed");
        let p = rx.get(LONG).unwrap(); // runs the render request, then the quit
        assert_eq!(p.msg, WM_QUIT);
        if r == "graceful" {
            drop(rx);
            say("gone");
            hear();
        } else {
            say("waiting");
            hear(); // killed here
        }
        util::done();
    }
    let _w = Watchdog::test();
    let test = "clipboard_s07_delayed_formats_are_rendered_by_the_owner_on_demand_and_at_exit";
    for how in ["graceful", "killed"] {
        let scratch = Scratch::new("clip07");
        let clip = scratch.clip();
        let rx_name = unique("clip07rx");
        let mut peer = Peer::spawn(test, how, &[scratch.arg(), &rx_name]);
        peer.expect("placed");
        clip.open(None).unwrap();
        assert_eq!(clip.formats().unwrap(), [CF_TEXT, CF_DIB, 0xC123, CF_UNICODETEXT, CF_LOCALE]);
        assert_eq!(clip.get(CF_TEXT).unwrap().unwrap(), format!("rendered {CF_TEXT}").as_bytes(), "rendered on demand");
        assert_eq!(clip.get(CF_TEXT).unwrap().unwrap(), format!("rendered {CF_TEXT}").as_bytes(), "once");
        clip.close().unwrap();
        switchboard::message::find_receiver(&rx_name).unwrap().post(WM_QUIT, 0, 0).unwrap();
        match how {
            "graceful" => {
                peer.expect("gone");
                clip.open(None).unwrap();
                assert_eq!(clip.get(CF_DIB).unwrap().unwrap(), b"dib at exit");
                assert_eq!(clip.get(0xC123).unwrap(), None, "not rendered at exit: gone");
                assert_eq!(clip.formats().unwrap(), [CF_TEXT, CF_DIB, CF_UNICODETEXT, CF_LOCALE]);
                clip.close().unwrap();
                peer.tell("go");
                peer.finish();
            }
            _ => {
                peer.expect("waiting");
                peer.kill9();
                clip.open(None).unwrap();
                assert_eq!(clip.get(CF_DIB).unwrap(), None, "a dead owner's delayed format is gone");
                assert_eq!(
                    clip.get(CF_TEXT).unwrap().unwrap(),
                    format!("rendered {CF_TEXT}").as_bytes(),
                    "rendered data stays"
                );
                assert_eq!(clip.formats().unwrap(), [CF_TEXT, CF_UNICODETEXT, CF_LOCALE]);
                clip.close().unwrap();
            }
        }
    }
}

#[test]
fn clipboard_s08_data_stays_after_the_process_that_set_it_exits() {
    if let Some(r) = role() {
        assert_eq!(r, "setter");
        let clip = peer_clip();
        clip.open(None).unwrap();
        clip.empty().unwrap();
        clip.set_text("left behind on purpose").unwrap();
        clip.set(CF_DIB, &vec![7u8; 3 << 20]).unwrap();
        clip.close().unwrap();
        util::done();
    }
    let _w = Watchdog::test();
    let scratch = Scratch::new("clip08");
    Peer::spawn("clipboard_s08_data_stays_after_the_process_that_set_it_exits", "setter", &[scratch.arg()]).finish();
    let clip = scratch.clip();
    clip.open(None).unwrap();
    assert_eq!(clip.get_text().unwrap().as_deref(), Some("left behind on purpose"));
    assert_eq!(clip.get(CF_DIB).unwrap().unwrap(), vec![7u8; 3 << 20]);
    clip.close().unwrap();
}

#[test]
fn clipboard_s09_the_sequence_number_increases_at_every_change() {
    let scratch = Scratch::new("clip09");
    let clip = scratch.clip();
    let mut last = clip.sequence_number();
    clip.open(None).unwrap();
    for step in 0..4 {
        match step {
            0 => clip.empty().unwrap(),
            1 => clip.set_text("a").unwrap(),
            2 => clip.set(CF_DIB, b"b").unwrap(),
            _ => clip.set_text("c").unwrap(),
        }
        let now = clip.sequence_number();
        assert!(now > last, "step {step}: {now} after {last}");
        last = now;
    }
    let _ = clip.get(CF_TEXT).unwrap();
    let _ = clip.formats().unwrap();
    assert_eq!(clip.sequence_number(), last, "reading changes nothing");
    clip.close().unwrap();
}

/// A listener in another process hears of each change once the change is
/// closed; a process without a receiver waits for the sequence number.
#[test]
fn clipboard_s10_listeners_hear_each_closed_change_and_watchers_wake() {
    if let Some(r) = role() {
        let clip = peer_clip();
        match r.as_str() {
            "listener" => {
                let rx = Receiver::create(&args()[1], |_, _| 0).unwrap();
                clip.add_listener(&rx).unwrap();
                say(&format!("twice {}", clip.add_listener(&rx).unwrap_err().win32()));
                let mut heard = 0;
                loop {
                    let p = rx.get(LONG).unwrap();
                    match p.msg {
                        WM_CLIPBOARDUPDATE => heard += 1,
                        WM_QUIT => break,
                        _ => {}
                    }
                }
                say(&format!("heard {heard}"));
            }
            "watcher" => {
                let after: u64 = args()[1].parse().unwrap();
                say("watching");
                say(&format!("changed {}", clip.wait_for_change(after, LONG).unwrap() > after));
            }
            _ => unreachable!(),
        }
        util::done();
    }
    let _w = Watchdog::test();
    let test = "clipboard_s10_listeners_hear_each_closed_change_and_watchers_wake";
    let scratch = Scratch::new("clip10");
    let clip = scratch.clip();
    let rx_name = unique("clip10rx");
    let mut listener = Peer::spawn(test, "listener", &[scratch.arg(), &rx_name]);
    assert_eq!(listener.next(), "twice 87");
    let seq = clip.sequence_number();
    let mut watcher = Peer::spawn(test, "watcher", &[scratch.arg(), &seq.to_string()]);
    watcher.expect("watching");
    for text in ["one", "two"] {
        clip.open(None).unwrap();
        clip.empty().unwrap();
        clip.set_text(text).unwrap();
        clip.close().unwrap();
    }
    clip.open(None).unwrap();
    let _ = clip.get(CF_TEXT).unwrap();
    clip.close().unwrap(); // no change: no message
    assert_eq!(watcher.next(), "changed true");
    watcher.finish();
    switchboard::message::find_receiver(&rx_name).unwrap().post(WM_QUIT, 0, 0).unwrap();
    assert_eq!(listener.next(), "heard 2");
    listener.finish();
    assert_eq!(clip.wait_for_change(clip.sequence_number(), Duration::from_millis(30)).unwrap_err().win32(), 121);
}

#[test]
fn clipboard_s12_a_process_killed_with_it_open_leaves_it_unlocked() {
    if let Some(r) = role() {
        assert_eq!(r, "holder");
        let clip = peer_clip();
        clip.open(None).unwrap();
        clip.empty().unwrap();
        say("open");
        hear();
        util::done();
    }
    let _w = Watchdog::test();
    let scratch = Scratch::new("clip12");
    let clip = scratch.clip();
    let mut peer =
        Peer::spawn("clipboard_s12_a_process_killed_with_it_open_leaves_it_unlocked", "holder", &[scratch.arg()]);
    peer.expect("open");
    assert_eq!(clip.open(None).unwrap_err().win32(), 5);
    peer.kill9();
    clip.open(None).unwrap();
    clip.close().unwrap();
    // A thread that ends with it open lets it go too.
    let c = clip.clone();
    std::thread::spawn(move || c.open(None).unwrap()).join().unwrap();
    clip.open(None).unwrap();
    clip.close().unwrap();
}

/// A clipboard directory another user could enter, or a symlink, is refused.
#[test]
fn clipboard_a_directory_that_is_not_private_is_refused() {
    let scratch = Scratch::new("clipperm");
    std::fs::create_dir_all(&scratch.0).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(Clipboard::at(&scratch.0).unwrap_err().win32(), 5);
    let link = scratch.0.with_extension("link");
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&scratch.0, &link).unwrap();
    let refused = Clipboard::at(&link).map(|_| ()).unwrap_err().win32();
    std::fs::remove_file(&link).unwrap();
    assert_eq!(refused, 5);
}

/// `kill -9` a process at random points while it empties and sets 1 MiB
/// again and again: the clipboard stays whole (the last complete set, or
/// empty), unlocked, and the next empty sweeps what the dead one left
/// half-written.
#[test]
fn clipboard_kill9_a_setter_at_random_points_leaves_it_whole_and_swept() {
    if let Some(r) = role() {
        assert_eq!(r, "setter");
        let clip = peer_clip();
        say("setting");
        for i in 0u32.. {
            clip.open_timeout(None, LONG).unwrap();
            clip.empty().unwrap();
            clip.set(CF_DIB, &vec![(i % 251) as u8; 1 << 20]).unwrap();
            clip.set_text(&format!("{i}")).unwrap();
            clip.close().unwrap();
        }
    }
    let _w = Watchdog::test();
    let scratch = Scratch::new("clipkill");
    let clip = scratch.clip();
    let mut rng = util::Rng(0x5eed_0006);
    for _ in 0..8 {
        let mut peer = Peer::spawn(
            "clipboard_kill9_a_setter_at_random_points_leaves_it_whole_and_swept",
            "setter",
            &[scratch.arg()],
        );
        peer.expect("setting");
        std::thread::sleep(Duration::from_millis(rng.next() % 40));
        peer.kill9();
        clip.open_timeout(None, LONG).unwrap();
        if let Some(text) = clip.get_text().unwrap() {
            let i: u32 = text.parse().unwrap();
            let dib = clip.get(CF_DIB).unwrap().expect("the DIB set before the text");
            assert_eq!(dib, vec![(i % 251) as u8; 1 << 20], "whole data for set {i}");
        }
        clip.close().unwrap();
    }
    clip.open(None).unwrap();
    clip.empty().unwrap();
    clip.close().unwrap();
    let mut left: Vec<String> =
        std::fs::read_dir(&scratch.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, ["index", "lock"], "nothing half-written is left");
}
