//! `switchboard bench`: every path against its physical floor, in one run.
//!
//! Each measurement is a ping-pong between this process (pinned to CPU 0)
//! and a child (`switchboard bench-peer …`, pinned to CPU 1 when there are
//! two or more): round-trip time per message, p50 and p99, plus throughput
//! for payloads of 64 KiB and more. Floors: `spin` (one shared cache line),
//! `futex`, `pipe`, `unix_stream`, `tcp`, `memcpy` (single core). Paths:
//! `shm_link_busy`, `shm_link_adaptive`, `shm_link_blocking`, `stream_unix`,
//! `stream_tcp`, `port`, `pipe_message_transact`, `mailslot` (write → read
//! one way, a round trip through two mailslots), `shm_loan` (zero-copy
//! samples, untouched, at 64 B, 1 MiB and 16 MiB: against the spin floor,
//! which copies), and `peer_death` (not a
//! ping-pong: a blocked reader's time from its peer's `kill -9` to its
//! error, see the `death` module). Each path reports its ratio to its floor measured
//! in the same run — absolute times drift on a shared VM, ratios much less.

pub(crate) mod death;
mod echo;
mod fan_in;
mod plot;
pub(crate) mod setup;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

const PAYLOADS: [usize; 5] = [8, 64, 4096, 64 * 1024, 1 << 20];
/// Every payload, for paths that take any size.
pub(crate) const ALL_PAYLOADS: &[usize] = &PAYLOADS;
/// Zero-copy samples: small, large, and larger than any ring.
pub(crate) const LOAN_PAYLOADS: &[usize] = &[64, 1 << 20, 16 << 20];
/// The spin floor runs the loans' largest payload too.
const SPIN_PAYLOADS: &[usize] = &[8, 64, 4096, 64 * 1024, 1 << 20, 16 << 20];
/// A small and a large message (data copies).
pub(crate) const COPY_PAYLOADS: &[usize] = &[64, 1 << 20];
/// The smallest payload only (ports carry fixed packets; peer death moves none).
pub(crate) const SMALLEST_PAYLOAD: &[usize] = &[8];
/// DDE items: a 64-byte value.
pub(crate) const DDE_PAYLOADS: &[usize] = &[64];

/// How a path is measured.
#[derive(Clone, Copy)]
pub(crate) enum Setup {
    /// A ping-pong between the parent's side and the child's.
    Echo(setup::ParentSide, setup::ChildSide),
    /// Measured its own way; the second is the child's side.
    Measured(fn(bool, Placement) -> anyhow::Result<Stat>, fn(&[String]) -> anyhow::Result<ExitCode>),
}

/// A measured path or floor: its name, its floor (`""` for a floor
/// itself), how it is set up, and the payloads it runs.
pub(crate) struct BenchPath {
    pub name: &'static str,
    pub floor: &'static str,
    pub setup: Setup,
    pub payloads: &'static [usize],
}

/// The physical floors (memcpy aside, which needs no peer).
const FLOORS: [BenchPath; 5] = [
    BenchPath {
        name: "spin",
        floor: "",
        setup: Setup::Echo(setup::cache_line_parent, setup::cache_line_child),
        payloads: SPIN_PAYLOADS,
    },
    BenchPath {
        name: "futex",
        floor: "",
        setup: Setup::Echo(setup::cache_line_parent, setup::cache_line_child),
        payloads: ALL_PAYLOADS,
    },
    BenchPath {
        name: "pipe",
        floor: "",
        setup: Setup::Echo(setup::os_pipe_parent, setup::os_pipe_child),
        payloads: ALL_PAYLOADS,
    },
    BenchPath {
        name: "unix_stream",
        floor: "",
        setup: Setup::Echo(setup::unix_stream_parent, setup::unix_stream_child),
        payloads: ALL_PAYLOADS,
    },
    BenchPath {
        name: "tcp",
        floor: "",
        setup: Setup::Echo(setup::tcp_parent, setup::tcp_child),
        payloads: ALL_PAYLOADS,
    },
];

/// Every (path, its floor), from the scenario table.
fn paths() -> impl Iterator<Item = (&'static str, &'static str)> {
    super::scenario::bench_paths().map(|p| (p.name, p.floor))
}

