//! A host's gateway: what it serves to other hosts, and what it does for
//! this host's processes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard::mailslot::{MailslotClient, MailslotOptions, MAX_BROADCAST};
use switchboard::namespace::Kind;
use switchboard::pipe::named::{PipeAccess, PipeClient, PipeOptions, PipeServer, PipeType, ReadMode};
use switchboard::remote::{error_from_code, Exposed, GatewayService};
use switchboard::rpc::mapper::resolve;
use switchboard::rpc::wire::InterfaceId;
use switchboard::rpc::Binding;
use switchboard::{Error, Result};

use crate::backend::{Backend, Guard, Query};
use crate::keys;
use crate::proto::{LookupReply, OpenReply, OpenRequest, WINDOW};
use crate::relay::Relay;

/// Prefix of the private local objects a gateway relays (never listed).
const PRIVATE: &str = "sbgw-";
/// Each direction's buffer of a private relay pipe: a large message
/// crosses it in few chunks.
const PRIVATE_BUFFER: usize = 1 << 20;
/// Largest message to one host's mailslot (the local relay's size).
const MAILSLOT_MAX: usize = 64 * 1024;
/// Most mailslot relays one gateway keeps (one per target).
const MAX_MAILSLOT_RELAYS: usize = 1024;
/// Mailslot messages from the network waiting for their local write.
const MAIL_BACKLOG: usize = 4096;
/// How long one try of a query waits for answers.
const QUERY_TRY: Duration = Duration::from_millis(1000);
/// Most queries from other hosts (and programs on the keys) answered at
/// once. Each runs on a thread of its own for as long as its local open
/// may take (up to the rendezvous' answer timeout, 10 s, when the pipe's
/// server does not answer); past this many, an open is answered busy at
/// once and a listing or lookup not at all (its asker retries until its
/// deadline), so a flood costs this many threads, not one per query.
pub const MAX_QUERIES: usize = 64;

/// A running gateway.
pub struct Gateway {
    inner: Arc<Inner>,
    _served: Vec<Guard>,
    _local: Option<GatewayService>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("host", &self.inner.host).finish_non_exhaustive()
    }
}

struct Inner {
    backend: Arc<dyn Backend>,
    host: String,
    /// Mailslot relays by (host, name): their private local names.
    mailslot_relays: Mutex<HashMap<(Option<String>, String), String>>,
    /// Queries being answered now (at most [`MAX_QUERIES`]).
    queries: AtomicUsize,
}

impl Gateway {
    /// Starts the gateway of `host` on `backend`: exposes this host's pipes
    /// and mailslots and, with `serve_local`, serves this user's processes
    /// ([`switchboard::remote`]).
    ///
    /// # Errors
    /// `InvalidParameter` for a bad host name; `AlreadyExists` when this
    /// user runs a gateway here already; the backend's errors.
    pub fn start(backend: Arc<dyn Backend>, host: &str, serve_local: bool) -> Result<Gateway> {
        let host = keys::host(host)?;
        let inner = Arc::new(Inner {
            backend: backend.clone(),
            host: host.clone(),
            mailslot_relays: Mutex::default(),
            queries: AtomicUsize::new(0),
        });
        let local = if serve_local { Some(GatewayService::start(inner.clone())?) } else { None };
        let mut served = Vec::new();
        let (mail_tx, mail_rx) = sync_channel(MAIL_BACKLOG);
        std::thread::Builder::new().name("sb-gw-mail".into()).spawn(move || deliver_mail(&mail_rx))?;
        served.push(backend.subscribe(&keys::every_mailslot(&host), mail_handler(mail_tx))?);
        let me = inner.clone();
        served.push(backend.serve(&keys::every_pipe(&host), Box::new(move |q| me.answer(q, Some(busy), Inner::open)))?);
        let me = inner.clone();
        served.push(backend.serve(&keys::ls(&host), Box::new(move |q| me.answer(q, None, |_, q| answer_ls(q))))?);
        let me = inner.clone();
        served.push(backend.serve(&keys::every_rpc(&host), Box::new(move |q| me.answer(q, None, Inner::lookup)))?);
        // Last: a peer that sees the token finds everything above served.
        served.push(backend.token(&keys::gateway(&host))?);
        Ok(Gateway { inner, _served: served, _local: local })
    }

    /// The host's name (folded).
    pub fn host(&self) -> &str {
        &self.inner.host
    }
}

