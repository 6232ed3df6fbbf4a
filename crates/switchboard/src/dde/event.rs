//! What an instance's callback is told and answers, and the DDEML error
//! codes.

use crate::error::Result;

/// The DDEML error codes (`DMLERR_*`), the values of [`Error::Dde`](crate::Error::Dde).
pub mod dmlerr {
    /// A synchronous advise start timed out.
    pub const ADVACKTIMEOUT: u16 = 0x4000;
    /// The partner answered busy.
    pub const BUSY: u16 = 0x4001;
    /// A synchronous request timed out.
    pub const DATAACKTIMEOUT: u16 = 0x4002;
    /// A synchronous execute timed out.
    pub const EXECACKTIMEOUT: u16 = 0x4005;
    /// A parameter was not valid.
    pub const INVALIDPARAMETER: u16 = 0x4006;
    /// The partner did not process the transaction (unknown item, format, …).
    pub const NOTPROCESSED: u16 = 0x4009;
    /// No server accepted the conversation, or it has ended.
    pub const NO_CONV_ESTABLISHED: u16 = 0x400A;
    /// A synchronous poke timed out.
    pub const POKEACKTIMEOUT: u16 = 0x400B;
    /// A message could not be posted to the partner.
    pub const POSTMSG_FAILED: u16 = 0x400C;
    /// The partner ended the conversation, or died, before the
    /// transaction completed.
    pub const SERVER_DIED: u16 = 0x400E;
    /// An internal error.
    pub const SYS_ERROR: u16 = 0x400F;
    /// A synchronous advise stop timed out.
    pub const UNADVACKTIMEOUT: u16 = 0x4010;
    /// The transaction id is not one pending (abandoned or done).
    pub const UNFOUND_QUEUE_ID: u16 = 0x4011;

    /// The classic name of `code`.
    pub fn describe(code: u16) -> &'static str {
        match code {
            ADVACKTIMEOUT => "DMLERR_ADVACKTIMEOUT: the advise start timed out",
            BUSY => "DMLERR_BUSY: the partner is busy",
            DATAACKTIMEOUT => "DMLERR_DATAACKTIMEOUT: the request timed out",
            EXECACKTIMEOUT => "DMLERR_EXECACKTIMEOUT: the execute timed out",
            INVALIDPARAMETER => "DMLERR_INVALIDPARAMETER",
            NOTPROCESSED => "DMLERR_NOTPROCESSED: the partner did not process it",
            NO_CONV_ESTABLISHED => "DMLERR_NO_CONV_ESTABLISHED: no conversation",
            POKEACKTIMEOUT => "DMLERR_POKEACKTIMEOUT: the poke timed out",
            POSTMSG_FAILED => "DMLERR_POSTMSG_FAILED",
            SERVER_DIED => "DMLERR_SERVER_DIED: the partner ended or died first",
            SYS_ERROR => "DMLERR_SYS_ERROR",
            UNADVACKTIMEOUT => "DMLERR_UNADVACKTIMEOUT: the advise stop timed out",
            UNFOUND_QUEUE_ID => "DMLERR_UNFOUND_QUEUE_ID: no such transaction",
            _ => "DMLERR (unknown)",
        }
    }
}

/// A conversation's id within its instance (classic `HCONV`).
pub type ConvId = u64;

/// An asynchronous transaction's id (S09).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TxnId(pub u64);

