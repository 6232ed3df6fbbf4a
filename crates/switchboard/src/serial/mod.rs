//! Serial ports (spec 11): line settings, classic timeouts, modem lines,
//! break and purge, on any tty — a UART, a USB adapter, a pseudo-terminal.
//!
//! - [`SerialPort::open`] opens a tty in raw mode (classic `CreateFile` on
//!   `COMn`); [`list_ports`] lists the serial ports the kernel shows.
//! - [`LineSettings`] is the classic DCB: baud rate (standard or any, through
//!   `termios2`), data bits 5–8, parity none/odd/even/mark/space (`CMSPAR`),
//!   stop bits 1/1.5/2, flow control, and the XON/XOFF characters.
//!   [`SerialPort::set_settings`] refuses a value the DCB does not allow with
//!   `InvalidParameter` and returns what the driver applied, read back.
//! - [`Timeouts`] is the classic COMMTIMEOUTS: a read ends at its total
//!   timeout (multiplier × bytes + constant) or when the gap between two
//!   bytes exceeds the interval, and returns what came (possibly nothing):
//!   a timeout is not an error. An interval of [`MAXDWORD`] with both totals
//!   0 returns at once with what is buffered.
//! - Events ([`SerialPort::set_event_mask`], [`SerialPort::wait_event`]):
//!   RXCHAR, RXFLAG (with [`SerialPort::set_event_char`]) and TXEMPTY on
//!   every tty; CTS, DSR, RLSD, RING, BREAK and ERR where the driver keeps
//!   line counters (a UART, an end of a [`SerialPair`]); a mask change ends
//!   a wait under way (S04).
//! - Modem lines ([`SerialPort::modem_status`], [`SerialPort::set_rts`],
//!   [`SerialPort::set_dtr`]), [`SerialPort::send_break`],
//!   [`SerialPort::purge`], [`SerialPort::bytes_waiting`], line errors
//!   ([`SerialPort::clear_errors`], classic `ClearCommError`).
//! - [`build_dcb`]: device-control strings (`"baud=9600 parity=e data=7"`,
//!   `"96,n,8,1"`), read as classic `BuildCommDCB` reads them.
//! - [`SerialPair`]: a virtual null-modem (S08), two pty ends with a cable
//!   switchboard plays — paced bytes, crossed modem lines, break, framing
//!   and parity errors — for testing serial programs without hardware.
//!
//! ```
//! use switchboard::serial::{LineSettings, Parity, SerialPort, Timeouts};
//! use std::io::Write;
//!
//! // A pseudo-terminal stands in for a cable: its master is the far end.
//! let (mut far, path) = switchboard::serial::pty()?;
//! let port = SerialPort::open(&path)?;
//! let applied = port.set_settings(&LineSettings { baud: 115_200, ..LineSettings::default() })?;
//! assert_eq!(applied.baud, 115_200);
//! // A pty has no parity: refused (87), not faked.
//! let even = LineSettings { parity: Parity::Even, ..applied };
//! assert_eq!(port.set_settings(&even).unwrap_err().win32(), 87);
//! // Up to 2 s in all, and done 20 ms after the last byte.
//! port.set_timeouts(Timeouts { read_interval: 20, read_total_constant: 2000, ..Timeouts::default() });
//! far.write_all(b"hi")?;
//! let mut buf = [0u8; 16];
//! let n = port.read(&mut buf)?;
//! assert_eq!(&buf[..n], b"hi");
//! # Ok::<(), switchboard::Error>(())
//! ```
//!
//! ## Decisions where the classic API leaves room
//! - **termios, not the `serialport` crate.** Every setting goes through
//!   `switchboard_sys::tty` (rustix termios): mark/space parity, 1.5 stop
//!   bits and custom XON/XOFF characters need it anyway (`serialport` has
//!   none of them), and one path keeps "read back what the driver applied"
//!   true for all.
//! - **DSR/DTR flow control** does not exist in Linux termios: asking for
//!   it is `InvalidParameter`, as the DCB check of a driver that cannot do
//!   it is.
//! - **1.5 stop bits** are `CSTOPB` with 5 data bits, as UARTs do; the
//!   classic rules hold: 1.5 only with 5 data bits, 2 never with 5.
//! - **Pseudo-terminals** keep the baud rate, stop bits, flow control and
//!   XON/XOFF characters they are given, but force 8 data bits and no
//!   parity, and have no modem lines: `set_settings` refuses what the
//!   driver changed (`InvalidParameter`, nothing applied), and
//!   [`SerialPort::modem_status`] is `NotSupported` (50). A port on an end
//!   of a [`SerialPair`] is different: it finds the pair (through the
//!   rendezvous, this user's pairs only), which keeps its data bits and
//!   parity, carries its modem lines and break, and counts its line errors.
//! - **Line events come from counters**, as Linux serial drivers keep them
//!   (`TIOCGICOUNT`): an event is a counter that moved since the last event
//!   reported, so two changes between waits are one event, as on Windows.
//!   A UART's counters are looked at every 5 ms during a wait (a blocking
//!   `TIOCMIWAIT` would need a thread per wait); a pair's end hears its
//!   pair at once.
//! - **Drain on a pair's end** waits until the pair took every byte this
//!   port wrote and put it through: a pty's own output queue empties into
//!   the master at once, so only the pair knows what was sent.

