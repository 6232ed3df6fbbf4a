//! Kernel pipes: close-on-exec creation, size, bytes available, peeking
//! without consuming (`tee` into a scratch pipe), and writes that never
//! kill the process with `SIGPIPE`.
//!
//! # Safety
//! The unsafe blocks query the `SIGPIPE` disposition and block/consume the
//! signal for the calling thread only, restoring its previous mask.
#![allow(unsafe_code)]

use std::sync::OnceLock;

use rustix::io::Errno;
use rustix::pipe::{fcntl_getpipe_size, fcntl_setpipe_size, pipe_with, tee, PipeFlags, SpliceFlags};

use crate::{AsFd, OwnedFd};

use crate::Result;

/// A new pipe `(read end, write end)`, both close-on-exec.
///
/// # Errors
/// `EMFILE`/`ENFILE` when out of descriptors.
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    pipe_with(PipeFlags::CLOEXEC)
}

/// The pipe's buffer size in bytes.
///
/// # Errors
/// `EBADF` when `fd` is not a pipe.
pub fn size<Fd: AsFd>(fd: Fd) -> Result<usize> {
    fcntl_getpipe_size(fd)
}

/// Asks for a buffer of at least `bytes`; returns the size the kernel chose
/// (rounded up to a power-of-two number of pages; unprivileged callers are
/// capped by `/proc/sys/fs/pipe-max-size`).
///
/// # Errors
/// `EPERM` above the cap, `EBUSY` below the bytes currently buffered.
pub fn set_size<Fd: AsFd>(fd: Fd, bytes: usize) -> Result<usize> {
    fcntl_setpipe_size(fd, bytes)
}

/// Bytes buffered in the pipe now.
///
/// # Errors
/// `EBADF`.
pub fn available<Fd: AsFd>(fd: Fd) -> Result<usize> {
    rustix::io::ioctl_fionread(fd).map(|n| n as usize)
}

/// Copies up to `buf.len()` of the buffered bytes into `buf` without
/// consuming them; never blocks.
///
/// # Errors
/// `EBADF`; `ENOMEM`/`EMFILE` for the scratch pipe.
pub fn peek<Fd: AsFd>(fd: Fd, buf: &mut [u8]) -> Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let (scratch_r, scratch_w) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    // A scratch pipe holds at least one page; ask for room for `buf`.
    let _ = set_size(&scratch_w, buf.len());
    let copied = match tee(fd, &scratch_w, buf.len(), SpliceFlags::NONBLOCK) {
        Err(Errno::AGAIN) => return Ok(0),
        other => other?,
    };
    let mut got = 0;
    while got < copied {
        match rustix::io::read(&scratch_r, &mut buf[got..copied]) {
            Ok(0) | Err(Errno::AGAIN) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads what is there into `buf`, waiting for at least one byte; `Ok(0)`
/// means every writer is closed and the pipe is empty. Retries on `EINTR`.
///
/// # Errors
/// `EBADF`; `EAGAIN` on a non-blocking fd.
pub fn read<Fd: AsFd>(fd: Fd, buf: &mut [u8]) -> Result<usize> {
    loop {
        match rustix::io::read(&fd, &mut *buf) {
            Err(Errno::INTR) => {}
            other => return other,
        }
    }
}

fn sigpipe_ignored() -> bool {
    static IGNORED: OnceLock<bool> = OnceLock::new();
    *IGNORED.get_or_init(|| {
        // SAFETY: a query only (null new action); `old` is a valid out-pointer.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
        }
    })
}

/// Restores the default `SIGPIPE` disposition (death on a write to a
/// closed pipe), as a C program has it. For programs that want that
/// behaviour for their own writes; switchboard's pipe writes still return
/// `EPIPE`. Call it before the first pipe write: the disposition is read once.
///
/// # Errors
/// The `sigaction` error.
pub fn restore_default_sigpipe() -> Result<()> {
    // SAFETY: installs SIG_DFL, which runs no code of ours; `act` is fully
    // initialised (zeroed, empty mask).
    let rc = unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGPIPE, &act, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::INVAL)
    }
}

/// Writes some of `data`, returning how much; a closed reading end is
/// `EPIPE`, never a `SIGPIPE` death. Where `SIGPIPE` is ignored already
/// (every Rust program's default) this is one `write`; otherwise the signal
/// is blocked for this thread around the write and a pending one consumed.
///
/// # Errors
/// `EPIPE` when no reader is left; `EAGAIN` on a non-blocking fd; `EINTR`.
pub fn write<Fd: AsFd>(fd: Fd, data: &[u8]) -> Result<usize> {
    if sigpipe_ignored() {
        return rustix::io::write(fd, data);
    }
    // SAFETY: plain libc signal-mask calls on valid, initialised sigsets;
    // the old mask is restored before returning.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
        let result = rustix::io::write(fd, data);
        if result == Err(Errno::PIPE) && libc::sigismember(&old, libc::SIGPIPE) == 0 {
            // Consume the SIGPIPE our write raised (pending for this thread).
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            libc::sigtimedwait(&block, std::ptr::null_mut(), &zero);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_leaves_the_bytes_in_the_pipe() {
        let (r, w) = pipe().unwrap();
        assert_eq!(write(&w, b"hello").unwrap(), 5);
        let mut buf = [0u8; 3];
        assert_eq!(peek(&r, &mut buf).unwrap(), 3);
        assert_eq!(&buf, b"hel");
        assert_eq!(available(&r).unwrap(), 5);
        let mut all = [0u8; 8];
        assert_eq!(rustix::io::read(&r, &mut all).unwrap(), 5);
        assert_eq!(peek(&r, &mut buf).unwrap(), 0, "empty pipe: nothing, at once");
    }

    #[test]
    fn writing_without_a_reader_is_epipe_not_death() {
        let (r, w) = pipe().unwrap();
        drop(r);
        assert_eq!(write(&w, b"x"), Err(Errno::PIPE));
    }
}
