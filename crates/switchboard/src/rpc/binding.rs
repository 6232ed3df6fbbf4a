//! String bindings (S05): which transport a client connects over and a
//! server listens on. Each is a link, so every binding carries the same
//! frames.

use std::net::TcpStream;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::link::{Link, ShmLink, ShmLinkListener, ShmLinkOptions, StreamLink, StreamLinkListener};
use crate::pipe::named::{PipeClient, PipeOptions, PipeType, ReadMode};
use crate::time::Deadline;

use super::auth::AuthLevel;
use super::client::ClientOptions;
use super::wire::DEFAULT_MAX_FRAME;

/// A link, boxed: what a connection speaks over.
pub(crate) type BoxLink = Box<dyn Link + Send>;

/// Where a server listens and a client connects.
///
/// | text | transport |
/// |---|---|
/// | `local:NAME` | a shared-memory link, through the rendezvous (this user only, `SO_PEERCRED`) |
/// | `unix:NAME` | an abstract Unix stream socket (this user only, `SO_PEERCRED`) |
/// | `tcp:HOST[PORT]` | TCP (`tcp:127.0.0.1[0]` listens on a free port) |
/// | `pipe:\\.\pipe\NAME` | a message-mode named pipe |
///
/// ```
/// use switchboard::rpc::Binding;
/// let b: Binding = "tcp:127.0.0.1[4747]".parse()?;
/// assert_eq!(b, Binding::Tcp { host: "127.0.0.1".into(), port: 4747 });
/// assert_eq!(b.to_string(), "tcp:127.0.0.1[4747]");
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Binding {
    /// `local:NAME`.
    Local(String),
    /// `unix:NAME`.
    Unix(String),
    /// `tcp:HOST[PORT]`.
    Tcp {
        /// Host name or address (an IPv6 address in brackets).
        host: String,
        /// Port; 0 when listening picks a free one.
        port: u16,
    },
    /// `pipe:\\.\pipe\NAME`.
    Pipe(String),
}

impl Binding {
    /// Parses a string binding.
    ///
    /// # Errors
    /// `InvalidBinding` (1700).
    pub fn parse(text: &str) -> Result<Binding> {
        let bad = |why| Error::InvalidBinding { binding: text.to_owned(), why };
        let (scheme, rest) = text.split_once(':').ok_or_else(|| bad("no `scheme:` (local:, unix:, tcp:, pipe:)"))?;
        if rest.is_empty() {
            return Err(bad("nothing after the scheme"));
        }
        match scheme {
            "local" => Ok(Binding::Local(rest.to_owned())),
            "unix" => Ok(Binding::Unix(rest.to_owned())),
            "pipe" => Ok(Binding::Pipe(rest.to_owned())),
            "tcp" => {
                let open = rest.rfind('[').ok_or_else(|| bad("a TCP binding is tcp:HOST[PORT]"))?;
                let port = rest[open + 1..].strip_suffix(']').ok_or_else(|| bad("a TCP binding ends with [PORT]"))?;
                let port = port.parse().map_err(|_| bad("the port is not 0-65535"))?;
                let host = &rest[..open];
                if host.is_empty() {
                    return Err(bad("no host"));
                }
                Ok(Binding::Tcp { host: host.to_owned(), port })
            }
            _ => Err(bad("unknown scheme (local:, unix:, tcp:, pipe:)")),
        }
    }

    /// The authentication level a connection over this binding gives
    /// (see [`super::auth`]); `tls`: a `tcp:` binding with TLS.
    pub(crate) fn level(&self, tls: bool) -> AuthLevel {
        match self {
            Binding::Tcp { .. } if tls => AuthLevel::Privacy,
            Binding::Tcp { .. } => AuthLevel::None,
            _ => AuthLevel::Privacy,
        }
    }

