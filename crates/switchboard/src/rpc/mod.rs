//! RPC (spec 08): interfaces declared once, called like functions across
//! processes and, later, machines.
//!
//! Built so far: the wire ([`wire`]), which `doc/rpc-wire.md` documents for
//! implementations in other languages, with golden test vectors that the
//! Rust tests and the Python client's (`python/switchboard_rpc`, run by
//! `python/run-tests`) both check. The interface macro, the bindings
//! (`local:`, `pipe:`, `tcp:`), the endpoint mapper and the Python client's
//! calls come next (issue 15).

pub mod wire;
