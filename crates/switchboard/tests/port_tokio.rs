//! Awaited port gets (feature `tokio`): tasks waiting for packets sleep on
//! the port's doorbell in tokio's reactor — no thread each.
#![cfg(feature = "tokio")]

mod util;

use std::sync::Arc;

use switchboard::port::{AsyncPort, Port};
use util::{role, unique, Peer, Watchdog};

/// 10 gets wait at once on one port (one handle, shared by the tasks) on a
/// single-threaded runtime without a thread each; a poster process then
/// posts 10 packets, one for each. (Regression: the first version woke
/// only the last task to wait — `poll_read_ready` keeps one waker.)
#[test]
fn port_tokio_awaited_gets_park_no_threads() {
    let _w = Watchdog::test();
    let test = "port_tokio_awaited_gets_park_no_threads";
    if role().is_some() {
        let port = Port::open(&util::args()[0]).unwrap();
        util::hear();
        for i in 0..10u64 {
            port.post(1, i, 0).unwrap();
        }
        util::done();
    }
    let name = unique("tokio-port");
    let port = Port::builder().name(name.as_str()).concurrency(16).create().unwrap();
    let mut poster = Peer::spawn(test, "poster", &[&name]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    rt.block_on(async {
        let port = Arc::new(AsyncPort::new(port).unwrap());
        let before = util::thread_count();
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let port = port.clone();
                tokio::spawn(async move { port.get().await.unwrap().key })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(util::thread_count() <= before, "waiting gets took threads: {before} → {}", util::thread_count());
        poster.tell("go");
        let mut keys = Vec::new();
        for t in tasks {
            keys.push(t.await.unwrap());
        }
        keys.sort_unstable();
        assert_eq!(keys, (0..10).collect::<Vec<u64>>(), "one packet each, none lost or doubled");
    });
    poster.finish();
}
