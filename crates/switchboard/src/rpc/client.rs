//! The client side of a connection: binds interfaces, sends calls, and
//! matches the answers to them by call id.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::binding::{Binding, BoxLink};
use super::wire::{self, FaultBody, Frame, InterfaceId, Kind, NIL};
use super::{Interface, RemoteError};
use crate::error::{Error, Result};
use crate::time::Deadline;

/// A call begun with [`Client::start`], to [`Client::finish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallId(pub u64);

/// The call timeout a client starts with.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How a call ended, before the caller's error type is made of it.
enum Answer {
    Result(Vec<u8>),
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
}

struct State {
    link: BoxLink,
    next_id: u64,
    /// Calls sent and not answered, which nobody gave up on.
    waiting: HashSet<u64>,
    /// Answers read for calls whose callers have not taken them yet.
    answered: HashMap<u64, Answer>,
    /// Why the connection is unusable, once it is.
    broken: Option<String>,
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
        let binding = Binding::parse(binding)?;
        let link = binding.connect(Deadline::after(crate::rendezvous::ANSWER_TIMEOUT))?;
        Ok(Client {
            binding,
            state: Mutex::new(State {
                link,
                next_id: 1,
                waiting: HashSet::new(),
                answered: HashMap::new(),
                broken: None,
                out: Vec::new(),
                buf: Vec::new(),
            }),
            timeout_ms: AtomicU64::new(DEFAULT_CALL_TIMEOUT.as_millis() as u64),
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
        let call = self.send(Kind::Bind, id, version, 0, NIL)?;
        match self.wait(call)? {
            Answer::Result(body) => wire::from_body(&body),
            Answer::Fault(f) => Err(Error::from_fault(f)),
        }
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
        let id = self.start::<I, A>(opnum, args).map_err(E::from_error)?;
        self.finish(id)
    }

    /// Calls method `opnum` of interface `interface` (bound at `version`)
    /// with `args`, already MessagePack (an array), and returns the
    /// result's MessagePack: for generic clients such as `switchboard rpc
    /// call`.
    ///
    /// # Errors
    /// The server's fault as [`Error`]; as [`Client::finish`].
    pub fn call_raw(&self, interface: InterfaceId, version: (u16, u16), opnum: u32, args: &[u8]) -> Result<Vec<u8>> {
        let call = self.send(Kind::Request, interface, version, opnum, args)?;
        match self.wait(call)? {
            Answer::Result(body) => Ok(body),
            Answer::Fault(f) => Err(Error::from_fault(f)),
        }
    }

    /// Sends a call and returns at once: its answer is for [`Client::finish`].
    ///
    /// # Errors
    /// `InvalidParameter` for arguments MessagePack cannot hold or a frame
    /// over the maximum; `ServerUnavailable`.
    pub fn start<I: Interface, A: Serialize + ?Sized>(&self, opnum: u32, args: &A) -> Result<CallId> {
        self.send(Kind::Request, I::ID, I::VERSION, opnum, &wire::to_body(args)?)
    }

    /// Waits for the answer of a call begun with [`Client::start`], until
    /// the call timeout; a call not answered by then is cancelled.
    ///
    /// # Errors
    /// As [`Client::call`]; `InvalidParameter` (as `E::from_error`) for a
    /// call that is not in flight.
    pub fn finish<R: DeserializeOwned, E: RemoteError>(&self, call: CallId) -> std::result::Result<R, E> {
        match self.wait(call).map_err(E::from_error)? {
            Answer::Result(body) => wire::from_body(&body).map_err(E::from_error),
            Answer::Fault(f) => Err(E::from_fault(f)),
        }
    }

    /// Sends a call's frame.
    fn send(&self, kind: Kind, interface: InterfaceId, version: (u16, u16), opnum: u32, body: &[u8]) -> Result<CallId> {
        let mut st = self.state();
        st.usable(&self.binding)?;
        let call_id = st.next_id;
        st.next_id += 1;
        let frame = Frame { kind, call_id, interface, version, opnum, context: None, body };
        let mut out = std::mem::take(&mut st.out);
        out.clear();
        frame.encode_payload(&mut out, st.link.max_message())?;
        let sent = st.link.send(&out);
        st.out = out;
        sent.map_err(|e| st.break_with(&self.binding, e))?;
        st.waiting.insert(call_id);
        Ok(CallId(call_id))
    }

    /// Reads answers until `call`'s, or its deadline.
    fn wait(&self, call: CallId) -> Result<Answer> {
        let timeout = self.timeout();
        let deadline = Deadline::after(timeout);
        let mut st = self.state();
        loop {
            if let Some(answer) = st.answered.remove(&call.0) {
                return Ok(answer);
            }
            if !st.waiting.contains(&call.0) {
                return Err(Error::InvalidParameter("no such call in flight"));
            }
            st.usable(&self.binding)?;
            match st.read_one(deadline) {
                Ok(()) => {}
                Err(Error::Timeout) => {
                    st.cancel(call.0);
                    return Err(Error::CallTimeout(timeout));
                }
                Err(e) => return Err(st.break_with(&self.binding, e)),
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

    /// Reads one frame and files its answer (an answer to a call nobody
    /// waits for any more is dropped).
    fn read_one(&mut self, deadline: Deadline) -> Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let got = self.link.recv_deadline(&mut buf, deadline).and_then(|()| self.file(&buf));
        self.buf = buf;
        got
    }

    fn file(&mut self, payload: &[u8]) -> Result<()> {
        let frame = Frame::decode(payload)?;
        let answer = match frame.kind {
            Kind::Response | Kind::BindAck => Answer::Result(match frame.kind {
                Kind::BindAck => wire::to_body(&frame.version)?,
                _ => frame.body.to_vec(),
            }),
            Kind::Fault => Answer::Fault(wire::from_body(frame.body)?),
            other => return Err(Error::Malformed(format!("a server sent a {other:?} frame"))),
        };
        if self.waiting.remove(&frame.call_id) {
            self.answered.insert(frame.call_id, answer);
        }
        Ok(())
    }

    /// Gives up on `call` and tells the server, without waiting for room.
    fn cancel(&mut self, call: u64) {
        self.waiting.remove(&call);
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
