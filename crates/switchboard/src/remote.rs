//! Reaching other machines (spec 13): how a process on this host asks its
//! host's gateway for `\\HOST\pipe\NAME` and `\\HOST\mailslot\NAME`.
//!
//! This crate never speaks the network protocol. The gateway
//! (`switchboard gateway`, the `switchboard-gateway` crate) is one process
//! per host and user, found through the rendezvous (family `g`, this
//! user's Local scope: only the user's own gateway is believed, and only
//! the user's own processes are admitted). Asked for a remote object, it
//! reaches HOST and answers with the name of a *local* object it created
//! for this one client and relays to HOST:
//! - a remote pipe: a private local pipe instance of the remote pipe's
//!   type, which the client then opens as any local pipe, so every pipe
//!   call (read modes, `MoreData`, peek, transact, timeouts) is the local
//!   one; bytes and messages travel on through the gateway;
//! - a remote mailslot: a private local mailslot whose every message the
//!   gateway sends to HOST (or to every host, for `\\*\mailslot\NAME`).
//!
//! So [`crate::pipe::named::PipeClient::open`] and
//! [`crate::mailslot::MailslotClient::open`] take remote names directly:
//!
//! ```no_run
//! use switchboard::pipe::named::PipeClient;
//! // With `switchboard gateway` running here and on host "b":
//! let pipe = PipeClient::open(r"\\b\pipe\orders")?;
//! pipe.write(b"one order")?;
//! # Ok::<(), switchboard::Error>(())
//! ```
//!
//! ## The wire to the gateway
//! After the rendezvous reply (granted, empty body), the client sends one
//! request and the gateway sends one reply, each a rendezvous message
//! whose body is MessagePack ([`Request`], [`Reply`]); the connection then
//! closes. A gateway that does not answer within the caller's deadline is
//! a `Timeout`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchboard_sys::socket::{Conn, Cred, Listener};

use crate::error::{Code, Error, Result};
use crate::name::Scope;
use crate::namespace::Acl;
use crate::rendezvous::{self, wire, Failure, Family, Handler, Service, Status, Trust};

/// How long a remote open waits for the far host by default.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// What a process asks its gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Open pipe `name` on `host`.
    OpenPipe {
        /// The host.
        host: String,
        /// The pipe's name (folded).
        name: String,
    },
    /// Open mailslot `name` on `host` for writing; `None`: every host.
    OpenMailslot {
        /// The host, `None` for `\\*`.
        host: Option<String>,
        /// The mailslot's name (folded).
        name: String,
    },
    /// What `host` exposes.
    List {
        /// The host.
        host: String,
    },
    /// The bindings that reach a server of an RPC interface on `host`
    /// from other hosts (08-S06).
    Lookup {
        /// The host.
        host: String,
        /// The interface's UUID.
        interface: String,
        /// The version the client speaks (major, minor).
        version: (u16, u16),
    },
}

/// One object a host exposes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposed {
    /// `pipe` or `mailslot`.
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// The gateway's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The local object to open.
    Opened {
        /// Its local name.
        local: String,
    },
    /// What the host exposes.
    Listed(Vec<Exposed>),
    /// RPC bindings (string bindings, as a client connects to them).
    Bindings(Vec<String>),
    /// The request failed: the classic code and a message.
    Failed {
        /// The Win32 code.
        code: u32,
        /// What failed.
        message: String,
    },
}

impl Reply {
    /// The reply that reports `error`.
    pub fn failed(error: &Error) -> Reply {
        Reply::Failed { code: error.win32(), message: error.to_string() }
    }
}

/// The error a [`Reply::Failed`] reports, as the variant its code names
/// where one exists, so a remote `NotFound` is a `NotFound` here.
pub fn error_from_code(code: u32, message: String) -> Error {
    match code {
        2 => Error::NotFound(message),
        5 => Error::AccessDenied(message),
        53 => Error::NetPath(message),
        121 => Error::Timeout,
        231 => Error::PipeBusy,
        109 => Error::BrokenPipe,
        1722 => Error::ServerUnavailable(message),
        1753 => Error::NotRegistered(message),
        _ => Error::Remote { code: Code::Win32(code), message },
    }
}

