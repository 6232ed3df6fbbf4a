//! The management interface every [`super::Server`] serves (classic
//! `RpcMgmtInqIfIds`): which interfaces it serves, with their
//! descriptions, so a generic client (`switchboard rpc call`) can call any
//! method by name.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::rpc::interface;

/// One interface a server serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    /// The interface UUID, in its text form.
    pub uuid: String,
    /// `(major, minor)`.
    pub version: (u16, u16),
    /// Its description, as JSON ([`super::Interface::DESCRIPTION`]).
    pub description: String,
}

/// What every server answers about itself.
#[interface(uuid = "e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7", version = "1.0")]
pub trait Management {
    /// The interfaces served (this one included), with their descriptions.
    #[opnum(0)]
    fn interfaces(&self) -> Result<Vec<Served>>;
}

/// The server's answer, fixed when it is built.
pub(crate) struct Answer(pub(crate) Vec<Served>);

impl Management for Answer {
    fn interfaces(&self) -> Result<Vec<Served>> {
        Ok(self.0.clone())
    }
}
