//! What the gateway needs from a distributed engine: keyed puts and
//! subscriptions, queries, and liveliness tokens. `ZenohBackend`
//! (feature `zenoh`) is the engine switchboard rides; the gateway itself is
//! written against this trait only.

use std::time::Duration;

use switchboard::Result;

/// Something that undeclares what it stands for when dropped.
pub type Guard = Box<dyn std::any::Any + Send + Sync>;

/// What a liveliness watch calls: the token's key, and whether it is alive.
pub type OnToken = Box<dyn Fn(&str, bool) + Send + Sync>;

/// A put as a subscriber receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The key it was put on (may hold `*` when the writer put on a wildcard).
    pub key: String,
    /// Its bytes.
    pub payload: Vec<u8>,
}

/// A query as a queryable receives it: answer once, from any thread.
pub trait Query: Send {
    /// The key asked.
    fn key(&self) -> &str;
    /// The query's payload.
    fn payload(&self) -> &[u8];
    /// Answers.
    fn reply(self: Box<Self>, payload: Vec<u8>);
}

/// A distributed engine.
pub trait Backend: Send + Sync + 'static {
    /// Puts `payload` on `key` reliably and in order (a wildcard key
    /// reaches every subscriber it matches); waits while the network is
    /// congested rather than dropping.
    ///
    /// # Errors
    /// When the engine refuses (a closed session, a bad key).
    fn put(&self, key: &str, payload: Vec<u8>) -> Result<()>;
    /// Calls `on` for every put matching `key_expr` (on the engine's
    /// threads: never block in it).
    ///
    /// # Errors
    /// As [`Backend::put`].
    fn subscribe(&self, key_expr: &str, on: Box<dyn Fn(Sample) + Send + Sync>) -> Result<Guard>;
    /// Calls `on` for every query matching `key_expr`.
    ///
    /// # Errors
    /// As [`Backend::put`].
    fn serve(&self, key_expr: &str, on: Box<dyn Fn(Box<dyn Query>) + Send + Sync>) -> Result<Guard>;
    /// Asks `key` and gathers the answers that come within `timeout`
    /// (none, when nobody serves it yet).
    ///
    /// # Errors
    /// As [`Backend::put`].
    fn query(&self, key: &str, payload: Vec<u8>, timeout: Duration) -> Result<Vec<Vec<u8>>>;
    /// Holds a liveliness token on `key` until the guard drops or this
    /// process's session ends (crash and lost links included).
    ///
    /// # Errors
    /// As [`Backend::put`].
    fn token(&self, key: &str) -> Result<Guard>;
    /// Calls `on(key, alive)` for every token matching `key_expr`: at once
    /// for those alive now, then as they come and go.
    ///
    /// # Errors
    /// As [`Backend::put`].
    fn watch(&self, key_expr: &str, on: OnToken) -> Result<Guard>;
}
