//! The clipboard (spec 06): one per user session, shared by every process
//! of that user, with no daemon.
//!
//! ## Where it lives
//! A clipboard is a private directory (mode 0700, owned by the user —
//! anything else is refused): by default `$SWITCHBOARD_CLIPBOARD_DIR`, else
//! `$XDG_RUNTIME_DIR/switchboard-clipboard` (a tmpfs the system empties at
//! logout: "one per user session"), else `/tmp/switchboard-clipboard-UID`.
//! [`Clipboard::at`] names any other directory (tests use their own).
//! In it:
//! - `lock` — whoever has the clipboard open holds its `flock`. The kernel
//!   drops the lock with the last descriptor of its open file, so a
//!   process that dies with the clipboard open leaves it unlocked (S12),
//!   and so does a thread that ends: the descriptor is thread-local.
//! - `index` — the contents: sequence number, owner, formats in placement
//!   order, each pointing at a data file or marked delayed. Replaced whole
//!   by rename, so a reader never sees half of one.
//! - `data.*` — one file per placed format: the data outlives the process
//!   that set it (S08) until it is replaced.
//! - `meta` (and `meta.lock`) — registered format names and listeners.
//!
//! ## Delayed rendering
//! An owner — the [`Receiver`] passed to [`Clipboard::open`] when the
//! clipboard is emptied — may place a format without data
//! ([`Clipboard::set_delayed`]). The first [`Clipboard::get`] of it sends
//! `WM_RENDERFORMAT` (wparam: the format) to the owner, whose procedure
//! supplies the data with [`Clipboard::render`] (without opening: the getter
//! holds the clipboard meanwhile), and the getter receives it. When the
//! owner's receiver is dropped, its procedure gets `WM_RENDERALLFORMATS`
//! first; formats it does not render then disappear. If the owner dies, its
//! delayed formats disappear; rendered data stays (S07).
//!
//! ## The desktop (S11)
//! With the `x11` feature and `$DISPLAY` set, text is shared with the X
//! clipboard both ways (the `x11` module: xclip and desktop applications
//! read what switchboard sets, and switchboard reads what they set, any
//! size); with the `wayland` feature and `$WAYLAND_DISPLAY` set, with the
//! Wayland clipboard through data control (the `wayland` module: wl-copy
//! and wl-paste). Without a desktop the clipboard works on its own.
//!
//! ## Decisions where the classic API leaves room
//! - `TEXT` is UTF-8 here (the classic one is in the ANSI code page);
//!   `UNICODETEXT` is UTF-16LE. Either is synthesized from the other, and
//!   `LOCALE` (0x0409, US English, 4 bytes) is added beside text that has none.
//!   A trailing NUL is carried over as a NUL.
//! - The previous owner's `WM_DESTROYCLIPBOARD` is posted, not sent: a hung
//!   or hostile previous owner cannot stall [`Clipboard::empty`].
//! - A render request waits at most [`RENDER_TIMEOUT`] (the classic 30 s);
//!   a format not rendered by then reads as absent.
//! - [`Clipboard::open`] fails at once with `AccessDenied` when another
//!   thread or process has the clipboard open, as the classic call does;
//!   [`Clipboard::open_timeout`] waits for it.
//!
//! ```
//! use switchboard::clipboard::{Clipboard, CF_TEXT, CF_UNICODETEXT};
//!
//! let dir = std::env::temp_dir().join(format!("sbdoc-clip-{}", std::process::id()));
//! let clip = Clipboard::at(&dir)?;
//! clip.open(None)?;
//! clip.empty()?;
//! clip.set(CF_TEXT, b"hello")?;
//! let wide = clip.get(CF_UNICODETEXT)?.unwrap(); // synthesized from TEXT
//! assert_eq!(wide, [b'h', 0, b'e', 0, b'l', 0, b'l', 0, b'o', 0]);
//! clip.close()?;
//! assert!(clip.get(CF_TEXT).is_err()); // not open: ERROR_CLIPBOARD_NOT_OPEN
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), switchboard::Error>(())
//! ```

#[cfg(feature = "wayland")]
pub mod wayland;
#[cfg(feature = "x11")]
pub mod x11;

use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::message::{find_receiver, Posted, Receiver, Sender};
use crate::time::Deadline;

