//! Hostile shared memory: a same-user peer process scribbles random and
//! adversarial values over a segment it was granted, while the victim keeps
//! using it. The victim must get messages or typed errors within its
//! deadlines — never a panic, a hang (the watchdog fails the test) or UB.
//!
//! The peer needs no `unsafe`: it opens the victim's descriptor of the
//! segment again through `/proc/PID/fd` (as any process of the same user
//! may) and writes with `pwrite`, which lands in the same pages every
//! mapping of it shows.

mod util;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use switchboard::mailslot::{MailslotClient, MailslotOptions};
use switchboard::pipe::named::{PipeClient, PipeOptions, PipeType, ReadMode};
use switchboard::port::Port;
use switchboard::sync::{wait_all, wait_any, Event, Mutex, Semaphore, WaitStatus};
use util::{done, role, say, unique, Peer, Rng, Watchdog};

/// Values a hostile writer would try.
trait Nasty {
    fn nasty(&mut self) -> u64;
}

impl Nasty for Rng {
    /// A value a hostile writer would try: extremes, off-by-ones, small
    /// numbers, or noise.
    fn nasty(&mut self) -> u64 {
        const PICKS: [u64; 10] = [0, 1, 2, u64::MAX, u64::MAX - 1, u32::MAX as u64, 1 << 31, 1 << 63, 4096, 513];
        match self.next() % 3 {
            0 => PICKS[(self.next() % PICKS.len() as u64) as usize],
            1 => self.next() % 8192,
            _ => self.next(),
        }
    }
}

/// Process `pid`'s descriptor of the segment whose memfd name starts
/// `memfd:<debug_name>`, opened again for writing (any process of the same
/// user may do this).
fn segment_named(pid: u32, debug_name: &str) -> File {
    segments_named(pid, debug_name).swap_remove(0)
}

/// Every segment of process `pid` whose memfd name starts
/// `memfd:<debug_name>`, each once, opened again for writing.
fn segments_named(pid: u32, debug_name: &str) -> Vec<File> {
    let want = format!("/memfd:{debug_name}");
    let mut seen = std::collections::BTreeSet::new();
    let mut found = Vec::new();
    // A segment whose descriptor was closed after mapping is still in the
    // process's mappings.
    for dir in ["fd", "map_files"] {
        for entry in std::fs::read_dir(format!("/proc/{pid}/{dir}")).unwrap().flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else { continue };
            if !target.to_string_lossy().starts_with(&want) {
                continue;
            }
            let file = std::fs::OpenOptions::new().read(true).write(true).open(entry.path()).unwrap();
            if seen.insert(std::os::unix::fs::MetadataExt::ino(&file.metadata().unwrap())) {
                found.push(file);
            }
        }
    }
    assert!(!found.is_empty(), "no {want} among process {pid}'s descriptors or mappings");
    found
}

/// Scribbles `rounds` times over `seg`: every round writes a few nasty
/// words at 8-aligned offsets (headers, counters, lock and futex words,
/// ring indices) and a few random bytes anywhere.
fn scribble(seg: &File, rng: &mut Rng, rounds: usize, between: &mut dyn FnMut()) {
    let len = seg.metadata().unwrap().len();
    for _ in 0..rounds {
        for _ in 0..1 + rng.next() % 2 {
            // The first 1 KiB holds every control word; hit it most.
            let span = if rng.next() % 4 == 0 { len } else { len.min(1024) };
            let at = (rng.next() % span) & !7;
            let _ = seg.write_at(&rng.nasty().to_le_bytes()[..(len - at).min(8) as usize], at);
        }
        let at = rng.next() % len;
        let _ = seg.write_at(&[rng.next() as u8], at);
        between();
    }
}

