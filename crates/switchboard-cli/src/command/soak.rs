//! `switchboard soak`: every mechanism at once, from several processes, for
//! minutes, with peers killed (`kill -9`) at random moments; then the
//! checks: every acknowledged message arrived (once, in order), nothing is
//! left behind, and this process's memory stayed flat.
//!
//! This process serves: a mailslot, a completion port, a named pipe (4
//! instances), a link listener, a window-message receiver, a DDE service,
//! an RPC server, and a mutex guarding a counter in a mapping. Worker processes (`soak-peer`) each drive all of them at once,
//! one thread per mechanism, numbering their messages. A message is
//! acknowledged when its call returned success (a mailslot write, a port
//! post, a link send; a pipe transaction's reply, a send's result, a DDE
//! poke's ack, an RPC call's result; a counter increment's release); workers print what they acknowledged every 50 ms, and a
//! worker killed between a success and its next report leaves messages
//! that arrived unreported, never the other way round.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use switchboard::link::{Link, ShmLink, ShmLinkListener, ShmLinkOptions};
use switchboard::mailslot::{MailslotClient, MailslotOptions};
use switchboard::mapping::{Access, Mapping};
use switchboard::pipe::named::{wait_named_pipe, PipeClient, PipeOptions, PipeServer, PipeType, ReadMode};
use switchboard::port::Port;
use switchboard::rpc::interface;
use switchboard::sync::{Mutex, WaitStatus};
use switchboard::Error;

/// The RPC carrier: each call records one numbered message.
#[interface(uuid = "3f6c2b1a-8d4e-4c7f-9a2b-5e1d0c9b8a70", version = "1.0")]
pub trait SoakRecord {
    /// Records message `seq` of `worker`.
    #[opnum(0)]
    fn record(&self, worker: u64, seq: u64) -> switchboard::Result<()>;
}

struct Recorder(Arc<Received>);

impl SoakRecord for Recorder {
    fn record(&self, worker: u64, seq: u64) -> switchboard::Result<()> {
        self.0.arrived(worker, 6, seq);
        Ok(())
    }
}

/// The mechanisms that carry numbered messages.
const CARRIERS: [&str; 7] = ["mailslot", "port", "pipe", "link", "message", "dde", "rpc"];
/// How many there are; a worker's counts are theirs, then the counter
/// increments and the abandoned mutexes.
const N: usize = CARRIERS.len();
/// Where the counter increments and abandoned mutexes are in the counts.
const INCREMENTS: usize = N;
const ABANDONED: usize = N + 1;
/// How often workers report what they acknowledged.
const REPORT_EVERY: Duration = Duration::from_millis(50);
/// How often the progress line is printed (and memory sampled), at most.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Where one worker's messages on one mechanism stand at the server.
#[derive(Debug, Default, Clone, Copy)]
struct Track {
    /// The next sequence number expected (all below it arrived).
    next: u64,
    /// Messages that skipped ahead (one before them never arrived).
    gaps: u64,
    /// Messages that arrived again or out of order.
    repeats: u64,
}

/// Everything the servers received, by (worker, mechanism).
#[derive(Debug, Default)]
struct Received(StdMutex<HashMap<(u64, usize), Track>>);

impl Received {
    fn arrived(&self, worker: u64, carrier: usize, seq: u64) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let t = all.entry((worker, carrier)).or_default();
        match seq.cmp(&t.next) {
            std::cmp::Ordering::Equal => t.next += 1,
            std::cmp::Ordering::Greater => {
                t.gaps += 1;
                t.next = seq + 1;
            }
            std::cmp::Ordering::Less => t.repeats += 1,
        }
    }

    fn track(&self, worker: u64, carrier: usize) -> Track {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&(worker, carrier)).copied().unwrap_or_default()
    }
}

/// What workers said they acknowledged: per worker, the count per carrier
/// (messages 0..n), and counter increments and abandoned mutexes seen.
#[derive(Debug, Default, Clone)]
struct Acked {
    sent: [u64; N],
    increments: u64,
    abandoned: u64,
}