/// Text in UTF-8 (the classic `CF_TEXT`, here UTF-8).
pub const CF_TEXT: u32 = 1;
/// A bitmap handle (placed as bytes here).
pub const CF_BITMAP: u32 = 2;
/// Text in the OEM code page.
pub const CF_OEMTEXT: u32 = 7;
/// A device-independent bitmap.
pub const CF_DIB: u32 = 8;
/// Text in UTF-16LE.
pub const CF_UNICODETEXT: u32 = 13;
/// A list of files.
pub const CF_HDROP: u32 = 15;
/// The locale of the text (an LCID, 4 bytes).
pub const CF_LOCALE: u32 = 16;
/// A version 5 device-independent bitmap.
pub const CF_DIBV5: u32 = 17;
/// The first registered format id.
pub const FIRST_REGISTERED: u32 = 0xC000;

/// Asks the owner to render a delayed format (wparam: the format).
pub const WM_RENDERFORMAT: u32 = 0x0305;
/// Asks the owner to render every delayed format (it is going away).
pub const WM_RENDERALLFORMATS: u32 = 0x0306;
/// Tells the previous owner the clipboard was emptied by another.
pub const WM_DESTROYCLIPBOARD: u32 = 0x0307;
/// Tells a listener the contents changed.
pub const WM_CLIPBOARDUPDATE: u32 = 0x031D;

/// The standard formats by name.
pub const STANDARD: [(u32, &str); 8] = [
    (CF_TEXT, "CF_TEXT"),
    (CF_BITMAP, "CF_BITMAP"),
    (CF_OEMTEXT, "CF_OEMTEXT"),
    (CF_DIB, "CF_DIB"),
    (CF_UNICODETEXT, "CF_UNICODETEXT"),
    (CF_HDROP, "CF_HDROP"),
    (CF_LOCALE, "CF_LOCALE"),
    (CF_DIBV5, "CF_DIBV5"),
];

/// How long a get waits for the owner to render a delayed format.
pub const RENDER_TIMEOUT: Duration = Duration::from_secs(30);
/// The US-English LCID of a synthesized `CF_LOCALE`.
const LOCALE_EN_US: u32 = 0x0409;
/// Largest index or meta file read (a peer may have written anything).
const MAX_META: u64 = 16 << 20;
/// How long registering a format or a listener waits for another doing so.
const META_WAIT: Duration = Duration::from_secs(10);

/// The owner of the contents: a process and, for delayed rendering, its receiver.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Owner {
    pid: u32,
    /// The receiver's name and id.
    receiver: Option<(String, u64)>,
}

/// One placed format: its data file, or `None` while delayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    format: u32,
    data: Option<String>,
}

/// The contents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Index {
    seq: u64,
    owner: Option<Owner>,
    formats: Vec<Entry>,
    /// The desktop selection last brought in (see `sync_desktop`).
    desktop: Option<String>,
}

/// A listener's receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Listener {
    pid: u32,
    name: String,
    id: u64,
}

/// Registered formats and listeners.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Meta {
    registered: Vec<(u32, String)>,
    listeners: Vec<Listener>,
}

/// The clipboard this thread has open.
struct Held {
    dir: PathBuf,
    /// Holds the `flock`; dropping it (or the thread ending) lets go.
    _lock: File,
    owner: Option<Owner>,
    changed: bool,
}

thread_local! {
    static HELD: RefCell<Vec<Held>> = const { RefCell::new(Vec::new()) };
}

/// Clipboards whose contents a receiver of this process owns, with its id
/// (asked to render all when it is dropped).
static OWNED: std::sync::Mutex<Vec<(PathBuf, u64)>> = std::sync::Mutex::new(Vec::new());

/// A user session's clipboard (see the module docs).
#[derive(Clone, Debug)]
pub struct Clipboard {
    dir: PathBuf,
}

fn io(e: std::io::Error) -> Error {
    Error::Io(e)
}

fn alive(pid: u32) -> bool {
    pid == std::process::id() || switchboard_sys::process::is_alive(pid)
}

/// A data file name this module made (a peer may have written any name).
fn safe_name(name: &str) -> bool {
    name.starts_with("data.") && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
}