fn spawn(f: impl FnOnce() + Send + 'static) {
    let _ = std::thread::Builder::new().name("sb-gw-query".into()).spawn(f);
}

/// An open refused for the query cap: busy, which a client's wait retries.
fn busy() -> Vec<u8> {
    let message = format!("the gateway answers {MAX_QUERIES} queries at once already");
    rmp_serde::to_vec_named(&OpenReply { code: 231, message, message_mode: false, access: 0, window: 0 })
        .unwrap_or_default()
}

/// Counts a query being answered until dropped (also when its thread
/// could not start and the closure holding it is dropped unrun).
struct Answering(Arc<Inner>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.queries.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Puts from the network into the local mailslot they name, off the
/// backend's thread; a full backlog drops (a mailslot write is a datagram).
fn mail_handler(tx: SyncSender<(String, Vec<u8>)>) -> Box<dyn Fn(crate::backend::Sample) + Send + Sync> {
    Box::new(move |s| {
        let Some((name, every_host)) = keys::object_of(&s.key) else { return };
        if every_host && s.payload.len() > MAX_BROADCAST {
            return; // a domain broadcast is at most 424 bytes (03-S11)
        }
        if name.starts_with(PRIVATE) {
            return;
        }
        let _ = tx.try_send((name, s.payload));
    })
}

fn deliver_mail(rx: &Receiver<(String, Vec<u8>)>) {
    let mut open: HashMap<String, MailslotClient> = HashMap::new();
    while let Ok((name, message)) = rx.recv() {
        if open.len() > MAX_MAILSLOT_RELAYS {
            open.clear();
        }
        for _ in 0..2 {
            let client = match open.get(&name) {
                Some(c) => c,
                // Always a local name: a peer's `\\c\mailslot\x` must not
                // make this gateway relay on (or broadcast back).
                None => match MailslotClient::open(&format!(r"\\.\mailslot\{name}")) {
                    Ok(c) => open.entry(name.clone()).or_insert(c),
                    Err(_) => break, // no such mailslot here: dropped, as on the network
                },
            };
            match client.write(&message) {
                Err(Error::NotFound(_)) => {
                    open.remove(&name); // its server left; a new one may be there
                }
                _ => break,
            }
        }
    }
}

fn answer_ls(q: Box<dyn Query>) {
    let me = owner_uid(std::process::id());
    let objects: Vec<Exposed> = switchboard::namespace::list()
        .into_iter()
        .filter(|o| matches!(o.kind, Kind::Pipe | Kind::Mailslot) && !o.name.starts_with(PRIVATE))
        .filter(|o| owner_uid(o.owner_pid) == me)
        .map(|o| Exposed { kind: o.kind.as_str().to_owned(), name: o.name })
        .collect();
    q.reply(rmp_serde::to_vec_named(&objects).unwrap_or_default());
}

fn owner_uid(pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

/// The first answer to `key` before `deadline`, asking again while none
/// comes (a query right after a start or a reconnect can find nobody yet).
fn ask(backend: &dyn Backend, key: &str, payload: &[u8], deadline: Instant, host: &str) -> Result<Vec<u8>> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::NetPath(format!("host {host} does not answer (is its gateway running and linked?)")));
        }
        if let Some(first) = backend.query(key, payload.to_vec(), left.min(QUERY_TRY))?.into_iter().next() {
            return Ok(first);
        }
        std::thread::sleep(Duration::from_millis(50).min(deadline.saturating_duration_since(Instant::now())));
    }
}

impl Inner {
    /// Answers a query from the network with `answer` on a thread of its
    /// own, or, with [`MAX_QUERIES`] being answered already, at once with
    /// `busy` (on the backend's thread: no thread, no wait) or not at all.
    fn answer(
        self: &Arc<Self>,
        q: Box<dyn Query>,
        busy: Option<fn() -> Vec<u8>>,
        answer: impl FnOnce(&Inner, Box<dyn Query>) + Send + 'static,
    ) {
        if self.queries.fetch_add(1, Ordering::SeqCst) >= MAX_QUERIES {
            self.queries.fetch_sub(1, Ordering::SeqCst);
            if let Some(busy) = busy {
                q.reply(busy());
            }
            return;
        }
        let answering = Answering(self.clone());
        spawn(move || answer(&answering.0, q));
    }

