//! The namespace: names as rendezvous points, with kernel-counted lifetime.
//!
//! A named object is an abstract `AF_UNIX` listening socket (see
//! `switchboard_sys::socket`) whose address is derived from the object's
//! scope, family and name:
//!
//! ```text
//! sb1/L<uid>/k/<name>     Local kernel object of user <uid>
//! sb1/G/k/<name>          Global kernel object
//! sb1/A/<random>          unnamed object (reachable only through its handle)
//! ```
//!
//! Kernel-object kinds (mapping, mutex, semaphore, event, port) share the
//! family `k`, so one name can hold one kind at a time (00-S04). Names that
//! would not fit the 107-byte abstract limit are replaced by `#` and a
//! 128-bit FNV-1a hash; the full name travels in the reply and is compared,
//! so a collision is detected rather than confused.
//!
//! Every holder keeps a duplicate of the listening socket: the name lives
//! exactly as long as some process holds the object and disappears, by the
//! kernel's own reference counting, when the last holder exits — even by
//! `kill -9` (00-S07). The per-process responder thread answers openers
//! (see the `responder` module); creating is "bind, or else connect and open", which
//! makes create-or-open race-free between processes (00-S05).

mod responder;
pub(crate) mod wire;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchboard_sys::process::{HandleValue, Pidfd};
use switchboard_sys::socket::{self, Conn, Cred, Listener};
use switchboard_sys::{BorrowedFd, Errno, OwnedFd};

use crate::error::{Error, Result};
use crate::name::Scope;
pub(crate) use responder::Registration;
use responder::{register, Published};
pub(crate) use wire::ObjectInfo;
use wire::{decode, Reply, MAX_REPLY};

const PREFIX: &str = "sb1/";
/// How long an open waits for a holder to answer.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The kind of a named object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Kind {
    /// A file mapping (named shared memory).
    Mapping,
    /// A named mutex.
    Mutex,
    /// A named semaphore.
    Semaphore,
    /// A named event.
    Event,
    /// A completion port.
    Port,
    /// A named pipe (listed only: pipes have their own rendezvous).
    Pipe,
    /// A mailslot (listed only: mailslots have their own rendezvous).
    Mailslot,
}

impl Kind {
    /// The kind's display name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Mapping => "mapping",
            Kind::Mutex => "mutex",
            Kind::Semaphore => "semaphore",
            Kind::Event => "event",
            Kind::Port => "port",
            Kind::Pipe => "pipe",
            Kind::Mailslot => "mailslot",
        }
    }

    /// The namespace family tag: kinds with the same tag share names.
    fn family(self) -> &'static str {
        match self {
            Kind::Pipe => "p",
            Kind::Mailslot => "m",
            _ => "k",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who besides the creator's user may open an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Principal {
    /// A user id.
    Uid(u32),
    /// A group id (matched against the peer's effective gid).
    Gid(u32),
    /// Every user.
    Everyone,
}

/// An access-control list: the creator's uid plus the listed principals.
///
/// The default admits only the creator's uid (00-S09). Checked by every
/// holder on every open, against the peer's kernel-reported credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    owner_uid: u32,
    allow: Vec<Principal>,
}

impl Acl {
    /// Only the creator's user (the default).
    pub fn owner_only() -> Acl {
        Acl::default()
    }

    /// Every user of the machine.
    pub fn everyone() -> Acl {
        Acl::default().allow(Principal::Everyone)
    }

    /// Adds a principal.
    #[must_use]
    pub fn allow(mut self, p: Principal) -> Acl {
        self.allow.push(p);
        self
    }

    pub(crate) fn with_owner(mut self, uid: u32) -> Acl {
        self.owner_uid = uid;
        self
    }

    /// Whether a peer with these credentials may open the object.
    pub fn admits(&self, c: &Cred) -> bool {
        c.uid == self.owner_uid
            || self.allow.iter().any(|p| match p {
                Principal::Uid(u) => *u == c.uid,
                Principal::Gid(g) => *g == c.gid,
                Principal::Everyone => true,
            })
    }
}

/// Where an object lives in the namespace.
#[derive(Clone, Debug)]
pub(crate) struct Address {
    bytes: Vec<u8>,
    scope: Option<Scope>,
    key: String,
}

impl Address {
    /// The address of a named object of `kind`.
    pub fn named(kind: Kind, scope: Scope, name: &str) -> Address {
        Address { bytes: scoped_bytes(scope, kind.family(), name), scope: Some(scope), key: name.to_owned() }
    }

