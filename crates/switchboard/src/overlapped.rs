//! Overlapped I/O completing on a completion port (spec 04-S11): the port
//! as a server's I/O loop, which is what ports are for.
//!
//! [`Port::associate`] binds a pipe end or a mailslot to a port under a
//! completion key (classic `CreateIoCompletionPort(handle, port, key)`).
//! Each [`Association::read`] or [`Association::write`] starts one
//! operation with the caller's overlapped id; when it ends, a packet
//! `(bytes, key, overlapped)` arrives on the port — in any process that
//! holds the port — and [`Association::take`] hands over the operation's
//! result: the bytes read, or the error (classic `GetQueuedCompletionStatus`
//! returning `FALSE` with the packet). [`Association::cancel`] ends a
//! pending operation with `OperationAborted` (995), as `CancelIoEx` does.
//! On a pipe server instance, [`Association::connect`] is the overlapped
//! `ConnectNamedPipe`: its packet says a client connected.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use switchboard::pipe::named::{PipeClient, PipeOptions, PipeType, ReadMode};
//! use switchboard::port::Port;
//!
//! let name = format!("doc-ovl-{}", std::process::id());
//! let port = Arc::new(Port::create(None, 1)?);
//! let server = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message).create(&name)?;
//! let client = PipeClient::open(&name)?;
//! server.connect()?;
//! let io = port.associate(server, 7)?;
//! io.read(64, 1)?; // overlapped id 1
//! client.write(b"hello")?;
//! let packet = port.get(Duration::from_secs(5))?;
//! assert_eq!((packet.key, packet.overlapped, packet.bytes), (7, 1, 5));
//! assert_eq!(io.take(1).unwrap()?, b"hello");
//! # Ok::<(), switchboard::Error>(())
//! ```
//!
//! ## How it works
//! Each association has one I/O thread that runs its operations in the
//! order they were started (reads wait in slices of [`CANCEL_SLICE`], so a
//! cancel takes effect within one). Posting the completion is an ordinary
//! post: a consumer in another process sees it as any packet. One thread per
//! association suits servers of tens or hundreds of pipes, not tens of
//! thousands; the completion-port issue's new queue is where an epoll
//! engine would come.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::mailslot::Mailslot;
use crate::pipe::named::{PipeClient, PipeServer};
use crate::port::Port;

/// How long a pending read waits before it looks for a cancel.
pub const CANCEL_SLICE: Duration = Duration::from_millis(20);

/// Something that can be associated with a port: a named pipe's server or
/// client end, or a mailslot (its server, which reads).
pub trait Source: Send + Sync + 'static {
    /// Reads one message (or what a byte pipe has), waiting until `deadline`.
    ///
    /// # Errors
    /// `Timeout` at the deadline; the source's read errors.
    fn read_until(&self, buf: &mut [u8], deadline: Instant) -> Result<usize>;

    /// Writes `data` whole.
    ///
    /// # Errors
    /// The source's write errors; `AccessDenied` for a source that only reads.
    fn write_all(&self, data: &[u8]) -> Result<()>;

    /// Waits until `deadline` for a client (a pipe server instance; see
    /// [`Association::connect`]).
    ///
    /// # Errors
    /// `Timeout` at the deadline; `InvalidFunction`-class
    /// `InvalidParameter` for a source that is not a server instance.
    fn connect_until(&self, _deadline: Instant) -> Result<()> {
        Err(Error::InvalidParameter("only a pipe server instance connects"))
    }
}

impl Source for PipeServer {
    fn read_until(&self, buf: &mut [u8], deadline: Instant) -> Result<usize> {
        self.read_deadline(buf, deadline)
    }
    fn write_all(&self, data: &[u8]) -> Result<()> {
        self.write(data)
    }
    fn connect_until(&self, deadline: Instant) -> Result<()> {
        self.connect_timeout(deadline).map(drop)
    }
}

impl Source for PipeClient {
    fn read_until(&self, buf: &mut [u8], deadline: Instant) -> Result<usize> {
        self.read_deadline(buf, deadline)
    }
    fn write_all(&self, data: &[u8]) -> Result<()> {
        self.write(data)
    }
}