/// The floor or path called `name`.
fn find(name: &str) -> anyhow::Result<&'static BenchPath> {
    FLOORS
        .iter()
        .chain(super::scenario::bench_paths())
        .find(|p| p.name == name)
        .with_context(|| format!("unknown benchmark {name}"))
}

/// Where the two processes of a measurement run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Wherever the scheduler puts them (one CPU, or pinning refused).
    Free,
    /// This process on CPU 0, the peer on CPU 1.
    Apart,
    /// Both on CPU 0 (`--same-core`): a spinning waiter then keeps its
    /// peer from running for the rest of its quantum.
    SameCore,
}

impl Placement {
    /// Pins this process and says where the peer goes.
    fn choose(same_core: bool) -> Placement {
        let pinned = switchboard::raw::pin_to_cpu(0).is_ok();
        match (same_core, pinned, switchboard::raw::cpu_count() >= 2) {
            (true, true, _) => Placement::SameCore,
            (false, true, true) => Placement::Apart,
            _ => Placement::Free,
        }
    }

    /// How the peer is told (its command line).
    pub(crate) fn arg(self) -> &'static str {
        match self {
            Placement::Free => "free",
            Placement::Apart => "apart",
            Placement::SameCore => "same-core",
        }
    }

    /// The peer's side: pins itself as `arg` says.
    fn apply(arg: &str) -> anyhow::Result<()> {
        match arg {
            "apart" => switchboard::raw::pin_to_cpu(1)?,
            "same-core" => switchboard::raw::pin_to_cpu(0)?,
            _ => {}
        }
        Ok(())
    }
}

/// One measured series.
#[derive(Clone, Debug)]
pub(crate) struct Stat {
    name: &'static str,
    payload: usize,
    p50: Duration,
    p99: Duration,
}

impl Stat {
    fn from_samples(name: &'static str, payload: usize, samples: Vec<Duration>) -> Stat {
        let (p50, p99) = super::percentiles(samples);
        Stat { name, payload, p50, p99 }
    }

    /// Bytes moved per second in both directions, as Gbit/s.
    fn gbps(&self) -> f64 {
        (2 * self.payload * 8) as f64 / self.p50.as_nanos().max(1) as f64
    }
}

fn rounds(payload: usize, quick: bool) -> (u32, u32) {
    let (warm, n) = match payload {
        p if p >= 1 << 20 => (5, 40),
        p if p >= 64 * 1024 => (30, 300),
        _ => (300, 3000),
    };
    if quick {
        (warm, n)
    } else {
        (warm * 2, n * 5)
    }
}

/// Which payloads a floor or path runs.
fn payloads_of(name: &str) -> &'static [usize] {
    find(name).map_or(ALL_PAYLOADS, |p| p.payloads)
}

/// The floors and paths to measure: all, or the chosen paths and their floors.
fn chosen(only: &[String]) -> anyhow::Result<Vec<&'static str>> {
    if only.is_empty() {
        return Ok(FLOORS.iter().map(|f| f.name).chain(paths().map(|p| p.0)).collect());
    }
    let mut wanted = Vec::new();
    for want in only {
        let Some((path, floor)) = paths().find(|p| p.0 == want) else {
            let known: Vec<&str> = paths().map(|p| p.0).collect();
            anyhow::bail!("unknown path {want:?}; paths: {}", known.join(", "));
        };
        wanted.push((path, floor));
    }
    let mut names: Vec<&'static str> =
        FLOORS.iter().map(|f| f.name).filter(|f| wanted.iter().any(|p| p.1 == *f)).collect();
    names.extend(wanted.iter().map(|p| p.0));
    Ok(names)
}