mod dcb;
mod line;
mod pair;
mod parallel;

pub use dcb::build_dcb;
pub use pair::SerialPair;
pub use parallel::{list_parallel_ports, ParallelPort, ParallelStatus};

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use switchboard_sys::tty::{self, ControlModes, InputModes, QueueSelector, SpecialCodeIndex};
use switchboard_sys::{socket, AsFd, Errno, OwnedFd};

use crate::error::{Error, Result};

/// "No limit" in [`Timeouts`], as the classic `MAXDWORD`.
pub const MAXDWORD: u32 = u32::MAX;

/// The most bytes a wait for events reads ahead: past it, the kernel's
/// buffer (and flow control) holds the rest until they are read.
const AHEAD_MAX: usize = 64 * 1024;

/// How often a wait for [`events::TXEMPTY`] looks at the output queue.
const TXEMPTY_LOOK: Duration = Duration::from_millis(5);

/// Parity (classic `NOPARITY` … `SPACEPARITY`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Parity {
    /// No parity bit.
    #[default]
    None,
    /// Odd parity.
    Odd,
    /// Even parity.
    Even,
    /// The parity bit is always 1.
    Mark,
    /// The parity bit is always 0.
    Space,
}

/// Stop bits (classic `ONESTOPBIT`, `ONE5STOPBITS`, `TWOSTOPBITS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StopBits {
    /// One.
    #[default]
    One,
    /// One and a half (only with 5 data bits).
    OnePointFive,
    /// Two (not with 5 data bits).
    Two,
}

/// Flow control.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlowControl {
    /// None.
    #[default]
    None,
    /// Hardware: RTS/CTS.
    RtsCts,
    /// Hardware: DTR/DSR (no Linux driver does it: `InvalidParameter`).
    DtrDsr,
    /// Software: XON/XOFF characters.
    XonXoff,
}

/// The line settings (classic DCB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineSettings {
    /// Bits per second: a standard rate or any other the driver takes.
    pub baud: u32,
    /// 5 to 8.
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// Stop bits.
    pub stop_bits: StopBits,
    /// Flow control.
    pub flow: FlowControl,
    /// The XON character (classic `XonChar`, default DC1).
    pub xon: u8,
    /// The XOFF character (classic `XoffChar`, default DC3).
    pub xoff: u8,
}

impl Default for LineSettings {
    /// 9600 baud, 8 data bits, no parity, one stop bit, no flow control.
    fn default() -> LineSettings {
        LineSettings {
            baud: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: StopBits::One,
            flow: FlowControl::None,
            xon: 0x11,
            xoff: 0x13,
        }
    }
}

impl LineSettings {
    /// Checks the classic DCB rules.
    ///
    /// # Errors
    /// `InvalidParameter` for a baud rate of 0, data bits outside 5–8,
    /// 1.5 stop bits without 5 data bits, 2 stop bits with 5, DTR/DSR flow
    /// control, or equal XON and XOFF characters.
    pub fn check(&self) -> Result<()> {
        let bad = Error::InvalidParameter;
        match self {
            s if s.baud == 0 => Err(bad("a baud rate of 0")),
            s if !(5..=8).contains(&s.data_bits) => Err(bad("data bits are 5 to 8")),
            s if s.stop_bits == StopBits::OnePointFive && s.data_bits != 5 => {
                Err(bad("1.5 stop bits go only with 5 data bits"))
            }
            s if s.stop_bits == StopBits::Two && s.data_bits == 5 => Err(bad("2 stop bits do not go with 5 data bits")),
            s if s.flow == FlowControl::DtrDsr => Err(bad("DTR/DSR flow control: no Linux serial driver does it")),
            s if s.flow == FlowControl::XonXoff && s.xon == s.xoff => {
                Err(bad("the XON and XOFF characters are the same"))
            }
            _ => Ok(()),
        }
    }
}

