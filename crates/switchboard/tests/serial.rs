//! Spec 11 — serial ports, on pseudo-terminal pairs (S06: no hardware
//! needed), and with programs not written here (socat, pyserial).

mod util;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use switchboard::serial::{self, FlowControl, LineSettings, Parity, SerialPort, StopBits, Timeouts, MAXDWORD};
use switchboard::Error;
use util::Watchdog;

fn port() -> (std::fs::File, SerialPort) {
    let (far, path) = serial::pty().unwrap();
    (far, SerialPort::open(&path).unwrap())
}

#[test]
fn serial_s01_a_pty_opens_as_a_port_and_the_ports_present_are_listed() {
    let (_far, port) = port();
    assert!(port.path().to_string_lossy().starts_with("/dev/pts/"));
    // Not a terminal, not there.
    let e = SerialPort::open("/dev/null").unwrap_err();
    assert!(matches!(e, Error::InvalidParameter(_)), "{e:?}");
    assert_eq!(SerialPort::open("/dev/ttyNOSUCH").unwrap_err().win32(), 2);
    // What the kernel shows (a VM may have none): each a device that opens
    // or says why not, never a pty.
    for p in serial::list_ports() {
        assert!(p.path.to_string_lossy().starts_with("/dev/tty"), "{p:?}");
        assert!(!p.driver.is_empty(), "{p:?}");
    }
}

#[test]
fn serial_s02_line_settings_read_back_what_the_driver_applied() {
    let (_far, port) = port();
    let mut s = LineSettings::default();
    assert_eq!(port.set_settings(&s).unwrap(), s);
    for baud in [300, 9600, 115_200, 31_250, 250_000, 1_000_000] {
        s.baud = baud;
        let applied = port.set_settings(&s).unwrap();
        assert_eq!(applied.baud, baud, "arbitrary rates through termios2");
        assert_eq!(port.settings().unwrap(), applied);
    }
    for stop_bits in [StopBits::Two, StopBits::One] {
        let applied = port.set_settings(&LineSettings { stop_bits, ..LineSettings::default() }).unwrap();
        assert_eq!((applied.stop_bits, port.settings().unwrap().stop_bits), (stop_bits, stop_bits));
    }
    // A pty forces 8 data bits and no parity: what it would change is
    // refused, and nothing changes.
    let before = port.settings().unwrap();
    for (data_bits, stop_bits, parity) in
        [(5, StopBits::OnePointFive, Parity::None), (7, StopBits::One, Parity::Even), (8, StopBits::One, Parity::Odd)]
    {
        let e =
            port.set_settings(&LineSettings { data_bits, stop_bits, parity, ..LineSettings::default() }).unwrap_err();
        assert_eq!(e.win32(), 87, "{e}");
        assert_eq!(port.settings().unwrap(), before);
    }
    let rts = port.set_settings(&LineSettings { flow: FlowControl::RtsCts, ..LineSettings::default() }).unwrap();
    assert_eq!(rts.flow, FlowControl::RtsCts);
    // What the DCB does not allow, refused with 87 and nothing applied.
    let before = port.settings().unwrap();
    for bad in [
        LineSettings { baud: 0, ..LineSettings::default() },
        LineSettings { data_bits: 4, ..LineSettings::default() },
        LineSettings { data_bits: 9, ..LineSettings::default() },
        LineSettings { stop_bits: StopBits::OnePointFive, ..LineSettings::default() },
        LineSettings { data_bits: 5, stop_bits: StopBits::Two, ..LineSettings::default() },
        LineSettings { flow: FlowControl::DtrDsr, ..LineSettings::default() },
        LineSettings { flow: FlowControl::XonXoff, xon: 7, xoff: 7, ..LineSettings::default() },
    ] {
        let e = port.set_settings(&bad).unwrap_err();
        assert_eq!(e.win32(), 87, "{bad:?}: {e}");
        assert_eq!(port.settings().unwrap(), before, "{bad:?} changed nothing");
    }
}