impl Source for Mailslot {
    fn read_until(&self, buf: &mut [u8], deadline: Instant) -> Result<usize> {
        self.read_deadline(buf, deadline).map(|r| r.len)
    }
    fn write_all(&self, _: &[u8]) -> Result<()> {
        Err(Error::AccessDenied("a mailslot server only reads".into()))
    }
}

/// One operation, as started.
#[derive(Debug)]
enum Op {
    Read(usize),
    Write(Vec<u8>),
    Connect,
}

/// What the I/O thread and the association share.
#[derive(Debug, Default)]
struct State {
    /// Started, not yet running, in order.
    queued: VecDeque<(u64, Op)>,
    /// The operation running now, and whether it was cancelled.
    running: Option<(u64, bool)>,
    /// Whether the running operation is a write (which waits for room as
    /// long as the reader lives, and is not cut short by a cancel).
    writing: bool,
    /// Finished operations' results, by overlapped id, until taken.
    done: HashMap<u64, Result<Vec<u8>>>,
    closing: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A source bound to a port (see the module docs). Dropping it cancels a
/// running read and waits for it (within [`CANCEL_SLICE`]); a running
/// write is not waited for — it ends when its reader reads or leaves, and
/// only then is the source closed. Operations still queued complete as
/// cancelled.
#[derive(Debug)]
pub struct Association<S: Source> {
    source: Arc<S>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    port: Arc<Port>,
    key: u64,
}

impl Port {
    /// Associates `source` with this port under `key` (04-S11): each
    /// overlapped operation started on the association completes as a
    /// packet `(bytes, key, overlapped)` on this port.
    ///
    /// # Errors
    /// When the I/O thread cannot start.
    pub fn associate<S: Source>(self: &Arc<Self>, source: S, key: u64) -> Result<Association<S>> {
        let source = Arc::new(source);
        let shared = Arc::new(Shared::default());
        let (src, sh, port) = (source.clone(), shared.clone(), self.clone());
        let thread = std::thread::Builder::new()
            .name("switchboard-overlapped".into())
            .spawn(move || run(&*src, &sh, &port, key))
            .map_err(Error::Io)?;
        Ok(Association { source, shared, thread: Some(thread), port: self.clone(), key })
    }
}

impl<S: Source> Association<S> {
    /// Starts an overlapped read of up to `len` bytes with id `overlapped`
    /// (one message of a message pipe: give `len` for the largest — a
    /// longer one completes with `MoreData`).
    ///
    /// # Errors
    /// `InvalidParameter` when an operation with this id is pending or its
    /// result not yet taken.
    pub fn read(&self, len: usize, overlapped: u64) -> Result<()> {
        self.start(overlapped, Op::Read(len))
    }

    /// Starts an overlapped write of `data` with id `overlapped`.
    ///
    /// # Errors
    /// As [`Association::read`].
    pub fn write(&self, data: Vec<u8>, overlapped: u64) -> Result<()> {
        self.start(overlapped, Op::Write(data))
    }

    fn start(&self, overlapped: u64, op: Op) -> Result<()> {
        let mut st = self.shared.lock();
        let busy = st.queued.iter().any(|(id, _)| *id == overlapped)
            || st.running.is_some_and(|(id, _)| id == overlapped)
            || st.done.contains_key(&overlapped);
        if busy {
            return Err(Error::InvalidParameter("an operation with this overlapped id is still pending or untaken"));
        }
        st.queued.push_back((overlapped, op));
        self.shared.changed.notify_all();
        Ok(())
    }

    /// The result of the finished operation `overlapped` (its packet
    /// arrived): the bytes read (a write's are empty), or its error.
    /// `None` when it has not finished (or was taken already).
    pub fn take(&self, overlapped: u64) -> Option<Result<Vec<u8>>> {
        self.shared.lock().done.remove(&overlapped)
    }

    /// Cancels operation `overlapped` (classic `CancelIoEx`): a queued
    /// operation or a running read completes with `OperationAborted` (995)
    /// — its packet still arrives; a write already running completes as it
    /// would have. Returns whether there was such an operation to cancel.
    pub fn cancel(&self, overlapped: u64) -> bool {
        let mut st = self.shared.lock();
        if let Some(at) = st.queued.iter().position(|(id, _)| *id == overlapped) {
            st.queued.remove(at);
            st.done.insert(overlapped, Err(Error::OperationAborted));
            drop(st);
            let _ = self.port.post(0, self.key, overlapped);
            return true;
        }
        match &mut st.running {
            Some((id, cancelled)) if *id == overlapped => {
                *cancelled = true;
                true
            }
            _ => false,
        }
    }

