//! The per-process responder: one thread on epoll that admits clients for
//! every [`Service`](super::Service) this process runs.
//!
//! A wake is an accept on a ready listener: the responder accepts (at most
//! [`BATCH`] per listener and wake, so one busy name cannot starve the
//! others), reads the client's kernel-reported credentials, refuses with
//! the wire's `Denied` unless the service's ACL admits them, and otherwise
//! hands the connection to the service's handler. It never reads from a
//! client, so a client that sends nothing stalls nobody.
//!
//! An accept that fails (out of descriptors: `EMFILE`) backs off — 1 ms,
//! doubling up to 100 ms, reset by the next success — because the
//! listener stays readable and an immediate retry would spin.
//!
//! The responder thread also holds the process's *life token*
//! (`switchboard_sys::life`): it lives exactly as long as the process, so
//! the token reads as died — and wakes whoever sleeps on it — when the
//! process dies, even by `kill -9`. Sessions hand it to their peers.
//!
//! It also watches sessions: [`Responder::watch`] registers a connection
//! for its peer's hang-up (`EPOLLRDHUP`: the peer closed its last copy, or
//! died), and the responder calls the session's `on_gone` once, at once.
//!
//! Removing a service is synchronous: after [`Responder::remove`] returns,
//! the responder holds nothing of it (unless the removal runs on the
//! responder thread itself, from a handler, which cannot wait for itself).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use switchboard_sys::epoll::Epoll;
use switchboard_sys::eventfd::EventFd;
use switchboard_sys::life::LifeToken;
use switchboard_sys::AsFd;

use switchboard_sys::socket::Conn;

use super::{Entry, Status};
use crate::error::{Error, Result};

/// Most connections accepted from one listener per wake.
const BATCH: usize = 64;
const WAKE: u64 = 0;
const MAX_BACKOFF: Duration = Duration::from_millis(100);

thread_local! {
    static ON_RESPONDER: Cell<bool> = const { Cell::new(false) };
}

pub(super) struct Responder {
    epoll: Epoll,
    /// The process's life token, held by the responder thread.
    pub(super) life: Arc<LifeToken>,
    wake: EventFd,
    services: Mutex<HashMap<u64, Watched>>,
    next: Mutex<u64>,
    turns: Mutex<u64>,
    turned: Condvar,
}

/// What a token stands for.
#[derive(Clone)]
enum Watched {
    /// A listener: admit its clients.
    Service(Arc<Entry>),
    /// A session: tell `on_gone` when the peer hangs up.
    Session(Arc<Session>),
}

/// A watched session: our own copy of the connection (so the watch never
/// outlives the descriptor it watches) and what to do when the peer goes.
pub(super) struct Session {
    pub(super) conn: Conn,
    pub(super) on_gone: Box<dyn Fn() + Send + Sync>,
}

impl Watched {
    fn fd(&self) -> switchboard_sys::BorrowedFd<'_> {
        match self {
            Watched::Service(e) => e.listener.as_fd(),
            Watched::Session(s) => s.conn.as_fd(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The process's responder, started on first use. A failure to start it
/// (no descriptors or threads left) is an error for this call only: the
/// next call tries again.
pub(super) fn get() -> Result<&'static Responder> {
    static STARTED: Mutex<Option<&'static Responder>> = Mutex::new(None);
    let mut started = lock(&STARTED);
    if let Some(r) = *started {
        return Ok(r);
    }
    let r: &'static Responder = Box::leak(Box::new(Responder {
        epoll: Epoll::new()?,
        life: Arc::new(LifeToken::create()?),
        wake: EventFd::new()?,
        services: Mutex::new(HashMap::new()),
        next: Mutex::new(WAKE + 1),
        turns: Mutex::new(0),
        turned: Condvar::new(),
    }));
    r.epoll.add(r.wake.as_fd(), WAKE)?;
    let (held_tx, held) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("switchboard-responder".into())
        .spawn(move || match LifeToken::hold(&r.life) {
            Ok(_hold) => {
                let _ = held_tx.send(Ok(()));
                r.run()
            }
            Err(e) => {
                let _ = held_tx.send(Err(e));
            }
        })
        .map_err(Error::Io)?;
    held.recv().map_err(|_| Error::BrokenPipe)??;
    *started = Some(r);
    Ok(r)
}

