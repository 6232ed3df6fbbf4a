//! Named mutex, semaphore and event, and waiting on several (spec 01, S11–S19).
//!
//! Each object is a futex word in its own one-page sealed memfd (see
//! `switchboard_shm`), published in the namespace like any named object:
//! create-or-open, kernel-counted lifetime, ACL, handle sharing.
//!
//! Every wait comes in the classic triad, written once: `try_wait` (zero
//! timeout), `wait` (forever), `wait_timeout` — all funnel into
//! `wait_deadline`. Waits return a [`WaitStatus`]; timing out is a status,
//! not an error, as `WAIT_TIMEOUT` is a return value classically.
//!
//! Decisions where the classic API leaves room:
//! - A mutex is owned by a *thread*. If that thread (or its process) dies
//!   holding it, the next waiter gets [`WaitStatus::Abandoned`] and owns it.
//!   Sleeping waiters notice a dead owner within
//!   [`switchboard_shm::wait::LIVENESS_POLL`] (50 ms).
//! - `initially_owned` is ignored when the mutex already existed, as classic.
//! - Semaphore counts are limited to `1..=i32::MAX` as the classic `LONG`.
//! - Wait-all is not kernel-atomic: see `switchboard_shm::wait`.
//!
//! ```
//! use switchboard::sync::{Event, Mutex, WaitStatus};
//! let m = Mutex::create(None, false).unwrap();
//! assert_eq!(m.try_wait(), WaitStatus::Acquired);
//! m.release().unwrap();
//! let e = Event::create(None, true, false).unwrap();
//! e.set();
//! assert_eq!(e.try_wait(), WaitStatus::Acquired);
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use switchboard_shm::segment::{Kind as SegKind, Segment, Shared};
use switchboard_shm::wait as shm_wait;
use switchboard_shm::{event::EventState, mutex::MutexState, semaphore::SemaphoreState, timer::TimerState};
use switchboard_sys::process::HandleValue;
use switchboard_sys::socket::Conn;

use crate::error::{Error, Result};
use crate::namespace::{self, Acl, Endpoint, Kind};
use crate::time::Deadline;

/// The most objects one wait may name (classic `MAXIMUM_WAIT_OBJECTS`).
pub const MAXIMUM_WAIT_OBJECTS: usize = 64;

/// How a wait on one object ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    /// Signalled (and, for mutexes and semaphores, taken).
    Acquired,
    /// A mutex whose owner died holding it; the caller owns it now.
    Abandoned,
    /// The timeout passed (classic `WAIT_TIMEOUT`, 258).
    TimedOut,
}

impl From<shm_wait::Outcome> for WaitStatus {
    fn from(o: shm_wait::Outcome) -> Self {
        match o {
            shm_wait::Outcome::Acquired => WaitStatus::Acquired,
            shm_wait::Outcome::Abandoned => WaitStatus::Abandoned,
            shm_wait::Outcome::TimedOut => WaitStatus::TimedOut,
        }
    }
}

/// A named object in a shared segment, of state type `T`.
#[derive(Debug)]
struct Object<T> {
    endpoint: Endpoint,
    segment: Segment,
    _state: PhantomData<T>,
}

impl<T: Shared + std::fmt::Debug> Object<T> {
    fn create(kind: Kind, seg_kind: SegKind, common: &Common<'_>, init: impl Fn(&T)) -> Result<Self> {
        let (name, acl) = (common.name, &common.acl);
        let addr = namespace::address_for(kind, name)?.trusting(common.trust_owner);
        let mut make = || {
            let (fd, seg) = Segment::create(seg_kind, "switchboard-sync").map_err(segment_error)?;
            init(seg.object::<T>().map_err(segment_error)?);
            Ok((vec![fd], namespace::describe(kind, 0, 0)))
        };
        Self::attach(namespace::create_or_open(kind, &addr, acl, &mut make)?, seg_kind)
    }

    fn open(kind: Kind, seg_kind: SegKind, name: &str, owner: Option<u32>) -> Result<Self> {
        let addr = namespace::address_for(kind, Some(name))?.trusting(owner);
        Self::attach(namespace::open(kind, &addr)?, seg_kind)
    }

