//! tokio `AsyncRead` / `AsyncWrite` for named pipes (feature `tokio`).
//!
//! A pipe end waits on a futex in shared memory, which no reactor can poll,
//! so [`AsyncPipe`] runs each read and write on tokio's blocking pool
//! (`spawn_blocking`) and wakes the task when it is done. An operation once
//! started finishes even if the future that started it is dropped: its
//! result is kept and handed to the next `poll_read` / `poll_write`, so no
//! byte is lost to cancellation (only dropping the `AsyncPipe` itself
//! discards a read still under way). Reads follow `std::io::Read` rules: a
//! message cut short by the buffer gives what fitted, the end is `Ok(0)`.
//!
//! A read under way holds one blocking-pool thread until data or the end of
//! the pipe arrives, and tokio waits for such threads when a runtime shuts
//! down: where a peer may stay silent, shut down with
//! `Runtime::shutdown_timeout`.
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

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;

use super::named::{io_read, PipeClient, PipeServer};

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
}

impl BlockingEnd for PipeClient {
    fn read_blocking(&self, buf: &mut [u8]) -> io::Result<usize> {
        io_read(self.read(buf))
    }
    fn write_blocking(&self, buf: &[u8]) -> io::Result<()> {
        Ok(self.write(buf)?)
    }
}

impl BlockingEnd for PipeServer {
    fn read_blocking(&self, buf: &mut [u8]) -> io::Result<usize> {
        io_read(self.read(buf))
    }
    fn write_blocking(&self, buf: &[u8]) -> io::Result<()> {
        Ok(self.write(buf)?)
    }
}

/// A named-pipe end for tokio. Must be used inside a tokio runtime.
#[derive(Debug)]
pub struct AsyncPipe<T> {
    end: Arc<T>,
    reading: Option<JoinHandle<io::Result<Vec<u8>>>>,
    /// Bytes a finished read got that did not fit the caller's buffer.
    unread: Vec<u8>,
    writing: Option<JoinHandle<io::Result<usize>>>,
}

impl<T: BlockingEnd> AsyncPipe<T> {
    /// Wraps a pipe end.
    pub fn new(end: T) -> AsyncPipe<T> {
        AsyncPipe { end: Arc::new(end), reading: None, unread: Vec::new(), writing: None }
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

impl<T: BlockingEnd> AsyncWrite for AsyncPipe<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
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
