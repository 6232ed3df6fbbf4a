//! Fuzz target: see `switchboard::fuzz::segment`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzz::segment(data));