    /// A pipe open from another host.
    fn open(&self, q: Box<dyn Query>) {
        let reply = self.open_for_peer(q.key(), q.payload()).unwrap_or_else(|e| OpenReply {
            code: e.win32(),
            message: e.to_string(),
            message_mode: false,
            access: 0,
            window: 0,
        });
        q.reply(rmp_serde::to_vec_named(&reply).unwrap_or_default());
    }

    fn open_for_peer(&self, key: &str, payload: &[u8]) -> Result<OpenReply> {
        let (name, _) = keys::object_of(key).ok_or_else(|| Error::Malformed(format!("a pipe key {key:?}")))?;
        let req: OpenRequest =
            rmp_serde::from_slice(payload).map_err(|e| Error::Malformed(format!("an open request: {e}")))?;
        if !keys::is_id(&req.id) {
            return Err(Error::Malformed("a connection id is 32 lower-case hex digits".into()));
        }
        if name.starts_with(PRIVATE) {
            return Err(Error::NotFound(name));
        }
        // Always a local name: a peer's `\\c\pipe\x` must not make this
        // gateway open on through another.
        let pipe = PipeClient::open_for_remote(&format!(r"\\.\pipe\{name}"))?;
        let message_mode = pipe.pipe_type() == PipeType::Message;
        if message_mode {
            pipe.set_read_mode(ReadMode::Message)?;
        }
        let access = pipe.access();
        let relay = Relay::new(self.backend.clone(), keys::conn(&self.host, &req.id, "s"), WINDOW, req.window);
        let listened = relay.hear(&keys::conn(&self.host, &req.id, "c")).and_then(|()| {
            relay.end_when_gone(&keys::conn(&self.host, &req.id, "client"), "the client's host is gone".into())
        });
        if let Err(e) = listened {
            relay.abandon();
            return Err(e);
        }
        relay.run(pipe, access != PipeAccess::Inbound, access != PipeAccess::Outbound);
        Ok(OpenReply { code: 0, message: String::new(), message_mode, access: access as u8, window: WINDOW })
    }
}

/// The bindings of `found` another host can use to reach them: pipes
/// through the gateways as `\\HOST\pipe\NAME`, then TCP on an address
/// that is neither loopback nor unspecified (the others cannot be reached).
fn reachable(found: Vec<Binding>, host: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in &found {
        if let Binding::Pipe(name) = b {
            let bare = name.rsplit('\\').next().unwrap_or(name);
            out.push(format!(r"pipe:\\{host}\pipe\{bare}"));
        }
    }
    for b in found {
        if let Binding::Tcp { host: h, .. } = &b {
            let ip = h.parse::<std::net::IpAddr>().ok();
            if h != "localhost" && !ip.is_some_and(|ip| ip.is_loopback() || ip.is_unspecified()) {
                out.push(b.to_string());
            }
        }
    }
    out
}

impl Inner {
    /// Opens pipe `name` on `host` for `relay` (connection `id`) and makes
    /// the private local instance this host's client opens.
    fn open_relayed(
        &self,
        relay: &Arc<Relay>,
        host: &str,
        id: &str,
        name: &str,
        deadline: Instant,
    ) -> Result<(PipeServer, PipeAccess)> {
        // Heard and held before the query: the far side may answer at once.
        relay.hear(&keys::conn(host, id, "s"))?;
        relay.keep(self.backend.token(&keys::conn(host, id, "client"))?);
        let request = rmp_serde::to_vec_named(&OpenRequest { id: id.to_owned(), window: WINDOW })
            .map_err(|e| Error::Malformed(e.to_string()))?;
        let answer = ask(&*self.backend, &keys::pipe(host, name), &request, deadline, host)?;
        let reply: OpenReply =
            rmp_serde::from_slice(&answer).map_err(|e| Error::Malformed(format!("an open reply: {e}")))?;
        if reply.code != 0 {
            return Err(error_from_code(reply.code, reply.message));
        }
        relay.set_peer_window(reply.window);
        relay.end_when_gone(&keys::gateway(host), format!("the gateway of host {host} is gone"))?;
        let access = PipeAccess::try_from(reply.access)?;
        let (pipe_type, read_mode) =
            if reply.message_mode { (PipeType::Message, ReadMode::Message) } else { (PipeType::Byte, ReadMode::Byte) };
        let server = PipeOptions::new()
            .pipe_type(pipe_type)
            .read_mode(read_mode)
            .access(access)
            .max_instances(1)
            .buffer(PRIVATE_BUFFER)
            .create(&format!("{PRIVATE}{id}"))?;
        Ok((server, access))
    }

