//! Anonymous pipes (spec 02, S01–S08): a one-way byte stream between a
//! parent and the children it starts, over a kernel pipe.
//!
//! Both ends are close-on-exec: a child inherits only the ends it is given
//! as stdio ([`spawn`]), and [`spawn`] closes the parent's copies of those
//! ends so the parent sees end-of-file when the child exits. A write never
//! kills the process with `SIGPIPE`: a pipe with no reader left is
//! [`Error::NoData`] (classic 232). Reading a pipe whose every writer is
//! closed drains what remains and then fails with [`Error::BrokenPipe`]
//! (classic 109) — through [`std::io::Read`] that end is the usual `Ok(0)`.
//!
//! ```
//! use std::io::Read;
//! use std::process::Command;
//! use switchboard::pipe::anon;
//!
//! let (mut from_child, to_parent) = anon::pipe()?;
//! let mut cmd = Command::new("echo");
//! cmd.arg("hello");
//! let mut child = anon::spawn(cmd, anon::Stdio { stdout: Some(to_parent), ..Default::default() })?;
//! let mut text = String::new();
//! from_child.read_to_string(&mut text)?;
//! assert_eq!(text, "hello\n");
//! child.wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Child, Command};

use switchboard_sys::{pipe as sys, Errno};

use crate::error::{Error, Result};

/// The reading end of an anonymous pipe.
#[derive(Debug)]
pub struct PipeReader(OwnedFd);

/// The writing end of an anonymous pipe.
#[derive(Debug)]
pub struct PipeWriter(OwnedFd);

/// What [`PipeReader::peek`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peek {
    /// Bytes copied into the buffer.
    pub copied: usize,
    /// Bytes buffered in the pipe in total.
    pub available: usize,
}

/// A new pipe with the system's default buffer (S01).
///
/// # Errors
/// The system error when out of descriptors.
pub fn pipe() -> Result<(PipeReader, PipeWriter)> {
    let (r, w) = sys::pipe()?;
    Ok((PipeReader(r), PipeWriter(w)))
}

/// A new pipe whose buffer holds at least `hint` bytes where the system
/// allows; 0 is the system default (S08). The size chosen is reported by
/// [`PipeWriter::buffer_size`].
///
/// # Errors
/// The system error when out of descriptors.
pub fn pipe_with_size(hint: usize) -> Result<(PipeReader, PipeWriter)> {
    let (r, w) = pipe()?;
    if hint > 0 {
        // A hint: above the unprivileged cap the kernel says EPERM and the
        // default stays, as a classic size hint would be rounded.
        let cap = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
        let _ = sys::set_size(&w.0, hint.min(cap));
    }
    Ok((r, w))
}

impl PipeReader {
    /// Reads what is there (at least one byte, waiting for it).
    ///
    /// # Errors
    /// [`Error::BrokenPipe`] once every writer is closed and the pipe is drained.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match sys::read(&self.0, buf)? {
            0 => Err(Error::BrokenPipe),
            n => Ok(n),
        }
    }

    /// Copies buffered bytes into `buf` without consuming them, and says how
    /// many are buffered in total; never waits (S07).
    ///
    /// # Errors
    /// System errors.
    pub fn peek(&self, buf: &mut [u8]) -> Result<Peek> {
        let copied = sys::peek(&self.0, buf)?;
        Ok(Peek { copied, available: sys::available(&self.0)?.max(copied) })
    }

    /// The pipe's buffer size in bytes.
    ///
    /// # Errors
    /// System errors.
    pub fn buffer_size(&self) -> Result<usize> {
        Ok(sys::size(&self.0)?)
    }
}

impl PipeWriter {
    /// Writes every byte of `data`, waiting while the pipe is full (S03).
    ///
    /// # Errors
    /// [`Error::NoData`] when every reader is closed (S05).
    pub fn write(&self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            match sys::write(&self.0, data) {
                Ok(n) => data = &data[n..],
                Err(Errno::INTR) => {}
                Err(Errno::PIPE) => return Err(Error::NoData),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The pipe's buffer size in bytes (S08).
    ///
    /// # Errors
    /// System errors.
    pub fn buffer_size(&self) -> Result<usize> {
        Ok(sys::size(&self.0)?)
    }
}

impl io::Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match PipeReader::read(self, buf) {
            Err(Error::BrokenPipe) => Ok(0),
            other => other.map_err(Into::into),
        }
    }
}

impl io::Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        PipeWriter::write(self, buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

macro_rules! fd_conversions {
    ($t:ident) => {
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.as_fd()
            }
        }
        impl From<$t> for OwnedFd {
            fn from(end: $t) -> OwnedFd {
                end.0
            }
        }
        impl From<OwnedFd> for $t {
            /// Adopts a descriptor (e.g. one received from another process).
            fn from(fd: OwnedFd) -> $t {
                $t(fd)
            }
        }
        impl From<$t> for std::process::Stdio {
            fn from(end: $t) -> std::process::Stdio {
                std::process::Stdio::from(end.0)
            }
        }
    };
}
fd_conversions!(PipeReader);
fd_conversions!(PipeWriter);

/// The pipe ends a child gets as its standard streams; `None` keeps the
/// parent's stream.
#[derive(Debug, Default)]
pub struct Stdio {
    /// The child reads its standard input from here.
    pub stdin: Option<PipeReader>,
    /// The child's standard output goes here.
    pub stdout: Option<PipeWriter>,
    /// The child's standard error goes here.
    pub stderr: Option<PipeWriter>,
}

/// Starts `cmd` with the chosen pipe ends as its stdio (S06). Only those
/// ends are inherited (every switchboard descriptor is close-on-exec), and
/// the parent's copies are closed once the child runs — `cmd` is consumed
/// for that reason — so the parent sees end-of-file when the child is done.
///
/// # Errors
/// The error from starting the program.
pub fn spawn(mut cmd: Command, stdio: Stdio) -> io::Result<Child> {
    if let Some(r) = stdio.stdin {
        cmd.stdin(r);
    }
    if let Some(w) = stdio.stdout {
        cmd.stdout(w);
    }
    if let Some(w) = stdio.stderr {
        cmd.stderr(w);
    }
    let child = cmd.spawn();
    // `cmd` drops here, closing the parent's copies of the child's ends.
    drop(cmd);
    child
}
