//! [`StreamLink`]: length-prefixed frames over a Unix or TCP stream — the
//! frames of [`crate::socket::Framed`] (a little-endian `u32` length and
//! that many bytes; a partial frame survives a timeout; a length over the
//! maximum is `Malformed` and poisons the link).

use crate::time::Deadline;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

use super::{Link, DEFAULT_MAX_MESSAGE};
use crate::error::{Error, Result};
use crate::socket::{FrameStream, Framed};

#[derive(Debug)]
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    TlsServer(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
    #[cfg(feature = "tls")]
    TlsClient(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::TlsServer(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::TlsClient(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Stream::TlsServer(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Stream::TlsClient(s) => s.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write_vectored(bufs),
            Stream::Tcp(s) => s.write_vectored(bufs),
            #[cfg(feature = "tls")]
            Stream::TlsServer(s) => s.write_vectored(bufs),
            #[cfg(feature = "tls")]
            Stream::TlsClient(s) => s.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            #[cfg(feature = "tls")]
            Stream::TlsServer(s) => s.flush(),
            #[cfg(feature = "tls")]
            Stream::TlsClient(s) => s.flush(),
            _ => Ok(()),
        }
    }
}

impl FrameStream for Stream {
    fn set_read_timeout(&self, t: Option<std::time::Duration>) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
            #[cfg(feature = "tls")]
            Stream::TlsServer(s) => s.sock.set_read_timeout(t),
            #[cfg(feature = "tls")]
            Stream::TlsClient(s) => s.sock.set_read_timeout(t),
        }
    }
}

/// A message link over a byte stream: [`Framed`] frames, as a [`Link`].
#[derive(Debug)]
pub struct StreamLink {
    framed: Framed<Stream>,
}

fn abstract_addr(name: &str) -> Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("sb1/stream/{name}")).map_err(Error::Io)
}

impl StreamLink {
    fn new(stream: Stream) -> StreamLink {
        StreamLink { framed: Framed::new(stream, DEFAULT_MAX_MESSAGE) }
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

    /// A link over a connected TCP stream (Nagle disabled).
    ///
    /// # Errors
    /// The `setsockopt` error.
    pub(crate) fn from_tcp(s: TcpStream) -> Result<StreamLink> {
        s.set_nodelay(true)?;
        Ok(StreamLink::new(Stream::Tcp(s)))
    }

    /// The server's side of mutual TLS over `sock`, the handshake done
    /// by `deadline`.
    ///
    /// # Errors
    /// `AccessDenied` when the handshake fails (no certificate, one the
    /// CA did not sign, not TLS at all); `Timeout`.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_server(
        mut sock: TcpStream,
        config: std::sync::Arc<rustls::ServerConfig>,
        deadline: std::time::Instant,
    ) -> Result<StreamLink> {
        let mut conn = rustls::ServerConnection::new(config).map_err(tls_refused)?;
        handshake(&mut conn, &mut sock, deadline)?;
        sock.set_nodelay(true)?;
        Ok(StreamLink::new(Stream::TlsServer(Box::new(rustls::StreamOwned::new(conn, sock)))))
    }

    /// The client's side of mutual TLS over `sock` with server `name`.
    ///
    /// # Errors
    /// As [`StreamLink::tls_server`].
    #[cfg(feature = "tls")]
    pub(crate) fn tls_client(
        mut sock: TcpStream,
        config: std::sync::Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
        deadline: std::time::Instant,
    ) -> Result<StreamLink> {
        let mut conn = rustls::ClientConnection::new(config, name).map_err(tls_refused)?;
        handshake(&mut conn, &mut sock, deadline)?;
        sock.set_nodelay(true)?;
        Ok(StreamLink::new(Stream::TlsClient(Box::new(rustls::StreamOwned::new(conn, sock)))))
    }

    /// A connected pair over a Unix socket pair.
    ///
    /// # Errors
    /// `EMFILE`.
    pub fn pair() -> Result<(StreamLink, StreamLink)> {
        let (a, b) = UnixStream::pair()?;
        Ok((StreamLink::new(Stream::Unix(a)), StreamLink::new(Stream::Unix(b))))
    }

    /// Frames with big-endian lengths, as the RPC wire's (`doc/rpc-wire.md`).
    #[must_use]
    pub fn with_big_endian_lengths(mut self) -> StreamLink {
        self.framed.set_big_endian(true);
        self
    }

    /// Sets the largest frame accepted and sent.
    #[must_use]
    pub fn with_max_message(mut self, max: usize) -> StreamLink {
        self.framed.set_max_frame(max);
        self
    }
}

impl Link for StreamLink {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.framed.send(msg)
    }

    fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        self.framed.recv_deadline(buf, deadline)
    }

    fn max_message(&self) -> usize {
        self.framed.max_frame()
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
                    return Err(Error::AccessDenied("stream link peer is another user".into()));
                }
                Ok(StreamLink::new(Stream::Unix(s)))
            }
        }
    }
}

#[cfg(feature = "tls")]
fn tls_refused(e: impl std::fmt::Display) -> Error {
    Error::AccessDenied(format!("TLS: {e}"))
}

/// Runs a TLS handshake on `sock` until it completes or `deadline`.
#[cfg(feature = "tls")]
fn handshake<D: rustls::SideData>(
    conn: &mut rustls::ConnectionCommon<D>,
    sock: &mut TcpStream,
    deadline: std::time::Instant,
) -> Result<()> {
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout);
        }
        sock.set_read_timeout(Some(left))?;
        sock.set_write_timeout(Some(left))?;
        match conn.complete_io(sock) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return Err(Error::Timeout),
            Err(e) => {
                // Tell the peer why (the alert rustls queued), best effort.
                let _ = conn.write_tls(sock);
                return Err(tls_refused(e));
            }
        }
    }
    sock.set_read_timeout(None)?;
    sock.set_write_timeout(None)?;
    Ok(())
}