    /// Opens the object a builder names (a builder's `open`).
    fn open_named(kind: Kind, seg_kind: SegKind, common: &Common<'_>) -> Result<Self> {
        let name = common.name.ok_or(Error::InvalidParameter("open needs a name"))?;
        Self::open(kind, seg_kind, name, common.trust_owner)
    }

    fn attach(endpoint: Endpoint, seg_kind: SegKind) -> Result<Self> {
        let fd = endpoint.fd(0).ok_or_else(|| Error::Malformed("sync object without memory".into()))?;
        let segment = Segment::open(fd, seg_kind).map_err(segment_error)?;
        segment.object::<T>().map_err(segment_error)?;
        Ok(Object { endpoint, segment, _state: PhantomData })
    }

    fn state(&self) -> &T {
        self.segment.object().expect("checked in attach")
    }
}

fn segment_error(e: switchboard_shm::segment::SegmentError) -> Error {
    match e {
        switchboard_shm::segment::SegmentError::Sys(errno) => Error::sys(errno),
        other => Error::Malformed(other.to_string()),
    }
}

/// Something [`wait_any`] and [`wait_all`] can wait on.
///
/// Besides the sync objects here, these are waitable, and a wait leaves
/// them as they are (it takes nothing):
/// - a completion port ([`crate::port::Port`]): signalled while a packet
///   is queued or the port is closed — a get would not wait;
/// - a named pipe end ([`crate::pipe::named::PipeServer`],
///   [`crate::pipe::named::PipeClient`]): signalled while a read would not wait
///   (data, or the other end gone); a server instance with no client is
///   never signalled, as a classic pipe handle with no I/O pending (an
///   anonymous pipe is an OS pipe: wait on `Readable::new(&reader)`);
/// - a mailslot ([`crate::mailslot::Mailslot`]): signalled while a message
///   is queued;
/// - a process ([`crate::process::Process`]): signalled once it has ended;
/// - any descriptor ([`Readable`], a socket say): signalled while readable.
pub trait Waitable: sealed::Sealed {
    /// Waits until signalled or `deadline` ([`Deadline::NEVER`]: for good).
    fn wait_deadline(&self, deadline: Deadline) -> WaitStatus {
        shm_wait::wait_one(self.waiter().get(), deadline.instant()).into()
    }

    /// Waits without blocking.
    fn try_wait(&self) -> WaitStatus {
        self.wait_deadline(Deadline::now())
    }

    /// Waits forever.
    fn wait(&self) -> WaitStatus {
        self.wait_deadline(Deadline::NEVER)
    }

    /// Waits at most `timeout`.
    fn wait_timeout(&self, timeout: Duration) -> WaitStatus {
        self.wait_deadline(Deadline::after(timeout))
    }
}

pub(crate) mod sealed {
    /// What a wait holds for one object: its state in shared memory, or a
    /// view of it made for this wait.
    pub enum Waiter<'a> {
        /// The object's own state.
        Shared(&'a dyn switchboard_shm::wait::Waitable),
        /// A view made for this wait.
        Made(Box<dyn switchboard_shm::wait::Waitable + 'a>),
    }

    impl Waiter<'_> {
        pub fn get(&self) -> &dyn switchboard_shm::wait::Waitable {
            match self {
                Waiter::Shared(w) => *w,
                Waiter::Made(w) => w.as_ref(),
            }
        }
    }

    pub trait Sealed {
        fn waiter(&self) -> Waiter<'_>;
        /// Tells objects apart for wait-all (the same object twice is an
        /// error there).
        fn identity(&self) -> u64;
    }
}

use sealed::Waiter;

/// Identities of objects that are not in the namespace, kept apart from
/// the namespace's (socket inode numbers) by their top bits.
pub(crate) const PROCESS_IDENTITY: u64 = 1 << 63;
pub(crate) const DESCRIPTOR_IDENTITY: u64 = 1 << 62;

