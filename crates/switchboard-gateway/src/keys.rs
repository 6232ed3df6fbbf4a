//! The key layout (documented for other languages in `doc/gateway-keys.md`).
//!
//! Every key starts `switchboard/<host>/`. A host name and an object name
//! are one key chunk each: bytes outside `[A-Za-z0-9._~-]` are written
//! `%XX` (upper-case hex of each UTF-8 byte), so `/`, `*`, `$`, `#`, `?`
//! and `@` can never act as key-expression syntax. Host names are folded
//! to lower case, as pipe and mailslot names already are.

use switchboard::{Error, Result};

/// The root of every key.
pub const ROOT: &str = "switchboard";
/// Longest host name.
pub const HOST_MAX: usize = 63;

/// `chunk` with every byte outside `[A-Za-z0-9._~-]` as `%XX`.
pub fn encode(chunk: &str) -> String {
    let mut out = String::with_capacity(chunk.len());
    for b in chunk.bytes() {
        if b.is_ascii_alphanumeric() || b"._~-".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of an encoded chunk; `None` when it is not one [`encode`] writes.
pub fn decode(chunk: &str) -> Option<String> {
    let bytes = chunk.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b"._~-".contains(&b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// A host name checked and folded: 1 to [`HOST_MAX`] bytes of letters,
/// digits, `-`, `_` and `.`.
///
/// # Errors
/// `InvalidParameter` for anything else (`*` is every host, not a name).
pub fn host(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= HOST_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        return Err(Error::InvalidParameter("a host name is 1 to 63 letters, digits, '-', '_' or '.'"));
    }
    Ok(name.to_ascii_lowercase())
}

/// `switchboard/<host>/gateway`: the liveliness token a running gateway holds.
pub fn gateway(host: &str) -> String {
    format!("{ROOT}/{}/gateway", encode(host))
}

/// `switchboard/*/gateway`: every gateway's token.
pub fn every_gateway() -> String {
    format!("{ROOT}/*/gateway")
}

/// `switchboard/<host>/ls`: the query that lists what a host exposes.
pub fn ls(host: &str) -> String {
    format!("{ROOT}/{}/ls", encode(host))
}

/// `switchboard/<host>/mailslot/<name>`; host `None` is `*`, every host.
pub fn mailslot(host: Option<&str>, name: &str) -> String {
    format!("{ROOT}/{}/mailslot/{}", host.map_or_else(|| "*".to_owned(), encode), encode(name))
}

/// `switchboard/<host>/mailslot/*`: every mailslot of `host` (what its
/// gateway subscribes to; a put on `switchboard/*/mailslot/<name>` matches it).
pub fn every_mailslot(host: &str) -> String {
    format!("{ROOT}/{}/mailslot/*", encode(host))
}

/// `switchboard/<host>/pipe/*`: every pipe of `host`.
pub fn every_pipe(host: &str) -> String {
    format!("{ROOT}/{}/pipe/*", encode(host))
}

/// `switchboard/<host>/rpc/<uuid>`: the query that finds an RPC
/// interface's bindings on `host`.
pub fn rpc(host: &str, interface: &str) -> String {
    format!("{ROOT}/{}/rpc/{}", encode(host), encode(interface))
}

/// `switchboard/<host>/rpc/*`: every interface of `host`.
pub fn every_rpc(host: &str) -> String {
    format!("{ROOT}/{}/rpc/*", encode(host))
}

/// `switchboard/<host>/pipe/<name>`: the query that opens a pipe.
pub fn pipe(host: &str, name: &str) -> String {
    format!("{ROOT}/{}/pipe/{}", encode(host), encode(name))
}

/// `switchboard/<host>/conn/<id>/<leg>`: one connection's frames, `c`
/// from the client, `s` from the server; `client` is the liveliness token
/// the client holds while the connection is open.
pub fn conn(host: &str, id: &str, leg: &str) -> String {
    format!("{ROOT}/{}/conn/{id}/{leg}", encode(host))
}

/// The last chunk of `key`, decoded (the object name of a mailslot or
/// pipe key), and whether the host chunk was `*`.
pub fn object_of(key: &str) -> Option<(String, bool)> {
    let mut parts = key.split('/');
    let (Some(ROOT), Some(host), Some(_kind), Some(name), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some((decode(name)?, host == "*"))
}

/// A connection id: 32 hex digits, fresh randomness from the process's
/// hasher seeds (never reused within a process).
pub fn new_id() -> String {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let seed = std::collections::hash_map::RandomState::new();
    format!("{:016x}{:016x}", seed.hash_one((n, std::process::id())), seed.hash_one((n, 1u8)))
}

/// Whether `id` is one [`new_id`] could have made (a peer's word is checked).
pub fn is_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_never_carry_key_syntax() {
        for name in ["orders", "a/b", "*", "$*", "x y", "caf\u{e9}", "%41", "@admin", "#?"] {
            let e = encode(name);
            assert!(!e.contains(['/', '*', '$', '#', '?', '@']), "{e}");
            assert_eq!(decode(&e).as_deref(), Some(name));
        }
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("a/b"), None);
        assert_eq!(decode("%FF"), None, "not UTF-8");
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        assert_eq!(mailslot(Some("b"), "log"), "switchboard/b/mailslot/log");
        assert_eq!(mailslot(None, "log"), "switchboard/*/mailslot/log");
        assert_eq!(pipe("b", "a/b"), "switchboard/b/pipe/a%2Fb");
        assert_eq!(object_of("switchboard/*/mailslot/a%2Fb"), Some(("a/b".into(), true)));
        assert_eq!(object_of("switchboard/b/mailslot/x/y"), None);
        assert_eq!(host("Host-1").unwrap(), "host-1");
        assert!(host("*").is_err() && host("").is_err() && host(&"a".repeat(64)).is_err());
        assert!(is_id(&new_id()) && new_id() != new_id());
    }
}
