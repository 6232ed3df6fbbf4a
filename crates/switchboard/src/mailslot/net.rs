//! Mailslot broadcast over UDP (spec 03-S11, S13): the datagram format, the
//! sender, and the receiver's checks and duplicate filter.
//!
//! ## Datagram format, version 1
//! One UDP datagram per message; integers little-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `SBM1` |
//! | 4 | 8 | sender id (random per writer handle) |
//! | 12 | 4 | sequence number (per writer handle, from 0) |
//! | 16 | 1 | name length `n` (1..=255) |
//! | 17 | n | mailslot name, UTF-8 (compared case-insensitively) |
//! | 17 + n | ≤ 424 | the message |
//!
//! A receiver drops, and counts, every datagram that does not decode
//! (short, wrong magic, bad name, message over 424 bytes) and every repeat of
//! a (sender id, sequence number) it has seen; datagrams for other mailslot
//! names are counted as foreign. Nothing a datagram says can make the
//! receiver allocate more than one bounded buffer or fail.
//!
//! ```text
//! # send "hi" to every mailslot "demo" on loopback, with socat
//! printf 'SBM1\x01\0\0\0\0\0\0\0\0\0\0\0\x04demohi' \
//!   | socat -u - UDP-DATAGRAM:127.255.255.255:13138,broadcast
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

use switchboard_shm::mailslot::{NetCount, NET_COUNTS};

use crate::error::{Error, Result};

/// Largest broadcast message (classic limit).
pub const MAX_BROADCAST: usize = 424;
/// Default UDP port (overridden by `SWITCHBOARD_MAILSLOT_PORT`).
pub const DEFAULT_PORT: u16 = 13138;
const MAGIC: [u8; 4] = *b"SBM1";
const HEADER: usize = 17;
const MAX_NAME: usize = 255;
/// Largest datagram a receiver reads; longer ones are malformed.
pub(crate) const MAX_DATAGRAM: usize = HEADER + MAX_NAME + MAX_BROADCAST;
const WINDOW: u32 = 64;
const MAX_SENDERS: usize = 1024;

/// Where broadcasts go and arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BroadcastConfig {
    /// The UDP port (default [`DEFAULT_PORT`], or `SWITCHBOARD_MAILSLOT_PORT`;
    /// 0 lets a receiving server take a free one, see `Mailslot::broadcast_port`).
    pub port: u16,
    /// Where a writer sends: `None` = the broadcast address of every
    /// interface that is up (loopback included).
    pub targets: Option<Vec<Ipv4Addr>>,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        let port = std::env::var("SWITCHBOARD_MAILSLOT_PORT").ok().and_then(|p| p.parse().ok());
        BroadcastConfig { port: port.unwrap_or(DEFAULT_PORT), targets: None }
    }
}

impl BroadcastConfig {
    /// The default configuration on `port`.
    pub fn on_port(port: u16) -> Self {
        BroadcastConfig { port, targets: None }
    }
}

/// What a server's network receiver has seen (all since creation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams queued as messages.
    pub delivered: u64,
    /// Repeats of a (sender, sequence) already seen, dropped.
    pub duplicates: u64,
    /// Datagrams that did not decode, dropped.
    pub malformed: u64,
    /// Well-formed datagrams for another mailslot name, ignored.
    pub foreign: u64,
    /// Messages dropped because the queue was full.
    pub overflowed: u64,
}

impl NetStats {
    /// The stats from a queue's counts (indexed by [`NetCount`]).
    pub(crate) fn from_counts(c: [u64; NET_COUNTS]) -> NetStats {
        let at = |what: NetCount| c[what as usize];
        NetStats {
            delivered: at(NetCount::Delivered),
            duplicates: at(NetCount::Duplicate),
            malformed: at(NetCount::Malformed),
            foreign: at(NetCount::Foreign),
            overflowed: at(NetCount::Overflowed),
        }
    }
}

/// A decoded datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Datagram<'a> {
    pub sender: u64,
    pub seq: u32,
    pub name: &'a str,
    pub message: &'a [u8],
}

/// Encodes a datagram into `out`; returns its length.
fn encode(out: &mut [u8; MAX_DATAGRAM], sender: u64, seq: u32, name: &str, message: &[u8]) -> usize {
    out[..4].copy_from_slice(&MAGIC);
    out[4..12].copy_from_slice(&sender.to_le_bytes());
    out[12..16].copy_from_slice(&seq.to_le_bytes());
    out[16] = name.len() as u8;
    let body = HEADER + name.len();
    out[HEADER..body].copy_from_slice(name.as_bytes());
    out[body..body + message.len()].copy_from_slice(message);
    body + message.len()
}

