//! What a port on an end of a [`super::SerialPair`] and the pair say to
//! each other, and the port's side of it.
//!
//! A port that opens an end finds its pair through the rendezvous (family
//! `t`, the end's path as the name, this user's only). The connection
//! carries small msgpack messages, one per packet:
//! - port → pair: [`ToPair`] (raise or drop RTS and DTR, the frame the pty
//!   cannot keep, a break); each is answered by the end's [`EndState`] and
//!   [`ToEnd::Done`], after the far end's ports were told what changed;
//! - pair → port: [`ToEnd::State`] whenever the end's modem inputs or
//!   counters change.
//!
//! Either side may be hostile: a message that does not decode ends the
//! connection, and every wait has a deadline.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchboard_sys::socket::Conn;
use switchboard_sys::{AsFd, BorrowedFd, Errno};

use super::Parity;
use crate::error::{Error, Result};
use crate::name::Scope;
use crate::rendezvous::{self, Family, Trust};

/// How long a port waits for its pair's answer.
const ANSWER: Duration = Duration::from_secs(5);
/// How long opening a pty waits to learn whether a pair owns it: a pair
/// answers in microseconds; a name squatted by another user with a full
/// backlog is waited for this long, then taken for no pair.
const FIND: Duration = Duration::from_secs(2);
/// The largest message either side sends.
pub(crate) const MESSAGE_MAX: usize = 256;

/// A port's request.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) enum ToPair {
    /// Raise or drop the outputs (`None`: as they are).
    Lines { rts: Option<bool>, dtr: Option<bool> },
    /// The frame set by the port: data bits and parity (a pty keeps
    /// neither; the pair keeps them for the end).
    Frame { data_bits: u8, parity: u8 },
    /// A break of `ms` milliseconds, after what the end sent before.
    Break { ms: u32 },
    /// The end's state now, with its bytes taken and on the wire.
    Query,
    /// Done once the pair has taken `upto` bytes from the end (counted as
    /// [`EndState::taken`]) and the wire is empty. A pty's output queue
    /// empties into its master at once and the kernel hands it over
    /// asynchronously, so only a count says that a byte written was taken.
    Drain { upto: u64 },
}

/// The pair's word to a port.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) enum ToEnd {
    /// What the end sees now.
    State(EndState),
    /// The request before was done.
    Done,
}

/// The line counters a port's events and errors come from (as a UART
/// driver's `TIOCGICOUNT`): each counts changes since the pair began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counts {
    pub cts: u32,
    pub dsr: u32,
    pub rng: u32,
    pub dcd: u32,
    pub frame: u32,
    pub overrun: u32,
    pub parity: u32,
    pub brk: u32,
    pub buf_overrun: u32,
}

impl From<switchboard_sys::tty::Counters> for Counts {
    fn from(c: switchboard_sys::tty::Counters) -> Counts {
        let n = |v: i32| v as u32;
        Counts {
            cts: n(c.cts),
            dsr: n(c.dsr),
            rng: n(c.rng),
            dcd: n(c.dcd),
            frame: n(c.frame),
            overrun: n(c.overrun),
            parity: n(c.parity),
            brk: n(c.brk),
            buf_overrun: n(c.buf_overrun),
        }
    }
}

/// What one end of a pair sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EndState {
    /// Its modem inputs, as `TIOCM_*` bits (CTS, DSR, RI, CD).
    pub lines: u32,
    pub counts: Counts,
    /// The frame a port set (0 data bits: none set, the pty's 8N).
    pub data_bits: u8,
    pub parity: u8,
    /// Bytes the pair has taken from the end since it began, and those
    /// of them not delivered yet (fresh in the answer to a request).
    pub taken: u64,
    pub on_wire: u32,
}

/// A parity as one byte on the wire.
pub(crate) fn parity_code(p: Parity) -> u8 {
    match p {
        Parity::None => 0,
        Parity::Odd => 1,
        Parity::Even => 2,
        Parity::Mark => 3,
        Parity::Space => 4,
    }
}

/// The parity of a byte on the wire (an unknown byte: none).
pub(crate) fn parity_from(code: u8) -> Parity {
    match code {
        1 => Parity::Odd,
        2 => Parity::Even,
        3 => Parity::Mark,
        4 => Parity::Space,
        _ => Parity::None,
    }
}

