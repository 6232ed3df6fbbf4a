//! switchboard-shm — data structures that live in shared memory (L1).
//!
//! A [`segment::Segment`] is a mapped memfd that starts with a checked
//! [`segment::Header`] (magic, layout version, kind, size). Objects placed in
//! a segment implement the `unsafe trait` [`segment::Shared`]: `#[repr(C)]`,
//! made only of integers and atomics, valid for every bit pattern, with no
//! pointers or descriptors — so a segment written by a hostile or crashed
//! peer can make an operation fail, never make it undefined.
//!
//! The synchronization objects are futex words in such segments:
//!
//! | type | classic object | futex word |
//! |---|---|---|
//! | [`mutex::MutexState`] | named mutex (recursive, abandonable) | owner thread id |
//! | [`semaphore::SemaphoreState`] | named semaphore | count |
//! | [`event::EventState`] | named event (manual / auto reset, pulse) | signalled bit + pulse generation |
//!
//! [`wait::wait_any`] and [`wait::wait_all`] wait on several of them at once
//! with `futex_waitv`.
//!
//! All atomics come from [`sync`], which becomes loom under `cfg(loom)`.
//!
//! ```
//! use switchboard_shm::segment::{Kind, Segment};
//! use switchboard_shm::semaphore::SemaphoreState;
//! use switchboard_shm::wait::{wait_one, Outcome};
//!
//! let (_fd, seg) = Segment::create(Kind::Semaphore, "demo").unwrap();
//! let sem: &SemaphoreState = seg.object().unwrap();
//! sem.init(1, 2);
//! assert_eq!(wait_one(sem, None), Outcome::Acquired);
//! assert_eq!(sem.release(2), Ok(0));
//! ```

#![deny(unsafe_code)]

#[cfg(not(loom))]
pub mod duplex;
pub mod event;
#[cfg(not(loom))]
pub mod mailslot;
pub mod mutex;
pub mod peer;
#[cfg(not(loom))]
pub mod pipe;
pub mod port;
#[cfg(not(loom))]
pub mod receiver;
pub mod ring;
#[cfg(not(loom))]
pub mod segment;
pub mod semaphore;
pub mod sync;
#[cfg(not(loom))]
pub mod timer;
pub mod wait;
