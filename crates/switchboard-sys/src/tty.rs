//! Terminals and serial lines: opening a tty, its termios settings,
//! modem lines, break, purge, and pseudo-terminal pairs.
//!
//! Termios goes through rustix (with arbitrary baud rates through
//! `termios2`, and `CMSPAR`); the modem-line ioctls rustix does not wrap
//! (`TIOCMGET`, `TIOCMBIS`, `TIOCMBIC`) are here.
//!
//! # Safety
//!
//! The modem-line ioctls pass a pointer to one `c_int`, the type the
//! kernel reads or writes for these requests (`tty_ioctl(4)`); the
//! descriptor is borrowed for the call's length. `TIOCGICOUNT` writes one
//! `struct serial_icounter_struct`, which [`Counters`] lays out as the
//! kernel's uapi header does.

#![allow(unsafe_code)]

use std::path::Path;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::ioctl::{Getter, Opcode, Setter};
pub use rustix::termios::{
    ControlModes, InputModes, LocalModes, OptionalActions, OutputModes, QueueSelector, SpecialCodeIndex, Termios,
};

use crate::{Errno, Result};

/// Opens the tty at `path` for reading and writing: not as a controlling
/// terminal, non-blocking (reads wait in `poll`, with their timeouts),
/// close-on-exec.
///
/// # Errors
/// `ENOENT`, `EACCES`, `EBUSY` (opened exclusively elsewhere), `ENOTTY`
/// for something that is not a terminal.
pub fn open(path: &Path) -> Result<OwnedFd> {
    let fd = rustix::fs::open(path, OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())?;
    rustix::termios::tcgetattr(&fd)?;
    Ok(fd)
}

/// A new pseudo-terminal: its master and the path of its slave end.
///
/// # Errors
/// `ENOSPC` when the system is out of ptys.
pub fn openpty() -> Result<(OwnedFd, String)> {
    use rustix::pty::OpenptFlags;
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    Ok((master, name.to_string_lossy().into_owned()))
}

/// A new pseudo-terminal whose master is non-blocking and in packet mode
/// (`TIOCPKT`): each read of the master starts with a status byte, 0 for
/// data, else [`packet`] bits (the slave flushed a queue, its output was
/// stopped or started, its settings changed). The slave is opened once and
/// closed, so the master reports a hang-up until a program opens it.
///
/// # Errors
/// `ENOSPC` when the system is out of ptys.
pub fn packet_master() -> Result<(OwnedFd, String)> {
    const TIOCPKT: Opcode = libc::TIOCPKT as Opcode;
    let (master, path) = openpty()?;
    rustix::io::ioctl_fionbio(&master, true)?;
    // SAFETY: TIOCPKT reads one c_int (tty_ioctl(4)).
    unsafe { rustix::ioctl::ioctl(&master, Setter::<TIOCPKT, libc::c_int>::new(1)) }?;
    drop(open(Path::new(&path))?);
    Ok((master, path))
}

/// The status bits of a packet-mode master's reads (`TIOCPKT_*`).
pub mod packet {
    /// The slave discarded its input queue.
    pub const FLUSHREAD: u8 = 0x01;
    /// The slave discarded its output queue.
    pub const FLUSHWRITE: u8 = 0x02;
    /// The slave's settings changed (with `EXTPROC` set).
    pub const IOCTL: u8 = 0x40;
}

/// A serial driver's line counters (`TIOCGICOUNT`): modem-line changes,
/// bytes, breaks and line errors since the port was set up.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// CTS changes.
    pub cts: i32,
    /// DSR changes.
    pub dsr: i32,
    /// Ring-indicator changes.
    pub rng: i32,
    /// Carrier-detect changes.
    pub dcd: i32,
    /// Bytes received.
    pub rx: i32,
    /// Bytes sent.
    pub tx: i32,
    /// Framing errors.
    pub frame: i32,
    /// Hardware overruns.
    pub overrun: i32,
    /// Parity errors.
    pub parity: i32,
    /// Breaks received.
    pub brk: i32,
    /// Input-buffer overruns.
    pub buf_overrun: i32,
    reserved: [i32; 9],
}

/// The driver's line counters.
///
/// # Errors
/// `ENOTTY` or `EINVAL` for a driver that keeps none (a pty, most USB adapters).
pub fn counters(fd: impl AsFd) -> Result<Counters> {
    const TIOCGICOUNT: Opcode = libc::TIOCGICOUNT as Opcode;
    // SAFETY: TIOCGICOUNT writes one struct serial_icounter_struct, which
    // `Counters` lays out field for field (20 c_ints).
    unsafe { rustix::ioctl::ioctl(fd, Getter::<TIOCGICOUNT, Counters>::new()) }
}

/// The terminal's settings.
///
/// # Errors
/// `ENOTTY`.
pub fn attrs(fd: impl AsFd) -> Result<Termios> {
    rustix::termios::tcgetattr(fd)
}

