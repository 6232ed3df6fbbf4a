//! Window messages and data copy (spec 05): named receivers, each owned by
//! one thread with a message loop, and the messages other threads and
//! processes post or send to them.
//!
//! ## How it works
//! A [`Receiver`] is a rendezvous service of the receiver family
//! (`sb1/L<uid>/w/<name>`); its creator's thread owns it (it is not
//! `Send`), as a classic window belongs to the thread that made it.
//! [`find_receiver`] connects a [`ReceiverHandle`]: a *session* — an
//! [`ShmLink`] to the receiver, spoken over with the call layer
//! ([`crate::call`]) — plus the receiver's status segment (when its
//! thread last fetched messages, and a count of queued posts). A post is
//! a call-layer post, a send is a call-layer request whose reply carries
//! the result, and a data copy is a request carrying its bytes.
//!
//! The receiver's loop ([`Receiver::get`], [`Receiver::peek`],
//! [`Receiver::wait_with`]) takes what every session has ready: it runs
//! the *window procedure* at once for each sent message and data copy,
//! and queues posted ones, so sent messages are processed before posted
//! ones (S07). A thread blocked in its own [`ReceiverHandle::send`] keeps
//! serving the sent messages that reach its receivers, so two threads that
//! send to each other do not deadlock (S03), and a window procedure may
//! send, even back to its caller.
//!
//! A receiver that is destroyed, whose thread ended, or whose process died
//! closes its sessions: pending and later sends fail at once with
//! `InvalidWindowHandle` (1400) — the link's peer watch sees the death
//! with no polling (S08).
//!
//! ## Decisions where the classic API leaves room
//! - Names are per user (`Local\`) by default; `Global\NAME` with an
//!   [`Acl`] lets other users find the receiver. Messages from another uid
//!   are delivered only if [`Receiver::allow`] lets that message through
//!   (the classic message filter); a refused send fails with
//!   `AccessDenied` (5); a refused post is dropped (the sender learns
//!   nothing, as a post returns before the receiver looks at it).
//! - The posted-message quota is [`POSTED_QUOTA`] per receiver (the
//!   classic default); a post beyond it fails with `QueueFull` (1816) and
//!   queues nothing. Sends and data copies are not counted.
//! - The window procedure is `Fn`, not `FnMut`: it may be re-entered (a
//!   send it makes lets sends to its own receiver in), as a classic one is.
//! - A data copy's bytes travel through the session's shared-memory rings
//!   (in chunks when larger than a ring), not the message queue; the
//!   window procedure sees a read-only copy for the duration of the call.
//!   The size is limited by memory only.
//! - [`Receiver::wait_with`] runs sent messages itself (the classic
//!   `MsgWaitForMultipleObjects` returns and leaves that to the next peek)
//!   and reports [`MsgWait::Message`] only for posted ones.
//! - A [`ReceiverHandle`] is one session; it may move between threads but
//!   not be shared (make one per thread with [`ReceiverHandle::try_clone`]).
//!
//! ```
//! use std::time::Duration;
//! use switchboard::message::{find_receiver, Receiver, WM_USER};
//!
//! let name = format!("doc-rx-{}", std::process::id());
//! let rx = Receiver::create(&name, |_rx, m| m.wparam as i64 * 2)?;
//! let sender = std::thread::spawn({
//!     let name = name.clone();
//!     move || -> switchboard::Result<i64> {
//!         let to = find_receiver(&name)?;
//!         let doubled = to.send(WM_USER, 21, 0)?;
//!         to.post(WM_USER + 1, 0, 0)?;
//!         Ok(doubled)
//!     }
//! });
//! let posted = rx.get(Duration::from_secs(10))?; // runs the send, then returns the post
//! assert_eq!(posted.msg, WM_USER + 1);
//! assert_eq!(sender.join().unwrap()?, 42);
//! # Ok::<(), switchboard::Error>(())
//! ```

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use switchboard_shm::receiver::Status;
use switchboard_sys::epoll::Epoll;
use switchboard_sys::socket::Cred;
use switchboard_sys::AsFd;

use crate::call::{Calls, Fault, Incoming};
use crate::error::{Error, Result};
use crate::link::{ShmLink, ShmLinkListener, ShmLinkOptions};
use crate::namespace::{named_address, Acl};
use crate::rendezvous::{self, Family, Trust};
use crate::sync::{wait_any, Readable, WaitMany, Waitable};
use crate::time::Deadline;

/// The null message.
pub const WM_NULL: u32 = 0x0000;
/// Ends a message loop; `wparam` is the exit code.
pub const WM_QUIT: u32 = 0x0012;
/// A data copy (send only).
pub const WM_COPYDATA: u32 = 0x004A;
/// The first message number free for private use.
pub const WM_USER: u32 = 0x0400;
/// The first message number free for an application's own use.
pub const WM_APP: u32 = 0x8000;

/// Posted messages a receiver holds at most (the classic default quota).
pub const POSTED_QUOTA: u32 = 10_000;
/// A receiver whose thread fetched no message for this long, and is not
/// waiting for one, is hung (classic `IsHungAppWindow`).
pub const HUNG_AFTER: Duration = Duration::from_secs(5);

/// Call-layer methods of the session protocol.
const POST: u32 = 1;
const SEND: u32 = 2;
const COPYDATA: u32 = 3;
/// A data copy that does not wait for the result (crate-internal: DDE's
/// transactions); it runs when the receiver takes it, in session order.
const COPYPOST: u32 = 4;
/// A data copy whose result carries bytes besides the number
/// (crate-internal: DDE's synchronous transactions); the procedure gives
/// them with [`Receiver::reply_data`].
const COPYREPLY: u32 = 5;
/// The message a receiver made with `tell_closed` gets when a session
/// ends (its sender closed it or died); `from` names the sender.
pub(crate) const SESSION_CLOSED: u32 = 0x03FE;
/// msg `u32`, wparam `u64`, lparam `i64`, little-endian.
const BODY: usize = 20;
/// sender id `u64`, tag `u64`, then the data.
const COPY_HEADER: usize = 16;
/// How long a loop spins for a session before it sleeps.
const SPIN: Duration = Duration::from_micros(20);
/// How often a sleeping loop looks for a connector's hello.
const HANDSHAKE_LOOK: Duration = Duration::from_millis(2);
/// Session rings: room for a sender's whole quota of posts.
const SESSION_RING: usize = 1 << 20;
/// A data copy's largest size: memory is the limit.
const MAX_COPY: usize = 1 << 40;

