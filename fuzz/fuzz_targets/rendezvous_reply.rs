//! Fuzz target: see `switchboard::fuzz::rendezvous_reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzz::rendezvous_reply(data));