macro_rules! common {
    ($ty:ident, $kind:expr) => {
        impl sealed::Sealed for $ty {
            fn waiter(&self) -> Waiter<'_> {
                Waiter::Shared(self.0.state())
            }
            fn identity(&self) -> u64 {
                self.0.endpoint.identity()
            }
        }

        impl Waitable for $ty {}

        impl $ty {
            /// Opens an existing object by name.
            ///
            /// # Errors
            /// `NotFound`, `InvalidHandle` (another kind), `AccessDenied`, `InvalidName`.
            pub fn open(name: &str) -> Result<$ty> {
                Object::open($kind, SegKind::$ty, name, None).map($ty)
            }

            /// Opens an existing `Global\` object whose creator is user
            /// `owner_uid`. A plain `open` believes only objects created
            /// by the caller's user or root, so that another user cannot
            /// squat a name and be mistaken for the real object.
            ///
            /// # Errors
            /// As `open`.
            pub fn open_trusting(name: &str, owner_uid: u32) -> Result<$ty> {
                Object::open($kind, SegKind::$ty, name, Some(owner_uid)).map($ty)
            }

            /// The uid of the user who created the object.
            pub fn owner_uid(&self) -> u32 {
                self.0.endpoint.owner_uid()
            }

            /// Takes handle `handle` of process `pid` (00-S08).
            ///
            /// # Errors
            /// `HandleTakingRefused` when the OS forbids it.
            pub fn from_process(pid: u32, handle: HandleValue) -> Result<$ty> {
                Object::attach(namespace::take_from_process($kind, pid, handle)?, SegKind::$ty).map($ty)
            }

            /// Receives an object sent with `send` (00-S08).
            ///
            /// # Errors
            /// `Timeout`, `InvalidHandle` (another kind), `Malformed`.
            pub fn receive(conn: &Conn, timeout: impl Into<crate::time::Deadline>) -> Result<$ty> {
                Object::attach(namespace::receive($kind, conn, timeout)?, SegKind::$ty).map($ty)
            }

            /// Sends this object over a connection (00-S08).
            ///
            /// # Errors
            /// `EPIPE` when the peer is gone.
            pub fn send(&self, conn: &Conn) -> Result<()> {
                self.0.endpoint.send(conn)
            }

            /// Whether the name already existed (classic `ERROR_ALREADY_EXISTS`).
            pub fn already_existed(&self) -> bool {
                self.0.endpoint.existed
            }

            /// The handle value another process can take with `from_process`.
            pub fn handle(&self) -> HandleValue {
                self.0.endpoint.handle()
            }

            /// Waits without blocking (see [`Waitable`]).
            pub fn try_wait(&self) -> WaitStatus {
                Waitable::try_wait(self)
            }

            /// Waits forever (see [`Waitable`]).
            pub fn wait(&self) -> WaitStatus {
                Waitable::wait(self)
            }

            /// Waits at most `timeout` (see [`Waitable`]).
            pub fn wait_timeout(&self, timeout: Duration) -> WaitStatus {
                Waitable::wait_timeout(self, timeout)
            }
        }
    };
}

/// A named, recursive, thread-owned mutex (S11–S14).
#[derive(Debug)]
pub struct Mutex(Object<MutexState>);
common!(Mutex, Kind::Mutex);

impl Mutex {
    /// Creates a mutex, or opens the existing one (then `initially_owned` is ignored).
    ///
    /// # Errors
    /// `InvalidHandle` when the name holds another kind, `InvalidName`.
    pub fn create<'a>(name: impl Into<Option<&'a str>>, initially_owned: bool) -> Result<Mutex> {
        Mutex::create_with_acl(name, initially_owned, &Acl::default())
    }

    /// As [`Mutex::create`], admitting the principals of `acl` too.
    ///
    /// # Errors
    /// As [`Mutex::create`].
    pub fn create_with_acl<'a>(name: impl Into<Option<&'a str>>, initially_owned: bool, acl: &Acl) -> Result<Mutex> {
        Mutex::builder().name(name).initially_owned(initially_owned).acl(acl.clone()).create()
    }

    /// Starts building a mutex: `Mutex::builder().name("m").acl(..).create()`.
    pub fn builder<'a>() -> MutexBuilder<'a> {
        MutexBuilder { common: Common::default(), initially_owned: false }
    }

    /// Releases one acquisition (S12).
    ///
    /// # Errors
    /// `NotOwner` when the calling thread does not own the mutex.
    pub fn release(&self) -> Result<()> {
        self.0.state().release().map_err(|_| Error::NotOwner)
    }

    /// The owning (thread id, process id), if owned.
    pub fn owner(&self) -> Option<(u32, u32)> {
        self.0.state().owner()
    }

    /// What the classic `NtQueryMutant` tells: the owner's recursion count,
    /// whether the calling thread owns it, and whether it is abandoned
    /// (its owner died holding it and nobody has waited on it since).
    pub fn info(&self) -> MutexInfo {
        let state = self.0.state();
        let owner = state.owner();
        MutexInfo {
            recursion: state.recursion(),
            owned_by_caller: owner.is_some_and(|(tid, _)| tid == switchboard_sys::process::tid()),
            abandoned: state.is_abandoned(),
            owner,
        }
    }
}