/// The names of one soak run.
struct Names {
    prefix: String,
}

impl Names {
    fn of(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }
}

/// Runs the soak for `minutes` with `workers` worker processes.
pub fn run(minutes: f64, workers: usize, seed: Option<u64>) -> anyhow::Result<ExitCode> {
    if !(minutes > 0.0 && minutes.is_finite()) || workers == 0 {
        bail!("--minutes must be positive and --workers at least 1");
    }
    let length = Duration::from_secs_f64(minutes * 60.0);
    let seed = seed.unwrap_or_else(|| u64::from(std::process::id()) ^ 0x50a4_50a4);
    let before = leftovers_snapshot();
    let names = Names { prefix: format!("soak-{}-", std::process::id()) };
    note!("soak: {minutes} min, {workers} workers, seed {seed}, names {}*", names.prefix);

    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(Received::default());
    let servers = Servers::start(&names, &stop, &received)?;
    let acked: Arc<StdMutex<HashMap<u64, Acked>>> = Arc::default();

    let mut rng = seed;
    let mut next_id = 0u64;
    let mut running: Vec<(u64, Child)> = Vec::new();
    let mut spawn = |running: &mut Vec<(u64, Child)>| -> anyhow::Result<()> {
        let id = next_id;
        next_id += 1;
        running.push((id, spawn_worker(&names, id, &acked)?));
        Ok(())
    };
    for _ in 0..workers {
        spawn(&mut running)?;
    }

    let started = Instant::now();
    let mut kills = 0u64;
    let mut next_kill = started + kill_interval(&mut rng);
    // At least six samples, so a short run has a baseline after warm-up.
    let every = PROGRESS_EVERY.min(length / 6);
    let mut next_progress = started + every;
    let mut rss_samples: Vec<(Duration, u64)> = Vec::new();
    while started.elapsed() < length {
        std::thread::sleep(Duration::from_millis(20));
        if Instant::now() >= next_kill {
            let victim = (next(&mut rng) % running.len() as u64) as usize;
            let (_, mut child) = running.swap_remove(victim);
            let _ = child.kill();
            let _ = child.wait();
            kills += 1;
            spawn(&mut running)?;
            next_kill = Instant::now() + kill_interval(&mut rng);
        }
        if Instant::now() >= next_progress {
            next_progress += every;
            let rss = rss_kib(std::process::id());
            rss_samples.push((started.elapsed(), rss));
            let total: HashMap<u64, Acked> = snapshot(&acked);
            let sums = sum_acked(&total);
            let carried: Vec<String> = CARRIERS.iter().zip(sums.sent).map(|(c, n)| format!("{c} {n}")).collect();
            note!(
                "soak: {:>4.0}s  acknowledged {} increments {}  kills {kills}  rss {rss} KiB",
                started.elapsed().as_secs_f64(),
                carried.join(" "),
                sums.increments
            );
        }
    }

    // Let the survivors finish: closing their stdin asks them to stop after
    // their last report.
    let worker_rss: Vec<u64> = running.iter().map(|(_, c)| rss_kib(c.id())).collect();
    for (_, child) in &mut running {
        drop(child.stdin.take());
    }
    for (_, mut child) in running {
        let _ = child.wait();
    }
    // Everything acknowledged is in a queue or on its way: give the servers
    // time to take it.
    let acked = snapshot(&acked);
    let settle = Instant::now() + Duration::from_secs(30);
    while !all_arrived(&acked, &received) && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(20));
    }
    let end_rss = rss_kib(std::process::id());
    stop.store(true, Ordering::SeqCst);
    let counter = servers.finish()?;

    let mut failures = Vec::new();
    let mut lost = [0u64; N];
    for (&worker, a) in &acked {
        for (c, name) in CARRIERS.iter().enumerate() {
            let t = received.track(worker, c);
            if t.next < a.sent[c] {
                lost[c] += a.sent[c] - t.next;
                failures
                    .push(format!("worker {worker}: {name}: {} acknowledged, {} arrived in order", a.sent[c], t.next));
            }
            if t.gaps + t.repeats > 0 {
                lost[c] += t.gaps + t.repeats;
                failures.push(format!("worker {worker}: {name}: {} gaps, {} repeats", t.gaps, t.repeats));
            }
        }
    }
    let sums = sum_acked(&acked);
    if counter < sums.increments {
        failures.push(format!(
            "the mutex-guarded counter is {counter}, below the {} acknowledged increments",
            sums.increments
        ));
    }
    // Other programs may add files meanwhile (the machine is shared): only
    // what carries a switchboard name counts; the rest is reported.
    let new: Vec<String> = leftovers_snapshot().difference(&before).cloned().collect();
    let (left, others): (Vec<String>, Vec<String>) =
        new.into_iter().partition(|p| p.contains("switchboard") || p.contains("sb1") || p.contains(&names.prefix));
    // A connection whose worker was killed at the end is closed by its
    // server thread once it sees the hang-up: give those a moment.
    let released = Instant::now() + Duration::from_secs(5);
    let mut still_bound = bound_names(&names.prefix);
    while still_bound > 0 && Instant::now() < released {
        std::thread::sleep(Duration::from_millis(20));
        still_bound = bound_names(&names.prefix);
    }
    if !left.is_empty() {
        failures.push(format!("left behind: {left:?}"));
    }
    if still_bound > 0 {
        failures.push(format!("{still_bound} soak names still bound"));
    }
    // Flat: the end is within a quarter (plus 8 MiB of slack) of the first
    // sample after warm-up.
    let warm = rss_samples.first().map_or(end_rss, |s| s.1);
    let flat = end_rss <= warm + warm / 4 + 8192;
    if !flat {
        failures.push(format!("memory grew from {warm} KiB to {end_rss} KiB"));
    }

    out!("soak: {:.1} min, {kills} workers killed, {next_id} started", started.elapsed().as_secs_f64() / 60.0);
    for (c, name) in CARRIERS.iter().enumerate() {
        let verdict = match lost[c] {
            0 => "all arrived once and in order".to_owned(),
            n => format!("{n} lost, out of order or repeated"),
        };
        out!("  {name:<9} {:>9} acknowledged, {verdict}", sums.sent[c]);
    }
    out!(
        "  mutex     {:>9} increments acknowledged, counter {counter}; {} abandoned mutexes taken over",
        sums.increments,
        sums.abandoned
    );
    let samples: Vec<String> = rss_samples.iter().map(|(t, kib)| format!("{:.0}s {kib}", t.as_secs_f64())).collect();
    out!("  memory    this process: {} → {end_rss} KiB at the end (samples: {})", warm, samples.join(", "));
    out!("            surviving workers at the end: {worker_rss:?} KiB");
    out!("  left behind: {}", if left.is_empty() && still_bound == 0 { "nothing" } else { "see below" });
    if !others.is_empty() {
        out!("  (new meanwhile, not switchboard's: {others:?})");
    }
    if failures.is_empty() {
        out!("soak: passed");
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &failures {
            out!("FAILED: {f}");
        }
        Ok(ExitCode::from(1))
    }
}

