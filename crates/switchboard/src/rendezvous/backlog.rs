//! A service's backlog: admitted connections waiting for the owner's
//! `accept`, for families whose server takes clients one at a time (links,
//! socket hand-off points).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use switchboard_sys::eventfd::EventFd;
use switchboard_sys::socket::{Conn, Cred};
use switchboard_sys::{AsFd, BorrowedFd, OwnedFd};

use super::{wire, Family, Handler, Status};
use crate::error::Result;

/// Most admitted connections waiting for `accept`; more are told busy.
pub(crate) const MAX_PENDING: usize = 128;

/// What the grant carries to a new connection (its descriptors), and what
/// the server keeps with it until `accept` (e.g. the link's bell).
pub(crate) type Grant<T> = Box<dyn Fn() -> Option<(Vec<OwnedFd>, T)> + Send + Sync>;

/// An admitted connection waiting for its server's accept.
pub(crate) struct Waiting<T> {
    pub conn: Conn,
    /// What the grant kept for the server.
    pub kept: T,
    pub admitted: Instant,
    /// Who connected, as the kernel said at admission (the connection
    /// may have hung up since: its credentials are then gone).
    pub peer: Cred,
}

/// Admitted connections of one service, waiting for [`Backlog::next`].
pub(crate) struct Backlog<T> {
    family: Family,
    grant: Grant<T>,
    /// Each with when it was admitted.
    conns: Mutex<VecDeque<Waiting<T>>>,
    arrived: Condvar,
    /// How many connections wait (kept with `conns`, read without the lock).
    waiting: AtomicUsize,
    /// Rung at each admission, for an owner that waits in `poll` (a
    /// message loop) rather than in [`Backlog::next`].
    bell: Option<EventFd>,
}

impl<T> std::fmt::Debug for Backlog<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backlog").field("family", &self.family).finish_non_exhaustive()
    }
}

impl<T> Backlog<T> {
    pub fn new(family: Family, grant: Grant<T>) -> Backlog<T> {
        Backlog {
            family,
            grant,
            conns: Mutex::new(VecDeque::new()),
            arrived: Condvar::new(),
            waiting: AtomicUsize::new(0),
            bell: None,
        }
    }

    /// A backlog that also rings an eventfd ([`Backlog::bell`]) at each admission.
    pub fn with_bell(family: Family, grant: Grant<T>) -> Result<Backlog<T>> {
        Ok(Backlog { bell: Some(EventFd::new()?), ..Backlog::new(family, grant) })
    }

    /// The eventfd rung at each admission (readable while one may wait);
    /// [`Backlog::try_next`] drains it.
    pub fn bell(&self) -> Option<BorrowedFd<'_>> {
        self.bell.as_ref().map(|b| b.as_fd())
    }

    /// Whether connections wait (some may be mid-handshake).
    pub fn is_empty(&self) -> bool {
        self.waiting.load(Ordering::Acquire) == 0
    }

    /// The oldest waiting connection, if one is there now. Costs one load
    /// when none is (a message loop asks at every turn).
    pub fn try_next(&self) -> Option<Waiting<T>> {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut conns = self.lock();
        if let Some(bell) = &self.bell {
            bell.drain();
        }
        let next = conns.pop_front();
        self.waiting.store(conns.len(), Ordering::Release);
        next
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Waiting<T>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The oldest waiting connection, waiting
    /// until `deadline` for one.
    ///
    /// # Errors
    /// `Timeout`.
    pub fn next(&self, deadline: Option<Instant>) -> Result<Waiting<T>> {
        let mut conns = self.lock();
        loop {
            if let Some(c) = conns.pop_front() {
                self.waiting.store(conns.len(), Ordering::Release);
                return Ok(c);
            }
            conns = crate::time::wait_until(&self.arrived, conns, deadline)?;
        }
    }

    /// Puts a connection [`Backlog::next`] gave back at the front, for the
    /// next `next` (its accept ran out of time before it was done with it).
    pub fn put_back(&self, conn: Waiting<T>) {
        // The bell is not rung: an owner polling it would wake at once,
        // again and again, for a connector that is slow with its hello.
        let mut conns = self.lock();
        conns.push_front(conn);
        self.waiting.store(conns.len(), Ordering::Release);
        self.arrived.notify_one();
    }
}

impl<T: Send> Handler for Backlog<T> {
    fn admit(&self, conn: Conn, peer: Cred) {
        let mut conns = self.lock();
        // A connector that hung up with its hello still queued stays: it
        // may have sent messages and left, and they are to be delivered.
        conns.retain(|w| !w.conn.hung_up_and_drained());
        self.waiting.store(conns.len(), Ordering::Release);
        if conns.len() >= MAX_PENDING {
            let _ = wire::send(&conn, self.family, Status::Busy, &[], &[]);
            return;
        }
        let Some((fds, kept)) = (self.grant)() else { return };
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        if wire::send(&conn, self.family, Status::Granted, &[], &borrowed).is_ok() {
            conns.push_back(Waiting { conn, kept, admitted: Instant::now(), peer });
            self.waiting.store(conns.len(), Ordering::Release);
            self.arrived.notify_one();
            if let Some(bell) = &self.bell {
                bell.notify();
            }
        }
    }
}