/// A mutex's state ([`Mutex::info`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MutexInfo {
    /// The owning (thread id, process id), if owned.
    pub owner: Option<(u32, u32)>,
    /// Acquisitions the owner holds (0 when free; the classic
    /// `CurrentCount` is `1 - recursion`).
    pub recursion: u32,
    /// Whether the calling thread owns it.
    pub owned_by_caller: bool,
    /// Whether its owner died holding it and nobody has taken it since.
    pub abandoned: bool,
}

/// An object [`signal_and_wait`] can signal: a mutex is released, a
/// semaphore released by one, an event set.
pub trait Signalable: sealed::Sealed {
    /// Signals it.
    ///
    /// # Errors
    /// `NotOwner` for a mutex the caller does not own, `TooManyPosts` for
    /// a semaphore at its maximum.
    fn signal(&self) -> Result<()>;
}

impl Signalable for Mutex {
    fn signal(&self) -> Result<()> {
        self.release()
    }
}

impl Signalable for Semaphore {
    fn signal(&self) -> Result<()> {
        self.release(1).map(drop)
    }
}

impl Signalable for Event {
    fn signal(&self) -> Result<()> {
        self.set();
        Ok(())
    }
}

/// Signals `signal`, then waits on `wait` (classic `SignalObjectAndWait`).
/// As there, the two steps are not one atomic operation: another thread may
/// act between them, but this one is already waiting by the time
/// `wait_for` returns, so a peer that answers `signal` by signalling `wait`
/// is never missed (the wait sees the state, not an edge).
///
/// # Errors
/// As [`Signalable::signal`]; nothing is waited for when it fails.
pub fn signal_and_wait(
    signal: &dyn Signalable,
    wait: &dyn Waitable,
    timeout: impl Into<crate::time::Deadline>,
) -> Result<WaitStatus> {
    signal.signal()?;
    Ok(wait.wait_deadline(timeout.into()))
}

/// A named counting semaphore (S15–S16).
#[derive(Debug)]
pub struct Semaphore(Object<SemaphoreState>);
common!(Semaphore, Kind::Semaphore);

impl Semaphore {
    /// Creates a semaphore with `initial` of `maximum` counts, or opens the
    /// existing one (whose counts win).
    ///
    /// # Errors
    /// `InvalidParameter` unless `0 <= initial <= maximum`, `1 <= maximum <= i32::MAX`.
    pub fn create<'a>(name: impl Into<Option<&'a str>>, initial: u32, maximum: u32) -> Result<Semaphore> {
        Semaphore::create_with_acl(name, initial, maximum, &Acl::default())
    }

    /// As [`Semaphore::create`], admitting the principals of `acl` too.
    ///
    /// # Errors
    /// As [`Semaphore::create`].
    pub fn create_with_acl<'a>(
        name: impl Into<Option<&'a str>>,
        initial: u32,
        maximum: u32,
        acl: &Acl,
    ) -> Result<Semaphore> {
        Semaphore::builder().name(name).initial(initial).maximum(maximum).acl(acl.clone()).create()
    }

    /// Starts building a semaphore (initial 0, maximum 1):
    /// `Semaphore::builder().name("s").maximum(4).create()`.
    pub fn builder<'a>() -> SemaphoreBuilder<'a> {
        SemaphoreBuilder { common: Common::default(), initial: 0, maximum: 1 }
    }

    /// Adds `n` counts and returns the previous count (S15).
    ///
    /// # Errors
    /// `InvalidParameter` for `n == 0`; `TooManyPosts` when the count would
    /// exceed the maximum (nothing changes).
    pub fn release(&self, n: u32) -> Result<u32> {
        if n == 0 {
            return Err(Error::InvalidParameter("release count must be at least 1"));
        }
        self.0.state().release(n).map_err(|_| Error::TooManyPosts)
    }

    /// The current count.
    pub fn count(&self) -> u32 {
        self.0.state().count()
    }

    /// The maximum count.
    pub fn maximum(&self) -> u32 {
        self.0.state().max()
    }
}

