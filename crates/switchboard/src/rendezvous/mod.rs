//! The rendezvous: how a client finds a named server, and how the server
//! admits it. Every mechanism's set-up path goes through here.
//!
//! - A **[`Service`]** is a listening abstract socket under an address of
//!   a [`Family`] (one per mechanism), with an ACL and a [`Handler`]. One
//!   responder thread per process, on epoll, accepts for every service,
//!   checks the client's kernel-reported credentials (`SO_PEERCRED`)
//!   against the ACL and hands admitted connections to the handler, which
//!   replies without blocking (see the `responder` module).
//! - **[`connect`]** is the client's side: it connects within the caller's
//!   deadline (a listener that never accepts cannot hang it), checks *who*
//!   answers ([`Trust`]) before believing anything it says, and decodes the
//!   one versioned reply ([`wire`]).
//!
//! Addresses are `sb1/<scope>/<family>/<name>`: `L<uid>` for a user's
//! Local names, `G` for machine-wide ones; a name that would not fit the
//! 107-byte abstract limit is replaced by `#` and its 128-bit FNV-1a hash
//! (the family's reply carries the full name where a collision matters).
//!
//! ## Who answers
//! Anyone can bind any abstract name, so a name proves nothing about its
//! holder. The listening socket's credentials — recorded by the kernel
//! when the *creator* called `listen`, and kept when the socket is passed
//! to other holders — do: a client refuses a holder whose uid is neither
//! its own nor root's (a system service may serve every user, as Global
//! objects of services do on Windows), unless it named that owner as
//! trusted. A Local name must be held by the caller's own uid.

mod backlog;
mod responder;
pub(crate) mod wire;

pub(crate) use backlog::{Backlog, Waiting};

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_sys::life::LifeToken;
use switchboard_sys::socket::{self, Conn, Cred, Listener};
use switchboard_sys::{Errno, OwnedFd};

use crate::error::{Error, Result};
use crate::name::Scope;
use crate::namespace::Acl;
pub(crate) use wire::Status;

/// Every switchboard address starts with this.
pub(crate) const PREFIX: &str = "sb1/";
/// How long a client waits for a server to answer, when the caller gave no
/// deadline of its own.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A mechanism's part of the namespace: servers of one family answer with
/// that family's reply, and names of different families never meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Family(pub(crate) u8);

impl Family {
    /// Kernel objects (mapping, mutex, semaphore, event, port) share one
    /// family, so a name holds one kind at a time (00-S04).
    pub const OBJECT: Family = Family(b'k');
    /// Named pipes: where clients open an instance.
    pub const PIPE: Family = Family(b'p');
    /// Named pipes: where `wait_named_pipe` asks.
    pub const PIPE_WAIT: Family = Family(b'q');
    /// Mailslots.
    pub const MAILSLOT: Family = Family(b'm');
    /// Shared-memory links.
    pub const LINK: Family = Family(b'l');
    /// Message receivers (window messages, data copy).
    pub const RECEIVER: Family = Family(b'w');
    /// RPC endpoint registrations (the endpoint mapper).
    pub const ENDPOINT: Family = Family(b'e');
    /// Sockets handed between processes (no address: sent over a
    /// connection the two already share).
    pub const SOCKET: Family = Family(b's');
    /// Serial null-modem pairs: where a port on one of their ends reaches
    /// the pair for its modem lines.
    pub const SERIAL: Family = Family(b't');
    /// This user's network gateway (`remote`): where a process asks for
    /// another host's objects.
    pub const GATEWAY: Family = Family(b'g');
    /// Every family.
    #[cfg(feature = "fuzz")]
    pub const ALL: [Family; 10] = [
        Family::OBJECT,
        Family::PIPE,
        Family::PIPE_WAIT,
        Family::MAILSLOT,
        Family::LINK,
        Family::RECEIVER,
        Family::ENDPOINT,
        Family::SOCKET,
        Family::SERIAL,
        Family::GATEWAY,
    ];

    fn tag(self) -> char {
        char::from(self.0)
    }
}

/// The address of `name` in `family` and `scope`.
pub(crate) fn address(family: Family, scope: Scope, name: &str) -> Vec<u8> {
    let scope_tag = match scope {
        Scope::Local => format!("L{}", switchboard_sys::process::uid()),
        Scope::Global => "G".to_owned(),
    };
    let base = format!("{PREFIX}{scope_tag}/{}/", family.tag());
    if base.len() + name.len() <= socket::ABSTRACT_NAME_MAX {
        format!("{base}{name}").into_bytes()
    } else {
        format!("{base}#{:032x}", fnv1a_128(name.as_bytes())).into_bytes()
    }
}

/// The prefix of every address of `family` in `scope`.
pub(crate) fn family_prefix(family: Family, scope: Scope) -> Vec<u8> {
    let mut a = address(family, scope, "x");
    a.pop();
    a
}

/// FNV-1a, 128-bit: stable across builds and processes.
fn fnv1a_128(data: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    data.iter().fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME))
}

