//! Spec 12 — Internet file transfer: downloads and uploads against our
//! server (`inet::serve`), a server not written here (Python's
//! `http.server`) and a client not written here (curl).

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchboard::inet::{self, DownloadOptions, ServeOptions, UploadOptions};
use switchboard::Error;
use util::{Peer, Watchdog};

/// A fresh folder under the target's temporary directory.
fn folder(tag: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(util::unique(tag));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `len` bytes that differ with `seed`.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = util::Rng(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// A folder holding `file.bin` (`len` bytes of `seed`) served by our
/// server: the folder, the bytes, the server and the file's URL.
fn served_file(tag: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>, inet::Served, String) {
    let dir = folder(tag);
    let data = content(len, seed);
    std::fs::write(dir.join("file.bin"), &data).unwrap();
    let server = inet::serve(&dir, "127.0.0.1:0", ServeOptions::default()).unwrap();
    let url = format!("{}file.bin", server.url());
    (dir, data, server, url)
}

fn sha256(bytes: &[u8]) -> String {
    let dir = folder("sum");
    let p = dir.join("x");
    std::fs::write(&p, bytes).unwrap();
    let s = inet::sha256_file(&p).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    s
}

/// What a folder holds besides the given names (partial files, temporaries).
fn leftovers(dir: &Path, expected: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !expected.contains(&n.as_str()))
        .collect()
}

/// One raw HTTP/1.1 request, the path sent exactly as given (clients
/// normalise `..` away): the status, the headers (lower-case names) and the body.
fn raw(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let code: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut hs = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        hs.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let mut body = Vec::new();
    if method != "HEAD" {
        r.read_to_end(&mut body).unwrap();
    }
    (code, hs, body)
}

fn header<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Python's `http.server` on `dir` (with `/moved` redirecting to
/// `/file.bin`), on a free port: the child and its URL.
struct Python(std::process::Child, String);

impl Python {
    fn start(dir: &Path) -> Python {
        let script = r#"
import functools, http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/file.bin")
            self.end_headers()
            return
        return super().do_GET()
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    def handle_error(self, *a):
        pass  # a client killed mid-transfer (the tests do that)
s = S(("127.0.0.1", 0), functools.partial(H, directory=sys.argv[1]))
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
        let mut child =
            util::python().args(["-c", script]).arg(dir).stdout(std::process::Stdio::piped()).spawn().unwrap();
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut port).unwrap();
        Python(child, format!("http://127.0.0.1:{}/", port.trim()))
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn inet_s01_s04_a_download_follows_redirects_reports_progress_and_renames_when_complete() {
    let _w = Watchdog::test();
    let (src, dst) = (folder("s01-src"), folder("s01-dst"));
    let data = content(3 << 20, 1);
    std::fs::write(src.join("file.bin"), &data).unwrap();
    let python = Python::start(&src);
    let dest = dst.join("got.bin");
    let mut seen = Vec::new();
    let mut record = |p: &inet::Progress| seen.push((p.done, p.total));
    let got = inet::download(
        &format!("{}moved", python.1),
        &dest,
        &mut DownloadOptions { progress: Some(&mut record), ..DownloadOptions::default() },
    )
    .unwrap();
    assert_eq!((got.bytes, got.resumed_from, got.restarted), (data.len() as u64, 0, false));
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(got.sha256, sha256(&data));
    // Progress: rising, and ending at the whole.
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert_eq!(seen.last(), Some(&(data.len() as u64, Some(data.len() as u64))));
    assert_eq!(leftovers(&dst, &["got.bin"]), Vec::<String>::new());
    // A failure leaves no destination, and says what failed.
    let missing = dst.join("missing.bin");
    let e =
        inet::download(&format!("{}nothing-here", python.1), &missing, &mut DownloadOptions::default()).unwrap_err();
    assert!(matches!(&e, Error::Http { status: 404, .. }), "{e:?}");
    assert!(e.to_string().contains("404"), "{e}");
    assert!(!missing.exists());
    // Already complete: recognised and left as is.
    let again = inet::download(&format!("{}file.bin", python.1), &dest, &mut DownloadOptions::default()).unwrap();
    assert!(again.already_complete, "{again:?}");
    // A digest that does not match: refused, nothing renamed.
    let wrong = dst.join("wrong.bin");
    let e = inet::download(
        &format!("{}file.bin", python.1),
        &wrong,
        &mut DownloadOptions { sha256: Some("00".repeat(32)), ..DownloadOptions::default() },
    )
    .unwrap_err();
    assert_eq!(e.win32(), 23, "{e}");
    assert!(!wrong.exists());
    assert_eq!(leftovers(&dst, &["got.bin"]), Vec::<String>::new());
}

/// A child that downloads `url` to `dest` slowly, says when it has
/// `after` bytes, and waits to be killed.
fn slow_downloader(test: &str, url: &str, dest: &Path, after: u64) -> Peer {
    let mut peer = Peer::spawn(test, "download", &[url, dest.to_str().unwrap(), &after.to_string()]);
    peer.expect("started");
    peer
}

fn download_role() {
    let a = util::args();
    let (url, dest, after): (&str, &Path, u64) = (&a[0], Path::new(&a[1]), a[2].parse().unwrap());
    util::say("started");
    let mut told = false;
    let mut tell = |p: &inet::Progress| {
        if !told && p.done >= after {
            told = true;
            util::say(&format!("at {}", p.done));
        }
    };
    let opts =
        &mut DownloadOptions { max_rate: Some(2 << 20), progress: Some(&mut tell), ..DownloadOptions::default() };
    inet::download(url, dest, opts).unwrap();
    util::hold("finished");
}

/// A download killed part-way, resumed three ways: from the same file
/// (`Range` + `If-Range`: only the rest comes), after the server's file
/// changed (the whole new file, never appended), and from a server that
/// ignores ranges (Python's: started again cleanly).
#[test]
fn inet_s03_s07_resume_is_validator_safe() {
    const TEST: &str = "inet_s03_s07_resume_is_validator_safe";
    if util::role().is_some() {
        download_role();
    }
    let _w = Watchdog::test();
    let (src, data, _server, url) = served_file("s07-src", 4 << 20, 2);
    let dst = folder("s07-dst");
    let partial = |dest: &Path| {
        let mut peer = slow_downloader(TEST, &url, dest, 1 << 20);
        let said = peer.next();
        assert!(said.starts_with("at "), "{said}");
        peer.kill9();
    };
    // 1. The same file: resumed.
    let dest = dst.join("same.bin");
    partial(&dest);
    let got = inet::download(&url, &dest, &mut DownloadOptions::default()).unwrap();
    assert!(got.resumed_from >= 1 << 20 && !got.restarted, "{got:?}");
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    // 2. The server's file changed (same length, new bytes): started again.
    let dest = dst.join("changed.bin");
    partial(&dest);
    let changed = content(4 << 20, 3);
    std::fs::write(src.join("file.bin.new"), &changed).unwrap();
    std::fs::rename(src.join("file.bin.new"), src.join("file.bin")).unwrap();
    let got = inet::download(&url, &dest, &mut DownloadOptions::default()).unwrap();
    assert!(got.restarted && got.resumed_from == 0, "{got:?}");
    assert_eq!(std::fs::read(&dest).unwrap(), changed);
    // 3. A server that ignores Range (Python's http.server): the partial
    // file is replaced by the whole answer, not appended to.
    let python = Python::start(&src);
    let purl = format!("{}file.bin", python.1);
    let dest = dst.join("python.bin");
    let mut peer = slow_downloader(TEST, &purl, &dest, 1 << 20);
    assert!(peer.next().starts_with("at "));
    peer.kill9();
    let got = inet::download(&purl, &dest, &mut DownloadOptions::default()).unwrap();
    assert!(got.restarted, "{got:?}");
    assert_eq!(std::fs::read(&dest).unwrap(), changed);
    assert_eq!(leftovers(&dst, &["same.bin", "changed.bin", "python.bin"]), Vec::<String>::new());
}

/// Downloads killed with `kill -9` at random points, each resumed by the
/// next, end byte-identical.
#[test]
fn inet_s08_downloads_killed_at_random_points_resume_byte_identical() {
    const TEST: &str = "inet_s08_downloads_killed_at_random_points_resume_byte_identical";
    if util::role().is_some() {
        download_role();
    }
    let _w = Watchdog::test();
    let (_src, data, _server, url) = served_file("s08-src", 3 << 20, 4);
    let dst = folder("s08-dst");
    let dest = dst.join("file.bin");
    let mut rng = util::Rng(std::process::id() as u64 * 7919);
    let mut at = 0;
    for _ in 0..4 {
        // Killed once it passed a random point beyond the last.
        at += 1 + rng.next() % (600 << 10);
        let mut peer = slow_downloader(TEST, &url, &dest, at);
        let said = peer.next();
        if said == "finished" {
            peer.dismiss();
            break;
        }
        peer.kill9();
    }
    let got = inet::download(&url, &dest, &mut DownloadOptions::default()).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(got.sha256, sha256(&data));
    assert_eq!(leftovers(&dst, &["file.bin"]), Vec::<String>::new());
}

#[test]
fn inet_s02_an_upload_streams_a_file_with_put_and_the_limit_holds() {
    let _w = Watchdog::test();
    let (src, dir) = (folder("s02-src"), folder("s02-served"));
    let data = content(5 << 20, 5);
    std::fs::write(src.join("up.bin"), &data).unwrap();
    let server =
        inet::serve(&dir, "127.0.0.1:0", ServeOptions { max_upload: 6 << 20, ..ServeOptions::default() }).unwrap();
    let mut last = None;
    let mut record = |p: &inet::Progress| last = Some(p.done);
    let status = inet::upload(
        &src.join("up.bin"),
        &format!("{}up.bin", server.url()),
        &mut UploadOptions { progress: Some(&mut record), ..UploadOptions::default() },
    )
    .unwrap()
    .status;
    assert_eq!(status, 201);
    assert_eq!(last, Some(data.len() as u64));
    assert_eq!(std::fs::read(dir.join("up.bin")).unwrap(), data);
    // Replacing: 204.
    assert_eq!(
        inet::upload(&src.join("up.bin"), &format!("{}up.bin", server.url()), &mut UploadOptions::default())
            .unwrap()
            .status,
        204
    );
    // Over the limit: 413, and nothing is left behind.
    std::fs::write(src.join("big.bin"), content(7 << 20, 6)).unwrap();
    let e = inet::upload(&src.join("big.bin"), &format!("{}big.bin", server.url()), &mut UploadOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::Http { status: 413, .. }), "{e:?}");
    assert_eq!(leftovers(&dir, &["up.bin"]), Vec::<String>::new());
}

#[test]
fn inet_s06_our_server_serves_ranges_etags_a_listing_and_no_way_out() {
    let _w = Watchdog::test();
    let root = folder("s06");
    let dir = root.join("served");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(root.join("secret"), b"outside").unwrap();
    let data = content(10_000, 7);
    std::fs::write(dir.join("file.bin"), &data).unwrap();
    std::fs::write(dir.join("sub/a <b>.txt"), b"x").unwrap();
    std::os::unix::fs::symlink(&root, dir.join("out")).unwrap();
    std::os::unix::fs::symlink(root.join("secret"), dir.join("secret-link")).unwrap();
    let server =
        inet::serve(&dir, "127.0.0.1:0", ServeOptions { max_upload: 1000, ..ServeOptions::default() }).unwrap();
    let addr = server.addr();
    // Whole, with validators.
    let (code, hs, body) = raw(addr, "GET", "/file.bin", &[]);
    assert_eq!((code, body.as_slice()), (200, data.as_slice()));
    let etag = header(&hs, "etag").unwrap().to_owned();
    let modified = header(&hs, "last-modified").unwrap().to_owned();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    assert_eq!(header(&hs, "accept-ranges"), Some("bytes"));
    // Ranges, with If-Range by ETag and by date; a stale validator gets all.
    let (code, hs, body) = raw(addr, "GET", "/file.bin", &[("Range", "bytes=100-199"), ("If-Range", &etag)]);
    assert_eq!((code, body.as_slice()), (206, &data[100..200]));
    assert_eq!(header(&hs, "content-range"), Some("bytes 100-199/10000"));
    let (code, _, body) = raw(addr, "GET", "/file.bin", &[("Range", "bytes=9990-"), ("If-Range", &modified)]);
    assert_eq!((code, body.as_slice()), (206, &data[9990..]));
    let (code, _, body) = raw(addr, "GET", "/file.bin", &[("Range", "bytes=-10")]);
    assert_eq!((code, body.as_slice()), (206, &data[9990..]));
    let (code, _, body) = raw(addr, "GET", "/file.bin", &[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")]);
    assert_eq!((code, body.len()), (200, data.len()));
    let (code, hs, _) = raw(addr, "GET", "/file.bin", &[("Range", "bytes=10000-")]);
    assert_eq!((code, header(&hs, "content-range")), (416, Some("bytes */10000")));
    let (code, _, _) = raw(addr, "GET", "/file.bin", &[("If-None-Match", &etag)]);
    assert_eq!(code, 304);
    let (code, hs, body) = raw(addr, "HEAD", "/file.bin", &[]);
    assert_eq!((code, header(&hs, "content-length"), body.len()), (200, Some("10000"), 0));
    // The listing: names escaped and linked; a folder without its slash redirects.
    let (code, hs, _) = raw(addr, "GET", "/sub", &[]);
    assert_eq!((code, header(&hs, "location")), (301, Some("/sub/")));
    let (code, _, page) = raw(addr, "GET", "/sub/", &[]);
    let page = String::from_utf8(page).unwrap();
    assert_eq!(code, 200);
    assert!(page.contains("a &lt;b&gt;.txt") && page.contains("href=\"a%20%3Cb%3E%2Etxt\""), "{page}");
    // No way out: parent steps (plain, encoded, mixed case), a doubled
    // slash, links out of the folder — for reading and for writing.
    for path in ["/../secret", "/%2e%2e/secret", "/sub/%2E%2E/%2e%2e/secret", "/..%2fsecret", "/sub/..%2F..%2Fsecret"] {
        let (code, _, body) = raw(addr, "GET", path, &[]);
        assert_eq!(code, 400, "{path}: {}", String::from_utf8_lossy(&body));
    }
    let (code, _, _) = raw(addr, "GET", "//secret", &[]);
    assert_eq!(code, 404, "//secret is the folder's own (absent) file");
    for path in ["/out/secret", "/secret-link"] {
        let (code, _, body) = raw(addr, "GET", path, &[]);
        assert_eq!(code, 403, "{path}: {}", String::from_utf8_lossy(&body));
    }
    let put = |path: &str, body: &[u8]| {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "PUT {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len())
            .unwrap();
        s.write_all(body).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.split_whitespace().nth(1).unwrap_or("").parse::<u16>().unwrap_or(0)
    };
    assert_eq!(put("/../escaped", b"x"), 400);
    assert_eq!(put("/%2e%2e/escaped", b"x"), 400);
    assert_eq!(put("/out/escaped", b"x"), 403);
    assert!(!root.join("escaped").exists());
    assert_eq!(put("/sub/new.txt", b"hello"), 201);
    assert_eq!(std::fs::read(dir.join("sub/new.txt")).unwrap(), b"hello");
    assert_eq!(put("/sub/too-big", &[0u8; 2000]), 413);
    assert_eq!(leftovers(&dir.join("sub"), &["a <b>.txt", "new.txt"]), Vec::<String>::new());
    let (code, _, _) = raw(addr, "DELETE", "/file.bin", &[]);
    assert_eq!(code, 405);
    assert!(dir.join("file.bin").exists());
}

/// curl (not written here) downloads from our server, resumes a partial
/// file with `-C -`, and uploads with `-T`.
#[test]
fn inet_s06_curl_downloads_resumes_and_uploads_with_our_server() {
    let _w = Watchdog::test();
    let (dir, data, server, url) = served_file("curl", 2 << 20, 8);
    let out = dir.join("by-curl.bin");
    std::fs::write(&out, &data[..12_345]).unwrap();
    let curl = std::process::Command::new("curl").args(["-sS", "-f", "-C", "-", "-o"]).arg(&out).arg(&url).status();
    assert!(curl.expect("curl (installed by .ci/test)").success());
    assert_eq!(std::fs::read(&out).unwrap(), data, "resumed by curl from byte 12345");
    let up = std::process::Command::new("curl")
        .args(["-sS", "-f", "-T"])
        .arg(dir.join("file.bin"))
        .arg(format!("{}sent-by-curl.bin", server.url()))
        .status()
        .unwrap();
    assert!(up.success());
    assert_eq!(std::fs::read(dir.join("sent-by-curl.bin")).unwrap(), data);
}

#[test]
fn inet_s05_failures_are_clear_bounded_and_classic() {
    let _w = Watchdog::test();
    let dst = folder("s05");
    let quick = || DownloadOptions { timeout: Duration::from_secs(2), retries: 0, ..DownloadOptions::default() };
    // Nobody listening: cannot connect (12029).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = inet::download(&format!("http://127.0.0.1:{port}/x"), &dst.join("x"), &mut quick()).unwrap_err();
    assert_eq!(e.win32(), 12029, "{e}");
    // A server that accepts and never answers: a timeout (12002), in bounds.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let e =
        inet::download(&format!("http://{}/x", mute.local_addr().unwrap()), &dst.join("x"), &mut quick()).unwrap_err();
    assert_eq!(e.win32(), 12002, "{e}");
    // HTTPS to a plain HTTP server: a TLS failure (12157).
    let dir = folder("s05-served");
    let server = inet::serve(&dir, "127.0.0.1:0", ServeOptions::default()).unwrap();
    let e = inet::download(&format!("https://{}/x", server.addr()), &dst.join("x"), &mut quick()).unwrap_err();
    assert_eq!(e.win32(), 12157, "{e}");
    // A name that does not resolve (12007).
    let e = inet::download("http://no-such-host.invalid/x", &dst.join("x"), &mut quick()).unwrap_err();
    assert_eq!(e.win32(), 12007, "{e}");
    // A server error is retried, then reported with its status and reason.
    let e = inet::download(&format!("{}absent", server.url()), &dst.join("x"), &mut quick()).unwrap_err();
    assert!(matches!(&e, Error::Http { status: 404, reason, .. } if reason == "Not Found"), "{e:?}");
    assert_eq!(leftovers(&dst, &[]), Vec::<String>::new());
}

fn upload_role() {
    let a = util::args();
    let (file, url, after): (&Path, &str, u64) = (Path::new(&a[0]), &a[1], a[2].parse().unwrap());
    util::say("started");
    let mut told = false;
    let mut tell = |p: &inet::Progress| {
        if !told && p.done >= after {
            told = true;
            util::say(&format!("at {}", p.done));
        }
    };
    let opts = &mut UploadOptions {
        resume: true,
        max_rate: Some(2 << 20),
        progress: Some(&mut tell),
        ..UploadOptions::default()
    };
    inet::upload(file, url, opts).unwrap();
    util::hold("finished");
}

/// A child uploading `file` to `url` slowly, killed once it sent 1 MiB.
fn killed_upload(test: &str, file: &Path, url: &str) {
    let mut peer = Peer::spawn(test, "upload", &[file.to_str().unwrap(), url, &(1u64 << 20).to_string()]);
    peer.expect("started");
    assert!(peer.next().starts_with("at "));
    peer.kill9();
}

/// An upload killed part-way resumes where the server's kept bytes end;
/// kept bytes of another file are not resumed from; a server that does
/// not keep partial uploads (Python's, which has no PUT) is said so.
#[test]
fn inet_s08_an_upload_killed_part_way_resumes_where_the_server_supports_it() {
    const TEST: &str = "inet_s08_an_upload_killed_part_way_resumes_where_the_server_supports_it";
    if util::role().is_some() {
        upload_role();
    }
    let _w = Watchdog::test();
    let (src, dir) = (folder("s08-up-src"), folder("s08-up-served"));
    let data = content(4 << 20, 9);
    let file = src.join("up.bin");
    std::fs::write(&file, &data).unwrap();
    let server = inet::serve(&dir, "127.0.0.1:0", ServeOptions::default()).unwrap();
    let url = format!("{}up.bin", server.url());
    let resume = || UploadOptions { resume: true, ..UploadOptions::default() };
    killed_upload(TEST, &file, &url);
    assert!(!dir.join("up.bin").exists(), "not complete: not there");
    let up = inet::upload(&file, &url, &mut resume()).unwrap();
    assert_eq!(up.status, 201);
    assert!(up.resumed_from > 0, "{up:?}");
    assert_eq!(std::fs::read(dir.join("up.bin")).unwrap(), data);
    assert_eq!(leftovers(&dir, &["up.bin"]), Vec::<String>::new());
    // Another file under a name whose upload was interrupted: the kept
    // bytes are not its own, so it starts from 0.
    let other_url = format!("{}other.bin", server.url());
    killed_upload(TEST, &file, &other_url);
    let other = content(4 << 20, 10);
    std::fs::write(src.join("other.bin"), &other).unwrap();
    let up = inet::upload(&src.join("other.bin"), &other_url, &mut resume()).unwrap();
    assert_eq!((up.status, up.resumed_from), (201, 0));
    assert_eq!(std::fs::read(dir.join("other.bin")).unwrap(), other);
    assert_eq!(leftovers(&dir, &["up.bin", "other.bin"]), Vec::<String>::new());
    let python = Python::start(&dir);
    let e =
        inet::upload(&file, &format!("{}x.bin", python.1), &mut UploadOptions { retries: 0, ..resume() }).unwrap_err();
    assert!(matches!(e, Error::NotSupported(_) | Error::Http { status: 501, .. }), "{e:?}");
}

/// HTTPS through rustls, from Python's `http.server` behind its `ssl`
/// module (not written here), with a certificate of a private CA: refused
/// as an unknown issuer (12157) until the CA is trusted, then the file.
#[test]
fn inet_s01_s05_https_through_rustls_from_a_python_tls_server() {
    let _w = Watchdog::test();
    let dir = folder("https");
    let data = content(300_000, 11);
    std::fs::write(dir.join("file.bin"), &data).unwrap();
    let ca = util::ca::Ca::new("switchboard test CA");
    let (cert, key) = ca.issue("127.0.0.1", rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    let script = r#"
import functools, http.server, ssl, sys
d = sys.argv[1]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + "/cert.pem", d + "/key.pem")
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    def handle_error(self, *a):
        pass  # the refused handshake (the test does that)
s = S(("127.0.0.1", 0), functools.partial(H, directory=d))
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
    let mut child = util::python().args(["-c", script]).arg(&dir).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut port = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut port).unwrap();
    let server = Python(child, format!("https://127.0.0.1:{}/", port.trim()));
    let url = format!("{}file.bin", server.1);
    let dst = folder("https-dst");
    let quick = || DownloadOptions { timeout: Duration::from_secs(10), retries: 0, ..DownloadOptions::default() };
    let e = inet::download(&url, &dst.join("x.bin"), &mut quick()).unwrap_err();
    assert_eq!(e.win32(), 12157, "{e}");
    let trusted = &mut DownloadOptions { ca_pem: Some(ca.cert.pem().into_bytes()), ..quick() };
    let got = inet::download(&url, &dst.join("x.bin"), trusted).unwrap();
    assert_eq!(got.bytes, data.len() as u64);
    assert_eq!(std::fs::read(dst.join("x.bin")).unwrap(), data);
}
