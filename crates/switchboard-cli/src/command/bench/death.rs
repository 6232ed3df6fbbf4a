//! `peer_death`: how soon a reader blocked on a shared-memory link hears
//! that its peer was killed (`kill -9`), measured from the `kill` to the
//! reader's `BrokenPipe`. The reader sleeps on its ring word and the peer's
//! life-token word at once; the kernel marks the token and wakes it while
//! it tears the dead process down. Floor: `futex` (a wake-up round trip).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use switchboard::link::{Link, ShmLink, ShmLinkListener, ShmLinkOptions, WaitMode};
use switchboard::Error;

use super::echo::PATIENCE;
use super::setup::{spawn, unique};
use super::{Placement, Stat};

/// The scenario's name, as `--only` takes it.
pub const NAME: &str = "peer_death";

/// One sample per peer: `warm + n` peers started and killed.
pub fn measure(quick: bool, placement: Placement) -> anyhow::Result<Stat> {
    let (warm, n) = if quick { (3, 30) } else { (5, 150) };
    let mut samples = Vec::with_capacity(n);
    for i in 0..warm + n {
        let took = one(placement)?;
        if i >= warm {
            samples.push(took);
        }
    }
    Ok(Stat::from_samples(NAME, 8, samples))
}

fn blocking() -> ShmLinkOptions {
    ShmLinkOptions { wait: WaitMode::Blocking, ..ShmLinkOptions::default() }
}

/// Starts a peer, blocks reading from it, kills it; the time from the kill
/// to the reader's error.
fn one(placement: Placement) -> anyhow::Result<Duration> {
    let name = unique("death");
    let listener = ShmLinkListener::bind(&name)?.with_options(blocking());
    let child = spawn(NAME, 8, 1, placement, &[&name], false)?;
    let mut link = listener.accept(Some(PATIENCE))?;
    let mut buf = Vec::new();
    link.recv_timeout(&mut buf, PATIENCE).context("the peer's first message")?;
    let killed_at = Arc::new(Mutex::new(None));
    let killer = {
        let killed_at = killed_at.clone();
        let mut child = child;
        std::thread::spawn(move || -> std::io::Result<()> {
            // Kill only once this process's main thread sleeps in recv (if
            // /proc cannot tell, after a second: the sample is then an
            // upper bound).
            let give_up = Instant::now() + Duration::from_secs(1);
            while !main_thread_sleeps() && Instant::now() < give_up {
                std::thread::yield_now();
            }
            *killed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            child.kill()?; // SIGKILL
            child.wait().map(drop)
        })
    };
    let got = link.recv_timeout(&mut buf, PATIENCE);
    let heard = Instant::now();
    killer.join().map_err(|_| anyhow::anyhow!("the killer thread panicked"))??;
    anyhow::ensure!(matches!(got, Err(Error::BrokenPipe)), "peer_death: the reader got {got:?}, not BrokenPipe");
    let killed = killed_at.lock().unwrap_or_else(|p| p.into_inner()).context("no kill time")?;
    Ok(heard.saturating_duration_since(killed))
}

/// Whether this process's main thread is blocked in its receive.
fn main_thread_sleeps() -> bool {
    let me = std::process::id();
    switchboard::raw::blocked_in_futex(me, me)
}

/// The peer: connect, say one message, then block until killed.
pub fn child(args: &[String]) -> anyhow::Result<std::process::ExitCode> {
    let name = args.first().context("peer_death: missing link name")?;
    let mut link = ShmLink::connect(name, blocking())?;
    link.send(b"up")?;
    let mut buf = Vec::new();
    let _ = link.recv(&mut buf);
    anyhow::bail!("peer_death: the parent was to kill this peer")
}
