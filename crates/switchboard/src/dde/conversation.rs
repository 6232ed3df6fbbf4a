//! A client's side of a conversation: its transactions.

use std::time::Duration;

use super::wire::{encode, Wire};
use super::{check_item, dmlerr, ConvId, Dde, Ending, TxnId, REPLY_PATIENCE};
use crate::clipboard::CF_TEXT;
use crate::error::Result;
use crate::time::Deadline;

/// A client's conversation (classic `HCONV`); dropping it disconnects
/// (the server is told).
pub struct Conversation {
    pub(super) dde: Dde,
    pub(super) id: ConvId,
}

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversation").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Text from data: without trailing NULs, lossily.
pub(super) fn text_of(data: Vec<u8>) -> String {
    String::from_utf8_lossy(&crate::clipboard::without_nuls(data)).into_owned()
}

impl Conversation {
    /// Its id (as events name it).
    pub fn id(&self) -> ConvId {
        self.id
    }

    /// The service and topic it is on.
    pub fn service_topic(&self) -> (String, String) {
        let st = self.dde.shared.state.borrow();
        st.convs.get(&self.id).map(|c| (c.service.to_string(), c.topic.to_string())).unwrap_or_default()
    }

    /// The server's process.
    pub fn server_pid(&self) -> u32 {
        self.dde.shared.state.borrow().convs.get(&self.id).map_or(0, |c| c.peer_pid)
    }

    /// Whether it is still open: `false` once the server disconnected or
    /// died.
    pub fn is_connected(&self) -> bool {
        self.dde.shared.state.borrow().convs.get(&self.id).is_some_and(|c| c.ended.is_none())
    }

    /// The instance it belongs to.
    pub fn instance(&self) -> &Dde {
        &self.dde
    }

    /// Requests `item` in `format` (S04).
    ///
    /// # Errors
    /// `Dde(NOTPROCESSED)` when the server does not have it, `Dde(BUSY)`,
    /// `Dde(DATAACKTIMEOUT)` at `timeout`, `Dde(SERVER_DIED)` when the
    /// server ended or died first, `Dde(NO_CONV_ESTABLISHED)` after it.
    pub fn request(&self, item: &str, format: u32, timeout: Duration) -> Result<Vec<u8>> {
        check_item(item)?;
        self.dde.transact(self.id, timeout, dmlerr::DATAACKTIMEOUT, |conv, txn| {
            encode(&Wire::Request { conv, txn, item, format })
        })
    }

    /// [`Conversation::request`] of `CF_TEXT`, as a string.
    ///
    /// # Errors
    /// As [`Conversation::request`].
    pub fn request_text(&self, item: &str, timeout: Duration) -> Result<String> {
        self.request(item, CF_TEXT, timeout).map(text_of)
    }

    /// Gives the server new data for `item` (S05).
    ///
    /// # Errors
    /// As [`Conversation::request`], with `Dde(POKEACKTIMEOUT)`.
    pub fn poke(&self, item: &str, format: u32, data: &[u8], timeout: Duration) -> Result<()> {
        check_item(item)?;
        self.dde
            .transact(self.id, timeout, dmlerr::POKEACKTIMEOUT, |conv, txn| {
                encode(&Wire::Poke { conv, txn, item, format, data })
            })
            .map(drop)
    }

    /// [`Conversation::poke`] of `CF_TEXT`.
    ///
    /// # Errors
    /// As [`Conversation::poke`].
    pub fn poke_text(&self, item: &str, text: &str, timeout: Duration) -> Result<()> {
        self.poke(item, CF_TEXT, text.as_bytes(), timeout)
    }

    /// Runs a command on the server (S05).
    ///
    /// # Errors
    /// As [`Conversation::request`], with `Dde(EXECACKTIMEOUT)`.
    pub fn execute(&self, command: &str, timeout: Duration) -> Result<()> {
        self.dde
            .transact(self.id, timeout, dmlerr::EXECACKTIMEOUT, |conv, txn| {
                encode(&Wire::Execute { conv, txn, command: command.as_bytes() })
            })
            .map(drop)
    }