fn sum_acked(all: &HashMap<u64, Acked>) -> Acked {
    let mut s = Acked::default();
    for a in all.values() {
        for c in 0..CARRIERS.len() {
            s.sent[c] += a.sent[c];
        }
        s.increments += a.increments;
        s.abandoned += a.abandoned;
    }
    s
}

fn all_arrived(acked: &HashMap<u64, Acked>, received: &Received) -> bool {
    acked.iter().all(|(&w, a)| (0..CARRIERS.len()).all(|c| received.track(w, c).next >= a.sent[c]))
}

/// What the workers have acknowledged so far.
fn snapshot(acked: &StdMutex<HashMap<u64, Acked>>) -> HashMap<u64, Acked> {
    acked.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// xorshift64*: the kill schedule repeats for a seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// 0.3 to 2 s between kills.
fn kill_interval(rng: &mut u64) -> Duration {
    Duration::from_millis(300 + next(rng) % 1700)
}

/// A process's resident memory in KiB (0 when it is gone).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Entries of /dev/shm, /tmp and $XDG_RUNTIME_DIR.
fn leftovers_snapshot() -> BTreeSet<String> {
    let runtime = std::env::var("XDG_RUNTIME_DIR").unwrap_or_default();
    ["/dev/shm", "/tmp", runtime.as_str()]
        .iter()
        .filter(|d| !d.is_empty())
        .flat_map(|d| {
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(move |e| format!("{d}/{}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// How many abstract socket names containing `prefix` are bound.
fn bound_names(prefix: &str) -> usize {
    std::fs::read_to_string("/proc/net/unix").unwrap_or_default().lines().filter(|l| l.contains(prefix)).count()
}

/// Starts worker `id`; a thread reads its reports into `acked`.
fn spawn_worker(names: &Names, id: u64, acked: &Arc<StdMutex<HashMap<u64, Acked>>>) -> anyhow::Result<Child> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["soak-peer", &names.prefix, &id.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting a soak worker")?;
    let out = child.stdout.take().context("worker stdout")?;
    let acked = Arc::clone(acked);
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            // "ack" and a count per carrier, then increments and
            // abandoned mutexes; a line cut by a kill does not parse and
            // is ignored.
            let f: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
            if line.starts_with("ack ") && f.len() == N + 2 {
                let sent = f[..N].try_into().expect("N counts");
                let mut all = acked.lock().unwrap_or_else(|p| p.into_inner());
                all.insert(id, Acked { sent, increments: f[INCREMENTS], abandoned: f[ABANDONED] });
            }
        }
    });
    Ok(child)
}

/// The servers of one run, each on its own threads.
struct Servers {
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Serves on threads of its own until this process ends.
    _rpc: switchboard::rpc::Server,
    _mutex: Mutex,
    counter: Mapping,
}

impl Servers {
    fn start(names: &Names, stop: &Arc<AtomicBool>, received: &Arc<Received>) -> anyhow::Result<Servers> {
        let mut threads = Vec::new();
        let slot = MailslotOptions::new()
            .max_message_size(16)
            .read_timeout(Duration::from_millis(100))
            .create(&names.of("slot"))?;
        let port = Port::builder().name(names.of("port").as_str()).concurrency(1).capacity(4096).create()?;
        let pipe_opts = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message).max_instances(4);
        let pipes: Vec<PipeServer> = (0..4).map(|_| pipe_opts.create(&names.of("pipe"))).collect::<Result<_, _>>()?;
        let links = ShmLinkListener::bind(&names.of("link"))?
            .with_options(ShmLinkOptions { capacity: 1 << 16, ..ShmLinkOptions::default() });
        let mutex = Mutex::create(names.of("mutex").as_str(), false)?;
        let counter = Mapping::create(names.of("counter").as_str(), 4096)?;

        let (s, r) = (Arc::clone(stop), Arc::clone(received));
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            while !s.load(Ordering::SeqCst) {
                if let Ok(16) = slot.read(&mut buf) {
                    let (w, seq) = decode(&buf);
                    r.arrived(w, 0, seq);
                }
            }
        }));
        let (s, r) = (Arc::clone(stop), Arc::clone(received));
        threads.push(std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if let Ok(p) = port.get(Duration::from_millis(100)) {
                    r.arrived(p.key, 1, p.overlapped);
                }
            }
        }));
        for pipe in pipes {
            let (s, r) = (Arc::clone(stop), Arc::clone(received));
            threads.push(std::thread::spawn(move || serve_pipe(&pipe, &s, &r)));
        }
        let (s, r) = (Arc::clone(stop), Arc::clone(received));
        threads.push(std::thread::spawn(move || {
            let mut readers = Vec::new();
            while !s.load(Ordering::SeqCst) {
                if let Ok(mut link) = links.accept(Duration::from_millis(100)) {
                    let (s, r) = (Arc::clone(&s), Arc::clone(&r));
                    readers.push(std::thread::spawn(move || {
                        let mut buf = Vec::new();
                        // Until the worker is gone and everything it sent
                        // was read (BrokenPipe), or the run ends.
                        loop {
                            match link.recv_timeout(&mut buf, Duration::from_millis(100)) {
                                Ok(()) if buf.len() == 16 => {
                                    let (w, seq) = decode(&buf);
                                    r.arrived(w, 3, seq);
                                }
                                Ok(()) => {}
                                Err(Error::Timeout) if !s.load(Ordering::SeqCst) => {}
                                Err(_) => return,
                            }
                        }
                    }));
                }
                readers.retain(|r| !r.is_finished());
            }
            readers.into_iter().for_each(|r| {
                let _ = r.join();
            });
        }));
        let (s, r, rx_name) = (Arc::clone(stop), Arc::clone(received), names.of("rx"));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        threads.push(std::thread::spawn(move || {
            let rec = Arc::clone(&r);
            let rx = switchboard::message::Receiver::create(&rx_name, move |_, m| {
                if m.msg == switchboard::message::WM_USER {
                    rec.arrived(m.wparam, 4, m.lparam as u64);
                }
                0
            });
            let _ = ready_tx.send(rx.as_ref().map(drop).map_err(|e| e.to_string()));
            let Ok(rx) = rx else { return };
            while !s.load(Ordering::SeqCst) {
                let _ = rx.serve_sent(Duration::from_millis(100));
                while let Ok(Some(_)) = rx.peek(true) {}
            }
        }));
        ready.recv().context("the receiver thread")?.map_err(anyhow::Error::msg)?;
        let (s, r, service) = (Arc::clone(stop), Arc::clone(received), names.of("dde"));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        threads.push(std::thread::spawn(move || {
            use switchboard::dde::{Dde, Event, Reply};
            let dde = Dde::new(move |_, e| match e {
                Event::Connect { .. } => Reply::Ack,
                Event::Poke { data, .. } if data.len() == 16 => {
                    let (w, seq) = decode(data);
                    r.arrived(w, 5, seq);
                    Reply::Ack
                }
                _ => Reply::NotProcessed,
            })
            .and_then(|dde| dde.register(&service).map(|()| dde));
            let _ = ready_tx.send(dde.as_ref().map(drop).map_err(|e| e.to_string()));
            let Ok(dde) = dde else { return };
            while !s.load(Ordering::SeqCst) {
                let _ = dde.pump(Duration::from_millis(100));
            }
        }));
        ready.recv().context("the DDE thread")?.map_err(anyhow::Error::msg)?;
        let rpc = switchboard::rpc::Server::builder().serve(SoakRecordServer(Recorder(Arc::clone(received)))).build();
        rpc.listen(&format!("local:{}", names.of("rpc")))?;
        Ok(Servers { threads, _rpc: rpc, _mutex: mutex, counter })
    }

    /// Joins the server threads (the caller raised `stop`) and reads the
    /// counter.
    fn finish(self) -> anyhow::Result<u64> {
        for t in self.threads {
            let _ = t.join();
        }
        let view = self.counter.map_view(Access::Read, 0, 8)?;
        Ok(u64::from_le_bytes(view.read_vec(0, 8)?.try_into().expect("8 bytes")))
    }
}

