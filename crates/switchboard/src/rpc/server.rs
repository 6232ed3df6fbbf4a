//! The server side: listens on bindings, serves each connection on a
//! thread of its own, and bounds the calls running at once.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::binding::{stream, Accepted, Binding, BoxLink, Listener};
use super::context::{self, Contexts};
use super::mapper::{self, Registered};
use super::mgmt::{self, ManagementInterface, ManagementServer, Served};
use super::wire::{self, FaultBody, Frame, InterfaceId, Kind, DEFAULT_MAX_FRAME, NIL};
use super::Interface;
use super::{compatible, rpc_fault, status, AuthLevel, Serve};
use crate::error::Result;
use crate::link::StreamLink;
use crate::time::Deadline;

/// Calls a server runs at once unless told otherwise.
pub const DEFAULT_MAX_CONCURRENT: usize = 64;

/// Builds a [`Server`]: the interfaces it serves and its limits.
pub struct ServerBuilder {
    served: HashMap<InterfaceId, Arc<dyn Serve>>,
    max_concurrent: usize,
    max_frame: usize,
    required: AuthLevel,
    #[cfg(feature = "tls")]
    tls: Option<super::tls::TlsServer>,
}

impl ServerBuilder {
    /// Serves an interface (a generated `…Server<T>`); a second
    /// implementation of the same interface replaces the first.
    #[must_use]
    pub fn serve(mut self, served: impl Serve) -> ServerBuilder {
        self.served.insert(served.interface().0, Arc::new(served));
        self
    }

    /// At most `n` calls run at once across all connections (at least 1);
    /// above that, calls wait and their connections are not read (S08).
    #[must_use]
    pub fn max_concurrent(mut self, n: usize) -> ServerBuilder {
        self.max_concurrent = n.max(1);
        self
    }

    /// The largest frame accepted (default 16 MiB); a larger one closes
    /// its connection (S12).
    #[must_use]
    pub fn max_frame(mut self, bytes: usize) -> ServerBuilder {
        self.max_frame = bytes;
        self
    }

    /// Requires at least `level` of every connection (S10; default
    /// `Connect`): a bind over a connection below it is refused with
    /// `AccessDenied` (5). `local:`, `unix:` and `pipe:` give `Privacy`;
    /// plain `tcp:` gives `None`, and `tcp:` with TLS (`ServerBuilder::tls`,
    /// feature `tls`) `Privacy` (see [`super::auth`]).
    #[must_use]
    pub fn auth_level(mut self, level: AuthLevel) -> ServerBuilder {
        self.required = level;
        self
    }

    /// Speaks mutual TLS on its `tcp:` bindings: clients must present a
    /// certificate the configured CA signed. A plain client is answered
    /// with `AccessDenied`.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: super::tls::TlsServer) -> ServerBuilder {
        self.tls = Some(tls);
        self
    }

    /// The server, not yet listening ([`Server::listen`]).
    pub fn build(mut self) -> Server {
        let mut served: Vec<Served> = self
            .served
            .values()
            .map(|s| {
                let (id, version) = s.interface();
                Served { uuid: id.to_string(), version, description: s.description().to_owned() }
            })
            .collect();
        let (id, version) = (ManagementInterface::ID, ManagementInterface::VERSION);
        served.push(Served { uuid: id.to_string(), version, description: ManagementInterface::DESCRIPTION.to_owned() });
        served.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        self.served.insert(id, Arc::new(ManagementServer(mgmt::Answer(served))));
        Server {
            shared: Arc::new(Shared {
                served: self.served.into_iter().collect(),
                max_frame: self.max_frame,
                required: self.required,
                #[cfg(feature = "tls")]
                tls: self.tls,
                permits: Permits::new(self.max_concurrent),
                stats: Counters::default(),
                closed: (Mutex::new(()), Condvar::new()),
            }),
            listening: Arc::new(Mutex::new(Vec::new())),
            registered: Mutex::new(Vec::new()),
            stop: Arc::new(AtomicBool::new(false)),
            accepting: Mutex::new(Vec::new()),
        }
    }
}