/// Applies `t` now.
///
/// # Errors
/// `EINVAL` for values the driver refuses.
pub fn set_attrs(fd: impl AsFd, t: &Termios) -> Result<()> {
    rustix::termios::tcsetattr(fd, OptionalActions::Now, t)
}

/// Sends a break (a quarter to half a second of zero bits).
///
/// # Errors
/// `ENOTTY`.
pub fn send_break(fd: impl AsFd) -> Result<()> {
    rustix::termios::tcsendbreak(fd)
}

/// Discards what is queued: received and not read, written and not sent.
///
/// # Errors
/// `ENOTTY`.
pub fn purge(fd: impl AsFd, queue: QueueSelector) -> Result<()> {
    rustix::termios::tcflush(fd, queue)
}

/// Waits until everything written has been sent.
///
/// # Errors
/// `ENOTTY`, `EINTR`.
pub fn drain(fd: impl AsFd) -> Result<()> {
    rustix::termios::tcdrain(fd)
}

/// Bytes received and not read yet.
///
/// # Errors
/// `ENOTTY`.
pub fn available(fd: impl AsFd) -> Result<u64> {
    rustix::io::ioctl_fionread(fd)
}

/// The modem lines (`TIOCM_*` bits).
///
/// # Errors
/// `ENOTTY` (a pty, a driver without modem lines), `EINVAL`.
pub fn modem_lines(fd: impl AsFd) -> Result<u32> {
    const TIOCMGET: Opcode = libc::TIOCMGET as Opcode;
    // SAFETY: TIOCMGET writes one c_int (tty_ioctl(4)).
    let bits = unsafe { rustix::ioctl::ioctl(fd, Getter::<TIOCMGET, libc::c_int>::new()) }?;
    Ok(bits as u32)
}

/// Raises (`on`) or drops the modem lines in `bits` (`TIOCM_RTS`, `TIOCM_DTR`).
///
/// # Errors
/// As [`modem_lines`].
pub fn set_modem_lines(fd: impl AsFd, bits: u32, on: bool) -> Result<()> {
    const TIOCMBIS: Opcode = libc::TIOCMBIS as Opcode;
    const TIOCMBIC: Opcode = libc::TIOCMBIC as Opcode;
    let bits = bits as libc::c_int;
    match on {
        // SAFETY: TIOCMBIS reads one c_int (tty_ioctl(4)).
        true => unsafe { rustix::ioctl::ioctl(fd, Setter::<TIOCMBIS, libc::c_int>::new(bits)) },
        // SAFETY: TIOCMBIC reads one c_int (tty_ioctl(4)).
        false => unsafe { rustix::ioctl::ioctl(fd, Setter::<TIOCMBIC, libc::c_int>::new(bits)) },
    }
}

/// The modem-line bits, as `TIOCM_*`.
pub mod lines {
    /// Request to send (an output).
    pub const RTS: u32 = libc::TIOCM_RTS as u32;
    /// Data terminal ready (an output).
    pub const DTR: u32 = libc::TIOCM_DTR as u32;
    /// Clear to send.
    pub const CTS: u32 = libc::TIOCM_CTS as u32;
    /// Data set ready.
    pub const DSR: u32 = libc::TIOCM_DSR as u32;
    /// Ring indicator.
    pub const RING: u32 = libc::TIOCM_RI as u32;
    /// Carrier detect (receive line signal detect, RLSD).
    pub const RLSD: u32 = libc::TIOCM_CD as u32;
}

/// Reads what is there now into `buf` (the descriptor is non-blocking):
/// the bytes read, 0 when nothing is waiting.
///
/// # Errors
/// `EIO` when the line is gone (a pty's master closed; end of file).
pub fn read_now(fd: impl AsFd, buf: &mut [u8]) -> Result<usize> {
    let asked = buf.len();
    match rustix::io::read(fd, buf) {
        Err(Errno::AGAIN) => Ok(0),
        Ok(0) if asked > 0 => Err(Errno::IO),
        other => other,
    }
}

/// Writes what fits now: the bytes written, 0 when the output queue is full.
///
/// # Errors
/// `EIO` when the line is gone.
pub fn write_now(fd: impl AsFd, buf: &[u8]) -> Result<usize> {
    match rustix::io::write(fd, buf) {
        Err(Errno::AGAIN) => Ok(0),
        other => other,
    }
}

/// Bytes written and not sent yet (the output queue).
///
/// # Errors
/// `ENOTTY`.
pub fn output_queued(fd: impl AsFd) -> Result<u32> {
    const TIOCOUTQ: Opcode = libc::TIOCOUTQ as Opcode;
    // SAFETY: TIOCOUTQ writes one c_int (tty_ioctl(4)).
    let n = unsafe { rustix::ioctl::ioctl(fd, Getter::<TIOCOUTQ, libc::c_int>::new()) }?;
    Ok(n.max(0) as u32)
}
