//! Calls: request/response over any [`Link`].
//!
//! A [`Calls`] owns one end of a link and speaks to the [`Calls`] at the
//! other end. Each side may:
//! - [`post`](Calls::post) a message: delivered in order, no reply (classic
//!   `PostMessage`);
//! - [`send`](Calls::send) a request and wait for its reply until a
//!   deadline (classic `SendMessage`, an RPC call); or
//!   [`begin`](Calls::begin) several and [`finish`](Calls::finish) them
//!   in any order: many calls in flight;
//! - serve the other side's requests with its [`Handler`]
//!   ([`serve`](Calls::serve)).
//!
//! **Re-entrant dispatch.** A side blocked in its own `send` still serves
//! the requests and posts that arrive meanwhile: the handler runs on the
//! waiting thread, and may itself send (back to the caller, too). So A
//! sends to B, B's handler sends to A, A's handler answers while A waits —
//! as window messages, DDE and single-threaded objects require. A `Calls`
//! is therefore owned by one thread at a time, like a classic window's
//! message queue.
//!
//! **Deadlines and cancellation.** A send that reaches its deadline is
//! `Timeout` (121) and tells the peer with a cancel message; the late
//! reply, if one comes, is dropped. [`cancel`](Calls::cancel) does the same
//! for a call begun earlier. The peer serves its requests in order, so a
//! cancel reaches it after the request: a handler under way finishes, and
//! its reply is discarded by the caller.
//!
//! **Peer death** is the link's: a call to a peer that closed or was
//! killed is `BrokenPipe`, never a hang.
//!
//! ## Wire (one link message per call message, integers little-endian)
//! | bytes | field |
//! |---|---|
//! | 0 | kind: 1 post, 2 request, 3 reply, 4 fault, 5 cancel |
//! | 1..4 | zero (reserved) |
//! | 4..12 | call id (`u64`; 0 for a post) |
//! | 12..16 | method (`u32`; 0 for reply, fault and cancel) |
//! | 16.. | body: arguments, result, or for a fault its code space (`u8`: 0 Win32, 1 HRESULT, 2 DDE, 3 RPC status), code (`u32`) and UTF-8 message |
//!
//! Everything the peer sends is untrusted: a message that does not decode
//! is `Malformed` (13) and poisons nothing; a reply to an unknown call is
//! dropped.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use switchboard::call::{Calls, Fault, Handler};
//! use switchboard::link::{ShmLink, ShmLinkOptions};
//!
//! struct Adder;
//! impl Handler for Adder {
//!     fn call(&self, _: &mut Calls, _method: u32, args: &[u8]) -> Result<Vec<u8>, Fault> {
//!         let sum: u32 = args.iter().map(|b| u32::from(*b)).sum();
//!         Ok(sum.to_le_bytes().to_vec())
//!     }
//! }
//!
//! let (a, b) = ShmLink::pair(ShmLinkOptions::default())?;
//! let server = std::thread::spawn(move || {
//!     let mut calls = Calls::new(b).with_handler(Arc::new(Adder));
//!     calls.serve(Duration::from_secs(10))
//! });
//! let mut client = Calls::new(a);
//! let reply = client.send(1, &[1, 2, 3], Some(Duration::from_secs(10)))?;
//! assert_eq!(reply, 6u32.to_le_bytes());
//! drop(client); // the server's serve ends with BrokenPipe
//! assert!(server.join().unwrap().is_err());
//! # Ok::<(), switchboard::Error>(())
//! ```

use crate::error::{Code, Error, Result};
use crate::link::Link;
use crate::time::Deadline;
use std::sync::Arc;

const HEADER: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Post = 1,
    Request = 2,
    Reply = 3,
    Fault = 4,
    Cancel = 5,
}

/// A decoded call message.
#[derive(Debug, PartialEq, Eq)]
struct Message<'a> {
    kind: Kind,
    id: u64,
    method: u32,
    body: &'a [u8],
}

#[cfg(any(test, feature = "fuzz"))]
fn encode(kind: Kind, id: u64, method: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, kind, id, method, &[body]);
    out
}

fn encode_into(out: &mut Vec<u8>, kind: Kind, id: u64, method: u32, body: &[&[u8]]) {
    out.clear();
    out.reserve(HEADER + body.iter().map(|p| p.len()).sum::<usize>());
    out.extend_from_slice(&[kind as u8, 0, 0, 0]);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&method.to_le_bytes());
    for part in body {
        out.extend_from_slice(part);
    }
}