#[test]
fn serial_s09_custom_xon_xoff_are_kept_and_mark_parity_is_refused_where_the_driver_drops_it() {
    let (_far, port) = port();
    // A pty drops parity (CMSPAR and PARENB with it): refused, not faked.
    for parity in [Parity::Mark, Parity::Space] {
        let e = port.set_settings(&LineSettings { parity, ..LineSettings::default() }).unwrap_err();
        assert_eq!(e.win32(), 87, "{e}");
        assert_eq!(port.settings().unwrap().parity, Parity::None);
    }
    let soft = LineSettings { flow: FlowControl::XonXoff, xon: b'Q', xoff: b'S', ..LineSettings::default() };
    let applied = port.set_settings(&soft).unwrap();
    assert_eq!((applied.flow, applied.xon, applied.xoff), (FlowControl::XonXoff, b'Q', b'S'));
}

#[test]
fn serial_s03_a_read_ends_at_its_timeouts_with_what_came() {
    let _w = Watchdog::test();
    let (mut far, port) = port();
    let mut buf = [0u8; 64];
    // MAXDWORD, 0, 0: at once, with what is buffered (nothing, then 3 bytes).
    port.set_timeouts(Timeouts { read_interval: MAXDWORD, ..Timeouts::default() });
    let t = Instant::now();
    assert_eq!(port.read(&mut buf).unwrap(), 0);
    assert!(t.elapsed() < Duration::from_secs(1));
    far.write_all(b"abc").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while port.bytes_waiting().unwrap() < 3 {
        assert!(Instant::now() < deadline, "the bytes never arrived");
        std::thread::yield_now();
    }
    assert_eq!(port.read(&mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"abc");
    // A total timeout: the bytes that came, then the timeout, not an error.
    port.set_timeouts(Timeouts { read_total_constant: 300, ..Timeouts::default() });
    far.write_all(b"xy").unwrap();
    let t = Instant::now();
    assert_eq!(port.read(&mut buf).unwrap(), 2);
    assert!(t.elapsed() >= Duration::from_millis(290), "it waited for the rest until its total");
    assert_eq!(&buf[..2], b"xy");
    // Multiplier × bytes: 10 ms × 20 bytes + 100 ms.
    port.set_timeouts(Timeouts { read_total_multiplier: 10, read_total_constant: 100, ..Timeouts::default() });
    let t = Instant::now();
    assert_eq!(port.read(&mut buf[..20]).unwrap(), 0);
    assert!(t.elapsed() >= Duration::from_millis(290));
    // An interval: the read ends once the line is quiet that long after a byte.
    port.set_timeouts(Timeouts { read_interval: 100, read_total_constant: 60_000, ..Timeouts::default() });
    far.write_all(b"burst").unwrap();
    let t = Instant::now();
    assert_eq!(port.read(&mut buf).unwrap(), 5);
    assert!(t.elapsed() < Duration::from_secs(30), "the interval ended it, not the minute");
    // MAXDWORD, MAXDWORD, c: the first byte to come ends it.
    port.set_timeouts(Timeouts {
        read_interval: MAXDWORD,
        read_total_multiplier: MAXDWORD,
        read_total_constant: 60_000,
        ..Timeouts::default()
    });
    let writer = std::thread::spawn(move || {
        far.write_all(b"!").unwrap();
        far
    });
    assert_eq!(port.read(&mut buf).unwrap(), 1);
    let mut far = writer.join().unwrap();
    // No timeouts: every byte asked for.
    port.set_timeouts(Timeouts::default());
    let writer = std::thread::spawn(move || {
        for chunk in [&b"one "[..], b"two ", b"three"] {
            far.write_all(chunk).unwrap();
        }
        far
    });
    let mut exact = [0u8; 13];
    assert_eq!(port.read(&mut exact).unwrap(), 13);
    assert_eq!(&exact, b"one two three");
    let far = writer.join().unwrap();
    // The far end gone: the line is broken, not a hang.
    drop(far);
    port.set_timeouts(Timeouts { read_total_constant: 10_000, ..Timeouts::default() });
    let e = port.read(&mut buf).unwrap_err();
    assert!(matches!(e, Error::BrokenPipe), "{e:?}");
}

#[test]
fn serial_s05_purge_break_and_modem_lines_on_a_pty() {
    let _w = Watchdog::test();
    let (mut far, port) = port();
    far.write_all(b"stale bytes").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while port.bytes_waiting().unwrap() < 11 {
        assert!(Instant::now() < deadline);
        std::thread::yield_now();
    }
    port.purge(true, true).unwrap();
    assert_eq!(port.bytes_waiting().unwrap(), 0, "purged");
    port.send_break().unwrap();
    // Written bytes come out at the far end.
    port.set_timeouts(Timeouts { write_total_constant: 5000, ..Timeouts::default() });
    assert_eq!(port.write(b"to the far end").unwrap(), 14);
    port.drain().unwrap();
    let mut got = [0u8; 14];
    far.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"to the far end");
    // A pty has no modem lines: said so, with the classic code.
    let e = port.modem_status().unwrap_err();
    assert_eq!(e.win32(), 50, "{e}");
    assert_eq!(port.set_rts(true).unwrap_err().win32(), 50);
    assert_eq!(port.set_dtr(false).unwrap_err().win32(), 50);
}

