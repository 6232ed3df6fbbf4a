//! The virtual null-modem (11-S08): two pty ends and the cable between
//! them, run by switchboard.
//!
//! Linux ptys carry bytes at once, have no modem lines, no break and no
//! line errors, and forget parity. A [`SerialPair`] owns the masters of
//! two ptys and plays the cable between their slave ends, which programs
//! open as serial ports:
//! - **Pacing.** Bytes leave an end at its baud rate and frame (start
//!   bit, data bits, parity, stop bits): a byte at 9600 8N1 takes about a
//!   millisecond, and the sender's output queue drains at that pace, so
//!   `tcdrain` and TXEMPTY mean "sent".
//! - **Frames must agree.** A byte sent at another baud rate, with other
//!   data bits or with parity against none arrives as a framing error
//!   (counted, not delivered); odd against even parity delivers the byte
//!   and counts a parity error where its bit disagrees; fewer than 8 data
//!   bits lose the high bits.
//! - **Modem lines, crossed.** An end's RTS is the other's CTS; its DTR
//!   the other's DSR and carrier detect (DCD). An end's outputs are up
//!   while a program has it open and down when the last one closes or
//!   dies: the far end sees the carrier drop, as on a cable. A switchboard
//!   port raises and drops them at will ([`super::SerialPort::set_rts`]);
//!   [`SerialPair::set_ring`] rings an end.
//! - **Flow control.** With RTS/CTS at both ends, a receiver whose input
//!   is full holds the sender (nothing is lost), and an end whose CTS is
//!   down does not send. Without it, the line goes on at its pace and a
//!   receiver that does not keep up loses what does not fit its input
//!   (counted: `CE_RXOVER`), as a real UART does; XON/XOFF is the ends'
//!   own line discipline, carried through like any byte.
//! - **Break.** A break sent by a switchboard port reaches the far end
//!   after the bytes sent before it and holds the line for its length; the
//!   far end counts it (EV_BREAK) and reads the NUL byte POSIX delivers for
//!   a break (none with `IGNBRK`).
//! - **Settings are seen.** The masters are in packet mode and the ends
//!   have `EXTPROC`, so a program's `tcsetattr` wakes the pair, which reads
//!   the end's baud rate and stop bits back; data bits and parity, which a
//!   pty forgets, come from a switchboard port's settings.
//!
//! What a program not written here sees: the paced bytes, framing (as lost
//! bytes), breaks as NUL bytes, and the far end's open and close through
//! its own traffic — but not modem lines or counters, because a pty
//! answers their ioctls (`TIOCMGET`, `TIOCGICOUNT`) with `ENOTTY` and no
//! master can change that. A switchboard port on an end gets all of it
//! through the pair's rendezvous ([`super::line`]).
//!
//! ```
//! use std::time::Duration;
//! use switchboard::serial::{events, SerialPair, SerialPort};
//!
//! let pair = SerialPair::new()?;
//! let a = SerialPort::open(pair.path(0))?;
//! let b = SerialPort::open(pair.path(1))?;
//! assert!(b.modem_status()?.cts); // a's RTS is up
//! b.set_event_mask(events::CTS)?;
//! a.set_rts(false)?;
//! assert_eq!(b.wait_event(Some(Duration::from_secs(5)))?, events::CTS);
//! assert!(!b.modem_status()?.cts);
//! # Ok::<(), switchboard::Error>(())
//! ```

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use switchboard_sys::eventfd::EventFd;
use switchboard_sys::socket::{self, Conn, Cred};
use switchboard_sys::tty::{self, lines, ControlModes, InputModes, LocalModes, Termios};
use switchboard_sys::{AsFd, BorrowedFd, Errno, OwnedFd};

use super::line::{self, EndState, ToEnd, ToPair, MESSAGE_MAX};
use super::Parity;
use crate::error::{Error, Result};
use crate::namespace::Acl;
use crate::rendezvous::{self, Family, Service, Status};

/// How much of the line's time one read from an end covers.
const SLICE: Duration = Duration::from_millis(2);
/// How often a closed end is looked at for a program opening it, and a
/// blocked delivery or message tried again.
const RETRY: Duration = Duration::from_millis(20);
/// The most chunks on the wire from one end (reads wait beyond it).
const WIRE_MAX: usize = 16;
/// The longest break a port may ask for.
const BREAK_MAX_MS: u32 = 5000;
/// The most requests taken from one port per round (others get theirs).
const REQUESTS_PER_ROUND: usize = 64;

