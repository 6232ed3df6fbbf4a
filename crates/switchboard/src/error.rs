//! The error type shared by every mechanism, with its classic code.
//!
//! Every [`Error`] answers [`Error::win32`], the classic Windows error
//! number, and [`Error::code`], its code in the space it belongs to: most
//! are Win32 codes; a fault from the other side of a call keeps the space
//! its handler chose — an `HRESULT` (objects), a DDE `DMLERR_*`, or an RPC
//! status — so each classic code stays in its own space ([`Code`]).

use std::io;

use switchboard_sys::Errno;

/// Every error switchboard returns. [`Error::win32`] gives the classic
/// Windows error number users of the original mechanisms know.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name is empty, too long, or contains `\` or NUL (classic 123).
    #[error("invalid name {}: {why}", Shown(name))]
    InvalidName {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The name is held by an object of another kind (classic 6).
    #[error("the name is in use by an object of another kind ({found}; wanted: {wanted})")]
    InvalidHandle {
        /// The kind that was asked for.
        wanted: &'static str,
        /// The kind that holds the name.
        found: &'static str,
    },
    /// No object has this name (classic 2).
    #[error("no object named {}", Shown(.0))]
    NotFound(String),
    /// The object's ACL or the requested access refuses the caller, or its
    /// holder is not trusted (classic 5); the text names what refused.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The OS refused to take a handle from another process (classic 5).
    #[error("the OS refused to take a handle from process {pid} ({errno}); ptrace policy (Yama ptrace_scope) or another user — pass the handle over a connection instead")]
    HandleTakingRefused {
        /// The process the handle was to be taken from.
        pid: u32,
        /// The kernel's answer.
        errno: Errno,
    },
    /// A parameter is out of range (classic 87).
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    /// A file mapping of an empty file with size 0 (classic 1006).
    #[error("the file is empty and no size was given")]
    FileInvalid,
    /// A view offset that is not a multiple of the allocation granularity (classic 1132).
    #[error("view offset {0} is not a multiple of the allocation granularity (64 KiB)")]
    MappedAlignment(u64),
    /// Release of a mutex the caller does not own (classic 288).
    #[error("the calling thread does not own the mutex")]
    NotOwner,
    /// A semaphore release beyond its maximum (classic 298).
    #[error("the release would exceed the semaphore's maximum count")]
    TooManyPosts,
    /// The backing file shrank under a view; the view is unusable (classic 999, in-page error).
    #[error("the file backing this view was truncated; the view is no longer usable")]
    ViewFault,
    /// A peer or a shared segment sent bytes that do not decode (classic 13).
    #[error("malformed data from a peer: {0}")]
    Malformed(String),
    /// The other end of a link or pipe is gone (classic 109).
    #[error("the other end has closed the connection or died")]
    BrokenPipe,
    /// A wait on a port timed out with no packet (classic `WAIT_TIMEOUT`, 258).
    #[error("the wait timed out")]
    WaitTimeout,
    /// The port was closed while waiting, or before (classic 735).
    #[error("the port was closed (abandoned wait)")]
    AbandonedWait,
    /// A port's or mailslot's queue is full and the caller chose not to
    /// wait (classic 1816, not enough quota).
    #[error("the queue is full")]
    QueueFull,
    /// The peer did not answer in time (classic 121).
    #[error("the peer did not answer within the time allowed")]
    Timeout,
    /// Every instance of the pipe is busy, or the maximum number of
    /// instances exists (classic 231).
    #[error("all pipe instances are busy")]
    PipeBusy,
    /// Writing to a pipe whose every reader is closed (classic 232).
    #[error("the pipe is being closed (no reader)")]
    NoData,
    /// Server I/O on an instance with no connected client (classic 233).
    #[error("no process is on the other end of the pipe")]
    PipeNotConnected,
    /// Server I/O on an instance that listens and has never had a client
    /// since (classic 536, `ERROR_PIPE_LISTENING`).
    #[error("the pipe instance is waiting for a client to connect")]
    PipeListening,
    /// A client connected before the server's connect (`ERROR_PIPE_CONNECTED`, 535):
    /// what an overlapped connect reports, at once and with no packet.
    #[error("a client is already connected")]
    PipeConnected,
    /// A pipe operation on the wrong kind of pipe or end: transact on a
    /// byte pipe or in byte read mode, a server peek with no client
    /// (classic 230, `ERROR_BAD_PIPE`).
    #[error("the pipe state is invalid for this operation: {0}")]
    BadPipe(&'static str),
    /// An overlapped operation was cancelled (classic 995,
    /// `ERROR_OPERATION_ABORTED`).
    #[error("the I/O operation was cancelled")]
    OperationAborted,
    /// Something asked for is not there (classic 1168, `ERROR_NOT_FOUND`):
    /// a pipe's client process after the client left.
    #[error("not found: {0}")]
    ElementNotFound(&'static str),
    /// A one-message reply did not fit the buffer; `received` bytes were
    /// copied and the rest stays readable (classic 234).
    #[error("more data is available ({received} bytes copied)")]
    MoreData {
        /// Bytes copied into the buffer.
        received: usize,
    },
    /// The buffer is too small for the next message, which stays queued
    /// (classic 122).
    #[error("the buffer is too small: the next message needs {needed} bytes")]
    InsufficientBuffer {
        /// The size of the next message.
        needed: usize,
    },
    /// The object exists and only one may (classic 183).
    #[error("{} already exists", Shown(.0))]
    AlreadyExists(String),
    /// A network path that cannot be used, e.g. a broadcast over 424 bytes (classic 53).
    #[error("bad network path: {0}")]
    BadNetPath(&'static str),
    /// Another host cannot be reached: no gateway runs here, the host does
    /// not answer, or the link to it was cut (classic 53, `ERROR_BAD_NETPATH`).
    #[error("the network path was not found: {0}")]
    NetPath(String),
    /// The message receiver is gone: destroyed, its thread ended or its
    /// process died (classic 1400, `ERROR_INVALID_WINDOW_HANDLE`).
    #[error("the message receiver is gone (destroyed, or its process died)")]
    InvalidWindowHandle,
    /// A message that may only be sent (a data copy) was posted (classic
    /// 1159, `ERROR_MESSAGE_SYNC_ONLY`).
    #[error("this message can only be sent, not posted")]
    MessageSyncOnly,
    /// A clipboard operation by a thread that has not opened the clipboard
    /// (classic 1418, `ERROR_CLIPBOARD_NOT_OPEN`).
    #[error("the clipboard is not open (by this thread)")]
    ClipboardNotOpen,
    /// A DDE transaction or conversation failed (`DMLERR_*`, see
    /// `dde::dmlerr`).
    #[error("DDE: {} ({:#06x})", crate::dde::dmlerr::describe(*.0), .0)]
    Dde(u16),
    /// The other side of a call refused it: its handler's fault, with the
    /// classic code it chose (see `call::Fault`).
    #[error("the other side failed the call: {message} ({code})")]
    Remote {
        /// The classic code the handler gave, in its space.
        code: Code,
        /// The handler's message.
        message: String,
    },
    /// A string binding that does not parse (RPC status 1700,
    /// `RPC_S_INVALID_STRING_BINDING`).
    #[error("invalid string binding {}: {why}", Shown(binding))]
    InvalidBinding {
        /// The binding given.
        binding: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The server does not serve the interface, or not at a compatible
    /// version (RPC status 1717, `RPC_S_UNKNOWN_IF`).
    #[error("the server does not serve this interface: {0}")]
    UnknownInterface(String),
    /// Nothing answers at the binding, or the connection to the server
    /// broke (RPC status 1722, `RPC_S_SERVER_UNAVAILABLE`).
    #[error("the RPC server is unavailable: {0}")]
    ServerUnavailable(String),
    /// No server of this user registered the interface at a compatible
    /// version with the endpoint mapper (RPC status 1753,
    /// `EPT_S_NOT_REGISTERED`).
    #[error("no server registered interface {0}")]
    NotRegistered(String),
    /// A call the server did not answer within the call timeout; the
    /// server was told to cancel it (RPC status 1818, `RPC_S_CALL_CANCELLED`).
    #[error("the call was not answered within {0:?} and was cancelled")]
    CallTimeout(std::time::Duration),
    /// The device or driver does not do this (classic 50,
    /// `ERROR_NOT_SUPPORTED`): modem lines on a pseudo-terminal.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// An HTTP server answered with an error status: the status and its
    /// reason, as the server gave them (classic 12003,
    /// `ERROR_INTERNET_EXTENDED_ERROR`: the server's own error).
    #[error("HTTP {status} {reason} from {url}")]
    Http {
        /// The status code.
        status: u16,
        /// Its reason phrase.
        reason: String,
        /// The URL asked for.
        url: String,
    },
    /// An Internet transfer failed below HTTP, with the classic WinINet
    /// code: 12007 a name that does not resolve, 12029 no connection,
    /// 12002 a timeout, 12157 TLS, 12152 an answer that makes no sense,
    /// 12005 a bad URL, 12156 too many redirects; 23 (`ERROR_CRC`) a file
    /// whose digest is not the one expected.
    #[error("{message}")]
    Internet {
        /// The classic code.
        code: u32,
        /// What failed, with the URL.
        message: String,
    },
    /// Any other system error (classic code derived from errno).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A name or address as an error message shows it: quoted, and cut to its
/// first [`SHOWN_MAX`] characters with its full length noted, so a 100 KB
/// name does not come back whole in every message.
struct Shown<'a>(&'a str);

/// Characters of a name an error message shows.
const SHOWN_MAX: usize = 200;

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(SHOWN_MAX) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}… ({} bytes in all)", &self.0[..cut], self.0.len()),
        }
    }
}