fn serve_pipe(pipe: &PipeServer, stop: &AtomicBool, received: &Received) {
    let mut buf = [0u8; 16];
    while !stop.load(Ordering::SeqCst) {
        if pipe.connect_timeout(Duration::from_millis(100)).is_err() {
            continue;
        }
        loop {
            match pipe.read(&mut buf) {
                Ok(16) => {
                    let (w, seq) = decode(&buf);
                    received.arrived(w, 2, seq);
                    if pipe.write(&seq.to_le_bytes()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
        let _ = pipe.disconnect();
    }
}

fn encode(worker: u64, seq: u64) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..8].copy_from_slice(&worker.to_le_bytes());
    m[8..].copy_from_slice(&seq.to_le_bytes());
    m
}

fn decode(m: &[u8]) -> (u64, u64) {
    let word = |r: std::ops::Range<usize>| u64::from_le_bytes(m[r].try_into().expect("8 bytes"));
    (word(0..8), word(8..16))
}

/// The worker: drives every mechanism at once until its stdin closes (or
/// it is killed), reporting what it acknowledged.
pub fn peer(args: &[String]) -> anyhow::Result<ExitCode> {
    let [prefix, id] = args else { bail!("soak-peer PREFIX ID") };
    let names = Names { prefix: prefix.clone() };
    let id: u64 = id.parse()?;
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<Counts> = Arc::new(Default::default());
    let mut threads = Vec::new();
    let drivers: [(&str, Driver); 8] = [
        ("mailslot", drive_mailslot),
        ("port", drive_port),
        ("pipe", drive_pipe),
        ("link", drive_link),
        ("message", drive_message),
        ("dde", drive_dde),
        ("rpc", drive_rpc),
        ("mutex", drive_mutex),
    ];
    for (what, drive) in drivers {
        let (names, stop, counts) = (Names { prefix: names.prefix.clone() }, Arc::clone(&stop), Arc::clone(&counts));
        threads.push(std::thread::spawn(move || {
            if let Err(e) = drive(&names, id, &stop, &counts) {
                note!("soak worker {id}: {what}: {e:#}");
            }
        }));
    }
    {
        let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
        threads.push(std::thread::spawn(move || {
            let report = || {
                let c: Vec<String> = counts.iter().map(|c| c.load(Ordering::SeqCst).to_string()).collect();
                out!("ack {}", c.join(" "));
            };
            while !stop.load(Ordering::SeqCst) {
                report();
                std::thread::sleep(REPORT_EVERY);
            }
        }));
    }
    // Until the coordinator closes stdin.
    let _ = std::io::stdin().read_line(&mut String::new());
    stop.store(true, Ordering::SeqCst);
    let n = threads.len();
    for t in threads.into_iter().take(n - 1) {
        let _ = t.join();
    }
    let c: Vec<String> = counts.iter().map(|c| c.load(Ordering::SeqCst).to_string()).collect();
    out!("ack {}", c.join(" "));
    let _ = std::io::stdout().flush();
    Ok(ExitCode::SUCCESS)
}

/// A worker's counts: messages per carrier, counter increments,
/// abandoned mutexes taken over.
type Counts = [AtomicU64; N + 2];

/// A worker's thread for one mechanism: (names, worker id, stop, counts).
type Driver = fn(&Names, u64, &AtomicBool, &Counts) -> anyhow::Result<()>;

/// Sends numbered messages with `send` until `stop`, counting each
/// success in `count` (a failed send is retried with the same number).
fn numbered(stop: &AtomicBool, count: &AtomicU64, mut send: impl FnMut(u64) -> switchboard::Result<()>) {
    let mut seq = 0;
    while !stop.load(Ordering::SeqCst) {
        if send(seq).is_ok() {
            seq += 1;
            count.store(seq, Ordering::SeqCst);
        }
    }
}

fn drive_mailslot(names: &Names, id: u64, stop: &AtomicBool, counts: &Counts) -> anyhow::Result<()> {
    let mut w = MailslotClient::open(&names.of("slot"))?;
    w.set_write_timeout(Duration::from_millis(100));
    numbered(stop, &counts[0], |seq| w.write(&encode(id, seq)));
    Ok(())
}

fn drive_port(names: &Names, id: u64, stop: &AtomicBool, counts: &Counts) -> anyhow::Result<()> {
    let port = Port::open(&names.of("port"))?;
    numbered(stop, &counts[1], |seq| {
        let r = port.post(seq as u32, id, seq);
        if r.is_err() {
            // Full: let the server catch up.
            std::thread::sleep(Duration::from_millis(1));
        }
        r
    });
    Ok(())
}

fn drive_pipe(names: &Names, id: u64, stop: &AtomicBool, counts: &Counts) -> anyhow::Result<()> {
    let name = names.of("pipe");
    let open = || loop {
        match PipeClient::open(&name) {
            Err(Error::PipeBusy) => {
                let _ = wait_named_pipe(&name, Some(Duration::from_secs(1)));
            }
            other => break other,
        }
    };
    let client = open()?;
    client.set_read_mode(ReadMode::Message)?;
    let mut reply = [0u8; 8];
    numbered(stop, &counts[2], |seq| {
        let n = client.transact(&encode(id, seq), &mut reply)?;
        if reply[..n] == seq.to_le_bytes() {
            Ok(())
        } else {
            Err(Error::Malformed(format!("reply {:?} to {seq}", &reply[..n])))
        }
    });
    Ok(())
}

fn drive_link(names: &Names, id: u64, stop: &AtomicBool, counts: &Counts) -> anyhow::Result<()> {
    let mut link = ShmLink::connect(&names.of("link"), ShmLinkOptions { capacity: 1 << 16, ..Default::default() })?;
    numbered(stop, &counts[3], |seq| link.send(&encode(id, seq)));
    Ok(())
}

/// Window messages: each a send whose procedure records it (acknowledged
/// when the send returns).
fn drive_message(names: &Names, id: u64, stop: &AtomicBool, counts: &Counts) -> anyhow::Result<()> {
    let to = switchboard::message::find_receiver(&names.of("rx"))?;
    numbered(stop, &counts[4], |seq| {
        to.send_timeout(switchboard::message::WM_USER, id, seq as i64, Duration::from_secs(5), false).map(drop)
    });
    Ok(())
}

/// DDE: each a synchronous poke the server records (acknowledged when the
/// poke returns).
fn drive_dde(names: &Names, id: u64, stop: &AtomicBool, counts: &Counts) -> anyhow::Result<()> {
    use switchboard::dde::{Dde, Reply};
    let dde = Dde::new(|_, _| Reply::NotProcessed)?;
    let conv = dde.connect(&names.of("dde"), "soak")?;
    numbered(stop, &counts[5], |seq| conv.poke("n", 1, &encode(id, seq), Duration::from_secs(5)));
    Ok(())
}

/// RPC: each a call the server records (acknowledged when its result
/// comes back).
fn drive_rpc(names: &Names, id: u64, stop: &AtomicBool, counts: &Counts) -> anyhow::Result<()> {
    let client = SoakRecordClient::connect(&format!("local:{}", names.of("rpc")))?;
    numbered(stop, &counts[6], |seq| client.record(id, seq));
    Ok(())
}

/// Takes the mutex, adds one to the counter it guards, releases; counts
/// the increments (acknowledged at the release) and the abandoned mutexes
/// taken over (a worker killed holding it).
fn drive_mutex(names: &Names, _id: u64, stop: &AtomicBool, counts: &Counts) -> anyhow::Result<()> {
    let mutex = Mutex::open(&names.of("mutex"))?;
    let counter = Mapping::open(&names.of("counter"), Access::Write)?.map_view(Access::Write, 0, 8)?;
    while !stop.load(Ordering::SeqCst) {
        let status = mutex.wait_timeout(Duration::from_millis(100));
        if status == WaitStatus::TimedOut {
            continue;
        }
        if status == WaitStatus::Abandoned {
            counts[ABANDONED].fetch_add(1, Ordering::SeqCst);
        }
        let now = u64::from_le_bytes(counter.read_vec(0, 8)?.try_into().expect("8 bytes"));
        counter.write(0, &(now + 1).to_le_bytes())?;
        mutex.release()?;
        counts[INCREMENTS].fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}
