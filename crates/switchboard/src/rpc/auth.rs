//! Authentication levels (S10) and how each binding provides them.
//!
//! | binding | level it provides | how |
//! |---|---|---|
//! | `local:`, `unix:` | [`AuthLevel::Privacy`] | the kernel: the peer's uid is checked at connect (`SO_PEERCRED`), and nobody else can read or change a memfd ring or a Unix socket |
//! | `pipe:` | [`AuthLevel::Privacy`] | the same, through the pipe's ACL (owner only by default) |
//! | `tcp:` | [`AuthLevel::None`] | nothing: anyone who reaches the port |
//! | `tcp:` with TLS (feature `tls`) | [`AuthLevel::Privacy`] | mutual TLS (rustls): both sides present certificates their peer's CA signed; every record is authenticated and encrypted |
//!
//! TLS 1.3 has no integrity-only cipher suites, so `Integrity` over TCP is
//! also encrypted: a binding gives at least the level asked for, never less.
//!
//! A server requires a level ([`super::ServerBuilder::auth_level`],
//! default [`AuthLevel::Connect`]: secure by default, so a plain `tcp:`
//! binding admits nobody until the server says `AuthLevel::None`). A bind
//! over a connection below it is refused with `AccessDenied` (5). A client
//! may require a level too ([`super::ClientOptions`]); a binding below it
//! is refused before anything is sent. A TLS client meeting a plain server,
//! or a plain client meeting a TLS server, is `AccessDenied` as well.

use crate::error::{Code, Error};

/// How much a connection proves and protects (classic
/// `RPC_C_AUTHN_LEVEL_*`, with `CALL` and `PKT` folded into `Integrity`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthLevel {
    /// Nothing is checked.
    None,
    /// The peer's identity is checked when it connects.
    #[default]
    Connect,
    /// … and every message is authenticated.
    Integrity,
    /// … and encrypted.
    Privacy,
}

impl AuthLevel {
    /// Parses `none`, `connect`, `integrity` or `privacy`.
    ///
    /// # Errors
    /// `InvalidParameter` for anything else.
    pub fn parse(text: &str) -> crate::Result<AuthLevel> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "none" => AuthLevel::None,
            "connect" => AuthLevel::Connect,
            "integrity" => AuthLevel::Integrity,
            "privacy" => AuthLevel::Privacy,
            _ => return Err(Error::InvalidParameter("an authentication level is none, connect, integrity or privacy")),
        })
    }
}

impl std::fmt::Display for AuthLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthLevel::None => "none",
            AuthLevel::Connect => "connect",
            AuthLevel::Integrity => "integrity",
            AuthLevel::Privacy => "privacy",
        })
    }
}

/// Why a connection below the level required is refused.
pub(crate) fn too_low(have: AuthLevel, want: AuthLevel, whose: &str) -> String {
    format!("the connection gives authentication level {have}; {whose} requires {want}")
}

/// `RPC_S_ACCESS_DENIED` as a fault's code.
pub(crate) const ACCESS_DENIED: Code = Code::RpcStatus(super::status::ACCESS_DENIED);
