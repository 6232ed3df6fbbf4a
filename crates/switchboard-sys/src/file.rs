//! Files as shared state with no daemon: whole-file locks the kernel
//! drops with their holder, and a watch on a directory's changes.

use std::path::Path;

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{flock, inotify, FlockOperation};
use rustix::io::Errno;

use crate::Result;

/// `O_NOFOLLOW`, for `OpenOptionsExt::custom_flags`: an open that will
/// not follow a symlink in the last component.
pub const NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;

/// Takes `fd`'s file's exclusive lock (`flock`) without waiting: `true`
/// when taken (or already held through this open file), `false` when
/// another open of the file holds it. The lock belongs to the open file
/// description: closing every copy of it — a process dying included —
/// drops it.
///
/// # Errors
/// The kernel's error other than `EWOULDBLOCK`.
pub fn try_lock(fd: BorrowedFd<'_>) -> Result<bool> {
    match flock(fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Drops the lock [`try_lock`] took.
///
/// # Errors
/// The kernel's error.
pub fn unlock(fd: BorrowedFd<'_>) -> Result<()> {
    flock(fd, FlockOperation::Unlock)
}

/// A watch on the files a directory gains by rename or by being written
/// and closed (`inotify`): its descriptor turns readable at each.
#[derive(Debug)]
pub struct DirWatch(OwnedFd);

impl DirWatch {
    /// Watches `dir`.
    ///
    /// # Errors
    /// `ENOENT`, `ENOSPC` (the user's watch limit), `EMFILE`.
    pub fn new(dir: &Path) -> Result<DirWatch> {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        inotify::add_watch(&fd, dir, inotify::WatchFlags::MOVED_TO | inotify::WatchFlags::CLOSE_WRITE)?;
        Ok(DirWatch(fd))
    }

    /// Forgets the changes seen so far (the descriptor is no longer readable).
    pub fn drain(&self) {
        let mut buf = [0u8; 4096];
        while matches!(rustix::io::read(&self.0, &mut buf), Ok(n) if n > 0) {}
    }
}

impl AsFd for DirWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_exclusive_between_opens_and_dropped_with_its_file() {
        let dir = std::env::temp_dir().join(format!("lockunit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lock");
        let a = std::fs::File::create(&path).unwrap();
        let b = std::fs::File::open(&path).unwrap();
        assert!(try_lock(a.as_fd()).unwrap());
        assert!(try_lock(a.as_fd()).unwrap(), "again through the same open");
        assert!(!try_lock(b.as_fd()).unwrap(), "another open waits");
        drop(a);
        assert!(try_lock(b.as_fd()).unwrap(), "closing the holder dropped it");
        let watch = DirWatch::new(&dir).unwrap();
        assert!(!crate::socket::poll_readable(&[watch.as_fd()], Some(std::time::Duration::ZERO)).unwrap()[0]);
        std::fs::write(dir.join("x.tmp"), b"1").unwrap();
        std::fs::rename(dir.join("x.tmp"), dir.join("x")).unwrap();
        assert!(crate::socket::poll_readable(&[watch.as_fd()], Some(std::time::Duration::from_secs(10))).unwrap()[0]);
        watch.drain();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