/// A named manual- or auto-reset event (S17–S18).
#[derive(Debug)]
pub struct Event(Object<EventState>);
common!(Event, Kind::Event);

impl Event {
    /// Creates an event, or opens the existing one (whose mode and state win).
    ///
    /// # Errors
    /// `InvalidHandle` when the name holds another kind, `InvalidName`.
    pub fn create<'a>(name: impl Into<Option<&'a str>>, manual_reset: bool, initially_set: bool) -> Result<Event> {
        Event::create_with_acl(name, manual_reset, initially_set, &Acl::default())
    }

    /// As [`Event::create`], admitting the principals of `acl` too.
    ///
    /// # Errors
    /// As [`Event::create`].
    pub fn create_with_acl<'a>(
        name: impl Into<Option<&'a str>>,
        manual_reset: bool,
        initially_set: bool,
        acl: &Acl,
    ) -> Result<Event> {
        Event::builder().name(name).manual_reset(manual_reset).initially_set(initially_set).acl(acl.clone()).create()
    }

    /// Starts building an event (auto-reset, not set):
    /// `Event::builder().name("e").manual_reset(true).create()`.
    pub fn builder<'a>() -> EventBuilder<'a> {
        EventBuilder { common: Common::default(), manual_reset: false, initially_set: false }
    }

    /// Signals: manual-reset releases every waiter and stays set; auto-reset
    /// releases one waiter (or stays set until one waits). Returns whether
    /// the event was signalled before (the previous state `NtSetEvent`
    /// gives).
    pub fn set(&self) -> bool {
        self.0.state().set()
    }

    /// Un-signals. Returns whether the event was signalled before.
    pub fn reset(&self) -> bool {
        self.0.state().reset()
    }

    /// Releases the waiters present now (manual: all, auto: one) and leaves
    /// the event unsignalled, even when it was set and nobody waited (as
    /// `PulseEvent` does). Returns whether it was signalled before.
    pub fn pulse(&self) -> bool {
        self.0.state().pulse()
    }

    /// Whether the event is signalled.
    pub fn is_set(&self) -> bool {
        self.0.state().is_set()
    }

    /// Whether the event is manual-reset.
    pub fn is_manual_reset(&self) -> bool {
        self.0.state().is_manual()
    }

    /// How many threads (in any process) are blocked waiting on the event.
    pub fn waiters(&self) -> u32 {
        use switchboard_shm::wait::Waitable as _;
        self.0.state().waiters().load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A descriptor's readiness as a waitable object: signalled while the
/// descriptor is readable (or hung up). Nothing is taken by the wait.
///
/// The kernel cannot wake a futex word for a descriptor, so one thread per
/// process (`switchboard-ready`, started on first use, asleep in
/// `epoll_wait` otherwise) carries the readiness over (see
/// `switchboard_sys::ready`). In [`wait_all`], a descriptor that is already
/// readable is looked at again whenever another object changes.
#[derive(Debug)]
pub(crate) struct Ready {
    word: switchboard_sys::ready::ReadyWord,
    waiters: std::sync::atomic::AtomicU32,
}

impl Ready {
    pub(crate) fn new(fd: std::os::fd::BorrowedFd<'_>) -> Result<Ready> {
        let word = switchboard_sys::ready::ReadyWord::new(fd).map_err(Error::sys)?;
        Ok(Ready { word, waiters: std::sync::atomic::AtomicU32::new(0) })
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.word.is_ready()
    }
}

impl shm_wait::Waitable for Ready {
    fn try_take(&self, _: u32) -> Option<shm_wait::Outcome> {
        self.is_ready().then_some(shm_wait::Outcome::Acquired)
    }
    fn available(&self, _: u32) -> bool {
        self.is_ready()
    }
    fn untake(&self) {}
    fn sleep_word(&self) -> (&std::sync::atomic::AtomicU32, u32) {
        (self.word.word(), self.word.word().load(std::sync::atomic::Ordering::SeqCst))
    }
    fn waiters(&self) -> &std::sync::atomic::AtomicU32 {
        &self.waiters
    }
    fn prepare_sleep(&self) {
        // A descriptor already readable is not armed: a one-shot armed on
        // it would fire at once, and a wait-all still waiting for another
        // object would spin through the bridge.
        if !self.is_ready() {
            self.word.arm();
        }
    }
}

/// Any descriptor — a socket, a FIFO, an eventfd — as an object
/// [`wait_any`] and [`wait_all`] can wait on beside sync objects, ports
/// and pipes: signalled while it is readable or hung up. The wait reads
/// nothing.
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use std::io::Write;
/// use switchboard::sync::{wait_any, Event, Readable, WaitMany};
///
/// let (mut a, b) = UnixStream::pair()?;
/// let quit = Event::create(None, true, false)?;
/// let socket = Readable::new(&b)?;
/// a.write_all(b"hello")?;
/// assert_eq!(wait_any(&[&quit, &socket], None)?, WaitMany::Signaled(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Readable {
    ready: Ready,
    identity: u64,
}

