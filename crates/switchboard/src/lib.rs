//! switchboard — classic inter-process communication mechanisms, re-created
//! natively on Linux.
//!
//! Every named object lives in the [`namespace`]: a name is a rendezvous
//! point in the kernel's abstract socket namespace, shared memory is a memfd
//! passed between processes, and the kernel counts who holds what — so no
//! daemon runs and nothing is left behind when a process dies, even by
//! `kill -9`.
//!
//! | mechanism | types | Linux backing |
//! |---|---|---|
//! | File mapping | [`mapping::Mapping`], [`mapping::View`] | sealed memfd or file fd, `mmap(MAP_SHARED)` |
//! | Named mutex | [`sync::Mutex`] | futex word holding the owner tid; death by `kill(tid, 0)` |
//! | Named semaphore | [`sync::Semaphore`] | futex word holding the count |
//! | Named event | [`sync::Event`] | futex word: signalled bit + pulse generation |
//! | Waitable timer | [`sync::Timer`] | due time on `CLOCK_MONOTONIC` in shared memory; waiters sleep until it |
//! | Wait on several, signal and wait | [`sync::wait_any`], [`sync::wait_all`], [`sync::signal_and_wait`] | `futex_waitv` |
//! | Shared-memory and stream links | [`link::ShmLink`], [`link::StreamLink`] | byte rings in a memfd, futex wake-ups; framed Unix/TCP streams |
//! | Completion ports | [`port::Port`] | packet queue in shared memory, LIFO consumer release |
//! | Overlapped I/O on a port | [`port::Port::associate`], [`overlapped::Association`] | an I/O thread per association posts each completion |
//! | Anonymous pipes | [`pipe::anon`] | kernel pipes, close-on-exec, child stdio |
//! | Named pipes | [`pipe::named`] | abstract-socket rendezvous, data in a shared-memory link |
//! | Mailslots | [`mailslot`] | multi-writer queue in shared memory, robust-futex life token; UDP broadcast |
//! | Sockets | [`socket`] | std sockets made close-on-exec, exclusive, with timeouts; shared by fd passing or pid + handle |
//! | Names, ACLs, listing | [`name`], [`namespace`] | abstract `SOCK_SEQPACKET`, `SO_PEERCRED`, `/proc/net/unix` |
//! | Calls (request/response, post, re-entrant dispatch) | [`call::Calls`] | any [`link::Link`] |
//! | Doorbells: one loop waits on links, pipes, mailslots, ports and sockets | [`link::ShmLink::doorbell`], [`pipe::named::PipeClient::doorbell`], [`mailslot::Mailslot::doorbell`], [`port::Port::doorbell`] | an eventfd rung only while its reader armed it; tokio adapters await it (feature `tokio`) |
//!
//! Underneath every named object is one rendezvous: a process's responder
//! thread admits clients by their kernel-reported credentials and the
//! object's ACL, clients connect within a deadline and believe only holders
//! of their own user or root (or an owner they name), and a peer's death —
//! `kill -9` included — ends a blocked wait at once (its robust-futex life
//! token or its session socket's hang-up wakes the waiter).
//!
//! Errors are one type, [`Error`], whose [`Error::win32`] is the classic
//! error number and [`Error::code`] the code in its own space ([`Code`]);
//! every blocking call takes a [`Deadline`] (a `Duration`, an `Instant`, or
//! `None` for no timeout).
//!
//! ```
//! use switchboard::mapping::{Access, Mapping};
//! use switchboard::sync::{Event, Waitable, WaitStatus};
//!
//! // Every process calls create; the first one initialises.
//! let name = format!("doc-example-{}", std::process::id());
//! let m = Mapping::create(name.as_str(), 4096)?;
//! if !m.already_existed() {
//!     m.map_view(Access::Write, 0, 0)?.write(0, b"ready")?;
//! }
//! let ready = Event::create(None, true, false)?;
//! ready.set();
//! assert_eq!(ready.wait(), WaitStatus::Acquired);
//! # Ok::<(), switchboard::Error>(())
//! ```

#![forbid(unsafe_code)]

// The code `#[interface]` generates names `::switchboard`; this lets the
// crate's own interfaces (`rpc::mgmt`, `rpc::calc`) use it too.
extern crate self as switchboard;

#[cfg(feature = "tokio")]
mod bell;
pub mod call;
pub mod clipboard;
pub mod dde;
pub mod error;
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod fuzz;
#[cfg(feature = "inet")]
pub mod inet;
pub mod link;
pub mod mailslot;
pub mod mapping;
pub mod message;
pub mod name;
pub mod namespace;
pub mod overlapped;
pub mod pipe;
pub mod port;
pub mod process;
pub mod raw;
pub mod remote;
mod rendezvous;
pub mod rpc;
pub mod serial;
pub mod socket;
pub mod sync;
pub mod time;

pub use error::{Code, Error, Result};
pub use switchboard_sys::process::HandleValue;
pub use switchboard_sys::socket::Conn as Connection;
pub use switchboard_sys::socket::Listener as ConnectionListener;
pub use time::Deadline;