fn utf8_to_utf16(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(bytes).encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn utf16_to_utf8(bytes: &[u8]) -> Vec<u8> {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16_lossy(&units).into_bytes()
}

/// Takes `file`'s lock, waiting at most `timeout` for another holder (the
/// kernel has no timed `flock`: retried with a growing pause); whether it
/// was taken.
fn lock_within(file: &File, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    while !switchboard_sys::file::try_lock(file.as_fd())? {
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
    Ok(true)
}

/// FNV-1a, 64-bit: a stable name for bytes (a directory, a text).
pub(crate) fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Text without the trailing NULs a classic text format may carry.
pub(crate) fn without_nuls(mut text: Vec<u8>) -> Vec<u8> {
    while text.last() == Some(&0) {
        text.pop();
    }
    text
}

fn is_text(format: u32) -> bool {
    format == CF_TEXT || format == CF_UNICODETEXT
}

impl Clipboard {
    /// This user's session clipboard (see the module docs for where).
    ///
    /// # Errors
    /// As [`Clipboard::at`].
    pub fn user() -> Result<Clipboard> {
        let dir = match (std::env::var_os("SWITCHBOARD_CLIPBOARD_DIR"), std::env::var_os("XDG_RUNTIME_DIR")) {
            (Some(d), _) => PathBuf::from(d),
            (None, Some(run)) => PathBuf::from(run).join("switchboard-clipboard"),
            (None, None) => {
                std::env::temp_dir().join(format!("switchboard-clipboard-{}", switchboard_sys::process::uid()))
            }
        };
        Clipboard::at(dir)
    }

    /// The clipboard in directory `dir`, made (mode 0700) if missing.
    ///
    /// # Errors
    /// `AccessDenied` when `dir` is not a directory of this user's that
    /// only this user can enter (a symlink, another owner, group or world
    /// access); I/O errors.
    pub fn at(dir: impl AsRef<Path>) -> Result<Clipboard> {
        let dir = dir.as_ref().to_path_buf();
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        let m = std::fs::symlink_metadata(&dir).map_err(io)?;
        if !m.is_dir() || m.uid() != switchboard_sys::process::uid() || m.mode() & 0o077 != 0 {
            return Err(Error::AccessDenied(format!(
                "the clipboard directory {} is not a private directory of this user's (mode 0700, not a symlink)",
                dir.display()
            )));
        }
        let clip = Clipboard { dir };
        clip.open_file("lock", true)?;
        Ok(clip)
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn open_file(&self, name: &str, create: bool) -> Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(create)
            .create(create)
            .mode(0o600)
            .custom_flags(switchboard_sys::file::NOFOLLOW)
            .open(self.dir.join(name))
            .map_err(io)
    }

    // ----- open and close (S01, S12) -----

    /// Opens the clipboard for this thread (S01); `owner` becomes the
    /// owner at the next [`Clipboard::empty`]. Opening again from the same
    /// thread succeeds.
    ///
    /// # Errors
    /// `AccessDenied` when another thread or process has it open.
    pub fn open(&self, owner: Option<&Receiver>) -> Result<()> {
        self.open_timeout(owner, Duration::ZERO)
    }

    /// [`Clipboard::open`], waiting at most `timeout` for another holder to close it.
    ///
    /// # Errors
    /// As [`Clipboard::open`].
    pub fn open_timeout(&self, owner: Option<&Receiver>, timeout: Duration) -> Result<()> {
        if self.held(|_| ()).is_ok() {
            return Ok(());
        }
        let lock = self.open_file("lock", true)?;
        if !lock_within(&lock, timeout)? {
            return Err(Error::AccessDenied("the clipboard is open in another thread or process".into()));
        }
        let owner = Owner { pid: std::process::id(), receiver: owner.map(|r| (r.name().to_owned(), r.id().0)) };
        HELD.with(|h| {
            h.borrow_mut().push(Held { dir: self.dir.clone(), _lock: lock, owner: Some(owner), changed: false })
        });
        Ok(())
    }

    /// Closes it (S01); listeners hear of a change made while it was open (S10).
    ///
    /// # Errors
    /// `ClipboardNotOpen` (1418) when this thread has not opened it.
    pub fn close(&self) -> Result<()> {
        let held = HELD.with(|h| {
            let mut h = h.borrow_mut();
            let at = h.iter().position(|x| x.dir == self.dir)?;
            Some(h.remove(at))
        });
        let held = held.ok_or(Error::ClipboardNotOpen)?;
        let changed = held.changed;
        drop(held);
        if changed {
            self.notify_listeners();
        }
        Ok(())
    }

    /// Runs `f` on this thread's hold of the clipboard.
    fn held<T>(&self, f: impl FnOnce(&mut Held) -> T) -> Result<T> {
        HELD.with(|h| h.borrow_mut().iter_mut().find(|x| x.dir == self.dir).map(f)).ok_or(Error::ClipboardNotOpen)
    }

    // ----- the index -----

    fn read_meta_file<T: for<'de> Deserialize<'de> + Default>(&self, name: &str) -> T {
        let Ok(file) = std::fs::File::open(self.dir.join(name)) else { return T::default() };
        let mut bytes = Vec::new();
        if file.take(MAX_META).read_to_end(&mut bytes).is_err() {
            return T::default();
        }
        // Written only by this module, but any process of the user may
        // scribble on it: what does not decode reads as empty.
        postcard::from_bytes(&bytes).unwrap_or_default()
    }

    fn write_meta_file<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        static N: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!("{name}.tmp.{}.{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let bytes = postcard::to_stdvec(value).expect("in-memory serialization cannot fail");
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, self.dir.join(name)).map_err(io)
    }

    fn index(&self) -> Index {
        self.read_meta_file("index")
    }

    fn write_index(&self, index: &Index) -> Result<()> {
        self.write_meta_file("index", index)
    }

    fn write_data(&self, seq: u64, data: &[u8]) -> Result<String> {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!("data.{seq}.{}.{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        std::fs::write(self.dir.join(&name), data).map_err(io)?;
        Ok(name)
    }

    fn remove_data(&self, entry: &Entry) {
        if let Some(name) = entry.data.as_deref().filter(|n| safe_name(n)) {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }

    /// Removes what writers killed part-way left (under the lock, after
    /// `index` was written): data files it does not name, and temporary
    /// files of processes that are gone.
    fn sweep(&self, index: &Index) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let named: Vec<&str> = index.formats.iter().filter_map(|e| e.data.as_deref()).collect();
        for name in entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()) {
            let writer = |n: &str| n.split('.').nth(2).and_then(|p| p.parse::<u32>().ok());
            let stale = if safe_name(&name) {
                // data.SEQ.PID.N: another writer's may be on its way into the index.
                !named.contains(&name.as_str()) && writer(&name).is_none_or(|p| !alive(p) || p == std::process::id())
            } else if let Some((_, rest)) = name.split_once(".tmp.") {
                rest.split('.').next().and_then(|p| p.parse::<u32>().ok()).is_some_and(|p| !alive(p))
            } else {
                false
            };
            if stale {
                let _ = std::fs::remove_file(self.dir.join(&name));
            }
        }
    }

    fn read_data(&self, name: &str) -> Option<Vec<u8>> {
        safe_name(name).then(|| std::fs::read(self.dir.join(name)).ok()).flatten()
    }

    /// Drops delayed formats whose owner is gone (S07); whether any were.
    fn prune_orphans(&self, index: &mut Index) -> bool {
        let owner_alive = index.owner.as_ref().is_some_and(|o| alive(o.pid));
        let before = index.formats.len();
        index.formats.retain(|e| e.data.is_some() || owner_alive);
        index.formats.len() != before
    }

    // ----- contents (S02–S07, S09) -----

    /// Empties it and makes this thread's opener the owner (S02); the
    /// previous owner's receiver is told (`WM_DESTROYCLIPBOARD`).
    ///
    /// # Errors
    /// `ClipboardNotOpen`.
    pub fn empty(&self) -> Result<()> {
        let owner = self.held(|h| h.owner.clone())?;
        let mut index = self.index();
        let previous = index.owner.take();
        let dropped = std::mem::take(&mut index.formats);
        index.owner = owner.clone();
        index.seq += 1;
        self.publish(&index, dropped)?;
        self.sweep(&index);
        self.held(|h| h.changed = true)?;
        if let Some(id) = owner.and_then(|o| o.receiver).map(|(_, id)| id) {
            let mut owned = OWNED.lock().unwrap_or_else(|p| p.into_inner());
            owned.retain(|(d, _)| *d != self.dir);
            owned.push((self.dir.clone(), id));
        }
        if let Some(Owner { pid, receiver: Some((name, _)) }) = previous {
            if alive(pid) {
                if let Ok(to) = find_receiver(&name) {
                    let _ = to.post(WM_DESTROYCLIPBOARD, 0, 0);
                }
            }
        }
        Ok(())
    }

    /// Places `data` as `format` (S03), replacing what that format held.
    ///
    /// # Errors
    /// `ClipboardNotOpen`; `InvalidParameter` for format 0.
    pub fn set(&self, format: u32, data: &[u8]) -> Result<()> {
        self.held(|_| ())?;
        if format == 0 {
            return Err(Error::InvalidParameter("format 0 is not a format"));
        }
        let mut index = self.index();
        index.seq += 1;
        let name = self.write_data(index.seq, data)?;
        let replaced = self.place(&mut index, Entry { format, data: Some(name) });
        self.publish(&index, replaced)?;
        self.held(|h| h.changed = true)
    }

    /// Places UTF-8 text (as [`CF_TEXT`]; the other text formats follow).
    ///
    /// # Errors
    /// As [`Clipboard::set`].
    pub fn set_text(&self, text: &str) -> Result<()> {
        self.set(CF_TEXT, text.as_bytes())
    }

    /// Puts `entry` in `index` (in the place of the same format, if there):
    /// the entry it replaced, whose data goes once the index is published.
    fn place(&self, index: &mut Index, entry: Entry) -> Option<Entry> {
        match index.formats.iter_mut().find(|e| e.format == entry.format) {
            Some(old) => Some(std::mem::replace(old, entry)),
            None => {
                index.formats.push(entry);
                None
            }
        }
    }

    /// Writes `index`, *then* removes the data of `dropped` entries: a
    /// writer killed in between leaves files the next sweep takes, never
    /// an index naming data that is gone.
    fn publish(&self, index: &Index, dropped: impl IntoIterator<Item = Entry>) -> Result<()> {
        self.write_index(index)?;
        for e in dropped {
            self.remove_data(&e);
        }
        Ok(())
    }

    /// Places `format` without data, for the owner to render when first
    /// asked (S07).
    ///
    /// # Errors
    /// `ClipboardNotOpen`; `InvalidParameter` unless this thread emptied
    /// the clipboard as owner with a receiver.
    pub fn set_delayed(&self, format: u32) -> Result<()> {
        let owner = self.held(|h| h.owner.clone())?;
        let mut index = self.index();
        let ours = owner.is_some_and(|o| o.receiver.is_some() && index.owner.as_ref() == Some(&o));
        if !ours || format == 0 {
            return Err(Error::InvalidParameter(
                "delayed rendering needs the clipboard emptied by an owner with a receiver",
            ));
        }
        index.seq += 1;
        let replaced = self.place(&mut index, Entry { format, data: None });
        self.publish(&index, replaced)?;
        self.held(|h| h.changed = true)
    }

    /// Supplies the data of a delayed format, from the owner's procedure
    /// answering `WM_RENDERFORMAT` or `WM_RENDERALLFORMATS` (no open needed).
    ///
    /// # Errors
    /// `AccessDenied` when this process is not the owner; `InvalidParameter`
    /// when `format` is not waiting to be rendered.
    pub fn render(&self, format: u32, data: &[u8]) -> Result<()> {
        let mut index = self.index();
        if index.owner.as_ref().is_none_or(|o| o.pid != std::process::id()) {
            return Err(Error::AccessDenied("only the clipboard's owner renders its formats".into()));
        }
        if !index.formats.iter().any(|e| e.format == format && e.data.is_none()) {
            return Err(Error::InvalidParameter("the format is not waiting to be rendered"));
        }
        let name = self.write_data(index.seq, data)?;
        let replaced = self.place(&mut index, Entry { format, data: Some(name) });
        self.publish(&index, replaced)
    }

    /// The data of `format` (S06): a copy, synthesized for the text formats
    /// and the locale (S05), rendered first by the owner when delayed (S07).
    /// With the `x11` feature, text another X client holds is the newest
    /// text (S11, see the `x11` module).
    ///
    /// # Errors
    /// `ClipboardNotOpen` when this thread has not opened it.
    pub fn get(&self, format: u32) -> Result<Option<Vec<u8>>> {
        self.held(|_| ())?;
        let selection = self.desktop_selection();
        self.import_desktop(selection.as_ref())?;
        if is_text(format) {
            // Read afresh from X (the same owner window may hold new text);
            // Wayland's was read to name the selection.
            let text = match selection {
                Some((_, Some(text))) => Some(text),
                _ => self.desktop_text(),
            };
            if let Some(text) = text {
                return Ok(Some(if format == CF_TEXT { text } else { utf8_to_utf16(&text) }));
            }
        }
        self.get_stored(format)
    }

    /// The data of `format` from the stored contents (no desktop asked).
    fn get_stored(&self, format: u32) -> Result<Option<Vec<u8>>> {
        let mut index = self.index();
        if self.prune_orphans(&mut index) {
            index.seq += 1;
            self.write_index(&index)?;
        }
        if let Some(entry) = index.formats.iter().find(|e| e.format == format).cloned() {
            return Ok(match entry.data {
                Some(name) => self.read_data(&name),
                None => self.rendered(&index, format),
            });
        }
        let placed = |f: u32| index.formats.iter().any(|e| e.format == f);
        Ok(match format {
            CF_TEXT if placed(CF_UNICODETEXT) => self.get_stored(CF_UNICODETEXT)?.map(|w| utf16_to_utf8(&w)),
            CF_UNICODETEXT if placed(CF_TEXT) => self.get_stored(CF_TEXT)?.map(|t| utf8_to_utf16(&t)),
            CF_LOCALE if placed(CF_TEXT) || placed(CF_UNICODETEXT) => Some(LOCALE_EN_US.to_le_bytes().to_vec()),
            _ => None,
        })
    }

    /// UTF-8 text, from whichever text format is there.
    ///
    /// # Errors
    /// As [`Clipboard::get`].
    pub fn get_text(&self) -> Result<Option<String>> {
        Ok(self.get(CF_TEXT)?.map(|t| String::from_utf8_lossy(&without_nuls(t)).into_owned()))
    }

    /// The selection another desktop client holds now, if one does: its
    /// name (X11: the owner window; Wayland: a hash of its text) and the
    /// text when naming it took reading it.
    fn desktop_selection(&self) -> Option<(String, Option<Vec<u8>>)> {
        #[cfg(feature = "x11")]
        if let Some(id) = x11::foreign_owner_id(self) {
            return Some((id, None));
        }
        #[cfg(feature = "wayland")]
        if let Some(text) = wayland::foreign_text(self).ok().flatten() {
            return Some((format!("wayland:{:016x}:{}", fnv64(&text), text.len()), Some(text)));
        }
        None
    }

    /// Brings `selection` (from [`Clipboard::desktop_selection`]) into the
    /// clipboard if it is new (S09, S10): its text replaces the contents,
    /// the sequence number goes up, and (when the clipboard closes)
    /// listeners hear of it. Under this thread's open.
    fn import_desktop(&self, selection: Option<&(String, Option<Vec<u8>>)>) -> Result<()> {
        let Some((id, text)) = selection else { return Ok(()) };
        let mut index = self.index();
        if index.desktop.as_deref() == Some(id.as_str()) {
            return Ok(());
        }
        let text: std::borrow::Cow<'_, [u8]> = match text {
            Some(t) => t.into(),
            None => match self.desktop_text() {
                Some(t) => t.into(),
                None => return Ok(()),
            },
        };
        index.seq += 1;
        let name = self.write_data(index.seq, &text)?;
        let dropped = std::mem::replace(&mut index.formats, vec![Entry { format: CF_TEXT, data: Some(name) }]);
        index.owner = None;
        index.desktop = Some(id.clone());
        self.publish(&index, dropped)?;
        self.held(|h| h.changed = true)
    }

    /// [`Clipboard::import_desktop`] from a thread that may not have the
    /// clipboard open (it opens it for the import when one is due).
    fn sync_desktop(&self) {
        let Some(selection) = self.desktop_selection() else { return };
        if self.index().desktop.as_deref() == Some(selection.0.as_str()) {
            return;
        }
        if self.held(|_| ()).is_ok() {
            let _ = self.import_desktop(Some(&selection));
        } else if self.open_timeout(None, Duration::from_millis(100)).is_ok() {
            // (Briefly: whoever has it open brings the change in at its next look.)
            let _ = self.import_desktop(Some(&selection));
            let _ = self.close();
        }
    }

    /// Text another desktop client holds (X11, then Wayland, as built):
    /// the newest text. A desktop that cannot be reached is no desktop: the
    /// clipboard works on its own.
    fn desktop_text(&self) -> Option<Vec<u8>> {
        #[cfg(feature = "x11")]
        if let Some(text) = x11::foreign_text(self).ok().flatten() {
            return Some(text);
        }
        #[cfg(feature = "wayland")]
        if let Some(text) = wayland::foreign_text(self).ok().flatten() {
            return Some(text);
        }
        None
    }

    /// Whether another desktop client holds text.
    fn desktop_has_text(&self) -> bool {
        #[cfg(feature = "x11")]
        if x11::has_foreign_owner(self) {
            return true;
        }
        #[cfg(feature = "wayland")]
        if wayland::has_foreign_owner(self) {
            return true;
        }
        false
    }

    /// The text on the clipboard now, in UTF-8 without trailing NULs, read
    /// without opening it (for a server of the text to others: each read
    /// sees one whole index).
    #[cfg(any(feature = "x11", feature = "wayland"))]
    pub(crate) fn text_now(&self) -> Option<Vec<u8>> {
        let index = self.index();
        let data =
            |f: u32| index.formats.iter().find(|e| e.format == f)?.data.as_deref().and_then(|n| self.read_data(n));
        let text = data(CF_TEXT).or_else(|| data(CF_UNICODETEXT).map(|w| utf16_to_utf8(&w)))?;
        Some(without_nuls(text))
    }

    /// Asks the owner to render delayed `format`, and reads what it gave.
    fn rendered(&self, index: &Index, format: u32) -> Option<Vec<u8>> {
        let (name, _) = index.owner.as_ref()?.receiver.clone()?;
        let to = find_receiver(&name).ok()?;
        let _ = to.send_timeout(WM_RENDERFORMAT, u64::from(format), 0, RENDER_TIMEOUT, false);
        let after = self.index();
        let data = after.formats.iter().find(|e| e.format == format)?.data.clone()?;
        self.read_data(&data)
    }

    /// The formats there, in placement order, synthesized ones after (S03, S05).
    ///
    /// # Errors
    /// `ClipboardNotOpen`.
    pub fn formats(&self) -> Result<Vec<u32>> {
        self.held(|_| ())?;
        self.import_desktop(self.desktop_selection().as_ref())?;
        Ok(self.available())
    }

    fn available(&self) -> Vec<u32> {
        let mut index = self.index();
        self.prune_orphans(&mut index);
        let mut out: Vec<u32> = index.formats.iter().map(|e| e.format).collect();
        if !out.iter().any(|f| is_text(*f)) && self.desktop_has_text() {
            out.push(CF_TEXT);
        }
        let has = |out: &[u32], f| out.contains(&f);
        if has(&out, CF_TEXT) && !has(&out, CF_UNICODETEXT) {
            out.push(CF_UNICODETEXT);
        }
        if has(&out, CF_UNICODETEXT) && !has(&out, CF_TEXT) {
            out.push(CF_TEXT);
        }
        if out.iter().any(|f| is_text(*f)) && !has(&out, CF_LOCALE) {
            out.push(CF_LOCALE);
        }
        out
    }

    /// Whether `format` can be had (no open needed).
    pub fn is_format_available(&self, format: u32) -> bool {
        self.available().contains(&format)
    }

    /// The owner's process, if the contents have one alive.
    pub fn owner_pid(&self) -> Option<u32> {
        self.index().owner.map(|o| o.pid).filter(|p| alive(*p))
    }

    /// Increases at every change of the contents (S09), a new X selection
    /// owner's included (see the `x11` module).
    pub fn sequence_number(&self) -> u64 {
        self.sync_desktop();
        self.index().seq
    }

    /// Waits until the sequence number differs from `after` (S10), and returns it.
    ///
    /// # Errors
    /// `Timeout` at the deadline.
    pub fn wait_for_change(&self, after: u64, timeout: impl Into<Deadline>) -> Result<u64> {
        let deadline = timeout.into();
        #[cfg(feature = "x11")]
        let x11_watch = x11::Watch::new();
        #[cfg(feature = "wayland")]
        let wayland_watch = wayland::Watch::new();
        let watch = switchboard_sys::file::DirWatch::new(&self.dir)?;
        loop {
            let seq = self.sequence_number();
            if seq != after {
                return Ok(seq);
            }
            if deadline.passed() {
                return Err(Error::Timeout);
            }
            #[allow(unused_mut)]
            let mut fds = vec![watch.as_fd()];
            #[cfg(feature = "x11")]
            fds.extend(x11_watch.as_ref().map(|d| d.fd()));
            #[cfg(feature = "wayland")]
            fds.extend(wayland_watch.as_ref().map(|d| d.fd()));
            switchboard_sys::socket::poll_readable(&fds, deadline.remaining())?;
            watch.drain();
            #[cfg(feature = "x11")]
            if let Some(d) = &x11_watch {
                d.drain();
            }
            #[cfg(feature = "wayland")]
            if let Some(d) = &wayland_watch {
                d.drain();
            }
        }
    }

    // ----- registered formats (S04) and listeners (S10) -----

    /// Runs `f` on the registry under its lock, and keeps what it made.
    fn with_meta<T>(&self, f: impl FnOnce(&mut Meta) -> Result<T>) -> Result<T> {
        let lock = self.open_file("meta.lock", true)?;
        if !lock_within(&lock, META_WAIT)? {
            return Err(Error::Timeout);
        }
        let mut meta: Meta = self.read_meta_file("meta");
        let out = f(&mut meta)?;
        self.write_meta_file("meta", &meta)?;
        Ok(out)
    }

    /// The id of format `name` (S04): in `0xC000..=0xFFFF`, the same for the
    /// same name (case-insensitively) in every process.
    ///
    /// # Errors
    /// `InvalidParameter` for an empty name or when every id is taken.
    pub fn register_format(&self, name: &str) -> Result<u32> {
        if name.is_empty() || name.len() > 255 {
            return Err(Error::InvalidParameter("a format name has 1 to 255 bytes"));
        }
        self.with_meta(|meta| {
            if let Some((id, _)) = meta.registered.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)) {
                return Ok(*id);
            }
            let id = FIRST_REGISTERED + meta.registered.len() as u32;
            if id > 0xFFFF {
                return Err(Error::InvalidParameter("every registered format id is taken"));
            }
            meta.registered.push((id, name.to_owned()));
            Ok(id)
        })
    }

    /// A format's name: a standard one's (`CF_TEXT`), or the one it was
    /// registered under.
    pub fn describe_format(&self, id: u32) -> Option<String> {
        match STANDARD.iter().find(|(i, _)| *i == id) {
            Some((_, name)) => Some((*name).to_owned()),
            None => self.format_name(id),
        }
    }

    /// The format `text` names: a number, a standard name (`CF_TEXT`,
    /// `TEXT`, any case), or a name to register.
    ///
    /// # Errors
    /// As [`Clipboard::register_format`].
    pub fn format_by_name(&self, text: &str) -> Result<u32> {
        if let Ok(n) = text.parse::<u32>() {
            return Ok(n);
        }
        let bare = text.strip_prefix("CF_").or_else(|| text.strip_prefix("cf_")).unwrap_or(text);
        match STANDARD.iter().find(|(_, n)| n[3..].eq_ignore_ascii_case(bare)) {
            Some((id, _)) => Ok(*id),
            None => self.register_format(text),
        }
    }

    /// The name a format was registered under.
    pub fn format_name(&self, id: u32) -> Option<String> {
        let meta: Meta = self.read_meta_file("meta");
        meta.registered.into_iter().find(|(i, _)| *i == id).map(|(_, n)| n)
    }

    /// Posts `WM_CLIPBOARDUPDATE` to `rx` after every change (S10).
    ///
    /// # Errors
    /// `InvalidParameter` when it listens already.
    pub fn add_listener(&self, rx: &Receiver) -> Result<()> {
        let me = Listener { pid: std::process::id(), name: rx.name().to_owned(), id: rx.id().0 };
        self.with_meta(|meta| {
            meta.listeners.retain(|l| alive(l.pid));
            if meta.listeners.iter().any(|l| l.id == me.id && l.pid == me.pid) {
                return Err(Error::InvalidParameter("the receiver listens already"));
            }
            meta.listeners.push(me);
            Ok(())
        })
    }

    /// Stops posting to `rx`.
    ///
    /// # Errors
    /// `InvalidParameter` when it does not listen.
    pub fn remove_listener(&self, rx: &Receiver) -> Result<()> {
        let (pid, id) = (std::process::id(), rx.id().0);
        self.with_meta(|meta| {
            let before = meta.listeners.len();
            meta.listeners.retain(|l| !(l.id == id && l.pid == pid));
            match meta.listeners.len() == before {
                true => Err(Error::InvalidParameter("the receiver does not listen")),
                false => Ok(()),
            }
        })
    }

    fn notify_listeners(&self) {
        let meta: Meta = self.read_meta_file("meta");
        for l in meta.listeners.iter().filter(|l| alive(l.pid)) {
            if let Ok(to) = find_receiver(&l.name) {
                let _ = to.post(WM_CLIPBOARDUPDATE, 0, 0);
            }
        }
    }
}

