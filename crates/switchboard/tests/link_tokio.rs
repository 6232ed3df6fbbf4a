//! Awaited link receives (feature `tokio`): a task waiting for a message
//! sleeps on the link's doorbell in tokio's reactor — no thread per wait.
#![cfg(feature = "tokio")]

mod util;

use std::time::Duration;

use switchboard::link::asyncio::AsyncShmLink;
use switchboard::link::{Link, ShmLink, ShmLinkListener, ShmLinkOptions};
use switchboard::Error;
use util::{role, unique, Peer, Watchdog};

/// 100 receives wait at once on a single-threaded runtime without a thread
/// each; a peer process then answers them in reverse order.
#[test]
fn link_tokio_many_awaited_receives_park_no_threads() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
    let test = "link_tokio_many_awaited_receives_park_no_threads";
    if role().is_some() {
        let a = util::args();
        let n: usize = a[1].parse().unwrap();
        let mut links: Vec<ShmLink> =
            (0..n).map(|_| ShmLink::connect(&a[0], ShmLinkOptions::default()).unwrap()).collect();
        util::say("connected");
        util::hear();
        for (i, l) in links.iter_mut().enumerate().rev() {
            l.send(&(i as u32).to_le_bytes()).unwrap();
        }
        util::hold("sent");
    }
    let n = 100;
    let name = unique("tokio-links");
    let listener = ShmLinkListener::bind(&name).unwrap();
    let mut peer = Peer::spawn(test, "sender", &[&name, &n.to_string()]);
    let links: Vec<ShmLink> = (0..n).map(|_| listener.accept(Some(Duration::from_secs(60))).unwrap()).collect();
    peer.expect("connected");
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    rt.block_on(async {
        let before = util::thread_count();
        let mut tasks = Vec::new();
        for link in links {
            let mut link = AsyncShmLink::new(link).unwrap();
            tasks.push(tokio::spawn(async move {
                let mut buf = Vec::new();
                link.recv(&mut buf).await.unwrap();
                (u32::from_le_bytes(buf[..4].try_into().unwrap()), link)
            }));
        }
        tokio::task::yield_now().await;
        assert!(util::thread_count() <= before, "waiting receives took threads: {before} → {}", util::thread_count());
        peer.tell("go");
        let mut got = Vec::new();
        let mut kept = Vec::new();
        for t in tasks {
            let (v, link) = t.await.unwrap();
            got.push(v);
            kept.push(link);
        }
        got.sort_unstable();
        assert_eq!(got, (0..n as u32).collect::<Vec<_>>());
        peer.expect("sent");
        peer.dismiss();
        // The peer is gone: an awaited receive ends with BrokenPipe.
        let mut buf = Vec::new();
        assert!(matches!(kept[0].recv(&mut buf).await, Err(Error::BrokenPipe)));
    });
}

/// An awaited receive and a send on an in-process pair.
#[test]
fn link_tokio_pair_echo() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    let (a, mut b) = ShmLink::pair(ShmLinkOptions::default()).unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = Vec::new();
        for _ in 0..1000 {
            b.recv(&mut buf).unwrap();
            b.send(&buf).unwrap();
        }
    });
    rt.block_on(async {
        let mut a = AsyncShmLink::new(a).unwrap();
        let mut buf = Vec::new();
        for i in 0..1000u32 {
            a.send(&i.to_le_bytes()).unwrap();
            a.recv(&mut buf).await.unwrap();
            assert_eq!(buf, i.to_le_bytes());
        }
    });
    echo.join().unwrap();
}
