//! The client side of a connection: binds interfaces, sends calls, and
//! matches the answers to them by call id.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::binding::{Binding, BoxLink};
use super::wire::{self, FaultBody, Frame, InterfaceId, Kind, NIL};
use super::{AuthLevel, Interface, RemoteError};
use crate::error::{Error, Result};
use crate::time::Deadline;

/// How a client connects: the authentication level it requires of the
/// binding (default `None`: it talks to what it was pointed at), and its
/// TLS for `tcp:` bindings (feature `tls`).
#[derive(Clone, Debug)]
pub struct ClientOptions {
    auth_level: AuthLevel,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<super::tls::TlsClient>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            auth_level: AuthLevel::None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ClientOptions {
    /// The defaults: no level required, no TLS.
    pub fn new() -> ClientOptions {
        ClientOptions::default()
    }

    /// Requires at least `level` of the binding; a binding below it is
    /// `AccessDenied` before anything is sent.
    #[must_use]
    pub fn auth_level(mut self, level: AuthLevel) -> ClientOptions {
        self.auth_level = level;
        self
    }

    /// Speaks mutual TLS on `tcp:` bindings.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: super::tls::TlsClient) -> ClientOptions {
        self.tls = Some(tls);
        self
    }

    fn has_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }
}

/// A call begun with [`Client::start`], to [`Client::finish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallId(pub u64);

/// The call timeout a client starts with.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How a call ended, kept for a caller who has not taken it yet.
enum Answer {
    Result(Vec<u8>, (u16, u16)),
    Fault(FaultBody),
}

/// How a call ended: a result's body (and the frame's version: a bind's
/// answer is the server's), or the server's fault.
enum Answered<'a> {
    Result(&'a [u8], (u16, u16)),
    Fault(FaultBody),
}

/// A connection to an RPC server, shared by the threads that call on it
/// (`&self` everywhere). Calls on it are sent in order; the answers are
/// matched to them by call id, so several may be in flight at once
/// ([`Client::start`], [`Client::finish`]).
///
/// The connection is one link, read by one caller at a time: a thread
/// waiting for its answer holds the connection, and reads the answers of
/// other calls that arrive first, keeping them for their callers.
pub struct Client {
    binding: Binding,
    state: Mutex<State>,
    timeout_ms: AtomicU64,
    /// The thread that makes this connection's async calls, started by
    /// the first ([`Client::call_async`]).
    helper: OnceLock<mpsc::Sender<Job>>,
}

/// An async call, as the helper thread makes it.
type Job = Box<dyn FnOnce() + Send>;

/// The result of an async call (see [`Client::call_async`]): ready when
/// the connection's helper thread has it; waits by the waker it was last
/// polled with, so any executor drives it.
pub struct CallFuture<T> {
    slot: Arc<Slot<T>>,
}

struct Slot<T>(Mutex<(Option<T>, Option<Waker>)>);

impl<T> Slot<T> {
    fn complete(&self, value: T) {
        let waker = {
            let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            slot.0 = Some(value);
            slot.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for CallFuture<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.slot.0.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.0.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> std::fmt::Debug for CallFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallFuture").finish_non_exhaustive()
    }
}

struct State {
    link: BoxLink,
    next_id: u64,
    /// Calls sent and not answered, which nobody gave up on (a list:
    /// usually one, and it keeps its allocation from call to call).
    waiting: Vec<u64>,
    /// Answers read for calls whose callers have not taken them yet.
    answered: BTreeMap<u64, Answer>,
    /// Why the connection is unusable, once it is.
    broken: Option<String>,
    /// A TLS connection no answer has come over yet: with TLS 1.3 the
    /// server checks the client's certificate after the client's side of
    /// the handshake is done, so a refusal shows as the session ending.
    tls_unconfirmed: bool,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("binding", &self.binding).finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the server at `binding` (see [`Binding`]).
    ///
    /// # Errors
    /// `InvalidBinding`; `ServerUnavailable` when nothing answers there.
    pub fn connect(binding: &str) -> Result<Client> {
        Client::connect_with(binding, &ClientOptions::new())
    }

