//! The per-connection protocol of a remote pipe (`doc/gateway-keys.md`).
//!
//! A client opens with a query carrying an [`OpenRequest`]; the host's
//! gateway answers with an [`OpenReply`]. Both are MessagePack maps. Then
//! each side puts [`Frame`]s on its leg of the connection, each a
//! MessagePack array `[seq, kind, n, data]`:
//!
//! | kind | meaning | `n` | `data` |
//! |---|---|---|---|
//! | 0 | data: one message (message pipes) or some bytes | 0 | the bytes |
//! | 1 | credit: the receiver has taken `n` data bytes in all | bytes | empty |
//! | 2 | close; `n` 0, or the Win32 code of why | code | UTF-8 reason |
//!
//! `seq` counts a leg's frames from 0; a frame out of sequence means frames
//! were lost (a link cut under way) and ends the connection. A side may
//! have at most the peer's window of data bytes unacknowledged, except
//! that one message of any size may go when nothing is unacknowledged;
//! the receiver refuses (closes) a peer that sends beyond that, so nothing
//! buffers without bound and a slow reader slows the writer.

use serde::{Deserialize, Serialize};
use switchboard::{Error, Result};

/// The window a gateway offers: data bytes a peer may have in flight.
pub const WINDOW: u64 = 256 * 1024;
/// Largest frame a gateway takes (one message).
pub const MAX_FRAME: usize = 64 << 20;

/// The query payload that opens a pipe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    /// The connection id: 32 lower-case hex digits, chosen by the client.
    pub id: String,
    /// The client's window: data bytes the server may have in flight to it.
    pub window: u64,
}

/// The answer to an [`OpenRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenReply {
    /// 0 when opened, else the Win32 code of why not (2 no such pipe,
    /// 5 refused, 231 every instance busy).
    pub code: u32,
    /// Why not, for people (empty when opened).
    pub message: String,
    /// Whether the pipe is a message pipe.
    pub message_mode: bool,
    /// Which way data flows, seen from the server: 1 to it, 2 from it, 3 both.
    pub access: u8,
    /// The server's window: data bytes the client may have in flight to it.
    pub window: u64,
}

/// The answer to an RPC lookup (`switchboard/<host>/rpc/<uuid>`, whose
/// query payload is the MessagePack array `[major, minor]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupReply {
    /// 0, or the Win32 code of why not (1753: not registered).
    pub code: u32,
    /// Why not, for people.
    pub message: String,
    /// String bindings that reach the server from another host, best first.
    pub bindings: Vec<String>,
}

/// A data frame's bytes as received: the frame, and where its data starts
/// (kept in place, not copied out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data {
    frame: Vec<u8>,
    start: usize,
}

impl Data {
    /// The data.
    pub fn as_slice(&self) -> &[u8] {
        &self.frame[self.start..]
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.frame.len() - self.start
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a frame says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Data.
    Data(Data),
    /// The receiver has taken this many data bytes in all.
    Credit(u64),
    /// The sender closed; a Win32 code (0: a plain close) and why.
    Close(u32, String),
}

/// One frame of a leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Its place in the leg.
    pub seq: u64,
    /// What it says.
    pub body: Body,
}

/// Writes a frame: the array header, `seq`, `kind`, `n`, then `data` as
/// `bin` — in one allocation, one copy of `data`. Integers are written
/// at full width (MessagePack allows it; every decoder reads it).
pub fn encode(seq: u64, kind: u8, n: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(25 + data.len());
    out.push(0x94);
    out.push(0xcf);
    out.extend_from_slice(&seq.to_be_bytes());
    out.push(kind);
    out.push(0xcf);
    out.extend_from_slice(&n.to_be_bytes());
    out.push(0xc6);
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(data);
    out
}

impl Frame {
    /// A data frame's bytes.
    pub fn data(seq: u64, data: &[u8]) -> Vec<u8> {
        encode(seq, 0, 0, data)
    }

    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        match &self.body {
            Body::Data(d) => Frame::data(self.seq, d.as_slice()),
            Body::Credit(c) => encode(self.seq, 1, *c, &[]),
            Body::Close(code, why) => encode(self.seq, 2, u64::from(*code), why.as_bytes()),
        }
    }

    /// A frame from a peer's bytes (any MessagePack integer widths).
    ///
    /// # Errors
    /// `Malformed` for anything but a frame of this protocol.
    pub fn decode(bytes: Vec<u8>) -> Result<Frame> {
        let bad = |why: &str| Error::Malformed(format!("a gateway frame: {why}"));
        if bytes.len() > MAX_FRAME + 64 {
            return Err(bad("over 64 MiB"));
        }
        let mut rd: &[u8] = &bytes;
        let len = rmp::decode::read_array_len(&mut rd).map_err(|_| bad("not an array"))?;
        if len != 4 {
            return Err(bad("not four elements"));
        }
        let seq: u64 = rmp::decode::read_int(&mut rd).map_err(|_| bad("a bad sequence number"))?;
        let kind: u8 = rmp::decode::read_int(&mut rd).map_err(|_| bad("a bad kind"))?;
        let n: u64 = rmp::decode::read_int(&mut rd).map_err(|_| bad("a bad count"))?;
        let data_len = rmp::decode::read_bin_len(&mut rd).map_err(|_| bad("no bin"))? as usize;
        if data_len != rd.len() {
            return Err(bad("the bin's length is not the rest of the frame"));
        }
        let start = bytes.len() - data_len;
        let body = match kind {
            0 if n == 0 => Body::Data(Data { frame: bytes, start }),
            1 if data_len == 0 => Body::Credit(n),
            2 => Body::Close(
                u32::try_from(n).map_err(|_| bad("a close code over 32 bits"))?,
                String::from_utf8_lossy(&bytes[start..]).into_owned(),
            ),
            _ => return Err(bad(&format!("kind {kind}"))),
        };
        Ok(Frame { seq, body })
    }
}