fn decode(bytes: &[u8]) -> Result<Message<'_>> {
    let malformed = |why: &str| Error::Malformed(format!("call message: {why}"));
    if bytes.len() < HEADER {
        return Err(malformed("shorter than its header"));
    }
    let kind = match bytes[0] {
        1 => Kind::Post,
        2 => Kind::Request,
        3 => Kind::Reply,
        4 => Kind::Fault,
        5 => Kind::Cancel,
        k => return Err(malformed(&format!("unknown kind {k}"))),
    };
    if bytes[1..4] != [0, 0, 0] {
        return Err(malformed("reserved bytes are not zero"));
    }
    let id = u64::from_le_bytes(bytes[4..12].try_into().map_err(|_| malformed("id"))?);
    let method = u32::from_le_bytes(bytes[12..16].try_into().map_err(|_| malformed("method"))?);
    Ok(Message { kind, id, method, body: &bytes[HEADER..] })
}

/// Asserts that a message `decode` accepts (and its fault, if it is one)
/// encodes back to the same bytes (for the fuzz targets).
#[cfg(feature = "fuzz")]
pub(crate) fn check_decode(bytes: &[u8]) {
    let Ok(msg) = decode(bytes) else { return };
    assert_eq!(encode(msg.kind, msg.id, msg.method, msg.body), bytes, "a decoded message encodes back the same");
    if msg.kind == Kind::Fault {
        if let Ok(fault) = Fault::decode(msg.body) {
            let again = fault.encode();
            assert_eq!(again[..5], msg.body[..5], "a decoded fault's code encodes back the same");
        }
    }
}

/// A handler's refusal: a classic code in its own space and a message for
/// the caller, who gets it as [`Error::Remote`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The classic code (the caller's `code()`; its `win32()` follows).
    pub code: Code,
    /// What went wrong, for people.
    pub message: String,
}

impl Fault {
    /// A fault with Win32 error `code` and `message`.
    pub fn new(code: u32, message: impl Into<String>) -> Fault {
        Fault::with_code(Code::Win32(code), message)
    }

    /// A fault with `code` in any space (an `HRESULT` for objects, …).
    pub fn with_code(code: Code, message: impl Into<String>) -> Fault {
        Fault { code, message: message.into() }
    }

    fn encode(&self) -> Vec<u8> {
        let (space, value) = self.code.space();
        let mut body = vec![space];
        body.extend_from_slice(&value.to_le_bytes());
        body.extend_from_slice(self.message.as_bytes());
        body
    }

    fn decode(body: &[u8]) -> Result<Fault> {
        let malformed = |why: &str| Error::Malformed(format!("call fault: {why}"));
        let Some((&[space, a, b, c, d], text)) = body.split_first_chunk::<5>() else {
            return Err(malformed("no code"));
        };
        let code =
            Code::from_space(space, u32::from_le_bytes([a, b, c, d])).ok_or_else(|| malformed("unknown code"))?;
        Ok(Fault { code, message: String::from_utf8_lossy(text).into_owned() })
    }
}

/// What a side does with the other side's requests and posts. Called on
/// the thread that owns the [`Calls`], re-entrantly: a handler may send
/// through `calls`, and requests arriving meanwhile are dispatched again.
pub trait Handler: Send + Sync {
    /// Answers request `method` with `args`.
    ///
    /// # Errors
    /// A [`Fault`] the caller receives as [`Error::Remote`].
    fn call(&self, calls: &mut Calls, method: u32, args: &[u8]) -> std::result::Result<Vec<u8>, Fault>;

    /// Takes a posted message (no reply). By default: as a call whose
    /// result is dropped.
    fn post(&self, calls: &mut Calls, method: u32, args: &[u8]) {
        let _ = self.call(calls, method, args);
    }
}

/// A request or post taken by [`Calls::next_incoming`].
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A request, to answer with [`Calls::answer`].
    Request {
        /// Its call id.
        id: u64,
        /// The method.
        method: u32,
        /// The arguments.
        args: Vec<u8>,
    },
    /// A post (no answer).
    Post {
        /// The method.
        method: u32,
        /// The arguments.
        args: Vec<u8>,
    },
}

/// A call begun with [`Calls::begin`], to [`finish`](Calls::finish) or
/// [`cancel`](Calls::cancel).
#[derive(Debug, PartialEq, Eq, Hash)]
#[must_use = "a begun call is finished or cancelled"]
pub struct Pending(u64);

