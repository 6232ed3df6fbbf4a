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
//! `kill -9` (00-S07). Every holder runs the object's rendezvous service
//! (`rendezvous::Service`, family `k`), so any of them answers an opener;
//! creating is "bind, or else connect and open", which makes create-or-open
//! race-free between processes (00-S05).
//!
//! An opener believes a holder only if the rendezvous trusts its owner
//! (the creator's uid: the caller's, or root's for a Global name, or the
//! one it named with [`Trust::Owner`]), and checks what it receives: the
//! listening socket must be one, bound at the address asked for.

pub(crate) mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchboard_sys::process::{HandleValue, Pidfd};
use switchboard_sys::socket::{self, Conn, Cred, Listener};
use switchboard_sys::{AsFd, BorrowedFd, Errno, OwnedFd};

use crate::error::{Error, Result};
use crate::name::Scope;
pub use crate::rendezvous::Trust;
use crate::rendezvous::{self, Answer, Failure, Family, Handler, Service, Status, PREFIX};
pub(crate) use wire::ObjectInfo;

/// How long an open waits for a holder to answer.
pub const OPEN_TIMEOUT: Duration = rendezvous::ANSWER_TIMEOUT;

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
    /// A waitable timer.
    Timer,
    /// A message receiver (listed only: receivers have their own rendezvous).
    Receiver,
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
            Kind::Timer => "timer",
            Kind::Receiver => "receiver",
        }
    }

    /// The rendezvous family: kinds of one family share names.
    fn family(self) -> Family {
        match self {
            Kind::Pipe => Family::PIPE,
            Kind::Mailslot => Family::MAILSLOT,
            Kind::Receiver => Family::RECEIVER,
            _ => Family::OBJECT,
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

    /// The uid of the object's creator, who is always admitted.
    pub fn owner_uid(&self) -> u32 {
        self.owner_uid
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

/// Where an object lives in the namespace, and whose holders to believe.
#[derive(Clone, Debug)]
pub(crate) struct Address {
    bytes: Vec<u8>,
    scope: Option<Scope>,
    key: String,
    trust: Trust,
}

impl Address {
    /// The address of a named object of `kind`.
    pub fn named(kind: Kind, scope: Scope, name: &str) -> Address {
        let bytes = rendezvous::address(kind.family(), scope, name);
        Address { bytes, scope: Some(scope), key: name.to_owned(), trust: Trust::for_scope(scope) }
    }

    /// A fresh unguessable address for an unnamed object.
    pub fn anonymous() -> Address {
        use std::hash::BuildHasher;
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = std::collections::hash_map::RandomState::new();
        let key = format!("{:016x}{:016x}", r.hash_one(n), r.hash_one(!n));
        let bytes = format!("{PREFIX}A/{}/{key}", switchboard_sys::process::pid()).into_bytes();
        Address { bytes, scope: None, key: String::new(), trust: Trust::User }
    }

    /// Also believes holders owned by `owner` (a Local name stays the
    /// caller's own).
    #[must_use]
    pub fn trusting(mut self, owner: Option<u32>) -> Address {
        if let (Some(uid), Some(Scope::Global)) = (owner, self.scope) {
            self.trust = Trust::Owner(uid);
        }
        self
    }
}

/// The scope and address of `name` (`NAME`, `Local\NAME`, `Global\NAME`)
/// in a family whose servers hold their own names (links, receivers).
pub(crate) fn named_address(family: Family, name: &str) -> Result<(Scope, Vec<u8>)> {
    let (scope, name) = crate::name::Name::parse_object(name)?;
    Ok((scope, rendezvous::address(family, scope, &name)))
}

/// A named pipe's folded name and its two addresses: where clients open
/// (family `p`) and where `wait_named_pipe` asks (family `q`). Pipe names are
/// machine-wide, as classic pipe names are.
pub(crate) fn pipe_addresses(name: &str) -> Result<(String, Vec<u8>, Vec<u8>)> {
    let full = if name.starts_with(r"\\") { name.to_owned() } else { format!(r"\\.\pipe\{name}") };
    match crate::name::Name::parse(&full)? {
        crate::name::Name::Pipe(n) => {
            let open = rendezvous::address(Family::PIPE, Scope::Global, &n);
            let query = rendezvous::address(Family::PIPE_WAIT, Scope::Global, &n);
            Ok((n, open, query))
        }
        crate::name::Name::RemotePipe { .. } => {
            Err(Error::BadNetPath("another host's pipe is reached by opening it (PipeClient::open, open_wait)"))
        }
        _ => Err(Error::InvalidName { name: name.to_owned(), why: "expected NAME or \\\\.\\pipe\\NAME" }),
    }
}

/// Where a mailslot's server answers (family `m`): machine-wide, as
/// classic mailslot names are. `folded` is the lower-cased name.
pub(crate) fn mailslot_address(folded: &str) -> Vec<u8> {
    rendezvous::address(Family::MAILSLOT, Scope::Global, folded)
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

/// What every holder of an object keeps and sends: the shared listener,
/// the object's descriptors and description.
#[derive(Debug)]
struct Published {
    listener: Arc<Listener>,
    fds: Vec<OwnedFd>,
    info: ObjectInfo,
}

impl Published {
    /// Sends the object (a granted reply and its descriptors) over `conn`.
    fn send(&self, conn: &Conn) -> Result<()> {
        let mut fds: Vec<BorrowedFd<'_>> = vec![self.listener.as_fd()];
        fds.extend(self.fds.iter().map(|f| f.as_fd()));
        rendezvous::wire::send(conn, Family::OBJECT, Status::Granted, &wire::encode(&self.info), &fds)
    }
}

impl Handler for Published {
    fn admit(&self, conn: Conn, _peer: Cred) {
        let _ = self.send(&conn);
    }
}

/// One process's handle on a named (or unnamed) object.
#[derive(Debug)]
pub(crate) struct Endpoint {
    published: Arc<Published>,
    _service: Service,
    /// Whether the object existed before this handle was made (00-S05).
    pub existed: bool,
}

impl Endpoint {
    fn publish(listener: Listener, fds: Vec<OwnedFd>, info: ObjectInfo, existed: bool) -> Result<Endpoint> {
        let listener = Arc::new(listener);
        let acl = info.acl.clone();
        let published = Arc::new(Published { listener: listener.clone(), fds, info });
        let service = Service::start(Family::OBJECT, listener, acl, published.clone())?;
        Ok(Endpoint { published, _service: service, existed })
    }

    pub fn info(&self) -> &ObjectInfo {
        &self.published.info
    }

    /// The object's own descriptor number `i` (after the listener).
    pub fn fd(&self, i: usize) -> Option<BorrowedFd<'_>> {
        self.published.fds.get(i).map(|f| f.as_fd())
    }

    /// The handle value other processes may take with `from_process`.
    pub fn handle(&self) -> HandleValue {
        HandleValue::of(&*self.published.listener)
    }

    /// Identity of the object across handles and processes (listener inode).
    pub fn identity(&self) -> u64 {
        self.published.listener.inode().unwrap_or(0)
    }

    /// The uid of the object's creator.
    pub fn owner_uid(&self) -> u32 {
        self.published.info.acl.owner_uid()
    }

    /// Sends the object over a connection (00-S08, fd passing).
    pub fn send(&self, conn: &Conn) -> Result<()> {
        self.published.send(conn)
    }
}

/// A holder's answer, checked: its description and descriptors.
struct Granted {
    info: ObjectInfo,
    listener: Listener,
    fds: Vec<OwnedFd>,
}

/// Checks a granted reply's body and descriptors. `expected`: the address
/// the listener must be bound at (`None`: any switchboard object address).
fn granted(body: &[u8], mut fds: Vec<OwnedFd>, expected: Option<&[u8]>) -> Result<Granted> {
    let info = wire::decode(body)?;
    if fds.is_empty() {
        return Err(Error::Malformed("an object reply without descriptors".into()));
    }
    let not_listener = |_| Error::Malformed("the object's listening socket is not a listening socket".into());
    let listener = Listener::adopt(fds.remove(0)).map_err(not_listener)?;
    let bound = listener.name().map_err(not_listener)?;
    let at_home = match expected {
        Some(addr) => bound == addr,
        None => bound.starts_with(PREFIX.as_bytes()),
    };
    if !at_home {
        return Err(Error::Malformed("the object's listening socket is bound elsewhere".into()));
    }
    Ok(Granted { info, listener, fds })
}

/// Connects to `addr` and receives the object, checking who answers and
/// what arrives.
fn hello(addr: &Address, deadline: Instant) -> Result<Granted, Failure> {
    let Answer { body, fds, .. } = rendezvous::connect(Family::OBJECT, &addr.bytes, deadline, addr.trust)?;
    let granted = granted(&body, fds, Some(&addr.bytes))?;
    if addr.scope.is_some() && (granted.info.name != addr.key || granted.info.scope != addr.scope) {
        return Err(Failure::Refused(Error::InvalidName {
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

/// Starts holding what a holder sent, if it is of kind `kind`.
fn adopt(kind: Kind, g: Granted) -> Result<Endpoint> {
    check_kind(kind, &g.info)?;
    Endpoint::publish(g.listener, g.fds, g.info, true)
}

/// What a creator supplies: the object's descriptors and description.
pub(crate) type Make<'a> = &'a mut dyn FnMut() -> Result<(Vec<OwnedFd>, ObjectInfo)>;

/// Creates the object at `addr`, or opens it if it exists (00-S05).
pub(crate) fn create_or_open(kind: Kind, addr: &Address, acl: &Acl, make: Make<'_>) -> Result<Endpoint> {
    let deadline = Instant::now() + OPEN_TIMEOUT;
    loop {
        if let Some(listener) = rendezvous::bind(&addr.bytes)? {
            let (fds, mut info) = make()?;
            info.acl = acl.clone().with_owner(switchboard_sys::process::uid());
            info.scope = addr.scope;
            info.name = addr.key.clone();
            return Endpoint::publish(listener, fds, info, false);
        }
        match hello(addr, deadline) {
            Ok(g) => return adopt(kind, g),
            // The last holder let go between our bind and our connect.
            Err(Failure::Absent | Failure::Vanished) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(Failure::Absent | Failure::Vanished) => return Err(Error::Timeout),
            Err(Failure::Refused(e)) => return Err(e),
        }
    }
}

/// Opens an existing object (00-S06: `NotFound` if there is none).
pub(crate) fn open(kind: Kind, addr: &Address) -> Result<Endpoint> {
    let deadline = Instant::now() + OPEN_TIMEOUT;
    loop {
        match hello(addr, deadline) {
            Ok(g) => return adopt(kind, g),
            Err(Failure::Vanished) if Instant::now() < deadline => continue,
            Err(other) => return Err(other.into_error(&addr.key)),
        }
    }
}

/// Receives an object another process sent with `send` (00-S08).
pub(crate) fn receive(kind: Kind, conn: &Conn, timeout: impl Into<crate::time::Deadline>) -> Result<Endpoint> {
    let deadline = timeout.into().instant();
    match rendezvous::receive(Family::OBJECT, conn, deadline) {
        Ok((body, fds)) => adopt(kind, granted(&body, fds, None)?),
        Err(Failure::Absent | Failure::Vanished) => Err(Error::BrokenPipe),
        Err(Failure::Refused(e)) => Err(e),
    }
}

/// Takes handle `handle` of process `pid` and opens the object it refers to
/// (00-S08, `pidfd_getfd`). The object's ACL applies as for any open.
pub(crate) fn take_from_process(kind: Kind, pid: u32, handle: HandleValue) -> Result<Endpoint> {
    let wrong = |found| Error::InvalidHandle { wanted: kind.as_str(), found };
    let listener =
        Listener::adopt(take_fd(pid, handle, kind.as_str())?).map_err(|_| wrong("another kind of descriptor"))?;
    let bytes = listener.name().map_err(|_| wrong("another kind of descriptor"))?;
    if !bytes.starts_with(PREFIX.as_bytes()) {
        return Err(wrong("a socket that is not a switchboard object"));
    }
    // The caller chose this process: whoever created the object is believed.
    let addr = Address { bytes, scope: None, key: String::new(), trust: Trust::Anyone };
    match hello(&addr, Instant::now() + OPEN_TIMEOUT) {
        Ok(g) => adopt(kind, g),
        Err(Failure::Refused(e)) => Err(e),
        Err(_) => Err(Error::NotFound(format!("handle {handle} of process {pid}"))),
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

/// How long [`list`] waits for each holder.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(2);
/// How many holders [`list`] asks at once.
const LIST_PARALLEL: usize = 16;

/// A name whose holder did not describe itself to [`listing`]: it did not
/// answer within [`LIST_TIMEOUT`], or answered with something that is not
/// a switchboard object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unanswered {
    /// The abstract socket address (`sb1/…`), as `/proc/net/unix` shows it.
    pub address: String,
    /// The processes holding it (other than the caller).
    pub holder_pids: Vec<u32>,
    /// What happened, for people.
    pub why: String,
}

/// What [`listing`] found: the objects that answered, and the names whose
/// holders did not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Every live named object visible to the caller, sorted.
    pub objects: Vec<ObjectEntry>,
    /// Object names whose holders stayed silent or answered garbage.
    pub unanswered: Vec<Unanswered>,
}

/// Lists every live named object visible to the caller: this user's Local
/// objects and the Global objects whose ACL admits the caller (00-S10).
/// Holders that do not answer are left out; [`listing`] reports them.
pub fn list() -> Vec<ObjectEntry> {
    listing().objects
}

/// [`list`], with the names whose holders did not answer. Each holder gets
/// its own [`LIST_TIMEOUT`], and up to 16 are asked at once, so a stopped
/// or hostile holder delays the listing by one timeout and hides nothing
/// else.
pub fn listing() -> Listing {
    let prefixes = [Scope::Local, Scope::Global].map(|s| rendezvous::family_prefix(Family::OBJECT, s));
    let found: Vec<_> = prefixes.iter().flat_map(|p| socket::list_abstract_listeners(p)).collect();
    let answers: Vec<Result<Option<ObjectInfo>, String>> = found
        .chunks(LIST_PARALLEL)
        .flat_map(|chunk| {
            std::thread::scope(|s| {
                let asks: Vec<_> = chunk.iter().map(|l| s.spawn(|| describe_holder(&l.name))).collect();
                asks.into_iter()
                    .map(|a| a.join().unwrap_or_else(|_| Err("the listing thread failed".into())))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let holders = holders_by_inode();
    let mut listing = Listing::default();
    for (l, answer) in found.iter().zip(answers) {
        let pids = holders.get(&l.inode).cloned().unwrap_or_default();
        match answer {
            Ok(Some(info)) => listing.objects.extend(entry(info, &pids)),
            // It went away while being listed: nothing to show.
            Ok(None) => {}
            Err(why) => listing.unanswered.push(Unanswered {
                address: String::from_utf8_lossy(&l.name).into_owned(),
                holder_pids: pids,
                why,
            }),
        }
    }
    listing.objects.extend(rendezvous_entries(Kind::Pipe, Scope::Global, &holders));
    listing.objects.extend(rendezvous_entries(Kind::Mailslot, Scope::Global, &holders));
    listing.objects.extend(rendezvous_entries(Kind::Receiver, Scope::Local, &holders));
    listing.objects.extend(rendezvous_entries(Kind::Receiver, Scope::Global, &holders));
    listing.objects.sort_by(|a, b| (a.scope as u8, &a.name, a.kind).cmp(&(b.scope as u8, &b.name, b.kind)));
    listing
}

/// Asks the holder at `address` to describe its object. Only what it says
/// about itself is read, never used: any owner may answer.
fn describe_holder(address: &[u8]) -> Result<Option<ObjectInfo>, String> {
    let addr = Address { bytes: address.to_vec(), scope: None, key: String::new(), trust: Trust::Anyone };
    match hello(&addr, Instant::now() + LIST_TIMEOUT) {
        Ok(g) => Ok(Some(g.info)),
        Err(Failure::Refused(e)) => Err(e.to_string()),
        Err(Failure::Absent | Failure::Vanished) => Ok(None),
    }
}

/// The entry for an object that described itself, held by `pids`.
fn entry(info: ObjectInfo, pids: &[u32]) -> Option<ObjectEntry> {
    let owner_pid = if switchboard_sys::process::is_alive(info.creator_pid) {
        info.creator_pid
    } else {
        pids.first().copied().unwrap_or(0)
    };
    Some(ObjectEntry { kind: info.kind, scope: info.scope?, name: info.name, owner_pid, holders: pids.len() })
}

/// Named pipes, mailslots and receivers of `scope`, from their rendezvous
/// names alone: the process bound to the name is the server. (A name too
/// long for an abstract address shows as its `#hash`.)
fn rendezvous_entries(kind: Kind, scope: Scope, holders: &HashMap<u64, Vec<u32>>) -> Vec<ObjectEntry> {
    let prefix = rendezvous::family_prefix(kind.family(), scope);
    socket::list_abstract_listeners(&prefix)
        .into_iter()
        .map(|l| {
            let pids = holders.get(&l.inode).map_or(&[][..], Vec::as_slice);
            ObjectEntry {
                kind,
                scope,
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
    fn acl_admits_owner_and_listed() {
        let acl = Acl::owner_only().allow(Principal::Gid(7)).with_owner(1000);
        assert!(acl.admits(&Cred { pid: 1, uid: 1000, gid: 1 }));
        assert!(acl.admits(&Cred { pid: 1, uid: 5, gid: 7 }));
        assert!(!acl.admits(&Cred { pid: 1, uid: 5, gid: 5 }));
        assert!(Acl::everyone().admits(&Cred { pid: 1, uid: 5, gid: 5 }));
    }
}