impl Readable {
    /// Watches `fd` (a copy of it: the caller's descriptor stays its own).
    ///
    /// # Errors
    /// `AccessDenied`-class system errors for a descriptor epoll cannot
    /// watch (a regular file), out of descriptors.
    pub fn new(fd: impl std::os::fd::AsFd) -> Result<Readable> {
        let identity = DESCRIPTOR_IDENTITY | switchboard_sys::ready::identity(fd.as_fd());
        Ok(Readable { ready: Ready::new(fd.as_fd())?, identity })
    }

    /// Whether the descriptor is readable (or hung up) now.
    pub fn is_ready(&self) -> bool {
        self.ready.is_ready()
    }
}

impl sealed::Sealed for Readable {
    fn waiter(&self) -> Waiter<'_> {
        Waiter::Shared(&self.ready)
    }
    fn identity(&self) -> u64 {
        self.identity
    }
}

impl Waitable for Readable {}

/// How [`wait_any`] or [`wait_all`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitMany {
    /// Object `index` was signalled (`WAIT_OBJECT_0 + index`); for wait-all, index 0.
    Signaled(usize),
    /// Object `index` was an abandoned mutex (`WAIT_ABANDONED_0 + index`).
    Abandoned(usize),
    /// The timeout passed.
    TimedOut,
}

fn check_many<'a>(objs: &[&'a dyn Waitable], distinct: bool) -> Result<Vec<Waiter<'a>>> {
    if objs.is_empty() || objs.len() > MAXIMUM_WAIT_OBJECTS {
        return Err(Error::InvalidParameter("wait on 1 to 64 objects"));
    }
    if distinct {
        let mut ids: Vec<u64> = objs.iter().map(|o| o.identity()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::InvalidParameter("wait-all names the same object twice"));
        }
    }
    Ok(objs.iter().map(|o| o.waiter()).collect())
}

fn views<'a>(waiters: &'a [Waiter<'_>]) -> Vec<&'a dyn shm_wait::Waitable> {
    waiters.iter().map(|w| w.get()).collect()
}

fn many(s: shm_wait::Signaled) -> WaitMany {
    match s {
        shm_wait::Signaled::Object { index, abandoned: false } => WaitMany::Signaled(index),
        shm_wait::Signaled::Object { index, abandoned: true } => WaitMany::Abandoned(index),
        shm_wait::Signaled::TimedOut => WaitMany::TimedOut,
    }
}

/// Waits until any object is signalled and takes the lowest-indexed one
/// (S19). `timeout` `None` waits forever.
///
/// # Errors
/// `InvalidParameter` for 0 or more than 64 objects.
pub fn wait_any(objs: &[&dyn Waitable], timeout: impl Into<crate::time::Deadline>) -> Result<WaitMany> {
    let waiters = check_many(objs, false)?;
    Ok(many(shm_wait::wait_any(&views(&waiters), timeout.into().instant())))
}

/// Waits until every object is signalled and takes them all (S19).
///
/// # Errors
/// `InvalidParameter` for 0 or more than 64 objects, or the same object twice.
pub fn wait_all(objs: &[&dyn Waitable], timeout: impl Into<crate::time::Deadline>) -> Result<WaitMany> {
    let waiters = check_many(objs, true)?;
    Ok(many(shm_wait::wait_all(&views(&waiters), timeout.into().instant())))
}

/// What every sync-object builder sets.
#[derive(Debug, Default)]
struct Common<'a> {
    name: Option<&'a str>,
    acl: Acl,
    trust_owner: Option<u32>,
}

