//! Spec 02, S01–S08 — anonymous pipes, across real processes where the
//! statement is about processes.

mod util;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;

use switchboard::pipe::anon::{self, Peek, Stdio};
use switchboard::Error;
use util::Watchdog;

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

#[test]
fn pipe_s01_one_way_pair_and_duplex_with_two_pipes() {
    let _w = Watchdog::test();
    let (to_child_r, to_child_w) = anon::pipe().unwrap();
    let (mut from_child_r, from_child_w) = anon::pipe().unwrap();
    // The child echoes its stdin to its stdout upper-cased: a duplex
    // exchange over two one-way pipes.
    let mut child =
        anon::spawn(sh("tr a-z A-Z"), Stdio { stdin: Some(to_child_r), stdout: Some(from_child_w), stderr: None })
            .unwrap();
    to_child_w.write(b"ping").unwrap();
    drop(to_child_w);
    let mut got = String::new();
    from_child_r.read_to_string(&mut got).unwrap();
    assert_eq!(got, "PING");
    assert!(child.wait().unwrap().success());
}

#[test]
fn pipe_s02_byte_stream_keeps_no_write_boundaries() {
    let (r, w) = anon::pipe().unwrap();
    w.write(b"abc").unwrap();
    w.write(b"def").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(r.read(&mut buf).unwrap(), 6, "two writes come out as one read");
    assert_eq!(&buf[..6], b"abcdef");
}

#[test]
fn pipe_s03_a_write_larger_than_the_buffer_blocks_until_all_is_written() {
    let _w = Watchdog::test();
    let (mut r, w) = anon::pipe().unwrap();
    let size = w.buffer_size().unwrap();
    let data: Vec<u8> = (0..size * 4).map(|i| (i % 251) as u8).collect();
    let expect = data.clone();
    let writer = std::thread::spawn(move || w.write(&data));
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(got, expect, "every byte, in order, none lost");
}

#[test]
fn pipe_s04_reader_drains_then_broken_pipe_when_every_writer_closed() {
    let _w = Watchdog::test();
    let (r, w) = anon::pipe().unwrap();
    // The last writer is a child process that writes and exits.
    let mut child = anon::spawn(sh("printf tail"), Stdio { stdout: Some(w), ..Default::default() }).unwrap();
    assert!(child.wait().unwrap().success());
    let mut buf = [0u8; 16];
    assert_eq!(r.read(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"tail");
    assert!(matches!(r.read(&mut buf), Err(Error::BrokenPipe)));
    assert_eq!(Error::BrokenPipe.win32(), 109);
    let mut io_end = r;
    assert_eq!(Read::read(&mut io_end, &mut buf).unwrap(), 0, "io::Read sees the usual EOF");
}

#[test]
fn pipe_s05_writing_with_no_reader_is_no_data_and_no_sigpipe_death() {
    let (r, w) = anon::pipe().unwrap();
    drop(r);
    let err = w.write(b"x").unwrap_err();
    assert!(matches!(err, Error::NoData), "{err:?}");
    assert_eq!(err.win32(), 232);
    // Still alive to assert this: the write did not kill us.
    let mut io_end = w;
    assert_eq!(Write::write(&mut io_end, b"x").unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
}

#[test]
fn pipe_s05_a_process_with_the_default_sigpipe_survives_a_write_with_no_reader() {
    // Rust programs ignore SIGPIPE; C-like programs do not. The peer
    // restores the default disposition, so the write must block the signal
    // around itself and consume it: the peer lives to say NoData.
    if util::role().is_some() {
        switchboard_sys::pipe::restore_default_sigpipe().unwrap();
        let (r, w) = anon::pipe().unwrap();
        drop(r);
        let err = w.write(b"x").unwrap_err();
        util::say(&format!("alive: {}", err.win32()));
        util::done();
    }
    let _w = Watchdog::test();
    let test = "pipe_s05_a_process_with_the_default_sigpipe_survives_a_write_with_no_reader";
    let mut peer = util::Peer::spawn(test, "writer", &[]);
    assert_eq!(peer.next(), "alive: 232");
    peer.finish();
}

#[test]
fn pipe_s06_child_inherits_only_the_chosen_ends_and_parent_copy_is_closed() {
    let _w = Watchdog::test();
    let (mut out_r, out_w) = anon::pipe().unwrap();
    let (bystander_r, bystander_w) = anon::pipe().unwrap();
    // The child lists its own descriptors on its stdout (our pipe).
    let mut child = anon::spawn(sh("ls /proc/$$/fd"), Stdio { stdout: Some(out_w), ..Default::default() }).unwrap();
    let mut listing = String::new();
    // read_to_string returns only because the parent's copy of the write
    // end was closed by `spawn`: EOF arrives when the child exits.
    out_r.read_to_string(&mut listing).unwrap();
    assert!(child.wait().unwrap().success());
    let fds: Vec<i32> = listing.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    assert!(fds.contains(&1), "{fds:?}");
    for end in [bystander_r.as_fd(), bystander_w.as_fd(), out_r.as_fd()] {
        let fd = end.as_raw_fd();
        assert!(!fds.contains(&fd), "child inherited fd {fd}: {fds:?}");
    }
}

#[test]
fn pipe_s07_peek_reports_without_consuming() {
    let (r, w) = anon::pipe().unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(r.peek(&mut buf).unwrap(), Peek { copied: 0, available: 0 }, "empty: at once, nothing");
    w.write(b"peekaboo").unwrap();
    assert_eq!(r.peek(&mut buf).unwrap(), Peek { copied: 4, available: 8 });
    assert_eq!(&buf, b"peek");
    let mut all = [0u8; 8];
    assert_eq!(r.read(&mut all).unwrap(), 8, "peek consumed nothing");
    assert_eq!(&all, b"peekaboo");
}

#[test]
fn pipe_s08_buffer_size_is_a_hint_and_the_effective_size_is_reported() {
    let (_r, w) = anon::pipe_with_size(0).unwrap();
    let default = w.buffer_size().unwrap();
    assert!(default >= 4096);
    let (r, w) = anon::pipe_with_size(200_000).unwrap();
    let big = w.buffer_size().unwrap();
    assert!(big >= 200_000, "rounded up to what the kernel gives: {big}");
    assert_eq!(r.buffer_size().unwrap(), big, "both ends report the same pipe");
    let (_r, w) = anon::pipe_with_size(1).unwrap();
    assert!(w.buffer_size().unwrap() >= 1, "tiny hints are rounded up, not refused");
}