/// A receiver's identity, unique on the machine while it lives (the
/// classic window handle as a value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReceiverId(pub u64);

/// Who sent a message: kernel-reported process and user, and for a data
/// copy the receiver id the sender named (unchecked, as classic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sender {
    /// The sending process.
    pub pid: u32,
    /// Its user.
    pub uid: u32,
    /// The receiver the sender named as itself (data copies only).
    pub receiver: Option<ReceiverId>,
}

/// A posted message, as [`Receiver::get`] returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posted {
    /// The message number.
    pub msg: u32,
    /// Its first parameter.
    pub wparam: u64,
    /// Its second parameter.
    pub lparam: i64,
    /// Who posted it.
    pub from: Sender,
}

/// A message as the window procedure sees it.
#[derive(Debug)]
pub struct Message<'a> {
    /// The message number ([`WM_COPYDATA`] for a data copy).
    pub msg: u32,
    /// Its first parameter (a data copy: the sender's receiver id, or 0).
    pub wparam: u64,
    /// Its second parameter (a data copy: the tag).
    pub lparam: i64,
    /// Who sent or posted it.
    pub from: Sender,
    /// Whether it was sent (the sender waits for the result) rather than posted.
    pub sent: bool,
    /// A data copy's bytes (empty otherwise): read-only, for this call only.
    pub data: &'a [u8],
}

/// How [`Receiver::wait_with`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgWait {
    /// Object `index` was signalled (and taken, as a wait takes it).
    Object(usize),
    /// Object `index` was an abandoned mutex.
    Abandoned(usize),
    /// A posted message is queued.
    Message,
    /// The deadline passed.
    TimedOut,
}

type WindowProc = dyn Fn(&Receiver, &Message<'_>) -> i64;

/// One sender's connection to a receiver.
struct Session {
    calls: RefCell<Calls>,
    cred: Cred,
    /// Its token in the receiver's epoll set.
    token: u64,
}

struct Inner {
    name: String,
    id: ReceiverId,
    listener: ShmLinkListener,
    status: Status,
    /// Every session's doorbell and the listener's arrivals.
    epoll: Epoll,
    sessions: RefCell<Vec<Rc<Session>>>,
    next_token: Cell<u64>,
    /// The next pump receives from every session, not only those with data.
    thorough: Cell<bool>,
    posted: RefCell<VecDeque<Posted>>,
    allowed: RefCell<HashSet<u32>>,
    proc_: Box<WindowProc>,
    uid: u32,
    /// Whether the procedure hears of ended sessions ([`SESSION_CLOSED`]).
    tell_closed: bool,
    /// The bytes a procedure gives a [`COPYREPLY`]'s sender.
    reply: RefCell<Vec<u8>>,
}

thread_local! {
    /// The receivers this thread owns: served while it blocks in a send.
    static MINE: RefCell<Vec<Weak<Inner>>> = const { RefCell::new(Vec::new()) };
}

fn next_id() -> ReceiverId {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    ReceiverId(u64::from(std::process::id()) << 32 | u64::from(NEXT.fetch_add(1, Ordering::Relaxed)))
}

fn status_error(e: switchboard_shm::segment::SegmentError) -> Error {
    Error::Malformed(format!("a receiver's status: {e}"))
}

fn gone(e: Error) -> Error {
    match e {
        Error::BrokenPipe => Error::InvalidWindowHandle,
        other => other,
    }
}

fn encode(msg: u32, wparam: u64, lparam: i64) -> [u8; BODY] {
    let mut b = [0u8; BODY];
    b[0..4].copy_from_slice(&msg.to_le_bytes());
    b[4..12].copy_from_slice(&wparam.to_le_bytes());
    b[12..20].copy_from_slice(&lparam.to_le_bytes());
    b
}

/// A data copy's header: the sender's receiver id (0: none) and the tag.
fn copy_header(sender: Option<ReceiverId>, tag: u64) -> [u8; COPY_HEADER] {
    let mut header = [0u8; COPY_HEADER];
    header[0..8].copy_from_slice(&sender.map_or(0, |s| s.0).to_le_bytes());
    header[8..16].copy_from_slice(&tag.to_le_bytes());
    header
}

fn decode(body: &[u8]) -> Option<(u32, u64, i64)> {
    let b: &[u8; BODY] = body.try_into().ok()?;
    let msg = u32::from_le_bytes(b[0..4].try_into().ok()?);
    let wparam = u64::from_le_bytes(b[4..12].try_into().ok()?);
    let lparam = i64::from_le_bytes(b[12..20].try_into().ok()?);
    Some((msg, wparam, lparam))
}

/// How to create a [`Receiver`]: its name and who else may find it.
#[derive(Debug)]
#[must_use = "a builder does nothing until create"]
pub struct ReceiverBuilder<'a> {
    name: &'a str,
    acl: Acl,
    tell_closed: bool,
}

