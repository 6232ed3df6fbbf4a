//! Dynamic Data Exchange at the DDEML level (spec 07): services, topics and
//! items; conversations; request, poke and execute with their
//! acknowledgements; hot, warm and ack-paced advise loops; blocked and
//! asynchronous transactions — built on window messages, as the classic
//! one is.
//!
//! ## How it works
//! An instance ([`Dde`], classic `DdeInitialize`) belongs to one thread
//! and owns [receivers](crate::message::Receiver): its own, where
//! acknowledgements, data and advise updates arrive, and one per service
//! it registers ([`Dde::register`], named `ddes.<hash of the service>.…`
//! so that clients find every server of a service by listing names). A
//! conversation is a pair of receivers: the client's and the server's
//! service receiver, each holding a session to the other.
//!
//! - [`Dde::connect`] offers the conversation to every server of the
//!   service (S02). The offer is a *sent* data copy; the server's callback
//!   accepts or refuses ([`Event::Connect`]), and an accepting server
//!   connects back to the client's receiver.
//! - A synchronous transaction ([`Conversation::request`], …) is a *sent*
//!   data copy whose result carries the status and a request's data: one
//!   round trip. While it waits, the thread serves what reaches its
//!   receivers (advise updates, transactions to its own services), so two
//!   instances that call each other do not deadlock. One the server holds
//!   ([`Reply::Block`]) comes back pending and completes later with a
//!   posted acknowledgement, the loop running meanwhile.
//! - Asynchronous transactions ([`Conversation::request_async`], …) and
//!   advise updates are *posted* data copies: they run when the partner's
//!   loop takes them, in order, and the outcome is posted back.
//! - A peer's death ends its conversations at once: its sessions close,
//!   the receiver tells the instance, and pending transactions fail with
//!   `ServerDied` (S10) — no polling, no hang.
//!
//! Callbacks run only on the instance's thread, while the thread is in a
//! loop: [`Dde::pump`]/[`Dde::serve`] of any of its instances (a thread's
//! loop serves all its instances, as a classic message loop serves all the
//! thread's windows), or a wait in a synchronous transaction or a connect.
//!
//! ## Decisions where the classic API leaves room
//! - Services are per user: another user's process cannot find, offer or
//!   squat them (a receiver of another uid is skipped at connect).
//! - Error codes are the real DDEML ones ([`dmlerr`]): `DMLERR_SERVER_DIED`
//!   is 0x400E (the spec's 0x400F is `DMLERR_SYS_ERROR`).
//! - Every server answers the `System` topic itself: it accepts it without
//!   asking the callback, and answers `Topics`, `SysItems`, `Formats`,
//!   `Status` and `Help` unless the callback answers them first (S03).
//!   `Topics` lists what the callback answers to [`Event::WildConnect`].
//! - An advise update to a client whose session is full waits up to
//!   [`ADVISE_PATIENCE`]; a client that lets it pass is hung, and its loop
//!   then keeps only the latest value, delivered when it reads again (a
//!   client that never reads cannot stall the server twice).
//! - Data is bytes tagged with a clipboard format; text is sent as its
//!   bytes, with no NUL (a NUL-terminated one is accepted and trimmed by
//!   the text helpers).
//! - Re-entrancy is allowed: a callback may start transactions (the classic
//!   `DMLERR_REENTRANCY` is never returned).
//!
//! ```
//! use std::time::Duration;
//! use switchboard::dde::{Dde, Event, Reply};
//!
//! let service = format!("doc-dde-{}", std::process::id());
//! let server = Dde::new(|_, e| match e {
//!     Event::Connect { topic, .. } if topic.eq_ignore_ascii_case("Sheet1") => Reply::Ack,
//!     Event::Request { item, .. } if *item == "R1C1" => Reply::Data(b"42".to_vec()),
//!     _ => Reply::NotProcessed,
//! })?;
//! server.register(&service)?;
//! // A client instance in the same thread: its waits run the server's callbacks.
//! let client = Dde::new(|_, _| Reply::NotProcessed)?;
//! let conv = client.connect(&service, "sheet1")?; // names are case-insensitive
//! assert_eq!(conv.request_text("R1C1", Duration::from_secs(10))?, "42");
//! # Ok::<(), switchboard::Error>(())
//! ```

mod conversation;
mod event;
pub mod sheet;
mod wire;

pub use conversation::Conversation;
pub use event::{dmlerr, ConvId, Enable, Event, Reply, TxnId};