    /// A fresh unguessable address for an unnamed object.
    pub fn anonymous() -> Address {
        use std::hash::BuildHasher;
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = std::collections::hash_map::RandomState::new();
        let key = format!("{:016x}{:016x}", r.hash_one(n), r.hash_one(!n));
        let bytes = format!("{PREFIX}A/{}/{key}", switchboard_sys::process::pid()).into_bytes();
        Address { bytes, scope: None, key: String::new() }
    }
}

/// The address of a link listener (family `l`).
pub(crate) fn link_address(name: &str) -> Result<Vec<u8>> {
    let (scope, name) = crate::name::Name::parse_object(name)?;
    Ok(scoped_bytes(scope, "l", &name))
}

/// A named pipe's folded name and its two addresses: where clients open
/// (family `p`) and where `wait_named_pipe` asks (family `q`). Pipe names are
/// machine-wide, as classic pipe names are.
pub(crate) fn pipe_addresses(name: &str) -> Result<(String, Vec<u8>, Vec<u8>)> {
    let full = if name.starts_with(r"\\") { name.to_owned() } else { format!(r"\\.\pipe\{name}") };
    match crate::name::Name::parse(&full)? {
        crate::name::Name::Pipe(n) => {
            let (open, query) = (scoped_bytes(Scope::Global, "p", &n), scoped_bytes(Scope::Global, "q", &n));
            Ok((n, open, query))
        }
        crate::name::Name::RemotePipe { .. } => Err(Error::BadNetPath("remote pipes need the network gateway")),
        _ => Err(Error::InvalidName { name: name.to_owned(), why: "expected NAME or \\\\.\\pipe\\NAME" }),
    }
}

/// Where a mailslot's server answers (family `m`): machine-wide, as
/// classic mailslot names are. `folded` is the lower-cased name.
pub(crate) fn mailslot_address(folded: &str) -> Vec<u8> {
    scoped_bytes(Scope::Global, "m", folded)
}

/// Connects to a mechanism's own rendezvous (pipes, mailslots): nobody
/// there is `NotFound(name)`.
pub(crate) fn connect_to(addr: &[u8], name: &str) -> Result<Conn> {
    Conn::connect(addr).map_err(|e| match e {
        Errno::CONNREFUSED | Errno::NOENT => Error::NotFound(name.to_owned()),
        other => other.into(),
    })
}

/// Receives a rendezvous reply: end of stream is `BrokenPipe`, the
/// deadline `Timeout`.
pub(crate) fn recv_reply(conn: &Conn, buf: &mut [u8], deadline: Option<Instant>) -> Result<(usize, Vec<OwnedFd>)> {
    match conn.recv(buf, deadline) {
        Ok(Some(got)) => Ok(got),
        Ok(None) | Err(Errno::CONNRESET) => Err(Error::BrokenPipe),
        Err(Errno::TIMEDOUT) | Err(Errno::AGAIN) => Err(Error::Timeout),
        Err(e) => Err(e.into()),
    }
}

/// Takes descriptor `handle` of process `pid` (`pidfd_getfd`) for an object
/// of kind `wanted` (a name for errors).
pub(crate) fn take_fd(pid: u32, handle: HandleValue, wanted: &'static str) -> Result<OwnedFd> {
    let pidfd = Pidfd::open(pid).map_err(|_| Error::NotFound(format!("process {pid}")))?;
    pidfd.take(handle).map_err(|errno| match errno {
        Errno::PERM | Errno::ACCESS => Error::HandleTakingRefused { pid, errno },
        Errno::BADF => Error::InvalidHandle { wanted, found: "no such handle" },
        other => Error::sys(other),
    })
}

/// `sb1/<scope tag>/<family>/<name>`, the name replaced by its hash when the
/// whole would not fit an abstract socket name.
fn scoped_bytes(scope: Scope, family: &str, name: &str) -> Vec<u8> {
    let scope_tag = match scope {
        Scope::Local => format!("L{}", switchboard_sys::process::uid()),
        Scope::Global => "G".to_owned(),
    };
    let base = format!("{PREFIX}{scope_tag}/{family}/");
    if base.len() + name.len() <= socket::ABSTRACT_NAME_MAX {
        format!("{base}{name}").into_bytes()
    } else {
        format!("{base}#{:032x}", fnv1a_128(name.as_bytes())).into_bytes()
    }
}

