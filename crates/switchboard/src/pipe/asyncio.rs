//! tokio `AsyncRead` / `AsyncWrite` for named pipes (feature `tokio`).
//!
//! **Reads** await the end's doorbell ([`PipeClient::doorbell`],
//! [`PipeServer::doorbell`]) in tokio's reactor: a waiting read parks no
//! thread, and a read is taken only when `poll_read` returns it. A server
//! end's doorbell belongs to its current client, so it is registered again
//! when the client changes. (An end type without a doorbell reads on the
//! blocking pool, as writes do.)
//!
//! **Writes** go straight into the pipe when they fit at once (one chunk,
//! room in the ring); one that must wait for room, or is larger than a
//! chunk, runs on tokio's blocking pool (`spawn_blocking`). A write once
//! started finishes even if the future that started it is dropped: its
//! result is handed to the next `poll_write`, so no byte is lost to
//! cancellation.
//!
//! Reads follow `std::io::Read` rules: a message cut short by the buffer
//! gives what fitted, the end is `Ok(0)`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard::pipe::{asyncio::AsyncPipe, named::PipeClient};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let mut pipe = AsyncPipe::new(PipeClient::open("jobs").map_err(std::io::Error::from)?);
//! pipe.write_all(b"hello").await?;
//! let mut buf = [0u8; 64];
//! let n = pipe.read(&mut buf).await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;

use super::named::{io_read, PipeClient, PipeServer};
use crate::error::Error;

/// A pipe end whose reads and writes block the calling thread.
pub trait BlockingEnd: Send + Sync + 'static {
    /// Reads as `std::io::Read` does.
    ///
    /// # Errors
    /// The pipe's error.
    fn read_blocking(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes all of `buf` (one message in message mode).
    ///
    /// # Errors
    /// The pipe's error.
    fn write_blocking(&self, buf: &[u8]) -> io::Result<()>;

    /// The end's doorbell, when its reads can be awaited on it.
    fn doorbell(&self) -> Option<OwnedFd> {
        None
    }

    /// Which doorbell `doorbell` would give now: it changes when the end's
    /// peer does (`None`: none now).
    fn doorbell_key(&self) -> Option<usize> {
        None
    }

    /// Reads without waiting (`WouldBlock` when nothing is there).
    ///
    /// # Errors
    /// The pipe's error.
    fn read_now(&self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Arms the doorbell; `true` when a read would not wait.
    fn arm(&self) -> bool {
        true
    }

    /// Writes all of `buf` if it fits at once (`Ok(false)`: nothing
    /// written, it would have to wait).
    ///
    /// # Errors
    /// The pipe's error.
    fn write_now(&self, _buf: &[u8]) -> io::Result<bool> {
        Ok(false)
    }
}

impl BlockingEnd for PipeClient {
    fn read_blocking(&self, buf: &mut [u8]) -> io::Result<usize> {
        io_read(self.read(buf))
    }
    fn write_blocking(&self, buf: &[u8]) -> io::Result<()> {
        Ok(self.write(buf)?)
    }
    fn doorbell(&self) -> Option<OwnedFd> {
        PipeClient::doorbell(self).try_clone_to_owned().ok()
    }
    fn doorbell_key(&self) -> Option<usize> {
        Some(0)
    }
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self.try_read(buf) {
            Err(Error::Timeout) => Err(io::ErrorKind::WouldBlock.into()),
            other => io_read(other),
        }
    }
    fn arm(&self) -> bool {
        self.arm_doorbell()
    }
    fn write_now(&self, buf: &[u8]) -> io::Result<bool> {
        Ok(self.try_write(buf)?)
    }
}

impl BlockingEnd for PipeServer {
    fn read_blocking(&self, buf: &mut [u8]) -> io::Result<usize> {
        io_read(self.read(buf))
    }
    fn write_blocking(&self, buf: &[u8]) -> io::Result<()> {
        Ok(self.write(buf)?)
    }
    fn doorbell(&self) -> Option<OwnedFd> {
        PipeServer::doorbell(self).ok()
    }
    fn doorbell_key(&self) -> Option<usize> {
        self.connection_key()
    }
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self.try_read(buf) {
            Err(Error::Timeout) => Err(io::ErrorKind::WouldBlock.into()),
            other => io_read(other),
        }
    }
    fn arm(&self) -> bool {
        // Not connected: no need to sleep; the read says so.
        self.arm_doorbell().unwrap_or(true)
    }
    fn write_now(&self, buf: &[u8]) -> io::Result<bool> {
        Ok(self.try_write(buf)?)
    }
}