/// The timeouts of reads and writes (classic COMMTIMEOUTS), in ms.
///
/// | read_interval | read_total_multiplier | read_total_constant | a read … |
/// |---|---|---|---|
/// | 0 | 0 | 0 | waits for every byte asked for |
/// | [`MAXDWORD`] | 0 | 0 | returns at once with what is buffered |
/// | [`MAXDWORD`] | [`MAXDWORD`] | c (0 < c < `MAXDWORD`) | returns at once if a byte is there, else with the first byte to come within c |
/// | i | m | c | returns at m × len + c (0 and 0: no total), or once i passes between two bytes (0: no interval) |
///
/// A write ends at `write_total_multiplier` × len + `write_total_constant`
/// (both 0: no limit) and returns what was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// The longest gap between two received bytes.
    pub read_interval: u32,
    /// Added to the read's total timeout per byte asked for.
    pub read_total_multiplier: u32,
    /// Added to the read's total timeout once.
    pub read_total_constant: u32,
    /// Added to the write's total timeout per byte.
    pub write_total_multiplier: u32,
    /// Added to the write's total timeout once.
    pub write_total_constant: u32,
}

/// The modem's status lines (classic `GetCommModemStatus`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModemStatus {
    /// Clear to send.
    pub cts: bool,
    /// Data set ready.
    pub dsr: bool,
    /// Ring indicator.
    pub ring: bool,
    /// Receive line signal detect (carrier detect).
    pub rlsd: bool,
}

/// The events a port can wait for (classic `EV_*`, the same values).
pub mod events {
    /// A byte was received.
    pub const RXCHAR: u32 = 0x0001;
    /// The event character was received ([`super::SerialPort::set_event_char`]).
    pub const RXFLAG: u32 = 0x0002;
    /// The last byte written was sent.
    pub const TXEMPTY: u32 = 0x0004;
    /// CTS changed.
    pub const CTS: u32 = 0x0008;
    /// DSR changed.
    pub const DSR: u32 = 0x0010;
    /// Carrier detect changed.
    pub const RLSD: u32 = 0x0020;
    /// A break was received.
    pub const BREAK: u32 = 0x0040;
    /// A line-status error (framing, overrun, parity).
    pub const ERR: u32 = 0x0080;
    /// A ring indicator.
    pub const RING: u32 = 0x0100;
    /// The events `wait_event` can report on every tty.
    pub const SUPPORTED: u32 = RXCHAR | RXFLAG | TXEMPTY;
    /// The events that come from the line's counters: on a
    /// [`super::SerialPair`] end and on a UART whose driver keeps them.
    pub const LINE: u32 = CTS | DSR | RLSD | BREAK | ERR | RING;
}

/// The line errors of [`SerialPort::clear_errors`] (classic `CE_*`, the same values).
pub mod errors {
    /// The input buffer overflowed.
    pub const RXOVER: u32 = 0x0001;
    /// A byte was lost in the hardware (overrun).
    pub const OVERRUN: u32 = 0x0002;
    /// A parity error.
    pub const RXPARITY: u32 = 0x0004;
    /// A framing error.
    pub const FRAME: u32 = 0x0008;
    /// A break was received.
    pub const BREAK: u32 = 0x0010;
}

/// What [`SerialPort::clear_errors`] reports (classic `ClearCommError`'s
/// errors and `COMSTAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommStatus {
    /// The [`errors`] since the last call.
    pub errors: u32,
    /// Bytes received and not read.
    pub in_queue: u64,
    /// Bytes written and not sent.
    pub out_queue: u32,
}

/// What a wait for events looks at (classic `SetCommMask`, `EvtChar`),
/// and the bytes read ahead while looking for the event character.
#[derive(Debug, Default)]
struct Watch {
    mask: u32,
    /// Bumped by every mask change: a wait under way ends (with no event).
    generation: u64,
    event_char: u8,
    /// Received bytes taken off the line to look for the event character;
    /// reads take them first.
    ahead: Vec<u8>,
    /// The line counters at the last event reported (or mask set).
    seen: line::Counts,
    /// The line counters at the last [`SerialPort::clear_errors`].
    cleared: line::Counts,
}

/// An open serial port.
#[derive(Debug)]
pub struct SerialPort {
    fd: OwnedFd,
    path: PathBuf,
    timeouts: Mutex<Timeouts>,
    watch: Mutex<Watch>,
    /// Rung by a mask change, to end a wait under way.
    bell: switchboard_sys::eventfd::EventFd,
    /// The pair whose end this is, when it is one ([`SerialPair`]).
    pair: Option<line::PairEnd>,
    /// On a pair's end: the pair's count of bytes taken from the end that
    /// this port's writes so far reach (see [`line::ToPair::Drain`]).
    written: std::sync::atomic::AtomicU64,
}

fn sys(path: &Path) -> impl Fn(Errno) -> Error + '_ {
    move |e| match e {
        Errno::NOENT => Error::NotFound(path.display().to_string()),
        Errno::ACCESS | Errno::PERM | Errno::BUSY => Error::AccessDenied(format!("{}: {e}", path.display())),
        Errno::NOTTY => Error::InvalidParameter("not a terminal (serial port or pty)"),
        Errno::IO => Error::BrokenPipe,
        other => Error::sys(other),
    }
}