/// FNV-1a, 128-bit: stable across builds and processes.
fn fnv1a_128(data: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    data.iter().fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME))
}

/// One process's handle on a named (or unnamed) object.
#[derive(Debug)]
pub(crate) struct Endpoint {
    reg: Registration,
    /// Whether the object existed before this handle was made (00-S05).
    pub existed: bool,
}

impl Endpoint {
    fn publish(listener: Listener, fds: Vec<OwnedFd>, info: ObjectInfo, existed: bool) -> Endpoint {
        Endpoint { reg: register(Published { listener, fds, info }), existed }
    }

    pub fn info(&self) -> &ObjectInfo {
        &self.reg.published().info
    }

    /// The object's own descriptor number `i` (after the listener).
    pub fn fd(&self, i: usize) -> Option<BorrowedFd<'_>> {
        use switchboard_sys::AsFd;
        self.reg.published().fds.get(i).map(|f| f.as_fd())
    }

    /// The handle value other processes may take with `from_process`.
    pub fn handle(&self) -> HandleValue {
        HandleValue::of(&self.reg.published().listener)
    }

    /// Identity of the object across handles and processes (listener inode).
    pub fn identity(&self) -> u64 {
        self.reg.published().listener.inode().unwrap_or(0)
    }

    /// Sends the object over a connection (00-S08, fd passing).
    pub fn send(&self, conn: &Conn) -> Result<()> {
        self.reg.published().send(conn).map_err(Error::sys)
    }
}

/// A holder's answer, with its descriptors.
struct Granted {
    info: ObjectInfo,
    listener: Listener,
    fds: Vec<OwnedFd>,
}

/// Why a hello found no object to open.
enum Missing {
    /// Nobody listens under the address.
    Absent,
    /// The object went away during the handshake.
    Vanished,
}

type HelloResult = std::result::Result<Granted, std::result::Result<Missing, Error>>;

/// Receives a reply from `conn` and checks it.
fn receive_reply(conn: &Conn, deadline: Instant) -> HelloResult {
    let mut buf = vec![0u8; MAX_REPLY];
    let (n, mut fds) = match conn.recv(&mut buf, Some(deadline)) {
        Ok(Some(got)) => got,
        Ok(None) | Err(Errno::CONNRESET) => return Err(Ok(Missing::Vanished)),
        Err(Errno::TIMEDOUT) => return Err(Err(Error::Timeout)),
        Err(e) => return Err(Err(Error::sys(e))),
    };
    match decode(&buf[..n]) {
        Ok(Reply::Denied) => Err(Err(Error::AccessDenied("the object's ACL does not admit this user"))),
        Ok(Reply::Granted { .. }) if fds.is_empty() => Err(Err(Error::Malformed("reply without descriptors".into()))),
        Ok(Reply::Granted { info, .. }) => {
            let listener = Listener::from_fd(fds.remove(0));
            Ok(Granted { info, listener, fds })
        }
        Err(e) => Err(Err(e)),
    }
}

/// Connects to `addr` and receives the object, checking who answers.
fn hello(addr: &Address, deadline: Instant) -> HelloResult {
    let conn = match Conn::connect(&addr.bytes) {
        Ok(c) => c,
        Err(Errno::CONNREFUSED) | Err(Errno::NOENT) => return Err(Ok(Missing::Absent)),
        Err(e) => return Err(Err(Error::sys(e))),
    };
    if addr.scope == Some(Scope::Local) {
        let me = switchboard_sys::process::uid();
        if conn.peer_cred().map(|c| c.uid) != Ok(me) {
            return Err(Err(Error::AccessDenied("a Local name is held by a process of another user")));
        }
    }
    let granted = receive_reply(&conn, deadline)?;
    if addr.scope.is_some() && (granted.info.name != addr.key || granted.info.scope != addr.scope) {
        return Err(Err(Error::InvalidName {
            name: addr.key.clone(),
            why: "the name's hash collides with another name",
        }));
    }
    Ok(granted)
}

fn check_kind(wanted: Kind, info: &ObjectInfo) -> Result<()> {
    if info.kind != wanted {
        return Err(Error::InvalidHandle { wanted: wanted.as_str(), found: info.kind.as_str() });
    }
    Ok(())
}