    /// Starts a hot advise loop on `item` (S06): every change the server
    /// posts arrives as [`Event::AdviseData`](super::Event::AdviseData) with the data.
    ///
    /// # Errors
    /// As [`Conversation::request`], with `Dde(ADVACKTIMEOUT)`.
    pub fn advise(&self, item: &str, format: u32, timeout: Duration) -> Result<()> {
        self.start_advise(item, format, false, false, timeout)
    }

    /// Starts a warm advise loop (S06): changes arrive as
    /// [`Event::AdviseData`](super::Event::AdviseData) without data; request the item for it.
    ///
    /// # Errors
    /// As [`Conversation::advise`].
    pub fn advise_nodata(&self, item: &str, format: u32, timeout: Duration) -> Result<()> {
        self.start_advise(item, format, true, false, timeout)
    }

    /// Starts an ack-paced hot loop (S07): the server sends the next update
    /// only once this instance has taken the last (it acknowledges when
    /// its callback returns); values in between may be skipped, the
    /// latest always arrives.
    ///
    /// # Errors
    /// As [`Conversation::advise`].
    pub fn advise_ackreq(&self, item: &str, format: u32, timeout: Duration) -> Result<()> {
        self.start_advise(item, format, false, true, timeout)
    }

    fn start_advise(&self, item: &str, format: u32, warm: bool, ackreq: bool, timeout: Duration) -> Result<()> {
        check_item(item)?;
        self.dde
            .transact(self.id, timeout, dmlerr::ADVACKTIMEOUT, |conv, txn| {
                encode(&Wire::Advise { conv, txn, item, format, warm, ackreq })
            })
            .map(drop)
    }

    /// Stops the advise loop on (`item`, `format`).
    ///
    /// # Errors
    /// `Dde(NOTPROCESSED)` when there is none; `Dde(UNADVACKTIMEOUT)`.
    pub fn unadvise(&self, item: &str, format: u32, timeout: Duration) -> Result<()> {
        self.dde
            .transact(self.id, timeout, dmlerr::UNADVACKTIMEOUT, |conv, txn| {
                encode(&Wire::Unadvise { conv, txn, item, format })
            })
            .map(drop)
    }

    /// Starts a request and returns at once (S09): the outcome arrives as
    /// [`Event::Complete`](super::Event::Complete) with this id, unless [`Dde::abandon`]ed.
    ///
    /// # Errors
    /// As [`Conversation::request`], for starting it.
    pub fn request_async(&self, item: &str, format: u32) -> Result<TxnId> {
        check_item(item)?;
        self.start_async(|conv, txn| encode(&Wire::Request { conv, txn, item, format }))
    }

    /// Starts a poke and returns at once (S09).
    ///
    /// # Errors
    /// As [`Conversation::request_async`].
    pub fn poke_async(&self, item: &str, format: u32, data: &[u8]) -> Result<TxnId> {
        check_item(item)?;
        self.start_async(|conv, txn| encode(&Wire::Poke { conv, txn, item, format, data }))
    }

    /// Starts an execute and returns at once (S09).
    ///
    /// # Errors
    /// As [`Conversation::request_async`].
    pub fn execute_async(&self, command: &str) -> Result<TxnId> {
        self.start_async(|conv, txn| encode(&Wire::Execute { conv, txn, command: command.as_bytes() }))
    }

    fn start_async(&self, make: impl FnOnce(u64, u64) -> Vec<u8>) -> Result<TxnId> {
        let deadline = Deadline::after(REPLY_PATIENCE);
        self.dde.start(self.id, true, deadline, dmlerr::POSTMSG_FAILED, make).map(TxnId)
    }

    /// Disconnects (as dropping it does).
    pub fn disconnect(self) {}
}

impl Drop for Conversation {
    fn drop(&mut self) {
        // Dropped inside one of its own callbacks, it ends (and goes) once
        // that transaction is answered; otherwise now.
        if let Some(c) = self.dde.shared.state.borrow_mut().convs.get_mut(&self.id) {
            c.dropped = true;
        }
        self.dde.end(self.id, Ending::Local);
        let mut st = self.dde.shared.state.borrow_mut();
        let over = st.convs.get(&self.id).is_none_or(|c| c.ended.is_some());
        if over || !st.running.contains(&self.id) {
            st.convs.remove(&self.id);
        }
    }
}
