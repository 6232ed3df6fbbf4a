//! Length-prefixed frames over any byte stream (spec 10-S05).
//!
//! A frame is a little-endian `u32` length and that many bytes. The reader
//! keeps a partially received frame across a timeout, so a deadline never
//! desynchronises the stream. A length over the maximum is `Malformed` —
//! reported before anything is allocated for it — and poisons the reader
//! (the stream position is lost); a send over the maximum is
//! `InvalidParameter` and sends nothing. A send that fails part-way (the
//! write timeout) poisons the writer for the same reason.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A byte stream whose reads can be bounded in time.
pub trait FrameStream: Read + Write {
    /// Sets the read timeout (`None`: block).
    ///
    /// # Errors
    /// The socket option error.
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}

impl FrameStream for std::net::TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, t)
    }
}

impl FrameStream for std::os::unix::net::UnixStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, t)
    }
}

/// Reads of at most this size go through the scratch buffer (and may take
/// the start of the next frame with them); larger remainders are read
/// straight into place.
const SCRATCH: usize = 16 * 1024;

/// Frames over a stream `S`.
#[derive(Debug)]
pub struct Framed<S> {
    stream: S,
    max: usize,
    /// Bytes received and not yet returned: the frame being received, and
    /// possibly the start of the next one.
    partial: Vec<u8>,
    /// The length of the frame whose header was taken from `partial` and
    /// whose payload is still arriving (kept across a timeout).
    frame_len: Option<usize>,
    /// A large frame's payload as it arrives, read straight into place; it
    /// becomes the caller's buffer (swapped, not copied).
    body: Vec<u8>,
    read_poisoned: bool,
    write_poisoned: bool,
    /// Lengths are big-endian (network order) instead of little-endian.
    big_endian: bool,
    /// The socket's current read timeout, to skip `setsockopt` when unchanged.
    read_timeout: Option<Duration>,
    scratch: Vec<u8>,
}

fn io_error(e: std::io::Error) -> Error {
    match e.kind() {
        ErrorKind::BrokenPipe
        | ErrorKind::ConnectionReset
        | ErrorKind::UnexpectedEof
        | ErrorKind::ConnectionAborted => Error::BrokenPipe,
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Error::Timeout,
        _ => Error::Io(e),
    }
}

