//! The X11 side of the clipboard bridge (06-S11, feature `x11`): text on
//! the X `CLIPBOARD` selection and on switchboard's clipboard is one text.
//!
//! - **X to switchboard.** An X selection is delayed rendering by design:
//!   its owner converts on request. So when another X client (xclip, a
//!   desktop application) owns `CLIPBOARD`, a text [`Clipboard::get`] asks
//!   it for `UTF8_STRING` — large text arrives in pieces (`INCR`) — and
//!   returns that, as the newest text.
//! - **Switchboard to X.** [`serve`] takes `CLIPBOARD` and answers every
//!   request from switchboard's clipboard as it is at that moment
//!   (`TARGETS`, `UTF8_STRING`, `text/plain;charset=utf-8`, `STRING`,
//!   `TEXT`; `INCR` above the server's request size), until another client
//!   takes the selection. A selection needs a live owner, so someone must
//!   run it: `switchboard clip set` starts it in a process of its own that
//!   ends when another client takes the selection, as xclip does; a
//!   program calls [`serve`] on a thread or process of its choosing.
//!
//! The serving window carries `_SWITCHBOARD_CLIPBOARD` (the clipboard's
//! directory), so a get does not ask X for what switchboard already has.
//!
//! A new X owner is a change of the clipboard's contents: its text is
//! brought into the clipboard (sequence number up, listeners told) by the
//! first process that looks — a get, `sequence_number`, or a wait for a
//! change, which XFixes wakes when the owner changes.
//! Every wait on the X server has a deadline: an owner that never answers
//! costs a get [`X_TIMEOUT`], not a hang.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ChangeWindowAttributesAux, ConnectionExt, CreateWindowAux, EventMask, PropMode, Property,
    SelectionNotifyEvent, SelectionRequestEvent, Window, WindowClass, SELECTION_NOTIFY_EVENT,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::{COPY_DEPTH_FROM_PARENT, CURRENT_TIME, NONE};

use super::Clipboard;
use crate::error::{Error, Result};

/// How long a get waits for an X selection owner's answer.
pub const X_TIMEOUT: Duration = Duration::from_secs(10);

fn x_error(e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!("X11: {e}")))
}

struct Atoms {
    clipboard: Atom,
    targets: Atom,
    utf8: Atom,
    text_plain: Atom,
    text: Atom,
    incr: Atom,
    marker: Atom,
    property: Atom,
}

/// A connection to the X server with a window of our own.
struct X {
    conn: RustConnection,
    window: Window,
    atoms: Atoms,
}