/// socat links two ptys; pyserial (not written here) echoes on one end in
/// upper case, switchboard talks on the other.
#[test]
fn serial_s06_pyserial_answers_through_a_socat_pty_pair() {
    let _w = Watchdog::new(Duration::from_secs(600));
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(util::unique("socat"));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a"), dir.join("b"));
    let mut socat = std::process::Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()))
        .spawn()
        .expect("socat (installed by .ci/test)");
    util::eventually("socat made both ptys", || a.exists() && b.exists());
    let script = r#"
import sys, serial
with serial.Serial(sys.argv[1], 115200, timeout=30) as s:
    print("ready", flush=True)
    line = s.readline()
    s.write(line.upper())
    s.flush()
"#;
    let mut python = util::python().args(["-c", script]).arg(&b).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(python.stdout.take().unwrap()), &mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");
    let port = SerialPort::open(&a).unwrap();
    port.set_settings(&LineSettings { baud: 115_200, ..LineSettings::default() }).unwrap();
    port.set_timeouts(Timeouts { read_interval: 200, read_total_constant: 30_000, ..Timeouts::default() });
    assert_eq!(port.write(b"hello from switchboard\n").unwrap(), 23);
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.ends_with(b"\n") {
        let n = port.read(&mut buf).unwrap();
        assert!(n > 0, "pyserial did not answer: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"HELLO FROM SWITCHBOARD\n");
    assert!(python.wait().unwrap().success());
    let _ = socat.kill();
    let _ = socat.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether thread `tid` of this process is asleep in `poll`.
fn asleep_in_poll(tid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan")).is_ok_and(|w| w.contains("poll"))
}

#[test]
fn serial_s04_events_rxchar_rxflag_txempty_and_a_mask_change_ends_a_wait() {
    use serial::events::{BREAK, CTS, RXCHAR, RXFLAG, TXEMPTY};
    let _w = Watchdog::test();
    let (mut far, port) = port();
    let port = std::sync::Arc::new(port);
    let short = Some(Duration::from_millis(100));
    // RXCHAR: nothing yet is a timeout; a byte ends the wait.
    port.set_event_mask(RXCHAR).unwrap();
    assert_eq!(port.event_mask(), RXCHAR);
    assert!(matches!(port.wait_event(short), Err(Error::Timeout)));
    far.write_all(b"a").unwrap();
    assert_eq!(port.wait_event(None).unwrap(), RXCHAR);
    let mut buf = [0u8; 16];
    port.set_timeouts(Timeouts { read_interval: MAXDWORD, ..Timeouts::default() });
    assert_eq!(port.read(&mut buf).unwrap(), 1);
    // RXFLAG: bytes without the event character do not end the wait; the
    // character does; the bytes read ahead come first, in order.
    port.set_event_char(b'\n');
    port.set_event_mask(RXFLAG).unwrap();
    far.write_all(b"abc").unwrap();
    assert!(matches!(port.wait_event(short), Err(Error::Timeout)));
    far.write_all(b"d\n").unwrap();
    assert_eq!(port.wait_event(None).unwrap(), RXFLAG);
    assert_eq!(port.bytes_waiting().unwrap(), 5);
    port.set_timeouts(Timeouts { read_interval: 50, read_total_constant: 5000, ..Timeouts::default() });
    assert_eq!(port.read(&mut buf[..5]).unwrap(), 5);
    assert_eq!(&buf[..5], b"abcd\n");
    // TXEMPTY: what was written has gone.
    port.set_event_mask(TXEMPTY).unwrap();
    port.write(b"out").unwrap();
    assert_eq!(port.wait_event(None).unwrap() & TXEMPTY, TXEMPTY);
    // A mask change ends a wait under way, reporting nothing.
    port.set_event_mask(RXCHAR).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let port = port.clone();
        std::thread::spawn(move || {
            tx.send(switchboard_sys::process::tid()).unwrap();
            port.wait_event(None)
        })
    };
    let tid = rx.recv().unwrap();
    util::eventually("the waiter sleeps in poll", || asleep_in_poll(tid));
    port.set_event_mask(RXCHAR | RXFLAG).unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 0);
    // Events this port cannot report yet: said so.
    assert_eq!(port.set_event_mask(CTS).unwrap_err().win32(), 50);
    assert_eq!(port.set_event_mask(RXCHAR | BREAK).unwrap_err().win32(), 50);
    // The line gone during a wait: BrokenPipe, not a spin or a hang.
    let waiter = {
        let port = port.clone();
        std::thread::spawn(move || port.wait_event(Some(Duration::from_secs(60))))
    };
    drop(far);
    assert!(matches!(waiter.join().unwrap(), Err(Error::BrokenPipe)));
}

