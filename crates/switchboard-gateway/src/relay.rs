//! One remote pipe connection's relay between a local pipe end and the
//! network (the protocol of [`crate::proto`]). The same relay runs on both
//! hosts: on the client's host its local end is the private pipe instance
//! the client opened, on the server's host it is a client end of the real
//! pipe.
//!
//! Two threads per connection: one reads the local end and sends data as
//! the peer's credit allows; one writes what arrives into the local end and
//! returns credit as it goes. Frames arrive on the backend's threads and
//! are only checked and queued there.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use switchboard::pipe::named::{PipeClient, PipeServer};
use switchboard::{Error, Result};

use crate::backend::{Backend, Guard};
use crate::proto::{Body, Credit, Data, Frame, Intake, MAX_FRAME};

/// How often a relay blocked in a local read looks whether the connection
/// ended (the local end has no other way to be woken).
const READ_SLICE: Duration = Duration::from_millis(200);

/// A local pipe end a relay reads and writes.
pub(crate) trait LocalEnd: Send + Sync + 'static {
    /// Reads (message mode: at most one message, `MoreData` for the rest).
    fn read(&self, buf: &mut [u8]) -> Result<usize>;
    /// Writes one message, or bytes.
    fn write(&self, data: &[u8]) -> Result<()>;
    /// Sets how long a read waits.
    fn set_read_timeout(&self, timeout: Option<Duration>);
}

macro_rules! local_end {
    ($t:ty) => {
        impl LocalEnd for $t {
            fn read(&self, buf: &mut [u8]) -> Result<usize> {
                <$t>::read(self, buf)
            }
            fn write(&self, data: &[u8]) -> Result<()> {
                <$t>::write(self, data)
            }
            fn set_read_timeout(&self, timeout: Option<Duration>) {
                <$t>::set_read_timeout(self, timeout)
            }
        }
    };
}
local_end!(PipeClient);
local_end!(PipeServer);

/// Why a connection ended, as the far side or the local side said.
#[derive(Clone, Debug)]
struct Ended {
    code: u32,
    why: String,
    /// Whether the far side already knows (it sent the close).
    told: bool,
}

#[derive(Debug)]
struct State {
    credit: Credit,
    intake: Intake,
    in_seq: u64,
    inbox: VecDeque<Data>,
    ended: Option<Ended>,
}

/// One connection's relay.
pub(crate) struct Relay {
    backend: Arc<dyn Backend>,
    /// The key this side puts its frames on.
    out_key: String,
    state: Mutex<State>,
    changed: Condvar,
    /// The next frame's sequence number, held while its frame is put, so
    /// frames leave in order (never the state's lock: a put may wait on
    /// the network, and frames arriving meanwhile must not).
    out_seq: Mutex<u64>,
    /// Subscriptions and tokens, dropped when both threads end.
    guards: Mutex<Vec<Guard>>,
}

