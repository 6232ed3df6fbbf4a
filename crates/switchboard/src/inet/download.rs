//! `download`: a file over HTTP(S) to disk, resumable and validator-safe.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{agent, transport_error, Progress, Transfer};
use crate::error::{Error, Result};

/// How a download goes: its timeouts, retries, checks and progress.
pub struct DownloadOptions<'a> {
    /// How long connecting, or any read, may wait (default 30 s).
    pub timeout: Duration,
    /// How many times a failed attempt is tried again (default 3), each
    /// after a pause that doubles from half a second (up to 8 s), each
    /// resuming where the last stopped.
    pub retries: u32,
    /// The SHA-256 the file must have (hex); checked when it is complete.
    pub sha256: Option<String>,
    /// At most this many bytes a second (`None`: as fast as it comes).
    pub max_rate: Option<u64>,
    /// Called as bytes arrive (about every 100 ms, and at the end).
    pub progress: Option<&'a mut dyn FnMut(&Progress)>,
    /// More CA certificates (PEM) to trust for HTTPS, beside the public
    /// roots: a private CA's.
    pub ca_pem: Option<Vec<u8>>,
}

impl Default for DownloadOptions<'_> {
    fn default() -> Self {
        DownloadOptions {
            timeout: Duration::from_secs(30),
            retries: 3,
            sha256: None,
            max_rate: None,
            progress: None,
            ca_pem: None,
        }
    }
}

impl std::fmt::Debug for DownloadOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("sha256", &self.sha256)
            .field("max_rate", &self.max_rate)
            .finish_non_exhaustive()
    }
}

/// What a download did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Downloaded {
    /// The file's length.
    pub bytes: u64,
    /// Bytes that were already there from an earlier attempt and kept.
    pub resumed_from: u64,
    /// A partial file was thrown away because the server's file changed
    /// or the server ignored the range asked for.
    pub restarted: bool,
    /// The destination was already complete: nothing was fetched.
    pub already_complete: bool,
    /// The file's SHA-256 (hex).
    pub sha256: String,
}

/// What is kept beside a partial file (`DEST.part.json`): enough to ask
/// for the rest of the same file, and to know when it is not the same.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    length: Option<u64>,
}

impl State {
    /// The validator an `If-Range` can carry: a strong ETag, else the date.
    fn validator(&self) -> Option<&str> {
        match &self.etag {
            Some(e) if !e.starts_with("W/") => Some(e),
            _ => self.last_modified.as_deref(),
        }
    }
}

/// The partial file and its state file of `dest`.
fn partial_paths(dest: &Path) -> (PathBuf, PathBuf) {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (dest.with_file_name(format!("{name}.part")), dest.with_file_name(format!("{name}.part.json")))
}

/// Fetches `url` into `dest` (S01, S03, S07, S08).
///
/// - Bytes go to `DEST.part`, which is renamed to `dest` once complete and
///   checked: `dest` is never half-written.
/// - Beside it, `DEST.part.json` keeps the URL and the server's validator
///   (ETag or Last-Modified). A download stopped at any point — a broken
///   connection, a timeout, `kill -9` — continues from the partial file's
///   length with `Range` and `If-Range`. A server that ignores the range,
///   or whose file changed, answers with the whole file: the partial file
///   is started again from it, never appended to. Without a validator
///   nothing is resumed.
/// - A `dest` that exists already is asked about (a range from its end):
///   a server that says nothing is left ("416") leaves it as is.
/// - `options.sha256`, and a `Repr-Digest`/`Digest` header with a SHA-256,
///   are checked before the rename.
///
/// # Errors
/// `Http` with the status and reason; `Internet` for DNS (12007), connect
/// (12029), timeout (12002), TLS (12157) and nonsense answers (12152), and
/// a digest that does not match (23, the partial file is removed); `Io`
/// for the local files.
pub fn download(url: &str, dest: &Path, options: &mut DownloadOptions<'_>) -> Result<Downloaded> {
    with_retries(options.retries, || download_once(url, dest, options))
}

/// Runs `attempt` until it succeeds, fails for good, or has been tried
/// again `retries` times, pausing 0.5 s, 1 s, 2 s … (at most 8 s) between.
pub(super) fn with_retries<T>(retries: u32, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let mut tried = 0;
    loop {
        match attempt() {
            Err(e) if tried < retries && retryable(&e) => {
                std::thread::sleep(Duration::from_millis(500 << tried.min(4)));
                tried += 1;
            }
            other => return other,
        }
    }
}