/// Decodes a datagram, or `None` for anything malformed.
pub(crate) fn decode(d: &[u8]) -> Option<Datagram<'_>> {
    if d.len() < HEADER || d[..4] != MAGIC {
        return None;
    }
    let n = usize::from(d[16]);
    let name = std::str::from_utf8(d.get(HEADER..HEADER + n)?).ok()?;
    let message = &d[HEADER + n..];
    if n == 0 || message.len() > MAX_BROADCAST || name.contains(['\\', '\0']) {
        return None;
    }
    let sender = u64::from_le_bytes(d[4..12].try_into().ok()?);
    let seq = u32::from_le_bytes(d[12..16].try_into().ok()?);
    Some(Datagram { sender, seq, name, message })
}

/// Asserts that a datagram `decode` accepts encodes back to the same
/// bytes (for the fuzz targets).
#[cfg(feature = "fuzz")]
pub(crate) fn check_round_trip(d: &[u8]) {
    if let Some(got) = decode(d) {
        let mut out = [0u8; MAX_DATAGRAM];
        let n = encode(&mut out, got.sender, got.seq, got.name, got.message);
        assert_eq!(&out[..n], d, "a decoded datagram encodes back the same");
    }
}

/// The last [`WINDOW`] sequence numbers seen from one sender.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    top: u32,
    seen: u64,
}

impl Window {
    /// Records `seq`; whether it was new.
    fn admit(&mut self, seq: u32) -> bool {
        if self.seen == 0 {
            (self.top, self.seen) = (seq, 1);
            return true;
        }
        let ahead = seq.wrapping_sub(self.top);
        if ahead != 0 && ahead < u32::MAX / 2 {
            self.seen = if ahead >= WINDOW { 1 } else { (self.seen << ahead) | 1 };
            self.top = seq;
            return true;
        }
        let behind = self.top.wrapping_sub(seq);
        if behind >= WINDOW || self.seen & (1 << behind) != 0 {
            return false;
        }
        self.seen |= 1 << behind;
        true
    }
}

/// Duplicate suppression over a bounded set of senders.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    windows: HashMap<u64, Window>,
    order: VecDeque<u64>,
}

impl Seen {
    /// Whether (sender, seq) is new; records it.
    pub(crate) fn admit(&mut self, sender: u64, seq: u32) -> bool {
        if !self.windows.contains_key(&sender) {
            if self.order.len() >= MAX_SENDERS {
                if let Some(old) = self.order.pop_front() {
                    self.windows.remove(&old);
                }
            }
            self.order.push_back(sender);
        }
        self.windows.entry(sender).or_default().admit(seq)
    }
}

/// What the receiver should do with one datagram.
#[derive(Debug)]
pub(crate) enum Verdict<'a> {
    Deliver(Datagram<'a>),
    /// Dropped, and why (what to count).
    Dropped(NetCount),
}

/// Classifies a datagram for the mailslot `name`.
pub(crate) fn judge<'a>(bytes: &'a [u8], name: &str, seen: &mut Seen) -> Verdict<'a> {
    let Some(d) = decode(bytes) else { return Verdict::Dropped(NetCount::Malformed) };
    if d.name != name && d.name.to_lowercase() != name {
        return Verdict::Dropped(NetCount::Foreign);
    }
    if !seen.admit(d.sender, d.seq) {
        return Verdict::Dropped(NetCount::Duplicate);
    }
    Verdict::Deliver(d)
}

/// The sender's address as the queue stores it.
pub(crate) fn origin_of(from: SocketAddr, sender: u64) -> switchboard_shm::mailslot::Origin {
    let addr = match from {
        SocketAddr::V4(a) => a.ip().to_ipv6_mapped().octets(),
        SocketAddr::V6(a) => a.ip().octets(),
    };
    switchboard_shm::mailslot::Origin::Network { addr, port: from.port(), sender }
}

/// Binds the receiving socket of a server.
pub(crate) fn bind_receiver(config: &BroadcastConfig) -> Result<UdpSocket> {
    let sock = switchboard_sys::net::udp_bind_shared(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, config.port))?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// A writer to `\\*\mailslot\NAME`.
