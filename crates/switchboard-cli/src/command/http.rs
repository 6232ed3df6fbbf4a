//! `switchboard http get|put|serve` (feature `inet`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use switchboard::inet::{self, DownloadOptions, Progress, ServeOptions, UploadOptions};

use crate::cli::parse_duration;

#[derive(Debug, Subcommand)]
pub enum HttpCmd {
    /// Download a URL to a file: resumable (run it again after any
    /// interruption, even kill -9), checked, with a progress bar.
    #[command(
        after_help = "Example:\n  switchboard http get https://example.com/big.iso -o big.iso --sha256 9f86d0…\n\n\
                            Bytes go to FILE.part (with FILE.part.json beside it) and become FILE when complete and \
                            checked. Run again to resume: the server's ETag or Last-Modified decides whether the \
                            partial file is still good. Exit 0 done, 1 failed."
    )]
    Get {
        /// The URL (http or https).
        url: String,
        /// Where to (default: the URL's last path segment, in the current folder).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// The SHA-256 the file must have (hex).
        #[arg(long)]
        sha256: Option<String>,
        /// Give up a connect or a read after this long.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
        timeout: Duration,
        /// Attempts after the first failure (each resumes).
        #[arg(long, default_value_t = 3)]
        retries: u32,
        /// At most this many bytes a second.
        #[arg(long)]
        limit_rate: Option<u64>,
        /// Also trust the CA certificates in this PEM file for HTTPS (a private CA).
        #[arg(long, value_name = "FILE")]
        cacert: Option<PathBuf>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Upload a file with PUT, streamed from disk, with a progress bar.
    #[command(
        after_help = "Example:\n  switchboard http put report.pdf http://otherhost:8080/report.pdf --resume\n\n\
                            --resume asks a server that keeps partial uploads (switchboard http serve does) how much \
                            of this file it has, and sends the rest: run it again after any interruption."
    )]
    Put {
        /// The file.
        file: PathBuf,
        /// Where to (a URL ending in the name to store it under).
        url: String,
        /// Give up a connect, a write or a read after this long.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
        timeout: Duration,
        /// Attempts after the first failure.
        #[arg(long, default_value_t = 3)]
        retries: u32,
        /// Send only what the server does not have yet (a server that keeps partial uploads).
        #[arg(long)]
        resume: bool,
        /// At most this many bytes a second.
        #[arg(long)]
        limit_rate: Option<u64>,
        /// Also trust the CA certificates in this PEM file for HTTPS (a private CA).
        #[arg(long, value_name = "FILE")]
        cacert: Option<PathBuf>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Serve a folder over HTTP: downloads with ranges (resumable), uploads
    /// by PUT under a size limit, a listing page, no way out of the folder.
    #[command(after_help = "Example:\n  switchboard http serve ./shared --listen 0.0.0.0:8080 --max-upload 2G\n  \
                            curl -C - -O http://thishost:8080/big.iso\n\n\
                            Listens on loopback unless told otherwise: nothing asks who is calling. \
                            Prints the URL (--format json: {\"url\": ..}) and serves until interrupted.")]
    Serve {
        /// The folder.
        dir: PathBuf,
        /// Where to listen (port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The largest upload: bytes, or with K, M, G.
        #[arg(long, default_value = "1G", value_parser = parse_size)]
        max_upload: u64,
        /// Refuse uploads.
        #[arg(long)]
        read_only: bool,
    },
}

fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().map_err(|_| format!("{text:?}: a size such as 500M"))?;
    let scale = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("{text:?}: the unit is K, M or G")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("{text:?}: too large"))
}

/// A progress bar with bytes, rate and time left (hidden when `quiet`).
fn bar(quiet: bool) -> anyhow::Result<ProgressBar> {
    if quiet {
        return Ok(ProgressBar::hidden());
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")?.progress_chars("=> "),
    );
    Ok(bar)
}

fn show(bar: &ProgressBar, p: &Progress) {
    if let Some(t) = p.total {
        bar.set_length(t);
    }
    bar.set_position(p.done);
}