use std::cell::{OnceCell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub use wire::NAME_MAX;
use wire::{decode, encode, fold, valid_name, Wire, TAG};

use crate::error::{Error, Result};
use crate::message::{self, find_receiver, Message, Receiver, ReceiverHandle, SESSION_CLOSED, WM_COPYDATA};
use crate::name::Scope;
use crate::rendezvous::{self, Family};
use crate::time::Deadline;

/// The topic every server answers (S03).
pub const SYSTEM: &str = "System";
/// `System` item: the server's topics, tab-separated.
pub const ITEM_TOPICS: &str = "Topics";
/// `System` item: the `System` topic's items.
pub const ITEM_SYSITEMS: &str = "SysItems";
/// `System` item: the formats the server renders, richest first.
pub const ITEM_FORMATS: &str = "Formats";
/// `System` item: `Ready`, or `Busy` while callbacks are disabled.
pub const ITEM_STATUS: &str = "Status";
/// `System` item: a line of help.
pub const ITEM_HELP: &str = "Help";

/// How long a connect waits for each server's answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an advise update waits for room in a client's session.
pub const ADVISE_PATIENCE: Duration = Duration::from_secs(5);
/// How long an acknowledgement waits for room in the partner's session.
const REPLY_PATIENCE: Duration = Duration::from_secs(1);
/// Transactions (and updates) a held conversation keeps at most; past
/// that, `DMLERR_BUSY` (the classic posted-message quota).
pub const HELD_MAX: usize = crate::message::POSTED_QUOTA as usize;
/// How often the loop retries a held-back update while one is pending.
const RETRY: Duration = Duration::from_millis(10);

type Callback = dyn Fn(&Dde, &Event<'_>) -> Reply;

/// Hashing of this instance's own ids (conversations, transactions):
/// sequence numbers it made, not a peer's choice, so a multiplicative mix
/// does (SipHash's flood resistance buys nothing here and costs a round
/// trip's tenth).
#[derive(Clone, Copy, Default)]
struct Ids;

/// See [`Ids`].
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::BuildHasher for Ids {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A sent transaction's result when it is held: its outcome comes later,
/// as a posted `Done` (not a `DMLERR_*`, nor 0).
const PENDING: i64 = 1;

/// How running a transaction through the callback ended.
enum Ran {
    /// The callback blocked it (`CBR_BLOCK`).
    Blocked,
    /// It needs no answer (an advise update), or its conversation ended.
    Over,
    /// Its answer: a status (0 or `DMLERR_*`) and a request's data.
    Answer { txn: u64, status: u16, data: Option<Vec<u8>> },
}

/// An advise loop, server side.
struct Loop {
    item: String,
    folded: String,
    format: u32,
    warm: bool,
    ackreq: bool,
    /// An ack-paced loop's update is out and not acknowledged.
    awaiting: bool,
    /// An update is held back (awaiting an ack, or a full session).
    pending: bool,
    /// The last update found the client's session full.
    stalled: bool,
}

struct Conv {
    /// Whether this instance is the conversation's client.
    client: bool,
    peer: Rc<ReceiverHandle>,
    peer_conv: u64,
    peer_pid: u32,
    service: Rc<str>,
    topic: Rc<str>,
    /// Client side: why it ended (kept until its handle is dropped).
    ended: Option<u16>,
    /// Held by `Block` or `Disable`: transactions to replay, in order.
    held: bool,
    queue: VecDeque<Vec<u8>>,
    loops: Vec<Loop>,
    /// Client side: its handle was dropped; it goes when it ends.
    dropped: bool,
}

impl Conv {
    fn new(client: bool, peer: ReceiverHandle, peer_conv: u64, peer_pid: u32, service: &str, topic: &str) -> Conv {
        Conv {
            client,
            peer: Rc::new(peer),
            peer_conv,
            peer_pid,
            service: service.into(),
            topic: topic.into(),
            ended: None,
            held: false,
            queue: VecDeque::new(),
            loops: Vec::new(),
            dropped: false,
        }
    }
}

struct Txn {
    conv: ConvId,
    asynchronous: bool,
    outcome: Option<Result<Vec<u8>>>,
}

#[derive(Default)]
struct State {
    next: u64,
    convs: HashMap<ConvId, Conv, Ids>,
    txns: HashMap<u64, Txn, Ids>,
    /// Wildcard answers awaited, by ask id.
    pairs: HashMap<u64, Option<Vec<(String, String)>>>,
    disabled: bool,
    /// Processes a session from which closed since the loop last looked.
    closed: Vec<u32>,
    /// Conversations whose transaction's callback runs now (innermost
    /// last), and those of them the callback disconnected: they end once
    /// the transaction is answered.
    running: Vec<ConvId>,
    ending: Vec<ConvId>,
    /// Updates that found a session full since the loop last found none
    /// (0: no loop to look at).
    stalls: usize,
}

struct Service {
    name: String,
    folded: String,
    receiver: Receiver,
}

struct Shared {
    /// The instance's own receiver's name (where partners post back).
    name: String,
    /// Set once, right after the instance is made (its procedure needs a
    /// weak reference to the instance).
    own: OnceCell<Receiver>,
    services: RefCell<Vec<Service>>,
    state: RefCell<State>,
    callback: Box<Callback>,
}

thread_local! {
    /// This thread's instances: its loop serves them all.
    static INSTANCES: RefCell<Vec<Weak<Shared>>> = const { RefCell::new(Vec::new()) };
    /// Their receivers, as the loop serves them (`None`: to be made again,
    /// after an instance or a service came or went).
    static VIEWS: RefCell<Option<Rc<[Receiver]>>> = const { RefCell::new(None) };
    /// Sessions that closed and that some instance has not looked at yet.
    static CLOSED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// This thread's live instances.
fn thread_instances() -> Vec<Dde> {
    INSTANCES.with(|all| all.borrow().iter().filter_map(Weak::upgrade).map(|shared| Dde { shared }).collect())
}

/// An instance or a service came or went: the loop's receivers change.
fn receivers_changed() {
    let _ = VIEWS.try_with(|v| v.borrow_mut().take());
}

/// A DDE instance (see the module docs): a thread's client and server
/// side. Cheap to clone (the clones are the same instance); not `Send`.
#[derive(Clone)]
pub struct Dde {
    shared: Rc<Shared>,
}

impl std::fmt::Debug for Dde {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dde").field("name", &self.shared.name).finish_non_exhaustive()
    }
}

fn dde(code: u16) -> Error {
    Error::Dde(code)
}

fn check_name(what: &'static str, n: &str) -> Result<()> {
    match valid_name(n) {
        true => Ok(()),
        false => Err(Error::InvalidName { name: n.to_owned(), why: what }),
    }
}

fn check_item(item: &str) -> Result<()> {
    check_name("a DDE item name is 1..=255 characters, with no NUL", item)
}

/// A transaction that could not reach its server, as DDEML says it:
/// `timeout_code` at the deadline, `SERVER_DIED` when the server is gone.
fn transaction_error(e: Error, timeout_code: u16) -> Error {
    match e {
        Error::Timeout => dde(timeout_code),
        Error::InvalidWindowHandle | Error::BrokenPipe => dde(dmlerr::SERVER_DIED),
        other => other,
    }
}

/// The receiver a client named as its own, if it is one of process `pid`
/// (the offer's kernel-reported sender): a client cannot make a server
/// talk to someone else's receiver.
fn client_receiver(client: &str, pid: u32) -> Option<ReceiverHandle> {
    find_receiver(client).ok().filter(|p| p.pid() == pid)
}

/// The receiver-name prefix of every server of `service` (or of all).
fn service_prefix(service: Option<&str>) -> String {
    match service {
        Some(s) => format!("ddes.{:016x}.", crate::clipboard::fnv64(fold(s).as_bytes())),
        None => "ddes.".to_owned(),
    }
}

/// The receivers of this user's servers of `service` (every server: `None`).
fn servers_of(service: Option<&str>) -> Vec<String> {
    let family = rendezvous::family_prefix(Family::RECEIVER, Scope::Local);
    let mut prefix = family.clone();
    prefix.extend_from_slice(service_prefix(service).as_bytes());
    switchboard_sys::socket::list_abstract_listeners(&prefix)
        .into_iter()
        .filter_map(|l| String::from_utf8(l.name[family.len()..].to_vec()).ok())
        .collect()
}

fn unique_suffix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!("{}.{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The status a callback's reply to a transaction acknowledges with;
/// `None` when it blocked the transaction.
fn ack_status(r: &Reply) -> Option<u16> {
    match r {
        Reply::Ack | Reply::Data(_) => Some(0),
        Reply::Busy => Some(dmlerr::BUSY),
        Reply::Block => None,
        Reply::NotProcessed | Reply::Pairs(_) => Some(dmlerr::NOTPROCESSED),
    }
}

/// How a conversation ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// This instance disconnects: the partner is told; no callback here.
    Local,
    /// The partner disconnected.
    Partner,
    /// The partner died (or its receiver is gone).
    Died,
}

/// A receiver of the instance: its own (`service` `None`) or a service's
/// (as registered, and folded).
fn make_receiver(name: &str, weak: Weak<Shared>, service: Option<(String, String)>) -> Result<Receiver> {
    Receiver::builder(name).tell_closed().create(move |rx, m| match weak.upgrade() {
        Some(shared) => Dde { shared }.on_message(rx, m, service.as_ref()),
        None => 0,
    })
}

impl Dde {
    /// A new instance on this thread, with its callback (classic
    /// `DdeInitialize`). The callback runs only on this thread, while the
    /// instance is in its loop.
    ///
    /// # Errors
    /// A system error creating its receiver.
    pub fn new(callback: impl Fn(&Dde, &Event<'_>) -> Reply + 'static) -> Result<Dde> {
        let name = format!("dde.{}", unique_suffix());
        let shared = Rc::new(Shared {
            name,
            own: OnceCell::new(),
            services: RefCell::new(Vec::new()),
            state: RefCell::new(State::default()),
            callback: Box::new(callback),
        });
        let own = make_receiver(&shared.name, Rc::downgrade(&shared), None)?;
        let _ = shared.own.set(own);
        INSTANCES.with(|all| all.borrow_mut().push(Rc::downgrade(&shared)));
        receivers_changed();
        Ok(Dde { shared })
    }

    /// Registers `service` (classic `DdeNameService(DNS_REGISTER)`):
    /// clients of this user can connect to it from now on.
    ///
    /// # Errors
    /// `InvalidName` for an empty name, one over 255 characters or with a
    /// NUL; `AlreadyExists` when this instance has it already.
    pub fn register(&self, service: &str) -> Result<()> {
        check_name("a DDE service name is 1..=255 characters, with no NUL", service)?;
        let folded = fold(service);
        if self.shared.services.borrow().iter().any(|s| s.folded == folded) {
            return Err(Error::AlreadyExists(service.to_owned()));
        }
        let name = format!("{}{}", service_prefix(Some(service)), unique_suffix());
        let receiver = make_receiver(&name, Rc::downgrade(&self.shared), Some((service.to_owned(), folded.clone())))?;
        self.shared.services.borrow_mut().push(Service { name: service.to_owned(), folded, receiver });
        receivers_changed();
        Ok(())
    }

    /// Unregisters `service`: its conversations end (their clients are
    /// told) and no new ones reach it.
    ///
    /// # Errors
    /// `NotFound` when this instance has not registered it.
    pub fn unregister(&self, service: &str) -> Result<()> {
        let folded = fold(service);
        let removed = {
            let mut services = self.shared.services.borrow_mut();
            let at = services.iter().position(|s| s.folded == folded);
            at.map(|at| services.remove(at))
        };
        let Some(removed) = removed else { return Err(Error::NotFound(format!("DDE service {service:?}"))) };
        receivers_changed();
        let convs: Vec<ConvId> = {
            let st = self.shared.state.borrow();
            st.convs.iter().filter(|(_, c)| !c.client && fold(&c.service) == folded).map(|(id, _)| *id).collect()
        };
        for conv in convs {
            self.end(conv, Ending::Local);
        }
        drop(removed);
        Ok(())
    }

    /// Offers a conversation on (`service`, `topic`) to every server of
    /// the service, and keeps the first that accepts (S02).
    ///
    /// # Errors
    /// `Dde(NO_CONV_ESTABLISHED)` when none accepts; `InvalidName`.
    pub fn connect(&self, service: &str, topic: &str) -> Result<Conversation> {
        check_name("a DDE service name is 1..=255 characters, with no NUL", service)?;
        check_name("a DDE topic name is 1..=255 characters, with no NUL", topic)?;
        for server in servers_of(Some(service)) {
            if let Ok(Some(conv)) = self.initiate(&server, service, topic) {
                return Ok(self.conversation(conv));
            }
        }
        Err(dde(dmlerr::NO_CONV_ESTABLISHED))
    }

    /// One conversation per (service, topic) pair a server accepts, over
    /// every server; `None` is a wildcard (classic `DdeConnectList`, S02).
    ///
    /// # Errors
    /// `Dde(NO_CONV_ESTABLISHED)` when none accepts.
    pub fn connect_list(&self, service: Option<&str>, topic: Option<&str>) -> Result<Vec<Conversation>> {
        let mut out = Vec::new();
        for server in servers_of(service) {
            let pairs = match (service, topic) {
                (Some(s), Some(t)) => vec![(s.to_owned(), t.to_owned())],
                _ => self.ask_pairs(&server, service, topic).unwrap_or_default(),
            };
            for (s, t) in pairs {
                if let Ok(Some(conv)) = self.initiate(&server, &s, &t) {
                    out.push(self.conversation(conv));
                }
            }
        }
        match out.is_empty() {
            true => Err(dde(dmlerr::NO_CONV_ESTABLISHED)),
            false => Ok(out),
        }
    }

    /// The (service, topic) pairs every server would accept, without
    /// connecting (classic `XTYP_WILDCONNECT`); `None` is a wildcard.
    pub fn wildconnect(&self, service: Option<&str>, topic: Option<&str>) -> Vec<(String, String)> {
        servers_of(service).iter().flat_map(|s| self.ask_pairs(s, service, topic).unwrap_or_default()).collect()
    }

    /// Tells every advise loop on (`topic`, `item`) of this instance's
    /// conversations that the item changed (classic `DdePostAdvise`, S06):
    /// hot loops get the value the callback gives for
    /// [`Event::AdviseRequest`], warm ones a notification; an ack-paced
    /// loop waiting for its ack keeps the latest for then (S07). Returns
    /// how many loops it reached.
    pub fn post_advise(&self, topic: &str, item: &str) -> usize {
        let (topic, item) = (fold(topic), fold(item));
        let targets: Vec<(ConvId, u32)> = {
            let st = self.shared.state.borrow();
            st.convs
                .iter()
                .filter(|(_, c)| !c.client && fold(&c.topic) == topic)
                .flat_map(|(id, c)| c.loops.iter().filter(|l| l.folded == item).map(move |l| (*id, l.format)))
                .collect()
        };
        for (conv, format) in &targets {
            self.update(*conv, &item, *format);
        }
        targets.len()
    }

    /// Holds or runs transactions (classic `DdeEnableCallback`, S08): for
    /// conversation `conv`, or every one (`None`). Held transactions run
    /// in the order they arrived.
    ///
    /// # Errors
    /// `Dde(NO_CONV_ESTABLISHED)` for a conversation this instance does
    /// not have.
    pub fn enable_callback(&self, conv: Option<ConvId>, how: Enable) -> Result<()> {
        let targets: Vec<ConvId> = {
            let mut st = self.shared.state.borrow_mut();
            if let Some(c) = conv {
                if !st.convs.contains_key(&c) {
                    return Err(dde(dmlerr::NO_CONV_ESTABLISHED));
                }
            }
            if conv.is_none() {
                st.disabled = how == Enable::Disable;
            }
            let mut ids: Vec<ConvId> = st.convs.keys().copied().filter(|id| conv.is_none_or(|c| c == *id)).collect();
            ids.sort_unstable();
            for id in &ids {
                let c = st.convs.get_mut(id).expect("listed");
                c.held = match how {
                    Enable::All => false,
                    Enable::One => c.held,
                    Enable::Disable => true,
                };
            }
            ids
        };
        match how {
            Enable::Disable => {}
            Enable::All => targets.iter().for_each(|c| self.replay(*c, usize::MAX)),
            Enable::One => {
                let first = {
                    let st = self.shared.state.borrow();
                    targets.iter().copied().find(|id| st.convs.get(id).is_some_and(|c| !c.queue.is_empty()))
                };
                if let Some(c) = first {
                    self.replay(c, 1);
                }
            }
        }
        Ok(())
    }

    /// Ends server-side conversation `conv` (classic `DdeDisconnect`); its
    /// client is told (S10). A client ends its own by dropping its
    /// [`Conversation`].
    ///
    /// # Errors
    /// `Dde(NO_CONV_ESTABLISHED)` when there is no such conversation.
    pub fn disconnect(&self, conv: ConvId) -> Result<()> {
        let known = self.shared.state.borrow().convs.get(&conv).is_some_and(|c| !c.client);
        if !known {
            return Err(dde(dmlerr::NO_CONV_ESTABLISHED));
        }
        self.end(conv, Ending::Local);
        Ok(())
    }

    /// Cancels asynchronous transaction `txn` (classic
    /// `DdeAbandonTransaction`, S09): its completion is never reported.
    ///
    /// # Errors
    /// `Dde(UNFOUND_QUEUE_ID)` when it is not pending.
    pub fn abandon(&self, txn: TxnId) -> Result<()> {
        let mut st = self.shared.state.borrow_mut();
        match st.txns.get(&txn.0) {
            Some(t) if t.asynchronous => {
                st.txns.remove(&txn.0);
                Ok(())
            }
            _ => Err(dde(dmlerr::UNFOUND_QUEUE_ID)),
        }
    }

    /// Runs the instance's loop once: waits until `deadline` for messages,
    /// runs the callbacks they call for, and returns how many arrived
    /// (0 at the deadline).
    ///
    /// # Errors
    /// A system error in the loop.
    pub fn pump(&self, deadline: impl Into<Deadline>) -> Result<usize> {
        let mut deadline = deadline.into();
        if self.has_stalled() {
            let retry = Deadline::after(RETRY);
            if deadline.instant().is_none_or(|d| retry.instant().is_some_and(|r| r < d)) {
                deadline = retry;
            }
        }
        // A session that closed while the thread served re-entrantly (in
        // a send) is looked at now, not after a sleep.
        if CLOSED.with(std::cell::Cell::get) > 0 {
            deadline = Deadline::now();
        }
        let views = self.views();
        let ran = message::serve_many(&views, deadline)?;
        // Nothing of DDE is a plain post: whatever is queued is dropped.
        views.iter().for_each(Receiver::discard_posted);
        if CLOSED.with(std::cell::Cell::get) > 0 {
            // A peer's last answers may wait in its other sessions (one not
            // accepted yet included): take everything first.
            while message::serve_many(&views, Deadline::now())? > 0 {}
            for instance in thread_instances() {
                let closed = std::mem::take(&mut instance.shared.state.borrow_mut().closed);
                CLOSED.with(|c| c.set(c.get().saturating_sub(closed.len())));
                for pid in closed {
                    instance.peer_closed(pid);
                }
            }
        }
        self.flush_stalled();
        Ok(ran)
    }

    /// Runs the loop until `deadline` (a server's message loop).
    ///
    /// # Errors
    /// As [`Dde::pump`].
    pub fn serve(&self, deadline: impl Into<Deadline>) -> Result<()> {
        let deadline = deadline.into();
        loop {
            self.pump(deadline)?;
            if deadline.passed() {
                return Ok(());
            }
        }
    }

    /// The services this instance registered.
    pub fn services(&self) -> Vec<String> {
        self.shared.services.borrow().iter().map(|s| s.name.clone()).collect()
    }

    /// How many conversations this instance is in (either side, not ended).
    pub fn conversations(&self) -> usize {
        self.shared.state.borrow().convs.values().filter(|c| c.ended.is_none()).count()
    }

    fn conversation(&self, id: ConvId) -> Conversation {
        Conversation { dde: self.clone(), id }
    }

    /// The receivers of every instance of this thread: a thread's loop
    /// serves all its instances, as a classic message loop serves all the
    /// thread's windows (a client and a server on one thread do not
    /// deadlock).
    fn views(&self) -> Rc<[Receiver]> {
        if let Some(v) = VIEWS.with(|v| v.borrow().clone()) {
            return v;
        }
        let views: Rc<[Receiver]> = INSTANCES.with(|all| {
            let mut all = all.borrow_mut();
            all.retain(|w| w.strong_count() > 0);
            all.iter()
                .filter_map(Weak::upgrade)
                .flat_map(|shared| {
                    let own = shared.own.get().map(Receiver::view);
                    let services: Vec<Receiver> = shared.services.borrow().iter().map(|s| s.receiver.view()).collect();
                    own.into_iter().chain(services)
                })
                .collect()
        });
        VIEWS.with(|v| *v.borrow_mut() = Some(views.clone()));
        views
    }

    fn call(&self, e: &Event<'_>) -> Reply {
        (self.shared.callback)(self, e)
    }

    fn next_id(&self) -> u64 {
        let mut st = self.shared.state.borrow_mut();
        st.next += 1;
        st.next
    }

    /// Runs the loop until `done` holds or `deadline` passes (`false`).
    fn wait_for(&self, deadline: Deadline, done: impl Fn(&State) -> bool) -> Result<bool> {
        loop {
            if done(&self.shared.state.borrow()) {
                return Ok(true);
            }
            if deadline.passed() {
                return Ok(false);
            }
            self.pump(deadline)?;
        }
    }

    /// Offers (`service`, `topic`) to the server at receiver `server`.
    fn initiate(&self, server: &str, service: &str, topic: &str) -> Result<Option<ConvId>> {
        let peer = find_receiver(server)?;
        let id = self.next_id();
        let offer = encode(&Wire::Initiate { service, topic, client: &self.shared.name, client_conv: id });
        let accepted = peer.send_copydata_timeout(None, TAG, &offer, Deadline::after(CONNECT_TIMEOUT))?;
        if accepted <= 0 {
            return Ok(None);
        }
        let pid = peer.pid();
        let conv = Conv::new(true, peer, accepted as u64, pid, service, topic);
        self.shared.state.borrow_mut().convs.insert(id, conv);
        Ok(Some(id))
    }

    /// Asks the server at receiver `server` which pairs it would accept.
    fn ask_pairs(&self, server: &str, service: Option<&str>, topic: Option<&str>) -> Result<Vec<(String, String)>> {
        let peer = find_receiver(server)?;
        let ask = self.next_id();
        self.shared.state.borrow_mut().pairs.insert(ask, None);
        let deadline = Deadline::after(CONNECT_TIMEOUT);
        let question = encode(&Wire::Wild { service, topic, client: &self.shared.name, ask });
        let answer = peer.send_copydata_timeout(None, TAG, &question, deadline);
        // The pairs come as a post on the server's own session to us.
        let waited = match answer {
            Ok(n) if n > 0 => self.wait_for(deadline, |st| st.pairs.get(&ask).is_some_and(Option::is_some)),
            Ok(_) => Ok(true),
            Err(e) => Err(e),
        };
        let pairs = self.shared.state.borrow_mut().pairs.remove(&ask).flatten();
        waited?;
        Ok(pairs.unwrap_or_default())
    }

    /// Starts a transaction on client conversation `conv`: `make` encodes
    /// it from the server's conversation id and the transaction's.
    fn start(
        &self,
        conv: ConvId,
        asynchronous: bool,
        deadline: Deadline,
        timeout_code: u16,
        make: impl FnOnce(u64, u64) -> Vec<u8>,
    ) -> Result<u64> {
        let (peer, peer_conv) = self.client_side(conv)?;
        let txn = self.next_id();
        self.shared.state.borrow_mut().txns.insert(txn, Txn { conv, asynchronous, outcome: None });
        let posted = peer.post_copydata(TAG, &make(peer_conv, txn), deadline);
        if let Err(e) = posted {
            self.shared.state.borrow_mut().txns.remove(&txn);
            return Err(transaction_error(e, timeout_code));
        }
        Ok(txn)
    }

    /// The server side of client conversation `conv`: its receiver and
    /// its id for the conversation.
    fn client_side(&self, conv: ConvId) -> Result<(Rc<ReceiverHandle>, u64)> {
        let st = self.shared.state.borrow();
        match st.convs.get(&conv) {
            Some(c) if c.client => match c.ended {
                Some(code) => Err(dde(code)),
                None => Ok((c.peer.clone(), c.peer_conv)),
            },
            _ => Err(dde(dmlerr::NO_CONV_ESTABLISHED)),
        }
    }

    /// A synchronous transaction: sent, so that its status (and a
    /// request's data) come back with the send's result in one round trip;
    /// one the server holds completes later, the loop running meanwhile,
    /// or at `timeout` (`timeout_code`).
    fn transact(
        &self,
        conv: ConvId,
        timeout: Duration,
        timeout_code: u16,
        make: impl FnOnce(u64, u64) -> Vec<u8>,
    ) -> Result<Vec<u8>> {
        let deadline = Deadline::after(timeout);
        let (peer, peer_conv) = self.client_side(conv)?;
        let txn = self.next_id();
        // Registered first: a held transaction's `Done` finds it.
        self.shared.state.borrow_mut().txns.insert(txn, Txn { conv, asynchronous: false, outcome: None });
        let outcome = match peer.send_copydata_reply(TAG, &make(peer_conv, txn), deadline) {
            Ok((0, data)) => Ok(data),
            Ok((PENDING, _)) => {
                match self.wait_for(deadline, |st| st.txns.get(&txn).is_none_or(|t| t.outcome.is_some())) {
                    Ok(_) => {
                        let t = self.shared.state.borrow_mut().txns.get_mut(&txn).and_then(|t| t.outcome.take());
                        t.unwrap_or(Err(dde(timeout_code)))
                    }
                    Err(e) => Err(e),
                }
            }
            Ok((code, _)) => Err(dde(u16::try_from(code).ok().filter(|c| *c >= 0x4000).unwrap_or(dmlerr::SYS_ERROR))),
            Err(e) => Err(transaction_error(e, timeout_code)),
        };
        self.shared.state.borrow_mut().txns.remove(&txn);
        outcome
    }

    /// Everything that reaches one of the instance's receivers.
    fn on_message(&self, rx: &Receiver, m: &Message<'_>, service: Option<&(String, String)>) -> i64 {
        if m.msg == SESSION_CLOSED {
            // Looked at once the loop has taken what every session holds:
            // the peer's other sessions may still carry its last answers.
            let mut st = self.shared.state.borrow_mut();
            if !st.closed.contains(&m.from.pid) {
                st.closed.push(m.from.pid);
                CLOSED.with(|c| c.set(c.get() + 1));
            }
            return 0;
        }
        if m.msg != WM_COPYDATA || m.lparam as u64 != TAG {
            return 0;
        }
        let Some(w) = decode(m.data) else { return 0 };
        let pid = m.from.pid;
        if let (true, Some(conv)) = (m.sent, w.transaction_conv()) {
            return self.sent_transaction(rx, pid, conv, m.data, &w);
        }
        match (m.sent, w, service) {
            (true, Wire::Initiate { service: s, topic, client, client_conv }, Some(svc)) if fold(s) == svc.1 => {
                self.accept(svc, topic, client, client_conv, pid)
            }
            (true, Wire::Wild { service: s, topic, client, ask }, Some(svc)) if s.is_none_or(|s| fold(s) == svc.1) => {
                self.answer_wild(svc, topic, client, ask, pid)
            }
            (false, w, _) => {
                self.incoming(pid, m.data, w);
                0
            }
            _ => 0,
        }
    }

    /// Server: a client's offer of `topic`; the conversation id, or 0.
    fn accept(&self, svc: &(String, String), topic: &str, client: &str, client_conv: u64, pid: u32) -> i64 {
        let system = fold(topic) == fold(SYSTEM);
        if !system && !matches!(self.call(&Event::Connect { service: &svc.0, topic, pid }), Reply::Ack) {
            return 0;
        }
        let Some(peer) = client_receiver(client, pid) else { return 0 };
        let id = self.next_id();
        let conv = Conv::new(false, peer, client_conv, pid, &svc.0, topic);
        self.shared.state.borrow_mut().convs.insert(id, conv);
        self.call(&Event::ConnectConfirm { conv: id, service: &svc.0, topic });
        id as i64
    }

    /// Server: the pairs it would accept, posted back to the asking
    /// client; returns how many.
    fn answer_wild(&self, svc: &(String, String), topic: Option<&str>, client: &str, ask: u64, pid: u32) -> i64 {
        let pairs = self.pairs_for(svc, topic);
        let Some(peer) = client_receiver(client, pid) else { return 0 };
        let list: Vec<(&str, &str)> = pairs.iter().map(|(s, t)| (s.as_str(), t.as_str())).collect();
        match peer.post_copydata(TAG, &encode(&Wire::Pairs { ask, pairs: list }), Deadline::after(REPLY_PATIENCE)) {
            Ok(()) => pairs.len() as i64,
            Err(_) => 0,
        }
    }

    /// The (service, topic) pairs of service `svc` matching `topic`:
    /// the callback's, and `System`.
    fn pairs_for(&self, svc: &(String, String), topic: Option<&str>) -> Vec<(String, String)> {
        let mut pairs = match self.call(&Event::WildConnect { service: Some(&svc.0), topic }) {
            Reply::Pairs(p) => p,
            _ => Vec::new(),
        };
        pairs.retain(|(s, t)| fold(s) == svc.1 && valid_name(t) && topic.is_none_or(|x| fold(x) == fold(t)));
        pairs.iter_mut().for_each(|p| p.0.clone_from(&svc.0));
        let system = fold(SYSTEM);
        if topic.is_none_or(|t| fold(t) == system) && !pairs.iter().any(|(_, t)| fold(t) == system) {
            pairs.push((svc.0.clone(), SYSTEM.to_owned()));
        }
        pairs
    }

    /// Whether `conv` is a live conversation with process `pid`; which
    /// side this instance is on (`true`: client).
    fn partner_side(&self, conv: ConvId, pid: u32) -> Option<bool> {
        let st = self.shared.state.borrow();
        st.convs.get(&conv).filter(|c| c.peer_pid == pid && c.ended.is_none()).map(|c| c.client)
    }

    /// A posted DDE message from process `pid`.
    fn incoming(&self, pid: u32, bytes: &[u8], w: Wire<'_>) {
        if let Some(conv) = w.transaction_conv() {
            if self.partner_side(conv, pid).is_some() {
                if let Some(Ran::Answer { txn, status, data }) = self.transaction(conv, bytes, &w) {
                    self.post_done(conv, txn, status, data.as_deref());
                }
            }
            return;
        }
        match w {
            Wire::Pairs { ask, pairs } => {
                let mut st = self.shared.state.borrow_mut();
                if let Some(slot @ None) = st.pairs.get_mut(&ask) {
                    *slot = Some(pairs.into_iter().map(|(s, t)| (s.to_owned(), t.to_owned())).collect());
                }
            }
            Wire::Done { conv, txn, status, data } if self.partner_side(conv, pid) == Some(true) => {
                let outcome = match status {
                    0 => Ok(data.unwrap_or_default().to_vec()),
                    code => Err(dde(code)),
                };
                self.complete(conv, txn, outcome);
            }
            Wire::Terminate { conv } if self.partner_side(conv, pid).is_some() => self.end(conv, Ending::Partner),
            Wire::AdviseAck { conv, item, format } if self.partner_side(conv, pid) == Some(false) => {
                self.advise_acked(conv, &fold(item), format);
            }
            // From a process that is not the conversation's partner, or
            // not for this side: dropped.
            _ => {}
        }
    }

    /// A transaction (or advise update) of a partner's: queued behind
    /// held ones, or run now. `None`: queued or blocked (its answer comes
    /// later, posted).
    fn transaction(&self, conv: ConvId, bytes: &[u8], w: &Wire<'_>) -> Option<Ran> {
        {
            let mut st = self.shared.state.borrow_mut();
            let disabled = st.disabled;
            let c = st.convs.get_mut(&conv)?;
            if disabled || c.held || !c.queue.is_empty() {
                // A partner that floods a held conversation is told it is
                // busy (an update beyond the cap is dropped): the queue is
                // bounded, as a classic queue is.
                if c.queue.len() >= HELD_MAX {
                    return w.txn().map(|txn| Ran::Answer { txn, status: dmlerr::BUSY, data: None });
                }
                c.queue.push_back(bytes.to_vec());
                return None;
            }
        }
        match self.run(conv, w) {
            Ran::Blocked => {
                self.hold(conv, bytes.to_vec());
                None
            }
            ran => Some(ran),
        }
    }

    /// Server: a synchronous transaction, sent: its status is the send's
    /// result, a request's data goes back with it; a held one is
    /// [`PENDING`] and completes later with a posted `Done`.
    fn sent_transaction(&self, rx: &Receiver, pid: u32, conv: u64, bytes: &[u8], w: &Wire<'_>) -> i64 {
        if self.partner_side(conv, pid) != Some(false) {
            return i64::from(dmlerr::NO_CONV_ESTABLISHED);
        }
        match self.transaction(conv, bytes, w) {
            Some(Ran::Answer { status, data, .. }) => {
                if let Some(d) = data {
                    rx.reply_data(&d);
                }
                i64::from(status)
            }
            Some(Ran::Over) => i64::from(dmlerr::NOTPROCESSED),
            Some(Ran::Blocked) | None => PENDING,
        }
    }

    /// Puts a blocked transaction back at the head of its conversation's
    /// queue, and holds the conversation.
    fn hold(&self, conv: ConvId, bytes: Vec<u8>) {
        if let Some(c) = self.shared.state.borrow_mut().convs.get_mut(&conv) {
            c.held = true;
            c.queue.push_front(bytes);
        }
    }

    /// Runs up to `limit` held transactions of `conv`, in order.
    fn replay(&self, conv: ConvId, mut limit: usize) {
        while limit > 0 {
            let next = self.shared.state.borrow_mut().convs.get_mut(&conv).and_then(|c| c.queue.pop_front());
            let Some(bytes) = next else { return };
            limit -= 1;
            // Decoded when it arrived: it decodes.
            let Some(w) = decode(&bytes) else { continue };
            match self.run(conv, &w) {
                Ran::Blocked => {
                    self.hold(conv, bytes);
                    return;
                }
                Ran::Answer { txn, status, data } => self.post_done(conv, txn, status, data.as_deref()),
                Ran::Over => {}
            }
        }
    }

    /// Runs one transaction (or advise update) through the callback and
    /// acknowledges it; `false` when the callback blocked it. A disconnect
    /// the callback makes takes effect after the acknowledgement.
    fn run(&self, conv: ConvId, w: &Wire<'_>) -> Ran {
        self.shared.state.borrow_mut().running.push(conv);
        let ran = self.run_callback(conv, w);
        let ending = {
            let mut st = self.shared.state.borrow_mut();
            st.running.pop();
            let at = st.ending.iter().position(|c| *c == conv).filter(|_| !st.running.contains(&conv));
            at.map(|at| st.ending.swap_remove(at)).is_some()
        };
        if ending {
            self.end(conv, Ending::Local);
        }
        ran
    }

    fn run_callback(&self, conv: ConvId, w: &Wire<'_>) -> Ran {
        let info = {
            let st = self.shared.state.borrow();
            st.convs.get(&conv).map(|c| (c.client, c.topic.clone(), c.service.clone(), c.peer.clone(), c.peer_conv))
        };
        // It ended meanwhile: nothing to run, nobody to answer.
        let Some((client, topic, service, peer, peer_conv)) = info else { return Ran::Over };
        let topic = &*topic;
        let (txn, reply) = match *w {
            Wire::AdviseData { item, format, data, ackreq, .. } if client => {
                if self.call(&Event::AdviseData { conv, topic, item, format, data }) == Reply::Block {
                    return Ran::Blocked;
                }
                if ackreq {
                    let ack = encode(&Wire::AdviseAck { conv: peer_conv, item, format });
                    let _ = peer.post_copydata(TAG, &ack, Deadline::after(REPLY_PATIENCE));
                }
                return Ran::Over;
            }
            // A server's message on a conversation where we serve, or the
            // other way round: not for us.
            _ if client => return Ran::Over,
            Wire::Request { txn, item, format, .. } => {
                let mut r = self.call(&Event::Request { conv, topic, item, format });
                if r == Reply::NotProcessed && fold(topic) == fold(SYSTEM) {
                    if let Some(d) = self.system_item(&service, item) {
                        r = Reply::Data(d);
                    }
                }
                if let Reply::Data(d) = r {
                    return Ran::Answer { txn, status: 0, data: Some(d) };
                }
                (txn, ack_status(&r).map(|s| if s == 0 { dmlerr::NOTPROCESSED } else { s }))
            }
            Wire::Poke { txn, item, format, data, .. } => {
                (txn, ack_status(&self.call(&Event::Poke { conv, topic, item, format, data })))
            }
            Wire::Execute { txn, command, .. } => {
                (txn, ack_status(&self.call(&Event::Execute { conv, topic, command })))
            }
            Wire::Advise { txn, item, format, warm, ackreq, .. } => {
                let status = ack_status(&self.call(&Event::AdviseStart { conv, topic, item, format }));
                if status == Some(0) {
                    self.add_loop(conv, item, format, warm, ackreq);
                }
                (txn, status)
            }
            Wire::Unadvise { txn, item, format, .. } => {
                let found = self.remove_loop(conv, &fold(item), format);
                if found {
                    self.call(&Event::AdviseStop { conv, topic, item, format });
                }
                (txn, Some(if found { 0 } else { dmlerr::NOTPROCESSED }))
            }
            _ => return Ran::Over,
        };
        match reply {
            Some(status) => Ran::Answer { txn, status, data: None },
            None => Ran::Blocked,
        }
    }

    /// Answers a posted (or replayed) transaction with a posted `Done`.
    fn post_done(&self, conv: ConvId, txn: u64, status: u16, data: Option<&[u8]>) {
        let peer = self.shared.state.borrow().convs.get(&conv).map(|c| (c.peer.clone(), c.peer_conv));
        if let Some((peer, peer_conv)) = peer {
            let done = Wire::Done { conv: peer_conv, txn, status, data };
            let _ = peer.post_copydata(TAG, &encode(&done), Deadline::after(REPLY_PATIENCE));
        }
    }
}

impl Dde {
    /// Client: transaction `txn` of `conv` ended with `outcome`.
    fn complete(&self, conv: ConvId, txn: u64, outcome: Result<Vec<u8>>) {
        let outcome = {
            let mut st = self.shared.state.borrow_mut();
            match st.txns.get_mut(&txn) {
                Some(t) if t.conv == conv && t.asynchronous => {
                    st.txns.remove(&txn);
                    outcome
                }
                Some(t) if t.conv == conv => {
                    t.outcome = Some(outcome);
                    return;
                }
                // Abandoned, timed out, or not ours.
                _ => return,
            }
        };
        self.call(&Event::Complete { conv, txn: TxnId(txn), outcome: &outcome });
    }

    /// Ends conversation `conv`: its pending transactions fail with
    /// `SERVER_DIED`, and the partner (`Local`) or the callback (otherwise)
    /// is told.
    fn end(&self, conv: ConvId, how: Ending) {
        let peer = {
            let mut st = self.shared.state.borrow_mut();
            if how == Ending::Local && st.running.contains(&conv) {
                st.ending.push(conv);
                return;
            }
            let Some(c) = st.convs.get_mut(&conv) else { return };
            if c.ended.is_some() {
                return;
            }
            let peer = (c.peer.clone(), c.peer_conv);
            if c.client && !c.dropped {
                c.ended = Some(match how {
                    Ending::Died => dmlerr::SERVER_DIED,
                    Ending::Local | Ending::Partner => dmlerr::NO_CONV_ESTABLISHED,
                });
                c.queue.clear();
            } else {
                st.convs.remove(&conv);
            }
            peer
        };
        if how == Ending::Local {
            let _ = peer.0.post_copydata(TAG, &encode(&Wire::Terminate { conv: peer.1 }), Deadline::now());
        }
        let failed: Vec<u64> = {
            let mut st = self.shared.state.borrow_mut();
            let mut failed = Vec::new();
            st.txns.retain(|id, t| {
                if t.conv != conv || t.outcome.is_some() {
                    return true;
                }
                if t.asynchronous {
                    failed.push(*id);
                    return false;
                }
                t.outcome = Some(Err(dde(dmlerr::SERVER_DIED)));
                true
            });
            failed
        };
        if how == Ending::Local {
            return;
        }
        for txn in failed {
            self.call(&Event::Complete { conv, txn: TxnId(txn), outcome: &Err(dde(dmlerr::SERVER_DIED)) });
        }
        self.call(&Event::Disconnect { conv, died: how == Ending::Died });
    }

    /// A session from process `pid` closed: every conversation with it
    /// whose partner is gone ends now (S10).
    fn peer_closed(&self, pid: u32) {
        let dead: Vec<ConvId> = {
            let st = self.shared.state.borrow();
            let mut ids: Vec<ConvId> = st
                .convs
                .iter()
                .filter(|(_, c)| c.peer_pid == pid && c.ended.is_none() && !c.peer.is_window())
                .map(|(id, _)| *id)
                .collect();
            ids.sort_unstable();
            ids
        };
        for conv in dead {
            self.end(conv, Ending::Died);
        }
    }

    fn add_loop(&self, conv: ConvId, item: &str, format: u32, warm: bool, ackreq: bool) {
        let mut st = self.shared.state.borrow_mut();
        let Some(c) = st.convs.get_mut(&conv) else { return };
        let folded = fold(item);
        c.loops.retain(|l| !(l.folded == folded && l.format == format));
        c.loops.push(Loop {
            item: item.to_owned(),
            folded,
            format,
            warm,
            ackreq,
            awaiting: false,
            pending: false,
            stalled: false,
        });
    }

    fn remove_loop(&self, conv: ConvId, folded: &str, format: u32) -> bool {
        let mut st = self.shared.state.borrow_mut();
        let Some(c) = st.convs.get_mut(&conv) else { return false };
        let before = c.loops.len();
        c.loops.retain(|l| !(l.folded == folded && l.format == format));
        c.loops.len() < before
    }

    /// Server: the client acknowledged an ack-paced update; the value held
    /// back meanwhile (the latest) goes now.
    fn advise_acked(&self, conv: ConvId, folded: &str, format: u32) {
        let resend = {
            let mut st = self.shared.state.borrow_mut();
            let l = st
                .convs
                .get_mut(&conv)
                .and_then(|c| c.loops.iter_mut().find(|l| l.folded == folded && l.format == format));
            match l {
                Some(l) => {
                    l.awaiting = false;
                    l.pending
                }
                None => false,
            }
        };
        if resend {
            self.update(conv, folded, format);
        }
    }

    /// Server: sends advise loop (`conv`, item `folded`, `format`) its
    /// current value, or holds it back (awaiting an ack, or the client's
    /// session full).
    fn update(&self, conv: ConvId, folded: &str, format: u32) {
        let found = {
            let mut st = self.shared.state.borrow_mut();
            let Some(c) = st.convs.get_mut(&conv) else { return };
            let (topic, peer, peer_conv) = (c.topic.clone(), c.peer.clone(), c.peer_conv);
            let Some(l) = c.loops.iter_mut().find(|l| l.folded == folded && l.format == format) else { return };
            if l.ackreq && l.awaiting {
                l.pending = true;
                return;
            }
            l.pending = false;
            let patience = if l.stalled { Deadline::now() } else { Deadline::after(ADVISE_PATIENCE) };
            (topic, l.item.clone(), l.warm, l.ackreq, patience, peer, peer_conv)
        };
        let (topic, item, warm, ackreq, patience, peer, peer_conv) = found;
        let data = match warm {
            true => None,
            false => match self.call(&Event::AdviseRequest { conv, topic: &topic, item: &item, format }) {
                Reply::Data(d) => Some(d),
                _ => return,
            },
        };
        let update = Wire::AdviseData { conv: peer_conv, item: &item, format, data: data.as_deref(), ackreq };
        let sent = peer.post_copydata(TAG, &encode(&update), patience);
        let mut st = self.shared.state.borrow_mut();
        let l =
            st.convs.get_mut(&conv).and_then(|c| c.loops.iter_mut().find(|l| l.folded == folded && l.format == format));
        if let Some(l) = l {
            match sent {
                Ok(()) => {
                    l.stalled = false;
                    l.awaiting = ackreq;
                }
                Err(Error::Timeout) => {
                    l.stalled = true;
                    l.pending = true;
                    st.stalls += 1;
                }
                // The client is going: its end is on its way.
                Err(_) => {}
            }
        }
    }

    fn stalled(&self) -> Vec<(ConvId, String, u32)> {
        let st = self.shared.state.borrow();
        st.convs
            .iter()
            .flat_map(|(id, c)| {
                c.loops
                    .iter()
                    .filter(|l| l.stalled && l.pending && !l.awaiting)
                    .map(|l| (*id, l.folded.clone(), l.format))
            })
            .collect()
    }

    fn has_stalled(&self) -> bool {
        let st = self.shared.state.borrow();
        st.stalls > 0 && st.convs.values().any(|c| c.loops.iter().any(|l| l.stalled && l.pending))
    }

    /// Retries the updates a full session held back.
    fn flush_stalled(&self) {
        if self.shared.state.borrow().stalls == 0 {
            return;
        }
        let stalled = self.stalled();
        if stalled.is_empty() {
            self.shared.state.borrow_mut().stalls = 0;
        }
        for (conv, folded, format) in stalled {
            self.update(conv, &folded, format);
        }
    }

    /// The default answer to a `System` item (S03).
    fn system_item(&self, service: &str, item: &str) -> Option<Vec<u8>> {
        let item = fold(item);
        let text = if item == fold(ITEM_TOPICS) {
            let folded = fold(service);
            let pairs = self.pairs_for(&(service.to_owned(), folded), None);
            pairs.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join("\t")
        } else if item == fold(ITEM_SYSITEMS) {
            [ITEM_TOPICS, ITEM_SYSITEMS, ITEM_FORMATS, ITEM_STATUS, ITEM_HELP].join("\t")
        } else if item == fold(ITEM_FORMATS) {
            "TEXT".to_owned()
        } else if item == fold(ITEM_STATUS) {
            if self.shared.state.borrow().disabled { "Busy" } else { "Ready" }.to_owned()
        } else if item == fold(ITEM_HELP) {
            format!("switchboard DDE server of {service}: request Topics for its topics, SysItems for these items")
        } else {
            return None;
        };
        Some(text.into_bytes())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        receivers_changed();
        let st = self.state.get_mut();
        // Closed sessions it never looked at are not waiting any more.
        let _ = CLOSED.try_with(|c| c.set(c.get().saturating_sub(st.closed.len())));
        // Every partner hears of the end at once (no callbacks now).
        for c in st.convs.values().filter(|c| c.ended.is_none()) {
            let _ = c.peer.post_copydata(TAG, &encode(&Wire::Terminate { conv: c.peer_conv }), Deadline::now());
        }
    }
}