/// An RPC server: interfaces served on any number of bindings at once
/// (S05). Each binding has an accepting thread and each connection a
/// thread of its own. From its first listen, each interface is
/// registered with the endpoint mapper ([`super::mapper`]). Dropping the
/// server stops accepting and unregisters; open connections are served
/// until their clients leave.
pub struct Server {
    shared: Arc<Shared>,
    /// The bindings listened on, which the registrations answer with.
    listening: Arc<Mutex<Vec<Binding>>>,
    /// The endpoint mapper's registrations (S06), made at the first listen.
    registered: Mutex<Vec<Registered>>,
    /// Raised when the server is dropped: its accepting threads end.
    stop: Arc<AtomicBool>,
    /// Each binding's accepting thread, joined when the server is dropped.
    accepting: Mutex<Vec<(Binding, std::thread::JoinHandle<()>)>>,
}

impl Drop for Server {
    /// Stops accepting and unregisters; connections already open are
    /// served until their clients leave. Each accepting thread is woken
    /// by a connection of its own binding, sees the server gone, and ends,
    /// and is waited for: the names are free when this returns (a binding
    /// that cannot be reached to wake its thread keeps its name until the
    /// thread's next client).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.registered.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let accepting = std::mem::take(&mut *self.accepting.lock().unwrap_or_else(PoisonError::into_inner));
        for (binding, thread) in accepting {
            let wake = match &binding {
                Binding::Tcp { host, port } if matches!(host.as_str(), "0.0.0.0" | "[::]") => {
                    Binding::Tcp { host: "localhost".into(), port: *port }
                }
                other => other.clone(),
            };
            if wake.connect(Deadline::after(Duration::from_secs(1)), &super::ClientOptions::new()).is_ok() {
                let _ = thread.join();
            }
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("bindings", &self.bindings()).finish_non_exhaustive()
    }
}

impl Shared {
    fn served(&self, id: InterfaceId) -> Option<&Arc<dyn Serve>> {
        self.served.iter().find(|(i, _)| *i == id).map(|(_, s)| s)
    }
}

struct Shared {
    /// Few: looked through in order, no hashing on a call's path.
    served: Vec<(InterfaceId, Arc<dyn Serve>)>,
    max_frame: usize,
    required: AuthLevel,
    #[cfg(feature = "tls")]
    tls: Option<super::tls::TlsServer>,
    permits: Permits,
    stats: Counters,
    /// Notified when a connection closes (see [`Server::wait_idle`]).
    closed: (Mutex<()>, Condvar),
}

/// What a server has done, for tests and `switchboard rpc`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections open now.
    pub connections: usize,
    /// Calls answered (results and faults).
    pub calls: u64,
    /// The most calls that ran at once.
    pub peak_concurrent: usize,
    /// Context handles run down because their connection ended.
    pub rundowns: u64,
    /// Connections closed for a malformed or oversized frame.
    pub refused_frames: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicUsize,
    calls: AtomicU64,
    peak: AtomicUsize,
    rundowns: AtomicU64,
    refused: AtomicU64,
}

/// A counting semaphore: the calls that may run at once. Taking and
/// giving back a permit is one atomic operation while permits are free;
/// the lock and condition variable are for waiting when none is.
struct Permits {
    max: usize,
    free: AtomicUsize,
    /// Threads waiting (or about to) for a permit.
    waiting: AtomicUsize,
    lock: Mutex<()>,
    freed: Condvar,
}

struct Permit<'a>(&'a Shared);

impl Permits {
    fn new(n: usize) -> Permits {
        Permits {
            max: n,
            free: AtomicUsize::new(n),
            waiting: AtomicUsize::new(0),
            lock: Mutex::new(()),
            freed: Condvar::new(),
        }
    }

