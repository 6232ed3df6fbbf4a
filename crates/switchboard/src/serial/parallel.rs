//! Parallel ports (S07): `/dev/parportN` through the kernel's `ppdev`
//! driver, as classic `CreateFile("LPT1")`, `WriteFile` and the status of
//! `IOCTL_PAR_QUERY_INFORMATION`.
//!
//! Most machines today have none (and a VM rarely does): opening one that
//! is not there is `NotFound` with the reason and what would provide it.
//!
//! ```
//! use switchboard::serial::ParallelPort;
//!
//! match ParallelPort::open("/dev/parport0") {
//!     Ok(port) => println!("{:?}", port.status()?),
//!     Err(e) => println!("{e}"), // no parallel port here: said so
//! }
//! # Ok::<(), switchboard::Error>(())
//! ```

use std::path::{Path, PathBuf};

use switchboard_sys::{parport, Errno, OwnedFd};

use crate::error::{Error, Result};

/// A claimed parallel port.
#[derive(Debug)]
pub struct ParallelPort {
    fd: OwnedFd,
    path: PathBuf,
}

/// The printer's status lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParallelStatus {
    /// The printer cannot take a byte now.
    pub busy: bool,
    /// It acknowledged the last byte.
    pub ack: bool,
    /// Out of paper.
    pub paper_out: bool,
    /// On line (selected).
    pub selected: bool,
    /// It reports an error.
    pub error: bool,
}

impl ParallelPort {
    /// Opens and claims the parallel port at `path` (`/dev/parport0`, …).
    ///
    /// # Errors
    /// `NotFound` when there is no such port (with what would provide
    /// one); `AccessDenied`; `Busy`-as-`AccessDenied` when a driver such as
    /// `lp` holds it.
    pub fn open(path: impl AsRef<Path>) -> Result<ParallelPort> {
        let path = path.as_ref();
        let fd = parport::open(path).map_err(|e| match e {
            Errno::NOENT | Errno::NXIO | Errno::NODEV => Error::NotFound(format!(
                "{}: no parallel port here ({e}; on PC hardware the parport_pc and ppdev modules provide /dev/parportN)",
                path.display()
            )),
            Errno::ACCESS | Errno::PERM | Errno::BUSY => Error::AccessDenied(format!("{}: {e}", path.display())),
            Errno::NOTTY | Errno::INVAL => Error::InvalidParameter("not a parallel port (ppdev) device"),
            other => Error::sys(other),
        })?;
        Ok(ParallelPort { fd, path: path.to_owned() })
    }

    /// The path it was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `buf` to the printer (compatibility mode, as `ppdev`'s
    /// `write`): the bytes it took.
    ///
    /// # Errors
    /// As the system's (`EAGAIN` when the printer stays busy).
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        parport::write(&self.fd, buf).map_err(Error::sys)
    }

    /// The status lines now.
    ///
    /// # Errors
    /// As the system's.
    pub fn status(&self) -> Result<ParallelStatus> {
        let s = parport::status(&self.fd).map_err(Error::sys)?;
        Ok(ParallelStatus {
            // BUSY is inverted on the wire (PARPORT_STATUS_BUSY set = not busy).
            busy: s & 0x80 == 0,
            ack: s & 0x40 != 0,
            paper_out: s & 0x20 != 0,
            selected: s & 0x10 != 0,
            error: s & 0x08 == 0,
        })
    }
}

/// The parallel ports present (`/dev/parport*`), sorted.
pub fn list_parallel_ports() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/dev") else { return Vec::new() };
    let mut ports: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("parport"))
        .map(|e| e.path())
        .collect();
    ports.sort();
    ports
}