impl X {
    /// Connects to `$DISPLAY`; `None` when there is no display.
    fn connect() -> Result<Option<X>> {
        if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
            return Ok(None);
        }
        let (conn, screen) = x11rb::connect(None).map_err(x_error)?;
        let root = conn.setup().roots[screen].root;
        let window = conn.generate_id().map_err(x_error)?;
        let aux = CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE);
        conn.create_window(COPY_DEPTH_FROM_PARENT, window, root, 0, 0, 1, 1, 0, WindowClass::INPUT_OUTPUT, 0, &aux)
            .map_err(x_error)?;
        let intern = |name: &[u8]| -> Result<Atom> {
            Ok(conn.intern_atom(false, name).map_err(x_error)?.reply().map_err(x_error)?.atom)
        };
        let atoms = Atoms {
            clipboard: intern(b"CLIPBOARD")?,
            targets: intern(b"TARGETS")?,
            utf8: intern(b"UTF8_STRING")?,
            text_plain: intern(b"text/plain;charset=utf-8")?,
            text: intern(b"TEXT")?,
            incr: intern(b"INCR")?,
            marker: intern(b"_SWITCHBOARD_CLIPBOARD")?,
            property: intern(b"_SWITCHBOARD_SELECTION")?,
        };
        Ok(Some(X { conn, window, atoms }))
    }

    /// The next event, waiting until `deadline`.
    fn next_event(&self, deadline: Instant) -> Result<Event> {
        loop {
            self.conn.flush().map_err(x_error)?;
            if let Some(e) = self.conn.poll_for_event().map_err(x_error)? {
                return Ok(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout);
            }
            switchboard_sys::socket::poll_readable(&[self.conn.stream().as_fd()], Some(left))?;
        }
    }

    /// The owner of `CLIPBOARD`, unless it serves switchboard clipboard `dir`.
    fn foreign_owner(&self, dir: &str) -> Result<Option<Window>> {
        let owner =
            self.conn.get_selection_owner(self.atoms.clipboard).map_err(x_error)?.reply().map_err(x_error)?.owner;
        if owner == NONE {
            return Ok(None);
        }
        let marker =
            self.conn.get_property(false, owner, self.atoms.marker, AtomEnum::STRING, 0, 4096).map_err(x_error)?;
        match marker.reply() {
            Ok(r) if r.value == dir.as_bytes() => Ok(None),
            // A window that vanished meanwhile: nobody to ask.
            Err(_) => Ok(None),
            Ok(_) => Ok(Some(owner)),
        }
    }

    /// Asks the owner for `UTF8_STRING` and reads it (`INCR` too).
    fn read_text(&self, deadline: Instant) -> Result<Option<Vec<u8>>> {
        let a = &self.atoms;
        self.conn.convert_selection(self.window, a.clipboard, a.utf8, a.property, CURRENT_TIME).map_err(x_error)?;
        loop {
            match self.next_event(deadline)? {
                Event::SelectionNotify(e) if e.requestor == self.window => {
                    if e.property == NONE {
                        return Ok(None);
                    }
                    break;
                }
                _ => {}
            }
        }
        let first = self.take_property()?;
        if first.0 != a.incr {
            return Ok(Some(first.1));
        }
        // INCR: each new value of the property is the next piece; an empty
        // one ends it. Deleting the property asks for the next.
        let mut text = Vec::new();
        loop {
            match self.next_event(deadline)? {
                Event::PropertyNotify(p)
                    if p.window == self.window && p.atom == a.property && p.state == Property::NEW_VALUE =>
                {
                    let (_, piece) = self.take_property()?;
                    if piece.is_empty() {
                        return Ok(Some(text));
                    }
                    text.extend_from_slice(&piece);
                }
                _ => {}
            }
        }
    }

    /// Reads and deletes our property: (its type, its bytes).
    fn take_property(&self) -> Result<(Atom, Vec<u8>)> {
        let r = self
            .conn
            .get_property(true, self.window, self.atoms.property, AtomEnum::ANY, 0, u32::MAX / 4)
            .map_err(x_error)?
            .reply()
            .map_err(x_error)?;
        Ok((r.type_, r.value))
    }
}

/// The text of `CLIPBOARD` when another X client owns it (not a
/// switchboard server of this clipboard); `None` without a display, an
/// owner, or text.
pub(crate) fn foreign_text(clip: &Clipboard) -> Result<Option<Vec<u8>>> {
    let Some(x) = X::connect()? else { return Ok(None) };
    if x.foreign_owner(&clip.dir.to_string_lossy())?.is_none() {
        return Ok(None);
    }
    x.read_text(Instant::now() + X_TIMEOUT)
}

/// Whether another X client owns `CLIPBOARD` (its text is the newest).
pub(crate) fn has_foreign_owner(clip: &Clipboard) -> bool {
    foreign_owner_id(clip).is_some()
}

/// Names the selection another X client holds (its owner window), to tell
/// a new one from the one already brought into the clipboard. (An owner
/// that takes the selection again with the same window looks the same:
/// most programs, xclip among them, make a new window for each copy.)
pub(crate) fn foreign_owner_id(clip: &Clipboard) -> Option<String> {
    let x = X::connect().ok().flatten()?;
    let owner = x.foreign_owner(&clip.dir.to_string_lossy()).ok().flatten()?;
    Some(format!("x11:{owner:#x}"))
}

/// Wakes when `CLIPBOARD` changes owner (XFixes), for a wait on the
/// clipboard: its descriptor turns readable.
pub(crate) struct Watch(X);

impl Watch {
    /// `None` without a display or without XFixes.
    pub(crate) fn new() -> Option<Watch> {
        use x11rb::protocol::xfixes::{self, ConnectionExt as _};
        let x = X::connect().ok().flatten()?;
        x.conn.xfixes_query_version(5, 0).ok()?.reply().ok()?;
        let root = x.conn.setup().roots.first()?.root;
        let mask = xfixes::SelectionEventMask::SET_SELECTION_OWNER;
        x.conn.xfixes_select_selection_input(root, x.atoms.clipboard, mask).ok()?;
        x.conn.flush().ok()?;
        Some(Watch(x))
    }

    /// The descriptor to poll.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.conn.stream().as_fd()
    }

    /// Takes the events that arrived.
    pub(crate) fn drain(&self) {
        while let Ok(Some(_)) = self.0.conn.poll_for_event() {}
    }
}

