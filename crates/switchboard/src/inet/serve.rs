//! `serve`: a folder over HTTP (S06), on axum.
//!
//! - `GET`/`HEAD` of a file: `ETag` (strong: inode, length, modification
//!   time), `Last-Modified`, `Accept-Ranges`; one byte range (`206`, or
//!   `416` past the end) when `If-Range` still matches; `If-None-Match`
//!   answers `304`. Bodies are streamed from the file.
//! - `GET` of a folder: a listing page (`DIR/`; `DIR` redirects there).
//! - `PUT`: an upload, streamed to a temporary file beside the target and
//!   renamed once complete; over the size limit is `413`, and nothing is
//!   left. The refused body is read (and dropped) up to 64 MiB first, so a
//!   client that sends before it reads hears the 413 instead of a reset.
//! - `PUT` with `Content-Range` resumes an upload (S08): `bytes */TOTAL`
//!   with no body asks how much is kept (`200` with `Upload-Offset: N`);
//!   `bytes START-END/TOTAL` appends when START is what is kept (else
//!   `409` with the offset), keeps every byte that arrived even when the
//!   connection breaks, and the file appears once all TOTAL bytes are
//!   there. Each carries `Upload-Id`, the file's SHA-256: kept bytes of
//!   another file are thrown away (offset 0), and the complete file is
//!   checked against it before it appears. The kept part is
//!   `.sb-partial-NAME` (and its id `.sb-partial-NAME.id`), hidden from the
//!   listing.
//! - No way out of the folder: a path is taken apart into plain names (a
//!   `..`, encoded or not, is `400`), and what it names must resolve inside
//!   the folder (a symbolic link out of it is `403`).

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::error::{Error, Result};

/// What a server allows.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Accept uploads (`PUT`) at all (default yes).
    pub uploads: bool,
    /// The largest upload, in bytes (default 1 GiB).
    pub max_upload: u64,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { uploads: true, max_upload: 1 << 30 }
    }
}

