//! Scale: many objects in one process, many clients of one pipe, the most
//! waiters a port allows, and a listing of ten thousand names. Each test
//! asserts correctness (every object reachable, every client served, every
//! packet delivered once) and bounded resources (descriptors and memory per
//! object); the times are printed, never asserted (benchmarks show speed).
//! They run one at a time: each counts this process's descriptors and
//! memory, or loads the machine.

mod util;

use std::time::{Duration, Instant};

use switchboard::mapping::{Access, Mapping};
use switchboard::pipe::named::{wait_named_pipe, PipeClient, PipeOptions, PipeType, ReadMode};
use switchboard::port::Port;
use switchboard::sync::{Event, Mutex, Semaphore, WaitStatus};
use switchboard::Error;
use util::{done, role, say, unique, Peer, Watchdog};

/// This process's open descriptors.
fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// This process's resident memory in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Whether any name with `prefix` is still bound (`/proc/net/unix`).
fn any_bound(prefix: &str) -> bool {
    std::fs::read_to_string("/proc/net/unix").unwrap().contains(prefix)
}

/// The objects one process holds in `names_scale_…`.
struct Held {
    mutexes: Vec<Mutex>,
    semaphores: Vec<Semaphore>,
    events: Vec<Event>,
    mappings: Vec<Mapping>,
}

/// One process creates 2,000 named objects (500 each of mutex, semaphore,
/// event and 4 KiB mapping); another process opens every one of them by
/// name and uses it, and the creator sees each use. Descriptors stay within
/// three per object and memory within 64 KiB per object; dropping them
/// unbinds every name.
#[test]
fn names_scale_one_process_holds_2000_named_objects_another_opens_them_all() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
    const EACH: usize = 500;
    let test = "names_scale_one_process_holds_2000_named_objects_another_opens_them_all";
    if role().is_some() {
        let prefix = &util::args()[0];
        let started = Instant::now();
        for i in 0..EACH {
            let m = Mutex::open(&format!("{prefix}m{i}")).unwrap();
            assert_eq!(m.wait_timeout(Duration::ZERO), WaitStatus::Acquired, "mutex {i} is free");
            m.release().unwrap();
            Semaphore::open(&format!("{prefix}s{i}")).unwrap().release(1).unwrap();
            Event::open(&format!("{prefix}e{i}")).unwrap().set();
            let view = Mapping::open(&format!("{prefix}v{i}"), Access::Write).unwrap().map_view(Access::Write, 0, 0);
            view.unwrap().write(0, &(i as u32).to_le_bytes()).unwrap();
        }
        eprintln!("opened and used {} objects in {:?}", 4 * EACH, started.elapsed());
        say("used");
        done();
    }
    util::raise_fd_limit(4 * EACH as u64 * 3 + 500);
    let prefix = unique("scale2k");
    let (fds, rss) = (fd_count(), rss_kib());
    let started = Instant::now();
    let held = Held {
        mutexes: (0..EACH).map(|i| Mutex::create(format!("{prefix}m{i}").as_str(), false).unwrap()).collect(),
        semaphores: (0..EACH).map(|i| Semaphore::create(format!("{prefix}s{i}").as_str(), 0, 1).unwrap()).collect(),
        events: (0..EACH).map(|i| Event::create(format!("{prefix}e{i}").as_str(), true, false).unwrap()).collect(),
        mappings: (0..EACH).map(|i| Mapping::create(format!("{prefix}v{i}").as_str(), 4096).unwrap()).collect(),
    };
    let made = started.elapsed();
    let per_object_fds = (fd_count() - fds) as f64 / (4 * EACH) as f64;
    let per_object_kib = rss_kib().saturating_sub(rss) as f64 / (4 * EACH) as f64;
    eprintln!(
        "created {} objects in {made:?}: {per_object_fds:.2} descriptors and {per_object_kib:.1} KiB each",
        4 * EACH
    );
    let mut peer = Peer::spawn(test, "opener", &[&prefix]);
    peer.expect("used");
    peer.finish();
    for i in 0..EACH {
        assert_eq!(held.semaphores[i].count(), 1, "semaphore {i} released by the other process");
        assert!(held.events[i].is_set(), "event {i} set by the other process");
        let view = held.mappings[i].map_view(Access::Read, 0, 0).unwrap();
        assert_eq!(view.read_vec(0, 4).unwrap(), (i as u32).to_le_bytes(), "mapping {i} written");
        assert_eq!(held.mutexes[i].owner(), None, "mutex {i} released");
    }
    assert!(per_object_fds <= 3.0, "{per_object_fds} descriptors per object");
    assert!(per_object_kib <= 64.0, "{per_object_kib} KiB per object");
    drop(held);
    assert!(!any_bound(&prefix), "every name is unbound once its objects are dropped");
}

/// `ls` (the namespace listing) with 10,000 objects held by two processes:
/// it lists every one, and leaves none unanswered.
#[test]
fn names_scale_the_listing_shows_10000_objects() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
    const EACH: usize = 5000;
    let test = "names_scale_the_listing_shows_10000_objects";
    util::raise_fd_limit(EACH as u64 * 3 + 500);
    if role().is_some() {
        let prefix = &util::args()[0];
        let _events: Vec<Event> =
            (0..EACH).map(|i| Event::create(format!("{prefix}b{i}").as_str(), true, false).unwrap()).collect();
        util::hold("holding");
    }
    let prefix = unique("scale10k");
    let mut peer = Peer::spawn(test, "holder", &[&prefix]);
    let _events: Vec<Event> =
        (0..EACH).map(|i| Event::create(format!("{prefix}a{i}").as_str(), true, false).unwrap()).collect();
    peer.expect("holding");
    let started = Instant::now();
    let listing = switchboard::namespace::listing();
    let took = started.elapsed();
    let ours = listing.objects.iter().filter(|o| o.name.starts_with(&prefix)).count();
    eprintln!("listed {} objects ({ours} of this test) in {took:?}", listing.objects.len());
    assert_eq!(ours, 2 * EACH, "every object is listed");
    let unanswered: Vec<_> = listing.unanswered.iter().filter(|u| u.address.contains(&prefix)).collect();
    assert!(unanswered.is_empty(), "unanswered: {unanswered:?}");
    peer.tell("done");
    peer.finish();
}