/// Called when a receiver is dropped: if it owns a clipboard's contents,
/// its procedure is asked to render every delayed format
/// (`WM_RENDERALLFORMATS`), and those it leaves disappear (S07).
pub(crate) fn receiver_closing(rx: &Receiver) {
    let dirs: Vec<PathBuf> = {
        let mut owned = OWNED.lock().unwrap_or_else(|p| p.into_inner());
        let mine = owned.iter().filter(|(_, id)| *id == rx.id().0).map(|(d, _)| d.clone()).collect();
        owned.retain(|(_, id)| *id != rx.id().0);
        mine
    };
    for dir in dirs {
        let clip = Clipboard { dir };
        let index = clip.index();
        let ours = index.owner.as_ref().is_some_and(|o| {
            o.pid == std::process::id() && o.receiver.as_ref().is_some_and(|(_, id)| *id == rx.id().0)
        });
        if !ours || index.formats.iter().all(|e| e.data.is_some()) {
            continue;
        }
        if clip.open_timeout(None, META_WAIT).is_err() {
            continue;
        }
        let me = Sender { pid: std::process::id(), uid: switchboard_sys::process::uid(), receiver: Some(rx.id()) };
        rx.dispatch(&Posted { msg: WM_RENDERALLFORMATS, wparam: 0, lparam: 0, from: me });
        let mut index = clip.index();
        let before = index.formats.len();
        index.formats.retain(|e| e.data.is_some());
        if index.formats.len() != before {
            index.seq += 1;
            let _ = clip.write_index(&index);
            let _ = clip.held(|h| h.changed = true);
        }
        let _ = clip.close();
    }
}
