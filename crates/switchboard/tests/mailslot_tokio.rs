//! Awaited mailslot reads (feature `tokio`): a task waiting for a message
//! sleeps on the mailslot's doorbell in tokio's reactor — no thread each.
#![cfg(feature = "tokio")]

mod util;

use std::time::Duration;

use switchboard::mailslot::asyncio::AsyncMailslot;
use switchboard::mailslot::{Mailslot, MailslotClient};
use util::{role, unique, Peer, Watchdog};

/// 20 mailslots awaited at once on a single-threaded runtime without a
/// thread each; a writer process fills them in reverse order.
#[test]
fn mailslot_tokio_awaited_reads_park_no_threads() {
    let _w = Watchdog::test();
    let test = "mailslot_tokio_awaited_reads_park_no_threads";
    if role().is_some() {
        util::hear();
        for name in util::args().iter().rev() {
            MailslotClient::open(name).unwrap().write(name.as_bytes()).unwrap();
        }
        util::done();
    }
    let names: Vec<String> = (0..20).map(|i| unique(&format!("tokio-slot{i}"))).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut writer = Peer::spawn(test, "writer", &refs);
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    rt.block_on(async {
        let slots: Vec<AsyncMailslot> = names
            .iter()
            .map(|n| AsyncMailslot::new(Mailslot::create(n, 0, Duration::ZERO).unwrap()).unwrap())
            .collect();
        // Each mailslot server has a keeper thread of its own; the waits
        // must add none.
        let before = util::thread_count();
        let mut tasks = Vec::new();
        for (slot, name) in slots.into_iter().zip(names.iter().cloned()) {
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 256];
                let got = slot.read_from(&mut buf).await.unwrap();
                assert_eq!(&buf[..got.len], name.as_bytes());
            }));
        }
        tokio::task::yield_now().await;
        assert!(util::thread_count() <= before, "waiting reads took threads: {before} → {}", util::thread_count());
        writer.tell("go");
        for t in tasks {
            t.await.unwrap();
        }
    });
    writer.finish();
}