/// A named-pipe end for tokio. Must be used inside a tokio runtime.
#[derive(Debug)]
pub struct AsyncPipe<T> {
    end: Arc<T>,
    /// The end's doorbell in tokio's reactor, with its key, when its
    /// reads await it.
    bell: Option<(usize, AsyncFd<OwnedFd>)>,
    reading: Option<JoinHandle<io::Result<Vec<u8>>>>,
    /// Bytes a finished read got that did not fit the caller's buffer.
    unread: Vec<u8>,
    writing: Option<JoinHandle<io::Result<usize>>>,
}

impl<T: BlockingEnd> AsyncPipe<T> {
    /// Wraps a pipe end.
    pub fn new(end: T) -> AsyncPipe<T> {
        AsyncPipe { end: Arc::new(end), bell: None, reading: None, unread: Vec::new(), writing: None }
    }

    /// The end's doorbell in the reactor, registered again when the end's
    /// peer changed; `None` when it has none (read on the blocking pool).
    fn current_bell(&mut self) -> Option<&AsyncFd<OwnedFd>> {
        let key = self.end.doorbell_key()?;
        if self.bell.as_ref().map(|(k, _)| *k) != Some(key) {
            let fd = self.end.doorbell().and_then(|fd| switchboard_sys::reactor::register_readable(fd).ok());
            self.bell = fd.map(|fd| (key, fd));
        }
        self.bell.as_ref().map(|(_, fd)| fd)
    }

    /// The pipe end (for its other methods: `transact`, `peek`, …).
    pub fn get_ref(&self) -> &T {
        &self.end
    }
}

fn joined<R>(r: Result<io::Result<R>, tokio::task::JoinError>) -> io::Result<R> {
    r.map_err(io::Error::other)?
}

impl<T: BlockingEnd> AsyncRead for AsyncPipe<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.unread.is_empty() && this.reading.is_none() {
            let end = this.end.clone();
            if let Some(bell) = this.current_bell() {
                return crate::bell::poll_rung(bell, cx, &mut Read { end: &*end, buf })
                    .map(|r| r.and_then(|read| read));
            }
        }
        if this.unread.is_empty() {
            let task = this.reading.get_or_insert_with(|| {
                let (end, room) = (this.end.clone(), buf.remaining());
                tokio::task::spawn_blocking(move || {
                    let mut got = vec![0u8; room];
                    let n = end.read_blocking(&mut got)?;
                    got.truncate(n);
                    Ok(got)
                })
            });
            let result = joined(ready!(Pin::new(task).poll(cx)));
            this.reading = None;
            this.unread = result?;
        }
        // A read started by an earlier, larger call may hold more than fits.
        let n = this.unread.len().min(buf.remaining());
        buf.put_slice(&this.unread[..n]);
        this.unread.drain(..n);
        Poll::Ready(Ok(()))
    }
}

/// One read of an end through its doorbell.
struct Read<'a, 'b, T> {
    end: &'a T,
    buf: &'a mut ReadBuf<'b>,
}

impl<T: BlockingEnd> crate::bell::Doorbelled for Read<'_, '_, T> {
    type Output = io::Result<()>;
    fn attempt(&mut self) -> Option<io::Result<()>> {
        match self.end.read_now(self.buf.initialize_unfilled()) {
            Ok(n) => {
                self.buf.advance(n);
                Some(Ok(()))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(Err(e)),
        }
    }
    fn arm(&mut self) -> bool {
        self.end.arm()
    }
}

impl<T: BlockingEnd> AsyncWrite for AsyncPipe<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // Most writes fit at once: no thread for them.
        if this.writing.is_none() && this.end.write_now(buf)? {
            return Poll::Ready(Ok(buf.len()));
        }
        let task = this.writing.get_or_insert_with(|| {
            let (end, data) = (this.end.clone(), buf.to_vec());
            tokio::task::spawn_blocking(move || end.write_blocking(&data).map(|()| data.len()))
        });
        let result = joined(ready!(Pin::new(task).poll(cx)));
        this.writing = None;
        Poll::Ready(result)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A write still under way is what flushing waits for.
        match self.writing.as_mut() {
            Some(task) => {
                let result = joined(ready!(Pin::new(task).poll(cx)));
                self.writing = None;
                Poll::Ready(result.map(drop))
            }
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