/// The rendezvous address of the pair that owns the pty end at `path`.
pub(crate) fn address(path: &str) -> Vec<u8> {
    rendezvous::address(Family::SERIAL, Scope::Local, path)
}

/// A port's connection to the pair whose end it opened.
#[derive(Debug)]
pub(crate) struct PairEnd {
    conn: Conn,
    state: Mutex<EndState>,
}

impl PairEnd {
    /// The pair of the pty end at `path`, if a pair of this user owns it.
    ///
    /// # Errors
    /// `BrokenPipe` when the pair answered and went away before its first word.
    pub fn find(path: &std::path::Path) -> Result<Option<PairEnd>> {
        let Ok(real) = std::fs::canonicalize(path) else { return Ok(None) };
        let Some(real) = real.to_str().filter(|p| p.starts_with("/dev/pts/")) else { return Ok(None) };
        let by = Instant::now() + FIND;
        // Nobody there, or a holder of another user: a plain pty.
        let Ok(answer) = rendezvous::connect(Family::SERIAL, &address(real), by, Trust::User) else {
            return Ok(None);
        };
        let end = PairEnd { conn: answer.conn, state: Mutex::new(EndState::default()) };
        // The pair's first word is the end's state.
        let mut state = end.lock();
        end.receive(&mut state, Some(by))?.ok_or(Error::BrokenPipe)?;
        drop(state);
        Ok(Some(end))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EndState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one message (waiting until `by`; `None`: not at all) into
    /// `state`: `Some(true)` for `Done`, `Some(false)` for a state, `None`
    /// when nothing came.
    fn receive(&self, state: &mut EndState, by: Option<Instant>) -> Result<Option<bool>> {
        let mut buf = [0u8; MESSAGE_MAX];
        let wait = by.or_else(|| Some(Instant::now()));
        match self.conn.recv(&mut buf, wait) {
            Ok(Some((n, _))) => match rmp_serde::from_slice::<ToEnd>(&buf[..n]) {
                Ok(ToEnd::State(s)) => {
                    *state = s;
                    Ok(Some(false))
                }
                Ok(ToEnd::Done) => Ok(Some(true)),
                Err(e) => Err(Error::Malformed(format!("serial pair: {e}"))),
            },
            Ok(None) | Err(Errno::PIPE | Errno::CONNRESET) => Err(Error::BrokenPipe),
            Err(Errno::TIMEDOUT) if by.is_none() => Ok(None),
            Err(Errno::TIMEDOUT) => Err(Error::Timeout),
            Err(e) => Err(Error::sys(e)),
        }
    }

    /// What the end sees now (the pair's last word, read without waiting).
    ///
    /// # Errors
    /// `BrokenPipe` when the pair is gone.
    pub fn state(&self) -> Result<EndState> {
        let mut state = self.lock();
        while self.receive(&mut state, None)?.is_some() {}
        Ok(*state)
    }

    /// Asks the pair for `req` and waits until it is done.
    ///
    /// # Errors
    /// `BrokenPipe` when the pair is gone; `Timeout` when it does not answer.
    pub fn request(&self, req: ToPair) -> Result<EndState> {
        self.ask(req, Some(Instant::now() + ANSWER))
    }

    /// Waits until every byte the end's program wrote has left the wire,
    /// as long as that takes (a slow rate, flow control holding it): the
    /// pair answers, or is gone and the wait is `BrokenPipe`.
    ///
    /// # Errors
    /// `BrokenPipe` when the pair is gone.
    pub fn drain(&self, upto: u64) -> Result<()> {
        self.ask(ToPair::Drain { upto }, None).map(drop)
    }

    fn ask(&self, req: ToPair, by: Option<Instant>) -> Result<EndState> {
        let mut state = self.lock();
        let bytes = rmp_serde::to_vec(&req).map_err(|e| Error::Malformed(e.to_string()))?;
        self.conn.send(&bytes, &[]).map_err(|e| match e {
            Errno::PIPE | Errno::CONNRESET => Error::BrokenPipe,
            other => Error::sys(other),
        })?;
        // No deadline: a wait without end (receive's `None` would not wait).
        let by = by.unwrap_or_else(|| Instant::now() + Duration::from_secs(u64::from(u32::MAX)));
        while self.receive(&mut state, Some(by))? != Some(true) {}
        Ok(*state)
    }

    /// The connection, to wait on: readable when the pair has news.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }
}