impl SerialPort {
    /// Opens the tty at `path` in raw mode: no echo, no line editing, no
    /// character translation; the receiver on, modem control lines ignored
    /// for opening (`CLOCAL`).
    ///
    /// # Errors
    /// `NotFound`; `AccessDenied`; `InvalidParameter` for a file that is
    /// not a terminal.
    pub fn open(path: impl AsRef<Path>) -> Result<SerialPort> {
        let path = path.as_ref();
        let fd = tty::open(path).map_err(sys(path))?;
        let mut t = tty::attrs(&fd).map_err(sys(path))?;
        t.make_raw();
        t.control_modes |= ControlModes::CLOCAL | ControlModes::CREAD;
        // VMIN 1 with a non-blocking descriptor: "nothing yet" is EAGAIN
        // and end of line is 0 (with VMIN 0 a read of nothing is 0 too);
        // waits happen in poll, with the classic timeouts.
        t.special_codes[SpecialCodeIndex::VMIN] = 1;
        t.special_codes[SpecialCodeIndex::VTIME] = 0;
        tty::set_attrs(&fd, &t).map_err(sys(path))?;
        let bell = switchboard_sys::eventfd::EventFd::new().map_err(Error::sys)?;
        let pair = line::PairEnd::find(path)?;
        let taken = match &pair {
            Some(p) => p.state()?.taken,
            None => 0,
        };
        let port = SerialPort {
            written: std::sync::atomic::AtomicU64::new(taken),
            fd,
            path: path.to_owned(),
            timeouts: Mutex::new(Timeouts::default()),
            watch: Mutex::new(Watch::default()),
            bell,
            pair,
        };
        let counts = port.counts()?.unwrap_or_default();
        (port.watch().seen, port.watch().cleared) = (counts, counts);
        Ok(port)
    }

