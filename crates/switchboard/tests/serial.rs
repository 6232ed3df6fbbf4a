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
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let setup = std::process::Command::new(root.join("python/run-tests")).arg("--setup").status().unwrap();
    assert!(setup.success(), "python/run-tests --setup failed");
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
    let mut python = std::process::Command::new(root.join("target/python-venv/bin/python"))
        .args(["-c", script])
        .arg(&b)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
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