/// What an instance's callback is told (classic `XTYP_*`). Names are as
/// the partner wrote them; compare them case-insensitively.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Server: a client offers a conversation on `topic` (`XTYP_CONNECT`);
    /// [`Reply::Ack`] accepts. (`System` is accepted without asking.)
    Connect {
        /// The service, as this instance registered it.
        service: &'a str,
        /// The topic asked for.
        topic: &'a str,
        /// The client's process.
        pid: u32,
    },
    /// Server: the conversation is open (`XTYP_CONNECT_CONFIRM`).
    ConnectConfirm {
        /// Its id.
        conv: ConvId,
        /// The service.
        service: &'a str,
        /// The topic.
        topic: &'a str,
    },
    /// Server: which (service, topic) pairs would it accept
    /// (`XTYP_WILDCONNECT`; `None` is a wildcard)? Answer
    /// [`Reply::Pairs`]; `System` is added.
    WildConnect {
        /// The service asked for, or any.
        service: Option<&'a str>,
        /// The topic asked for, or any.
        topic: Option<&'a str>,
    },
    /// Server: a request for `item` in `format` (`XTYP_REQUEST`): answer
    /// [`Reply::Data`].
    Request {
        /// The conversation.
        conv: ConvId,
        /// Its topic.
        topic: &'a str,
        /// The item.
        item: &'a str,
        /// The clipboard format wanted.
        format: u32,
    },
    /// Server: new data for `item` (`XTYP_POKE`): answer [`Reply::Ack`].
    Poke {
        /// The conversation.
        conv: ConvId,
        /// Its topic.
        topic: &'a str,
        /// The item.
        item: &'a str,
        /// The data's clipboard format.
        format: u32,
        /// The data.
        data: &'a [u8],
    },
    /// Server: a command (`XTYP_EXECUTE`): answer [`Reply::Ack`].
    Execute {
        /// The conversation.
        conv: ConvId,
        /// Its topic.
        topic: &'a str,
        /// The command string's bytes.
        command: &'a [u8],
    },
    /// Server: a client starts an advise loop (`XTYP_ADVSTART`):
    /// [`Reply::Ack`] accepts it.
    AdviseStart {
        /// The conversation.
        conv: ConvId,
        /// Its topic.
        topic: &'a str,
        /// The item.
        item: &'a str,
        /// The format.
        format: u32,
    },
    /// Server: the current value for an advise loop, after
    /// [`Dde::post_advise`](super::Dde::post_advise) (`XTYP_ADVREQ`): answer [`Reply::Data`].
    AdviseRequest {
        /// The conversation.
        conv: ConvId,
        /// Its topic.
        topic: &'a str,
        /// The item.
        item: &'a str,
        /// The format.
        format: u32,
    },
    /// Server: a client stopped an advise loop (`XTYP_ADVSTOP`).
    AdviseStop {
        /// The conversation.
        conv: ConvId,
        /// Its topic.
        topic: &'a str,
        /// The item.
        item: &'a str,
        /// The format.
        format: u32,
    },
    /// Client: an advise update (`XTYP_ADVDATA`): the data of a hot loop,
    /// `None` from a warm one. Answer [`Reply::Ack`].
    AdviseData {
        /// The conversation.
        conv: ConvId,
        /// Its topic.
        topic: &'a str,
        /// The item.
        item: &'a str,
        /// The format.
        format: u32,
        /// The new value (hot loops).
        data: Option<&'a [u8]>,
    },
    /// Either side: the conversation ended (`XTYP_DISCONNECT`); `died`
    /// when the partner's process or receiver is gone.
    Disconnect {
        /// The conversation.
        conv: ConvId,
        /// Whether the partner died rather than disconnected.
        died: bool,
    },
    /// Client: an asynchronous transaction completed
    /// (`XTYP_XACT_COMPLETE`).
    Complete {
        /// The conversation.
        conv: ConvId,
        /// The transaction.
        txn: TxnId,
        /// Its data (a request's), or its error.
        outcome: &'a Result<Vec<u8>>,
    },
}

/// A callback's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Accepted, processed (`TRUE`, `DDE_FACK`).
    Ack,
    /// The data asked for.
    Data(Vec<u8>),
    /// Not processed: unknown item, format or command (`DDE_FNOTPROCESSED`).
    NotProcessed,
    /// Busy (`DDE_FBUSY`): the partner gets `DMLERR_BUSY`.
    Busy,
    /// Hold this transaction, and the conversation's next ones, until
    /// [`Dde::enable_callback`](super::Dde::enable_callback) (`CBR_BLOCK`, S08).
    Block,
    /// The pairs a [`Event::WildConnect`] asks for.
    Pairs(Vec<(String, String)>),
}

/// What [`Dde::enable_callback`](super::Dde::enable_callback) does (classic `EC_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enable {
    /// Run every held transaction, in order, and let new ones run.
    All,
    /// Run the next held transaction only.
    One,
    /// Hold every transaction until enabled.
    Disable,
}
