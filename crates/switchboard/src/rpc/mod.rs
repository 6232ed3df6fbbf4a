//! RPC (spec 08): interfaces declared once in Rust, called like functions
//! across processes.
//!
//! - **[`interface`]** on a trait declares an interface: its UUID, its
//!   version and its methods with explicit opnums (S01). For a trait
//!   `Calc` it generates `CalcClient`, a proxy that *implements* `Calc`
//!   (a call is `calc.add(2, 3)?`, S03), `CalcServer<T>`, the dispatch for
//!   any `T: Calc`, and `CalcInterface`, the identity and a JSON
//!   description of the methods ([`Interface`]).
//! - **[`Server`]** serves implementations on one or more [`Binding`]s at
//!   once (S05): `local:NAME` (a shared-memory link through the
//!   rendezvous), `unix:NAME` (an abstract Unix socket), `tcp:HOST[PORT]`,
//!   and `pipe:\\.\pipe\NAME` (a message-mode named pipe).
//! - **[`Client`]** connects to a binding and binds interfaces; a bind is
//!   refused with `UnknownInterface` (1717) unless the server serves the
//!   interface at the same major version and a minor at least the
//!   client's (S02).
//! - **[`mapper`]**, the endpoint mapper: a server registers each
//!   interface with the bindings it listens on, and a client may find a
//!   server by interface alone ([`Client::find`], generated `…Client::find`;
//!   S06).
//! - **[`mgmt`]**: every server also serves the management interface,
//!   which lists the interfaces served with their descriptions (classic
//!   `RpcMgmtInqIfIds`); `switchboard rpc call` calls any method by name
//!   through it. [`calc`] is the example service.
//! - **[`auth`]**: authentication levels (S10): what each binding gives,
//!   what a server requires (default `Connect`: a plain `tcp:` binding
//!   admits nobody until told `AuthLevel::None`), mutual TLS over TCP
//!   (feature `tls`: the `tls` module).
//! - **[`context`]**: per-client state handles, run down (dropped) when the
//!   client disconnects or dies (S09).
//!
//! Every binding carries the same frames, which `doc/rpc-wire.md` documents
//! for other languages ([`wire`]; S04, S11): a Python client is in
//! `python/switchboard_rpc`.
//!
//! ## Errors (S07)
//! A method returns `Result<T, E>`. A server-side `Err` reaches the client
//! as the same `E`: for `switchboard::Error`, [`Error::Remote`] with the
//! code and message (or the typed error for RPC statuses the client knows);
//! an interface's own error type implements [`RemoteError`]. A connection
//! that breaks is `ServerUnavailable` (1722), a call not answered within
//! the client's call timeout is `CallTimeout` (1818): the client never hangs.
//!
//! ## Concurrency (S08)
//! A client may have many calls in flight ([`Client::start`] and
//! [`Client::finish`]); answers are matched by call id. The server serves
//! each connection on a thread of its own, a connection's calls in order,
//! and at most [`ServerBuilder::max_concurrent`] calls at once across all
//! connections: above that, a connection's next call waits and the
//! connection is not read, so its client's sends block (backpressure
//! through the link, never an unbounded queue).
//!
//! ## Hostile peers (S12)
//! Every frame is checked ([`wire::Frame::decode`]); a malformed or
//! oversized frame closes that connection, and the server goes on serving
//! the others. A handler that panics fails its call (1726) and the
//! connection goes on.
//!
//! ```
//! use switchboard::rpc::{interface, Server};
//!
//! #[interface(uuid = "0d5a9a0e-6c1b-4b8e-9f1e-3c2a1b0d9e8f", version = "1.0")]
//! pub trait Adder {
//!     #[opnum(0)]
//!     fn add(&self, a: i32, b: i32) -> switchboard::Result<i32>;
//! }
//!
//! struct Impl;
//! impl Adder for Impl {
//!     fn add(&self, a: i32, b: i32) -> switchboard::Result<i32> {
//!         Ok(a + b)
//!     }
//! }
//!
//! let name = format!("local:adder-doc-{}", std::process::id());
//! let server = Server::builder().serve(AdderServer(Impl)).build();
//! server.listen(&name)?;
//! let adder = AdderClient::connect(&name)?;
//! assert_eq!(adder.add(2, 3)?, 5);
//! # Ok::<(), switchboard::Error>(())
//! ```

pub mod auth;
mod binding;
pub mod calc;
mod client;
pub mod context;
pub mod mapper;
pub mod mgmt;
mod server;
#[cfg(feature = "tls")]
pub mod tls;
pub mod wire;

pub use auth::AuthLevel;
pub use binding::Binding;
pub use client::{CallFuture, CallId, Client, ClientOptions, DEFAULT_CALL_TIMEOUT};
pub use server::{Server, ServerBuilder, ServerStats, DEFAULT_MAX_CONCURRENT};
pub use switchboard_idl::interface;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Code, Error};
use wire::{FaultBody, InterfaceId};

/// RPC status codes (`RPC_S_*`) this module uses.
pub mod status {
    /// `RPC_S_ACCESS_DENIED` (as `ERROR_ACCESS_DENIED`): the connection is
    /// below the authentication level the server requires.
    pub const ACCESS_DENIED: u32 = 5;
    /// `RPC_S_INVALID_STRING_BINDING`.
    pub const INVALID_STRING_BINDING: u32 = 1700;
    /// `RPC_S_UNKNOWN_IF`: interface or version not served.
    pub const UNKNOWN_IF: u32 = 1717;
    /// `RPC_S_SERVER_UNAVAILABLE`.
    pub const SERVER_UNAVAILABLE: u32 = 1722;
    /// `RPC_S_CALL_FAILED`: the server failed the call (its handler panicked).
    pub const CALL_FAILED: u32 = 1726;
    /// `RPC_S_PROCNUM_OUT_OF_RANGE`: no method has this opnum.
    pub const PROCNUM_OUT_OF_RANGE: u32 = 1745;
    /// `RPC_X_BAD_STUB_DATA`: the arguments do not decode as the method's.
    pub const BAD_STUB_DATA: u32 = 1783;
    /// `RPC_S_CALL_CANCELLED`.
    pub const CALL_CANCELLED: u32 = 1818;
    /// `RPC_X_SS_CONTEXT_MISMATCH` reads as `ERROR_INVALID_HANDLE`: a
    /// context handle this connection does not hold.
    pub const CONTEXT_MISMATCH: u32 = 6;
}