    /// Connects to the server at `binding` with `options`.
    ///
    /// # Errors
    /// As [`Client::connect`]; `AccessDenied` when the binding gives less
    /// than the level required, or the TLS handshake fails.
    pub fn connect_with(binding: &str, options: &ClientOptions) -> Result<Client> {
        let binding = Binding::parse(binding)?;
        let have = binding.level(options.has_tls());
        if have < options.auth_level {
            return Err(Error::AccessDenied(super::auth::too_low(have, options.auth_level, "this client")));
        }
        let link = binding.connect(Deadline::after(crate::rendezvous::ANSWER_TIMEOUT), options)?;
        Ok(Client {
            binding,
            state: Mutex::new(State {
                link,
                next_id: 1,
                waiting: Vec::new(),
                answered: BTreeMap::new(),
                broken: None,
                tls_unconfirmed: options.has_tls(),
                out: Vec::new(),
                buf: Vec::new(),
            }),
            timeout_ms: AtomicU64::new(DEFAULT_CALL_TIMEOUT.as_millis() as u64),
            helper: OnceLock::new(),
        })
    }

    /// Connects to a server that registered interface `I` at a
    /// compatible version with the endpoint mapper, and binds it (S06):
    /// the registered bindings are tried fastest transport first.
    ///
    /// # Errors
    /// `NotRegistered` (1753) when no server of this user registered it;
    /// the last binding's error when none of them answers.
    pub fn find<I: Interface>() -> Result<Client> {
        let mut last = Error::NotRegistered(format!("{} {}.{}", I::ID, I::VERSION.0, I::VERSION.1));
        for binding in super::mapper::resolve(I::ID, I::VERSION)? {
            match Client::connect(&binding.to_string()).and_then(|c| c.bind::<I>().map(|()| c)) {
                Ok(client) => return Ok(client),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Connects to a server of interface `I` on another host, found by
    /// that host's endpoint mapper through the gateways (S06,
    /// [`crate::remote`]): its `pipe:` bindings, reached as
    /// `pipe:\\HOST\pipe\NAME` through the gateways, then its `tcp:`
    /// bindings on an address other hosts can reach.
    ///
    /// # Errors
    /// `NotRegistered` (1753) when no server there registered it at a
    /// compatible version; `NetPath` (53) when the host does not answer;
    /// the last binding's error when none of them answers.
    pub fn find_on<I: Interface>(host: &str) -> Result<Client> {
        let mut last = Error::NotRegistered(format!("{} {}.{} on {host}", I::ID, I::VERSION.0, I::VERSION.1));
        for binding in crate::remote::lookup(host, &I::ID.to_string(), I::VERSION)? {
            match Client::connect(&binding).and_then(|c| c.bind::<I>().map(|()| c)) {
                Ok(client) => return Ok(client),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The binding connected to.
    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    /// Sets how long a call waits for its answer (S07; default 60 s).
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout_ms.store(timeout.as_millis().try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// How long a call waits for its answer.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Binds interface `I` at its version (S02).
    ///
    /// # Errors
    /// `UnknownInterface` (1717) when the server does not serve it at a
    /// compatible version; as [`Client::finish`].
    pub fn bind<I: Interface>(&self) -> Result<()> {
        self.bind_id(I::ID, I::VERSION).map(drop)
    }

    /// Binds interface `id` at `version`; the server's version.
    ///
    /// # Errors
    /// As [`Client::bind`].
    pub fn bind_id(&self, id: InterfaceId, version: (u16, u16)) -> Result<(u16, u16)> {
        let st = &mut *self.state();
        let call = self.send(st, Kind::Bind, id, version, 0, |out| {
            out.extend_from_slice(NIL);
            Ok(())
        })?;
        self.wait(st, call, |answer| match answer {
            Answered::Result(_, server_version) => Ok(server_version),
            Answered::Fault(f) => Err(Error::from_fault(f)),
        })?
    }

    /// Calls method `opnum` of interface `I` with `args` (a tuple) and
    /// waits for its result: what the generated proxies do.
    ///
    /// # Errors
    /// The method's error; `ServerUnavailable`, `CallTimeout`, or
    /// `Malformed` (a result that does not decode) as `E::from_error`.
    pub fn call<I: Interface, A: Serialize + ?Sized, R: DeserializeOwned, E: RemoteError>(
        &self,
        opnum: u32,
        args: &A,
    ) -> std::result::Result<R, E> {
        // One hold of the connection for both halves.
        let st = &mut *self.state();
        let id = self.send(st, Kind::Request, I::ID, I::VERSION, opnum, |out| wire::write_body(out, args));
        self.finish_in(st, id.map_err(E::from_error)?)
    }

    /// Calls method `opnum` of interface `I` with `args`, for async code:
    /// the arguments are encoded now, and the call is made by the
    /// connection's helper thread (started by the first async call), so no
    /// executor thread blocks; the future is ready when the result is.
    /// Async calls on one connection are made in order, one at a time.
    /// What the generated proxies' `async fn` methods do.
    pub fn call_async<
        I: Interface,
        A: Serialize + ?Sized,
        R: DeserializeOwned + Send + 'static,
        E: RemoteError + Send + 'static,
    >(
        self: &Arc<Self>,
        opnum: u32,
        args: &A,
    ) -> CallFuture<std::result::Result<R, E>> {
        let slot = Arc::new(Slot(Mutex::new((None, None))));
        let future = CallFuture { slot: Arc::clone(&slot) };
        let body = match wire::to_body(args) {
            Ok(body) => body,
            Err(e) => {
                slot.complete(Err(E::from_error(e)));
                return future;
            }
        };
        let client = Arc::clone(self);
        let job: Job = Box::new(move || {
            let st = &mut *client.state();
            let sent = client.send(st, Kind::Request, I::ID, I::VERSION, opnum, |out| {
                out.extend_from_slice(&body);
                Ok(())
            });
            slot.complete(sent.map_err(E::from_error).and_then(|call| client.finish_in(st, call)));
        });
        let helper = self.helper.get_or_init(|| {
            let (jobs, queue) = mpsc::channel::<Job>();
            // Without a thread (out of threads) the queue is dropped, and
            // every call is made by its caller below instead.
            let _ = std::thread::Builder::new().name(format!("rpc-async {}", self.binding)).spawn(move || {
                for job in queue {
                    job();
                }
            });
            jobs
        });
        if let Err(mpsc::SendError(job)) = helper.send(job) {
            // The helper could not start (out of threads): make the call here.
            job();
        }
        future
    }

    /// Calls method `opnum` of interface `interface` (bound at `version`)
    /// with `args`, already MessagePack (an array), and returns the
    /// result's MessagePack: for generic clients such as `switchboard rpc
    /// call`.
    ///
    /// # Errors
    /// The server's fault as [`Error`]; as [`Client::finish`].
    pub fn call_raw(&self, interface: InterfaceId, version: (u16, u16), opnum: u32, args: &[u8]) -> Result<Vec<u8>> {
        let st = &mut *self.state();
        let call = self.send(st, Kind::Request, interface, version, opnum, |out| {
            out.extend_from_slice(args);
            Ok(())
        })?;
        self.wait(st, call, |answer| match answer {
            Answered::Result(body, _) => Ok(body.to_vec()),
            Answered::Fault(f) => Err(Error::from_fault(f)),
        })?
    }

    /// Sends a call and returns at once: its answer is for [`Client::finish`].
    ///
    /// # Errors
    /// `InvalidParameter` for arguments MessagePack cannot hold or a frame
    /// over the maximum; `ServerUnavailable`.
    pub fn start<I: Interface, A: Serialize + ?Sized>(&self, opnum: u32, args: &A) -> Result<CallId> {
        self.send(&mut self.state(), Kind::Request, I::ID, I::VERSION, opnum, |out| wire::write_body(out, args))
    }

    /// Waits for the answer of a call begun with [`Client::start`], until
    /// the call timeout; a call not answered by then is cancelled.
    ///
    /// # Errors
    /// As [`Client::call`]; `InvalidParameter` (as `E::from_error`) for a
    /// call that is not in flight.
    pub fn finish<R: DeserializeOwned, E: RemoteError>(&self, call: CallId) -> std::result::Result<R, E> {
        self.finish_in(&mut self.state(), call)
    }

    fn finish_in<R: DeserializeOwned, E: RemoteError>(
        &self,
        st: &mut State,
        call: CallId,
    ) -> std::result::Result<R, E> {
        let decoded = self.wait(st, call, |answer| match answer {
            Answered::Result(body, _) => wire::from_body(body).map_err(E::from_error),
            Answered::Fault(f) => Err(E::from_fault(f)),
        });
        decoded.map_err(E::from_error)?
    }

    /// Sends a call's frame, its body written by `body` straight after the header.
    fn send(
        &self,
        st: &mut State,
        kind: Kind,
        interface: InterfaceId,
        version: (u16, u16),
        opnum: u32,
        body: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<CallId> {
        st.usable(&self.binding)?;
        let call_id = st.next_id;
        let mut out = std::mem::take(&mut st.out);
        out.clear();
        Frame { kind, call_id, interface, version, opnum, context: None, body: NIL }.encode_header(&mut out);
        let sent = body(&mut out).and_then(|()| match out.len() <= st.link.max_message() {
            true => st.link.send(&out).map_err(|e| st.break_with(&self.binding, e)),
            false => Err(Error::InvalidParameter("the call's arguments are over the binding's maximum frame")),
        });
        st.out = out;
        sent?;
        st.next_id += 1;
        st.waiting.push(call_id);
        Ok(CallId(call_id))
    }

    /// Reads answers until `call`'s, or its deadline, and gives it to
    /// `take`: straight from the receive buffer when it is the next to
    /// come (no copy), else from where an earlier wait kept it.
    fn wait<T>(&self, st: &mut State, call: CallId, take: impl FnOnce(Answered<'_>) -> T) -> Result<T> {
        let timeout = self.timeout();
        let deadline = Deadline::after(timeout);
        let mut take = Some(take);
        let mut take = |answer: Answered<'_>| take.take().map(|f| f(answer)).expect("an answer is taken once");
        loop {
            if let Some(answer) = st.answered.remove(&call.0) {
                return Ok(match answer {
                    Answer::Result(body, version) => take(Answered::Result(&body, version)),
                    Answer::Fault(f) => take(Answered::Fault(f)),
                });
            }
            if !st.waiting.contains(&call.0) {
                return Err(Error::InvalidParameter("no such call in flight"));
            }
            st.usable(&self.binding)?;
            let mut buf = std::mem::take(&mut st.buf);
            let read = match st.link.recv_deadline(&mut buf, deadline) {
                Ok(()) => st.file(&buf, call.0),
                Err(e) => Err(e),
            };
            let outcome = match read {
                Ok(Some(answer)) => Some(Ok(take(answer))),
                Ok(None) => None,
                Err(Error::Timeout) => {
                    st.cancel(call.0);
                    Some(Err(Error::CallTimeout(timeout)))
                }
                Err(e) if st.tls_unconfirmed => {
                    st.break_with(&self.binding, Error::BrokenPipe);
                    Some(Err(Error::AccessDenied(format!(
                        "{}: the server ended the TLS session before answering ({e}): it did not accept this client's certificate",
                        self.binding
                    ))))
                }
                Err(e) => Some(Err(st.break_with(&self.binding, e))),
            };
            st.buf = buf;
            if let Some(outcome) = outcome {
                return outcome;
            }
        }
    }
}

impl State {
    fn usable(&self, binding: &Binding) -> Result<()> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(Error::ServerUnavailable(format!("{binding}: {why}"))),
        }
    }

    /// Marks the connection unusable; the error for the caller.
    fn break_with(&mut self, binding: &Binding, e: Error) -> Error {
        let why = match &e {
            Error::BrokenPipe => "the server closed the connection or died".to_owned(),
            other => other.to_string(),
        };
        self.broken = Some(why);
        match e {
            Error::InvalidParameter(_) => e,
            _ => Error::ServerUnavailable(format!("{binding}: {}", self.broken.as_deref().unwrap_or_default())),
        }
    }

    /// Files the answer in `payload`: `call`'s is returned (borrowing
    /// `payload`), another awaited call's is kept for its caller, and one
    /// nobody waits for any more is dropped.
    fn file<'a>(&mut self, payload: &'a [u8], call: u64) -> Result<Option<Answered<'a>>> {
        let frame = Frame::decode_lazy(payload)?;
        self.tls_unconfirmed = false;
        let answer = match frame.kind {
            Kind::Response | Kind::BindAck => Answered::Result(frame.body, frame.version),
            Kind::Fault => Answered::Fault(wire::from_body(frame.body)?),
            other => return Err(Error::Malformed(format!("a server sent a {other:?} frame"))),
        };
        let Some(at) = self.waiting.iter().position(|c| *c == frame.call_id) else { return Ok(None) };
        self.waiting.swap_remove(at);
        if frame.call_id == call {
            return Ok(Some(answer));
        }
        let kept = match answer {
            Answered::Result(body, version) => Answer::Result(body.to_vec(), version),
            Answered::Fault(f) => Answer::Fault(f),
        };
        self.answered.insert(frame.call_id, kept);
        Ok(None)
    }

    /// Gives up on `call` and tells the server, without waiting for room.
    fn cancel(&mut self, call: u64) {
        self.waiting.retain(|c| *c != call);
        let frame = Frame {
            kind: Kind::Cancel,
            call_id: call,
            interface: InterfaceId([0; 16]),
            version: (0, 0),
            opnum: 0,
            context: None,
            body: NIL,
        };
        let mut out = Vec::new();
        if frame.encode_payload(&mut out, usize::MAX).is_ok() {
            let _ = self.link.send_deadline(&out, Deadline::now());
        }
    }
}