/// A virtual null-modem: two serial-port ends joined by a cable that
/// switchboard plays (see the module docs). Dropping it pulls the cable:
/// both ends read end-of-line (`BrokenPipe` in a [`super::SerialPort`]).
#[derive(Debug)]
pub struct SerialPair {
    paths: [String; 2],
    commands: Sender<Command>,
    bell: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
    _services: [Service; 2],
}

enum Command {
    Adopt(usize, Conn),
    Ring(usize, bool),
    Stop,
}

/// Hands a port that reached an end's rendezvous to the cable's thread.
struct Door {
    end: usize,
    commands: Mutex<Sender<Command>>,
    bell: Arc<EventFd>,
}

impl rendezvous::Handler for Door {
    fn admit(&self, conn: Conn, _peer: Cred) {
        if rendezvous::wire::send(&conn, Family::SERIAL, Status::Granted, &[], &[]).is_ok() {
            let sent =
                self.commands.lock().unwrap_or_else(PoisonError::into_inner).send(Command::Adopt(self.end, conn));
            if sent.is_ok() {
                self.bell.notify();
            }
        }
    }
}

impl SerialPair {
    /// Two new pty ends and the cable between them.
    ///
    /// # Errors
    /// When the system is out of ptys, descriptors or threads;
    /// `AlreadyExists` when a process holds an end's rendezvous name.
    pub fn new() -> Result<SerialPair> {
        let (m0, p0) = tty::packet_master().map_err(Error::sys)?;
        let (m1, p1) = tty::packet_master().map_err(Error::sys)?;
        let bell = Arc::new(EventFd::new().map_err(Error::sys)?);
        let (commands, orders) = mpsc::channel();
        let paths = [p0, p1];
        let mut services = Vec::with_capacity(2);
        for (end, path) in paths.iter().enumerate() {
            let listener = rendezvous::bind_server(&line::address(path))?
                .ok_or_else(|| Error::AlreadyExists(format!("the serial pair name of {path}")))?;
            let door = Door { end, commands: Mutex::new(commands.clone()), bell: bell.clone() };
            services.push(Service::start(Family::SERIAL, Arc::new(listener), Acl::owner_only(), Arc::new(door))?);
        }
        let ends = [End::new(m0)?, End::new(m1)?];
        let cable = Cable { ends, orders, bell: bell.clone() };
        let thread =
            std::thread::Builder::new().name("serial-pair".into()).spawn(move || cable.run()).map_err(Error::Io)?;
        let Ok(services) = <[Service; 2]>::try_from(services) else { unreachable!("two ends") };
        Ok(SerialPair { paths, commands, bell, thread: Some(thread), _services: services })
    }

    /// The path of end `end` (0 or 1), to open as a serial port.
    ///
    /// # Panics
    /// For an end other than 0 or 1.
    pub fn path(&self, end: usize) -> &str {
        &self.paths[end]
    }

    /// Raises or drops the ring indicator that end `end` sees (a phone
    /// ringing on a modem's line): its port gets [`super::events::RING`].
    pub fn set_ring(&self, end: usize, on: bool) {
        self.order(Command::Ring(end.min(1), on));
    }

    fn order(&self, c: Command) {
        if self.commands.send(c).is_ok() {
            self.bell.notify();
        }
    }
}