impl ReceiverBuilder<'_> {
    /// Who besides this user may connect (default: nobody). Their messages
    /// still pass the filter ([`Receiver::allow`]).
    pub fn acl(mut self, acl: Acl) -> Self {
        self.acl = acl;
        self
    }

    /// A receiver of a crate-internal protocol (DDE): its procedure hears
    /// of each ended session ([`SESSION_CLOSED`]), and it takes posted data
    /// copies and data replies (a classic receiver refuses both).
    pub(crate) fn tell_closed(mut self) -> Self {
        self.tell_closed = true;
        self
    }

    /// Creates the receiver, owned by the calling thread, with its window
    /// procedure (run for sent messages and data copies, and for posted
    /// ones by [`Receiver::dispatch`]).
    ///
    /// # Errors
    /// `AlreadyExists` when the name has a receiver; `InvalidName`.
    pub fn create(self, proc_: impl Fn(&Receiver, &Message<'_>) -> i64 + 'static) -> Result<Receiver> {
        let (_, addr) = named_address(Family::RECEIVER, self.name)?;
        let listener = rendezvous::bind_server(&addr)?.ok_or_else(|| Error::AlreadyExists(self.name.to_owned()))?;
        let (status_fd, status) = Status::create().map_err(status_error)?;
        let listener = ShmLinkListener::serve(Family::RECEIVER, listener, &self.acl, Some(status_fd))?
            .with_options(ShmLinkOptions { max_message: MAX_COPY, ..ShmLinkOptions::default() });
        let epoll = Epoll::new()?;
        epoll.add(listener.arrivals(), 0)?;
        status.fetched(crate::raw::monotonic_ns(), false);
        let id = next_id();
        status.set_id(id.0);
        let inner = Rc::new(Inner {
            name: self.name.to_owned(),
            id,
            listener,
            status,
            epoll,
            sessions: RefCell::new(Vec::new()),
            next_token: Cell::new(1),
            thorough: Cell::new(true),
            posted: RefCell::new(VecDeque::new()),
            allowed: RefCell::new(HashSet::new()),
            proc_: Box::new(proc_),
            uid: switchboard_sys::process::uid(),
            tell_closed: self.tell_closed,
            reply: RefCell::new(Vec::new()),
        });
        MINE.with(|m| {
            let mut m = m.borrow_mut();
            m.retain(|w| w.strong_count() > 0);
            m.push(Rc::downgrade(&inner));
        });
        Ok(Receiver { inner, primary: true })
    }
}