impl Error {
    /// The classic Windows error number for this error.
    pub fn win32(&self) -> u32 {
        match self {
            Error::InvalidName { .. } => 123,
            Error::InvalidHandle { .. } => 6,
            Error::NotFound(_) => 2,
            Error::AccessDenied(_) | Error::HandleTakingRefused { .. } => 5,
            Error::InvalidParameter(_) => 87,
            Error::FileInvalid => 1006,
            Error::MappedAlignment(_) => 1132,
            Error::NotOwner => 288,
            Error::TooManyPosts => 298,
            Error::ViewFault => 999,
            Error::Malformed(_) => 13,
            Error::Timeout => 121,
            Error::BrokenPipe => 109,
            Error::WaitTimeout => 258,
            Error::AbandonedWait => 735,
            Error::QueueFull => 1816,
            Error::PipeBusy => 231,
            Error::NoData => 232,
            Error::PipeNotConnected => 233,
            Error::PipeListening => 536,
            Error::PipeConnected => 535,
            Error::BadPipe(_) => 230,
            Error::ElementNotFound(_) => 1168,
            Error::OperationAborted => 995,
            Error::MoreData { .. } => 234,
            Error::InsufficientBuffer { .. } => 122,
            Error::AlreadyExists(_) => 183,
            Error::BadNetPath(_) | Error::NetPath(_) => 53,
            Error::InvalidWindowHandle => 1400,
            Error::MessageSyncOnly => 1159,
            Error::ClipboardNotOpen => 1418,
            Error::Remote { code, .. } => code.win32(),
            Error::InvalidBinding { .. } => 1700,
            Error::NotSupported(_) => 50,
            Error::Http { .. } => 12003,
            Error::Internet { code, .. } => *code,
            Error::UnknownInterface(_) => 1717,
            Error::ServerUnavailable(_) => 1722,
            Error::CallTimeout(_) => 1818,
            Error::NotRegistered(_) => 1753,
            Error::Dde(d) => Code::Dde(*d).win32(),
            Error::Io(e) => match e.raw_os_error() {
                Some(errno) if errno > 0 => errno_to_win32(errno),
                _ => kind_to_win32(e.kind()),
            },
        }
    }