#[derive(Debug)]
pub(crate) struct Broadcaster {
    sock: UdpSocket,
    targets: Vec<SocketAddrV4>,
    name: String,
    id: u64,
    seq: AtomicU32,
}

fn random_id() -> u64 {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    std::collections::hash_map::RandomState::new().hash_one((nanos, switchboard_sys::process::pid()))
}

impl Broadcaster {
    pub(crate) fn new(name: &str, config: &BroadcastConfig) -> Result<Broadcaster> {
        if name.len() > MAX_NAME {
            return Err(Error::BadNetPath("a broadcast mailslot name is at most 255 bytes"));
        }
        let sock = switchboard_sys::net::udp_bind_shared(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        let addrs = config.targets.clone().unwrap_or_else(switchboard_sys::net::broadcast_addresses);
        if addrs.is_empty() {
            return Err(Error::BadNetPath("no network interface to broadcast on is up"));
        }
        let targets = addrs.into_iter().map(|a| SocketAddrV4::new(a, config.port)).collect();
        Ok(Broadcaster { sock, targets, name: name.to_owned(), id: random_id(), seq: AtomicU32::new(0) })
    }

    /// Sends one message to every target; succeeds when any send did.
    pub(crate) fn send(&self, message: &[u8]) -> Result<()> {
        if message.len() > MAX_BROADCAST {
            return Err(Error::BadNetPath("a broadcast message is at most 424 bytes"));
        }
        let mut buf = [0u8; MAX_DATAGRAM];
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let len = encode(&mut buf, self.id, seq, &self.name, message);
        let mut last = None;
        let mut sent = false;
        for t in &self.targets {
            match self.sock.send_to(&buf[..len], t) {
                Ok(_) => sent = true,
                Err(e) => last = Some(e),
            }
        }
        match (sent, last) {
            (false, Some(e)) => Err(Error::Io(e)),
            _ => Ok(()),
        }
    }

    pub(crate) fn sender_id(&self) -> u64 {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_round_trips_and_every_truncation_is_malformed() {
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = encode(&mut buf, 7, 9, "box", b"hello");
        assert_eq!(decode(&buf[..n]), Some(Datagram { sender: 7, seq: 9, name: "box", message: b"hello" }));
        for cut in 0..HEADER + 3 {
            assert_eq!(decode(&buf[..cut]), None, "cut at {cut}");
        }
        let mut big = [0u8; MAX_DATAGRAM + 1];
        big[..n].copy_from_slice(&buf[..n]);
        assert_eq!(decode(&big[..HEADER + 3 + MAX_BROADCAST + 1]), None);
    }

    #[test]
    fn the_window_admits_each_sequence_once_in_any_order() {
        let mut w = Window::default();
        assert!(w.admit(5));
        assert!(!w.admit(5));
        assert!(w.admit(3));
        assert!(!w.admit(3));
        assert!(w.admit(100));
        assert!(!w.admit(5), "too old: treated as seen");
        assert!(w.admit(99));
        assert!(w.admit(164), "a jump past the window forgets the rest");
        assert!(!w.admit(99));
    }

    #[test]
    fn the_sender_table_stays_bounded() {
        let mut s = Seen::default();
        for id in 0..(MAX_SENDERS as u64 * 3) {
            assert!(s.admit(id, 0));
        }
        assert_eq!(s.windows.len(), MAX_SENDERS);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1024, ..Default::default() })]

        /// Any datagram is delivered as it decodes, or dropped with a reason.
        #[test]
        fn any_datagram_is_judged_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..MAX_DATAGRAM + 2)) {
            let mut seen = Seen::default();
            match judge(&bytes, "box", &mut seen) {
                Verdict::Deliver(d) => proptest::prop_assert_eq!(decode(&bytes), Some(d)),
                Verdict::Dropped(why) => proptest::prop_assert!(why != NetCount::Delivered && why != NetCount::Overflowed),
            }
        }

        /// A valid datagram with any name and message decodes to what was sent.
        #[test]
        fn valid_datagrams_round_trip(sender: u64, seq: u32, name in "[a-z0-9]{1,40}", msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=MAX_BROADCAST)) {
            let mut buf = [0u8; MAX_DATAGRAM];
            let n = encode(&mut buf, sender, seq, &name, &msg);
            let d = decode(&buf[..n]).unwrap();
            proptest::prop_assert_eq!((d.sender, d.seq, d.name, d.message), (sender, seq, name.as_str(), &msg[..]));
        }
    }
}