/// A named message queue owned by one thread (see the module docs). It
/// closes when dropped (and when its thread ends): its senders' sends
/// then fail with `InvalidWindowHandle`.
pub struct Receiver {
    inner: Rc<Inner>,
    /// The one its creator holds (not a view made for a re-entrant call):
    /// its drop ends the receiver's clipboard ownership.
    primary: bool,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("name", &self.inner.name)
            .field("id", &self.inner.id)
            .field("sessions", &self.inner.sessions.borrow().len())
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Creates a receiver under `name` (`NAME`, `Local\NAME`,
    /// `Global\NAME`) that only this user can reach (S01).
    ///
    /// # Errors
    /// As [`ReceiverBuilder::create`].
    pub fn create(name: &str, proc_: impl Fn(&Receiver, &Message<'_>) -> i64 + 'static) -> Result<Receiver> {
        Receiver::builder(name).create(proc_)
    }

    /// A builder, to set an ACL.
    pub fn builder(name: &str) -> ReceiverBuilder<'_> {
        ReceiverBuilder { name, acl: Acl::owner_only(), tell_closed: false }
    }

    /// Another view of the same receiver (for a loop over several; not
    /// the primary: dropping it ends nothing).
    pub(crate) fn view(&self) -> Receiver {
        Receiver { inner: self.inner.clone(), primary: false }
    }

    /// The bytes the sender of the data copy being delivered gets with its
    /// result (crate-internal sends that carry data back; ignored for
    /// others).
    pub(crate) fn reply_data(&self, bytes: &[u8]) {
        let mut reply = self.inner.reply.borrow_mut();
        reply.clear();
        reply.extend_from_slice(bytes);
    }

    /// Runs the procedure for a sent message, data copy or data post, and
    /// returns the result's bytes: the number, then any reply data.
    fn answer_bytes(&self, cred: &Cred, method: u32, args: &[u8]) -> std::result::Result<Vec<u8>, Fault> {
        self.inner.reply.borrow_mut().clear();
        let result = self.deliver(cred, method, args)?;
        // The reply buffer is reused (the pump gives it back).
        let mut out = std::mem::take(&mut *self.inner.reply.borrow_mut());
        if method != COPYREPLY {
            out.clear();
        }
        out.splice(0..0, result.to_le_bytes());
        Ok(out)
    }

    /// Drops every queued posted message (a loop that expects none).
    pub(crate) fn discard_posted(&self) {
        for p in self.inner.posted.borrow_mut().drain(..) {
            self.uncount(&p);
        }
    }

    /// A posted message left the queue: its sender's count goes down.
    /// (Senders counted their posts; `post_quit`'s own quit, pid 0, was not.)
    fn uncount(&self, p: &Posted) {
        if p.from.pid != 0 {
            self.inner.status.dequeued();
        }
    }

    /// Its identity.
    pub fn id(&self) -> ReceiverId {
        self.inner.id
    }

    /// Its name as given.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Lets message `msg` through from senders of other users (the classic
    /// message filter; the same user's messages always pass).
    pub fn allow(&self, msg: u32) {
        self.inner.allowed.borrow_mut().insert(msg);
    }

    /// Waits until `deadline` for a posted message, running the window
    /// procedure for every sent message meanwhile, and takes it. A
    /// [`WM_QUIT`] comes back like any message (its `wparam` is the code).
    ///
    /// # Errors
    /// `Timeout` at the deadline.
    pub fn get(&self, deadline: impl Into<Deadline>) -> Result<Posted> {
        let deadline = deadline.into();
        loop {
            if let Some(p) = self.peek(true)? {
                return Ok(p);
            }
            if !self.sleep(deadline)? {
                return Err(Error::Timeout);
            }
        }
    }

    /// Runs the window procedure for every sent message that arrived, and
    /// returns the next posted message, taking it when `remove` (classic
    /// `PeekMessage`); `None` when none is queued.
    ///
    /// # Errors
    /// A system error accepting a session.
    pub fn peek(&self, remove: bool) -> Result<Option<Posted>> {
        self.inner.status.fetched(crate::raw::monotonic_ns(), false);
        self.pump()?;
        let mut posted = self.inner.posted.borrow_mut();
        if !remove {
            return Ok(posted.front().copied());
        }
        let p = posted.pop_front();
        if let Some(p) = &p {
            self.uncount(p);
        }
        Ok(p)
    }

    /// Runs the window procedure for a posted message (classic
    /// `DispatchMessage`) and returns its result.
    pub fn dispatch(&self, p: &Posted) -> i64 {
        let m = Message { msg: p.msg, wparam: p.wparam, lparam: p.lparam, from: p.from, sent: false, data: &[] };
        (self.inner.proc_)(self, &m)
    }

    /// Gets and dispatches messages until [`WM_QUIT`], and returns its code.
    ///
    /// # Errors
    /// As [`Receiver::get`] (never `Timeout`: it waits for good).
    pub fn run(&self) -> Result<i32> {
        loop {
            let p = self.get(Deadline::NEVER)?;
            if p.msg == WM_QUIT {
                return Ok(p.wparam as i32);
            }
            self.dispatch(&p);
        }
    }

    /// Queues [`WM_QUIT`] with `code` behind every message posted so far
    /// (S11): the loop ends once they are processed.
    ///
    /// # Errors
    /// As [`Receiver::peek`].
    pub fn post_quit(&self, code: i32) -> Result<()> {
        self.pump()?;
        let me = Sender { pid: 0, uid: self.inner.uid, receiver: Some(self.inner.id) };
        self.inner.posted.borrow_mut().push_back(Posted {
            msg: WM_QUIT,
            wparam: code as u32 as u64,
            lparam: 0,
            from: me,
        });
        Ok(())
    }

    /// Waits until one of `objs` is signalled or a posted message is
    /// queued, running sent messages meanwhile (S10, the classic
    /// `MsgWaitForMultipleObjects`): objects first, by index; then the queue.
    ///
    /// # Errors
    /// `InvalidParameter` for more than 63 objects.
    pub fn wait_with(&self, objs: &[&dyn Waitable], deadline: impl Into<Deadline>) -> Result<MsgWait> {
        let deadline = deadline.into();
        let queue = Readable::new(self.inner.epoll.as_fd())?;
        let mut all: Vec<&dyn Waitable> = objs.to_vec();
        all.push(&queue);
        loop {
            if self.peek(false)?.is_some() {
                return Ok(MsgWait::Message);
            }
            if self.arm() {
                continue;
            }
            self.waiting(true);
            let woke = wait_any(&all, Deadline::from(self.sleep_limit(deadline)));
            self.waiting(false);
            match woke? {
                WaitMany::Signaled(i) if i == objs.len() => continue,
                WaitMany::Signaled(i) => return Ok(MsgWait::Object(i)),
                WaitMany::Abandoned(i) => return Ok(MsgWait::Abandoned(i)),
                WaitMany::TimedOut if deadline.passed() => return Ok(MsgWait::TimedOut),
                WaitMany::TimedOut => continue,
            }
        }
    }

    /// Waits until `deadline` for sent messages and runs them: returns how
    /// many ran, or 0 when a posted message is queued (for a loop that only
    /// answers sends, such as a server of data copies).
    ///
    /// # Errors
    /// `Timeout` at the deadline.
    pub fn serve_sent(&self, deadline: impl Into<Deadline>) -> Result<usize> {
        match serve_many(std::slice::from_ref(self), deadline.into())? {
            0 if self.inner.posted.borrow().is_empty() => Err(Error::Timeout),
            ran => Ok(ran),
        }
    }

    /// Accepts new sessions and takes everything they have ready: sent
    /// messages run now, posted ones join the queue. Returns how many
    /// sent messages ran.
    fn pump(&self) -> Result<usize> {
        let inner = &self.inner;
        let mut ran = 0;
        while let Some(link) = inner.listener.try_accept() {
            let Ok(cred) = link.peer_cred() else { continue };
            let token = inner.next_token.get();
            inner.next_token.set(token + 1);
            let calls = Calls::new(link);
            if let Some(bell) = calls.doorbell() {
                inner.epoll.add(bell, token)?;
            }
            inner.sessions.borrow_mut().push(Rc::new(Session { calls: RefCell::new(calls), cred, token }));
            inner.thorough.set(true);
        }
        // A look at a session's ring costs a load; a receive that finds
        // nothing costs a clock read and more. Every session is received
        // from after a sleep (a hang-up, or a death, shows only there) and
        // when one was accepted; otherwise only those with data.
        let every = inner.thorough.replace(false);
        // By index, one at a time: a window procedure run below may pump
        // re-entrantly (and a session may come or go meanwhile).
        let mut i = 0;
        loop {
            let Some(s) = inner.sessions.borrow().get(i).cloned() else { break };
            i += 1;
            let mut thorough = every;
            loop {
                // A flood past twice the quota (only a sender that ignores
                // the count can make one) waits in its ring.
                if inner.posted.borrow().len() >= 2 * POSTED_QUOTA as usize {
                    break;
                }
                if !std::mem::take(&mut thorough) && !s.calls.borrow().ready() {
                    break;
                }
                let next = s.calls.borrow_mut().next_incoming(Deadline::now());
                match next {
                    Ok(None) => {}
                    Ok(Some(Incoming::Post { method: COPYPOST, args })) if inner.tell_closed => {
                        ran += 1;
                        // Nobody waits for the result (a refusal included).
                        let _ = self.deliver(&s.cred, COPYPOST, &args);
                        s.calls.borrow_mut().recycle(args);
                    }
                    // A posted data copy to a classic receiver: never
                    // counted against the quota, so dropped uncounted.
                    Ok(Some(Incoming::Post { method: COPYPOST, args })) => s.calls.borrow_mut().recycle(args),
                    Ok(Some(Incoming::Post { method, args })) => {
                        self.queue_post(&s, method, &args);
                        s.calls.borrow_mut().recycle(args);
                    }
                    Ok(Some(Incoming::Request { id, method, args })) => {
                        ran += 1;
                        let outcome = self.answer_bytes(&s.cred, method, &args);
                        s.calls.borrow_mut().recycle(args);
                        // Never waits: an honest sender reads its replies
                        // (a few bytes each, one send at a time), so a full
                        // reply ring is a sender that does not; it is dropped.
                        // One that gave up or died does not stop the loop.
                        let answered = s.calls.borrow_mut().answer(id, outcome.as_deref(), Deadline::now());
                        if let Ok(buf) = outcome {
                            *self.inner.reply.borrow_mut() = buf;
                        }
                        if matches!(answered, Err(Error::Timeout)) {
                            ran += self.drop_session(&s);
                            // The next session moved into this one's place.
                            i -= 1;
                            break;
                        }
                    }
                    Err(Error::Timeout) => break,
                    Err(_) => {
                        ran += self.drop_session(&s);
                        i -= 1;
                        break;
                    }
                }
            }
        }
        Ok(ran)
    }

    /// Forgets a session; 1 when the procedure heard of it (it ran), 0
    /// otherwise.
    fn drop_session(&self, s: &Rc<Session>) -> usize {
        if let Some(bell) = s.calls.borrow().doorbell() {
            let _ = self.inner.epoll.delete(bell);
        }
        self.inner.sessions.borrow_mut().retain(|x| x.token != s.token);
        if self.inner.tell_closed {
            let from = Sender { pid: s.cred.pid, uid: s.cred.uid, receiver: None };
            let m = Message { msg: SESSION_CLOSED, wparam: 0, lparam: 0, from, sent: false, data: &[] };
            (self.inner.proc_)(self, &m);
            return 1;
        }
        0
    }

    fn passes(&self, cred: &Cred, msg: u32) -> bool {
        cred.uid == self.inner.uid || self.inner.allowed.borrow().contains(&msg)
    }

    fn queue_post(&self, s: &Session, method: u32, args: &[u8]) {
        let from = Sender { pid: s.cred.pid, uid: s.cred.uid, receiver: None };
        match decode(args) {
            Some((msg, wparam, lparam)) if method == POST && self.passes(&s.cred, msg) => {
                self.inner.posted.borrow_mut().push_back(Posted { msg, wparam, lparam, from });
            }
            // Refused or malformed: the sender counted it, so uncount it.
            _ => self.inner.status.dequeued(),
        }
    }

    /// Runs the window procedure for a sent message or data copy.
    fn deliver(&self, cred: &Cred, method: u32, args: &[u8]) -> std::result::Result<i64, Fault> {
        let mut from = Sender { pid: cred.pid, uid: cred.uid, receiver: None };
        let m = match method {
            SEND => {
                let (msg, wparam, lparam) =
                    decode(args).ok_or_else(|| Fault::new(13, "a sent message that does not decode"))?;
                Message { msg, wparam, lparam, from, sent: true, data: &[] }
            }
            COPYPOST | COPYREPLY if !self.inner.tell_closed => {
                return Err(Fault::new(13, "not a message this receiver takes"));
            }
            COPYDATA | COPYPOST | COPYREPLY if args.len() >= COPY_HEADER => {
                let sender = u64::from_le_bytes(args[0..8].try_into().expect("8 bytes"));
                let tag = u64::from_le_bytes(args[8..16].try_into().expect("8 bytes"));
                from.receiver = (sender != 0).then_some(ReceiverId(sender));
                let sent = method != COPYPOST;
                Message { msg: WM_COPYDATA, wparam: sender, lparam: tag as i64, from, sent, data: &args[16..] }
            }
            _ => return Err(Fault::new(13, "not a message the session protocol knows")),
        };
        if !self.passes(cred, m.msg) {
            return Err(Fault::new(
                5,
                format!("the receiver's filter refuses message {:#x} from uid {}", m.msg, cred.uid),
            ));
        }
        Ok((self.inner.proc_)(self, &m))
    }

    /// Arms every doorbell; `true` when something is there already. Then
    /// the next pump looks at every session: what is there may be a
    /// hang-up or a death, which shows only to a receive.
    fn arm(&self) -> bool {
        let sessions: Vec<Rc<Session>> = self.inner.sessions.borrow().clone();
        let mut ready = false;
        for s in sessions {
            ready |= s.calls.borrow_mut().arm_doorbell();
        }
        if ready {
            self.inner.thorough.set(true);
        }
        ready
    }

    /// Whether some session has something (a look, no system call).
    fn ready(&self) -> bool {
        self.inner.sessions.borrow().iter().any(|s| s.calls.borrow().ready())
    }

    /// Marks the thread as waiting for messages (it is then not hung), or
    /// as back from the wait, after which every session is looked at: a
    /// hang-up or a death shows only to a receive.
    fn waiting(&self, on: bool) {
        self.inner.status.fetched(crate::raw::monotonic_ns(), on);
        if !on {
            self.inner.thorough.set(true);
        }
    }

    /// How long a sleep may last: until `deadline`, or a moment while a
    /// connector is mid-handshake (its hello rings nothing).
    fn sleep_limit(&self, deadline: Deadline) -> Option<Duration> {
        let limit = deadline.remaining();
        match self.inner.listener.handshaking() {
            true => Some(limit.map_or(HANDSHAKE_LOOK, |l| l.min(HANDSHAKE_LOOK))),
            false => limit,
        }
    }

    /// Waits for input until `deadline`: spins briefly, then sleeps on the
    /// sessions' doorbells and the listener. `false` at the deadline.
    fn sleep(&self, deadline: Deadline) -> Result<bool> {
        sleep_on(std::slice::from_ref(self), None, deadline)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if self.primary {
            crate::clipboard::receiver_closing(self);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Its sessions close with it: their senders see a broken link.
        self.status.close();
    }
}

/// Finds the receiver named `name` (S01): a handle to post and send to it.
///
/// # Errors
/// `NotFound` when no receiver has the name; `AccessDenied` when its
/// holder is another user not trusted, or its ACL refuses us.
pub fn find_receiver(name: &str) -> Result<ReceiverHandle> {
    let (scope, addr) = named_address(Family::RECEIVER, name)?;
    let opts = ShmLinkOptions { capacity: SESSION_RING, max_message: MAX_COPY, ..ShmLinkOptions::default() };
    let (link, owner, extra) = ShmLink::connect_at(Family::RECEIVER, &addr, Trust::for_scope(scope), name, opts)?;
    let status_fd =
        extra.into_iter().next().ok_or_else(|| Error::Malformed("a receiver grant without its status".into()))?;
    let status = Status::open(status_fd).map_err(status_error)?;
    Ok(ReceiverHandle { name: name.to_owned(), calls: RefCell::new(Calls::new(link)), status, owner })
}

/// Spins up to [`SPIN`] until `ready()`; whether it became so (the
/// peer on another CPU usually answers within it, saving a sleep).
fn spun_ready(mut ready: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + SPIN;
    loop {
        // The clock is read every 16 looks: a look costs a few loads, a
        // clock read as much as several looks.
        for _ in 0..16 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if Instant::now() >= until {
            return false;
        }
    }
}

fn own_cred() -> Cred {
    let (pid, uid) = (switchboard_sys::process::pid(), switchboard_sys::process::uid());
    Cred { pid, uid, gid: switchboard_sys::process::gid() }
}

/// A session with a receiver: post, send and copy data to it.
pub struct ReceiverHandle {
    name: String,
    calls: RefCell<Calls>,
    status: Status,
    owner: Cred,
}

impl std::fmt::Debug for ReceiverHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverHandle").field("name", &self.name).field("pid", &self.owner.pid).finish_non_exhaustive()
    }
}