/// An `INCR` transfer under way: to `requestor`'s `property`, from `sent`.
struct Transfer {
    requestor: Window,
    property: Atom,
    target: Atom,
    data: Vec<u8>,
    sent: usize,
}

/// Takes `CLIPBOARD` on `$DISPLAY` and serves switchboard clipboard
/// `clip`'s text as it is at each request, until another X client takes
/// the selection (see the module docs). `ready` runs once the selection is
/// ours.
///
/// # Errors
/// `NotFound` without a display; X errors.
pub fn serve(clip: &Clipboard, ready: impl FnOnce()) -> Result<()> {
    let x = X::connect()?.ok_or_else(|| Error::NotFound("an X display ($DISPLAY)".into()))?;
    let a = &x.atoms;
    let dir = clip.dir.to_string_lossy().into_owned();
    x.conn
        .change_property8(PropMode::REPLACE, x.window, a.marker, AtomEnum::STRING, dir.as_bytes())
        .map_err(x_error)?;
    x.conn.set_selection_owner(x.window, a.clipboard, CURRENT_TIME).map_err(x_error)?;
    let owner = x.conn.get_selection_owner(a.clipboard).map_err(x_error)?.reply().map_err(x_error)?.owner;
    if owner != x.window {
        return Err(Error::AccessDenied("another X client took the clipboard selection at once".into()));
    }
    ready();
    // Pieces well under the server's request size.
    let chunk = (x.conn.maximum_request_bytes() / 4).clamp(4096, 256 << 10);
    let mut transfers: Vec<Transfer> = Vec::new();
    loop {
        match x.conn.wait_for_event().map_err(x_error)? {
            Event::SelectionClear(e) if e.selection == a.clipboard => return Ok(()),
            Event::SelectionRequest(req) => {
                let done = answer(&x, clip, &req, chunk).unwrap_or(None);
                transfers.extend(done);
            }
            Event::PropertyNotify(p) if p.state == Property::DELETE => {
                if let Some(at) = transfers.iter().position(|t| t.requestor == p.window && t.property == p.atom) {
                    let t = &mut transfers[at];
                    let end = (t.sent + chunk).min(t.data.len());
                    let piece = &t.data[t.sent..end];
                    let _ = x.conn.change_property8(PropMode::REPLACE, t.requestor, t.property, t.target, piece);
                    if piece.is_empty() {
                        transfers.swap_remove(at);
                    } else {
                        t.sent = end;
                    }
                    x.conn.flush().map_err(x_error)?;
                }
            }
            _ => {}
        }
    }
}

/// Answers one request; an `INCR` transfer it began, to go on with.
fn answer(x: &X, clip: &Clipboard, req: &SelectionRequestEvent, chunk: usize) -> Result<Option<Transfer>> {
    let a = &x.atoms;
    // Obsolete clients name no property: the target stands in for it.
    let property = if req.property == NONE { req.target } else { req.property };
    let text_targets = [a.utf8, a.text_plain, AtomEnum::STRING.into(), a.text];
    let mut transfer = None;
    let granted = if req.selection != a.clipboard {
        false
    } else if req.target == a.targets {
        let mut list = vec![a.targets];
        list.extend(text_targets);
        x.conn.change_property32(PropMode::REPLACE, req.requestor, property, AtomEnum::ATOM, &list).map_err(x_error)?;
        true
    } else if text_targets.contains(&req.target) {
        match clip.text_now() {
            None => false,
            Some(data) if data.len() <= chunk => {
                let ty = if req.target == a.text { a.utf8 } else { req.target };
                x.conn.change_property8(PropMode::REPLACE, req.requestor, property, ty, &data).map_err(x_error)?;
                true
            }
            Some(data) => {
                let aux = ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE);
                x.conn.change_window_attributes(req.requestor, &aux).map_err(x_error)?;
                let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                x.conn
                    .change_property32(PropMode::REPLACE, req.requestor, property, a.incr, &[len])
                    .map_err(x_error)?;
                let target = if req.target == a.text { a.utf8 } else { req.target };
                transfer = Some(Transfer { requestor: req.requestor, property, target, data, sent: 0 });
                true
            }
        }
    } else {
        false
    };
    let notify = SelectionNotifyEvent {
        response_type: SELECTION_NOTIFY_EVENT,
        sequence: 0,
        time: req.time,
        requestor: req.requestor,
        selection: req.selection,
        target: req.target,
        property: if granted { property } else { NONE },
    };
    x.conn.send_event(false, req.requestor, EventMask::NO_EVENT, notify).map_err(x_error)?;
    x.conn.flush().map_err(x_error)?;
    Ok(transfer)
}