/// What a creator supplies: the object's descriptors and description.
pub(crate) type Make<'a> = &'a mut dyn FnMut() -> Result<(Vec<OwnedFd>, ObjectInfo)>;

/// Creates the object at `addr`, or opens it if it exists (00-S05).
pub(crate) fn create_or_open(kind: Kind, addr: &Address, acl: &Acl, make: Make<'_>) -> Result<Endpoint> {
    let deadline = Instant::now() + OPEN_TIMEOUT;
    loop {
        match Listener::bind(&addr.bytes) {
            Ok(listener) => {
                let (fds, mut info) = make()?;
                info.acl = acl.clone().with_owner(switchboard_sys::process::uid());
                info.scope = addr.scope;
                info.name = addr.key.clone();
                return Ok(Endpoint::publish(listener, fds, info, false));
            }
            Err(Errno::ADDRINUSE) => match hello(addr, deadline) {
                Ok(g) => {
                    check_kind(kind, &g.info)?;
                    return Ok(Endpoint::publish(g.listener, g.fds, g.info, true));
                }
                Err(Ok(_)) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                Err(Ok(_)) => return Err(Error::Timeout),
                Err(Err(e)) => return Err(e),
            },
            Err(e) => return Err(Error::sys(e)),
        }
    }
}

/// Opens an existing object (00-S06: `NotFound` if there is none).
pub(crate) fn open(kind: Kind, addr: &Address) -> Result<Endpoint> {
    let deadline = Instant::now() + OPEN_TIMEOUT;
    loop {
        match hello(addr, deadline) {
            Ok(g) => {
                check_kind(kind, &g.info)?;
                return Ok(Endpoint::publish(g.listener, g.fds, g.info, true));
            }
            Err(Ok(Missing::Vanished)) if Instant::now() < deadline => continue,
            Err(Ok(_)) => return Err(Error::NotFound(addr.key.clone())),
            Err(Err(e)) => return Err(e),
        }
    }
}

/// Receives an object another process sent with `send` (00-S08).
pub(crate) fn receive(kind: Kind, conn: &Conn, timeout: Option<Duration>) -> Result<Endpoint> {
    let deadline = Instant::now() + timeout.unwrap_or(Duration::from_secs(365 * 86400));
    match receive_reply(conn, deadline) {
        Ok(g) => {
            check_kind(kind, &g.info)?;
            Ok(Endpoint::publish(g.listener, g.fds, g.info, true))
        }
        Err(Ok(_)) => Err(Error::sys(Errno::PIPE)),
        Err(Err(e)) => Err(e),
    }
}

/// Takes handle `handle` of process `pid` and opens the object it refers to
/// (00-S08, `pidfd_getfd`). The object's ACL applies as for any open.
pub(crate) fn take_from_process(kind: Kind, pid: u32, handle: HandleValue) -> Result<Endpoint> {
    let listener = Listener::from_fd(take_fd(pid, handle, kind.as_str())?);
    let bytes = listener
        .name()
        .map_err(|_| Error::InvalidHandle { wanted: kind.as_str(), found: "another kind of descriptor" })?;
    if !bytes.starts_with(PREFIX.as_bytes()) {
        return Err(Error::InvalidHandle { wanted: kind.as_str(), found: "a socket that is not a switchboard object" });
    }
    let deadline = Instant::now() + OPEN_TIMEOUT;
    let addr = Address { bytes, scope: None, key: String::new() };
    match hello(&addr, deadline) {
        Ok(g) => {
            check_kind(kind, &g.info)?;
            Ok(Endpoint::publish(g.listener, g.fds, g.info, true))
        }
        Err(Ok(_)) => Err(Error::NotFound(format!("handle {handle} of process {pid}"))),
        Err(Err(e)) => Err(e),
    }
}

/// One live named object, as [`list`] reports it (00-S10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEntry {
    /// What it is.
    pub kind: Kind,
    /// Its scope.
    pub scope: Scope,
    /// Its name (without the scope prefix).
    pub name: String,
    /// The creating process, or a live holder if the creator has exited.
    pub owner_pid: u32,
    /// How many processes (other than the caller) hold it.
    pub holders: usize,
}

