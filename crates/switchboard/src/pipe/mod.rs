//! Pipes (spec 02): [`anon`] — anonymous byte pipes between a parent and
//! its children; [`named`] — named pipes with instances, byte and message
//! modes, connect/disconnect, transact and peer identity; with the `tokio`
//! feature, `asyncio` — tokio `AsyncRead`/`AsyncWrite` for named pipes.

pub mod anon;
#[cfg(feature = "tokio")]
pub mod asyncio;
pub mod named;
