//! The endpoint mapper (S06): which servers of this user serve an
//! interface, at which version, on which bindings.
//!
//! There is no mapper process. A [`super::Server`] registers each
//! interface it serves as a rendezvous service of the endpoint family,
//! named `<uuid>.<pid>.<n>`, which answers a lookup with the version and
//! the bindings the server listens on. The name lives as long as the
//! server (its socket): a server that exits or is killed is unregistered
//! by the kernel, and nothing is left behind. [`lookup`] lists the names
//! (`/proc/net/unix`) and asks each; only this user's registrations are
//! believed (`SO_PEERCRED`), and each answer is awaited at most
//! [`LOOKUP_TIMEOUT`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchboard_sys::socket::{Conn, Cred};

use super::binding::Binding;
use super::wire::InterfaceId;
use crate::error::{Error, Result};
use crate::name::Scope;
use crate::namespace::Acl;
use crate::rendezvous::{self, Family, Handler, Service, Status, Trust};

/// How long a lookup waits for one registration's answer.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// One server's registration of an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The interface.
    pub interface: InterfaceId,
    /// The trait's name.
    pub name: String,
    /// The version served.
    pub version: (u16, u16),
    /// The server's process (as the kernel reports the registration's owner).
    pub pid: u32,
    /// Where it listens.
    pub endpoints: Vec<Binding>,
}

/// What a registration answers.
#[derive(Serialize, Deserialize)]
struct Answer {
    name: String,
    version: (u16, u16),
    endpoints: Vec<String>,
}

/// A server's registration of one interface: answers lookups while it lives.
pub(crate) struct Registered {
    _service: Service,
}

struct Registrar {
    name: &'static str,
    version: (u16, u16),
    endpoints: Arc<Mutex<Vec<Binding>>>,
}

impl Handler for Registrar {
    fn admit(&self, conn: Conn, _peer: Cred) {
        let mut endpoints: Vec<String> =
            self.endpoints.lock().unwrap_or_else(PoisonError::into_inner).iter().map(ToString::to_string).collect();
        // The answer fits a rendezvous reply: the last bindings give way.
        let body = loop {
            let answer = Answer { name: self.name.to_owned(), version: self.version, endpoints: endpoints.clone() };
            match rmp_serde::to_vec(&answer) {
                Ok(b) if b.len() + 16 <= rendezvous::wire::MAX_REPLY || endpoints.is_empty() => break b,
                Ok(_) => drop(endpoints.pop()),
                Err(_) => return,
            }
        };
        let _ = rendezvous::wire::send(&conn, Family::ENDPOINT, Status::Granted, &body, &[]);
    }
}

/// Registers `interface` (named `name`, at `version`) as served on the
/// bindings `endpoints` holds (now and as it grows).
pub(crate) fn register(
    interface: InterfaceId,
    name: &'static str,
    version: (u16, u16),
    endpoints: Arc<Mutex<Vec<Binding>>>,
) -> Result<Registered> {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let unique = format!("{interface}.{}.{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let addr = rendezvous::address(Family::ENDPOINT, Scope::Local, &unique);
    let listener = rendezvous::bind_server(&addr)?.ok_or_else(|| Error::Io(std::io::ErrorKind::AddrInUse.into()))?;
    let registrar = Arc::new(Registrar { name, version, endpoints });
    let service = Service::start(Family::ENDPOINT, Arc::new(listener), Acl::owner_only(), registrar)?;
    Ok(Registered { _service: service })
}

/// This user's registrations of `interface` (of every interface: `None`),
/// as their servers answer now.
pub fn lookup(interface: Option<InterfaceId>) -> Vec<Registration> {
    let family = rendezvous::family_prefix(Family::ENDPOINT, Scope::Local);
    let mut prefix = family.clone();
    if let Some(id) = interface {
        prefix.extend_from_slice(format!("{id}.").as_bytes());
    }
    let mut found: Vec<Registration> = switchboard_sys::socket::list_abstract_listeners(&prefix)
        .into_iter()
        .filter_map(|l| ask(&l.name, &l.name[family.len()..]))
        .collect();
    found.sort_by_key(|r| (r.interface, std::cmp::Reverse(r.version), r.pid));
    found
}

/// Asks the registration at `addr` (its name `name`).
fn ask(addr: &[u8], name: &[u8]) -> Option<Registration> {
    let interface = InterfaceId::parse(std::str::from_utf8(name.get(..36)?).ok()?).ok()?;
    let answer = rendezvous::connect(Family::ENDPOINT, addr, Instant::now() + LOOKUP_TIMEOUT, Trust::User).ok()?;
    let body: Answer = rmp_serde::from_slice(&answer.body).ok()?;
    Some(Registration {
        interface,
        name: body.name,
        version: body.version,
        pid: answer.owner.pid,
        endpoints: body.endpoints.iter().filter_map(|e| Binding::parse(e).ok()).collect(),
    })
}

/// The binding to reach a server of `interface` at `version` by: the
/// newest compatible registration's, preferring the fastest transport
/// (`local:`, then `unix:`, `pipe:`, `tcp:`).
///
/// # Errors
/// `NotRegistered` (1753) when no server of this user registered it at a
/// compatible version.
pub fn resolve(interface: InterfaceId, version: (u16, u16)) -> Result<Vec<Binding>> {
    let rank = |b: &Binding| match b {
        Binding::Local(_) => 0,
        Binding::Unix(_) => 1,
        Binding::Pipe(_) => 2,
        Binding::Tcp { .. } => 3,
    };
    let mut candidates: Vec<Binding> = lookup(Some(interface))
        .into_iter()
        .filter(|r| super::compatible(version, r.version))
        .flat_map(|r| r.endpoints)
        .collect();
    candidates.sort_by_key(rank);
    match candidates.is_empty() {
        true => Err(Error::NotRegistered(format!("{interface} {}.{}", version.0, version.1))),
        false => Ok(candidates),
    }
}
