//! Pipes (spec 02): [`anon`] — anonymous byte pipes between a parent and
//! its children; [`named`] — named pipes with instances, byte and message
//! modes, connect/disconnect, transact and peer identity.

pub mod anon;
pub mod named;