impl ReceiverHandle {
    /// The receiver's process (classic `GetWindowThreadProcessId`).
    pub fn pid(&self) -> u32 {
        self.owner.pid
    }

    /// Another session with the same receiver (for another thread).
    ///
    /// # Errors
    /// As [`find_receiver`].
    pub fn try_clone(&self) -> Result<ReceiverHandle> {
        find_receiver(&self.name)
    }

    /// Whether the receiver still exists (classic `IsWindow`): `false`
    /// once it was destroyed or its process died.
    pub fn is_window(&self) -> bool {
        !self.calls.borrow().peer_gone()
    }

    /// Copies `data` to the receiver without waiting for its result: its
    /// procedure sees [`WM_COPYDATA`] (not sent) with `tag` when its loop
    /// takes it, after everything this handle sent before. Waits for room
    /// in the session until `deadline` (`Timeout`: nothing was queued).
    pub(crate) fn post_copydata(&self, tag: u64, data: &[u8], deadline: Deadline) -> Result<()> {
        let header = copy_header(None, tag);
        self.calls.borrow_mut().post_parts(COPYPOST, &[&header, data], deadline).map_err(gone)
    }

    /// Whether the receiver is hung (S11): its thread has not fetched
    /// messages for [`HUNG_AFTER`] and is not waiting for any.
    pub fn is_hung(&self) -> bool {
        self.status.hung(crate::raw::monotonic_ns(), HUNG_AFTER.as_nanos() as u64)
    }