/// Whose servers a client believes (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Only the caller's own uid (Local names).
    User,
    /// The caller's uid or root (the default for machine-wide names).
    UserOrRoot,
    /// The caller's uid, root, or this owner.
    Owner(u32),
    /// Whoever holds it: for a descriptor the caller was handed, whose
    /// holder it already chose to believe.
    Anyone,
}

impl Trust {
    /// The default for a name of `scope`.
    pub(crate) fn for_scope(scope: Scope) -> Trust {
        match scope {
            Scope::Local => Trust::User,
            Scope::Global => Trust::UserOrRoot,
        }
    }

    fn trusts(self, uid: u32) -> bool {
        let me = switchboard_sys::process::uid();
        match self {
            Trust::User => uid == me,
            Trust::UserOrRoot => uid == me || uid == 0,
            Trust::Owner(o) => uid == me || uid == 0 || uid == o,
            Trust::Anyone => true,
        }
    }
}

/// What a mechanism does with a client its service admitted.
pub(crate) trait Handler: Send + Sync {
    /// Runs on the responder thread: reply with [`wire::send`] (or keep the
    /// connection for later) and return, never blocking on the client.
    fn admit(&self, conn: Conn, peer: Cred);
}

/// What the responder keeps of a service.
struct Entry {
    family: Family,
    listener: Arc<Listener>,
    acl: Acl,
    handler: Arc<dyn Handler>,
}

/// A named server: while it lives, the responder admits its clients.
pub(crate) struct Service {
    token: u64,
    /// The address this service's name owns, when it is one a server
    /// binds alone (pipes, mailslots, links, hand-off points — not objects,
    /// whose holders share one listener): remembered as released here when
    /// the service ends (see [`bind_server`]).
    owned: Option<Vec<u8>>,
}

/// Addresses of server names this process released lately, and when.
fn released() -> std::sync::MutexGuard<'static, std::collections::HashMap<Vec<u8>, Instant>> {
    static RELEASED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<Vec<u8>, Instant>>> =
        std::sync::LazyLock::new(Default::default);
    RELEASED.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long a server name this process released counts as its own.
const RELEASE_MEMORY: Duration = Duration::from_secs(5);
/// How long [`bind_server`] waits for such a name to come free.
const RELEASE_GRACE: Duration = Duration::from_secs(2);

/// Binds `addr` for a server that owns its name alone; `None` when another
/// socket holds it. A name this process released in the last few seconds
/// is waited for (up to [`RELEASE_GRACE`]): its service unbound it
/// synchronously, but a child this process is starting holds copies of
/// every descriptor between its `fork` and its `exec`, and a server that
/// closes its name and creates it again at once (as classic servers do in
/// a loop) must not take that copy for another process's name.
pub(crate) fn bind_server(addr: &[u8]) -> Result<Option<Listener>> {
    let ours = released().get(addr).is_some_and(|at| at.elapsed() < RELEASE_MEMORY);
    let until = Instant::now() + RELEASE_GRACE;
    loop {
        match bind(addr)? {
            None if ours && Instant::now() < until => std::thread::sleep(Duration::from_millis(1)),
            other => return Ok(other),
        }
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("token", &self.token).finish_non_exhaustive()
    }
}

/// Binds `addr`; `None` when another socket holds it.
pub(crate) fn bind(addr: &[u8]) -> Result<Option<Listener>> {
    match Listener::bind(addr) {
        Ok(l) => Ok(Some(l)),
        Err(Errno::ADDRINUSE) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Service {
    /// Admits clients on `listener` (bound here, or a holder's copy).
    ///
    /// # Errors
    /// When the responder cannot start or watch the listener (out of
    /// descriptors or threads).
    pub fn start(family: Family, listener: Arc<Listener>, acl: Acl, handler: Arc<dyn Handler>) -> Result<Service> {
        let owned = (family != Family::OBJECT).then(|| listener.name().ok()).flatten();
        let entry = Entry { family, listener, acl, handler };
        let token = responder::get()?.add(entry)?;
        Ok(Service { token, owned })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(r) = responder::get() {
            r.remove(self.token);
        }
        if let Some(addr) = self.owned.take() {
            let mut released = released();
            released.retain(|_, at| at.elapsed() < RELEASE_MEMORY);
            released.insert(addr, Instant::now());
        }
    }
}

/// This process's life token, to hand to a peer: it reads as died, and
/// wakes whoever sleeps on it, when this process dies (see the `responder`
/// module).
///
/// # Errors
/// When the responder cannot start.
pub(crate) fn process_life() -> Result<&'static LifeToken> {
    Ok(&responder::get()?.life)
}

/// A session's watch: while it lives, the responder calls `on_gone` once
/// the connection's peer hangs up — closes its last copy or dies, `kill -9`
/// included — at once, on the responder thread (keep it short: wake
/// someone). Dropping the watch stops it; a call already under way may
/// still finish.
pub(crate) struct HangupWatch {
    token: u64,
}

impl HangupWatch {
    /// Watches `conn` (through a copy of its descriptor).
    ///
    /// # Errors
    /// When the responder cannot start or watch (out of descriptors).
    pub fn start(conn: &Conn, on_gone: Box<dyn Fn() + Send + Sync>) -> Result<HangupWatch> {
        let session = responder::Session { conn: conn.try_clone()?, on_gone };
        Ok(HangupWatch { token: responder::get()?.watch(session)? })
    }
}

impl std::fmt::Debug for HangupWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HangupWatch").field("token", &self.token).finish()
    }
}