    /// The path it was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(Errno) -> Error + '_ {
        sys(&self.path)
    }

    /// The line settings the driver has now (classic `GetCommState`).
    ///
    /// # Errors
    /// As the system's.
    pub fn settings(&self) -> Result<LineSettings> {
        let t = tty::attrs(&self.fd).map_err(self.err())?;
        let c = t.control_modes;
        let mut data_bits = match c & ControlModes::CSIZE {
            x if x == ControlModes::CS5 => 5,
            x if x == ControlModes::CS6 => 6,
            x if x == ControlModes::CS7 => 7,
            _ => 8,
        };
        let mut parity = match (
            c.contains(ControlModes::PARENB),
            c.contains(ControlModes::CMSPAR),
            c.contains(ControlModes::PARODD),
        ) {
            (false, _, _) => Parity::None,
            (true, false, true) => Parity::Odd,
            (true, false, false) => Parity::Even,
            (true, true, true) => Parity::Mark,
            (true, true, false) => Parity::Space,
        };
        if let Some(pair) = &self.pair {
            // A pty forgets data bits and parity; the pair keeps them.
            let state = pair.state()?;
            if state.data_bits != 0 {
                (data_bits, parity) = (state.data_bits, line::parity_from(state.parity));
            }
        }
        let stop_bits = match (c.contains(ControlModes::CSTOPB), data_bits) {
            (false, _) => StopBits::One,
            (true, 5) => StopBits::OnePointFive,
            (true, _) => StopBits::Two,
        };
        let software = t.input_modes.contains(InputModes::IXON | InputModes::IXOFF);
        let flow = match (c.contains(ControlModes::CRTSCTS), software) {
            (true, _) => FlowControl::RtsCts,
            (false, true) => FlowControl::XonXoff,
            (false, false) => FlowControl::None,
        };
        Ok(LineSettings {
            baud: t.output_speed(),
            data_bits,
            parity,
            stop_bits,
            flow,
            xon: t.special_codes[SpecialCodeIndex::VSTART],
            xoff: t.special_codes[SpecialCodeIndex::VSTOP],
        })
    }

    /// Applies `s` (classic `SetCommState`) and returns what the driver
    /// applied, read back (S02): the same as `s`, or nothing is applied.
    ///
    /// # Errors
    /// `InvalidParameter` for a value [`LineSettings::check`] refuses or the
    /// driver does not take (a baud rate it cannot make; parity or fewer
    /// than 8 data bits on a pseudo-terminal); the settings stay as they were.
    pub fn set_settings(&self, s: &LineSettings) -> Result<LineSettings> {
        s.check()?;
        let before = tty::attrs(&self.fd).map_err(self.err())?;
        let mut t = before.clone();
        t.set_speed(s.baud).map_err(|_| Error::InvalidParameter("a baud rate the driver cannot make"))?;
        let c = &mut t.control_modes;
        c.remove(ControlModes::CSIZE | ControlModes::PARENB | ControlModes::PARODD | ControlModes::CMSPAR);
        c.remove(ControlModes::CSTOPB | ControlModes::CRTSCTS);
        c.insert(match s.data_bits {
            5 => ControlModes::CS5,
            6 => ControlModes::CS6,
            7 => ControlModes::CS7,
            _ => ControlModes::CS8,
        });
        c.insert(match s.parity {
            Parity::None => ControlModes::empty(),
            Parity::Odd => ControlModes::PARENB | ControlModes::PARODD,
            Parity::Even => ControlModes::PARENB,
            Parity::Mark => ControlModes::PARENB | ControlModes::CMSPAR | ControlModes::PARODD,
            Parity::Space => ControlModes::PARENB | ControlModes::CMSPAR,
        });
        if s.stop_bits != StopBits::One {
            c.insert(ControlModes::CSTOPB);
        }
        if s.flow == FlowControl::RtsCts {
            c.insert(ControlModes::CRTSCTS);
        }
        t.input_modes.set(InputModes::IXON | InputModes::IXOFF, s.flow == FlowControl::XonXoff);
        t.special_codes[SpecialCodeIndex::VSTART] = s.xon;
        t.special_codes[SpecialCodeIndex::VSTOP] = s.xoff;
        tty::set_attrs(&self.fd, &t).map_err(|e| match e {
            Errno::INVAL => Error::InvalidParameter("a setting the driver does not take"),
            other => self.err()(other),
        })?;
        if let Some(pair) = &self.pair {
            pair.request(line::ToPair::Frame { data_bits: s.data_bits, parity: line::parity_code(s.parity) })?;
        }
        let applied = self.settings()?;
        if applied != *s {
            // The driver changed what it was given (a pty keeps 8 data bits
            // and no parity): unsupported here. Nothing changes.
            tty::set_attrs(&self.fd, &before).map_err(self.err())?;
            return Err(Error::InvalidParameter(
                "the driver does not take these settings (a pseudo-terminal keeps 8 data bits and no parity)",
            ));
        }
        Ok(applied)
    }

    /// Sets the timeouts (classic `SetCommTimeouts`).
    pub fn set_timeouts(&self, t: Timeouts) {
        *self.timeouts.lock().unwrap_or_else(PoisonError::into_inner) = t;
    }

    /// The timeouts (classic `GetCommTimeouts`).
    pub fn timeouts(&self) -> Timeouts {
        *self.timeouts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads into `buf` as the [`Timeouts`] say; the bytes read (a timeout
    /// is not an error: possibly 0).
    ///
    /// # Errors
    /// `BrokenPipe` when the line is gone (a pty's far end closed).
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        let t = self.timeouts();
        let start = Instant::now();
        let ms = |v: u64| Duration::from_millis(v);
        // The read's plan: (total deadline, interval, return on the first byte).
        let (total, interval, first) = match (t.read_interval, t.read_total_multiplier, t.read_total_constant) {
            (MAXDWORD, 0, 0) => (Some(start), None, false),
            (MAXDWORD, MAXDWORD, c) if c > 0 && c < MAXDWORD => (Some(start + ms(u64::from(c))), None, true),
            (i, m, c) => {
                let total = u64::from(m) * buf.len() as u64 + u64::from(c);
                ((total > 0).then(|| start + ms(total)), (i > 0).then(|| ms(u64::from(i))), false)
            }
        };
        let mut got = 0;
        let mut last_byte = start;
        loop {
            let n = self.read_now(&mut buf[got..])?;
            if n > 0 {
                got += n;
                last_byte = Instant::now();
            }
            if got == buf.len() || (first && got > 0) {
                return Ok(got);
            }
            let mut until = total;
            if let (Some(i), true) = (interval, got > 0) {
                until = Some(until.map_or(last_byte + i, |u| u.min(last_byte + i)));
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                return Ok(got);
            }
            self.wait_until(socket::wait_readable(self.fd.as_fd(), until))?;
        }
    }

    /// Reads what is there now, without waiting: bytes read ahead by a
    /// wait for events first.
    fn read_now(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        {
            let mut w = self.watch();
            if !w.ahead.is_empty() {
                let n = w.ahead.len().min(buf.len());
                buf[..n].copy_from_slice(&w.ahead[..n]);
                w.ahead.drain(..n);
                return Ok(n);
            }
        }
        tty::read_now(&self.fd, buf).map_err(self.err())
    }

    /// A wait's end: ready, or its deadline (the caller looks again).
    fn wait_until(&self, waited: switchboard_sys::Result<()>) -> Result<()> {
        match waited {
            Ok(()) | Err(Errno::TIMEDOUT) => Ok(()),
            Err(e) => Err(self.err()(e)),
        }
    }

    fn watch(&self) -> std::sync::MutexGuard<'_, Watch> {
        self.watch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the events [`SerialPort::wait_event`] waits for (classic
    /// `SetCommMask`); a wait under way ends at once, reporting no event.
    ///
    /// # Errors
    /// `NotSupported` (50) for the modem-line, break and error events
    /// ([`events::LINE`]) on a tty whose driver keeps no line counters (a
    /// pty not of a [`SerialPair`], most USB adapters).
    pub fn set_event_mask(&self, mask: u32) -> Result<()> {
        let counts = self.counts()?;
        let supported = events::SUPPORTED | if counts.is_some() { events::LINE } else { 0 };
        if mask & !supported != 0 {
            return Err(Error::NotSupported(format!(
                "events {:#x}: this driver keeps no line counters; only RXCHAR, RXFLAG and TXEMPTY are reported",
                mask & !supported
            )));
        }
        let mut w = self.watch();
        w.seen = counts.unwrap_or_default();
        w.mask = mask;
        w.generation += 1;
        drop(w);
        self.bell.notify();
        Ok(())
    }

    /// The events waited for (classic `GetCommMask`).
    pub fn event_mask(&self) -> u32 {
        self.watch().mask
    }

    /// Sets the event character of [`events::RXFLAG`] (classic `DCB.EvtChar`).
    pub fn set_event_char(&self, c: u8) {
        self.watch().event_char = c;
    }

    /// Waits until one of the events in the mask happens, or the mask
    /// changes, or `timeout` passes (`None`: for good) (classic
    /// `WaitCommEvent`): the events that happened, 0 when the mask changed.
    /// `RXCHAR`: bytes are waiting to be read (a state, not an edge: a
    /// wait returns at once while bytes are unread); `RXFLAG`: the event
    /// character came (the bytes are read ahead, up to 64 KiB, and reads
    /// get them first); `TXEMPTY`: every byte written was sent; the
    /// [`events::LINE`] events: their counter moved since the last event
    /// reported.
    ///
    /// # Errors
    /// `Timeout` (121) at `timeout`; `BrokenPipe` when the line is gone.
    pub fn wait_event(&self, timeout: Option<Duration>) -> Result<u32> {
        let until = timeout.map(|t| Instant::now() + t);
        let generation = self.watch().generation;
        loop {
            self.bell.drain();
            let (mask, happened) = self.events_now(generation)?;
            let Some(mask) = mask else { return Ok(0) };
            if happened != 0 {
                return Ok(happened);
            }
            let mut left = until.map(|u| u.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(Error::Timeout);
            }
            let uart_lines = mask & events::LINE != 0 && self.pair.is_none();
            if mask & events::TXEMPTY != 0 || uart_lines {
                // No descriptor says "sent" or "a UART's counter moved":
                // look again soon.
                left = Some(left.map_or(TXEMPTY_LOOK, |l| l.min(TXEMPTY_LOOK)));
            }
            // The bell; the line when a byte is an event; the pair's news.
            let mut watched = vec![self.bell.as_fd()];
            if mask & (events::RXCHAR | events::RXFLAG) != 0 {
                watched.push(self.fd.as_fd());
            }
            if let (Some(pair), true) = (&self.pair, mask & events::LINE != 0) {
                watched.push(pair.fd());
            }
            socket::poll_readable(&watched, left).map_err(self.err())?;
        }
    }

    /// The mask (`None` once it changed since `generation`) and the events
    /// in it that hold now.
    fn events_now(&self, generation: u64) -> Result<(Option<u32>, u32)> {
        let mut w = self.watch();
        if w.generation != generation {
            return Ok((None, 0));
        }
        let mut happened = 0;
        if w.mask & (events::RXCHAR | events::RXFLAG) != 0 && w.ahead.len() < AHEAD_MAX {
            // Read ahead what came (reads get it first): the event
            // character is looked for in it, and a line gone shows here.
            let mut chunk = [0u8; 4096];
            let n = tty::read_now(&self.fd, &mut chunk).map_err(self.err())?;
            if w.mask & events::RXFLAG != 0 && chunk[..n].contains(&w.event_char) {
                happened |= events::RXFLAG;
            }
            w.ahead.extend_from_slice(&chunk[..n]);
            if w.mask & events::RXCHAR != 0 && !w.ahead.is_empty() {
                happened |= events::RXCHAR;
            }
        }
        if w.mask & events::TXEMPTY != 0 && self.unsent()? == 0 {
            happened |= events::TXEMPTY;
        }
        if w.mask & events::LINE != 0 {
            let now = self.counts()?.unwrap_or_default();
            let line = line_events(&w.seen, &now) & w.mask;
            if line != 0 {
                w.seen = now;
                happened |= line;
            }
        }
        Ok((Some(w.mask), happened))
    }

    /// Bytes written and not sent: the tty's output queue, or on a pair's
    /// end what the pair has not put through.
    fn unsent(&self) -> Result<u32> {
        match &self.pair {
            Some(pair) => {
                let s = pair.request(line::ToPair::Query)?;
                let queued = self.written.load(std::sync::atomic::Ordering::Acquire).saturating_sub(s.taken);
                Ok((queued as u32).saturating_add(s.on_wire))
            }
            None => tty::output_queued(&self.fd).map_err(self.err()),
        }
    }

    /// The line counters (`None`: the driver keeps none).
    fn counts(&self) -> Result<Option<line::Counts>> {
        match &self.pair {
            Some(pair) => Ok(Some(pair.state()?.counts)),
            None => Ok(tty::counters(&self.fd).ok().map(line::Counts::from)),
        }
    }

    /// The line errors since the last call, and the queues (classic
    /// `ClearCommError`): framing, parity, overrun and break as the
    /// driver counts them (none where it keeps no counters, a plain pty).
    ///
    /// # Errors
    /// `BrokenPipe` when the line is gone.
    pub fn clear_errors(&self) -> Result<CommStatus> {
        let now = self.counts()?.unwrap_or_default();
        let mut w = self.watch();
        let was = std::mem::replace(&mut w.cleared, now);
        let in_queue = w.ahead.len() as u64;
        drop(w);
        let errors = moved(&[
            (errors::RXOVER, was.buf_overrun, now.buf_overrun),
            (errors::OVERRUN, was.overrun, now.overrun),
            (errors::RXPARITY, was.parity, now.parity),
            (errors::FRAME, was.frame, now.frame),
            (errors::BREAK, was.brk, now.brk),
        ]);
        Ok(CommStatus {
            errors,
            in_queue: in_queue + tty::available(&self.fd).map_err(self.err())?,
            out_queue: self.unsent()?,
        })
    }

    /// Writes `buf` within the write timeouts; the bytes written (a
    /// timeout is not an error: possibly fewer than `buf.len()`).
    ///
    /// # Errors
    /// `BrokenPipe` when the line is gone.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        let t = self.timeouts();
        let total = u64::from(t.write_total_multiplier) * buf.len() as u64 + u64::from(t.write_total_constant);
        let until = (total > 0).then(|| Instant::now() + Duration::from_millis(total));
        let mut done = 0;
        while done < buf.len() {
            let n = tty::write_now(&self.fd, &buf[done..]).map_err(self.err())?;
            self.written.fetch_add(n as u64, std::sync::atomic::Ordering::AcqRel);
            done += n;
            if done == buf.len() || until.is_some_and(|u| Instant::now() >= u) {
                break;
            }
            self.wait_until(socket::wait_writable(self.fd.as_fd(), until))?;
        }
        Ok(done)
    }

    /// Waits until everything written has been sent (classic `FlushFileBuffers`).
    ///
    /// # Errors
    /// As the system's.
    pub fn drain(&self) -> Result<()> {
        match &self.pair {
            Some(pair) => pair.drain(self.written.load(std::sync::atomic::Ordering::Acquire)),
            None => tty::drain(&self.fd).map_err(self.err()),
        }
    }

    /// Bytes received and not read (classic `ClearCommError`'s `cbInQue`).
    ///
    /// # Errors
    /// As the system's.
    pub fn bytes_waiting(&self) -> Result<u64> {
        let ahead = self.watch().ahead.len() as u64;
        Ok(ahead + tty::available(&self.fd).map_err(self.err())?)
    }

    /// Discards what was received and not read (`input`) and what was
    /// written and not sent (`output`) (classic `PurgeComm`).
    ///
    /// # Errors
    /// As the system's.
    pub fn purge(&self, input: bool, output: bool) -> Result<()> {
        if input {
            self.watch().ahead.clear();
        }
        let queue = match (input, output) {
            (true, true) => QueueSelector::IOFlush,
            (true, false) => QueueSelector::IFlush,
            (false, true) => QueueSelector::OFlush,
            (false, false) => return Ok(()),
        };
        tty::purge(&self.fd, queue).map_err(self.err())?;
        if let (Some(pair), true) = (&self.pair, output) {
            // What was written and not taken is gone: nothing to wait for.
            let taken = pair.request(line::ToPair::Query)?.taken;
            self.written.store(taken, std::sync::atomic::Ordering::Release);
        }
        Ok(())
    }

    /// Sends a break (classic `SetCommBreak` … `ClearCommBreak`, as one).
    ///
    /// # Errors
    /// As the system's.
    pub fn send_break(&self) -> Result<()> {
        match &self.pair {
            Some(pair) => {
                // After every byte written before it, as a UART's.
                self.drain()?;
                pair.request(line::ToPair::Break { ms: 250 }).map(drop)
            }
            None => tty::send_break(&self.fd).map_err(self.err()),
        }
    }

    /// The modem status lines (classic `GetCommModemStatus`).
    ///
    /// # Errors
    /// `NotSupported` (50) where the driver has no modem lines (a pty).
    pub fn modem_status(&self) -> Result<ModemStatus> {
        use switchboard_sys::tty::lines;
        let bits = match &self.pair {
            Some(pair) => pair.state()?.lines,
            None => tty::modem_lines(&self.fd).map_err(|e| self.no_modem(e))?,
        };
        Ok(ModemStatus {
            cts: bits & lines::CTS != 0,
            dsr: bits & lines::DSR != 0,
            ring: bits & lines::RING != 0,
            rlsd: bits & lines::RLSD != 0,
        })
    }

    /// Raises or drops RTS (classic `EscapeCommFunction(SETRTS | CLRRTS)`).
    ///
    /// # Errors
    /// As [`SerialPort::modem_status`].
    pub fn set_rts(&self, on: bool) -> Result<()> {
        if let Some(pair) = &self.pair {
            return pair.request(line::ToPair::Lines { rts: Some(on), dtr: None }).map(drop);
        }
        tty::set_modem_lines(&self.fd, switchboard_sys::tty::lines::RTS, on).map_err(|e| self.no_modem(e))
    }

    /// Raises or drops DTR (classic `EscapeCommFunction(SETDTR | CLRDTR)`).
    ///
    /// # Errors
    /// As [`SerialPort::modem_status`].
    pub fn set_dtr(&self, on: bool) -> Result<()> {
        if let Some(pair) = &self.pair {
            return pair.request(line::ToPair::Lines { rts: None, dtr: Some(on) }).map(drop);
        }
        tty::set_modem_lines(&self.fd, switchboard_sys::tty::lines::DTR, on).map_err(|e| self.no_modem(e))
    }

    fn no_modem(&self, e: Errno) -> Error {
        match e {
            Errno::NOTTY | Errno::INVAL => Error::NotSupported(format!(
                "{}: the driver has no modem lines (a pseudo-terminal?)",
                self.path.display()
            )),
            other => self.err()(other),
        }
    }
}