    /// An RPC lookup from another host: this host's endpoint mapper.
    fn lookup(&self, q: Box<dyn Query>) {
        let found = keys::object_of(q.key())
            .ok_or_else(|| Error::Malformed("an rpc key".into()))
            .and_then(|(uuid, _)| InterfaceId::parse(&uuid))
            .and_then(|id| {
                let version: (u16, u16) = rmp_serde::from_slice(q.payload())
                    .map_err(|e| Error::Malformed(format!("a lookup's version: {e}")))?;
                resolve(id, version)
            });
        let reply = match found {
            Ok(found) => LookupReply { code: 0, message: String::new(), bindings: reachable(found, &self.host) },
            Err(e) => LookupReply { code: e.win32(), message: e.to_string(), bindings: Vec::new() },
        };
        q.reply(rmp_serde::to_vec_named(&reply).unwrap_or_default());
    }
}

impl switchboard::remote::Gateway for Inner {
    fn open_pipe(&self, host: &str, name: &str, deadline: Instant) -> Result<String> {
        let host = keys::host(host)?;
        let id = keys::new_id();
        let relay = Relay::new(self.backend.clone(), keys::conn(&host, &id, "c"), WINDOW, WINDOW);
        match self.open_relayed(&relay, &host, &id, name, deadline) {
            Ok((server, access)) => {
                spawn(move || match server.connect_timeout(deadline + Duration::from_secs(5)) {
                    Ok(_) => relay.run(server, access != PipeAccess::Outbound, access != PipeAccess::Inbound),
                    Err(_) => relay.abandon(),
                });
                Ok(format!("{PRIVATE}{id}"))
            }
            Err(e) => {
                relay.abandon();
                Err(e)
            }
        }
    }

    fn open_mailslot(&self, host: Option<&str>, name: &str, deadline: Instant) -> Result<String> {
        let host = host.map(keys::host).transpose()?;
        if let Some(h) = &host {
            // Reachable now, or a clear error (the writes are datagrams).
            ask(&*self.backend, &keys::ls(h), &[], deadline, h)?;
        }
        let mut relays = self.mailslot_relays.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(local) = relays.get(&(host.clone(), name.to_owned())) {
            return Ok(local.clone());
        }
        if relays.len() >= MAX_MAILSLOT_RELAYS {
            return Err(Error::NetPath("this gateway relays to 1024 mailslots already".into()));
        }
        let local = format!("{PRIVATE}m-{}", keys::new_id());
        let max = if host.is_some() { MAILSLOT_MAX } else { MAX_BROADCAST };
        let slot = MailslotOptions::new().max_message_size(max).create(&local)?;
        let (backend, key) = (self.backend.clone(), keys::mailslot(host.as_deref(), name));
        std::thread::Builder::new().name("sb-gw-mailslot".into()).spawn(move || {
            let mut buf = vec![0u8; max];
            while let Ok(n) = slot.read(&mut buf) {
                let _ = backend.put(&key, buf[..n].to_vec());
            }
        })?;
        relays.insert((host, name.to_owned()), local.clone());
        Ok(local)
    }

    fn lookup(&self, host: &str, interface: &str, version: (u16, u16), deadline: Instant) -> Result<Vec<String>> {
        let host = keys::host(host)?;
        let payload = rmp_serde::to_vec(&version).map_err(|e| Error::Malformed(e.to_string()))?;
        let answer = ask(&*self.backend, &keys::rpc(&host, interface), &payload, deadline, &host)?;
        let reply: LookupReply =
            rmp_serde::from_slice(&answer).map_err(|e| Error::Malformed(format!("a lookup reply: {e}")))?;
        match (reply.code, reply.bindings.is_empty()) {
            (0, false) => Ok(reply.bindings),
            (0, true) => {
                Err(Error::NotRegistered(format!("{interface} on {host}, at a binding other hosts can reach")))
            }
            (code, _) => Err(error_from_code(code, reply.message)),
        }
    }

    fn list(&self, host: &str, deadline: Instant) -> Result<Vec<Exposed>> {
        let host = keys::host(host)?;
        let answer = ask(&*self.backend, &keys::ls(&host), &[], deadline, &host)?;
        rmp_serde::from_slice(&answer).map_err(|e| Error::Malformed(format!("a listing: {e}")))
    }
}
