//! Anonymous shared memory that is reachable only through its descriptor.
//!
//! A memfd has no path: it cannot be opened by name, only received over a
//! socket (`SCM_RIGHTS`) or taken with `pidfd_getfd`. When the last
//! descriptor and the last mapping are gone, the kernel frees it — this is how
//! switchboard leaves nothing in `/dev/shm` when a process is killed.

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{fcntl_add_seals, fstat, ftruncate, memfd_create, MemfdFlags, SealFlags};

use crate::Result;

/// Creates a zero-filled memfd of `size` bytes whose size can never change
/// afterwards (`F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL`).
///
/// Sealing the size means a peer holding the same memfd cannot shrink it under
/// our mappings, so an access inside the mapped length never raises `SIGBUS`.
///
/// # Errors
/// `EINVAL` for a size the kernel refuses, `ENOMEM`/`ENOSPC`, `EMFILE`.
pub fn create_sealed(debug_name: &str, size: u64) -> Result<OwnedFd> {
    let fd = memfd_create(debug_name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    ftruncate(&fd, size)?;
    fcntl_add_seals(&fd, SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL)?;
    Ok(fd)
}

/// The current size in bytes of any file (memfd or regular file).
///
/// # Errors
/// The kernel's `fstat` error.
pub fn size<Fd: AsFd>(fd: Fd) -> Result<u64> {
    Ok(fstat(fd)?.st_size as u64)
}

/// Grows (or shrinks) a regular file to `size` bytes.
///
/// # Errors
/// The kernel's `ftruncate` error (`EBADF` when the file is read-only).
pub fn set_size<Fd: AsFd>(fd: Fd, size: u64) -> Result<()> {
    ftruncate(fd, size)
}

/// Reads the seals of a memfd (empty for files that cannot be sealed).
pub fn is_size_sealed<Fd: AsFd>(fd: Fd) -> bool {
    rustix::fs::fcntl_get_seals(fd).map(|s| s.contains(SealFlags::SHRINK)).unwrap_or(false)
}

/// Whether the descriptor was opened for writing (`O_RDWR` or `O_WRONLY`).
pub fn is_writable<Fd: AsFd>(fd: Fd) -> bool {
    rustix::fs::fcntl_getfl(fd).is_ok_and(|f| {
        let mode = f & rustix::fs::OFlags::RWMODE;
        mode == rustix::fs::OFlags::RDWR || mode == rustix::fs::OFlags::WRONLY
    })
}

/// Duplicates a descriptor (close-on-exec).
///
/// # Errors
/// `EMFILE`.
pub fn duplicate<Fd: AsFd>(fd: Fd) -> Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0)
}
