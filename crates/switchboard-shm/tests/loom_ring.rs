//! loom model of the SPSC byte ring: a producer pushes more records than
//! fit while a consumer pops them. The data area is made of loom
//! `UnsafeCell`s, so loom reports any byte read without a happens-before
//! edge from its write — i.e. a missing Release/Acquire on `tail` or `head`.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p switchboard-shm --test loom_ring --release`
#![cfg(loom)]
#![allow(unsafe_code)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use switchboard_shm::ring::{ConsumerState, ProducerState, Ring, RingCtl, RingMem};

struct LoomMem(Vec<UnsafeCell<u8>>);

impl RingMem for LoomMem {
    fn read(&self, offset: usize, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: loom checks this access against concurrent writes.
            *b = self.0[offset + i].with(|p| unsafe { *p });
        }
    }
    fn write(&self, offset: usize, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            // SAFETY: loom checks this access against concurrent reads.
            self.0[offset + i].with_mut(|p| unsafe { *p = *b });
        }
    }
}

const CAP: usize = 64;
const MESSAGES: u8 = 3;

#[test]
fn ring_spsc_delivers_in_order_without_data_races() {
    loom::model(|| {
        let ctl = Arc::new(RingCtl::new());
        let mem = Arc::new(LoomMem((0..CAP).map(|_| UnsafeCell::new(0)).collect()));
        let (pctl, pmem) = (ctl.clone(), mem.clone());
        let producer = thread::spawn(move || {
            let ring = Ring::new(&pctl, &*pmem, CAP).unwrap();
            let mut st = ProducerState::default();
            for i in 1..=MESSAGES {
                // 8-byte header + 16 bytes: two records fit, the third waits for space.
                while !ring.try_push(&mut st, &[i; 13], false).unwrap() {
                    thread::yield_now();
                }
            }
        });
        let ring = Ring::new(&ctl, &*mem, CAP).unwrap();
        let mut st = ConsumerState::default();
        let mut out = Vec::new();
        let mut next = 1;
        while next <= MESSAGES {
            out.clear();
            match ring.try_pop(&mut st, &mut out).unwrap() {
                Some(more) => {
                    assert!(!more);
                    assert_eq!(out, [next; 13]);
                    next += 1;
                }
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
    });
}