/// The file name a URL names (its last path segment, decoded; a name, not
/// a path: no separators from the URL).
fn name_in(url: &str) -> PathBuf {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.rsplit('/').next().unwrap_or_default();
    let name = percent_encoding::percent_decode_str(last).decode_utf8_lossy().replace('/', "_");
    // Nothing, or a name that is a step ("%2e%2e"), is no file name.
    PathBuf::from(if matches!(name.as_str(), "" | "." | "..") { "index.html" } else { &name })
}

pub fn run(cmd: HttpCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        HttpCmd::Get { url, output, sha256, timeout, retries, limit_rate, cacert, quiet } => {
            let dest = output.unwrap_or_else(|| name_in(&url));
            let bar = bar(quiet || json)?;
            let mut shown = |p: &Progress| show(&bar, p);
            let mut options = DownloadOptions {
                timeout,
                retries,
                sha256,
                max_rate: limit_rate,
                progress: Some(&mut shown),
                ca_pem: read_ca(cacert.as_deref())?,
            };
            let got = inet::download(&url, &dest, &mut options)?;
            bar.finish_and_clear();
            report_download(&dest, &got, json);
            Ok(ExitCode::SUCCESS)
        }
        HttpCmd::Put { file, url, timeout, retries, resume, limit_rate, cacert, quiet } => {
            let bar = bar(quiet || json)?;
            let mut shown = |p: &Progress| show(&bar, p);
            let mut options = UploadOptions {
                timeout,
                retries,
                resume,
                max_rate: limit_rate,
                progress: Some(&mut shown),
                ca_pem: read_ca(cacert.as_deref())?,
            };
            let up = inet::upload(&file, &url, &mut options)?;
            bar.finish_and_clear();
            match json {
                true => {
                    out!("{}", json!({"file": file, "url": url, "status": up.status, "resumed_from": up.resumed_from}))
                }
                false => note!("{} → {url}: {} (resumed from byte {})", file.display(), up.status, up.resumed_from),
            }
            Ok(ExitCode::SUCCESS)
        }
        HttpCmd::Serve { dir, listen, max_upload, read_only } => {
            let stop = switchboard::process::block_termination()?;
            let options = ServeOptions { uploads: !read_only, max_upload };
            let served = inet::serve(&dir, &listen, options)?;
            match json {
                true => out!("{}", json!({"url": served.url(), "dir": dir})),
                false => out!("{}", served.url()),
            }
            note!("serving {} at {} (pid {}); interrupt to stop", dir.display(), served.url(), std::process::id());
            stop.wait();
            drop(served);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The PEM of `--cacert`, read.
fn read_ca(path: Option<&Path>) -> anyhow::Result<Option<Vec<u8>>> {
    path.map(|p| std::fs::read(p).map_err(|e| anyhow::anyhow!("--cacert {}: {e}", p.display()))).transpose()
}

fn report_download(dest: &Path, got: &inet::Downloaded, json: bool) {
    match json {
        true => out!(
            "{}",
            json!({
                "file": dest,
                "bytes": got.bytes,
                "sha256": got.sha256,
                "resumed_from": got.resumed_from,
                "restarted": got.restarted,
                "already_complete": got.already_complete,
            })
        ),
        false => {
            let how = match (got.already_complete, got.resumed_from, got.restarted) {
                (true, _, _) => "already complete".to_owned(),
                (_, 0, true) => "started again: the server's file changed".to_owned(),
                (_, 0, false) => "downloaded".to_owned(),
                (_, from, _) => format!("resumed from byte {from}"),
            };
            note!("{}: {} bytes, {how}, sha256 {}", dest.display(), got.bytes, got.sha256);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::name_in;

    #[test]
    fn a_urls_last_segment_is_the_file_name_decoded() {
        assert_eq!(name_in("http://h/a%20b.bin?x=1#y"), std::path::PathBuf::from("a b.bin"));
        assert_eq!(name_in("http://h/dir/"), std::path::PathBuf::from("index.html"));
        assert_eq!(name_in("http://h/a%2Fb"), std::path::PathBuf::from("a_b"));
        assert_eq!(name_in("http://h/%2e%2e"), std::path::PathBuf::from("index.html"));
    }
}