    /// The error's classic code in its own space: `Win32` for every error
    /// of this crate's own; a remote fault's as its handler chose.
    pub fn code(&self) -> Code {
        match self {
            Error::Remote { code, .. } => *code,
            Error::Dde(d) => Code::Dde(*d),
            Error::InvalidBinding { .. }
            | Error::UnknownInterface(_)
            | Error::ServerUnavailable(_)
            | Error::CallTimeout(_)
            | Error::NotRegistered(_) => Code::RpcStatus(self.win32()),
            other => Code::Win32(other.win32()),
        }
    }

    /// The classic symbolic name (`ERROR_ACCESS_DENIED`, …).
    pub fn win32_name(&self) -> &'static str {
        match self.win32() {
            2 => "ERROR_FILE_NOT_FOUND",
            4 => "ERROR_TOO_MANY_OPEN_FILES",
            5 => "ERROR_ACCESS_DENIED",
            6 => "ERROR_INVALID_HANDLE",
            8 => "ERROR_NOT_ENOUGH_MEMORY",
            13 => "ERROR_INVALID_DATA",
            50 => "ERROR_NOT_SUPPORTED",
            23 => "ERROR_CRC",
            12002 => "ERROR_INTERNET_TIMEOUT",
            12003 => "ERROR_INTERNET_EXTENDED_ERROR",
            12005 => "ERROR_INTERNET_INVALID_URL",
            12007 => "ERROR_INTERNET_NAME_NOT_RESOLVED",
            12029 => "ERROR_INTERNET_CANNOT_CONNECT",
            12152 => "ERROR_HTTP_INVALID_SERVER_RESPONSE",
            12156 => "ERROR_HTTP_REDIRECT_FAILED",
            12157 => "ERROR_INTERNET_SECURITY_CHANNEL_ERROR",
            87 => "ERROR_INVALID_PARAMETER",
            109 => "ERROR_BROKEN_PIPE",
            121 => "ERROR_SEM_TIMEOUT",
            123 => "ERROR_INVALID_NAME",
            288 => "ERROR_NOT_OWNER",
            298 => "ERROR_TOO_MANY_POSTS",
            999 => "ERROR_SWAPERROR",
            1006 => "ERROR_FILE_INVALID",
            1132 => "ERROR_MAPPED_ALIGNMENT",
            258 => "WAIT_TIMEOUT",
            735 => "ERROR_ABANDONED_WAIT_0",
            1816 => "ERROR_NOT_ENOUGH_QUOTA",
            231 => "ERROR_PIPE_BUSY",
            232 => "ERROR_NO_DATA",
            233 => "ERROR_PIPE_NOT_CONNECTED",
            230 => "ERROR_BAD_PIPE",
            536 => "ERROR_PIPE_LISTENING",
            1168 => "ERROR_NOT_FOUND",
            995 => "ERROR_OPERATION_ABORTED",
            234 => "ERROR_MORE_DATA",
            122 => "ERROR_INSUFFICIENT_BUFFER",
            183 => "ERROR_ALREADY_EXISTS",
            53 => "ERROR_BAD_NETPATH",
            535 => "ERROR_PIPE_CONNECTED",
            1400 => "ERROR_INVALID_WINDOW_HANDLE",
            1159 => "ERROR_MESSAGE_SYNC_ONLY",
            1418 => "ERROR_CLIPBOARD_NOT_OPEN",
            1700 => "RPC_S_INVALID_STRING_BINDING",
            1717 => "RPC_S_UNKNOWN_IF",
            1722 => "RPC_S_SERVER_UNAVAILABLE",
            1723 => "RPC_S_SERVER_TOO_BUSY",
            1726 => "RPC_S_CALL_FAILED",
            1745 => "RPC_S_PROCNUM_OUT_OF_RANGE",
            1753 => "EPT_S_NOT_REGISTERED",
            1783 => "RPC_X_BAD_STUB_DATA",
            1818 => "RPC_S_CALL_CANCELLED",
            _ => "ERROR_GEN_FAILURE",
        }
    }

    pub(crate) fn sys(e: Errno) -> Error {
        Error::Io(e.into())
    }
}

