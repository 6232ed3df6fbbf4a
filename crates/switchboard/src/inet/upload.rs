//! `upload`: a file streamed from disk with `PUT` (S02).

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::download::{http_error, retryable};
use super::{agent, Progress, Transfer};
use crate::error::Result;

/// How an upload goes.
pub struct UploadOptions<'a> {
    /// How long connecting, or any write or read, may wait (default 30 s).
    pub timeout: Duration,
    /// How many times a failed attempt is tried again (default 3), after
    /// pauses that double from half a second; each sends the file again.
    pub retries: u32,
    /// Called as bytes go (about every 100 ms, and at the end).
    pub progress: Option<&'a mut dyn FnMut(&Progress)>,
}

impl Default for UploadOptions<'_> {
    fn default() -> Self {
        UploadOptions { timeout: Duration::from_secs(30), retries: 3, progress: None }
    }
}

impl std::fmt::Debug for UploadOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadOptions")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
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
/// memory whole), with its length: the server's status (2xx).
///
/// # Errors
/// As [`super::download`]: `Http` for the server's refusal (413 for a file
/// over its limit), `Internet` for the network, `Io` for the file.
pub fn upload(file: &Path, url: &str, options: &mut UploadOptions<'_>) -> Result<u16> {
    let mut attempt = 0;
    loop {
        match upload_once(file, url, options) {
            Err(e) if attempt < options.retries && retryable(&e) => {
                std::thread::sleep(Duration::from_millis(500 << attempt.min(4)));
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn upload_once(path: &Path, url: &str, options: &mut UploadOptions<'_>) -> Result<u16> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut body =
        Counted { file, transfer: Transfer::new(0, Some(len), None), report: options.progress.as_deref_mut() };
    let response = agent(options.timeout)
        .put(url)
        .set("Content-Length", &len.to_string())
        .set("Content-Type", "application/octet-stream")
        .send(&mut body)
        .map_err(|e| http_error(url, e))?;
    body.transfer.finish(body.report.as_deref_mut());
    Ok(response.status())
}