/// Errors worth another attempt: the network's and the server's own trouble.
fn retryable(e: &Error) -> bool {
    match e {
        // 409: a resumed upload's offset moved (the broken attempt's
        // bytes were still arriving at the server): ask again.
        Error::Http { status, .. } => *status >= 500 || matches!(status, 408 | 409 | 429),
        Error::Internet { code, .. } => matches!(code, 12002 | 12029 | 12152),
        _ => false,
    }
}

fn download_once(url: &str, dest: &Path, options: &mut DownloadOptions<'_>) -> Result<Downloaded> {
    let (part, state_path) = partial_paths(dest);
    let agent = agent(options.timeout, options.ca_pem.as_deref())?;
    let saved: Option<State> =
        std::fs::read(&state_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).filter(|s: &State| s.url == url);
    let have = match (&saved, std::fs::metadata(&part)) {
        (Some(s), Ok(m)) if s.validator().is_some() => m.len(),
        _ => 0,
    };
    if have == 0 && saved.is_none() {
        if let Some(done) = already_complete(&agent, url, dest, options)? {
            return Ok(done);
        }
    }
    let mut request = agent.get(url);
    if have > 0 {
        let s = saved.as_ref().expect("a validator");
        request = request.set("Range", &format!("bytes={have}-"));
        request = request.set("If-Range", s.validator().expect("checked above"));
    }
    let response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(416, r)) if have > 0 => {
            // Nothing left past what we have: complete if it is all of it.
            let total = content_range_total(r.header("content-range"));
            if total == Some(have) || saved.as_ref().and_then(|s| s.length) == Some(have) {
                let done = Done { bytes: have, resumed_from: 0, restarted: false, sha256: sha256_file(&part)? };
                return finish(dest, &part, &state_path, done, None, options);
            }
            let _ = std::fs::remove_file(&part);
            let _ = std::fs::remove_file(&state_path);
            return download_once(url, dest, options);
        }
        Err(e) => return Err(http_error(url, e)),
    };
    let status = response.status();
    let state = State {
        url: url.to_owned(),
        etag: response.header("etag").map(str::to_owned),
        last_modified: response.header("last-modified").map(str::to_owned),
        length: None,
    };
    let digest = offered_sha256(&response);
    let (mut file, start, restarted, total) = match status {
        206 if have > 0 => {
            let start = content_range_start(response.header("content-range"));
            if start != Some(have) {
                return Err(Error::Internet {
                    code: 12152,
                    message: format!("{url}: asked for bytes from {have}, the server sent {start:?}"),
                });
            }
            let state = State { length: content_range_total(response.header("content-range")), ..state };
            save_state(&state_path, &state)?;
            let mut f = OpenOptions::new().append(true).open(&part)?;
            f.seek(std::io::SeekFrom::End(0))?;
            (f, have, false, state.length)
        }
        200 => {
            // The whole file: a fresh start (the server ignored the range,
            // or its file changed since the partial one).
            // Emptied before the new state is kept: a crash between the
            // two never pairs old bytes with the new file's validator.
            let length = response.header("content-length").and_then(|l| l.parse().ok());
            let f = File::create(&part)?;
            save_state(&state_path, &State { length, ..state })?;
            (f, 0, have > 0, length)
        }
        other => {
            return Err(Error::Internet {
                code: 12152,
                message: format!("{url}: unexpected status {other} {}", response.status_text()),
            })
        }
    };
    // The digest as the bytes go by (what was kept is read once first):
    // no second pass over a large file.
    let mut digest_so_far = Sha256::new();
    if start > 0 {
        hash_into(&mut digest_so_far, &part)?;
    }
    let mut reader = response.into_reader();
    let mut transfer = Transfer::new(start, total, options.max_rate);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(transport_error(url, &e)),
        };
        file.write_all(&buf[..n])?;
        digest_so_far.update(&buf[..n]);
        transfer.advance(n as u64, options.progress.as_deref_mut());
    }
    file.flush()?;
    drop(file);
    let got = transfer.done();
    if total.is_some_and(|t| t != got) {
        return Err(Error::Internet {
            code: 12152,
            message: format!("{url}: the connection closed at byte {got} of {}", total.unwrap_or(0)),
        });
    }
    transfer.finish(options.progress.as_deref_mut());
    let sha256 = hex(&digest_so_far.finalize());
    finish(dest, &part, &state_path, Done { bytes: got, resumed_from: start, restarted, sha256 }, digest, options)
}