/// What a gateway does for this host's processes.
pub trait Gateway: Send + Sync {
    /// Reaches pipe `name` on `host` and returns the local pipe to open.
    ///
    /// # Errors
    /// As the remote open failed.
    fn open_pipe(&self, host: &str, name: &str, deadline: Instant) -> Result<String>;
    /// Returns the local mailslot whose messages go to `name` on `host`
    /// (`None`: every host).
    ///
    /// # Errors
    /// When the host cannot be reached.
    fn open_mailslot(&self, host: Option<&str>, name: &str, deadline: Instant) -> Result<String>;
    /// What `host` exposes.
    ///
    /// # Errors
    /// When the host cannot be reached.
    fn list(&self, host: &str, deadline: Instant) -> Result<Vec<Exposed>>;
    /// The bindings that reach a server of `interface` at a version
    /// compatible with `version` on `host`.
    ///
    /// # Errors
    /// When the host cannot be reached.
    fn lookup(&self, host: &str, interface: &str, version: (u16, u16), deadline: Instant) -> Result<Vec<String>>;
}

/// The rendezvous name of this user's gateway.
const GATEWAY_NAME: &str = "gateway";
/// Largest request a gateway reads.
const MAX_REQUEST: usize = 4096;

fn address() -> Vec<u8> {
    rendezvous::address(Family::GATEWAY, Scope::Local, GATEWAY_NAME)
}

/// A running gateway's local side: while it lives, this user's processes
/// reach other hosts through `gateway`.
pub struct GatewayService {
    _service: Service,
}

impl std::fmt::Debug for GatewayService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayService").finish_non_exhaustive()
    }
}

impl GatewayService {
    /// Serves this user's processes with `gateway`.
    ///
    /// # Errors
    /// `AlreadyExists` when this user already runs a gateway here.
    pub fn start(gateway: Arc<dyn Gateway>) -> Result<GatewayService> {
        let listener: Listener = rendezvous::bind_server(&address())?
            .ok_or_else(|| Error::AlreadyExists("this user's gateway (one runs already)".into()))?;
        let acl = Acl::default().with_owner(switchboard_sys::process::uid());
        let service = Service::start(Family::GATEWAY, Arc::new(listener), acl, Arc::new(Admit(gateway)))?;
        Ok(GatewayService { _service: service })
    }
}

struct Admit(Arc<dyn Gateway>);

impl Handler for Admit {
    fn admit(&self, conn: Conn, _peer: Cred) {
        if wire::send(&conn, Family::GATEWAY, Status::Granted, &[], &[]).is_err() {
            return;
        }
        let gateway = self.0.clone();
        // A request may wait on the network: never on the responder thread.
        let _ = std::thread::Builder::new().name("sb-gateway-ask".into()).spawn(move || answer(&*gateway, &conn));
    }
}

/// How much sooner than its client a gateway gives up on the far host, so
/// that the client hears why (53) rather than only that time ran out.
const GATEWAY_MARGIN: Duration = Duration::from_secs(2);

fn answer(gateway: &dyn Gateway, conn: &Conn) {
    let deadline = Instant::now() + OPEN_TIMEOUT - GATEWAY_MARGIN;
    let mut buf = vec![0u8; MAX_REQUEST];
    let Ok(Some((n, _))) = conn.recv(&mut buf, Some(deadline)) else { return };
    let reply = match rmp_serde::from_slice::<Request>(&buf[..n]) {
        Err(e) => Reply::failed(&Error::Malformed(format!("a gateway request: {e}"))),
        Ok(Request::OpenPipe { host, name }) => gateway
            .open_pipe(&host, &name, deadline)
            .map_or_else(|e| Reply::failed(&e), |local| Reply::Opened { local }),
        Ok(Request::OpenMailslot { host, name }) => gateway
            .open_mailslot(host.as_deref(), &name, deadline)
            .map_or_else(|e| Reply::failed(&e), |local| Reply::Opened { local }),
        Ok(Request::List { host }) => gateway.list(&host, deadline).map_or_else(|e| Reply::failed(&e), Reply::Listed),
        Ok(Request::Lookup { host, interface, version }) => {
            gateway.lookup(&host, &interface, version, deadline).map_or_else(|e| Reply::failed(&e), Reply::Bindings)
        }
    };
    if let Ok(body) = rmp_serde::to_vec(&reply) {
        let _ = wire::send(conn, Family::GATEWAY, Status::Granted, &body, &[]);
    }
}