// ---- The virtual null-modem (S08) ----

fn pair_ports(baud: u32) -> (serial::SerialPair, SerialPort, SerialPort) {
    let pair = serial::SerialPair::new().unwrap();
    let (a, b) = (SerialPort::open(pair.path(0)).unwrap(), SerialPort::open(pair.path(1)).unwrap());
    let s = LineSettings { baud, ..LineSettings::default() };
    a.set_settings(&s).unwrap();
    b.set_settings(&s).unwrap();
    (pair, a, b)
}

/// Reads until `want` bytes came (or a read brings nothing for 5 s).
fn read_n(port: &SerialPort, want: usize) -> Vec<u8> {
    port.set_timeouts(Timeouts { read_interval: 5000, read_total_constant: 30_000, ..Timeouts::default() });
    let mut got = vec![0u8; want];
    let mut n = 0;
    while n < want {
        let k = port.read(&mut got[n..]).unwrap();
        assert!(k > 0, "only {n} of {want} bytes came: {:?}", &got[..n]);
        n += k;
    }
    got
}

#[test]
fn serial_s08_a_pair_carries_bytes_both_ways_paced_at_the_baud_rate() {
    let _w = Watchdog::test();
    let (_pair, a, b) = pair_ports(9600);
    // 96 bytes at 9600 8N1 (10 bits a byte) take 100 ms on the line: the
    // sender's drain (and TXEMPTY) waits for them, the receiver cannot
    // have them sooner.
    let data: Vec<u8> = (0..96u8).collect();
    let start = Instant::now();
    assert_eq!(a.write(&data).unwrap(), 96);
    a.drain().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(80), "drained in {:?}", start.elapsed());
    assert_eq!(read_n(&b, 96), data);
    assert!(start.elapsed() >= Duration::from_millis(95), "arrived in {:?}", start.elapsed());
    // The other way, at a rate no standard table has, with RTS/CTS at both
    // ends: a reader that falls behind holds the writer, nothing is lost.
    let fast = LineSettings { baud: 1_000_000, flow: FlowControl::RtsCts, ..LineSettings::default() };
    a.set_settings(&fast).unwrap();
    b.set_settings(&fast).unwrap();
    let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let writer = std::thread::scope(|s| {
        let w = s.spawn(|| {
            b.set_timeouts(Timeouts { write_total_constant: 30_000, ..Timeouts::default() });
            b.write(&big).unwrap()
        });
        assert_eq!(read_n(&a, big.len()), big);
        w.join().unwrap()
    });
    assert_eq!(writer, big.len());
    assert_eq!(a.clear_errors().unwrap(), serial::CommStatus::default());
}