/// Lists every live named object visible to the caller: this user's Local
/// objects and the Global objects whose ACL admits the caller.
pub fn list() -> Vec<ObjectEntry> {
    let uid = switchboard_sys::process::uid();
    let prefixes = [format!("{PREFIX}L{uid}/k/"), format!("{PREFIX}G/k/")];
    let found: Vec<_> = prefixes.iter().flat_map(|p| socket::list_abstract_listeners(p.as_bytes())).collect();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut described = Vec::new();
    for l in &found {
        let addr = Address { bytes: l.name.clone(), scope: None, key: String::new() };
        if let Ok(g) = hello(&addr, deadline) {
            described.push((l.inode, g.info));
        }
    }
    let holders = holders_by_inode();
    let mut out: Vec<ObjectEntry> = described
        .into_iter()
        .filter_map(|(inode, info)| {
            let count = holders.get(&inode).map_or(0, Vec::len);
            let owner_pid = if switchboard_sys::process::is_alive(info.creator_pid) {
                info.creator_pid
            } else {
                holders.get(&inode).and_then(|p| p.first().copied()).unwrap_or(0)
            };
            Some(ObjectEntry { kind: info.kind, scope: info.scope?, name: info.name, owner_pid, holders: count })
        })
        .collect();
    out.extend(rendezvous_entries(Kind::Pipe, &holders));
    out.extend(rendezvous_entries(Kind::Mailslot, &holders));
    out.sort_by(|a, b| (a.scope as u8, &a.name, a.kind).cmp(&(b.scope as u8, &b.name, b.kind)));
    out
}

/// Named pipes and mailslots, machine-wide, from their rendezvous names
/// alone: the process bound to the name is the server. (A name too long
/// for an abstract address shows as its `#hash`.)
fn rendezvous_entries(kind: Kind, holders: &HashMap<u64, Vec<u32>>) -> Vec<ObjectEntry> {
    let prefix = format!("{PREFIX}G/{}/", kind.family());
    socket::list_abstract_listeners(prefix.as_bytes())
        .into_iter()
        .map(|l| {
            let pids = holders.get(&l.inode).map_or(&[][..], Vec::as_slice);
            ObjectEntry {
                kind,
                scope: Scope::Global,
                name: String::from_utf8_lossy(&l.name[prefix.len()..]).into_owned(),
                owner_pid: pids.first().copied().unwrap_or_else(switchboard_sys::process::pid),
                holders: pids.len(),
            }
        })
        .collect()
}

fn holders_by_inode() -> HashMap<u64, Vec<u32>> {
    let me = switchboard_sys::process::pid();
    let mut map: HashMap<u64, Vec<u32>> = HashMap::new();
    for pid in switchboard_sys::process::all_pids().into_iter().filter(|p| *p != me) {
        let mut inodes = switchboard_sys::process::socket_inodes(pid);
        inodes.sort_unstable();
        inodes.dedup();
        for inode in inodes {
            map.entry(inode).or_default().push(pid);
        }
    }
    map.values_mut().for_each(|v| v.sort_unstable());
    map
}

/// The creator's description of a new object; the namespace fills in the
/// scope, name and ACL.
pub(crate) fn describe(kind: Kind, size: u64, protection: u8) -> ObjectInfo {
    ObjectInfo {
        kind,
        scope: None,
        name: String::new(),
        creator_pid: switchboard_sys::process::pid(),
        size,
        protection,
        acl: Acl::default(),
    }
}

/// The address for an optional name: parsed and scoped, or anonymous.
pub(crate) fn address_for(kind: Kind, name: Option<&str>) -> Result<Address> {
    match name {
        None => Ok(Address::anonymous()),
        Some(n) => {
            let (scope, name) = crate::name::Name::parse_object(n)?;
            Ok(Address::named(kind, scope, &name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_hashed_to_fit() {
        let a = Address::named(Kind::Event, Scope::Global, &"x".repeat(256));
        assert!(a.bytes.len() <= socket::ABSTRACT_NAME_MAX);
        let b = Address::named(Kind::Event, Scope::Global, &"x".repeat(255));
        assert_ne!(a.bytes, b.bytes);
    }

    #[test]
    fn acl_admits_owner_and_listed() {
        let acl = Acl::owner_only().allow(Principal::Gid(7)).with_owner(1000);
        assert!(acl.admits(&Cred { pid: 1, uid: 1000, gid: 1 }));
        assert!(acl.admits(&Cred { pid: 1, uid: 5, gid: 7 }));
        assert!(!acl.admits(&Cred { pid: 1, uid: 5, gid: 5 }));
        assert!(Acl::everyone().admits(&Cred { pid: 1, uid: 5, gid: 5 }));
    }
}