pub fn run(
    quick: bool,
    json_out: bool,
    plot: Option<std::path::PathBuf>,
    only: &[String],
    same_core: bool,
    fan_in: &[usize],
) -> anyhow::Result<ExitCode> {
    if !fan_in.is_empty() {
        return fan_in::run(fan_in, quick, json_out, same_core);
    }
    let names = chosen(only)?;
    let cpus = switchboard::raw::cpu_count();
    let placement = Placement::choose(same_core);
    let total: u64 = names.iter().map(|n| payloads_of(n).len() as u64).sum::<u64>() + PAYLOADS.len() as u64;
    let bar = ProgressBar::new(total).with_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")?);
    let mut floors = Vec::new();
    for &payload in &PAYLOADS {
        bar.set_message(format!("memcpy {payload} B"));
        floors.push(memcpy(payload, quick));
        bar.inc(1);
    }
    let mut measured = Vec::new();
    'paths: for name in names {
        for (i, &payload) in payloads_of(name).iter().enumerate() {
            bar.set_message(format!("{name} {payload} B"));
            let stat = match find(name)?.setup {
                Setup::Echo(parent, _) => match ping_pong(name, parent, payload, quick, placement) {
                    Err(e) if skippable(&e) => {
                        bar.suspend(|| note!("{name} skipped: {e}"));
                        bar.inc((payloads_of(name).len() - i) as u64);
                        continue 'paths;
                    }
                    other => other?,
                },
                Setup::Measured(measure, _) => measure(quick, placement)?,
            };
            measured.push(stat);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let (paths, floor_stats): (Vec<Stat>, Vec<Stat>) =
        measured.into_iter().partition(|s| paths().any(|p| p.0 == s.name));
    floors.extend(floor_stats);
    let report = Report { cpus, placement, floors, paths };
    if json_out {
        out!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        out!("{}", report.table());
        match placement {
            Placement::SameCore => out!("Both processes ran on CPU 0 (--same-core)."),
            Placement::Apart => out!("The two processes ran on CPUs 0 and 1."),
            Placement::Free => out!("The processes ran where the scheduler put them (not pinned)."),
        }
    }
    if let Some(path) = plot {
        report.plot(&path)?;
        note!("plot written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a path could not run for a reason of this machine's, not a
/// fault: this user's own gateway runs (`remote_pipe_transact` starts one).
fn skippable(e: &anyhow::Error) -> bool {
    #[cfg(feature = "gateway")]
    if e.downcast_ref::<crate::command::gateway::AlreadyRunning>().is_some() {
        return true;
    }
    let _ = e;
    false
}

/// The p50 round trip of floor or path `name` (or `memcpy`), quick, at the
/// payload it runs that is nearest to `size` (for `switchboard advise`):
/// (p50, that payload).
///
/// # Errors
/// An unknown name, or the bench's own errors.
pub(crate) fn measure(name: &str, size: usize) -> anyhow::Result<(Duration, usize)> {
    let nearest = |runs: &[usize]| runs.iter().copied().min_by_key(|p| p.abs_diff(size)).context("no payloads");
    if name == "memcpy" {
        let payload = nearest(ALL_PAYLOADS)?;
        return Ok((memcpy(payload, true).p50, payload));
    }
    let path = find(name)?;
    let payload = nearest(path.payloads)?;
    let Setup::Echo(parent, _) = path.setup else { anyhow::bail!("{name} is not measured as a round trip") };
    Ok((ping_pong(path.name, parent, payload, true, Placement::choose(false))?.p50, payload))
}

fn memcpy(payload: usize, quick: bool) -> Stat {
    let (warm, n) = rounds(payload, quick);
    let src = vec![0x5au8; payload];
    let mut dst = vec![0u8; payload];
    let mut back = vec![0u8; payload];
    let mut samples = Vec::with_capacity(n as usize);
    for i in 0..warm + n {
        let t = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        back.copy_from_slice(std::hint::black_box(&dst));
        if i >= warm {
            samples.push(t.elapsed());
        }
    }
    std::hint::black_box(&back);
    Stat::from_samples("memcpy", payload, samples)
}

fn ping_pong(
    name: &'static str,
    parent: setup::ParentSide,
    payload: usize,
    quick: bool,
    placement: Placement,
) -> anyhow::Result<Stat> {
    let (warm, n) = rounds(payload, quick);
    let (mut echo, mut child) = parent(&setup::Run { name, payload, rounds: warm + n, placement })?;
    let msg = vec![0xa5u8; payload];
    let mut buf = Vec::with_capacity(payload);
    let mut samples = Vec::with_capacity(n as usize);
    for i in 0..warm + n {
        let t = Instant::now();
        echo.send(&msg)?;
        echo.recv(&mut buf, payload)?;
        if i >= warm {
            samples.push(t.elapsed());
        }
    }
    anyhow::ensure!(!echo.carries_content() || buf == msg, "{name}: the echo differs from what was sent");
    drop(echo);
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "{name} {payload} B: the peer failed ({status})");
    Ok(Stat::from_samples(name, payload, samples))
}

/// The child side: `switchboard bench-peer NAME PAYLOAD ROUNDS PINNED ARG…`.
pub fn peer(args: &[String]) -> anyhow::Result<ExitCode> {
    let [name, payload, rounds, placement, rest @ ..] = args else { anyhow::bail!("bench-peer: missing arguments") };
    Placement::apply(placement)?;
    if name.starts_with(fan_in::ROLE) {
        return fan_in::writer(name, rest);
    }
    let child = match find(name)?.setup {
        Setup::Measured(_, child) => return child(rest),
        Setup::Echo(_, child) => child,
    };
    let payload: usize = payload.parse()?;
    let mut echo = child(name, payload, rest)?;
    let mut buf = Vec::with_capacity(payload);
    for _ in 0..rounds.parse::<u32>()? {
        echo.recv(&mut buf, payload)?;
        echo.send(&buf)?;
    }
    Ok(ExitCode::SUCCESS)
}

struct Report {
    cpus: usize,
    placement: Placement,
    floors: Vec<Stat>,
    paths: Vec<Stat>,
}

impl Report {
    fn floor_of(&self, path: &str, payload: usize) -> Option<&Stat> {
        let floor = paths().find(|p| p.0 == path)?.1;
        self.floors.iter().find(|f| f.name == floor && f.payload == payload)
    }

    fn ratio(&self, s: &Stat) -> Option<f64> {
        self.floor_of(s.name, s.payload).map(|f| s.p50.as_nanos() as f64 / f.p50.as_nanos().max(1) as f64)
    }

    fn json(&self) -> serde_json::Value {
        let ns = |d: Duration| d.as_nanos() as u64;
        let floors: Vec<_> = self
            .floors
            .iter()
            .map(|f| {
                let mut v =
                    json!({"name": f.name, "payload": f.payload, "rtt_p50_ns": ns(f.p50), "rtt_p99_ns": ns(f.p99)});
                if f.payload >= 64 * 1024 {
                    v["throughput_gbps"] = json!(f.gbps());
                }
                v
            })
            .collect();
        let paths: Vec<_> = self
            .paths
            .iter()
            .map(|p| {
                let floor = paths().find(|x| x.0 == p.name).map(|x| x.1);
                let mut v = json!({"name": p.name, "payload": p.payload, "rtt_p50_ns": ns(p.p50),
                    "rtt_p99_ns": ns(p.p99), "floor": floor, "ratio": self.ratio(p)});
                if p.payload >= 64 * 1024 {
                    v["throughput_gbps"] = json!(p.gbps());
                }
                v
            })
            .collect();
        json!({"machine": self.machine(), "floors": floors, "paths": paths})
    }

    fn machine(&self) -> serde_json::Value {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model =
            cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']));
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        json!({"cpus": self.cpus, "pinned": self.placement != Placement::Free, "placement": self.placement.arg(),
               "cpu_model": model, "kernel": kernel.trim()})
    }

    fn table(&self) -> Table {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_header(["", "name", "payload", "p50", "p99", "floor", "× floor", "Gbit/s"]);
        let us = |d: Duration| format!("{:.2} µs", d.as_nanos() as f64 / 1000.0);
        for (kind, stats) in [("floor", &self.floors), ("path", &self.paths)] {
            for s in stats {
                let floor = paths().find(|p| p.0 == s.name).map_or("", |p| p.1);
                let ratio = self.ratio(s).map_or(String::new(), |r| format!("{r:.2}"));
                let gbps = if s.payload >= 64 * 1024 { format!("{:.1}", s.gbps()) } else { String::new() };
                t.add_row([
                    kind.into(),
                    s.name.into(),
                    s.payload.to_string(),
                    us(s.p50),
                    us(s.p99),
                    floor.into(),
                    ratio,
                    gbps,
                ]);
            }
        }
        t
    }

    fn plot(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let series: Vec<plot::Series> = paths()
            .map(|(name, _)| plot::Series {
                name,
                points: self
                    .paths
                    .iter()
                    .filter(|p| p.name == name)
                    .filter_map(|p| Some((p.payload as f64, self.ratio(p)?)))
                    .collect(),
            })
            .collect();
        let payloads: Vec<f64> = SPIN_PAYLOADS.iter().map(|p| *p as f64).collect();
        plot::draw(path, &payloads, &series)
    }
}