/// Peer side: scribbles over this process's segment `debug_name` with the
/// parent's seed while `use_it` keeps using the mechanism on its own thread
/// (a call may block for good on a ring scribbled "full"; the exit ends
/// it), then exits.
fn scribble_beside(debug_name: &str, mut use_it: impl FnMut() + Send + 'static) -> ! {
    let seg = segment_named(std::process::id(), debug_name);
    let mut rng = Rng(util::args()[1].parse().unwrap());
    std::thread::spawn(move || loop {
        use_it();
        std::thread::sleep(Duration::from_millis(2));
    });
    scribble(&seg, &mut rng, 2000, &mut || std::thread::sleep(Duration::from_micros(200)));
    done()
}

/// Starts `test` as the scribbler of `name`, with a seed (printed, so a
/// failure repeats) and this process's pid.
fn scribbler(test: &str, name: &str, salt: u64) -> Peer {
    let seed = salt ^ u64::from(std::process::id());
    eprintln!("seed {seed}");
    Peer::spawn(test, "scribbler", &[name, &seed.to_string(), &std::process::id().to_string()])
}

/// What the victim's calls returned: how many succeeded, and the errors by
/// classic code.
#[derive(Debug, Default)]
struct Tally {
    ok: u32,
    errors: std::collections::BTreeMap<u32, u32>,
}

impl Tally {
    /// Counts one call's result; whether it failed.
    fn count<T>(&mut self, r: switchboard::Result<T>) -> bool {
        match r {
            Ok(_) => self.ok += 1,
            Err(e) => {
                *self.errors.entry(e.win32()).or_default() += 1;
                return true;
            }
        }
        false
    }
}

/// A mailslot's server keeps reading (and asking for its info) while a
/// writer scribbles over the queue segment and keeps writing: every read
/// ends within its timeout with a message or a typed error, and the server
/// is still usable afterwards.
#[test]
fn mailslot_hostile_a_scribbled_queue_never_hangs_or_panics_the_server() {
    let _w = Watchdog::test();
    let test = "mailslot_hostile_a_scribbled_queue_never_hangs_or_panics_the_server";
    if role().is_some() {
        let a = util::args();
        let mut w = MailslotClient::open(&a[0]).unwrap();
        w.set_write_timeout(Duration::from_millis(5));
        let seg = segment_named(a[2].parse().unwrap(), "switchboard-mailslot");
        let mut rng = Rng(a[1].parse().unwrap());
        for _ in 0..3 {
            w.write(b"before").unwrap();
        }
        say("wrote");
        util::hear();
        let mut round = 0;
        // Writing too, now and then: a write behind a scribbled lock word
        // waits out the writers' 1 s lock grace.
        scribble(&seg, &mut rng, 2000, &mut || {
            round += 1;
            if round % 200 == 0 {
                let _ = w.write(b"still here");
            }
            // Pace it, so the server is caught asleep and awake alike.
            std::thread::sleep(Duration::from_micros(200));
        });
        done();
    }
    let name = unique("hostile");
    let slot =
        MailslotOptions::new().max_message_size(64).read_timeout(Duration::from_millis(20)).create(&name).unwrap();
    let mut peer = scribbler(test, &name, 0x5eed_1234);
    peer.expect("wrote");
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        let n = slot.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"before", "the queue works before the scribbling");
    }
    peer.tell("scribble");
    let mut tally = Tally::default();
    let mut step = |slot: &switchboard::mailslot::Mailslot| {
        tally.count(slot.read(&mut buf));
        let _ = slot.info();
    };
    while peer.try_next().is_none() && !peer_exited(&mut peer) {
        step(&slot);
    }
    peer.finish();
    for _ in 0..10 {
        step(&slot);
    }
    let Tally { ok: reads, errors } = tally;
    eprintln!("{reads} messages read; errors by code: {errors:?}");
    // Timeouts, malformed data, and (a scribbled "closed" flag) the queue
    // read as closed; a message of a scribbled length does not fit.
    for code in errors.keys() {
        assert!([2, 13, 121, 122, 234].contains(code), "unexpected errors {errors:?}");
    }
    drop(slot);
    assert!(!util::listed(&name), "the name is gone with its server");
}

