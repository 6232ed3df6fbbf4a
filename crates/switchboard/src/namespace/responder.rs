//! The per-process responder: answers openers on behalf of every object this
//! process holds.
//!
//! Every holder of a named object has a duplicate of the same listening
//! socket. One background thread per process (started on first use) polls
//! all listening sockets it holds plus an eventfd; whichever holder's thread
//! wakes first accepts a connection, checks the peer's credentials against
//! the object's ACL (`SO_PEERCRED`) and sends the [`Reply`] with the object's
//! descriptors — without ever reading from the peer, so a hostile opener
//! cannot stall it. The listening sockets are non-blocking, so losing the
//! accept race to another holder costs nothing.
//!
//! Unregistering is synchronous: [`Registration`]'s drop waits until the
//! thread has let go of the object, so a dropped object stops answering at
//! once and its name disappears when the last holder lets go.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use switchboard_sys::eventfd::EventFd;
use switchboard_sys::socket::{poll_readable, Conn, Listener};
use switchboard_sys::{AsFd, BorrowedFd, OwnedFd};

use super::wire::{encode, ObjectInfo, Reply};

/// One process's hold on an object: the shared listener and the object's fds.
#[derive(Debug)]
pub(crate) struct Published {
    pub listener: Listener,
    pub fds: Vec<OwnedFd>,
    pub info: ObjectInfo,
}

impl Published {
    /// Sends this object (reply + descriptors) over `conn`.
    pub fn send(&self, conn: &Conn) -> switchboard_sys::Result<()> {
        let reply = encode(&Reply::Granted { info: self.info.clone(), served_by: switchboard_sys::process::pid() });
        let mut fds: Vec<BorrowedFd<'_>> = vec![self.listener.as_fd()];
        fds.extend(self.fds.iter().map(|f| f.as_fd()));
        conn.send(&reply, &fds)
    }

    fn serve(&self, conn: &Conn) {
        let admitted = conn.peer_cred().is_ok_and(|c| self.info.acl.admits(&c));
        let _ = if admitted { self.send(conn) } else { conn.send(&encode(&Reply::Denied), &[]) };
    }
}

struct Registry {
    objects: Mutex<Vec<(u64, Arc<Published>)>>,
    wake: EventFd,
    epoch: Mutex<u64>,
    turned: Condvar,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn registry() -> &'static Registry {
    REGISTRY.get_or_init(|| {
        let wake = EventFd::new().expect("eventfd for the switchboard responder");
        std::thread::Builder::new()
            .name("switchboard-responder".into())
            .spawn(run)
            .expect("spawn the switchboard responder thread");
        Registry { objects: Mutex::new(Vec::new()), wake, epoch: Mutex::new(0), turned: Condvar::new() }
    })
}

/// Keeps an object answering openers while alive.
#[derive(Debug)]
pub(crate) struct Registration {
    id: u64,
    published: Arc<Published>,
}

impl Registration {
    pub fn published(&self) -> &Published {
        &self.published
    }
}

/// Starts answering openers for `published`.
pub(crate) fn register(published: Published) -> Registration {
    let published = Arc::new(published);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let reg = registry();
    reg.objects.lock().unwrap_or_else(|p| p.into_inner()).push((id, published.clone()));
    reg.wake.notify();
    Registration { id, published }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let reg = registry();
        reg.objects.lock().unwrap_or_else(|p| p.into_inner()).retain(|(id, _)| *id != self.id);
        let epoch = reg.epoch.lock().unwrap_or_else(|p| p.into_inner());
        let seen = *epoch;
        reg.wake.notify();
        // Wait for one full turn of the loop, after which it holds no clone.
        let _ = reg.turned.wait_timeout_while(epoch, Duration::from_secs(5), |e| *e < seen + 1);
    }
}

fn run() {
    // The registry is being initialised by the thread that spawned us.
    let reg = loop {
        if let Some(r) = REGISTRY.get() {
            break r;
        }
        std::thread::yield_now();
    };
    loop {
        let snapshot: Vec<Arc<Published>> =
            reg.objects.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(_, p)| p.clone()).collect();
        let mut fds = vec![reg.wake.as_fd()];
        fds.extend(snapshot.iter().map(|p| p.listener.as_fd()));
        let ready = poll_readable(&fds, None).unwrap_or_default();
        reg.wake.drain();
        for (p, _) in snapshot.iter().zip(ready.iter().skip(1)).filter(|(_, r)| **r) {
            while let Ok(Some(conn)) = p.listener.accept() {
                p.serve(&conn);
            }
        }
        drop(fds);
        drop(snapshot);
        *reg.epoch.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        reg.turned.notify_all();
    }
}