/// Without flow control the line does not wait for a reader: a writer
/// finishes at the line's pace, and what does not fit the reader's input
/// is lost and counted (CE_RXOVER), as on a real UART.
#[test]
fn serial_s05_without_flow_control_a_full_receiver_overruns() {
    let _w = Watchdog::test();
    let (_pair, a, b) = pair_ports(4_000_000);
    let data = vec![0x55u8; 300_000];
    a.set_timeouts(Timeouts { write_total_constant: 60_000, ..Timeouts::default() });
    assert_eq!(a.write(&data).unwrap(), data.len(), "the writer is never held");
    a.drain().unwrap();
    let s = b.clear_errors().unwrap();
    assert_eq!(s.errors, serial::errors::RXOVER, "{s:?}");
    assert!(s.in_queue > 0 && s.in_queue < data.len() as u64, "{s:?}");
}

#[test]
fn serial_s08_modem_lines_are_crossed_and_their_changes_are_events() {
    use serial::events::{CTS, DSR, RING, RLSD};
    let _w = Watchdog::test();
    let (pair, a, b) = pair_ports(9600);
    let five = Some(Duration::from_secs(5));
    // Both ends open: each sees the other's RTS as CTS, DTR as DSR and DCD.
    let up = serial::ModemStatus { cts: true, dsr: true, ring: false, rlsd: true };
    assert_eq!(a.modem_status().unwrap(), up);
    assert_eq!(b.modem_status().unwrap(), up);
    b.set_event_mask(CTS | DSR | RLSD | RING).unwrap();
    a.set_rts(false).unwrap();
    assert_eq!(b.wait_event(five).unwrap(), CTS);
    assert_eq!(b.modem_status().unwrap(), serial::ModemStatus { cts: false, ..up });
    a.set_dtr(false).unwrap();
    assert_eq!(b.wait_event(five).unwrap(), DSR | RLSD);
    assert_eq!(b.modem_status().unwrap(), serial::ModemStatus { cts: false, dsr: false, ring: false, rlsd: false });
    // Nothing more happened: a wait times out.
    assert!(matches!(b.wait_event(Some(Duration::from_millis(100))), Err(Error::Timeout)));
    a.set_rts(true).unwrap();
    a.set_dtr(true).unwrap();
    assert_eq!(b.wait_event(five).unwrap(), CTS | DSR | RLSD);
    assert_eq!(b.modem_status().unwrap(), up);
    // A's own inputs did not move.
    assert_eq!(a.modem_status().unwrap(), up);
    pair.set_ring(1, true);
    assert_eq!(b.wait_event(five).unwrap(), RING);
    assert!(b.modem_status().unwrap().ring);
    // Events outside the mask are not reported.
    b.set_event_mask(RING).unwrap();
    a.set_rts(false).unwrap();
    pair.set_ring(1, false);
    assert_eq!(b.wait_event(five).unwrap(), RING);
}

#[test]
fn serial_s04_break_framing_and_parity_errors_through_a_pair() {
    use serial::errors;
    use serial::events::{BREAK, ERR, RXCHAR};
    let _w = Watchdog::test();
    let (_pair, a, b) = pair_ports(19_200);
    let five = Some(Duration::from_secs(5));
    b.set_event_mask(BREAK | ERR).unwrap();
    // A break comes after the bytes sent before it, and reads as NUL.
    assert_eq!(a.write(b"before").unwrap(), 6);
    a.send_break().unwrap();
    assert_eq!(b.wait_event(five).unwrap(), BREAK);
    assert_eq!(read_n(&b, 7), b"before\0");
    let s = b.clear_errors().unwrap();
    assert_eq!((s.errors, s.in_queue), (errors::BREAK, 0));
    assert_eq!(b.clear_errors().unwrap().errors, 0, "cleared");
    // Another baud rate at the far end: framing errors, nothing delivered.
    a.set_settings(&LineSettings { baud: 9600, ..LineSettings::default() }).unwrap();
    assert_eq!(a.write(b"garbled").unwrap(), 7);
    assert_eq!(b.wait_event(five).unwrap(), ERR);
    a.drain().unwrap();
    util::eventually("the framing errors are counted", || b.clear_errors().unwrap().errors == errors::FRAME);
    assert_eq!(b.bytes_waiting().unwrap(), 0);
    // 7 data bits with odd parity against even: each byte arrives with its
    // high bit gone, and a parity error where the parity bits disagree.
    let odd = LineSettings { baud: 19_200, data_bits: 7, parity: Parity::Odd, ..LineSettings::default() };
    assert_eq!(a.set_settings(&odd).unwrap(), odd, "a pair keeps what a pty forgets");
    assert_eq!(a.settings().unwrap(), odd);
    b.set_settings(&LineSettings { parity: Parity::Even, ..odd }).unwrap();
    b.set_event_mask(ERR | RXCHAR).unwrap();
    assert_eq!(a.write(&[0xC1, 0x42]).unwrap(), 2);
    assert_eq!(read_n(&b, 2), [0x41, 0x42]);
    util::eventually("the parity errors are counted", || b.clear_errors().unwrap().errors == errors::RXPARITY);
    // Matching frames: clean.
    b.set_settings(&odd).unwrap();
    assert_eq!(a.write(b"ok").unwrap(), 2);
    assert_eq!(read_n(&b, 2), b"ok");
    assert_eq!(b.clear_errors().unwrap().errors, 0);
}

