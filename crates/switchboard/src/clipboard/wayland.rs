//! The Wayland side of the clipboard bridge (06-S11, feature `wayland`),
//! through the compositor's data-control protocol (wl-clipboard-rs):
//! text on the Wayland clipboard and on switchboard's is one text.
//!
//! - **Wayland to switchboard.** When another client offers the clipboard,
//!   a text [`Clipboard::get`] asks it for `text/plain;charset=utf-8` and
//!   returns that, as the newest text, read within [`READ_TIMEOUT`].
//! - **Switchboard to Wayland.** [`serve`] offers switchboard's text as it
//!   is when it starts (the plain-text types) until another client
//!   replaces the selection; `switchboard clip set` runs it in a process of
//!   its own, as wl-copy does. (The X11 server answers from the clipboard
//!   at each request instead: data control hands the compositor a fixed
//!   offer.)
//!
//! The offer carries a marker type naming the clipboard's directory, so a
//! get does not ask Wayland for what switchboard already has. Another
//! client's offer is a change of the clipboard's contents, named by its
//! text (an offer has no name another process could know it by): it is
//! brought in at the first look, and data control's watch wakes a wait
//! for a change. Needs a
//! compositor with data control (wlroots ones such as sway; KDE; not
//! GNOME's Mutter).

use std::io::Read;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use wl_clipboard_rs::copy::{self, MimeSource, Source};
use wl_clipboard_rs::paste::{self, ClipboardType, Seat};

use super::Clipboard;
use crate::error::{Error, Result};

/// How long a get waits for the offering client's text.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

fn wl_error(e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!("Wayland: {e}")))
}

fn present() -> bool {
    std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty())
}

/// The start of the marker type of offers that serve clipboard `clip`.
fn marker(clip: &Clipboard) -> String {
    let hash = super::fnv64(clip.dir.to_string_lossy().as_bytes());
    format!("application/x-switchboard-clipboard-{hash:016x}")
}

/// The marker type of this process's offer: a server knows its own offer
/// is the selection when it sees it, not a previous server's.
fn own_marker(clip: &Clipboard) -> String {
    format!("{}-{}", marker(clip), std::process::id())
}

fn is_text(mime: &str) -> bool {
    mime.starts_with("text/plain") || matches!(mime, "UTF8_STRING" | "STRING" | "TEXT")
}

/// The types the current offer has, if another client's offer has text.
fn foreign_offer(clip: &Clipboard) -> Result<bool> {
    let types = match paste::get_mime_types(ClipboardType::Regular, Seat::Unspecified) {
        Ok(t) => t,
        Err(paste::Error::ClipboardEmpty | paste::Error::NoSeats | paste::Error::NoMimeType) => return Ok(false),
        Err(e) => return Err(wl_error(e)),
    };
    let ours = marker(clip);
    Ok(!types.iter().any(|t| t.starts_with(&ours)) && types.iter().any(|t| is_text(t)))
}

/// The text another Wayland client offers; `None` without a compositor,
/// an offer, or text in it.
pub(crate) fn foreign_text(clip: &Clipboard) -> Result<Option<Vec<u8>>> {
    if !present() || !foreign_offer(clip)? {
        return Ok(None);
    }
    let (mut pipe, _) =
        paste::get_contents(ClipboardType::Regular, Seat::Unspecified, paste::MimeType::Text).map_err(wl_error)?;
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut text = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout);
        }
        // The offering client writes when it will: never wait past the deadline.
        if !switchboard_sys::socket::poll_readable(&[pipe.as_fd()], Some(left))?[0] {
            continue;
        }
        match pipe.read(&mut buf) {
            Ok(0) => return Ok(Some(text)),
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
}

/// Wakes when the Wayland selection changes, for a wait on the clipboard:
/// a thread blocks in data control's watch and rings an eventfd.
pub(crate) struct Watch {
    bell: switchboard_sys::eventfd::EventFd,
    cancel: wl_clipboard_rs::watch::CancelHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    /// `None` without a compositor or without data control.
    pub(crate) fn new() -> Option<Watch> {
        if !present() {
            return None;
        }
        let mut watcher =
            wl_clipboard_rs::watch::Watcher::new(wl_clipboard_rs::watch::ClipboardType::Regular, Seat::Unspecified)
                .ok()?;
        let bell = switchboard_sys::eventfd::EventFd::new().ok()?;
        let ring = bell.try_clone().ok()?;
        let cancel = watcher.cancel_handle();
        let thread = std::thread::spawn(move || {
            while let Ok(Some(_)) = watcher.next_event() {
                ring.notify();
            }
        });
        Some(Watch { bell, cancel, thread: Some(thread) })
    }

    /// The descriptor to poll.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.bell.as_fd()
    }

    /// Takes the rings so far.
    pub(crate) fn drain(&self) {
        self.bell.drain();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether another Wayland client offers text (its text is the newest).
pub(crate) fn has_foreign_owner(clip: &Clipboard) -> bool {
    present() && foreign_offer(clip).unwrap_or(false)
}

/// Offers switchboard clipboard `clip`'s text on `$WAYLAND_DISPLAY` until
/// another client replaces the selection (see the module docs). `ready`
/// runs once the offer is the compositor's selection.
///
/// # Errors
/// `NotFound` without a compositor or without text; Wayland errors.
pub fn serve(clip: &Clipboard, ready: impl FnOnce()) -> Result<()> {
    if !present() {
        return Err(Error::NotFound("a Wayland compositor ($WAYLAND_DISPLAY)".into()));
    }
    let text = clip.text_now().ok_or_else(|| Error::NotFound("text on the clipboard".into()))?;
    let sources = vec![
        MimeSource { source: Source::Bytes(text.into()), mime_type: copy::MimeType::Text },
        MimeSource { source: Source::Bytes(Box::new([])), mime_type: copy::MimeType::Specific(own_marker(clip)) },
    ];
    let mut opts = copy::Options::new();
    opts.foreground(true);
    let prepared = opts.prepare_copy_multi(sources).map_err(wl_error)?;
    let server = std::thread::spawn(move || prepared.serve());
    // The offer is the selection once another connection sees it.
    let deadline = Instant::now() + READ_TIMEOUT;
    let ours = own_marker(clip);
    loop {
        let types = paste::get_mime_types(ClipboardType::Regular, Seat::Unspecified).unwrap_or_default();
        if types.contains(&ours) {
            break;
        }
        if server.is_finished() || Instant::now() >= deadline {
            return match server.join() {
                Ok(Err(e)) => Err(wl_error(e)),
                _ => Err(Error::Timeout),
            };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    ready();
    match server.join() {
        Ok(r) => r.map_err(wl_error),
        Err(_) => Err(wl_error("the serving thread panicked")),
    }
}
