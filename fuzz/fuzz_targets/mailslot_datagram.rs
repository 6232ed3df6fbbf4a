//! Fuzz target: see `switchboard::fuzz::mailslot_datagram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzz::mailslot_datagram(data));