/// A running file server: serves until dropped.
#[derive(Debug)]
pub struct Served {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct App {
    root: PathBuf,
    options: ServeOptions,
}

/// Serves `dir` on `listen` (`127.0.0.1:8080`; port 0 picks one) until the
/// returned [`Served`] is dropped. Listen on loopback unless the folder is
/// meant for the network: nothing here asks who is calling.
///
/// # Errors
/// `NotFound` for a folder that is not there; the system's error when the
/// address cannot be bound.
pub fn serve(dir: &Path, listen: &str, options: ServeOptions) -> Result<Served> {
    let root = std::fs::canonicalize(dir).map_err(|_| Error::NotFound(dir.display().to_string()))?;
    if !root.is_dir() {
        return Err(Error::InvalidParameter("not a folder"));
    }
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = Arc::new(App { root, options });
    let thread = std::thread::Builder::new().name("http-serve".into()).spawn(move || {
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            let router = axum::Router::new().fallback(handle).with_state(app);
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
    })?;
    Ok(Served { addr, stop: Some(stop), thread: Some(thread) })
}

async fn handle(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(rel) = relative(uri.path()) else { return status(StatusCode::BAD_REQUEST, "a path must stay inside") };
    match method {
        Method::GET | Method::HEAD => get(&app, &rel, uri.path(), &headers).await,
        Method::PUT if app.options.uploads => put(&app, &rel, &headers, body).await,
        Method::PUT => status(StatusCode::FORBIDDEN, "uploads are off"),
        _ => {
            let mut r = status(StatusCode::METHOD_NOT_ALLOWED, "GET, HEAD or PUT");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, PUT"));
            r
        }
    }
}

fn status(code: StatusCode, why: &'static str) -> Response {
    (code, format!("{code}: {why}\n")).into_response()
}

/// The request path as plain names under the folder: `None` for anything
/// else (`..`, a NUL, bad percent-encoding).
fn relative(path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8().ok()?;
    if decoded.contains('\0') {
        return None;
    }
    let mut rel = PathBuf::new();
    for c in Path::new(decoded.trim_start_matches('/')).components() {
        match c {
            Component::Normal(n) => rel.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(rel)
}

/// `path` if it resolves inside the folder (following links).
fn inside(app: &App, path: &Path) -> std::result::Result<PathBuf, StatusCode> {
    match std::fs::canonicalize(path) {
        Ok(real) if real.starts_with(&app.root) => Ok(real),
        Ok(_) => Err(StatusCode::FORBIDDEN),
        Err(_) => Err(StatusCode::NOT_FOUND),
    }
}

/// A strong ETag and the Last-Modified date of a file.
fn validators(meta: &std::fs::Metadata) -> (String, String) {
    use std::os::unix::fs::MetadataExt;
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let nanos = modified.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (format!("\"{:x}-{:x}-{:x}\"", meta.ino(), meta.len(), nanos), httpdate::fmt_http_date(modified))
}

async fn get(app: &App, rel: &Path, raw: &str, headers: &HeaderMap) -> Response {
    let real = match inside(app, &app.root.join(rel)) {
        Ok(r) => r,
        Err(code) => return status(code, "not here"),
    };
    let Ok(meta) = std::fs::metadata(&real) else { return status(StatusCode::NOT_FOUND, "not here") };
    if meta.is_dir() {
        if !raw.ends_with('/') {
            let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("{raw}/")) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        return listing(&real, raw);
    }
    let (etag, modified) = validators(&meta);
    let len = meta.len();
    let get_header = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    if get_header(header::IF_NONE_MATCH).is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        return with_validators(StatusCode::NOT_MODIFIED.into_response(), &etag, &modified);
    }
    // A range, when asked for and the validator still matches.
    let range_ok = get_header(header::IF_RANGE).is_none_or(|v| v == etag || v == modified);
    let range = get_header(header::RANGE).filter(|_| range_ok).and_then(|r| parse_range(r, len));
    let (code, start, count) = match range {
        Some(Err(())) => {
            let mut r = status(StatusCode::RANGE_NOT_SATISFIABLE, "past the end");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
        Some(Ok((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None => (StatusCode::OK, 0, len),
    };
    let mut file = match tokio::fs::File::open(&real).await {
        Ok(f) => f,
        Err(_) => return status(StatusCode::FORBIDDEN, "cannot read"),
    };
    if start > 0 && file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return status(StatusCode::INTERNAL_SERVER_ERROR, "cannot seek");
    }
    let stream = tokio_util::io::ReaderStream::new(file.take(count));
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = code;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if code == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    with_validators(r, &etag, &modified)
}

fn with_validators(mut r: Response, etag: &str, modified: &str) -> Response {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(modified) {
        h.insert(header::LAST_MODIFIED, v);
    }
    r
}

/// One range `bytes=A-B`, `bytes=A-` or `bytes=-N` of a `len`-byte file:
/// `None` when not one such range (served whole), `Err` past the end.
fn parse_range(v: &str, len: u64) -> Option<std::result::Result<(u64, u64), ()>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let n: u64 = b.parse().ok()?;
            if n == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len.checked_sub(1)?)
        }
        (false, _) => {
            let a: u64 = a.parse().ok()?;
            let b: u64 = if b.is_empty() { u64::MAX } else { b.parse().ok()? };
            if a >= len {
                return Some(Err(()));
            }
            if b < a {
                return None;
            }
            (a, b.min(len - 1))
        }
        (true, true) => return None,
    };
    Some(Ok(range))
}

fn listing(dir: &Path, raw: &str) -> Response {
    let Ok(entries) = std::fs::read_dir(dir) else { return status(StatusCode::FORBIDDEN, "cannot list") };
    let mut names: Vec<(String, bool)> = entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.file_type().is_ok_and(|t| t.is_dir())))
        .filter(|(n, _)| !n.starts_with(".sb-upload-") && !n.starts_with(".sb-partial-"))
        .collect();
    names.sort();
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let title = escape(&percent_encoding::percent_decode_str(raw).decode_utf8_lossy());
    let mut page = format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>\n<h1>{title}</h1>\n<ul>\n");
    for (name, is_dir) in names {
        let slash = if is_dir { "/" } else { "" };
        let href = percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC);
        page.push_str(&format!("<li><a href=\"{href}{slash}\">{}{slash}</a></li>\n", escape(&name)));
    }
    page.push_str("</ul>\n</body></html>\n");
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

async fn put(app: &App, rel: &Path, headers: &HeaderMap, body: Body) -> Response {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return status(StatusCode::BAD_REQUEST, "a file name is needed");
    };
    let dir = match inside(app, &app.root.join(parent)) {
        Ok(d) if d.is_dir() => d,
        Ok(_) => return status(StatusCode::CONFLICT, "the folder is a file"),
        Err(code) => return status(code, "no such folder"),
    };
    let target = dir.join(name);
    if target.is_dir() {
        return status(StatusCode::CONFLICT, "a folder is there");
    }
    let limit = app.options.max_upload;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return refuse_large(body.into_data_stream()).await;
    }
    if let Some(range) = headers.get(header::CONTENT_RANGE) {
        let Some(range) = range.to_str().ok().and_then(parse_content_range) else {
            return status(StatusCode::BAD_REQUEST, "Content-Range: bytes START-END/TOTAL or bytes */TOTAL");
        };
        let Some(id) = headers.get("upload-id").and_then(|v| v.to_str().ok()).filter(|v| is_sha256(v)) else {
            return status(StatusCode::BAD_REQUEST, "a resumed upload needs Upload-Id: the file's SHA-256");
        };
        return put_range(app, &dir, name, range, &id.to_ascii_lowercase(), body).await;
    }
    let existed = target.exists();
    let tmp = dir.join(format!(".sb-upload-{}-{}", std::process::id(), unique()));
    let Ok(mut file) = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).await else {
        return status(StatusCode::FORBIDDEN, "cannot write here");
    };
    let mut stream = body.into_data_stream();
    let mut written: u64 = 0;
    let outcome = loop {
        match stream.next().await {
            None => break Ok(()),
            Some(Err(_)) => break Err(status(StatusCode::BAD_REQUEST, "the upload broke off")),
            Some(Ok(chunk)) => {
                written += chunk.len() as u64;
                if written > limit {
                    break Err(refuse_large(stream).await);
                }
                if file.write_all(&chunk).await.is_err() {
                    break Err(status(StatusCode::INSUFFICIENT_STORAGE, "cannot write"));
                }
            }
        }
    };
    let outcome = match outcome {
        Ok(()) if declared.is_some_and(|n| n != written) => Err(status(StatusCode::BAD_REQUEST, "short upload")),
        other => other,
    };
    let flushed = file.flush().await.is_ok();
    drop(file);
    match outcome {
        Ok(()) if flushed && tokio::fs::rename(&tmp, &target).await.is_ok() => {
            if existed {
                StatusCode::NO_CONTENT.into_response()
            } else {
                StatusCode::CREATED.into_response()
            }
        }
        Ok(()) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            status(StatusCode::INSUFFICIENT_STORAGE, "cannot write")
        }
        Err(r) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            r
        }
    }
}