#[test]
fn serial_s05_rts_cts_flow_control_holds_the_sender_through_a_pair() {
    let _w = Watchdog::test();
    let (_pair, a, b) = pair_ports(115_200);
    a.set_settings(&LineSettings { baud: 115_200, flow: FlowControl::RtsCts, ..LineSettings::default() }).unwrap();
    b.set_rts(false).unwrap();
    assert!(!a.modem_status().unwrap().cts);
    assert_eq!(a.write(b"held").unwrap(), 4);
    // Held while CTS is down: nothing arrives, the bytes stay queued at A.
    b.set_timeouts(Timeouts { read_total_constant: 300, ..Timeouts::default() });
    let mut buf = [0u8; 8];
    assert_eq!(b.read(&mut buf).unwrap(), 0);
    assert_eq!(a.clear_errors().unwrap().out_queue, 4);
    b.set_rts(true).unwrap();
    assert_eq!(read_n(&b, 4), b"held");
}

/// The far end of a pair opened by another process: its lines rise when
/// it opens the end and fall when it is killed.
#[test]
fn serial_s08_a_killed_peer_drops_the_carrier() {
    use serial::events::{CTS, DSR, RLSD};
    const TEST: &str = "serial_s08_a_killed_peer_drops_the_carrier";
    if util::role().is_some() {
        let path = util::args().remove(0);
        let port = SerialPort::open(&path).unwrap();
        port.set_settings(&LineSettings { baud: 38_400, ..LineSettings::default() }).unwrap();
        assert_eq!(port.write(b"from the child").unwrap(), 14);
        port.drain().unwrap();
        util::hold("open");
    }
    let _w = Watchdog::test();
    let pair = serial::SerialPair::new().unwrap();
    let b = SerialPort::open(pair.path(1)).unwrap();
    b.set_settings(&LineSettings { baud: 38_400, ..LineSettings::default() }).unwrap();
    assert_eq!(b.modem_status().unwrap(), serial::ModemStatus::default(), "nobody at the far end");
    b.set_event_mask(CTS | DSR | RLSD).unwrap();
    let mut peer = util::Peer::spawn(TEST, "far", &[pair.path(0)]);
    peer.expect("open");
    let five = Some(Duration::from_secs(5));
    assert_eq!(b.wait_event(five).unwrap(), CTS | DSR | RLSD);
    assert_eq!(read_n(&b, 14), b"from the child");
    peer.kill9();
    assert_eq!(b.wait_event(five).unwrap(), CTS | DSR | RLSD);
    assert_eq!(b.modem_status().unwrap(), serial::ModemStatus::default(), "the carrier dropped");
    // Bytes to an end nobody holds are lost, as on a cable; the pair goes on.
    assert_eq!(b.write(b"lost").unwrap(), 4);
    b.drain().unwrap();
    let a = SerialPort::open(pair.path(0)).unwrap();
    a.set_settings(&LineSettings { baud: 38_400, ..LineSettings::default() }).unwrap();
    assert_eq!(b.wait_event(five).unwrap(), CTS | DSR | RLSD);
    a.set_timeouts(Timeouts { read_total_constant: 200, ..Timeouts::default() });
    let mut buf = [0u8; 8];
    assert_eq!(a.read(&mut buf).unwrap(), 0);
    assert_eq!(b.write(b"kept").unwrap(), 4);
    assert_eq!(read_n(&a, 4), b"kept");
    // The pair gone: both ends read end-of-line.
    drop(pair);
    a.set_timeouts(Timeouts { read_total_constant: 10_000, ..Timeouts::default() });
    assert!(matches!(a.read(&mut buf), Err(Error::BrokenPipe)));
}