/// Whether the peer has exited (gone, or a zombie not yet reaped).
fn peer_exited(peer: &mut Peer) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", peer.pid)).map_or(true, |s| s.contains(") Z "))
}

/// A named pipe's server keeps reading while its client scribbles over the
/// channel segment (the duplex rings pipes and links share) and keeps
/// writing: every read ends with a message or a typed error, and once the
/// client is gone the server's read ends too.
#[test]
fn pipe_hostile_a_scribbled_channel_never_hangs_or_panics_the_server() {
    let _w = Watchdog::test();
    let test = "pipe_hostile_a_scribbled_channel_never_hangs_or_panics_the_server";
    if role().is_some() {
        let a = util::args();
        let c = PipeClient::open(&a[0]).unwrap();
        for _ in 0..3 {
            c.write(b"before").unwrap();
        }
        say("wrote");
        util::hear();
        // Pipe writes wait for room while the server lives.
        scribble_beside("switchboard-link", move || {
            let _ = c.write(b"still here");
        });
    }
    let name = unique("hostilepipe");
    let server = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message).create(&name).unwrap();
    let mut peer = scribbler(test, &name, 0xbad_5eed);
    server.connect().unwrap();
    peer.expect("wrote");
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        let n = server.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"before", "the pipe works before the scribbling");
    }
    peer.tell("scribble");
    let mut tally = Tally::default();
    // Until the client is gone and a read says so.
    while !(tally.count(server.read(&mut buf)) && peer_exited(&mut peer)) {}
    peer.finish();
    eprintln!("{} messages read; errors by code: {:?}", tally.ok, tally.errors);
    drop(server);
    assert!(!util::listed(&name), "the name is gone with its server");
}

/// A completion port's server keeps taking packets, each get with a
/// deadline, while a process that opened the port scribbles over its queue
/// and waiter table and keeps posting: every get ends by its deadline with a
/// packet or a typed error. (Before issue 10, a scribbled waiter state made
/// the get recurse until the stack overflowed.)
#[test]
fn port_hostile_a_scribbled_queue_never_hangs_or_panics_a_get() {
    let _w = Watchdog::test();
    let test = "port_hostile_a_scribbled_queue_never_hangs_or_panics_a_get";
    if role().is_some() {
        let a = util::args();
        let port = Port::open(&a[0]).unwrap();
        for i in 0..3 {
            port.post(i, 7, 0).unwrap();
        }
        say("posted");
        util::hear();
        // A post waits on a lock word scribbled to a live thread while the
        // server lives.
        scribble_beside("switchboard-port", move || {
            let _ = port.post(9, 9, 9);
        });
    }
    let name = unique("hostileport");
    let port = Port::create(name.as_str(), 1).unwrap();
    let mut peer = scribbler(test, &name, 0xc0de_5eed);
    peer.expect("posted");
    for i in 0..3 {
        let p = port.get(Duration::from_secs(60)).unwrap();
        assert_eq!((p.bytes, p.key), (i, 7), "the port works before the scribbling");
    }
    peer.tell("scribble");
    let mut tally = Tally::default();
    let mut step = |port: &Port| {
        tally.count(port.get(Duration::from_millis(20)));
    };
    while !peer_exited(&mut peer) {
        step(&port);
    }
    peer.finish();
    for _ in 0..10 {
        step(&port);
    }
    eprintln!("{} packets taken; errors by code: {:?}", tally.ok, tally.errors);
    drop(port);
    assert!(!util::listed(&name), "the name is gone with its server");
}

