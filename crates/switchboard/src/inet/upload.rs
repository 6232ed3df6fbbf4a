//! `upload`: a file streamed from disk with `PUT` (S02), resumable where
//! the server supports it (S08; switchboard's does, see [`super::serve`]).

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::time::Duration;

use super::download::{http_error, with_retries};
use super::{agent, Progress, Transfer};
use crate::error::{Error, Result};

/// How an upload goes.
pub struct UploadOptions<'a> {
    /// How long connecting, or any write or read, may wait (default 30 s).
    pub timeout: Duration,
    /// How many times a failed attempt is tried again (default 3), after
    /// pauses that double from half a second; each sends the file again.
    pub retries: u32,
    /// Resume where an earlier attempt stopped (a server that keeps
    /// partial uploads: `PUT` with `Content-Range` and `Upload-Id`, as
    /// [`super::serve`] does). Off by default: a server that does not know
    /// the protocol may take the question for an empty file.
    pub resume: bool,
    /// At most this many bytes a second (`None`: as fast as it goes).
    pub max_rate: Option<u64>,
    /// Called as bytes go (about every 100 ms, and at the end).
    pub progress: Option<&'a mut dyn FnMut(&Progress)>,
    /// More CA certificates (PEM) to trust for HTTPS, beside the public
    /// roots: a private CA's.
    pub ca_pem: Option<Vec<u8>>,
}

/// What an upload did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uploaded {
    /// The server's final status (201 created, 204 replaced).
    pub status: u16,
    /// Bytes the server had kept from an earlier attempt, not sent again.
    pub resumed_from: u64,
}

impl Default for UploadOptions<'_> {
    fn default() -> Self {
        UploadOptions {
            timeout: Duration::from_secs(30),
            retries: 3,
            resume: false,
            max_rate: None,
            progress: None,
            ca_pem: None,
        }
    }
}

impl std::fmt::Debug for UploadOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadOptions")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("resume", &self.resume)
            .field("max_rate", &self.max_rate)
            .finish_non_exhaustive()
    }
}

/// Counts (and reports) what the request body reads from the file.
struct Counted<'a, 'b> {
    file: File,
    transfer: Transfer,
    report: Option<&'a mut (dyn FnMut(&Progress) + 'b)>,
}

impl Read for Counted<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.transfer.advance(n as u64, self.report.as_deref_mut());
        Ok(n)
    }
}

/// Sends `file` to `url` with `PUT`, streamed from disk (never read into
/// memory whole), with its length. With `options.resume`, asks the server
/// what it kept of this file (by its SHA-256) and sends only the rest;
/// every retry does the same.
///
/// # Errors
/// As [`super::download`]: `Http` for the server's refusal (413 for a file
/// over its limit), `Internet` for the network, `Io` for the file;
/// `NotSupported` when resuming was asked of a server that does not.
pub fn upload(file: &Path, url: &str, options: &mut UploadOptions<'_>) -> Result<Uploaded> {
    with_retries(options.retries, || upload_once(file, url, options))
}

fn upload_once(path: &Path, url: &str, options: &mut UploadOptions<'_>) -> Result<Uploaded> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let agent = agent(options.timeout, options.ca_pem.as_deref())?;
    let mut request = agent.put(url).set("Content-Type", "application/octet-stream");
    let mut from = 0;
    if options.resume && len > 0 {
        let id = super::sha256_file(path)?;
        let asked = agent
            .put(url)
            .set("Content-Range", &format!("bytes */{len}"))
            .set("Upload-Id", &id)
            .call()
            .map_err(|e| http_error(url, e))?;
        from = match (asked.status(), asked.header("upload-offset").and_then(|v| v.parse::<u64>().ok())) {
            (200, Some(n)) if n < len => n,
            _ => return Err(Error::NotSupported(format!("{url}: the server does not resume uploads"))),
        };
        file.seek(std::io::SeekFrom::Start(from))?;
        request = request.set("Content-Range", &format!("bytes {from}-{}/{len}", len - 1)).set("Upload-Id", &id);
    }
    let transfer = Transfer::new(from, Some(len), options.max_rate);
    let mut body = Counted { file, transfer, report: options.progress.as_deref_mut() };
    let response =
        request.set("Content-Length", &(len - from).to_string()).send(&mut body).map_err(|e| http_error(url, e))?;
    if options.resume && response.status() == 200 {
        // Kept but not complete: the connection broke under way.
        return Err(Error::Internet {
            code: 12152,
            message: format!("{url}: the server kept only part of the upload"),
        });
    }
    body.transfer.finish(body.report.as_deref_mut());
    Ok(Uploaded { status: response.status(), resumed_from: from })
}