/// pyserial (not written here) on one end of a pair, switchboard on the
/// other: the bytes are paced both ways, a break reaches pyserial as the
/// NUL byte POSIX gives, and pyserial opening and closing its end moves
/// the carrier switchboard sees.
#[test]
fn serial_s08_pyserial_on_one_end_of_a_pair() {
    use serial::events::{BREAK, RLSD};
    let _w = Watchdog::new(Duration::from_secs(600));
    let pair = serial::SerialPair::new().unwrap();
    let b = SerialPort::open(pair.path(1)).unwrap();
    b.set_settings(&LineSettings { baud: 19_200, ..LineSettings::default() }).unwrap();
    b.set_event_mask(RLSD | BREAK).unwrap();
    assert!(!b.modem_status().unwrap().rlsd, "nobody at the far end yet");
    let script = r#"
import sys, time, serial
with serial.Serial(sys.argv[1], 19200, timeout=30) as s:
    print("open", flush=True)
    line = s.readline()
    s.write(line.upper())
    s.flush()
    nul = s.read(1)
    print("break" if nul == b"\0" else "no break: %r" % nul, flush=True)
    sys.stdin.readline()
"#;
    let mut python = util::python()
        .args(["-c", script, pair.path(0)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufReader::new(python.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut said, &mut line).unwrap();
    assert_eq!(line.trim(), "open");
    let five = Some(Duration::from_secs(5));
    assert_eq!(b.wait_event(five).unwrap(), RLSD);
    assert!(b.modem_status().unwrap().rlsd, "pyserial's end is open: DTR up, DCD here");
    assert_eq!(b.write(b"hello pyserial\n").unwrap(), 15);
    assert_eq!(read_n(&b, 15), b"HELLO PYSERIAL\n");
    b.send_break().unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut said, &mut line).unwrap();
    assert_eq!(line.trim(), "break");
    drop(python.stdin.take());
    assert!(python.wait().unwrap().success());
    assert_eq!(b.wait_event(five).unwrap(), RLSD);
    assert!(!b.modem_status().unwrap().rlsd, "pyserial closed its end: the carrier dropped");
}

/// Parallel ports where present; where absent (most machines, this VM),
/// a clear error naming what is missing.
#[test]
fn serial_s07_parallel_ports_open_where_present_and_absence_is_a_clear_error() {
    let present = serial::list_parallel_ports();
    for p in &present {
        match serial::ParallelPort::open(p) {
            Ok(port) => drop(port.status().unwrap()),
            // Claimed by lp, or no hardware behind the node: a clear error too.
            Err(e) => assert!(matches!(e, Error::AccessDenied(_) | Error::NotFound(_)), "{p:?}: {e:?}"),
        }
    }
    let missing = (0..64).map(|n| format!("/dev/parport{n}")).find(|p| !std::path::Path::new(p).exists()).unwrap();
    let e = serial::ParallelPort::open(&missing).unwrap_err();
    assert_eq!(e.win32(), 2, "{e}");
    assert!(e.to_string().contains("no parallel port"), "{e}");
    // A device that is not a parallel port.
    let e = serial::ParallelPort::open("/dev/null").unwrap_err();
    assert_eq!(e.win32(), 87, "{e}");
}

/// Device-control strings read as Windows reads them (the cases of Wine's
/// `kernel32/tests/comm.c`, `test_BuildCommDCB`).
#[test]
fn serial_s02_device_control_strings_read_as_build_comm_dcb_does() {
    use serial::build_dcb;
    let base = LineSettings::default();
    let t0 = Timeouts::default();
    let ok = |text: &str| build_dcb(text, &base, &t0).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let (s, _) = ok("baud=9600 parity=e data=5 stop=1 xon=on odsr=off octs=off dtr=on rts=on idsr=on");
    assert_eq!(
        (s.baud, s.parity, s.data_bits, s.stop_bits, s.flow),
        (9600, Parity::Even, 5, StopBits::One, FlowControl::XonXoff)
    );
    let (s, _) = ok("baud=0 parity=M data=6 stop=1.5 xon=off odsr=on octs=ON dtr=off rts=off idsr=OFF");
    assert_eq!((s.baud, s.parity, s.data_bits, s.stop_bits), (0, Parity::Mark, 6, StopBits::OnePointFive));
    let (s, t) = ok("BAUD=4000000000 parity=n data=7 stop=2 to=off");
    assert_eq!((s.baud, s.stop_bits, t), (4_000_000_000, StopBits::Two, Timeouts::default()));
    let (s, t) = ok("Baud=115200 Parity=O Data=8 To=On");
    assert_eq!((s.baud, s.parity, t.write_total_constant), (115_200, Parity::Odd, 60_000));
    // What the string does not name keeps its value.
    let (s, _) = ok("PaRiTy=s           Data=7          DTR=on");
    assert_eq!((s.baud, s.parity, s.data_bits), (base.baud, Parity::Space, 7));
    // The old form, with mode's two-digit rates and the handshake letter.
    for (text, baud, parity, data, stop, flow) in [
        ("11,n,8,1", 110, Parity::None, 8, StopBits::One, FlowControl::None),
        ("30 ,E, 5,1.5", 300, Parity::Even, 5, StopBits::OnePointFive, FlowControl::None),
        ("60, m, 6, 2 ", 600, Parity::Mark, 6, StopBits::Two, FlowControl::None),
        ("12 , o , 7 , 1", 1200, Parity::Odd, 7, StopBits::One, FlowControl::None),
        ("24,s,8,1.5", 2400, Parity::Space, 8, StopBits::OnePointFive, FlowControl::None),
        ("48,n,8,1,p", 4800, Parity::None, 8, StopBits::One, FlowControl::RtsCts),
        ("96,N,8,1 , x ", 9600, Parity::None, 8, StopBits::One, FlowControl::XonXoff),
        ("19, e, 7, 1, x", 19_200, Parity::Even, 7, StopBits::One, FlowControl::XonXoff),
        ("0,M,7,1,P", 0, Parity::Mark, 7, StopBits::One, FlowControl::RtsCts),
        ("4000000000,O,7,1.5,X", 4_000_000_000, Parity::Odd, 7, StopBits::OnePointFive, FlowControl::XonXoff),
    ] {
        let (s, _) = ok(text);
        assert_eq!((s.baud, s.parity, s.data_bits, s.stop_bits, s.flow), (baud, parity, data, stop, flow), "{text:?}");
    }
    // What Windows refuses, with ERROR_INVALID_PARAMETER.
    for text in [
        "data=4",
        "data=9",
        "parity=no",
        "stop=0",
        "stop=1.501",
        "stop=3",
        "to=foobar",
        " baud=9600",
        "baud= 9600",
        "baud=9600,data=8",
        "96,N,8,1 to=on",
        "96,NO,8,1",
        "96,N,4,1",
        "96,N,9,1",
        "96,N,8,0",
        "96,N,8,3",
        "96,N,8,1,K",
        "COM0:baud=115200",
        "COM0:9600,N,8,1",
    ] {
        let e = build_dcb(text, &base, &t0).unwrap_err();
        assert_eq!(e.win32(), 87, "{text:?}");
    }
    // What a string builds, a port takes (through a pair, which keeps parity).
    let pair = serial::SerialPair::new().unwrap();
    let port = SerialPort::open(pair.path(0)).unwrap();
    let (s, _) = ok("baud=19200 parity=e data=7 stop=1");
    assert_eq!(port.set_settings(&s).unwrap(), s);
    // And what it refuses is refused there (a baud rate of 0).
    let (zero, _) = ok("0,n,8,1");
    assert_eq!(port.set_settings(&zero).unwrap_err().win32(), 87);
}