    /// Queues a message and returns at once (S02).
    ///
    /// # Errors
    /// `QueueFull` (1816) when [`POSTED_QUOTA`] messages are queued
    /// (nothing is queued); `MessageSyncOnly` (1159) for [`WM_COPYDATA`];
    /// `InvalidWindowHandle` (1400) when the receiver is gone.
    pub fn post(&self, msg: u32, wparam: u64, lparam: i64) -> Result<()> {
        if msg == WM_COPYDATA {
            return Err(Error::MessageSyncOnly);
        }
        // A receiver that is gone shows in the session itself (its rings
        // closed, its process's life token): the shared status, which any
        // admitted sender could scribble on, is not asked.
        if !self.status.try_queue(POSTED_QUOTA) {
            return Err(Error::QueueFull);
        }
        // Never waits: a session ring too full for one more post (sends
        // and data copies the receiver has not taken) is a full queue too.
        let sent = self.calls.borrow_mut().post_deadline(POST, &encode(msg, wparam, lparam), Deadline::now());
        sent.map_err(|e| {
            self.status.dequeued();
            match e {
                Error::Timeout => Error::QueueFull,
                e => gone(e),
            }
        })
    }

    /// Sends a message and waits for the receiver's result (S03).
    ///
    /// # Errors
    /// `InvalidWindowHandle` (1400) when the receiver is gone or dies;
    /// `AccessDenied` when its filter refuses the message.
    pub fn send(&self, msg: u32, wparam: u64, lparam: i64) -> Result<i64> {
        self.call(SEND, &[&encode(msg, wparam, lparam)], Deadline::NEVER)
    }

    /// Sends a message and waits at most `timeout` (S03, S11); with
    /// `abort_if_hung`, a hung receiver fails at once.
    ///
    /// # Errors
    /// `Timeout` (121) as well as [`ReceiverHandle::send`]'s.
    pub fn send_timeout(
        &self,
        msg: u32,
        wparam: u64,
        lparam: i64,
        timeout: Duration,
        abort_if_hung: bool,
    ) -> Result<i64> {
        if abort_if_hung && self.is_hung() {
            return Err(Error::Timeout);
        }
        self.call(SEND, &[&encode(msg, wparam, lparam)], Deadline::after(timeout))
    }

    /// Copies `data` to the receiver, whose window procedure sees it as
    /// [`WM_COPYDATA`] with `sender` and `tag`, and returns its result (S04).
    ///
    /// # Errors
    /// As [`ReceiverHandle::send`].
    pub fn send_copydata(&self, sender: Option<ReceiverId>, tag: u64, data: &[u8]) -> Result<i64> {
        self.send_copydata_timeout(sender, tag, data, Deadline::NEVER)
    }

    /// [`ReceiverHandle::send_copydata`] with a deadline.
    ///
    /// # Errors
    /// `Timeout` as well as [`ReceiverHandle::send`]'s.
    pub fn send_copydata_timeout(
        &self,
        sender: Option<ReceiverId>,
        tag: u64,
        data: &[u8],
        deadline: impl Into<Deadline>,
    ) -> Result<i64> {
        self.call(COPYDATA, &[&copy_header(sender, tag), data], deadline.into())
    }

    /// Copies `data` to the receiver as a send whose result carries the
    /// bytes its procedure gave with [`Receiver::reply_data`] besides the
    /// number (crate-internal: a request and its data in one round trip).
    pub(crate) fn send_copydata_reply(&self, tag: u64, data: &[u8], deadline: Deadline) -> Result<(i64, Vec<u8>)> {
        let mut reply = self.call_raw(COPYREPLY, &[&copy_header(None, tag), data], deadline)?;
        if reply.len() < 8 {
            return Err(Error::Malformed("a send's result is shorter than 8 bytes".into()));
        }
        let result = i64::from_le_bytes(reply[..8].try_into().expect("8 bytes"));
        reply.drain(..8);
        Ok((result, reply))
    }