impl Relay {
    /// A relay that puts on `out_key`, offering `window` and held to the
    /// peer's `peer_window`.
    pub fn new(backend: Arc<dyn Backend>, out_key: String, window: u64, peer_window: u64) -> Arc<Relay> {
        Arc::new(Relay {
            backend,
            out_key,
            state: Mutex::new(State {
                credit: Credit::new(peer_window),
                intake: Intake::new(window),
                in_seq: 0,
                inbox: VecDeque::new(),
                ended: None,
            }),
            changed: Condvar::new(),
            out_seq: Mutex::new(0),
            guards: Mutex::new(Vec::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `guard` until the connection ends.
    pub fn keep(&self, guard: Guard) {
        self.guards.lock().unwrap_or_else(|p| p.into_inner()).push(guard);
    }

    /// Takes the peer's frames from `key`.
    ///
    /// # Errors
    /// The backend's.
    pub fn hear(self: &Arc<Self>, key: &str) -> Result<()> {
        let r = self.clone();
        self.keep(self.backend.subscribe(key, Box::new(move |s| r.on_frame(s.payload)))?);
        Ok(())
    }

    /// Ends the connection (53, `why`) when the liveliness token `key` goes.
    ///
    /// # Errors
    /// The backend's.
    pub fn end_when_gone(self: &Arc<Self>, key: &str, why: String) -> Result<()> {
        let r = self.clone();
        let on = Box::new(move |_: &str, alive: bool| {
            if !alive {
                r.end(53, why.clone());
            }
        });
        self.keep(self.backend.watch(key, on)?);
        Ok(())
    }

    /// Gives up a relay that will never [`Relay::run`] (its open failed):
    /// ends it and drops its subscriptions and tokens, which hold the relay
    /// and would otherwise keep it, and its token, alive for good.
    pub fn abandon(&self) {
        self.end(1, "the open did not complete".into());
        self.release();
    }

    fn release(&self) {
        drop(std::mem::take(&mut *self.guards.lock().unwrap_or_else(|p| p.into_inner())));
    }

    /// Sets the peer's window (learned from the open reply).
    pub fn set_peer_window(&self, window: u64) {
        self.lock().credit = Credit::new(window);
    }

    /// A frame from the peer (on the backend's thread: never blocks).
    pub fn on_frame(&self, bytes: Vec<u8>) {
        let mut st = self.lock();
        if st.ended.is_some() {
            return;
        }
        let frame = match Frame::decode(bytes) {
            Ok(f) if f.seq == st.in_seq => f,
            Ok(f) => {
                let why = format!("frames were lost (got {}, expected {})", f.seq, st.in_seq);
                return self.end_locked(&mut st, 53, why, false);
            }
            Err(e) => return self.end_locked(&mut st, 1, e.to_string(), false),
        };
        st.in_seq += 1;
        match frame.body {
            Body::Data(d) if d.len() <= MAX_FRAME && st.intake.accept(d.len()) => st.inbox.push_back(d),
            Body::Data(_) => return self.end_locked(&mut st, 1, "the peer sent past its credit".into(), false),
            Body::Credit(c) => {
                if let Err(e) = st.credit.ack(c) {
                    return self.end_locked(&mut st, 1, e.to_string(), false);
                }
            }
            Body::Close(code, why) => return self.end_locked(&mut st, code, why, true),
        }
        self.changed.notify_all();
    }

    /// Ends the connection from this side (a lost peer, a local close).
    pub fn end(&self, code: u32, why: String) {
        let mut st = self.lock();
        if st.ended.is_none() {
            self.end_locked(&mut st, code, why, false);
        }
    }

    fn end_locked(&self, st: &mut State, code: u32, why: String, told: bool) {
        st.ended = Some(Ended { code, why, told });
        self.changed.notify_all();
    }

    /// Puts one frame; a failed put ends the connection.
    fn send(&self, body: Body) {
        self.send_with(|seq| Frame { seq, body }.encode());
    }

    /// Puts the frame `encode` writes with its sequence number.
    fn send_with(&self, encode: impl FnOnce(u64) -> Vec<u8>) {
        let mut seq = self.out_seq.lock().unwrap_or_else(|p| p.into_inner());
        let frame = encode(*seq);
        *seq += 1;
        if let Err(e) = self.backend.put(&self.out_key, frame) {
            drop(seq);
            self.end(53, e.to_string());
        }
    }

    /// Relays between `local` and the peer until either side ends; the
    /// local end is dropped when both directions are done. `reads`/`writes`:
    /// whether the local end may read / write (a one-way pipe's end may not).
    pub fn run<L: LocalEnd>(self: &Arc<Self>, local: L, reads: bool, writes: bool) {
        let local = Arc::new(local);
        let (relay, end) = (self.clone(), local.clone());
        let writer = std::thread::Builder::new()
            .name("sb-gw-in".into())
            .spawn(move || relay.deliver(&*end, writes))
            .map_err(|e| self.end(1, format!("no thread: {e}")));
        let relay = self.clone();
        let _ = std::thread::Builder::new().name("sb-gw-out".into()).spawn(move || {
            relay.pump(&*local, reads);
            if let Ok(w) = writer {
                let _ = w.join();
            }
            relay.release();
        });
    }

    /// Local → peer.
    fn pump(&self, local: &dyn LocalEnd, reads: bool) {
        if reads {
            self.read_and_send(local);
        } else {
            // A one-way end this side may not read: only wait for the end.
            drop(self.changed.wait_while(self.lock(), |s| s.ended.is_none()));
        }
        let ended = self.lock().ended.clone();
        if let Some(Ended { code, why, told: false }) = ended {
            self.send(Body::Close(code, why));
        }
    }

    /// Reads the local end and sends what it read as the peer's credit
    /// allows, until the connection ends.
    fn read_and_send(&self, local: &dyn LocalEnd) {
        local.set_read_timeout(Some(READ_SLICE));
        let mut buf = vec![0u8; 1 << 20];
        while self.lock().ended.is_none() {
            // The parts of a message longer than `buf`, when there are.
            let mut parts = Vec::new();
            let got = loop {
                match local.read(&mut buf) {
                    Ok(n) => break Ok(n),
                    Err(Error::MoreData { received }) => parts.extend_from_slice(&buf[..received]),
                    Err(Error::Timeout) if parts.is_empty() => break Err(None),
                    Err(Error::Timeout) => {}
                    Err(e) => break Err(Some(e)),
                }
            };
            match got {
                Ok(n) => {
                    let msg: &[u8] = if parts.is_empty() {
                        &buf[..n]
                    } else {
                        parts.extend_from_slice(&buf[..n]);
                        &parts
                    };
                    let st = self.lock();
                    let mut st = self
                        .changed
                        .wait_while(st, |s| s.ended.is_none() && !s.credit.may_send(msg.len()))
                        .unwrap_or_else(|p| p.into_inner());
                    if st.ended.is_some() {
                        break;
                    }
                    st.credit.sent(msg.len());
                    drop(st);
                    self.send_with(|seq| Frame::data(seq, msg));
                }
                Err(None) => {}
                // The local end closed or its process died: a plain close.
                Err(Some(_)) => self.end(0, String::new()),
            }
        }
    }

    /// Peer → local: everything that arrived is written, even after the
    /// peer's close, before the local end goes.
    fn deliver(&self, local: &dyn LocalEnd, writes: bool) {
        loop {
            let st = self.lock();
            let mut st = self
                .changed
                .wait_while(st, |s| s.inbox.is_empty() && s.ended.is_none())
                .unwrap_or_else(|p| p.into_inner());
            let Some(data) = st.inbox.pop_front() else { break };
            drop(st);
            let len = data.len();
            if !writes || local.write(data.as_slice()).is_err() {
                self.end(0, String::new());
                break;
            }
            let credit = {
                let mut st = self.lock();
                st.intake.delivered(len).filter(|_| st.ended.is_none())
            };
            if let Some(consumed) = credit {
                self.send(Body::Credit(consumed));
            }
        }
    }
}
