//! The DDE protocol between two instances' receivers: one postcard-encoded
//! [`Wire`] per data copy. Initiations are *sent* (the result is the
//! server's conversation id); everything else is *posted* (a data copy that
//! does not wait), in the classic manner: a transaction goes one way, its
//! acknowledgement or data comes back the other.
//!
//! Everything here comes from another process: [`decode`] bounds-checks
//! and never panics; the instance checks that each message comes from the
//! process its conversation is with.

use serde::{Deserialize, Serialize};

/// Tag of every DDE data copy (`DDE`).
pub(crate) const TAG: u64 = 0x0044_4445;

/// Longest service, topic or item name, in characters (S01).
pub const NAME_MAX: usize = 255;

/// One DDE message.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Wire<'a> {
    /// Client → server (sent): open a conversation on `topic`. The result
    /// is the server's conversation id, or 0 when refused.
    Initiate {
        service: &'a str,
        topic: &'a str,
        client: &'a str,
        client_conv: u64,
    },
    /// Client → server (sent): which (service, topic) pairs would you
    /// accept? The result is how many; they follow as [`Wire::Pairs`].
    Wild {
        service: Option<&'a str>,
        topic: Option<&'a str>,
        client: &'a str,
        ask: u64,
    },
    /// Server → client: the answer to [`Wire::Wild`] `ask`.
    Pairs {
        ask: u64,
        #[serde(borrow)]
        pairs: Vec<(&'a str, &'a str)>,
    },
    /// Client → server transactions (`conv` is the server's id).
    Request {
        conv: u64,
        txn: u64,
        item: &'a str,
        format: u32,
    },
    Poke {
        conv: u64,
        txn: u64,
        item: &'a str,
        format: u32,
        data: &'a [u8],
    },
    Execute {
        conv: u64,
        txn: u64,
        command: &'a [u8],
    },
    Advise {
        conv: u64,
        txn: u64,
        item: &'a str,
        format: u32,
        warm: bool,
        ackreq: bool,
    },
    Unadvise {
        conv: u64,
        txn: u64,
        item: &'a str,
        format: u32,
    },
    /// Server → client: transaction `txn` ended with `status` (0: done;
    /// else a `DMLERR_*`), with a request's data.
    Done {
        conv: u64,
        txn: u64,
        status: u16,
        #[serde(borrow)]
        data: Option<&'a [u8]>,
    },
    /// Server → client: an advise loop's update (no data: a warm loop).
    AdviseData {
        conv: u64,
        item: &'a str,
        format: u32,
        #[serde(borrow)]
        data: Option<&'a [u8]>,
        ackreq: bool,
    },
    /// Client → server: the ack an ack-paced loop waits for.
    AdviseAck {
        conv: u64,
        item: &'a str,
        format: u32,
    },
    /// Either way: the conversation ends (`conv` is the receiver's id).
    Terminate {
        conv: u64,
    },
}

impl Wire<'_> {
    /// A transaction's (or advise update's) conversation; `None` for the
    /// other messages.
    pub(crate) fn transaction_conv(&self) -> Option<u64> {
        match *self {
            Wire::Request { conv, .. }
            | Wire::Poke { conv, .. }
            | Wire::Execute { conv, .. }
            | Wire::Advise { conv, .. }
            | Wire::Unadvise { conv, .. }
            | Wire::AdviseData { conv, .. } => Some(conv),
            _ => None,
        }
    }

    /// A transaction's id; `None` for the other messages.
    pub(crate) fn txn(&self) -> Option<u64> {
        match *self {
            Wire::Request { txn, .. }
            | Wire::Poke { txn, .. }
            | Wire::Execute { txn, .. }
            | Wire::Advise { txn, .. }
            | Wire::Unadvise { txn, .. } => Some(txn),
            _ => None,
        }
    }
}

pub(crate) fn encode(w: &Wire<'_>) -> Vec<u8> {
    postcard::to_stdvec(w).expect("in-memory serialization cannot fail")
}

/// Decodes a peer's message; `None` for anything malformed or with a name
/// out of bounds.
pub(crate) fn decode(bytes: &[u8]) -> Option<Wire<'_>> {
    let w: Wire<'_> = postcard::from_bytes(bytes).ok()?;
    let names_ok = match &w {
        Wire::Initiate { service, topic, client, .. } => [*service, *topic, *client].iter().all(|n| valid_name(n)),
        Wire::Wild { service, topic, client, .. } => {
            service.is_none_or(valid_name) && topic.is_none_or(valid_name) && valid_name(client)
        }
        Wire::Pairs { pairs, .. } => pairs.iter().all(|(s, t)| valid_name(s) && valid_name(t)),
        Wire::Request { item, .. }
        | Wire::Poke { item, .. }
        | Wire::Advise { item, .. }
        | Wire::Unadvise { item, .. }
        | Wire::AdviseData { item, .. }
        | Wire::AdviseAck { item, .. } => valid_name(item),
        Wire::Execute { .. } | Wire::Done { .. } | Wire::Terminate { .. } => true,
    };
    names_ok.then_some(w)
}

/// A service, topic or item name: 1..=255 characters, no NUL (S01).
pub(crate) fn valid_name(n: &str) -> bool {
    !n.is_empty() && !n.contains('\0') && n.chars().count() <= NAME_MAX
}

/// Names compare case-insensitively (S01).
pub(crate) fn fold(n: &str) -> String {
    n.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips_and_garbage_is_refused() {
        let msgs = [
            Wire::Initiate { service: "Sheet", topic: "Sheet1", client: "dde.1.1", client_conv: 7 },
            Wire::Wild { service: None, topic: Some("System"), client: "dde.1.1", ask: 2 },
            Wire::Pairs { ask: 2, pairs: vec![("Sheet", "System")] },
            Wire::Poke { conv: 1, txn: 2, item: "R1C1", format: 1, data: b"42" },
            Wire::Done { conv: 1, txn: 2, status: 0, data: Some(b"x") },
            Wire::AdviseData { conv: 1, item: "R1C1", format: 1, data: None, ackreq: true },
            Wire::Terminate { conv: 9 },
        ];
        for m in &msgs {
            assert_eq!(decode(&encode(m)).as_ref(), Some(m));
        }
        assert!(decode(&[0xff, 0xff, 0xff]).is_none());
        let long = "x".repeat(NAME_MAX + 1);
        assert!(decode(&encode(&Wire::Request { conv: 1, txn: 1, item: &long, format: 1 })).is_none());
        assert!(decode(&encode(&Wire::Request { conv: 1, txn: 1, item: "", format: 1 })).is_none());
    }
}
