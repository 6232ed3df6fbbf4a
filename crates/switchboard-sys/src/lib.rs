//! switchboard-sys — the system-call layer of switchboard (L0).
//!
//! This is the only crate in the workspace that talks to the kernel. Every
//! primitive a mechanism needs is wrapped here with a safe, typed API; the
//! layers above (`switchboard-shm`, `switchboard`) never call the OS directly.
//!
//! | module | primitive | Linux backing |
//! |---|---|---|
//! | [`memfd`] | anonymous, sealable shared memory | `memfd_create`, `ftruncate`, `F_ADD_SEALS` |
//! | [`mmap`] | a mapped region of an fd | `mmap(MAP_SHARED)`, `munmap`, `msync` |
//! | [`futex`] | sleep/wake on a 32-bit word in shared memory | `futex(2)` (shared, not private), `futex_waitv(2)` |
//! | [`process`] | pids, tids, liveness, handle taking | `getpid`, `gettid`, `kill(0)`, `pidfd_open`, `pidfd_getfd` |
//! | [`socket`] | rendezvous sockets | abstract `AF_UNIX` `SOCK_SEQPACKET`, `SCM_RIGHTS`, `SO_PEERCRED` |
//! | [`epoll`] | one wait over many descriptors | `epoll_create1`, `epoll_ctl`, `epoll_wait` |
//! | [`eventfd`] | a counter fd for waking a poll loop | `eventfd(2)` |
//! | [`net`] | shared UDP ports, broadcast addresses | `SO_REUSEADDR`, `SO_BROADCAST`, `getifaddrs` |
//! | `reactor` (feature `tokio`) | a descriptor in tokio's reactor | `AsyncFd` registration |
//! | [`ready`] | a descriptor's readiness as a futex word (sync objects and descriptors in one wait) | one `epoll` thread per process, `EPOLLONESHOT` |
//! | [`life`] | "is the owner still there?" without a system call | robust process-shared `pthread_mutex_t` in a sealed memfd |
//! | [`tty`] | serial lines and pseudo-terminals | termios (`termios2` for any baud rate), `TIOCM*`, `tcsendbreak`, `tcflush`, `posix_openpt` |
//!
//! A port to another OS provides the same modules with the same signatures
//! in a sibling folder; nothing above this crate changes.
//!
//! Every file descriptor this crate creates is close-on-exec. Raw fd numbers
//! never leave this crate except as the opaque [`process::HandleValue`].
//!
//! # Safety
//!
//! The crate denies `unsafe_code` except in the modules that must map memory
//! ([`mmap`]) or call a system call rustix does not wrap; each such module
//! states its invariants in a `# Safety` section and every block carries a
//! `// SAFETY:` comment.

#![deny(unsafe_code)]

pub mod epoll;
pub mod eventfd;
pub mod file;
mod fork;
pub mod futex;
pub mod life;
pub mod memfd;
pub mod mmap;
pub mod net;
pub mod parport;
pub mod pipe;
pub mod process;
#[cfg(feature = "tokio")]
pub mod reactor;
pub mod ready;
pub mod sealed;
pub mod signal;
pub mod socket;
pub mod tty;

pub use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
pub use rustix::io::Errno;

/// Result of a system call: the value, or the kernel's `errno`.
pub type Result<T> = std::result::Result<T, Errno>;