/// A mutex, a semaphore and an event are waited on, alone and together,
/// with short timeouts, while a process that opened them scribbles over
/// their segments (owner, recursion, count, maximum, signal and waiter
/// words) and keeps using them: every wait ends by its timeout, and each
/// call returns a status or a typed error. A mutex scribbled to a live
/// thread is simply held (as a mutex held by a peer that never lets go is);
/// one scribbled to an id no thread can have is abandoned.
#[test]
fn sync_hostile_scribbled_objects_never_hang_or_panic_a_wait() {
    let _w = Watchdog::test();
    let test = "sync_hostile_scribbled_objects_never_hang_or_panic_a_wait";
    if role().is_some() {
        let a = util::args();
        let m = Mutex::open(&format!("{}m", a[0])).unwrap();
        let s = Semaphore::open(&format!("{}s", a[0])).unwrap();
        let e = Event::open(&format!("{}e", a[0])).unwrap();
        say("opened");
        util::hear();
        let segs = segments_named(std::process::id(), "switchboard-sync");
        assert_eq!(segs.len(), 3, "one segment per object");
        let mut rng = Rng(a[1].parse().unwrap());
        let mut round = 0u32;
        for seg in &segs {
            scribble(seg, &mut rng, 700, &mut || {
                round += 1;
                if round % 50 == 0 {
                    if m.wait_timeout(Duration::from_millis(1)) != WaitStatus::TimedOut {
                        let _ = m.release();
                    }
                    let _ = s.release(1);
                    e.set();
                }
                std::thread::sleep(Duration::from_micros(200));
            });
        }
        done();
    }
    let name = unique("hostilesync");
    let m = Mutex::create(format!("{name}m").as_str(), false).unwrap();
    let s = Semaphore::create(format!("{name}s").as_str(), 0, 4).unwrap();
    let e = Event::create(format!("{name}e").as_str(), false, false).unwrap();
    let mut peer = scribbler(test, &name, 0x5a5a_0001);
    peer.expect("opened");
    assert_eq!(m.wait_timeout(Duration::from_millis(1)), WaitStatus::Acquired, "the mutex works before");
    m.release().unwrap();
    peer.tell("scribble");
    let short = Duration::from_millis(20);
    let mut statuses = std::collections::BTreeMap::<String, u32>::new();
    let mut tally = Tally::default();
    // CPU and wall time spent in waits that timed out: those slept.
    let (mut cpu, mut wall) = (Duration::ZERO, Duration::ZERO);
    while !peer_exited(&mut peer) {
        let waits: [&dyn Fn() -> WaitStatus; 3] =
            [&|| m.wait_timeout(short), &|| s.wait_timeout(short), &|| e.wait_timeout(short)];
        for wait in waits {
            let (cpu0, wall0) = (switchboard_sys::process::thread_cpu_time(), std::time::Instant::now());
            let status = wait();
            if status == WaitStatus::TimedOut {
                cpu += switchboard_sys::process::thread_cpu_time() - cpu0;
                wall += wall0.elapsed();
            }
            *statuses.entry(format!("{status:?}")).or_default() += 1;
        }
        tally.count(s.release(1));
        e.set();
        tally.count(wait_any(&[&m, &s, &e], short));
        tally.count(wait_all(&[&m, &s, &e], short));
        // Whatever of the mutex this thread holds (a scribbled recursion
        // count may be huge: the rest is abandoned when the test ends).
        for _ in 0..8 {
            let _ = m.release();
        }
        e.reset();
    }
    peer.finish();
    eprintln!("waits: {statuses:?}; other calls: {} ok, errors by code {:?}", tally.ok, tally.errors);
    eprintln!("timed-out waits: {cpu:?} of CPU in {wall:?}");
    // Too many posts (a scribbled count or maximum).
    for code in tally.errors.keys() {
        assert!([298].contains(code), "unexpected errors {:?}", tally.errors);
    }
    // A wait that times out sleeps: one that a scribble made spin would
    // burn its whole timeout on the CPU.
    // (A run whose every wait was satisfied has nothing to judge.)
    assert!(wall.is_zero() || cpu < wall / 2, "timed-out waits spun: {cpu:?} of CPU in {wall:?}");
}
