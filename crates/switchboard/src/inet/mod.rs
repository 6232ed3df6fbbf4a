//! Internet file transfer (spec 12, feature `inet`): download and upload
//! files over HTTP and HTTPS, resumably, with progress; and a small file
//! server so two machines can exchange files with switchboard alone
//! (classic `URLDownloadToFile`, WinINet's `InternetReadFile` loops,
//! BITS jobs that survive a restart).
//!
//! - [`download`]: redirects followed; bytes to `DEST.part`, renamed once
//!   complete and checked; a state file beside it so that a download
//!   stopped at any point — even by `kill -9` — resumes with `Range` and
//!   `If-Range`, and restarts cleanly when the server's file changed.
//! - [`upload`]: a file streamed from disk with `PUT`, resumable where the
//!   server keeps partial uploads (ours does).
//! - [`serve`]: a folder over HTTP (axum): downloads with `Range`, `ETag`
//!   and `If-Range`, uploads by `PUT` with a size limit (resumable, checked
//!   by their SHA-256), a listing page, no way out of the folder.
//!
//! Every wait is bounded (`timeout`, per connect and per read), failures
//! are retried with backoff, and errors say what failed: the HTTP status
//! and reason (`Error::Http`), or the classic WinINet code of a name that
//! does not resolve (12007), a connection refused (12029), a timeout
//! (12002), a TLS failure (12157) or a nonsense answer (12152).
//!
//! ```no_run
//! use switchboard::inet::{self, DownloadOptions};
//!
//! let mut shown = |p: &inet::Progress| eprintln!("{} of {:?} bytes", p.done, p.total);
//! let got = inet::download(
//!     "https://example.com/big.iso",
//!     "big.iso".as_ref(),
//!     &mut DownloadOptions { progress: Some(&mut shown), ..DownloadOptions::default() },
//! )?;
//! println!("{} bytes, sha256 {}", got.bytes, got.sha256);
//! # Ok::<(), switchboard::Error>(())
//! ```

mod download;
mod serve;
mod upload;

use std::time::{Duration, Instant};

pub use download::{download, sha256_file, DownloadOptions, Downloaded};
pub use serve::{serve, ServeOptions, Served};
pub use upload::{upload, UploadOptions, Uploaded};

use crate::error::Error;

/// How far a transfer is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Bytes done (a resumed download counts what it had).
    pub done: u64,
    /// The whole, when the server said.
    pub total: Option<u64>,
    /// Bytes a second over this run.
    pub rate: f64,
}

impl Progress {
    /// The time left at this rate, when the whole is known.
    pub fn eta(&self) -> Option<Duration> {
        let left = self.total?.saturating_sub(self.done);
        (self.rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / self.rate))
    }
}

/// Counts a transfer's bytes, reports progress and keeps to a rate.
struct Transfer {
    start: Instant,
    from: u64,
    done: u64,
    total: Option<u64>,
    max_rate: Option<u64>,
    reported: Option<Instant>,
}

/// How often progress is reported.
const REPORT_EVERY: Duration = Duration::from_millis(100);

impl Transfer {
    fn new(from: u64, total: Option<u64>, max_rate: Option<u64>) -> Transfer {
        Transfer { start: Instant::now(), from, done: from, total, max_rate, reported: None }
    }

    fn progress(&self) -> Progress {
        let secs = self.start.elapsed().as_secs_f64().max(1e-6);
        Progress { done: self.done, total: self.total, rate: (self.done - self.from) as f64 / secs }
    }

    /// `n` more bytes: reported when it is time, and slept for when faster
    /// than the rate allowed.
    fn advance(&mut self, n: u64, report: Option<&mut (dyn FnMut(&Progress) + '_)>) {
        self.done += n;
        if let Some(rate) = self.max_rate.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64((self.done - self.from) as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(self.start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if let Some(report) = report {
            if self.reported.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
                self.reported = Some(Instant::now());
                report(&self.progress());
            }
        }
    }

    /// The last report.
    fn finish(&mut self, report: Option<&mut (dyn FnMut(&Progress) + '_)>) {
        if let Some(report) = report {
            report(&self.progress());
        }
    }

    fn done(&self) -> u64 {
        self.done
    }
}

/// The agent every transfer uses: `timeout` bounds connecting and each
/// read or write; redirects are followed (up to 10); HTTPS trusts the
/// public roots (webpki-roots) and the CA certificates in `ca_pem`.
fn agent(timeout: Duration, ca_pem: Option<&[u8]>) -> crate::error::Result<ureq::Agent> {
    let mut builder = ureq::AgentBuilder::new()
        .timeout_connect(timeout)
        .timeout_read(timeout)
        .timeout_write(timeout)
        .redirects(10)
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        use crate::rpc::tls::{certs, invalid, provider};
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in certs(pem)? {
            roots.add(cert).map_err(|e| invalid("CA certificate", e))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("versions", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        builder = builder.tls_config(std::sync::Arc::new(config));
    }
    Ok(builder.build())
}

/// A transport failure as a classic WinINet error.
fn transport_failure(url: &str, t: &ureq::Transport) -> Error {
    use ureq::ErrorKind as K;
    let io = std::error::Error::source(t).and_then(|s| s.downcast_ref::<std::io::Error>());
    let code = match (t.kind(), io.and_then(io_code)) {
        (K::Dns, _) => 12007,
        (_, Some(code)) => code,
        (K::ConnectionFailed, None) => 12029,
        (K::InvalidUrl | K::UnknownScheme, None) => 12005,
        (K::TooManyRedirects, None) => 12156,
        _ => 12152,
    };
    Error::Internet { code, message: format!("{url}: {t}") }
}

/// A read error of a body under way.
fn transport_error(url: &str, e: &std::io::Error) -> Error {
    Error::Internet { code: io_code(e).unwrap_or(12152), message: format!("{url}: {e}") }
}

/// The code of an I/O error that says more than "the transfer failed": a
/// timeout (12002) or a TLS failure (12157).
fn io_code(e: &std::io::Error) -> Option<u32> {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Some(12002),
        _ if e.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) => Some(12157),
        _ => None,
    }
}