/// The sending side's count of what the peer may still take.
#[derive(Debug)]
pub struct Credit {
    window: u64,
    sent: u64,
    acked: u64,
}

impl Credit {
    /// For a peer whose window is `window`.
    pub fn new(window: u64) -> Credit {
        Credit { window: window.max(1), sent: 0, acked: 0 }
    }

    /// Whether `len` more data bytes may go now.
    pub fn may_send(&self, len: usize) -> bool {
        let in_flight = self.sent - self.acked;
        in_flight == 0 || in_flight.saturating_add(len as u64) <= self.window
    }

    /// Counts `len` bytes sent.
    pub fn sent(&mut self, len: usize) {
        self.sent += len as u64;
    }

    /// The peer has taken `consumed` bytes in all.
    ///
    /// # Errors
    /// `Malformed` for a count that goes back or past what was sent.
    pub fn ack(&mut self, consumed: u64) -> Result<()> {
        if consumed < self.acked || consumed > self.sent {
            return Err(Error::Malformed(format!(
                "a credit of {consumed} bytes (sent {}, acknowledged {})",
                self.sent, self.acked
            )));
        }
        self.acked = consumed;
        Ok(())
    }
}

/// The receiving side's count: what it holds and what it has told.
#[derive(Debug)]
pub struct Intake {
    window: u64,
    queued: u64,
    consumed: u64,
    credited: u64,
}

impl Intake {
    /// Offering `window`.
    pub fn new(window: u64) -> Intake {
        Intake { window: window.max(1), queued: 0, consumed: 0, credited: 0 }
    }

    /// Takes `len` bytes in; `false` when the peer sent past its credit.
    pub fn accept(&mut self, len: usize) -> bool {
        let len = len as u64;
        if self.queued != 0 && self.queued.saturating_add(len) > self.window {
            return false;
        }
        self.queued += len;
        true
    }

    /// `len` bytes were handed on; the credit to tell the peer, when due
    /// (the queue ran dry, or a quarter window was taken since the last).
    pub fn delivered(&mut self, len: usize) -> Option<u64> {
        let len = len as u64;
        self.queued = self.queued.saturating_sub(len);
        self.consumed += len;
        let due =
            self.consumed != self.credited && (self.queued == 0 || self.consumed - self.credited >= self.window / 4);
        due.then(|| {
            self.credited = self.consumed;
            self.consumed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        for (kind, n, data) in [(0, 0, &b"abc"[..]), (0, 0, b""), (1, 7, b""), (2, 109, b"gone")] {
            let f = Frame::decode(encode(3, kind, n, data)).unwrap();
            assert_eq!(f.seq, 3);
            assert_eq!(f.encode(), encode(3, kind, n, data));
        }
        // Minimal widths, as another language's encoder writes them.
        let python = rmp_serde::to_vec(&(5u64, 0u8, 0u64, serde_bytes::ByteBuf::from(b"hi".to_vec()))).unwrap();
        match Frame::decode(python).unwrap() {
            Frame { seq: 5, body: Body::Data(d) } => assert_eq!(d.as_slice(), b"hi"),
            other => panic!("{other:?}"),
        }
        assert!(Frame::decode(Vec::new()).is_err());
        assert!(Frame::decode(vec![0x94, 0, 9, 0, 0xc4, 0]).is_err(), "kind 9");
        assert!(Frame::decode(vec![0x94, 0, 1, 0, 0xc4, 1, 1]).is_err(), "a credit with data");
        assert!(Frame::decode(vec![0x94, 0, 0, 0, 0xc4, 2, 1]).is_err(), "a bin longer than the frame");
        assert!(Frame::decode(vec![0x94, 0, 0, 0, 0xc4, 0, 1]).is_err(), "trailing bytes");
    }

    #[test]
    fn credit_holds_the_sender_to_the_receivers_window() {
        let (mut tx, mut rx) = (Credit::new(100), Intake::new(100));
        assert!(tx.may_send(60));
        tx.sent(60);
        assert!(rx.accept(60));
        assert!(tx.may_send(40) && !tx.may_send(41));
        assert!(!rx.accept(41), "past the window is refused");
        assert_eq!(rx.delivered(60), Some(60), "the queue ran dry");
        tx.ack(60).unwrap();
        assert!(tx.may_send(1000), "one message of any size when nothing is in flight");
        tx.sent(1000);
        assert!(rx.accept(1000));
        assert!(!tx.may_send(1));
        assert!(tx.ack(59).is_err() && tx.ack(2000).is_err());
        assert_eq!(rx.delivered(1000), Some(1060));
        tx.ack(1060).unwrap();
    }

    #[test]
    fn small_deliveries_credit_once_a_quarter_window_or_when_dry() {
        let mut rx = Intake::new(100);
        for _ in 0..4 {
            assert!(rx.accept(10));
        }
        assert_eq!(rx.delivered(10), None);
        assert_eq!(rx.delivered(10), None);
        assert_eq!(rx.delivered(10), Some(30), "a quarter window");
        assert_eq!(rx.delivered(10), Some(40), "dry");
    }
}