impl Drop for SerialPair {
    fn drop(&mut self) {
        self.order(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A port on an end: its connection, and whether it still needs to hear
/// the end's state.
struct Port {
    conn: Conn,
    stale: bool,
    /// Asked to be told once the end's bytes up to this count are sent.
    draining: Option<u64>,
}

/// What is on the wire from one end to the other.
enum Chunk {
    /// Bytes as sent, in the sender's frame.
    Bytes(Vec<u8>, Frame),
    /// Bytes as the receiver's frame hears them, being delivered.
    Heard(Vec<u8>),
    Break,
}

/// How an end frames its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Frame {
    baud: u32,
    data_bits: u8,
    parity: Parity,
    stop_halves: u32,
}

impl Frame {
    /// How long one byte takes on the line.
    fn byte_time(&self) -> Duration {
        let halves = 2 * (1 + u32::from(self.data_bits) + u32::from(self.parity != Parity::None)) + self.stop_halves;
        Duration::from_nanos(u64::from(halves) * 500_000_000 / u64::from(self.baud.max(1)))
    }

    /// The parity bit this frame sends with `byte`.
    fn parity_bit(&self, byte: u8) -> bool {
        let odd_ones = byte.count_ones() % 2 == 1;
        match self.parity {
            Parity::None | Parity::Space => false,
            Parity::Mark => true,
            Parity::Even => odd_ones,
            Parity::Odd => !odd_ones,
        }
    }
}

/// One end of the cable.
struct End {
    master: OwnedFd,
    /// A program has the end open (its master is not hung up).
    open: bool,
    ports: Vec<Port>,
    /// The outputs as switchboard ports set them (up unless dropped).
    rts: bool,
    dtr: bool,
    ring: bool,
    /// The frame a port set: data bits and parity (`None`: the pty's 8N).
    set_frame: Option<(u8, Parity)>,
    termios: Option<Termios>,
    /// When the line out of this end is free again.
    free_at: Instant,
    /// On the wire towards the other end, with when each arrives.
    wire: VecDeque<(Instant, Chunk)>,
    /// The far end's input was full at the last delivery.
    blocked: bool,
    /// The end's inputs and counters, and what its ports last heard.
    state: EndState,
    told: Option<EndState>,
}

impl End {
    fn new(master: OwnedFd) -> Result<End> {
        // EXTPROC: a program's tcsetattr is reported on the master.
        let mut t = tty::attrs(&master).map_err(Error::sys)?;
        t.local_modes |= LocalModes::EXTPROC;
        tty::set_attrs(&master, &t).map_err(Error::sys)?;
        Ok(End {
            master,
            open: false,
            ports: Vec::new(),
            rts: true,
            dtr: true,
            ring: false,
            set_frame: None,
            termios: None,
            free_at: Instant::now(),
            wire: VecDeque::new(),
            blocked: false,
            state: EndState::default(),
            told: None,
        })
    }

    /// What this end's receiver makes of `bytes` sent in frame `sent`:
    /// counts its framing and parity errors, keeps the data bits.
    fn hear(&mut self, mut bytes: Vec<u8>, sent: Frame) -> Chunk {
        let heard = self.frame();
        if sent.baud != heard.baud
            || sent.data_bits != heard.data_bits
            || (sent.parity == Parity::None) != (heard.parity == Parity::None)
        {
            self.state.counts.frame += bytes.len() as u32;
            return Chunk::Heard(Vec::new());
        }
        let mask = 0xffu8 >> (8 - sent.data_bits.clamp(5, 8));
        bytes.iter_mut().for_each(|b| *b &= mask);
        if sent.parity != heard.parity {
            let bad = bytes.iter().filter(|b| sent.parity_bit(**b) != heard.parity_bit(**b)).count();
            self.state.counts.parity += bad as u32;
        }
        Chunk::Heard(bytes)
    }

    fn frame(&self) -> Frame {
        let c = self.termios.as_ref().map(|t| t.control_modes).unwrap_or(ControlModes::empty());
        let baud = self.termios.as_ref().map_or(9600, Termios::output_speed);
        let (data_bits, parity) = self.set_frame.unwrap_or((8, Parity::None));
        let stop_halves = match (c.contains(ControlModes::CSTOPB), data_bits) {
            (false, _) => 2,
            (true, 5) => 3,
            (true, _) => 4,
        };
        Frame { baud, data_bits, parity, stop_halves }
    }

    /// Bytes taken from the end and not delivered yet.
    fn on_wire(&self) -> u32 {
        let on_wire: usize = self
            .wire
            .iter()
            .map(|(_, c)| match c {
                Chunk::Bytes(b, _) | Chunk::Heard(b) => b.len(),
                Chunk::Break => 0,
            })
            .sum();
        on_wire as u32
    }

    /// May bytes leave this end now? Its line is free, the wire has room,
    /// and with RTS/CTS flow control the far end lets it send.
    fn may_send(&self, now: Instant) -> bool {
        self.open
            && now >= self.free_at
            && self.wire.len() < WIRE_MAX
            && (!self.hardware_flow() || self.state.lines & lines::CTS != 0)
    }

    /// The end uses RTS/CTS flow control.
    fn hardware_flow(&self) -> bool {
        self.termios.as_ref().is_some_and(|t| t.control_modes.contains(ControlModes::CRTSCTS))
    }

    /// Reads what the end's program wrote: `Err` once it closed.
    fn read(&mut self, max: usize) -> std::result::Result<Option<(u8, Vec<u8>)>, Errno> {
        let mut buf = vec![0u8; max + 1];
        match tty::read_now(&self.master, &mut buf)? {
            0 => Ok(None),
            n => {
                buf.truncate(n);
                let status = buf.remove(0);
                Ok(Some((status, buf)))
            }
        }
    }
}

/// The cable's thread and everything it owns.
struct Cable {
    ends: [End; 2],
    orders: Receiver<Command>,
    bell: Arc<EventFd>,
}

impl Cable {
    fn run(mut self) {
        loop {
            self.bell.drain();
            while let Ok(order) = self.orders.try_recv() {
                match order {
                    Command::Adopt(end, conn) => {
                        self.ends[end].ports.push(Port { conn, stale: true, draining: None });
                    }
                    Command::Ring(end, on) => self.ends[end].ring = on,
                    Command::Stop => return,
                }
            }
            let now = Instant::now();
            for i in 0..2 {
                self.send(i, now);
            }
            // Deliveries before requests: a drain the last delivery ends
            // is answered in the same round.
            for i in 0..2 {
                self.deliver(i, now);
            }
            for i in 0..2 {
                self.requests(i);
            }
            self.tell();
            self.wait();
        }
    }

    /// Takes what end `i`'s program wrote onto the wire, at its pace.
    fn send(&mut self, i: usize, now: Instant) {
        let end = &mut self.ends[i];
        if !end.open {
            // A program may have opened it since: its master stops hanging up.
            match end.read(0) {
                Err(_) => return,
                Ok(_) => end.open = true,
            }
        }
        end.termios = tty::attrs(&end.master).ok();
        if !end.may_send(now) {
            return;
        }
        let frame = end.frame();
        let per_byte = frame.byte_time();
        let max = (SLICE.as_nanos() / per_byte.as_nanos().max(1)).clamp(1, 4096) as usize;
        match end.read(max) {
            Err(_) => end.open = false,
            Ok(None) => {}
            // Status packets (queues flushed, settings changed): the
            // settings are read again every round.
            Ok(Some((status, _))) if status != 0 => {}
            Ok(Some((_, bytes))) => {
                end.state.taken += bytes.len() as u64;
                let at = now.max(end.free_at) + per_byte * bytes.len() as u32;
                end.free_at = at;
                end.wire.push_back((at, Chunk::Bytes(bytes, frame)));
            }
        }
    }

    /// Serves the requests of end `i`'s ports.
    fn requests(&mut self, i: usize) {
        let mut buf = [0u8; MESSAGE_MAX];
        let mut k = 0;
        while k < self.ends[i].ports.len() {
            let mut done = 0;
            let mut gone = false;
            for _ in 0..REQUESTS_PER_ROUND {
                match self.ends[i].ports[k].conn.recv(&mut buf, Some(Instant::now())) {
                    Ok(Some((n, _))) => match rmp_serde::from_slice::<ToPair>(&buf[..n]) {
                        Ok(ToPair::Drain { upto }) => self.ends[i].ports[k].draining = Some(upto),
                        Ok(req) => {
                            self.apply(i, req);
                            done += 1;
                        }
                        Err(_) => {
                            gone = true;
                            break;
                        }
                    },
                    Err(Errno::TIMEDOUT) => break,
                    Ok(None) | Err(_) => {
                        gone = true;
                        break;
                    }
                }
            }
            let end = &mut self.ends[i];
            let on_wire = end.on_wire();
            let port = &mut end.ports[k];
            if port.draining.is_some_and(|upto| end.state.taken >= upto && on_wire == 0) {
                port.draining = None;
                done += 1;
            }
            if done > 0 {
                // Everyone hears the news before the asker hears "done".
                self.tell();
                let state = EndState { on_wire, ..self.ends[i].state };
                let port = &self.ends[i].ports[k];
                for _ in 0..done {
                    let sent = send(&port.conn, &ToEnd::State(state)).and_then(|()| send(&port.conn, &ToEnd::Done));
                    if sent.is_err() {
                        gone = true;
                    }
                }
            }
            if gone {
                self.ends[i].ports.remove(k);
                if self.ends[i].ports.is_empty() {
                    // As the driver of a closed port: outputs up again
                    // for whoever opens it next, the pty's own frame.
                    let end = &mut self.ends[i];
                    (end.rts, end.dtr, end.set_frame) = (true, true, None);
                }
            } else {
                k += 1;
            }
        }
    }

    fn apply(&mut self, i: usize, req: ToPair) {
        let end = &mut self.ends[i];
        match req {
            ToPair::Lines { rts, dtr } => {
                end.rts = rts.unwrap_or(end.rts);
                end.dtr = dtr.unwrap_or(end.dtr);
            }
            ToPair::Frame { data_bits, parity } => {
                end.set_frame = Some((data_bits.clamp(5, 8), line::parity_from(parity)));
            }
            ToPair::Query | ToPair::Drain { .. } => {}
            ToPair::Break { ms } => {
                let at = Instant::now().max(end.free_at) + Duration::from_millis(u64::from(ms.min(BREAK_MAX_MS)));
                end.free_at = at;
                end.wire.push_back((at, Chunk::Break));
            }
        }
    }

    /// Hands end `i`'s chunks that arrived to the other end.
    fn deliver(&mut self, i: usize, now: Instant) {
        let [a, b] = &mut self.ends;
        let (from, to) = if i == 0 { (a, b) } else { (b, a) };
        from.blocked = false;
        let hold = from.hardware_flow() && to.hardware_flow();
        while let Some((at, chunk)) = from.wire.front_mut() {
            if *at > now {
                break;
            }
            if !to.open {
                // Nobody at the far end: the bytes are lost, as on a cable.
                from.wire.pop_front();
                continue;
            }
            if let Chunk::Bytes(bytes, sent) = chunk {
                *chunk = to.hear(std::mem::take(bytes), *sent);
            }
            match chunk {
                Chunk::Bytes(..) => unreachable!("heard above"),
                Chunk::Break => {
                    to.state.counts.brk += 1;
                    let ignored = to.termios.as_ref().is_some_and(|t| t.input_modes.contains(InputModes::IGNBRK));
                    if !ignored {
                        let _ = tty::write_now(&to.master, &[0]);
                    }
                    from.wire.pop_front();
                }
                Chunk::Heard(bytes) => match tty::write_now(&to.master, bytes) {
                    Ok(n) if n == bytes.len() => drop(from.wire.pop_front()),
                    // The far end's input is full. With RTS/CTS at both
                    // ends its driver would drop RTS and the sender wait:
                    // the rest waits. Otherwise the line goes on and the
                    // receiver loses what it has no room for (CE_RXOVER).
                    Ok(n) if hold => {
                        bytes.drain(..n);
                        from.blocked = true;
                        break;
                    }
                    Ok(n) => {
                        to.state.counts.buf_overrun += (bytes.len() - n) as u32;
                        from.wire.pop_front();
                    }
                    Err(_) => {
                        to.open = false;
                        break;
                    }
                },
            }
        }
    }

    /// Works out each end's inputs, counts their changes, and tells its ports.
    fn tell(&mut self) {
        for i in 0..2 {
            let far = &self.ends[1 - i];
            let mut inputs = 0;
            if far.open && far.rts {
                inputs |= lines::CTS;
            }
            if far.open && far.dtr {
                inputs |= lines::DSR | lines::RLSD;
            }
            let end = &mut self.ends[i];
            if end.ring {
                inputs |= lines::RING;
            }
            let changed = inputs ^ end.state.lines;
            let c = &mut end.state.counts;
            c.cts += u32::from(changed & lines::CTS != 0);
            c.dsr += u32::from(changed & lines::DSR != 0);
            c.dcd += u32::from(changed & lines::RLSD != 0);
            c.rng += u32::from(changed & lines::RING != 0);
            end.state.lines = inputs;
            (end.state.data_bits, end.state.parity) = end.set_frame.map_or((0, 0), |(d, p)| (d, line::parity_code(p)));
            if end.told != Some(end.state) {
                end.told = Some(end.state);
                end.ports.iter_mut().for_each(|p| p.stale = true);
            }
            let state = end.state;
            end.ports.retain_mut(|p| {
                if p.stale {
                    match send(&p.conn, &ToEnd::State(state)) {
                        Ok(()) => p.stale = false,
                        Err(Errno::AGAIN) => {}
                        Err(_) => return false,
                    }
                }
                true
            });
        }
    }

    /// Sleeps until something needs the cable: a program's bytes, a port's
    /// request, an arrival, the line coming free, or an order.
    fn wait(&self) {
        let now = Instant::now();
        let mut until: Option<Instant> = None;
        let mut soon = |t: Instant| until = Some(until.map_or(t, |u: Instant| u.min(t)));
        let mut fds: Vec<BorrowedFd<'_>> = vec![self.bell.as_fd()];
        for end in &self.ends {
            if let Some((at, _)) = end.wire.front() {
                // A delivery the far end had no room for is tried again soon.
                soon(if end.blocked { now + SLICE } else { *at });
            }
            if end.may_send(now) {
                fds.push(end.master.as_fd());
            } else if end.open && end.wire.len() < WIRE_MAX {
                soon(end.free_at);
            }
            if !end.open || end.ports.iter().any(|p| p.stale) {
                soon(now + RETRY);
            }
            fds.extend(end.ports.iter().map(|p| p.conn.as_fd()));
        }
        let left = until.map(|u| u.saturating_duration_since(now));
        let _ = socket::poll_readable(&fds, left);
    }
}

fn send(conn: &Conn, message: &ToEnd) -> std::result::Result<(), Errno> {
    let bytes = rmp_serde::to_vec(message).map_err(|_| Errno::INVAL)?;
    conn.send(&bytes, &[])
}