    /// Sends request `method` with its arguments in `parts` and returns the
    /// procedure's result.
    fn call(&self, method: u32, parts: &[&[u8]], deadline: Deadline) -> Result<i64> {
        let reply = self.call_raw(method, parts, deadline)?;
        let bytes: Option<[u8; 8]> = reply.as_slice().try_into().ok();
        self.calls.borrow_mut().recycle(reply);
        bytes.map(i64::from_le_bytes).ok_or_else(|| Error::Malformed("a send's result is not 8 bytes".into()))
    }

    /// Sends request `method` with its arguments in `parts` (joined only
    /// for a receiver of this thread) and returns the result's bytes.
    fn call_raw(&self, method: u32, parts: &[&[u8]], deadline: Deadline) -> Result<Vec<u8>> {
        let mine: Vec<Receiver> = MINE.with(|m| {
            m.borrow().iter().filter_map(Weak::upgrade).map(|inner| Receiver { inner, primary: false }).collect()
        });
        let own = (self.owner.pid == switchboard_sys::process::pid())
            .then(|| mine.iter().find(|r| r.inner.id.0 == self.status.id()))
            .flatten();
        if let Some(rx) = own {
            // A receiver of this thread: its procedure runs here and now,
            // as a classic send to one's own window does.
            let outcome = rx.answer_bytes(&own_cred(), method, &parts.concat());
            return outcome.map_err(|f| Error::Remote { code: f.code, message: f.message });
        }
        let reply = if mine.is_empty() {
            // Nothing to serve meanwhile: the link's own wait (spin, then futex).
            let mut calls = self.calls.borrow_mut();
            calls.begin_parts(method, parts, deadline).and_then(|call| calls.finish(call, deadline))
        } else {
            self.call_serving(method, parts, deadline, &mine)
        };
        reply.map_err(gone)
    }

    /// A send from a thread that owns receivers: while it waits, sent
    /// messages to them run (S03), re-entrantly.
    fn call_serving(
        &self,
        method: u32,
        parts: &[&[u8]],
        deadline: Deadline,
        receivers: &[Receiver],
    ) -> Result<Vec<u8>> {
        let call = self.calls.borrow_mut().begin_parts(method, parts, deadline)?;
        let outcome = (|| loop {
            {
                let mut calls = self.calls.borrow_mut();
                loop {
                    match calls.next_incoming(Deadline::now()) {
                        // A reply: ours returns now (no look for more).
                        Ok(None) => {
                            if let Some(reply) = calls.reply_to(&call) {
                                return reply;
                            }
                        }
                        // The receiver side never requests: refuse it.
                        Ok(Some(Incoming::Request { id, .. })) => {
                            let refused = Fault::new(1, "a sender serves no requests");
                            calls.answer(id, Err(&refused), Deadline::now())?;
                        }
                        Ok(Some(Incoming::Post { .. })) => {}
                        Err(Error::Timeout) => break,
                        // The reply may have come just before the end (a
                        // receiver that answered, then went).
                        Err(e) => return calls.reply_to(&call).unwrap_or(Err(e)),
                    }
                }
                if let Some(reply) = calls.reply_to(&call) {
                    return reply;
                }
            }
            for r in receivers {
                r.pump()?;
            }
            if deadline.passed() {
                return Err(Error::Timeout);
            }
            self.sleep_serving(receivers, deadline)?;
        })();
        if matches!(outcome, Err(Error::Timeout)) {
            let _ = self.calls.borrow_mut().cancel(call);
        }
        outcome
    }

    fn sleep_serving(&self, receivers: &[Receiver], deadline: Deadline) -> Result<bool> {
        sleep_on(receivers, Some(&self.calls), deadline)
    }
}

/// Waits until one of `receivers` (or `calls`) has input or `deadline`
/// passes: spins briefly, then sleeps on all of them at once. `false` at
/// the deadline with nothing there.
fn sleep_on(receivers: &[Receiver], calls: Option<&RefCell<Calls>>, deadline: Deadline) -> Result<bool> {
    let calls_ready = || calls.is_some_and(|c| c.borrow().ready());
    if spun_ready(|| calls_ready() || receivers.iter().any(Receiver::ready)) {
        return Ok(true);
    }
    if calls.is_some_and(|c| c.borrow_mut().arm_doorbell()) || receivers.iter().any(Receiver::arm) {
        return Ok(true);
    }
    if deadline.passed() {
        return Ok(false);
    }
    let calls = calls.map(RefCell::borrow);
    let mut fds: Vec<_> = receivers.iter().map(|r| r.inner.epoll.as_fd()).collect();
    fds.extend(calls.as_ref().and_then(|c| c.doorbell()));
    for r in receivers {
        r.waiting(true);
    }
    let limit = receivers.iter().filter_map(|r| r.sleep_limit(deadline)).min().or(deadline.remaining());
    let woke = switchboard_sys::socket::poll_readable(&fds, limit);
    for r in receivers {
        r.waiting(false);
    }
    Ok(woke?.contains(&true) || !deadline.passed())
}

