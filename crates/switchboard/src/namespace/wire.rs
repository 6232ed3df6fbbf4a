//! The object family's body in a rendezvous reply (see
//! `rendezvous::wire`): a postcard-encoded [`ObjectInfo`], with the
//! object's descriptors attached — first the shared listening socket, then
//! the object's own. Everything in it is untrusted: [`decode`]
//! bounds-checks and never panics.

use serde::{Deserialize, Serialize};

use super::{Acl, Kind};
use crate::error::{Error, Result};
use crate::name::Scope;

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

pub(crate) fn encode(info: &ObjectInfo) -> Vec<u8> {
    postcard::to_stdvec(info).expect("in-memory serialization cannot fail")
}

pub(crate) fn decode(bytes: &[u8]) -> Result<ObjectInfo> {
    let info: ObjectInfo = postcard::from_bytes(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
    if info.acl.allow.len() > MAX_ACL || info.name.chars().count() > crate::name::NAME_MAX + 64 {
        return Err(Error::Malformed("oversized object info".into()));
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ObjectInfo {
        ObjectInfo {
            kind: Kind::Event,
            scope: Some(Scope::Local),
            name: "x".into(),
            creator_pid: 1,
            size: 0,
            protection: 0,
            acl: Acl::default(),
        }
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        assert_eq!(decode(&encode(&info())).unwrap(), info());
        assert!(decode(&[]).is_err());
        let mut bytes = encode(&info());
        bytes.truncate(bytes.len() - 3);
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let base = encode(&info());
        for len in 0..64usize {
            let b: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = decode(&b);
        }
        for i in 0..base.len() {
            let mut b = base.clone();
            b[i] ^= 0xff;
            let _ = decode(&b);
        }
    }
}