impl Drop for HangupWatch {
    fn drop(&mut self) {
        // Without waiting: an end is dropped under its pipe's lock, which a
        // handler on the responder thread may be waiting for.
        if let Ok(r) = responder::get() {
            r.forget(self.token);
        }
    }
}

/// Why [`connect`] found no server to talk to.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nobody listens under the address.
    Absent,
    /// The server went away during the handshake.
    Vanished,
    /// A server answered, and the answer is an error.
    Refused(Error),
}

impl Failure {
    /// The error a caller reports: nobody there is `NotFound(what)`.
    pub fn into_error(self, what: &str) -> Error {
        match self {
            Failure::Absent | Failure::Vanished => Error::NotFound(what.to_owned()),
            Failure::Refused(e) => e,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Refused(e)
    }
}

/// A granted reply: the session's connection, who answered, the family's
/// body and descriptors.
#[derive(Debug)]
pub(crate) struct Answer {
    pub conn: Conn,
    pub owner: Cred,
    pub body: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// Connects to the `family` server at `addr` and receives its reply, all
/// before `deadline`.
///
/// # Errors
/// `Absent`/`Vanished`; `Refused` with `Timeout` at the deadline,
/// `AccessDenied` for an untrusted holder or the server's ACL, `PipeBusy`
/// when the server is busy, `Malformed` for a reply that does not decode.
pub(crate) fn connect(family: Family, addr: &[u8], deadline: Instant, trust: Trust) -> Result<Answer, Failure> {
    let conn = match Conn::connect(addr, Some(deadline)) {
        Ok(c) => c,
        Err(Errno::CONNREFUSED) | Err(Errno::NOENT) => return Err(Failure::Absent),
        Err(Errno::TIMEDOUT) => return Err(Error::Timeout.into()),
        Err(e) => return Err(Error::sys(e).into()),
    };
    let owner = conn.peer_cred().map_err(Error::sys)?;
    if !trust.trusts(owner.uid) {
        return Err(Error::AccessDenied(format!(
            "{} is held by a process of user {}, who was not named as trusted",
            String::from_utf8_lossy(addr),
            owner.uid
        ))
        .into());
    }
    let (body, fds) = match receive(family, &conn, Some(deadline)) {
        Err(Failure::Refused(Error::AccessDenied(why))) => {
            return Err(Error::AccessDenied(format!("{}: {why}", String::from_utf8_lossy(addr))).into())
        }
        other => other?,
    };
    Ok(Answer { conn, owner, body, fds })
}

/// Receives one reply of `family` on `conn` (the first after connecting,
/// a later one of the family's protocol, or one sent over any connection).
///
/// # Errors
/// As [`connect`].
pub(crate) fn receive(
    family: Family,
    conn: &Conn,
    deadline: Option<Instant>,
) -> Result<(Vec<u8>, Vec<OwnedFd>), Failure> {
    let mut buf = vec![0u8; wire::MAX_REPLY];
    let (n, fds) = match conn.recv(&mut buf, deadline) {
        Ok(Some(got)) => got,
        Ok(None) | Err(Errno::CONNRESET) => return Err(Failure::Vanished),
        Err(Errno::TIMEDOUT) | Err(Errno::AGAIN) => return Err(Error::Timeout.into()),
        Err(Errno::MSGSIZE) => return Err(Error::Malformed("an oversized rendezvous reply".into()).into()),
        Err(e) => return Err(Error::sys(e).into()),
    };
    let reply = wire::decode(family, &buf[..n])?;
    match reply.status {
        Status::Granted => Ok((reply.body.to_vec(), fds)),
        Status::Denied => Err(Error::AccessDenied("the server's ACL does not admit this user".into()).into()),
        Status::Busy => Err(Error::PipeBusy.into()),
    }
}

/// The deadline `timeout` from now, or the default answer timeout.
pub(crate) fn answer_deadline(timeout: Option<Duration>) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout.unwrap_or(ANSWER_TIMEOUT)).unwrap_or(now + ANSWER_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_hashed_to_fit() {
        let a = address(Family::OBJECT, Scope::Global, &"x".repeat(256));
        assert!(a.len() <= socket::ABSTRACT_NAME_MAX);
        let b = address(Family::OBJECT, Scope::Global, &"x".repeat(255));
        assert_ne!(a, b);
        assert!(a.starts_with(&family_prefix(Family::OBJECT, Scope::Global)));
    }

    #[test]
    fn trust_follows_scope_and_named_owner() {
        let me = switchboard_sys::process::uid();
        assert!(Trust::User.trusts(me));
        assert!(Trust::UserOrRoot.trusts(0));
        assert!(!Trust::UserOrRoot.trusts(me.wrapping_add(4242)));
        assert!(Trust::Owner(4242).trusts(4242));
        assert!(!Trust::Owner(4242).trusts(4243) || me == 4243);
    }
}