/// The setters every sync-object builder shares.
macro_rules! common_setters {
    () => {
        /// The object's name (`None`: unnamed, shared only by handle).
        pub fn name(mut self, name: impl Into<Option<&'a str>>) -> Self {
            self.common.name = name.into();
            self
        }
        /// Who besides this user may open it (default: nobody).
        pub fn acl(mut self, acl: Acl) -> Self {
            self.common.acl = acl;
            self
        }
        /// When the `Global\` name exists already, also believe it if user
        /// `uid` created it (by default only the caller's user or root).
        pub fn trust_owner(mut self, uid: u32) -> Self {
            self.common.trust_owner = Some(uid);
            self
        }
    };
}

/// How to create or open a [`Mutex`]. Finish with `create` or `open`.
#[derive(Debug)]
#[must_use = "a builder does nothing until create or open"]
pub struct MutexBuilder<'a> {
    common: Common<'a>,
    initially_owned: bool,
}

impl<'a> MutexBuilder<'a> {
    common_setters!();
    /// Whether the creating thread owns it at once (ignored when it exists).
    pub fn initially_owned(mut self, owned: bool) -> Self {
        self.initially_owned = owned;
        self
    }
    /// Creates the mutex, or opens the existing one.
    ///
    /// # Errors
    /// `InvalidHandle` when the name holds another kind, `AccessDenied`
    /// for a holder of another user not trusted, `InvalidName`.
    pub fn create(self) -> Result<Mutex> {
        let owned = self.initially_owned;
        Object::create(Kind::Mutex, SegKind::Mutex, &self.common, |s: &MutexState| s.init(owned)).map(Mutex)
    }
    /// Opens the existing mutex.
    ///
    /// # Errors
    /// `NotFound`, `InvalidHandle`, `AccessDenied`, `InvalidParameter` without a name.
    pub fn open(self) -> Result<Mutex> {
        Object::open_named(Kind::Mutex, SegKind::Mutex, &self.common).map(Mutex)
    }
}

/// How to create or open a [`Semaphore`]. Finish with `create` or `open`.
#[derive(Debug)]
#[must_use = "a builder does nothing until create or open"]
pub struct SemaphoreBuilder<'a> {
    common: Common<'a>,
    initial: u32,
    maximum: u32,
}

impl<'a> SemaphoreBuilder<'a> {
    common_setters!();
    /// The initial count (default 0; ignored when it exists).
    pub fn initial(mut self, n: u32) -> Self {
        self.initial = n;
        self
    }
    /// The maximum count (default 1; ignored when it exists).
    pub fn maximum(mut self, n: u32) -> Self {
        self.maximum = n;
        self
    }
    /// Creates the semaphore, or opens the existing one (whose counts win).
    ///
    /// # Errors
    /// `InvalidParameter` unless `0 <= initial <= maximum`,
    /// `1 <= maximum <= i32::MAX`; as [`MutexBuilder::create`].
    pub fn create(self) -> Result<Semaphore> {
        let (initial, maximum) = (self.initial, self.maximum);
        if maximum == 0 || maximum > i32::MAX as u32 || initial > maximum {
            return Err(Error::InvalidParameter("need 0 <= initial <= maximum and 1 <= maximum <= 2^31-1"));
        }
        Object::create(Kind::Semaphore, SegKind::Semaphore, &self.common, |s: &SemaphoreState| s.init(initial, maximum))
            .map(Semaphore)
    }
    /// Opens the existing semaphore.
    ///
    /// # Errors
    /// As [`MutexBuilder::open`].
    pub fn open(self) -> Result<Semaphore> {
        Object::open_named(Kind::Semaphore, SegKind::Semaphore, &self.common).map(Semaphore)
    }
}

