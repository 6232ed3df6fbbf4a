//! Context handles (S09): per-client state a server hands out.
//!
//! Inside a method, [`open`] stores a value and returns its
//! [`ContextHandle`], which the method returns to the client like any
//! other result; later calls pass the handle back as an argument and
//! reach the value with [`with`]; [`close`] drops it. A handle belongs to
//! the connection it was made on: another connection's calls cannot use
//! it (`CONTEXT_MISMATCH`, classic 6).
//!
//! **Rundown.** When the connection ends — the client disconnects, or its
//! process dies (`kill -9` included: the link's peer watch tells the
//! server at once) — every value still open on it is dropped, on the
//! server's connection thread. The value's `Drop` is the rundown routine.
//!
//! ```
//! use switchboard::rpc::{context, context::ContextHandle, interface, Server};
//!
//! #[interface(uuid = "9b1e6f0c-2d3a-4e5b-8c7d-1f2e3a4b5c6d", version = "1.0")]
//! pub trait Totals {
//!     #[opnum(0)]
//!     fn open(&self) -> switchboard::Result<ContextHandle>;
//!     #[opnum(1)]
//!     fn add(&self, total: ContextHandle, v: i64) -> switchboard::Result<i64>;
//! }
//!
//! struct Impl;
//! impl Totals for Impl {
//!     fn open(&self) -> switchboard::Result<ContextHandle> {
//!         context::open(0i64)
//!     }
//!     fn add(&self, total: ContextHandle, v: i64) -> switchboard::Result<i64> {
//!         context::with(total, |t: &mut i64| {
//!             *t += v;
//!             *t
//!         })
//!     }
//! }
//!
//! let name = format!("local:totals-doc-{}", std::process::id());
//! let server = Server::builder().serve(TotalsServer(Impl)).build();
//! server.listen(&name)?;
//! let client = TotalsClient::connect(&name)?;
//! let t = client.open()?;
//! client.add(t, 2)?;
//! assert_eq!(client.add(t, 3)?, 5);
//! # Ok::<(), switchboard::Error>(())
//! ```

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::error::{Code, Error, Result};

/// A handle to per-client state on the server: 16 bytes, written on the
/// wire as a 16-byte bin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContextHandle(#[serde(with = "serde_bytes")] pub [u8; 16]);

type Value = Box<dyn Any + Send>;

/// The values a connection holds open.
#[derive(Default)]
pub(crate) struct Contexts {
    open: Mutex<HashMap<ContextHandle, Option<Value>>>,
    next: std::sync::atomic::AtomicU64,
    salt: u64,
}

impl Contexts {
    pub(crate) fn new() -> Contexts {
        Contexts { salt: RandomState::new().hash_one(std::process::id()), ..Contexts::default() }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<ContextHandle, Option<Value>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops every value (the rundown), outside the lock.
    pub(crate) fn run_down(&self) -> usize {
        let values: Vec<_> = self.table().drain().collect();
        values.len()
    }
}

thread_local! {
    /// The contexts of the connection whose call this thread is serving.
    static CURRENT: RefCell<Option<Arc<Contexts>>> = const { RefCell::new(None) };
}

/// Makes `contexts` the current calls' on this thread, until the guard
/// drops: a connection's thread serves only that connection's calls, so
/// this is done once per connection, not per call.
pub(crate) fn serving(contexts: &Arc<Contexts>) -> Serving {
    CURRENT.with(|c| *c.borrow_mut() = Some(contexts.clone()));
    Serving(())
}

/// See [`serving`].
pub(crate) struct Serving(());

impl Drop for Serving {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
    }
}

fn current() -> Result<Arc<Contexts>> {
    CURRENT.with(|c| c.borrow().clone()).ok_or(Error::InvalidParameter("context handles are used inside an RPC method"))
}

fn mismatch() -> Error {
    Error::Remote {
        code: Code::RpcStatus(super::status::CONTEXT_MISMATCH),
        message: "no such context handle on this connection".into(),
    }
}

/// Stores `state` for the calling client; its handle.
///
/// # Errors
/// `InvalidParameter` outside an RPC method.
pub fn open<T: Any + Send>(state: T) -> Result<ContextHandle> {
    let contexts = current()?;
    let n = contexts.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    id[8..].copy_from_slice(&contexts.salt.to_be_bytes());
    let handle = ContextHandle(id);
    contexts.table().insert(handle, Some(Box::new(state)));
    Ok(handle)
}

/// Runs `f` on the state behind `handle`.
///
/// # Errors
/// `CONTEXT_MISMATCH` (classic 6) for a handle this connection does not
/// hold, or holds with another type, or that is in use by `f` already.
pub fn with<T: Any + Send, R>(handle: ContextHandle, f: impl FnOnce(&mut T) -> R) -> Result<R> {
    let contexts = current()?;
    // Taken out while `f` runs, so `f` may open or close others.
    let mut value = contexts.table().get_mut(&handle).and_then(Option::take).ok_or_else(mismatch)?;
    let out = value.downcast_mut::<T>().map(f);
    if let Some(slot) = contexts.table().get_mut(&handle) {
        *slot = Some(value);
    }
    out.ok_or_else(mismatch)
}

/// Drops the state behind `handle` (its rundown runs now).
///
/// # Errors
/// `CONTEXT_MISMATCH` for a handle this connection does not hold.
pub fn close(handle: ContextHandle) -> Result<()> {
    let contexts = current()?;
    let value = contexts.table().remove(&handle).ok_or_else(mismatch)?;
    drop(value);
    Ok(())
}
