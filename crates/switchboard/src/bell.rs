//! Awaiting a doorbell under tokio (feature `tokio`): the one loop every
//! async adapter runs — take what is there, else arm the bell and sleep in
//! the reactor until it rings, then look again.

use std::io;
use std::os::fd::OwnedFd;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;

/// Something read through a doorbell.
pub(crate) trait Doorbelled {
    /// What a successful attempt gives.
    type Output;
    /// Takes what is there; `None` when a read would have to wait.
    fn attempt(&mut self) -> Option<Self::Output>;
    /// Arms the doorbell; `true` when there is no need to sleep.
    fn arm(&mut self) -> bool;
}

/// Polls `source` through its doorbell `bell` (registered with tokio), for
/// one task at a time (`poll_read_ready` keeps a single waker).
pub(crate) fn poll_rung<D: Doorbelled>(
    bell: &AsyncFd<OwnedFd>,
    cx: &mut Context<'_>,
    source: &mut D,
) -> Poll<io::Result<D::Output>> {
    loop {
        if let Some(out) = source.attempt() {
            return Poll::Ready(Ok(out));
        }
        if source.arm() {
            continue;
        }
        let mut rung = ready!(bell.poll_read_ready(cx))?;
        rung.clear_ready();
    }
}

/// Awaits `source` through its doorbell `bell`. Unlike [`poll_rung`]
/// (one waker slot: for a single task, as `AsyncRead` is), several tasks
/// may await one bell at once: each is woken when it rings.
pub(crate) async fn until_rung<D: Doorbelled>(bell: &AsyncFd<OwnedFd>, source: &mut D) -> io::Result<D::Output> {
    loop {
        if let Some(out) = source.attempt() {
            return Ok(out);
        }
        if source.arm() {
            continue;
        }
        let mut rung = bell.readable().await?;
        rung.clear_ready();
    }
}