/// The classic code of an I/O error that carries no errno (a host name
/// that does not resolve, an address without a port…): by its kind.
fn kind_to_win32(kind: io::ErrorKind) -> u32 {
    match kind {
        io::ErrorKind::NotFound => 2,
        io::ErrorKind::PermissionDenied => 5,
        io::ErrorKind::InvalidInput => 87,
        io::ErrorKind::InvalidData => 13,
        io::ErrorKind::TimedOut => 121,
        io::ErrorKind::BrokenPipe => 109,
        io::ErrorKind::OutOfMemory => 8,
        _ => 31,
    }
}

/// `errno` must be positive (rustix asserts it).
fn errno_to_win32(errno: i32) -> u32 {
    match Errno::from_raw_os_error(errno) {
        Errno::NOENT => 2,
        Errno::ACCESS | Errno::PERM => 5,
        Errno::MFILE | Errno::NFILE => 4,
        Errno::BADF => 6,
        Errno::NOMEM | Errno::NOSPC => 8,
        Errno::INVAL => 87,
        Errno::PIPE => 109,
        Errno::TIMEDOUT => 121,
        _ => 31,
    }
}

impl From<Errno> for Error {
    fn from(e: Errno) -> Self {
        Error::sys(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            Error::NotFound(_) => io::Error::new(io::ErrorKind::NotFound, e),
            Error::AccessDenied(_) | Error::HandleTakingRefused { .. } => {
                io::Error::new(io::ErrorKind::PermissionDenied, e)
            }
            Error::Timeout => io::Error::new(io::ErrorKind::TimedOut, e),
            Error::BrokenPipe | Error::NoData => io::Error::new(io::ErrorKind::BrokenPipe, e),
            Error::PipeNotConnected | Error::PipeListening => io::Error::new(io::ErrorKind::NotConnected, e),
            Error::PipeConnected => io::Error::new(io::ErrorKind::AlreadyExists, e),
            Error::AlreadyExists(_) => io::Error::new(io::ErrorKind::AlreadyExists, e),
            Error::InvalidName { .. } | Error::InvalidParameter(_) | Error::MappedAlignment(_) => {
                io::Error::new(io::ErrorKind::InvalidInput, e)
            }
            Error::Malformed(_) => io::Error::new(io::ErrorKind::InvalidData, e),
            other => io::Error::other(other),
        }
    }
}