/// How to create or open an [`Event`]. Finish with `create` or `open`.
#[derive(Debug)]
#[must_use = "a builder does nothing until create or open"]
pub struct EventBuilder<'a> {
    common: Common<'a>,
    manual_reset: bool,
    initially_set: bool,
}

impl<'a> EventBuilder<'a> {
    common_setters!();
    /// Manual-reset (stays set, releases every waiter) instead of auto-reset.
    pub fn manual_reset(mut self, manual: bool) -> Self {
        self.manual_reset = manual;
        self
    }
    /// Whether it starts set (ignored when it exists).
    pub fn initially_set(mut self, set: bool) -> Self {
        self.initially_set = set;
        self
    }
    /// Creates the event, or opens the existing one (whose mode and state win).
    ///
    /// # Errors
    /// As [`MutexBuilder::create`].
    pub fn create(self) -> Result<Event> {
        let (manual, set) = (self.manual_reset, self.initially_set);
        Object::create(Kind::Event, SegKind::Event, &self.common, |s: &EventState| s.init(manual, set)).map(Event)
    }
    /// Opens the existing event.
    ///
    /// # Errors
    /// As [`MutexBuilder::open`].
    pub fn open(self) -> Result<Event> {
        Object::open_named(Kind::Event, SegKind::Event, &self.common).map(Event)
    }
}

/// A named waitable timer (classic `CreateWaitableTimer`): signalled when
/// its due time comes, and again every period if it has one. No thread
/// keeps time: the due time is in the shared segment, on the machine's
/// monotonic clock, and waiters sleep until it.
///
/// A manual-reset (notification) timer stays signalled once due, until it
/// is set again; an auto-reset (synchronization) timer releases one waiter
/// per firing.
///
/// ```
/// use std::time::Duration;
/// use switchboard::sync::{Timer, WaitStatus};
///
/// let t = Timer::builder().manual_reset(true).create()?;
/// t.set(Duration::from_millis(20), None);
/// assert_eq!(t.wait_timeout(Duration::from_secs(5)), WaitStatus::Acquired);
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct Timer(Object<TimerState>);
common!(Timer, Kind::Timer);

impl Timer {
    /// Starts building a timer (auto-reset):
    /// `Timer::builder().name("t").manual_reset(true).create()`.
    pub fn builder<'a>() -> TimerBuilder<'a> {
        TimerBuilder { common: Common::default(), manual_reset: false }
    }

    /// Sets it due `due` from now, then every `period` (`None`: once), as
    /// `SetWaitableTimer` with a relative due time; a signalled timer
    /// becomes unsignalled. Returns whether it was running.
    pub fn set(&self, due: Duration, period: Option<Duration>) -> bool {
        self.0.state().set(due, period)
    }

    /// Stops it; a signalled timer stays signalled (`CancelWaitableTimer`).
    /// Returns whether it was running.
    pub fn cancel(&self) -> bool {
        self.0.state().cancel()
    }

    /// Whether a wait would be satisfied now.
    pub fn is_signalled(&self) -> bool {
        self.0.state().is_signalled()
    }

    /// Whether it is a manual-reset (notification) timer.
    pub fn is_manual_reset(&self) -> bool {
        self.0.state().is_manual()
    }
}

/// How to create or open a [`Timer`]. Finish with `create` or `open`.
#[derive(Debug)]
#[must_use = "a builder does nothing until create or open"]
pub struct TimerBuilder<'a> {
    common: Common<'a>,
    manual_reset: bool,
}

impl<'a> TimerBuilder<'a> {
    common_setters!();
    /// Manual-reset (stays signalled once due) instead of auto-reset.
    pub fn manual_reset(mut self, manual: bool) -> Self {
        self.manual_reset = manual;
        self
    }
    /// Creates the timer (not running), or opens the existing one.
    ///
    /// # Errors
    /// As [`MutexBuilder::create`].
    pub fn create(self) -> Result<Timer> {
        let manual = self.manual_reset;
        Object::create(Kind::Timer, SegKind::Timer, &self.common, |s: &TimerState| s.init(manual)).map(Timer)
    }
    /// Opens the existing timer.
    ///
    /// # Errors
    /// As [`MutexBuilder::open`].
    pub fn open(self) -> Result<Timer> {
        Object::open_named(Kind::Timer, SegKind::Timer, &self.common).map(Timer)
    }
}
