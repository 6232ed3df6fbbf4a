//! Fuzz target: see `switchboard::fuzz::rpc_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzz::rpc_frame(data));