    /// Takes a permit if one is free; the calls running then, this one included.
    fn try_take(&self) -> Option<usize> {
        let before = self.free.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1)).ok()?;
        Some(self.max - (before - 1))
    }

    fn acquire<'a>(&self, shared: &'a Shared) -> Permit<'a> {
        let running = match self.try_take() {
            Some(running) => running,
            None => {
                let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
                // SYNC: SeqCst with `release`: either it sees this waiter (and
                // notifies under the lock) or this sees its permit.
                self.waiting.fetch_add(1, Ordering::SeqCst);
                let running = loop {
                    match self.try_take() {
                        Some(running) => break running,
                        None => guard = self.freed.wait(guard).unwrap_or_else(PoisonError::into_inner),
                    }
                };
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                running
            }
        };
        if running > shared.stats.peak.load(Ordering::Relaxed) {
            shared.stats.peak.fetch_max(running, Ordering::Relaxed);
        }
        Permit(shared)
    }

    fn release(&self) {
        self.free.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.freed.notify_one();
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.permits.release();
    }
}

impl Server {
    /// A builder: `Server::builder().serve(CalcServer(imp)).build()`.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            served: HashMap::new(),
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_frame: DEFAULT_MAX_FRAME,
            required: AuthLevel::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Starts serving on `binding`; the binding as listened (with the
    /// port picked for `tcp:HOST[0]`).
    ///
    /// # Errors
    /// `InvalidBinding`; the transport's (`AddrInUse`, `AccessDenied`…).
    pub fn listen(&self, binding: &str) -> Result<Binding> {
        let (listener, bound) = Binding::parse(binding)?.listen()?;
        let (shared, stop) = (self.shared.clone(), self.stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("rpc-accept {bound}"))
            .spawn(move || accept_loop(&listener, &shared, &stop))?;
        self.accepting.lock().unwrap_or_else(PoisonError::into_inner).push((bound.clone(), thread));
        self.listening.lock().unwrap_or_else(PoisonError::into_inner).push(bound.clone());
        let mut registered = self.registered.lock().unwrap_or_else(PoisonError::into_inner);
        if registered.is_empty() {
            for (_, served) in &self.shared.served {
                let (id, version) = served.interface();
                if id == ManagementInterface::ID {
                    continue;
                }
                registered.push(mapper::register(id, served.name(), version, self.listening.clone())?);
            }
        }
        Ok(bound)
    }

    /// The bindings listened on.
    pub fn bindings(&self) -> Vec<Binding> {
        self.listening.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The descriptions of the interfaces served (JSON, see
    /// [`super::Interface::DESCRIPTION`]).
    pub fn descriptions(&self) -> Vec<&'static str> {
        self.shared.served.iter().map(|(_, s)| s.description()).collect()
    }

    /// Waits until the server has answered calls and has no connection
    /// open (its clients came and went), at most `timeout`; whether it
    /// came to that. For a server whose work ends with its clients'.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        let (lock, closed) = &self.shared.closed;
        let mut guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let stats = self.stats();
            if stats.calls > 0 && stats.connections == 0 {
                return true;
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = closed.wait_timeout(guard, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// What the server has done so far.
    pub fn stats(&self) -> ServerStats {
        let c = &self.shared.stats;
        ServerStats {
            connections: c.connections.load(Ordering::Relaxed),
            calls: c.calls.load(Ordering::Relaxed),
            peak_concurrent: c.peak.load(Ordering::Relaxed),
            rundowns: c.rundowns.load(Ordering::Relaxed),
            refused_frames: c.refused.load(Ordering::Relaxed),
        }
    }
}

fn accept_loop(listener: &Listener, shared: &Arc<Shared>, stop: &AtomicBool) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            // The server was dropped; this was its wake-up call. The
            // listener goes with this thread, and its name with it.
            return;
        }
        match accepted {
            Ok(accepted) => {
                let shared = shared.clone();
                let spawned = std::thread::Builder::new().name("rpc-connection".into()).spawn(move || {
                    if let Some((link, level)) = open(accepted, &shared) {
                        Connection::new(link, level, &shared).serve();
                    }
                });
                if spawned.is_err() {
                    // Out of threads: the connection is dropped (its client
                    // sees the server unavailable); wait for some to end.
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            // A refused peer (another user) or one that went away while
            // connecting: nothing to do. Out of descriptors: give other
            // connections time to close rather than spin.
            Err(crate::Error::Io(_)) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => {}
        }
    }
}

/// Makes a connection of what a listener accepted: a plain TCP stream
/// gets its TLS handshake (or, to a TLS server, a refusal) here, on the
/// connection's thread, so a client that never sends delays no other.
fn open(accepted: Accepted, shared: &Shared) -> Option<(BoxLink, AuthLevel)> {
    let sock = match accepted {
        Accepted::Ready(link) => return Some((link, AuthLevel::Privacy)),
        Accepted::Tcp(sock) => sock,
    };
    #[cfg(feature = "tls")]
    if let Some(tls) = &shared.tls {
        return tls_open(sock, tls);
    }
    let _ = shared;
    Some((Box::new(stream(StreamLink::from_tcp(sock).ok()?)), AuthLevel::None))
}

/// A TLS server's connection: a TLS client's handshake; a plain client's
/// first frame is answered with `AccessDenied`.
#[cfg(feature = "tls")]
fn tls_open(sock: std::net::TcpStream, tls: &super::tls::TlsServer) -> Option<(BoxLink, AuthLevel)> {
    use crate::link::Link;
    // A TLS record starts with its content type: 22, a handshake.
    const HANDSHAKE: u8 = 0x16;
    let by = std::time::Instant::now() + crate::rendezvous::ANSWER_TIMEOUT;
    sock.set_read_timeout(Some(crate::rendezvous::ANSWER_TIMEOUT)).ok()?;
    let mut first = [0u8; 1];
    if sock.peek(&mut first).ok()? == 1 && first[0] == HANDSHAKE {
        let link = StreamLink::tls_server(sock, tls.0.clone(), by).ok()?;
        return Some((Box::new(stream(link)), AuthLevel::Privacy));
    }
    let mut plain = stream(StreamLink::from_tcp(sock).ok()?);
    let mut buf = Vec::new();
    plain.recv_deadline(&mut buf, Deadline::at(by)).ok()?;
    let frame = Frame::decode_lazy(&buf).ok()?;
    let fault = FaultBody::new(
        super::auth::ACCESS_DENIED,
        "this server speaks mutual TLS on tcp: (a client certificate is required)",
    );
    let mut out = Vec::new();
    if write_fault(&mut out, frame, &fault) {
        let _ = plain.send(&out);
    }
    None
}

/// Writes (over whatever `out` held) the fault frame that answers with
/// `fault` the frame whose header is `head`; `false` when the fault cannot
/// be written.
fn write_fault(out: &mut Vec<u8>, head: Frame<'_>, fault: &FaultBody) -> bool {
    out.clear();
    Frame { kind: Kind::Fault, context: None, body: NIL, ..head }.encode_header(out);
    wire::write_body(out, fault).is_ok()
}

/// One client's connection, on its own thread.
struct Connection<'a> {
    link: BoxLink,
    /// The authentication level the connection gives.
    level: AuthLevel,
    shared: &'a Shared,
    contexts: Arc<Contexts>,
    /// The interfaces this client bound.
    bound: Vec<InterfaceId>,
    out: Vec<u8>,
}

impl<'a> Connection<'a> {
    fn new(link: BoxLink, level: AuthLevel, shared: &'a Shared) -> Connection<'a> {
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        Connection { link, level, shared, contexts: Arc::new(Contexts::new()), bound: Vec::new(), out: Vec::new() }
    }

    /// Serves calls until the client leaves or sends a bad frame.
    fn serve(mut self) {
        let _serving = context::serving(&self.contexts);
        let mut buf = Vec::new();
        while self.link.recv_deadline(&mut buf, Deadline::NEVER).is_ok() {
            let frame = match buf.len() <= self.shared.max_frame {
                true => Frame::decode_lazy(&buf),
                false => Err(crate::Error::Malformed("an oversized frame".into())),
            };
            let Ok(frame) = frame else {
                self.shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                break;
            };
            let answered = match frame.kind {
                Kind::Bind => self.answer(&frame, Kind::BindAck, |c, out| {
                    c.bind(&frame)?;
                    out.extend_from_slice(NIL);
                    Ok(())
                }),
                Kind::Request => self.answer(&frame, Kind::Response, |c, out| c.call(&frame, out)),
                // Calls run in order: a cancel arrives after its call ran.
                Kind::Cancel => continue,
                _ => {
                    self.shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            };
            if !answered {
                break;
            }
        }
    }

    fn bind(&mut self, frame: &Frame<'_>) -> std::result::Result<(), FaultBody> {
        if self.level < self.shared.required {
            let refused = super::auth::too_low(self.level, self.shared.required, "this server");
            return Err(FaultBody::new(super::auth::ACCESS_DENIED, refused));
        }
        match self.shared.served(frame.interface).map(|s| s.interface().1) {
            Some(version) if compatible(frame.version, version) => {
                if !self.bound.contains(&frame.interface) {
                    self.bound.push(frame.interface);
                }
                Ok(())
            }
            Some((major, minor)) => Err(rpc_fault(
                status::UNKNOWN_IF,
                format!(
                    "interface {} is served at version {major}.{minor}, not compatible with {}.{}",
                    frame.interface, frame.version.0, frame.version.1
                ),
            )),
            None => Err(rpc_fault(status::UNKNOWN_IF, format!("interface {} is not served here", frame.interface))),
        }
    }

    fn call(&mut self, frame: &Frame<'_>, out: &mut Vec<u8>) -> std::result::Result<(), FaultBody> {
        let Some(served) = self.shared.served(frame.interface).filter(|_| self.bound.contains(&frame.interface)) else {
            return Err(rpc_fault(
                status::UNKNOWN_IF,
                format!("interface {} is not bound on this connection", frame.interface),
            ));
        };
        let _permit = self.shared.permits.acquire(self.shared);
        let ran = catch_unwind(AssertUnwindSafe(|| served.dispatch(frame.opnum, frame.body, out)));
        ran.unwrap_or_else(|_| Err(rpc_fault(status::CALL_FAILED, "the server's method panicked")))
    }

    /// Answers `frame` with a frame of `kind` whose body `run` writes, or
    /// with the fault `run` gives; `false` when the connection is gone.
    fn answer(
        &mut self,
        frame: &Frame<'_>,
        kind: Kind,
        run: impl FnOnce(&mut Self, &mut Vec<u8>) -> std::result::Result<(), FaultBody>,
    ) -> bool {
        self.shared.stats.calls.fetch_add(1, Ordering::Relaxed);
        let version = match kind {
            Kind::BindAck => self.shared.served(frame.interface).map_or(frame.version, |s| s.interface().1),
            _ => frame.version,
        };
        let head = Frame {
            kind,
            call_id: frame.call_id,
            interface: frame.interface,
            version,
            opnum: frame.opnum,
            context: None,
            body: NIL,
        };
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        head.encode_header(&mut out);
        let max = self.link.max_message();
        let outcome = run(self, &mut out).and_then(|()| match out.len() <= max {
            true => Ok(()),
            // A result too large for the binding fails that call only.
            false => Err(rpc_fault(status::CALL_FAILED, format!("the result is over the binding's {max} bytes"))),
        });
        if let Err(fault) = outcome {
            if !write_fault(&mut out, head, &fault) {
                out.clear();
            }
        }
        let sent = !out.is_empty() && self.link.send(&out).is_ok();
        self.out = out;
        sent
    }
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        let n = self.contexts.run_down();
        self.shared.stats.rundowns.fetch_add(n as u64, Ordering::Relaxed);
        let _guard = self.shared.closed.0.lock().unwrap_or_else(PoisonError::into_inner);
        self.shared.stats.connections.fetch_sub(1, Ordering::Relaxed);
        self.shared.closed.1.notify_all();
    }
}