/// Runs the sent messages (and data posts) that reach any of `receivers`,
/// waiting until `deadline` for the first: how many ran, or 0 at the
/// deadline or when one of them has a posted message queued. The loop of
/// a thread that owns several receivers (a DDE instance's).
pub(crate) fn serve_many(receivers: &[Receiver], deadline: Deadline) -> Result<usize> {
    loop {
        let mut ran = 0;
        for r in receivers {
            ran += r.pump()?;
        }
        // After the pump: what arrived is served first.
        let now = crate::raw::monotonic_ns();
        for r in receivers {
            r.inner.status.fetched(now, false);
        }
        if ran > 0 || receivers.iter().any(|r| !r.inner.posted.borrow().is_empty()) || deadline.passed() {
            return Ok(ran);
        }
        sleep_on(receivers, None, deadline)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::Link;

    const LONG: Duration = Duration::from_secs(60);

    /// A raw session to `name`, speaking the call layer by hand.
    fn raw_session(name: &str) -> Calls {
        let (_, addr) = named_address(Family::RECEIVER, name).unwrap();
        let opts = ShmLinkOptions { capacity: 4096, ..ShmLinkOptions::default() };
        let (link, _, _) = ShmLink::connect_at(Family::RECEIVER, &addr, Trust::User, name, opts).unwrap();
        Calls::new(link)
    }

    /// Serves `rx` until `done` is set (by the attacker's thread).
    fn serve_until(rx: &Receiver, done: &std::sync::atomic::AtomicBool) {
        let until = Instant::now() + LONG;
        while !done.load(Ordering::SeqCst) {
            assert!(Instant::now() < until, "the attack never finished");
            match rx.get(Duration::from_millis(10)) {
                Ok(_) | Err(Error::Timeout) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// A sender that floods sends and never reads a reply cannot hold the
    /// receiver's thread: its reply ring fills, its session is dropped,
    /// and the loop goes on serving others.
    #[test]
    fn a_sender_that_never_reads_its_replies_is_dropped_and_the_loop_goes_on() {
        let name = format!("unit-msg-noreader-{}", std::process::id());
        let rx = Receiver::create(&name, |_, m| m.wparam as i64).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let attacker = std::thread::spawn({
            let (name, done) = (name.clone(), done.clone());
            move || {
                let mut calls = raw_session(&name);
                // Far more replies than a 4 KiB ring holds; stops when the
                // receiver drops the session (the link breaks).
                let mut sent = 0;
                while sent < 100_000 && calls.begin(SEND, &encode(WM_USER, 1, 0)).is_ok() {
                    sent += 1;
                }
                done.store(true, Ordering::SeqCst);
                sent
            }
        });
        serve_until(&rx, &done);
        let sent = attacker.join().unwrap();
        assert!(sent < 100_000, "the session was dropped ({sent} sends got in)");
        let honest = std::thread::spawn({
            let name = name.clone();
            move || find_receiver(&name).unwrap().send(WM_USER, 7, 0).unwrap()
        });
        let until = Instant::now() + LONG;
        while !honest.is_finished() {
            assert!(Instant::now() < until);
            let _ = rx.peek(true);
        }
        assert_eq!(honest.join().unwrap(), 7);
    }

    /// Garbage from a sender (bodies that do not decode, unknown methods,
    /// replies to nothing, a post of the wrong size) is refused or dropped;
    /// nothing panics, and the same session's next send is answered.
    #[test]
    fn garbage_from_a_sender_is_refused_and_the_session_goes_on() {
        let name = format!("unit-msg-garbage-{}", std::process::id());
        let rx = Receiver::create(&name, |_, m| m.wparam as i64 + 1).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let attacker = std::thread::spawn({
            let (name, done) = (name.clone(), done.clone());
            move || {
                let mut calls = raw_session(&name);
                let mut faults = Vec::new();
                for (method, body) in [(SEND, vec![1u8; 3]), (99, vec![]), (COPYDATA, vec![0u8; 15])] {
                    match calls.send(method, &body, LONG) {
                        Err(Error::Remote { code, .. }) => faults.push(code.win32()),
                        other => panic!("{other:?}"),
                    }
                }
                calls.post(POST, &[1, 2, 3]).unwrap();
                calls.post(77, &encode(WM_USER, 0, 0)).unwrap();
                let ok = calls.send(SEND, &encode(WM_USER, 41, 0), LONG).unwrap();
                done.store(true, Ordering::SeqCst);
                (faults, ok)
            }
        });
        serve_until(&rx, &done);
        let (faults, ok) = attacker.join().unwrap();
        assert_eq!(faults, [13, 13, 13]);
        assert_eq!(ok, 42i64.to_le_bytes());
        assert!(rx.peek(true).unwrap().is_none(), "the malformed posts were dropped");
    }

    /// A classic receiver never sees a posted data copy or a data reply
    /// (crate-internal methods of DDE's receivers): the post is dropped,
    /// the send refused, and its procedure does not run for either.
    #[test]
    fn a_classic_receiver_refuses_the_internal_data_methods() {
        let name = format!("unit-msg-internal-{}", std::process::id());
        let ran = std::rc::Rc::new(std::cell::Cell::new(0));
        let count = ran.clone();
        let rx = Receiver::create(&name, move |_, _| {
            count.set(count.get() + 1);
            0
        })
        .unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let attacker = std::thread::spawn({
            let (name, done) = (name.clone(), done.clone());
            move || {
                let mut calls = raw_session(&name);
                calls.post(COPYPOST, &[0u8; COPY_HEADER]).unwrap();
                let refused = calls.send(COPYREPLY, &[0u8; COPY_HEADER], LONG);
                let ok = calls.send(SEND, &encode(WM_USER, 1, 0), LONG);
                done.store(true, Ordering::SeqCst);
                (refused.map_err(|e| e.win32()), ok.is_ok())
            }
        });
        serve_until(&rx, &done);
        let (refused, ok) = attacker.join().unwrap();
        assert_eq!(refused, Err(13));
        assert!(ok);
        assert_eq!(ran.get(), 1, "only the plain send ran the procedure");
    }

    /// The abandon record of a part-way send: the receiver drops the part
    /// it had, and the next message arrives whole.
    #[test]
    fn a_send_abandoned_part_way_is_dropped_whole_by_the_peer() {
        let opts = ShmLinkOptions { capacity: 4096, ..ShmLinkOptions::default() };
        let (mut a, mut b) = ShmLink::pair(opts).unwrap();
        let big = vec![7u8; 64 * 1024];
        assert!(matches!(a.send_deadline(&big, Deadline::after(Duration::from_millis(20))), Err(Error::Timeout)));
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            b.recv_timeout(&mut got, LONG).unwrap();
            got
        });
        a.send(b"next").unwrap();
        assert_eq!(reader.join().unwrap(), b"next");
    }
}