/// A classic error code in the space it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// A Win32 error number (`ERROR_*`, `GetLastError`).
    Win32(u32),
    /// A COM `HRESULT` (`E_NOINTERFACE`, `RPC_E_*`, …), as its bit pattern.
    HResult(u32),
    /// A DDEML error (`DMLERR_*`, 0x4000 and up).
    Dde(u16),
    /// An RPC status (`RPC_S_*`; these share the Win32 number space).
    RpcStatus(u32),
}

/// `ERROR_GEN_FAILURE`: what a code with no Win32 equivalent reads as.
const GEN_FAILURE: u32 = 31;

impl Code {
    /// The nearest Win32 error number: the number itself for Win32 and RPC
    /// status codes, the embedded one for an `HRESULT` of the Win32
    /// facility (`0x8007xxxx`), and `ERROR_GEN_FAILURE` (31) otherwise.
    pub fn win32(self) -> u32 {
        match self {
            Code::Win32(c) | Code::RpcStatus(c) => c,
            Code::HResult(h) if h >> 16 == 0x8007 => h & 0xffff,
            Code::HResult(_) | Code::Dde(_) => GEN_FAILURE,
        }
    }

    /// The space's tag on the call wire (see `call`).
    pub(crate) fn space(self) -> (u8, u32) {
        match self {
            Code::Win32(c) => (0, c),
            Code::HResult(h) => (1, h),
            Code::Dde(d) => (2, u32::from(d)),
            Code::RpcStatus(s) => (3, s),
        }
    }