/// One end of a call conversation (see the module docs).
pub struct Calls {
    link: Box<dyn Link + Send>,
    handler: Option<Arc<dyn Handler>>,
    next_id: u64,
    /// Calls begun and not yet finished or cancelled.
    /// (A few at a time: a list is faster than hashing them.)
    outstanding: Vec<u64>,
    /// Replies that arrived while another call was being waited for.
    arrived: Vec<(u64, Result<Vec<u8>>)>,
    /// The last message received (its buffer is reused).
    buf: Vec<u8>,
    /// The last message sent (its buffer is reused).
    out: Vec<u8>,
    /// How deep the handler is nested right now.
    depth: usize,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("outstanding", &self.outstanding.len())
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

/// How deep re-entrant dispatch may nest before requests are refused
/// (`Fault` 1214, classic `ERROR_STACK_OVERFLOW`-like guard).
pub const MAX_DEPTH: usize = 64;

impl Calls {
    /// Speaks over `link`, serving nothing until [`Calls::with_handler`].
    pub fn new(link: impl Link + Send + 'static) -> Calls {
        Calls {
            link: Box::new(link),
            handler: None,
            next_id: 1,
            outstanding: Vec::new(),
            arrived: Vec::new(),
            buf: Vec::new(),
            out: Vec::new(),
            depth: 0,
        }
    }

    /// Serves the peer's requests and posts with `handler`. Without one, a
    /// request is answered with fault 1 (classic `ERROR_INVALID_FUNCTION`)
    /// and a post is dropped.
    #[must_use]
    pub fn with_handler(mut self, handler: Arc<dyn Handler>) -> Calls {
        self.handler = Some(handler);
        self
    }

    /// Posts `method` with `args`: no reply, delivered after everything sent
    /// before it.
    ///
    /// # Errors
    /// `BrokenPipe` when the peer is gone; `InvalidParameter` over the
    /// link's maximum.
    pub fn post(&mut self, method: u32, args: &[u8]) -> Result<()> {
        self.post_deadline(method, args, Deadline::NEVER)
    }

    /// Posts, waiting for room in the link only until `deadline`.
    ///
    /// # Errors
    /// As [`Calls::post`]; `Timeout` when the link stayed full (nothing was posted).
    pub fn post_deadline(&mut self, method: u32, args: &[u8], deadline: impl Into<Deadline>) -> Result<()> {
        self.post_parts(method, &[args], deadline)
    }

    /// [`Calls::post_deadline`] with arguments in parts, sent as one.
    ///
    /// # Errors
    /// As [`Calls::post_deadline`].
    pub fn post_parts(&mut self, method: u32, args: &[&[u8]], deadline: impl Into<Deadline>) -> Result<()> {
        self.transmit(Kind::Post, 0, method, args, deadline.into())
    }

    /// Sends request `method` with `args` and waits until `deadline` (a
    /// `Duration`, an `Instant`, `None` for never: see [`Deadline`]) for
    /// its reply, serving the peer meanwhile.
    ///
    /// # Errors
    /// `Timeout` (121) at the deadline (the call is cancelled), [`Error::Remote`]
    /// with the handler's fault, `BrokenPipe` when the peer is gone,
    /// `Malformed` for bytes that do not decode.
    pub fn send(&mut self, method: u32, args: &[u8], deadline: impl Into<Deadline>) -> Result<Vec<u8>> {
        let deadline = deadline.into();
        let call = self.begin_deadline(method, args, deadline)?;
        self.finish(call, deadline)
    }

    /// Sends request `method` without waiting for its reply.
    ///
    /// # Errors
    /// As [`Calls::post`].
    pub fn begin(&mut self, method: u32, args: &[u8]) -> Result<Pending> {
        self.begin_deadline(method, args, Deadline::NEVER)
    }

    /// Sends request `method`, waiting for room in the link only until
    /// `deadline`, without waiting for its reply.
    ///
    /// # Errors
    /// As [`Calls::post_deadline`].
    pub fn begin_deadline(&mut self, method: u32, args: &[u8], deadline: impl Into<Deadline>) -> Result<Pending> {
        self.begin_parts(method, &[args], deadline)
    }

    /// [`Calls::begin_deadline`] with arguments in parts, sent as one
    /// (a header and a payload, without joining them first).
    ///
    /// # Errors
    /// As [`Calls::post_deadline`].
    pub fn begin_parts(&mut self, method: u32, args: &[&[u8]], deadline: impl Into<Deadline>) -> Result<Pending> {
        let id = self.next_id;
        self.next_id += 1;
        self.transmit(Kind::Request, id, method, args, deadline.into())?;
        self.outstanding.push(id);
        Ok(Pending(id))
    }