/// An interface's identity and description (generated by [`interface`]).
pub trait Interface {
    /// The interface UUID.
    const ID: InterfaceId;
    /// `(major, minor)`.
    const VERSION: (u16, u16);
    /// The trait's name.
    const NAME: &'static str;
    /// JSON: `{"name", "uuid", "version": [major, minor], "methods": [{"name",
    /// "opnum", "args": [{"name", "type"}], "result", "error", "doc"}]}`.
    const DESCRIPTION: &'static str;
}

/// The server side of an interface (generated by [`interface`] as
/// `…Server<T>`): decodes a call's arguments, runs the method, encodes
/// its result.
pub trait Serve: Send + Sync + 'static {
    /// The interface served and its version.
    fn interface(&self) -> (InterfaceId, (u16, u16));
    /// The interface's description ([`Interface::DESCRIPTION`]).
    fn description(&self) -> &'static str;
    /// The trait's name ([`Interface::NAME`]).
    fn name(&self) -> &'static str;
    /// Runs method `opnum` on the arguments `args` (a MessagePack array)
    /// and appends its result's MessagePack to `out`.
    ///
    /// # Errors
    /// The method's error as a fault; `PROCNUM_OUT_OF_RANGE` or
    /// `BAD_STUB_DATA` for a call that is not one of the interface's.
    fn dispatch(&self, opnum: u32, args: &[u8], out: &mut Vec<u8>) -> Result<(), FaultBody>;
}

/// An error type that can cross the wire: a method's `E`. Implemented for
/// [`Error`]; implement it for an interface's own error type to have the
/// client receive that type.
pub trait RemoteError: Sized {
    /// The error as the fault the server sends.
    fn to_fault(&self) -> FaultBody;
    /// The error a client makes of a fault.
    fn from_fault(fault: FaultBody) -> Self;
    /// The error a client makes of a failure of the call itself (the
    /// connection broke, the call timed out, the result did not decode).
    fn from_error(error: Error) -> Self;
}

impl FaultBody {
    /// A fault with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> FaultBody {
        let (space, code) = code.space();
        FaultBody { code, space, message: message.into() }
    }

    /// The fault's code; `None` for a space no code has.
    pub fn code(&self) -> Option<Code> {
        Code::from_space(self.space, self.code)
    }
}

impl RemoteError for Error {
    fn to_fault(&self) -> FaultBody {
        match self {
            Error::Remote { code, message } => FaultBody::new(*code, message.clone()),
            other => FaultBody::new(other.code(), other.to_string()),
        }
    }

    fn from_fault(fault: FaultBody) -> Error {
        match fault.code() {
            Some(Code::RpcStatus(status::UNKNOWN_IF)) => Error::UnknownInterface(fault.message),
            Some(auth::ACCESS_DENIED) => Error::AccessDenied(fault.message),
            Some(code) => Error::Remote { code, message: fault.message },
            None => Error::Malformed(format!("a fault in unknown code space {}", fault.space)),
        }
    }

    fn from_error(error: Error) -> Error {
        error
    }
}

fn rpc_fault(status: u32, message: impl Into<String>) -> FaultBody {
    FaultBody::new(Code::RpcStatus(status), message)
}

/// Decodes a call's arguments (generated dispatch code calls this).
///
/// # Errors
/// `BAD_STUB_DATA` when they are not the method's.
#[doc(hidden)]
pub fn args<T: DeserializeOwned>(body: &[u8]) -> Result<T, FaultBody> {
    wire::from_body(body).map_err(|e| rpc_fault(status::BAD_STUB_DATA, e.to_string()))
}

/// Appends a method's result to `out`, or gives its fault (generated
/// dispatch code calls this).
///
/// # Errors
/// The method's error, as its fault.
#[doc(hidden)]
pub fn reply<T: Serialize, E: RemoteError>(out: &mut Vec<u8>, outcome: Result<T, E>) -> Result<(), FaultBody> {
    match outcome {
        Ok(value) => wire::write_body(out, &value).map_err(|e| e.to_fault()),
        Err(e) => Err(e.to_fault()),
    }
}

/// Runs `future` to its end on this thread, parking while it waits: how
/// a server runs an `async` method, on the connection's thread. The method
/// may await anything that wakes its waker (channels, switchboard's own
/// async calls); a future that needs a runtime of its own (a tokio timer
/// or socket) must enter one (`tokio::runtime::Handle::block_on`).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(value) => return value,
            // A wake-up, or a spurious one: poll again either way.
            std::task::Poll::Pending => std::thread::park(),
        }
    }
}

/// The fault for an opnum the interface does not have.
#[doc(hidden)]
pub fn no_such_method(opnum: u32) -> FaultBody {
    rpc_fault(status::PROCNUM_OUT_OF_RANGE, format!("the interface has no method with opnum {opnum}"))
}

/// Whether a client of `client` may bind a server of `server` (S02): the
/// same major, and the client's minor at most the server's.
pub fn compatible(client: (u16, u16), server: (u16, u16)) -> bool {
    client.0 == server.0 && client.1 <= server.1
}
