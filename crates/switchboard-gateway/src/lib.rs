//! Remote reach for switchboard (spec 13): a host's named pipes and
//! mailslots reached from other hosts, riding Zenoh instead of inventing a
//! distributed system.
//!
//! One [`Gateway`] runs per host (`switchboard gateway`). It
//! - exposes this host's pipes and mailslots under the key layout of
//!   [`keys`] (`switchboard/<host>/<kind>/<name>`, documented for other
//!   languages in `doc/gateway-keys.md`);
//! - serves this host's processes: `PipeClient::open(r"\\HOST\pipe\NAME")`
//!   and `MailslotClient::open(r"\\HOST\mailslot\NAME")` in the core crate
//!   ask it through the rendezvous ([`switchboard::remote`]), so programs
//!   never link Zenoh;
//! - relays each remote pipe connection with sequence numbers and
//!   credit-based backpressure ([`proto`]): a slow reader slows the writer
//!   and nothing buffers without bound.
//!
//! The gateway is written against [`Backend`]; `ZenohBackend` (feature
//! `zenoh`) is the engine. Off this machine, gateways speak mutual TLS only,
//! behind a deny-by-default access-control list of the peers' certificate
//! names.
//!
//! ```no_run
//! # #[cfg(feature = "zenoh")] {
//! use std::sync::Arc;
//! use switchboard_gateway::{Gateway, ZenohBackend, ZenohConfig};
//!
//! let config = ZenohConfig { listen: vec!["tcp/127.0.0.1:7447".into()], ..ZenohConfig::default() };
//! let gateway = Gateway::start(Arc::new(ZenohBackend::open(&config)?), "alpha", true)?;
//! // Other hosts now reach \\alpha\pipe\NAME; this host's processes reach theirs.
//! # drop(gateway);
//! # }
//! # Ok::<(), switchboard::Error>(())
//! ```

mod backend;
pub mod keys;
mod node;
pub mod proto;
mod relay;
#[cfg(feature = "zenoh")]
mod zenoh_backend;

pub use backend::{Backend, Guard, OnToken, Query, Sample};
pub use node::{Gateway, MAX_QUERIES};
#[cfg(feature = "zenoh")]
pub use zenoh_backend::{is_local, ZenohBackend, ZenohConfig};