    /// Waits until `deadline` for the reply to `call`, serving the peer
    /// meanwhile.
    ///
    /// # Errors
    /// As [`Calls::send`].
    pub fn finish(&mut self, call: Pending, deadline: impl Into<Deadline>) -> Result<Vec<u8>> {
        let deadline = deadline.into();
        loop {
            if let Some(reply) = self.reply_to(&call) {
                return reply;
            }
            match self.pump(deadline) {
                Ok(()) => {}
                Err(Error::Timeout) => {
                    self.cancel(call)?;
                    return Err(Error::Timeout);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Gives up on `call`: the peer is told, and a late reply is dropped.
    ///
    /// # Errors
    /// `BrokenPipe` when the peer is gone.
    pub fn cancel(&mut self, call: Pending) -> Result<()> {
        self.take_arrived(call.0);
        if self.forget(call.0) {
            self.transmit(Kind::Cancel, call.0, 0, &[], Deadline::NEVER)?;
        }
        Ok(())
    }

    /// Serves the peer's requests and posts until `deadline` (`None`: until
    /// the peer goes).
    ///
    /// # Errors
    /// `Timeout` at the deadline, `BrokenPipe` when the peer is gone.
    pub fn serve(&mut self, deadline: impl Into<Deadline>) -> Result<()> {
        let deadline = deadline.into();
        loop {
            self.pump(deadline)?;
        }
    }

    /// Handles one incoming message (waiting for it until `deadline`).
    fn pump(&mut self, deadline: Deadline) -> Result<()> {
        match self.next_incoming(deadline)? {
            Some(Incoming::Post { method, args }) => {
                self.dispatch_post(method, &args);
                self.recycle(args);
            }
            Some(Incoming::Request { id, method, args }) => {
                self.dispatch_request(id, method, &args)?;
                self.recycle(args);
            }
            None => {}
        }
        Ok(())
    }

    /// Takes the next incoming message, waiting for it until `deadline`,
    /// for a side that dispatches requests and posts itself (a message
    /// queue that orders them) instead of through a [`Handler`]: replies
    /// are kept for their callers ([`Calls::reply_to`]) and give `None`,
    /// as does a cancel; a request is answered with [`Calls::answer`].
    ///
    /// # Errors
    /// `Timeout` at the deadline; as [`Calls::send`].
    pub fn next_incoming(&mut self, deadline: impl Into<Deadline>) -> Result<Option<Incoming>> {
        let mut buf = std::mem::take(&mut self.buf);
        if let Err(e) = self.link.recv_deadline(&mut buf, deadline.into()) {
            self.buf = buf;
            return Err(e);
        }
        let (kind, id, method) = match decode(&buf) {
            Ok(m) => (m.kind, m.id, m.method),
            Err(e) => {
                self.buf = buf;
                return Err(e);
            }
        };
        // A body that is kept (arguments, a reply) takes the buffer with it,
        // its header dropped: no copy; [`Calls::recycle`] gives it back.
        let body = |mut buf: Vec<u8>| {
            buf.drain(..HEADER);
            buf
        };
        Ok(match kind {
            Kind::Reply => {
                self.arrive(id, Ok(body(buf)));
                None
            }
            Kind::Fault => {
                let fault = Fault::decode(&buf[HEADER..]);
                self.buf = buf;
                let fault = fault?;
                self.arrive(id, Err(Error::Remote { code: fault.code, message: fault.message }));
                None
            }
            Kind::Post => Some(Incoming::Post { method, args: body(buf) }),
            Kind::Request => Some(Incoming::Request { id, method, args: body(buf) }),
            // Requests are served in order: by the time a cancel arrives,
            // its request was answered; nothing is left to stop.
            Kind::Cancel => {
                self.buf = buf;
                None
            }
        })
    }

    /// Gives back a buffer [`Calls::next_incoming`] or a reply handed out,
    /// for the next receive to fill (it saves an allocation per message).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if buf.capacity() > self.buf.capacity() {
            self.buf = buf;
        }
    }

    /// Answers request `id` (from [`Calls::next_incoming`]), waiting for
    /// room in the link until `deadline` — a server that must not be held
    /// by a peer that never reads its replies answers with [`Deadline::now`].
    ///
    /// # Errors
    /// `BrokenPipe` when the peer is gone; `Timeout`.
    pub fn answer(
        &mut self,
        id: u64,
        outcome: std::result::Result<&[u8], &Fault>,
        deadline: impl Into<Deadline>,
    ) -> Result<()> {
        match outcome {
            Ok(body) => self.transmit(Kind::Reply, id, 0, &[body], deadline.into()),
            Err(fault) => self.transmit(Kind::Fault, id, 0, &[&fault.encode()], deadline.into()),
        }
    }

    /// Encodes a message into the reused buffer and sends it.
    fn transmit(&mut self, kind: Kind, id: u64, method: u32, body: &[&[u8]], deadline: Deadline) -> Result<()> {
        let mut out = std::mem::take(&mut self.out);
        encode_into(&mut out, kind, id, method, body);
        let sent = self.link.send_deadline(&out, deadline);
        self.out = out;
        sent
    }

    /// The reply to `call` if it has arrived (taken by an earlier
    /// [`Calls::next_incoming`]); the call is then finished.
    pub fn reply_to(&mut self, call: &Pending) -> Option<Result<Vec<u8>>> {
        let reply = self.take_arrived(call.0)?;
        self.forget(call.0);
        Some(reply)
    }

    /// Whether a message may be waiting (see [`Link::ready`]).
    pub fn ready(&self) -> bool {
        self.link.ready()
    }

    /// The link's doorbell descriptor, if it has one (see [`Link::doorbell`]).
    pub fn doorbell(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.link.doorbell()
    }

    /// Arms the link's doorbell (see [`Link::arm_doorbell`]).
    pub fn arm_doorbell(&mut self) -> bool {
        self.link.arm_doorbell()
    }

    /// Whether the peer is known to be gone (see [`Link::peer_gone`]).
    pub fn peer_gone(&self) -> bool {
        self.link.peer_gone()
    }

    /// Takes the reply to call `id` if it arrived.
    fn take_arrived(&mut self, id: u64) -> Option<Result<Vec<u8>>> {
        let at = self.arrived.iter().position(|(i, _)| *i == id)?;
        Some(self.arrived.swap_remove(at).1)
    }

    /// Stops waiting for call `id`; whether it was outstanding.
    fn forget(&mut self, id: u64) -> bool {
        let at = self.outstanding.iter().position(|i| *i == id);
        at.map(|at| self.outstanding.swap_remove(at)).is_some()
    }

    /// Keeps a reply for its waiter; one for a call nobody waits for (it
    /// timed out, was cancelled, or never existed) is dropped.
    fn arrive(&mut self, id: u64, reply: Result<Vec<u8>>) {
        if self.outstanding.contains(&id) {
            self.arrived.push((id, reply));
        }
    }

    fn dispatch_post(&mut self, method: u32, args: &[u8]) {
        if let Some(h) = self.handler.clone() {
            self.depth += 1;
            h.post(self, method, args);
            self.depth -= 1;
        }
    }

    fn dispatch_request(&mut self, id: u64, method: u32, args: &[u8]) -> Result<()> {
        let outcome = match self.handler.clone() {
            None => Err(Fault::new(1, "this side serves no requests")),
            Some(_) if self.depth >= MAX_DEPTH => Err(Fault::new(1214, "calls nested too deeply")),
            Some(h) => {
                self.depth += 1;
                let r = h.call(self, method, args);
                self.depth -= 1;
                r
            }
        };
        self.answer(id, outcome.as_deref(), Deadline::NEVER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_malformed() {
        let bytes = encode(Kind::Request, 7, 9, b"args");
        assert_eq!(decode(&bytes).unwrap(), Message { kind: Kind::Request, id: 7, method: 9, body: b"args" });
        assert!(decode(&bytes[..15]).is_err());
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(decode(&bad).is_err());
        let mut bad = bytes;
        bad[2] = 1;
        assert!(decode(&bad).is_err());
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 53 % 7) as u8).collect();
            let _ = decode(&junk);
        }
        assert!(Fault::decode(&[1, 2]).is_err());
        assert!(Fault::decode(&[9, 0, 0, 0, 0]).is_err(), "unknown space");
        assert!(Fault::decode(&[2, 0, 0, 1, 0]).is_err(), "a DDE code over 16 bits");
        for code in [Code::Win32(87), Code::HResult(0x8000_4002), Code::Dde(0x4009), Code::RpcStatus(1722)] {
            let f = Fault::with_code(code, "bad");
            assert_eq!(Fault::decode(&f.encode()).unwrap(), f);
        }
    }
}
