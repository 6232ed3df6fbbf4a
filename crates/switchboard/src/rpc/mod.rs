//! RPC (spec 08): interfaces declared once, called like functions across
//! processes and, later, machines.
//!
//! Built so far: the wire ([`wire`]), which `doc/rpc-wire.md` documents for
//! implementations in other languages, with golden test vectors. The
//! interface macro, the bindings (`local:`, `pipe:`, `tcp:`), the endpoint
//! mapper and the Python client come next (issue 15).

pub mod wire;