/// Checks the complete partial file and renames it to `dest`.
fn finish(
    dest: &Path,
    part: &Path,
    state_path: &Path,
    done: Done,
    offered: Option<String>,
    options: &DownloadOptions<'_>,
) -> Result<Downloaded> {
    let Done { bytes, resumed_from, restarted, sha256 } = done;
    for want in options.sha256.iter().chain(offered.iter()) {
        if !want.eq_ignore_ascii_case(&sha256) {
            let _ = std::fs::remove_file(part);
            let _ = std::fs::remove_file(state_path);
            return Err(Error::Internet {
                code: 23,
                message: format!("{}: SHA-256 {sha256}, expected {want}", dest.display()),
            });
        }
    }
    std::fs::rename(part, dest)?;
    let _ = std::fs::remove_file(state_path);
    Ok(Downloaded { bytes, resumed_from, restarted, already_complete: false, sha256 })
}

/// A `dest` already there: complete when the server has nothing past its
/// end (or, ignoring ranges, has exactly its length), and its digest fits.
fn already_complete(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    options: &DownloadOptions<'_>,
) -> Result<Option<Downloaded>> {
    let Ok(meta) = std::fs::metadata(dest) else { return Ok(None) };
    let len = meta.len();
    let complete = match agent.head(url).call() {
        Ok(r) => r.header("content-length").and_then(|l| l.parse::<u64>().ok()) == Some(len),
        // A server that will not answer HEAD: the GET decides.
        Err(ureq::Error::Status(..)) => false,
        Err(e) => return Err(http_error(url, e)),
    };
    if !complete {
        return Ok(None);
    }
    let sha256 = sha256_file(dest)?;
    if options.sha256.as_ref().is_some_and(|w| !w.eq_ignore_ascii_case(&sha256)) {
        return Ok(None);
    }
    Ok(Some(Downloaded { bytes: len, already_complete: true, sha256, ..Downloaded::default() }))
}

fn save_state(path: &Path, state: &State) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(state).map_err(|e| Error::Malformed(e.to_string()))?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// `bytes START-END/TOTAL` → START.
fn content_range_start(v: Option<&str>) -> Option<u64> {
    v?.strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// `bytes START-END/TOTAL` or `bytes */TOTAL` → TOTAL.
fn content_range_total(v: Option<&str>) -> Option<u64> {
    v?.rsplit('/').next()?.trim().parse().ok()
}

/// A SHA-256 the server offers: `Repr-Digest: sha-256=:B64:` (RFC 9530)
/// or `Digest: SHA-256=B64` (RFC 3230), as hex.
fn offered_sha256(r: &ureq::Response) -> Option<String> {
    use base64::Engine as _;
    let field = r.header("repr-digest").or_else(|| r.header("digest"))?;
    let b64 = field.split(',').find_map(|p| {
        let (alg, v) = p.trim().split_once('=')?;
        alg.eq_ignore_ascii_case("sha-256").then(|| v.trim().trim_matches(':').to_owned())
    })?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some(hex(&raw))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a complete partial file is, before its checks.
struct Done {
    bytes: u64,
    resumed_from: u64,
    restarted: bool,
    sha256: String,
}

/// The SHA-256 of a file, as hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut h = Sha256::new();
    hash_into(&mut h, path)?;
    Ok(hex(&h.finalize()))
}

/// Feeds the whole of the file at `path` to `h`.
fn hash_into(h: &mut Sha256, path: &Path) -> Result<()> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(()),
            n => h.update(&buf[..n]),
        }
    }
}

/// The error for a failed request.
pub(super) fn http_error(url: &str, e: ureq::Error) -> Error {
    match e {
        ureq::Error::Status(status, r) => {
            Error::Http { status, reason: r.status_text().to_owned(), url: url.to_owned() }
        }
        ureq::Error::Transport(t) => super::transport_failure(url, &t),
    }
}