/// 500 clients (five processes of 100 threads) share one named pipe whose
/// server has 4 instances, as classic clients do: wait for an instance,
/// open it (another client may take it first: busy, wait again), one
/// transaction, close. Every client is served exactly once, with its own
/// answer.
#[test]
fn pipe_scale_500_clients_share_4_instances() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
    const CLIENTS: usize = 500;
    const PROCESSES: usize = 5;
    const INSTANCES: u32 = 4;
    let test = "pipe_scale_500_clients_share_4_instances";
    if role().is_some() {
        let a = util::args();
        let (name, first) = (&a[0], a[1].parse::<usize>().unwrap());
        let busy = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for id in first..first + CLIENTS / PROCESSES {
                let busy = &busy;
                std::thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn_scoped(s, move || {
                        let client = loop {
                            match wait_named_pipe(name, Some(Duration::from_secs(120))) {
                                Ok(()) => {}
                                // More waiters than a pipe queues: wait a
                                // little and ask again, as classic clients do.
                                Err(Error::PipeBusy) => {}
                                Err(e) => panic!("client {id}: wait: {e}"),
                            }
                            match PipeClient::open(name) {
                                Ok(c) => break c,
                                Err(Error::PipeBusy) => {
                                    busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                    std::thread::sleep(Duration::from_millis(1 + id as u64 % 7));
                                }
                                Err(e) => panic!("client {id}: open: {e}"),
                            }
                        };
                        client.set_read_mode(ReadMode::Message).unwrap();
                        let mut reply = [0u8; 32];
                        let n = client.transact(format!("{id}").as_bytes(), &mut reply).unwrap();
                        assert_eq!(&reply[..n], format!("served {id}").as_bytes());
                    })
                    .unwrap();
            }
        });
        eprintln!("clients {first}..: PipeBusy on open {} times", busy.into_inner());
        done();
    }
    let name = unique("scale500");
    let opts = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message).max_instances(INSTANCES);
    let servers: Vec<_> = (0..INSTANCES).map(|_| opts.create(&name).unwrap()).collect();
    let served = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for server in &servers {
            let served = &served;
            s.spawn(move || loop {
                if served.lock().unwrap().len() >= CLIENTS {
                    return;
                }
                // Bounded, so an instance notices the last client was
                // served elsewhere.
                match server.connect_timeout(Duration::from_millis(200)) {
                    Ok(_) => {}
                    Err(Error::Timeout | Error::WaitTimeout) => continue,
                    Err(e) => panic!("connect: {e}"),
                }
                let mut buf = [0u8; 32];
                let n = server.read(&mut buf).unwrap();
                let id: usize = std::str::from_utf8(&buf[..n]).unwrap().parse().unwrap();
                server.write(format!("served {id}").as_bytes()).unwrap();
                served.lock().unwrap().push(id);
                // The client reads its answer, then closes: disconnect once
                // it is gone, so the instance listens again.
                let _ = server.read(&mut buf);
                server.disconnect().unwrap();
            });
        }
        let mut peers: Vec<Peer> = (0..PROCESSES)
            .map(|p| Peer::spawn(test, "clients", &[&name, &(p * CLIENTS / PROCESSES).to_string()]))
            .collect();
        peers.iter_mut().for_each(Peer::finish);
    });
    let mut served = served.into_inner().unwrap();
    eprintln!("{} clients served by {INSTANCES} instances in {:?}", served.len(), started.elapsed());
    served.sort_unstable();
    assert_eq!(served, (0..CLIENTS).collect::<Vec<_>>(), "every client served once");
}

/// A port takes the most waiters it allows (64 threads of another process
/// in `get`) and hands each exactly one of 64 packets; a 65th waiter is
/// refused while they wait, not queued or lost.
#[test]
fn port_scale_64_waiters_get_one_packet_each() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
    const WAITERS: u64 = 64;
    let test = "port_scale_64_waiters_get_one_packet_each";
    if role().is_some() {
        let port = Port::open(&util::args()[0]).unwrap();
        let keys = std::thread::scope(|s| {
            let gets: Vec<_> =
                (0..WAITERS).map(|_| s.spawn(|| port.get(Duration::from_secs(120)).unwrap().key)).collect();
            gets.into_iter().map(|g| g.join().unwrap()).collect::<Vec<u64>>()
        });
        say(&format!("{keys:?}"));
        done();
    }
    let name = unique("scale64");
    let port = Port::builder().name(name.as_str()).concurrency(WAITERS as u32).create().unwrap();
    let mut peer = Peer::spawn(test, "waiters", &[&name]);
    util::eventually("64 waiters in get", || port.waiting() == WAITERS);
    let refused = port.get(Duration::from_secs(5));
    assert!(matches!(refused, Err(Error::InvalidParameter(_))), "a 65th waiter: {refused:?}");
    for key in 0..WAITERS {
        port.post(1, key, 0).unwrap();
    }
    let mut keys: Vec<u64> = peer.next().trim_matches(['[', ']']).split(", ").map(|k| k.parse().unwrap()).collect();
    peer.finish();
    keys.sort_unstable();
    assert_eq!(keys, (0..WAITERS).collect::<Vec<_>>(), "each packet to exactly one waiter");
    assert_eq!(port.queued(), 0);
}
