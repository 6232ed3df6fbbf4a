//! Object names: the classic forms, scopes and comparison rules (spec 00).
//!
//! | form | meaning |
//! |---|---|
//! | `NAME`, `Local\NAME` | a kernel object (mapping, mutex, semaphore, event, port) of this user |
//! | `Global\NAME` | a kernel object visible machine-wide (other users need an ACL) |
//! | `\\.\pipe\NAME` | a local named pipe |
//! | `\\HOST\pipe\NAME` | a named pipe on another host |
//! | `\\.\mailslot\NAME` | a local mailslot |
//! | `\\*\mailslot\NAME`, `\\DOMAIN\mailslot\NAME` | a mailslot broadcast |
//!
//! The part after the prefix is 1..=256 characters with no `\` and no NUL.
//! Pipe and mailslot names compare case-insensitively (they are folded to
//! lower case), kernel-object names case-sensitively.

use crate::error::{Error, Result};

/// Longest name, in characters, after its prefix.
pub const NAME_MAX: usize = 256;

/// Who can see a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    /// This user only (`NAME`, `Local\NAME`).
    Local,
    /// Every user of the machine, as the object's ACL allows (`Global\NAME`).
    Global,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Local => "Local",
            Scope::Global => "Global",
        })
    }
}

/// A parsed name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Name {
    /// A kernel-object name (case-sensitive).
    Object {
        /// Its scope.
        scope: Scope,
        /// The name after the prefix.
        name: String,
    },
    /// `\\.\pipe\NAME` (folded to lower case).
    Pipe(String),
    /// `\\HOST\pipe\NAME`.
    RemotePipe {
        /// The host.
        host: String,
        /// The pipe name (folded to lower case).
        name: String,
    },
    /// `\\.\mailslot\NAME` (folded to lower case).
    Mailslot(String),
    /// `\\*\mailslot\NAME` (domain `None`) or `\\DOMAIN\mailslot\NAME`.
    MailslotBroadcast {
        /// The domain, `None` for `*`.
        domain: Option<String>,
        /// The mailslot name (folded to lower case).
        name: String,
    },
}

fn invalid(name: &str, why: &'static str) -> Error {
    Error::InvalidName { name: name.to_owned(), why }
}

/// Checks the part of a name after its prefix (00-S01).
fn check_tail<'a>(full: &str, tail: &'a str) -> Result<&'a str> {
    let chars = tail.chars().count();
    if chars == 0 {
        return Err(invalid(full, "the name is empty"));
    }
    if chars > NAME_MAX {
        return Err(invalid(full, "the name is longer than 256 characters"));
    }
    if tail.contains('\\') {
        return Err(invalid(full, "the name contains a backslash"));
    }
    if tail.contains('\0') {
        return Err(invalid(full, "the name contains NUL"));
    }
    Ok(tail)
}

impl Name {
    /// Parses any accepted form.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for anything that is not one of the forms.
    ///
    /// # Examples
    /// ```
    /// use switchboard::name::{Name, Scope};
    /// assert_eq!(Name::parse("Global\\jobs").unwrap(),
    ///            Name::Object { scope: Scope::Global, name: "jobs".into() });
    /// assert_eq!(Name::parse(r"\\.\PIPE\Build").unwrap(), Name::Pipe("build".into()));
    /// assert!(Name::parse("a\\b\\c").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Name> {
        if let Some(rest) = s.strip_prefix(r"\\") {
            return Self::parse_unc(s, rest);
        }
        let (scope, tail) = match s.split_once('\\') {
            Some(("Local", tail)) => (Scope::Local, tail),
            Some(("Global", tail)) => (Scope::Global, tail),
            Some(_) => return Err(invalid(s, "only Local\\ and Global\\ prefixes are allowed")),
            None => (Scope::Local, s),
        };
        Ok(Name::Object { scope, name: check_tail(s, tail)?.to_owned() })
    }

    fn parse_unc(full: &str, rest: &str) -> Result<Name> {
        let mut parts = rest.splitn(3, '\\');
        let (host, class, tail) = match (parts.next(), parts.next(), parts.next()) {
            (Some(h), Some(c), Some(t)) if !h.is_empty() => (h, c.to_ascii_lowercase(), t),
            _ => return Err(invalid(full, "expected \\\\HOST\\pipe\\NAME or \\\\HOST\\mailslot\\NAME")),
        };
        let name = check_tail(full, tail)?.to_lowercase();
        match (class.as_str(), host) {
            ("pipe", ".") => Ok(Name::Pipe(name)),
            ("pipe", "*") => Err(invalid(full, "pipes cannot be broadcast")),
            ("pipe", h) => Ok(Name::RemotePipe { host: h.to_owned(), name }),
            ("mailslot", ".") => Ok(Name::Mailslot(name)),
            ("mailslot", "*") => Ok(Name::MailslotBroadcast { domain: None, name }),
            ("mailslot", d) => Ok(Name::MailslotBroadcast { domain: Some(d.to_owned()), name }),
            _ => Err(invalid(full, "expected pipe or mailslot after the host")),
        }
    }

    /// Parses a kernel-object name (mapping, mutex, semaphore, event, port).
    ///
    /// # Errors
    /// [`Error::InvalidName`], also for pipe and mailslot forms.
    pub fn parse_object(s: &str) -> Result<(Scope, String)> {
        match Name::parse(s)? {
            Name::Object { scope, name } => Ok((scope, name)),
            _ => Err(invalid(s, "a pipe or mailslot name cannot name a kernel object")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_parse() {
        assert_eq!(Name::parse("x").unwrap(), Name::Object { scope: Scope::Local, name: "x".into() });
        assert_eq!(Name::parse("Local\\x").unwrap(), Name::Object { scope: Scope::Local, name: "x".into() });
        assert_eq!(Name::parse(r"\\srv\pipe\P").unwrap(), Name::RemotePipe { host: "srv".into(), name: "p".into() });
        assert_eq!(Name::parse(r"\\.\mailslot\M").unwrap(), Name::Mailslot("m".into()));
        assert_eq!(Name::parse(r"\\*\mailslot\m").unwrap(), Name::MailslotBroadcast { domain: None, name: "m".into() });
        assert_eq!(
            Name::parse(r"\\WORK\mailslot\m").unwrap(),
            Name::MailslotBroadcast { domain: Some("WORK".into()), name: "m".into() }
        );
    }

    #[test]
    fn lengths_are_counted_in_characters() {
        assert!(Name::parse(&"é".repeat(256)).is_ok());
        assert!(Name::parse(&"é".repeat(257)).is_err());
        assert!(Name::parse("").is_err());
        assert!(Name::parse("Global\\").is_err());
        assert!(Name::parse("a\0b").is_err());
    }
}