/// A resumable upload's `Content-Range`: `(Some((START, END)), TOTAL)`, or
/// `(None, TOTAL)` for the question "how much is kept?".
type UploadRange = (Option<(u64, u64)>, u64);

fn parse_content_range(v: &str) -> Option<UploadRange> {
    let (span, total) = v.trim().strip_prefix("bytes ")?.split_once('/')?;
    let total: u64 = total.trim().parse().ok()?;
    if span.trim() == "*" {
        return Some((None, total));
    }
    let (a, b) = span.split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b && b < total).then_some((Some((a, b)), total))
}

/// `200` with the bytes kept of a resumable upload.
fn kept(offset: u64, code: StatusCode) -> Response {
    let mut r = code.into_response();
    r.headers_mut().insert("upload-offset", HeaderValue::from(offset));
    r
}

fn is_sha256(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn put_range(
    app: &App,
    dir: &Path,
    name: &std::ffi::OsStr,
    (span, total): UploadRange,
    id: &str,
    body: Body,
) -> Response {
    if total > app.options.max_upload {
        return refuse_large(body.into_data_stream()).await;
    }
    let mut partial_name = std::ffi::OsString::from(".sb-partial-");
    partial_name.push(name);
    let partial = dir.join(&partial_name);
    partial_name.push(".id");
    let id_path = dir.join(partial_name);
    let same = std::fs::read_to_string(&id_path).is_ok_and(|kept| kept == id);
    let mut have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    if !same || have > total {
        // Kept bytes of another file (or none): start over.
        let _ = std::fs::remove_file(&partial);
        if std::fs::write(&id_path, id).is_err() {
            return status(StatusCode::FORBIDDEN, "cannot write here");
        }
        have = 0;
    }
    let Some((start, end)) = span else { return kept(have, StatusCode::OK) };
    if start != have {
        return kept(have, StatusCode::CONFLICT);
    }
    let mut open = tokio::fs::OpenOptions::new();
    open.create(true).append(true);
    let Ok(mut file) = open.open(&partial).await else { return status(StatusCode::FORBIDDEN, "cannot write here") };
    let mut stream = body.into_data_stream();
    let mut at = start;
    let broke = loop {
        match stream.next().await {
            None => break false,
            Some(Err(_)) => break true,
            Some(Ok(chunk)) => {
                // Never past the END announced.
                let room = (end + 1 - at) as usize;
                let take = &chunk[..chunk.len().min(room)];
                if file.write_all(take).await.is_err() {
                    break true;
                }
                at += take.len() as u64;
            }
        }
    };
    let _ = file.flush().await;
    drop(file);
    if broke || at < total {
        return kept(at, StatusCode::OK);
    }
    let whole = partial.clone();
    let digest = tokio::task::spawn_blocking(move || super::sha256_file(&whole)).await;
    if !matches!(&digest, Ok(Ok(d)) if d == id) {
        let _ = std::fs::remove_file(&partial);
        let _ = std::fs::remove_file(&id_path);
        return status(StatusCode::BAD_REQUEST, "the upload's SHA-256 is not its Upload-Id");
    }
    let _ = std::fs::remove_file(&id_path);
    let target = dir.join(name);
    let existed = target.exists();
    match tokio::fs::rename(&partial, &target).await {
        Ok(()) if existed => StatusCode::NO_CONTENT.into_response(),
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(_) => status(StatusCode::INSUFFICIENT_STORAGE, "cannot write"),
    }
}

/// How much of a refused upload is read before the refusal is sent.
const DRAIN_MAX: u64 = 64 << 20;

/// `413`, after reading (and dropping) what the client is still sending,
/// up to [`DRAIN_MAX`].
async fn refuse_large(mut stream: axum::body::BodyDataStream) -> Response {
    let mut drained: u64 = 0;
    while drained < DRAIN_MAX {
        match stream.next().await {
            Some(Ok(chunk)) => drained += chunk.len() as u64,
            _ => break,
        }
    }
    status(StatusCode::PAYLOAD_TOO_LARGE, "over the upload limit")
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