    /// Connects, within `deadline` where the transport allows.
    pub(crate) fn connect(&self, deadline: Deadline, options: &ClientOptions) -> Result<BoxLink> {
        let unavailable = |e: Error| match e {
            Error::NotFound(_) | Error::BrokenPipe | Error::PipeBusy | Error::Timeout => {
                Error::ServerUnavailable(format!("{self}: {e}"))
            }
            Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                Error::ServerUnavailable(format!("{self}: {io}"))
            }
            other => other,
        };
        let link: BoxLink = match self {
            Binding::Local(name) => Box::new(ShmLink::connect(name, ShmLinkOptions::default()).map_err(unavailable)?),
            Binding::Unix(name) => Box::new(stream(StreamLink::connect_unix(name).map_err(unavailable)?)),
            Binding::Tcp { host, port } => {
                let sock = tcp_connect(host, *port, deadline).map_err(unavailable)?;
                #[cfg(feature = "tls")]
                if let Some(tls) = &options.tls {
                    let by = deadline
                        .instant()
                        .unwrap_or_else(|| std::time::Instant::now() + crate::rendezvous::ANSWER_TIMEOUT);
                    let link =
                        StreamLink::tls_client(sock, tls.config.clone(), tls.server_name.clone(), by).map_err(|e| {
                            match e {
                                Error::AccessDenied(why) => Error::AccessDenied(format!(
                                    "{self}: {why} (does the server speak TLS, and accept this certificate?)"
                                )),
                                other => unavailable(other),
                            }
                        })?;
                    return Ok(Box::new(stream(link)));
                }
                let _ = options;
                Box::new(stream(StreamLink::from_tcp(sock)?))
            }
            Binding::Pipe(name) => {
                let wait = deadline.remaining().unwrap_or(crate::rendezvous::ANSWER_TIMEOUT);
                let client = match PipeClient::open(name) {
                    Err(Error::PipeBusy) => PipeClient::open_wait(name, wait),
                    other => other,
                };
                Box::new(client.map_err(unavailable)?.into_link()?.with_max_message(DEFAULT_MAX_FRAME))
            }
        };
        Ok(link)
    }

    /// Starts listening; the binding as listened (a TCP port picked).
    pub(crate) fn listen(&self) -> Result<(Listener, Binding)> {
        Ok(match self {
            Binding::Local(name) => (Listener::Local(ShmLinkListener::bind(name)?), self.clone()),
            Binding::Unix(name) => (Listener::Stream(StreamLinkListener::bind_unix(name)?), self.clone()),
            Binding::Tcp { host, port } => {
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                let l = StreamLinkListener::bind_tcp((bare, *port))?;
                let port = l.port().unwrap_or(*port);
                (Listener::Stream(l), Binding::Tcp { host: host.clone(), port })
            }
            Binding::Pipe(name) => {
                let opts = PipeOptions::new()
                    .pipe_type(PipeType::Message)
                    .read_mode(ReadMode::Message)
                    .default_timeout(Duration::from_secs(5));
                let first = opts.clone().first_instance(true).create(name)?;
                (Listener::Pipe { name: name.clone(), opts, next: std::sync::Mutex::new(Some(first)) }, self.clone())
            }
        })
    }
}

/// Connects to `host`:`port`, each address it resolves to in turn, within `deadline`.
fn tcp_connect(host: &str, port: u16, deadline: Deadline) -> Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut last = Error::NotFound(format!("{host}[{port}]"));
    for addr in (host, port).to_socket_addrs()? {
        let left = deadline.remaining().unwrap_or(crate::rendezvous::ANSWER_TIMEOUT);
        if left.is_zero() {
            return Err(Error::Timeout);
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => last = Error::Timeout,
            Err(e) => last = Error::Io(e),
        }
    }
    Err(last)
}

pub(crate) fn stream(link: StreamLink) -> StreamLink {
    link.with_big_endian_lengths().with_max_message(DEFAULT_MAX_FRAME)
}

impl std::str::FromStr for Binding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Binding> {
        Binding::parse(s)
    }
}

impl std::fmt::Display for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Binding::Local(n) => write!(f, "local:{n}"),
            Binding::Unix(n) => write!(f, "unix:{n}"),
            Binding::Tcp { host, port } => write!(f, "tcp:{host}[{port}]"),
            Binding::Pipe(n) => write!(f, "pipe:{n}"),
        }
    }
}

/// A connection a listener took: ready, or a TCP stream whose TLS (or
/// refusal of it) its connection's thread sees to.
pub(crate) enum Accepted {
    Ready(BoxLink),
    Tcp(TcpStream),
}

/// A binding's listening end.
pub(crate) enum Listener {
    Local(ShmLinkListener),
    Stream(StreamLinkListener),
    /// A pipe listens with one free instance at a time: the next is
    /// created as soon as a client takes the last.
    Pipe {
        name: String,
        opts: PipeOptions,
        next: std::sync::Mutex<Option<crate::pipe::named::PipeServer>>,
    },
}

impl Listener {
    /// Waits for the next client.
    pub(crate) fn accept(&self) -> Result<Accepted> {
        let ready = |link: BoxLink| Ok(Accepted::Ready(link));
        match self {
            Listener::Local(l) => ready(Box::new(l.accept(Deadline::NEVER)?)),
            Listener::Stream(StreamLinkListener::Tcp(l)) => Ok(Accepted::Tcp(l.accept()?.0)),
            Listener::Stream(l) => ready(Box::new(stream(l.accept()?))),
            Listener::Pipe { name, opts, next } => {
                let mut next = next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let instance = match next.take() {
                    Some(i) => i,
                    None => opts.create(name)?,
                };
                instance.connect()?;
                *next = opts.create(name).ok();
                ready(Box::new(instance.into_link()?.with_max_message(DEFAULT_MAX_FRAME)))
            }
        }
    }
}
