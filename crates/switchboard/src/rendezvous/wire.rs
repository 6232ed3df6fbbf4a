//! The one rendezvous wire: what a server sends a client that connected.
//!
//! The server speaks first, in one `SOCK_SEQPACKET` message (at most
//! [`MAX_REPLY`] bytes, at most 8 descriptors attached with `SCM_RIGHTS`):
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | magic `0x5b` |
//! | 1 | wire version, [`VERSION`] |
//! | 2 | the family's tag (`k` object, `p` pipe, `q` pipe wait, `m` mailslot, `l` link, `s` socket) |
//! | 3 | status: 0 granted, 1 denied by the ACL, 2 busy |
//! | 4.. | the family's body (granted only), described by the family's module |
//!
//! After the reply the connection belongs to the family's protocol (for a
//! link, the client sends its segment next; for a pipe wait, the server
//! sends a second reply when an instance listens), and it stays open as
//! the session: its hang-up is the peer's end. Every byte is untrusted:
//! [`decode`] bounds-checks and never panics.

use switchboard_sys::socket::Conn;
use switchboard_sys::BorrowedFd;

use super::Family;
use crate::error::{Error, Result};

const MAGIC: u8 = 0x5b;
/// The wire version. Version 1 was the object-only reply of earlier
/// releases; version 2 added the family and status bytes.
pub(crate) const VERSION: u8 = 2;
/// Largest reply a client accepts.
pub(crate) const MAX_REPLY: usize = 8192;

/// How a server answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Granted = 0,
    Denied = 1,
    Busy = 2,
}

/// A decoded reply: its status and the family's body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Reply<'a> {
    pub status: Status,
    pub body: &'a [u8],
}

pub(crate) fn encode(family: Family, status: Status, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&[MAGIC, VERSION, family.0, status as u8]);
    out.extend_from_slice(body);
    out
}

/// Decodes a reply expected from `family`.
pub(crate) fn decode(family: Family, bytes: &[u8]) -> Result<Reply<'_>> {
    let (status, body) = match bytes {
        [MAGIC, VERSION, f, status, body @ ..] if *f == family.0 => (*status, body),
        [MAGIC, VERSION, f, ..] if bytes.len() >= 4 => {
            return Err(Error::Malformed(format!("a rendezvous reply of family {:?}", char::from(*f))))
        }
        [MAGIC, v, ..] if *v != VERSION => return Err(Error::Malformed(format!("rendezvous wire version {v}"))),
        _ => return Err(Error::Malformed("not a switchboard rendezvous reply".into())),
    };
    let status = match status {
        0 => Status::Granted,
        1 => Status::Denied,
        2 => Status::Busy,
        s => return Err(Error::Malformed(format!("rendezvous status {s}"))),
    };
    if status != Status::Granted && !body.is_empty() {
        return Err(Error::Malformed("a refusal with a body".into()));
    }
    Ok(Reply { status, body })
}

/// Sends a reply on `conn` (never blocks: a client that does not read
/// loses its reply, not the server its thread).
pub(crate) fn send(conn: &Conn, family: Family, status: Status, body: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    conn.send(&encode(family, status, body), fds).map_err(Error::sys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let bytes = encode(Family::PIPE, Status::Granted, b"xy");
        assert_eq!(decode(Family::PIPE, &bytes).unwrap(), Reply { status: Status::Granted, body: b"xy" });
        assert!(decode(Family::MAILSLOT, &bytes).is_err(), "another family's reply");
        assert!(decode(Family::PIPE, &[]).is_err());
        assert!(decode(Family::PIPE, &[MAGIC, 1, b'p', 0]).is_err(), "version 1");
        assert!(decode(Family::PIPE, &[MAGIC, VERSION, b'p', 9]).is_err(), "unknown status");
        assert!(decode(Family::PIPE, &[MAGIC, VERSION, b'p', 1, 0]).is_err(), "a denial with a body");
        assert_eq!(decode(Family::PIPE, &encode(Family::PIPE, Status::Busy, b"")).unwrap().status, Status::Busy);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for len in 0..64usize {
            for seed in 0..16usize {
                let b: Vec<u8> = (0..len).map(|i| ((i + seed) * 37 % 251) as u8).collect();
                let _ = decode(Family::OBJECT, &b);
                let mut c = b.clone();
                if len >= 3 {
                    c[..3].copy_from_slice(&[MAGIC, VERSION, b'k']);
                }
                let _ = decode(Family::OBJECT, &c);
            }
        }
    }
}