impl Responder {
    fn next_token(&self) -> u64 {
        let mut next = lock(&self.next);
        *next += 1;
        *next
    }

    /// Starts admitting clients for `entry`; returns its token.
    pub(super) fn add(&self, entry: Entry) -> Result<u64> {
        self.insert(Watched::Service(Arc::new(entry)))
    }

    /// Starts watching `session` for its peer's hang-up; returns its token.
    pub(super) fn watch(&self, session: Session) -> Result<u64> {
        self.insert(Watched::Session(Arc::new(session)))
    }

    /// Registers `watched` (a listener for readability, a session for
    /// its peer's hang-up) under a fresh token.
    fn insert(&self, watched: Watched) -> Result<u64> {
        let token = self.next_token();
        lock(&self.services).insert(token, watched.clone());
        let added = match &watched {
            Watched::Service(_) => self.epoll.add(watched.fd(), token),
            Watched::Session(_) => self.epoll.add_hangup(watched.fd(), token),
        };
        if let Err(e) = added {
            lock(&self.services).remove(&token);
            return Err(e.into());
        }
        Ok(token)
    }

    /// Stops admitting clients for `token` and waits until the responder
    /// has let go of it (so a dropped service's name is gone when this
    /// returns).
    pub(super) fn remove(&self, token: u64) {
        if !self.forget(token) || ON_RESPONDER.with(Cell::get) {
            return;
        }
        let turns = lock(&self.turns);
        let seen = *turns;
        self.wake.notify();
        // One whole turn after the removal, the responder holds no clone.
        let _ = self.turned.wait_timeout_while(turns, Duration::from_secs(10), |t| *t < seen + 1);
    }

    /// Stops watching `token` without waiting: the responder may finish a
    /// turn that already holds it. For session watches, whose owners may
    /// hold locks a handler takes — waiting there could deadlock.
    pub(super) fn forget(&self, token: u64) -> bool {
        let Some(watched) = lock(&self.services).remove(&token) else { return false };
        let _ = self.epoll.delete(watched.fd());
        true
    }

    fn run(&self) -> ! {
        ON_RESPONDER.with(|f| f.set(true));
        let mut ready = Vec::new();
        let mut backoff = Duration::ZERO;
        loop {
            if self.epoll.wait(&mut ready, None).is_err() {
                std::thread::sleep(MAX_BACKOFF);
            }
            for token in &ready {
                if *token == WAKE {
                    self.wake.drain();
                    continue;
                }
                let watched = lock(&self.services).get(token).cloned();
                match watched {
                    Some(Watched::Service(entry)) => backoff = admit_batch(&entry, backoff),
                    // Once: a hang-up stays reported while watched.
                    Some(Watched::Session(session)) if self.forget(*token) => (session.on_gone)(),
                    Some(Watched::Session(_)) | None => {}
                }
            }
            *lock(&self.turns) += 1;
            self.turned.notify_all();
        }
    }
}

/// Accepts and admits up to [`BATCH`] clients of one service; returns the
/// back-off for the next accept error.
fn admit_batch(entry: &Entry, mut backoff: Duration) -> Duration {
    for _ in 0..BATCH {
        match entry.listener.accept() {
            Ok(Some(conn)) => {
                backoff = Duration::ZERO;
                match conn.peer_cred() {
                    Ok(cred) if entry.acl.admits(&cred) => entry.handler.admit(conn, cred),
                    _ => {
                        let _ = super::wire::send(&conn, entry.family, Status::Denied, &[], &[]);
                    }
                }
            }
            Ok(None) => break,
            Err(_) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(1), MAX_BACKOFF);
                std::thread::sleep(backoff);
                break;
            }
        }
    }
    backoff
}
