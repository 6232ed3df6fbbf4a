//! [`StreamLink`]: length-prefixed frames over a Unix or TCP stream.
//!
//! A frame is a little-endian `u32` length and that many bytes. The reader
//! keeps a partially received frame across a timeout, so a deadline never
//! desynchronises the stream. A length over the link's maximum is
//! `Malformed` and poisons the link (the stream position is lost).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::Instant;

use super::{Link, DEFAULT_MAX_MESSAGE};
use crate::error::{Error, Result};

#[derive(Debug)]
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_read_timeout(&self, t: Option<std::time::Duration>) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(buf),
            Stream::Tcp(s) => s.write_all(buf),
        }
    }
}

/// A message link over a byte stream.
#[derive(Debug)]
pub struct StreamLink {
    stream: Stream,
    max: usize,
    /// Bytes received and not yet returned: the frame being received, and
    /// possibly the start of the next one (reads take what is there).
    partial: Vec<u8>,
    poisoned: bool,
    /// The socket's current read timeout (`None`: blocking), to skip the
    /// `setsockopt` when it need not change.
    read_timeout: Option<std::time::Duration>,
    /// Reused read buffer for small reads (allocated once, never re-zeroed).
    scratch: Vec<u8>,
}

fn io_error(e: std::io::Error) -> Error {
    match e.kind() {
        ErrorKind::BrokenPipe
        | ErrorKind::ConnectionReset
        | ErrorKind::UnexpectedEof
        | ErrorKind::ConnectionAborted => Error::BrokenPipe,
        _ => Error::Io(e),
    }
}

/// Reads of at most this size go through the scratch buffer (and may take
/// the start of the next frame with them); larger remainders are read
/// straight into place.
const SCRATCH: usize = 16 * 1024;

fn abstract_addr(name: &str) -> Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("sb1/stream/{name}")).map_err(Error::Io)
}

impl StreamLink {
    fn new(stream: Stream) -> StreamLink {
        StreamLink {
            stream,
            max: DEFAULT_MAX_MESSAGE,
            partial: Vec::new(),
            poisoned: false,
            read_timeout: None,
            scratch: vec![0; SCRATCH],
        }
    }

    /// Connects over TCP (Nagle disabled).
    ///
    /// # Errors
    /// The connect error.
    pub fn connect_tcp(addr: impl ToSocketAddrs) -> Result<StreamLink> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        Ok(StreamLink::new(Stream::Tcp(s)))
    }

    /// Connects to a [`StreamLinkListener::bind_unix`] listener by name.
    ///
    /// # Errors
    /// `NotFound` when nobody listens under that name.
    pub fn connect_unix(name: &str) -> Result<StreamLink> {
        match UnixStream::connect_addr(&abstract_addr(name)?) {
            Ok(s) => Ok(StreamLink::new(Stream::Unix(s))),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Err(Error::NotFound(name.to_owned())),
            Err(e) => Err(Error::Io(e)),
        }
    }

    /// A connected pair over a Unix socket pair.
    ///
    /// # Errors
    /// `EMFILE`.
    pub fn pair() -> Result<(StreamLink, StreamLink)> {
        let (a, b) = UnixStream::pair()?;
        Ok((StreamLink::new(Stream::Unix(a)), StreamLink::new(Stream::Unix(b))))
    }

    /// Sets the largest frame accepted and sent.
    #[must_use]
    pub fn with_max_message(mut self, max: usize) -> StreamLink {
        self.max = max.min(u32::MAX as usize);
        self
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
                .unwrap_or(std::time::Duration::from_micros(1))
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
        while self.partial.len() < want {
            self.bound_read(deadline)?;
            match self.read_some(want) {
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

impl Link for StreamLink {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::InvalidParameter("message larger than the link's maximum"));
        }
        let header = (msg.len() as u32).to_le_bytes();
        if msg.len() <= 64 * 1024 {
            let mut frame = Vec::with_capacity(4 + msg.len());
            frame.extend_from_slice(&header);
            frame.extend_from_slice(msg);
            self.stream.write_all(&frame).map_err(io_error)
        } else {
            self.stream.write_all(&header).map_err(io_error)?;
            self.stream.write_all(msg).map_err(io_error)
        }
    }

    fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> Result<()> {
        if self.poisoned {
            return Err(Error::Malformed("the link lost its frame boundary earlier".into()));
        }
        if !self.fill(4, deadline)? {
            return Err(Error::Timeout);
        }
        let len = u32::from_le_bytes(self.partial[..4].try_into().expect("4 bytes")) as usize;
        if len > self.max {
            self.poisoned = true;
            return Err(Error::Malformed(format!("frame of {len} bytes exceeds the maximum {}", self.max)));
        }
        if !self.fill(4 + len, deadline)? {
            return Err(Error::Timeout);
        }
        buf.clear();
        buf.extend_from_slice(&self.partial[4..4 + len]);
        self.partial.drain(..4 + len);
        Ok(())
    }

    fn max_message(&self) -> usize {
        self.max
    }
}

/// Accepts [`StreamLink`]s over TCP or a named Unix socket.
#[derive(Debug)]
pub enum StreamLinkListener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// An abstract-namespace Unix listener.
    Unix(UnixListener),
}

impl StreamLinkListener {
    /// Listens on a TCP address (port 0 picks a free port).
    ///
    /// # Errors
    /// The bind error (`AddrInUse`).
    pub fn bind_tcp(addr: impl ToSocketAddrs) -> Result<StreamLinkListener> {
        Ok(StreamLinkListener::Tcp(TcpListener::bind(addr)?))
    }

    /// Listens under an abstract Unix name (nothing on the file system).
    ///
    /// # Errors
    /// The bind error (`AddrInUse`).
    pub fn bind_unix(name: &str) -> Result<StreamLinkListener> {
        Ok(StreamLinkListener::Unix(UnixListener::bind_addr(&abstract_addr(name)?)?))
    }

    /// The TCP port, for a TCP listener.
    pub fn port(&self) -> Option<u16> {
        match self {
            StreamLinkListener::Tcp(l) => l.local_addr().ok().map(|a| a.port()),
            StreamLinkListener::Unix(_) => None,
        }
    }

    /// Accepts one link. Unix peers must be the same user.
    ///
    /// # Errors
    /// The accept error; `AccessDenied` for a Unix peer of another user.
    pub fn accept(&self) -> Result<StreamLink> {
        match self {
            StreamLinkListener::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nodelay(true)?;
                Ok(StreamLink::new(Stream::Tcp(s)))
            }
            StreamLinkListener::Unix(l) => {
                let (s, _) = l.accept()?;
                let conn = switchboard_sys::socket::Conn::from_fd(s.try_clone()?.into());
                if conn.peer_cred().map(|c| c.uid) != Ok(switchboard_sys::process::uid()) {
                    return Err(Error::AccessDenied("stream link peer is another user"));
                }
                Ok(StreamLink::new(Stream::Unix(s)))
            }
        }
    }
}
