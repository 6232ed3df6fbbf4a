//! `switchboard bench --fan-in N,…`: N writer processes into one reader.
//!
//! For each N, every mechanism that gathers many writers — a mailslot, a
//! completion port, one named pipe server with N instances — and the
//! floor (`spin`: each writer owns a one-message cache-line mailbox the
//! reader polls round-robin) runs for a fixed window. Writers send 64 B
//! messages as fast as the mechanism admits (blocking while it is full),
//! each stamped with the monotonic clock when it was sent (one clock for
//! every process of the machine); the reader counts them per writer and
//! measures each one's age on arrival. Reported per row: messages per
//! second, the p50 and p99 age, each against the floor at the same N, and
//! the fewest and most messages any writer got through (fairness: no
//! writer starved).
//!
//! Writers start together: each opens its end, releases a named
//! semaphore, and waits for a named event the reader sets once all N
//! have. At the end of the window the reader kills them (`kill -9`: our
//! mechanisms leave nothing behind, which the test suite checks).

use std::process::{Child, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::json;
use switchboard::mailslot::{Mailslot, MailslotClient, MailslotOptions};
use switchboard::mapping::{Access, Mapping, View};
use switchboard::pipe::named::{PipeClient, PipeOptions, PipeServer, PipeType, ReadMode};
use switchboard::port::Port;
use switchboard::sync::{self, Event, Semaphore, WaitMany, WaitStatus};

use super::echo::PATIENCE;
use super::setup::unique;
use super::Placement;

/// Bytes per message.
const MESSAGE: usize = 64;
/// The mechanisms, floor first.
const KINDS: [&str; 4] = ["spin", "mailslot", "port", "pipe"];
/// The bench-peer role prefix of a writer.
pub(crate) const ROLE: &str = "fan_in_";

/// Now on the machine's monotonic clock, in nanoseconds (comparable
/// across processes, unlike `Instant`).
fn now_ns() -> u64 {
    switchboard::raw::monotonic_ns()
}

/// What one writer sends: its index and the time of sending.
fn message(writer: u32, stamp: u64) -> [u8; MESSAGE] {
    let mut m = [0u8; MESSAGE];
    m[..4].copy_from_slice(&writer.to_le_bytes());
    m[8..16].copy_from_slice(&stamp.to_le_bytes());
    m
}

fn parse(m: &[u8]) -> anyhow::Result<(usize, u64)> {
    anyhow::ensure!(m.len() >= 16, "a {} B message", m.len());
    let w = u32::from_le_bytes(m[..4].try_into()?) as usize;
    Ok((w, u64::from_le_bytes(m[8..16].try_into()?)))
}

/// One row of the report.
struct Row {
    kind: &'static str,
    writers: usize,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    counts: Vec<u64>,
}

/// The spin floor's mailbox of writer `w`: `[seq, ack, stamp]`, one cache line each writer.
fn slot(w: usize) -> usize {
    w * 64
}

/// The reader's side of one mechanism.
enum Reader {
    Spin(View, Vec<u64>),
    Mailslot(Mailslot),
    Port(Port),
    Pipe(Vec<PipeServer>, usize),
}

impl Reader {
    fn create(kind: &str, name: &str, writers: usize) -> anyhow::Result<Reader> {
        Ok(match kind {
            "spin" => {
                let m = Mapping::create(name, (writers * 64) as u64)?;
                Reader::Spin(m.map_view(Access::Write, 0, 0)?, vec![0; writers])
            }
            "mailslot" => {
                Reader::Mailslot(MailslotOptions::new().max_message_size(MESSAGE).read_timeout(PATIENCE).create(name)?)
            }
            "port" => Reader::Port(Port::create(name, 1)?),
            "pipe" => {
                let opts = PipeOptions::new()
                    .pipe_type(PipeType::Message)
                    .read_mode(ReadMode::Message)
                    .max_instances(writers as u32);
                let servers = (0..writers).map(|_| opts.create(name)).collect::<Result<Vec<_>, _>>()?;
                Reader::Pipe(servers, 0)
            }
            other => anyhow::bail!("unknown fan-in kind {other}"),
        })
    }

    /// Once every writer is in: a pipe's instances take their clients.
    fn started(&self) -> anyhow::Result<()> {
        if let Reader::Pipe(servers, _) = self {
            for s in servers {
                s.connect_timeout(Some(PATIENCE))?;
            }
        }
        Ok(())
    }

    /// The next message: (writer, its stamp).
    fn next(&mut self, buf: &mut [u8]) -> anyhow::Result<(usize, u64)> {
        match self {
            Reader::Spin(view, acked) => {
                let start = Instant::now();
                loop {
                    for (w, ack) in acked.iter_mut().enumerate() {
                        let seq = view.atomic_u64(slot(w))?.load(Ordering::Acquire);
                        if seq != *ack {
                            let stamp = view.atomic_u64(slot(w) + 16)?.load(Ordering::Relaxed);
                            *ack = seq;
                            view.atomic_u64(slot(w) + 8)?.store(seq, Ordering::Release);
                            return Ok((w, stamp));
                        }
                    }
                    anyhow::ensure!(start.elapsed() < PATIENCE, "the writers stopped");
                    std::hint::spin_loop();
                }
            }
            Reader::Mailslot(slot) => {
                let n = slot.read(buf)?;
                parse(&buf[..n])
            }
            Reader::Port(port) => {
                let p = port.get(PATIENCE)?;
                Ok((p.bytes as usize, p.key))
            }
            Reader::Pipe(servers, next) => {
                // The classic one-thread server: wait on every instance,
                // starting after the last one served, so that the lowest
                // index cannot starve the others.
                let order: Vec<usize> = (0..servers.len()).map(|i| (*next + i) % servers.len()).collect();
                let objs: Vec<&dyn sync::Waitable> =
                    order.iter().map(|i| &servers[*i] as &dyn sync::Waitable).collect();
                let i = match sync::wait_any(&objs, PATIENCE)? {
                    WaitMany::Signaled(i) | WaitMany::Abandoned(i) => order[i],
                    WaitMany::TimedOut => anyhow::bail!("the writers stopped"),
                };
                *next = i + 1;
                let n = servers[i].read(buf)?;
                parse(&buf[..n])
            }
        }
    }
}

/// One measurement: `writers` processes into `kind` for `window`.
fn measure(kind: &'static str, writers: usize, window: Duration, placement: Placement) -> anyhow::Result<Row> {
    let name = unique(&format!("fan-{kind}"));
    let (ready, go) = (format!("{name}-ready"), format!("{name}-go"));
    let ready_sem = Semaphore::create(ready.as_str(), 0, writers as u32)?;
    let go_event = Event::create(go.as_str(), true, false)?;
    let mut reader = Reader::create(kind, &name, writers)?;
    let mut children: Vec<Child> = Vec::new();
    let result = (|| {
        for w in 0..writers {
            let args = [name.as_str(), &ready, &go, &w.to_string()];
            children.push(super::setup::spawn(&format!("{ROLE}{kind}"), MESSAGE, 0, placement, &args, false)?);
        }
        for _ in 0..writers {
            anyhow::ensure!(ready_sem.wait_timeout(PATIENCE) == WaitStatus::Acquired, "a writer never started");
        }
        go_event.set();
        reader.started()?;
        let mut buf = vec![0u8; MESSAGE];
        let mut counts = vec![0u64; writers];
        let mut ages = Vec::with_capacity(1 << 20);
        let start = Instant::now();
        while start.elapsed() < window {
            let (w, stamp) = reader.next(&mut buf)?;
            *counts.get_mut(w).context("a message from no writer")? += 1;
            ages.push(Duration::from_nanos(now_ns().saturating_sub(stamp)));
        }
        let elapsed = start.elapsed();
        let total: u64 = counts.iter().sum();
        let (p50, p99) = super::super::percentiles(ages);
        Ok(Row { kind, writers, per_sec: total as f64 / elapsed.as_secs_f64(), p50, p99, counts })
    })();
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    result
}

/// A writer: `switchboard bench-peer fan_in_KIND 64 0 PLACEMENT NAME READY GO INDEX`.
pub(crate) fn writer(role: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    let [name, ready, go, index] = args else { anyhow::bail!("fan-in writer: NAME READY GO INDEX") };
    let w: u32 = index.parse()?;
    let kind = role.strip_prefix(ROLE).context("not a fan-in role")?;
    let mut send: Box<dyn FnMut(u64) -> anyhow::Result<()>> = match kind {
        "spin" => {
            let view = Mapping::open(name, Access::Write)?.map_view(Access::Write, 0, 0)?;
            let at = slot(w as usize);
            let mut seq = 0u64;
            Box::new(move |stamp| {
                let ack = view.atomic_u64(at + 8)?;
                while ack.load(Ordering::Acquire) != seq {
                    std::hint::spin_loop();
                }
                view.atomic_u64(at + 16)?.store(stamp, Ordering::Relaxed);
                seq += 1;
                view.atomic_u64(at)?.store(seq, Ordering::Release);
                Ok(())
            })
        }
        "mailslot" => {
            let mut client = MailslotClient::open(name)?;
            client.set_write_timeout(switchboard::mailslot::WAIT_FOREVER);
            Box::new(move |stamp| Ok(client.write(&message(w, stamp))?))
        }
        "port" => {
            let port = Port::open(name)?;
            let seq = AtomicU64::new(0);
            Box::new(move |stamp| Ok(port.post(w, stamp, seq.fetch_add(1, Ordering::Relaxed))?))
        }
        "pipe" => {
            let client = PipeClient::open(name)?;
            Box::new(move |stamp| Ok(client.write(&message(w, stamp))?))
        }
        other => anyhow::bail!("unknown fan-in kind {other}"),
    };
    Semaphore::open(ready)?.release(1)?;
    anyhow::ensure!(Event::open(go)?.wait_timeout(PATIENCE) == WaitStatus::Acquired, "never told to go");
    loop {
        send(now_ns())?;
    }
}

/// Runs every kind at every N and prints the report.
pub(crate) fn run(counts: &[usize], quick: bool, json_out: bool, same_core: bool) -> anyhow::Result<ExitCode> {
    let placement = Placement::choose(same_core);
    let window = if quick { Duration::from_millis(500) } else { Duration::from_secs(2) };
    let mut rows = Vec::new();
    for &n in counts {
        anyhow::ensure!((1..=64).contains(&n), "--fan-in takes 1 to 64 writers, not {n}");
        for kind in KINDS {
            note!("fan-in: {kind}, {n} writer(s)");
            rows.push(measure(kind, n, window, placement)?);
        }
    }
    let floor = |r: &Row| rows.iter().find(|f| f.kind == "spin" && f.writers == r.writers);
    if json_out {
        let ns = |d: Duration| d.as_nanos() as u64;
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                let f = floor(r);
                json!({"kind": r.kind, "writers": r.writers, "messages_per_sec": r.per_sec,
                    "age_p50_ns": ns(r.p50), "age_p99_ns": ns(r.p99), "per_writer": r.counts,
                    "throughput_vs_spin": f.map(|f| r.per_sec / f.per_sec),
                    "p99_vs_spin": f.map(|f| r.p99.as_secs_f64() / f.p99.as_secs_f64().max(1e-9))})
            })
            .collect();
        out!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"placement": placement.arg(), "message_bytes": MESSAGE, "fan_in": out})
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "mechanism",
        "writers",
        "msgs/s",
        "÷ spin",
        "age p50",
        "age p99",
        "p99 ÷ spin",
        "per writer min–max",
    ]);
    let us = |d: Duration| format!("{:.1} µs", d.as_nanos() as f64 / 1000.0);
    for r in &rows {
        let f = floor(r);
        let (min, max) = (r.counts.iter().min().copied().unwrap_or(0), r.counts.iter().max().copied().unwrap_or(0));
        t.add_row([
            r.kind.to_string(),
            r.writers.to_string(),
            format!("{:.0}", r.per_sec),
            f.map_or(String::new(), |f| format!("{:.2}", r.per_sec / f.per_sec)),
            us(r.p50),
            us(r.p99),
            f.map_or(String::new(), |f| format!("{:.2}", r.p99.as_secs_f64() / f.p99.as_secs_f64().max(1e-9))),
            format!("{min}–{max}"),
        ]);
    }
    out!("{t}");
    out!("{} B messages; age = time from send to receive. Floor: spin, a one-message mailbox per writer.", MESSAGE);
    Ok(ExitCode::SUCCESS)
}
