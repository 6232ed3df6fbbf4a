//! Parallel ports through the kernel's `ppdev` driver (`/dev/parportN`):
//! claim the port, write bytes, read the status lines.
//!
//! # Safety
//!
//! Each ioctl passes what `ppdev` reads or writes for its request (see
//! `linux/ppdev.h`): nothing for `PPCLAIM` and `PPRELEASE`, one `u8` for
//! `PPRSTATUS`; the descriptor is borrowed for the call's length.

#![allow(unsafe_code)]

use std::path::Path;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::ioctl::{opcode, Getter, NoArg, Opcode};

use crate::Result;

const PPCLAIM: Opcode = opcode::none(b'p', 0x8b);
const PPRELEASE: Opcode = opcode::none(b'p', 0x8c);
const PPRSTATUS: Opcode = opcode::read::<u8>(b'p', 0x81);

/// Opens the ppdev device at `path` and claims its port for this process.
///
/// # Errors
/// `ENOENT` (no such device), `ENXIO`/`ENODEV` (no port behind it),
/// `EACCES`, `EBUSY` (claimed by a driver such as `lp`).
pub fn open(path: &Path) -> Result<OwnedFd> {
    let fd = rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    // SAFETY: PPCLAIM takes no argument.
    unsafe { rustix::ioctl::ioctl(&fd, NoArg::<PPCLAIM>::new()) }?;
    Ok(fd)
}

/// Releases a port [`open`] claimed (closing the descriptor releases it too).
///
/// # Errors
/// `EINVAL` when not claimed.
pub fn release(fd: impl AsFd) -> Result<()> {
    // SAFETY: PPRELEASE takes no argument.
    unsafe { rustix::ioctl::ioctl(fd, NoArg::<PPRELEASE>::new()) }
}

/// The status register (busy, ack, paper out, select, error).
///
/// # Errors
/// `EINVAL` when the port is not claimed.
pub fn status(fd: impl AsFd) -> Result<u8> {
    // SAFETY: PPRSTATUS writes one unsigned char.
    unsafe { rustix::ioctl::ioctl(fd, Getter::<PPRSTATUS, u8>::new()) }
}

/// Writes `buf` to the claimed port (compatibility mode): the bytes taken.
///
/// # Errors
/// `EAGAIN` when the printer stays busy, `EIO`.
pub fn write(fd: impl AsFd, buf: &[u8]) -> Result<usize> {
    rustix::io::write(fd, buf)
}