    /// The code of space tag `space`, value `value`; `None` for a tag or
    /// value no space has.
    pub(crate) fn from_space(space: u8, value: u32) -> Option<Code> {
        Some(match space {
            0 => Code::Win32(value),
            1 => Code::HResult(value),
            2 => Code::Dde(u16::try_from(value).ok()?),
            3 => Code::RpcStatus(value),
            _ => return None,
        })
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Code::Win32(c) => write!(f, "Win32 error {c}"),
            Code::HResult(h) => write!(f, "HRESULT {h:#010x}"),
            Code::Dde(d) => write!(f, "DMLERR {d:#06x}"),
            Code::RpcStatus(s) => write!(f, "RPC status {s}"),
        }
    }
}

/// Shorthand for `Result<T, switchboard::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_space_keeps_its_code_and_maps_to_win32() {
        assert_eq!(Code::Win32(5).win32(), 5);
        assert_eq!(Code::RpcStatus(1722).win32(), 1722);
        assert_eq!(Code::HResult(0x8007_0005).win32(), 5, "HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)");
        assert_eq!(Code::HResult(0x8000_4002).win32(), 31, "E_NOINTERFACE has no Win32 twin");
        assert_eq!(Code::Dde(0x4009).win32(), 31);
        let e = Error::Remote { code: Code::HResult(0x8000_4002), message: "no".into() };
        assert_eq!((e.code(), e.win32()), (Code::HResult(0x8000_4002), 31));
        assert_eq!(Error::NotFound("x".into()).code(), Code::Win32(2));
        assert_eq!(Code::HResult(0x8000_4002).to_string(), "HRESULT 0x80004002");
    }

    /// Regression: an I/O error without an errno (`tcp:127.0.0.1` without a
    /// port, an unresolvable host) panicked in `Errno::from_raw_os_error(0)`.
    #[test]
    fn win32_of_an_error_without_errno_never_panics() {
        let no_port = "127.0.0.1".parse::<std::net::SocketAddr>().map_err(io::Error::other);
        assert_eq!(Error::Io(no_port.unwrap_err()).win32(), 31);
        assert_eq!(Error::Io(io::Error::new(io::ErrorKind::InvalidInput, "no port")).win32(), 87);
        assert_eq!(Error::Io(io::Error::from_raw_os_error(0)).win32(), 31);
        assert_eq!(Error::Io(io::Error::from_raw_os_error(libc_enoent())).win32(), 2);
        let emfile = Error::sys(Errno::MFILE);
        assert_eq!((emfile.win32(), emfile.win32_name()), (4, "ERROR_TOO_MANY_OPEN_FILES"));
        assert_eq!(Error::sys(Errno::NFILE).win32(), 4);
        for e in ["x:1", "no-such-host.invalid:80"] {
            if let Err(err) = std::net::ToSocketAddrs::to_socket_addrs(e) {
                let _ = Error::Io(err).win32();
            }
        }
    }

    #[test]
    fn a_huge_name_is_not_echoed_whole() {
        let name = "n".repeat(100_000);
        for e in [
            Error::NotFound(name.clone()),
            Error::AlreadyExists(name.clone()),
            Error::InvalidName { name: name.clone(), why: "too long" },
        ] {
            let text = e.to_string();
            assert!(text.len() < 400 && text.contains("100000 bytes in all"), "{text}");
        }
        assert_eq!(Error::NotFound("short".into()).to_string(), r#"no object named "short""#);
    }

    fn libc_enoent() -> i32 {
        Errno::NOENT.raw_os_error()
    }
}