/// Writes a frame's header and body with one `writev` (more only when the
/// stream takes part of it), without copying them together.
fn write_frame(w: &mut impl Write, header: &[u8], body: &[u8]) -> std::io::Result<()> {
    let total = header.len() + body.len();
    let mut done = 0;
    while done < total {
        let wrote = if done < header.len() {
            w.write_vectored(&[std::io::IoSlice::new(&header[done..]), std::io::IoSlice::new(body)])
        } else {
            w.write(&body[done - header.len()..])
        };
        match wrote {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl<S: FrameStream> Framed<S> {
    /// Frames over `stream`, at most `max` bytes each (capped at `u32::MAX`).
    pub fn new(stream: S, max: usize) -> Framed<S> {
        Framed {
            stream,
            max: max.min(u32::MAX as usize),
            partial: Vec::new(),
            frame_len: None,
            body: Vec::new(),
            read_poisoned: false,
            write_poisoned: false,
            big_endian: false,
            read_timeout: None,
            scratch: vec![0; SCRATCH],
        }
    }

    /// Sets the largest frame accepted and sent.
    pub fn set_max_frame(&mut self, max: usize) {
        self.max = max.min(u32::MAX as usize);
    }

    /// Writes and reads lengths big-endian (network order), as the RPC
    /// wire does (`doc/rpc-wire.md`); little-endian by default.
    pub fn set_big_endian(&mut self, big: bool) {
        self.big_endian = big;
    }

    /// The largest frame accepted and sent.
    pub fn max_frame(&self) -> usize {
        self.max
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Sends one frame.
    ///
    /// # Errors
    /// `InvalidParameter` over the maximum (nothing sent); `Timeout` at the
    /// stream's write timeout, `BrokenPipe`; after a failed send,
    /// `Malformed` (the frame boundary is lost).
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::InvalidParameter("frame larger than the maximum"));
        }
        if self.write_poisoned {
            return Err(Error::Malformed("an earlier send failed part-way; the frame boundary is lost".into()));
        }
        let len = msg.len() as u32;
        let header = if self.big_endian { len.to_be_bytes() } else { len.to_le_bytes() };
        write_frame(&mut self.stream, &header, msg).map_err(|e| {
            self.write_poisoned = true;
            io_error(e)
        })
    }

    /// Receives one frame into `buf`, waiting until `deadline` (`None`: forever).
    ///
    /// # Errors
    /// `Timeout` (the partial frame is kept for the next call),
    /// `BrokenPipe` at end of stream, `Malformed` for a length over the
    /// maximum (and ever after).
    pub fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: impl Into<crate::time::Deadline>) -> Result<()> {
        let deadline = deadline.into().instant();
        if self.read_poisoned {
            return Err(Error::Malformed("the stream lost its frame boundary earlier".into()));
        }
        let len = match self.frame_len {
            Some(len) => len,
            None => {
                if !self.fill(4, deadline)? {
                    return Err(Error::Timeout);
                }
                let prefix: [u8; 4] = self.partial[..4].try_into().expect("4 bytes");
                let len =
                    if self.big_endian { u32::from_be_bytes(prefix) } else { u32::from_le_bytes(prefix) } as usize;
                if len > self.max {
                    self.read_poisoned = true;
                    return Err(Error::Malformed(format!("frame of {len} bytes exceeds the maximum {}", self.max)));
                }
                self.partial.drain(..4);
                self.frame_len = Some(len);
                len
            }
        };
        if self.body.is_empty() && (self.partial.len() >= len || len - self.partial.len() <= SCRATCH) {
            // Small, or nearly here: through `partial`, which may also take
            // the start of the next frame in the same read.
            if !self.fill(len, deadline)? {
                return Err(Error::Timeout);
            }
            buf.clear();
            buf.extend_from_slice(&self.partial[..len]);
            self.partial.drain(..len);
        } else {
            // Large: what arrived moves to `body` (everything in `partial`
            // belongs to this frame), the rest is read straight into it,
            // and it becomes the caller's buffer without a copy.
            if self.body.is_empty() {
                std::mem::swap(&mut self.body, &mut self.partial);
            }
            if !self.fill_body(len, deadline)? {
                return Err(Error::Timeout);
            }
            buf.clear();
            std::mem::swap(buf, &mut self.body);
        }
        self.frame_len = None;
        Ok(())
    }

    /// Reads until `body` holds `len` bytes, straight from the stream (no
    /// scratch, no zero-filling); `Ok(false)` on timeout, `body` kept.
    fn fill_body(&mut self, len: usize, deadline: Option<Instant>) -> Result<bool> {
        self.body.reserve(len - self.body.len());
        self.read_until(
            len,
            deadline,
            |s| s.body.len(),
            |s, len| {
                let missing = (len - s.body.len()) as u64;
                (&mut s.stream).take(missing).read_to_end(&mut s.body)
            },
        )
    }

    /// Receives one frame, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`Framed::recv_deadline`].
    pub fn recv(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.recv_deadline(buf, crate::time::Deadline::NEVER)
    }

    /// One read: through the scratch buffer when little is missing, else
    /// directly into `partial` (exactly what is missing, no further).
    fn read_some(&mut self, want: usize) -> std::io::Result<usize> {
        let have = self.partial.len();
        if want - have > SCRATCH {
            self.partial.resize(want, 0);
            let r = self.stream.read(&mut self.partial[have..]);
            self.partial.truncate(have + *r.as_ref().unwrap_or(&0));
            return r;
        }
        let n = self.stream.read(&mut self.scratch)?;
        self.partial.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }

    /// Makes a blocking read return no later than `deadline`. A shorter
    /// timeout already set is kept (the caller loops on `WouldBlock`), so a
    /// series of receives with the same timeout costs one `setsockopt`.
    fn bound_read(&mut self, deadline: Option<Instant>) -> Result<()> {
        let want = deadline.map(|d| {
            d.checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
                // A zero read timeout means "block forever" to std.
                .unwrap_or(Duration::from_micros(1))
        });
        let keep = match (self.read_timeout, want) {
            (None, None) => true,
            (Some(cur), Some(w)) => cur <= w,
            _ => false,
        };
        if !keep {
            self.stream.set_read_timeout(want)?;
            self.read_timeout = want;
        }
        Ok(())
    }

    /// Reads until `partial` holds at least `want` bytes; `Ok(false)` on timeout.
    fn fill(&mut self, want: usize, deadline: Option<Instant>) -> Result<bool> {
        self.read_until(want, deadline, |s| s.partial.len(), Self::read_some)
    }

    /// Calls `read` until `held` reaches `want`, each read bounded by
    /// `deadline`; `Ok(false)` on timeout (what arrived is kept).
    fn read_until(
        &mut self,
        want: usize,
        deadline: Option<Instant>,
        held: fn(&Self) -> usize,
        read: fn(&mut Self, usize) -> std::io::Result<usize>,
    ) -> Result<bool> {
        while held(self) < want {
            self.bound_read(deadline)?;
            match read(self, want) {
                Ok(0) => return Err(Error::BrokenPipe),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(false);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(true)
    }
}
