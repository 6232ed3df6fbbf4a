//! The rendezvous message: what a holder sends to an opener.
//!
//! One `SOCK_SEQPACKET` message: `[MAGIC, VERSION]` followed by a postcard
//! encoded [`Reply`], with the object's descriptors attached (`SCM_RIGHTS`):
//! first the shared listening socket, then the object's own descriptors.
//! Everything in it is untrusted: [`decode`] bounds-checks and never panics.

use serde::{Deserialize, Serialize};

use super::{Acl, Kind};
use crate::error::{Error, Result};
use crate::name::Scope;

const MAGIC: u8 = 0x5b;
const VERSION: u8 = 1;
/// Largest reply (a 256-character name is at most 1 KiB of UTF-8).
pub(crate) const MAX_REPLY: usize = 8192;
/// Most ACL entries an object may carry.
pub(crate) const MAX_ACL: usize = 64;

/// What every holder knows about an object and sends to openers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ObjectInfo {
    pub kind: Kind,
    /// `None` for an unnamed object.
    pub scope: Option<Scope>,
    pub name: String,
    pub creator_pid: u32,
    /// Mapping size in bytes (0 for other kinds).
    pub size: u64,
    /// Mapping protection (see `mapping::Protection`); 0 for other kinds.
    pub protection: u8,
    pub acl: Acl,
}

/// A holder's answer to an opener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Reply {
    Granted { info: ObjectInfo, served_by: u32 },
    Denied,
}

pub(crate) fn encode(reply: &Reply) -> Vec<u8> {
    let mut out = vec![MAGIC, VERSION];
    out.extend(postcard::to_stdvec(reply).expect("in-memory serialization cannot fail"));
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Reply> {
    match bytes {
        [MAGIC, VERSION, body @ ..] => {
            let reply: Reply = postcard::from_bytes(body).map_err(|e| Error::Malformed(e.to_string()))?;
            if let Reply::Granted { info, .. } = &reply {
                if info.acl.allow.len() > MAX_ACL || info.name.chars().count() > crate::name::NAME_MAX + 64 {
                    return Err(Error::Malformed("oversized object info".into()));
                }
            }
            Ok(reply)
        }
        [MAGIC, v, ..] => Err(Error::Malformed(format!("rendezvous protocol version {v}"))),
        _ => Err(Error::Malformed("not a switchboard rendezvous reply".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let info = ObjectInfo {
            kind: Kind::Event,
            scope: Some(Scope::Local),
            name: "x".into(),
            creator_pid: 1,
            size: 0,
            protection: 0,
            acl: Acl::default(),
        };
        let r = Reply::Granted { info, served_by: 2 };
        assert_eq!(decode(&encode(&r)).unwrap(), r);
        assert!(decode(&[]).is_err());
        assert!(decode(&[MAGIC, 9, 0]).is_err());
        let mut bytes = encode(&r);
        bytes.truncate(bytes.len() - 3);
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic sweep over prefixes and bit flips.
        let base = encode(&Reply::Denied);
        for len in 0..64usize {
            let mut b: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            if len >= 2 {
                b[0] = MAGIC;
                b[1] = VERSION;
            }
            let _ = decode(&b);
        }
        for i in 0..base.len() {
            let mut b = base.clone();
            b[i] ^= 0xff;
            let _ = decode(&b);
        }
    }
}