/// What [`ask`] says when this user runs no gateway here.
pub(crate) fn no_gateway() -> Error {
    Error::NetPath("no gateway runs for this user on this host: start `switchboard gateway`".into())
}

/// Asks this user's gateway, within `timeout` (default [`OPEN_TIMEOUT`]).
///
/// # Errors
/// `NetPath` (53) when no gateway runs for this user; `Timeout`;
/// the gateway's own error.
pub fn ask(request: &Request, timeout: Option<Duration>) -> Result<Reply> {
    ask_if_running(request, timeout)?.ok_or_else(no_gateway)
}

/// As [`ask`]; `None` when no gateway runs for this user.
fn ask_if_running(request: &Request, timeout: Option<Duration>) -> Result<Option<Reply>> {
    let deadline = rendezvous::answer_deadline(Some(timeout.unwrap_or(OPEN_TIMEOUT)));
    let answer = match rendezvous::connect(Family::GATEWAY, &address(), deadline, Trust::User) {
        Ok(answer) => answer,
        Err(Failure::Absent | Failure::Vanished) => return Ok(None),
        Err(Failure::Refused(e)) => return Err(e),
    };
    let body = rmp_serde::to_vec(&request).map_err(|e| Error::Malformed(e.to_string()))?;
    if body.len() > MAX_REQUEST {
        return Err(Error::InvalidParameter("a gateway request over 4 KiB"));
    }
    answer.conn.send(&body, &[]).map_err(Error::sys)?;
    let (reply, _) = rendezvous::receive(Family::GATEWAY, &answer.conn, Some(deadline)).map_err(|f| match f {
        Failure::Absent | Failure::Vanished => Error::NetPath("the gateway closed without answering".into()),
        Failure::Refused(e) => e,
    })?;
    rmp_serde::from_slice(&reply).map(Some).map_err(|e| Error::Malformed(format!("a gateway reply: {e}")))
}

/// Asks the gateway to open a remote object; the local name to open, or
/// `None` when no gateway runs for this user.
pub(crate) fn open(request: &Request) -> Result<Option<String>> {
    match ask_if_running(request, None)? {
        None => Ok(None),
        Some(Reply::Opened { local }) => Ok(Some(local)),
        Some(other) => Err(unexpected(other)),
    }
}

/// The error a reply that is not the one asked for stands for.
fn unexpected(reply: Reply) -> Error {
    match reply {
        Reply::Failed { code, message } => error_from_code(code, message),
        _ => Error::Malformed("a gateway reply of another kind than asked".into()),
    }
}

/// What `host` exposes, asked through this user's gateway
/// (`switchboard ls --host HOST`).
///
/// # Errors
/// As [`ask`]; `NetPath` when the host does not answer.
pub fn list(host: &str) -> Result<Vec<Exposed>> {
    match ask(&Request::List { host: host.to_owned() }, None)? {
        Reply::Listed(objects) => Ok(objects),
        other => Err(unexpected(other)),
    }
}

/// The bindings that reach a server of RPC `interface` at a version
/// compatible with `version` on `host`, found by that host's endpoint
/// mapper through the gateways (08-S06); see `rpc::Client::find_on`.
///
/// # Errors
/// As [`ask`]; `NetPath` when the host does not answer.
pub fn lookup(host: &str, interface: &str, version: (u16, u16)) -> Result<Vec<String>> {
    let request = Request::Lookup { host: host.to_owned(), interface: interface.to_owned(), version };
    match ask(&request, None)? {
        Reply::Bindings(bindings) => Ok(bindings),
        other => Err(unexpected(other)),
    }
}
