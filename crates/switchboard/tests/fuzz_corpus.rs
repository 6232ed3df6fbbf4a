//! The fuzz targets on stable Rust, without libFuzzer: every input of the
//! checked-in corpus (`fuzz/corpus/<target>/`), then a few thousand
//! mutations of them from a fixed seed, through the same entry points the
//! fuzz targets call. A panic, a hang (the watchdog) or a broken round-trip
//! property fails the test with the input that did it. The coverage-guided
//! run is `fuzz/run` (nightly or `RUSTC_BOOTSTRAP`), which `.ci/run` runs
//! for a short, bounded time.
//!
//! Requires the `fuzz` feature: `cargo test -p switchboard --features fuzz
//! --test fuzz_corpus`.

mod util;

use std::path::PathBuf;

use switchboard::fuzz;
use util::Watchdog;

/// The corpus of `target`, sorted by file name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{target} has a corpus");
    inputs
}

/// How long the mutations of one target may take (a slow machine runs
/// fewer; the order does not change).
const BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs `entry` on every corpus input, then on up to `mutations` inputs
/// made from them (bytes flipped, set to extremes, inserted, removed,
/// spliced), within [`BUDGET`].
fn replay(target: &str, mutations: usize, entry: fn(&[u8])) {
    let _w = Watchdog::test();
    let inputs = corpus(target);
    for (name, data) in &inputs {
        let t = std::time::Instant::now();
        entry(data);
        eprintln!("{target}/{name}: {:?}", t.elapsed());
    }
    let mut rng = util::Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    let mut next = move || rng.next();
    let started = std::time::Instant::now();
    let mut round = 0;
    while round < mutations && started.elapsed() < BUDGET {
        round += 1;
        let mut data = inputs[next() as usize % inputs.len()].1.clone();
        for _ in 0..1 + next() % 4 {
            let at = if data.is_empty() { 0 } else { next() as usize % data.len() };
            match next() % 6 {
                0 if !data.is_empty() => data[at] ^= 1 << (next() % 8),
                1 if !data.is_empty() => data[at] = [0, 1, 0x7f, 0x80, 0xff][next() as usize % 5],
                2 => data.insert(at, next() as u8),
                3 if !data.is_empty() => {
                    data.remove(at);
                }
                4 => {
                    let other = &inputs[next() as usize % inputs.len()].1;
                    let from = if other.is_empty() { 0 } else { next() as usize % other.len() };
                    data.splice(at..at, other[from..].iter().take(16).copied());
                }
                _ => data.truncate(at),
            }
        }
        let shown: String = data.iter().map(|b| format!("{b:02x}")).collect();
        let result = std::panic::catch_unwind(|| entry(&data));
        assert!(result.is_ok(), "{target}: mutation {round} panicked on input {shown}");
    }
    eprintln!("{target}: {round} mutations of {} inputs in {:?}", inputs.len(), started.elapsed());
}

#[test]
fn fuzz_corpus_rendezvous_reply() {
    replay("rendezvous_reply", 5000, fuzz::rendezvous_reply);
}

#[test]
fn fuzz_corpus_mailslot_datagram() {
    replay("mailslot_datagram", 5000, fuzz::mailslot_datagram);
}

#[test]
fn fuzz_corpus_call_message() {
    replay("call_message", 5000, fuzz::call_message);
}

#[test]
fn fuzz_corpus_rpc_frame() {
    replay("rpc_frame", 5000, fuzz::rpc_frame);
}

#[test]
fn fuzz_corpus_segment() {
    replay("segment", 2000, fuzz::segment);
}