/// The events the counters' moves from `was` to `now` make.
fn line_events(was: &line::Counts, now: &line::Counts) -> u32 {
    moved(&[
        (events::CTS, was.cts, now.cts),
        (events::DSR, was.dsr, now.dsr),
        (events::RLSD, was.dcd, now.dcd),
        (events::RING, was.rng, now.rng),
        (events::BREAK, was.brk, now.brk),
        (events::ERR, was.frame, now.frame),
        (events::ERR, was.overrun, now.overrun),
        (events::ERR, was.parity, now.parity),
    ])
}

/// The bits of the `(bit, was, now)` counters that moved.
fn moved(counters: &[(u32, u32, u32)]) -> u32 {
    counters.iter().filter(|(_, was, now)| was != now).fold(0, |bits, (bit, ..)| bits | bit)
}

/// A pseudo-terminal: its master, which stands for the far end of a cable
/// (what is written to it arrives at the port; what the port writes comes
/// out of it), and the path of the end to open as a [`SerialPort`].
///
/// # Errors
/// When the system is out of ptys.
pub fn pty() -> Result<(std::fs::File, String)> {
    let (master, path) = tty::openpty().map_err(Error::sys)?;
    Ok((std::fs::File::from(master), path))
}

/// A serial port the system has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// Its device, `/dev/ttyS0`, `/dev/ttyUSB0`, …
    pub path: PathBuf,
    /// The kernel driver behind it.
    pub driver: String,
}

/// The serial ports the system shows (classic: the `COMn` names): every
/// tty in `/sys/class/tty` backed by a device, less the legacy UART slots
/// with no port behind them (`type` 0).
pub fn list_ports() -> Vec<PortInfo> {
    let Ok(entries) = std::fs::read_dir("/sys/class/tty") else { return Vec::new() };
    let mut ports: Vec<PortInfo> = entries
        .flatten()
        .filter_map(|e| {
            let dir = e.path();
            let driver = std::fs::read_link(dir.join("device/driver")).ok()?;
            let unknown_uart = std::fs::read_to_string(dir.join("type")).is_ok_and(|t| t.trim() == "0");
            (!unknown_uart).then(|| PortInfo {
                path: Path::new("/dev").join(e.file_name()),
                driver: driver.file_name().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default(),
            })
        })
        .collect();
    ports.sort_by(|a, b| a.path.cmp(&b.path));
    ports
}
