//! loom models of the completion-port packet queue: posters and consumers
//! race through the lock, the waiter table and the direct hand-over. Under
//! loom the tables hold two waiters and two running consumers, futex sleeps
//! are yields and every thread is alive, so these models check the
//! algorithm's ordering and hand-over logic (no packet lost, duplicated or
//! reordered, every waiter released), not process death — that is the
//! kill -9 tests' job (`port_s10_*`).
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p switchboard-shm --test loom_port --release`
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use switchboard_shm::peer::Peer;
use switchboard_shm::port::{Packet, PortError, PortQueue};

fn pk(n: u64) -> Packet {
    Packet { bytes: n as u32, key: n, overlapped: !n }
}

/// One poster posts two packets while the consumer waits for them: they
/// arrive in posting order whether queued or handed over directly.
#[test]
fn port_loom_one_poster_order_is_kept() {
    loom::model(|| {
        let q = Arc::new(PortQueue::in_memory(2, 1));
        let poster = {
            let q = q.clone();
            thread::spawn(move || {
                q.post(pk(1), true, Peer::PRESENT).unwrap();
                q.post(pk(2), true, Peer::PRESENT).unwrap();
            })
        };
        let got: Vec<Packet> = (0..2).map(|_| q.get(1, None, Peer::PRESENT).unwrap()).collect();
        poster.join().unwrap();
        assert_eq!(got, [pk(1), pk(2)]);
        assert_eq!(q.queued(), 0);
    });
}

/// A consumer waits while another thread posts two packets and then
/// takes one itself: each packet goes to exactly one of them, whether it
/// was handed over directly or queued. (Two threads per model: with three,
/// loom explores schedules where two waiters yield to each other forever.)
#[test]
fn port_loom_two_consumers_each_packet_once() {
    loom::model(|| {
        let q = Arc::new(PortQueue::in_memory(2, 2));
        let consumer = {
            let q = q.clone();
            thread::spawn(move || q.get(1, None, Peer::PRESENT).unwrap())
        };
        q.post(pk(1), true, Peer::PRESENT).unwrap();
        q.post(pk(2), true, Peer::PRESENT).unwrap();
        let mine = q.get(2, None, Peer::PRESENT).unwrap();
        let mut got = vec![consumer.join().unwrap(), mine];
        got.sort_by_key(|p| p.key);
        assert_eq!(got, [pk(1), pk(2)]);
    });
}

/// A queue of capacity one: the poster's second post blocks for room until
/// the consumer takes the first packet; nothing is lost or reordered.
#[test]
fn port_loom_full_queue_blocks_then_delivers() {
    loom::model(|| {
        let q = Arc::new(PortQueue::in_memory(1, 1));
        let poster = {
            let q = q.clone();
            thread::spawn(move || {
                q.post(pk(1), true, Peer::PRESENT).unwrap();
                q.post(pk(2), true, Peer::PRESENT).unwrap();
            })
        };
        let got: Vec<Packet> = (0..2).map(|_| q.get(9, None, Peer::PRESENT).unwrap()).collect();
        poster.join().unwrap();
        assert_eq!(got, [pk(1), pk(2)]);
    });
}

/// Closing while a consumer waits: the consumer gets the packet posted
/// before the close, or `Closed` — never a hang, never a torn packet.
#[test]
fn port_loom_close_releases_a_waiter() {
    loom::model(|| {
        let q = Arc::new(PortQueue::in_memory(2, 1));
        let consumer = {
            let q = q.clone();
            thread::spawn(move || q.get(1, None, Peer::PRESENT))
        };
        let posted = q.post(pk(7), false, Peer::PRESENT);
        q.close();
        assert_eq!(q.post(pk(8), false, Peer::PRESENT), Err(PortError::Closed));
        match consumer.join().unwrap() {
            Ok(p) => {
                assert_eq!(posted, Ok(()));
                assert_eq!(p, pk(7));
            }
            Err(e) => assert_eq!(e, PortError::Closed),
        }
    });
}