    /// The associated source (to disconnect, or read its state).
    pub fn source(&self) -> &S {
        &self.source
    }
}

impl Association<PipeServer> {
    /// Starts an overlapped connect with id `overlapped` (classic
    /// `ConnectNamedPipe` with an `OVERLAPPED` on an instance bound to a
    /// port): the instance listens, and a packet `(0, key, overlapped)`
    /// arrives when a client connects. As there, a client that connected
    /// before the call makes it fail at once with `PipeConnected` (535) and
    /// no packet comes. It runs in order with the association's other
    /// operations; [`Association::cancel`] ends it with `OperationAborted`.
    ///
    /// # Errors
    /// `PipeConnected`; as [`Association::read`].
    pub fn connect(&self, overlapped: u64) -> Result<()> {
        if self.source.is_connected() {
            return Err(Error::PipeConnected);
        }
        self.start(overlapped, Op::Connect)
    }
}

impl<S: Source> Drop for Association<S> {
    fn drop(&mut self) {
        {
            let mut st = self.shared.lock();
            st.closing = true;
            if let Some((_, cancelled)) = &mut st.running {
                *cancelled = true;
            }
            self.shared.changed.notify_all();
            if st.writing {
                // Detached: it finishes the write, posts it, and ends; what
                // is queued behind it completes now.
                drop(st);
                close_queued(&self.shared, &self.port, self.key);
                return;
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The I/O thread: runs queued operations in order, posting each one's
/// completion.
fn run(source: &dyn Source, shared: &Shared, port: &Port, key: u64) {
    loop {
        let (id, op) = {
            let mut st = shared.lock();
            loop {
                if st.closing {
                    drop(st);
                    close_queued(shared, port, key);
                    return;
                }
                if let Some((id, op)) = st.queued.pop_front() {
                    // Running from the moment it leaves the queue, in the
                    // same critical section: a cancel never finds it in
                    // neither place.
                    st.running = Some((id, false));
                    st.writing = matches!(op, Op::Write(_));
                    break (id, op);
                }
                st = shared.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        let result = match op {
            Op::Read(len) => in_slices(shared, |until| {
                let mut buf = vec![0u8; len];
                source.read_until(&mut buf, until).map(|n| {
                    buf.truncate(n);
                    (n, buf)
                })
            }),
            Op::Write(data) => source.write_all(&data).map(|()| (data.len(), Vec::new())),
            Op::Connect => in_slices(shared, |until| source.connect_until(until).map(|()| (0, Vec::new()))),
        };
        let (bytes, outcome) = match result {
            Ok((n, data)) => (n, Ok(data)),
            Err(e) => (0, Err(e)),
        };
        {
            let mut st = shared.lock();
            st.running = None;
            st.writing = false;
            st.done.insert(id, outcome);
        }
        let _ = port.post(u32::try_from(bytes).unwrap_or(u32::MAX), key, id);
    }
}

/// A closing association's queued operations complete as cancelled (posted
/// with the state unlocked: a full port may make a post wait).
fn close_queued(shared: &Shared, port: &Port, key: u64) {
    let ids: Vec<u64> = {
        let mut st = shared.lock();
        let ids: Vec<u64> = st.queued.drain(..).map(|(id, _)| id).collect();
        for &id in &ids {
            st.done.insert(id, Err(Error::OperationAborted));
        }
        ids
    };
    for id in ids {
        let _ = port.post(0, key, id);
    }
}

/// One overlapped wait (a read, a connect): `attempt` waits until the
/// instant it is given, in slices, with a look for a cancel between them.
fn in_slices(
    shared: &Shared,
    mut attempt: impl FnMut(Instant) -> Result<(usize, Vec<u8>)>,
) -> Result<(usize, Vec<u8>)> {
    loop {
        if shared.lock().running.is_some_and(|(_, cancelled)| cancelled) {
            return Err(Error::OperationAborted);
        }
        match attempt(Instant::now() + CANCEL_SLICE) {
            Err(Error::Timeout) => {}
            other => return other,
        }
    }
}
