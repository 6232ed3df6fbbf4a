//! Fuzz target: see `switchboard::fuzz::call_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzz::call_message(data));
