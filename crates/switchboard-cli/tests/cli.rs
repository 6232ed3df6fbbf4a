//! End-to-end tests: run the `switchboard` binary as a user would.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run switchboard")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Starts `switchboard ARGS…` with its output piped; returns it and the
/// first line it wrote to standard error (its "ready" line).
fn spawn_ready(args: &[&str]) -> (Child, String) {
    let mut child = bin().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut ready = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut ready).unwrap();
    (child, ready)
}

/// One user runs one gateway per host: the tests that start one (the
/// tour's remote row, the bench's `remote_pipe_transact`, the gateway
/// verbs) take turns.
fn one_gateway_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("sbcli-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A `switchboard … create` process holding an object; killed on drop.
struct Holder(Child);

impl Holder {
    fn start(args: &[&str]) -> Holder {
        Holder::saying(args, "created")
    }

    /// Runs `switchboard ARGS…` until its first line, which starts `first`.
    fn saying(args: &[&str], first: &str) -> Holder {
        let mut child = bin().args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with(first), "holder said {line:?}");
        Holder(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn names_s10_cli_ls_and_mapping_verbs_work_from_a_shell() {
    let n = unique("map");
    let holder = Holder::start(&["mapping", "create", &n, "4096", "--init", "hi"]);
    assert_eq!(stdout(&run(&["mapping", "read", &n])).trim(), "hi");
    let w = run(&["mapping", "write", &n, "yo!", "--offset", "0"]);
    assert!(w.status.success(), "{}", stderr(&w));
    assert_eq!(stdout(&run(&["mapping", "read", &n, "--len", "3", "--hex"])).trim(), "79 6f 21");
    let ls = stdout(&run(&["ls", "--json"]));
    let line = ls.lines().find(|l| l.contains(&format!("\"{n}\""))).unwrap_or_else(|| panic!("not listed: {ls}"));
    assert!(line.contains("\"kind\":\"mapping\"") && line.contains("\"holders\":1"), "{line}");
    assert!(line.contains(&format!("\"owner_pid\":{}", holder.0.id())), "{line}");
    assert!(stdout(&run(&["ls"])).contains(&n));
    // The global --format, before or after the verb, is the same.
    for args in [&["--format", "json", "ls"][..], &["ls", "--format", "json"][..]] {
        let ls = stdout(&run(args));
        let line = ls.lines().find(|l| l.contains(&format!("\"{n}\""))).unwrap_or_else(|| panic!("{args:?}: {ls}"));
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "{line}");
    }
    drop(holder);
    let gone = run(&["mapping", "read", &n]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(stderr(&gone).contains("ERROR_FILE_NOT_FOUND, 2"), "{}", stderr(&gone));
}

#[test]
fn cli_event_wait_timeout_exits_3_and_set_releases() {
    let n = unique("ev");
    let _holder = Holder::start(&["event", "create", &n, "--manual"]);
    let waited = run(&["event", "wait", &n, "--timeout", "10"]);
    assert_eq!(waited.status.code(), Some(3), "{}", stderr(&waited));
    assert!(run(&["event", "set", &n]).status.success());
    assert!(run(&["event", "wait", &n, "--timeout", "10000"]).status.success());
}

/// `switchboard timer`: a created timer is not running (a wait times out),
/// one set from another command releases a wait when due, and cancel says
/// whether it was running.
#[test]
fn cli_timer_create_set_wait_cancel() {
    let n = unique("timer");
    let _holder = Holder::start(&["timer", "create", &n, "--manual"]);
    assert_eq!(run(&["timer", "wait", &n, "--timeout", "10"]).status.code(), Some(3), "not running");
    assert!(stdout(&run(&["timer", "set", &n, "100ms"])).contains("due in 100ms"));
    let waited = run(&["timer", "wait", &n, "--timeout", "60s"]);
    assert!(waited.status.success() && stdout(&waited).contains("signalled"), "{}", stderr(&waited));
    assert!(run(&["timer", "set", &n, "1h", "--period", "1s"]).status.success());
    assert!(stdout(&run(&["timer", "cancel", &n])).contains("it was running"));
}

/// `switchboard wait`: any of an event and a process (the process ending
/// is what releases it), all of them, a timeout, and a bad spec.
#[test]
fn cli_wait_on_an_event_and_a_process() {
    let n = unique("waitev");
    let _holder = Holder::start(&["event", "create", &n, "--manual"]);
    let mut child = std::process::Command::new("sleep").arg("0.2").spawn().unwrap();
    let ev = format!("event:{n}");
    let proc = format!("process:{}", child.id());
    let waited = run(&["wait", &ev, &proc, "--timeout", "60s"]);
    assert!(waited.status.success(), "{}", stderr(&waited));
    assert!(stdout(&waited).contains(&format!("1 {proc}: signalled")), "{}", stdout(&waited));
    // Ended and not yet reaped: still there to open, and signalled.
    assert_eq!(run(&["wait", "--all", &ev, &proc, "--timeout", "10"]).status.code(), Some(3), "the event is not set");
    assert!(run(&["event", "set", &n]).status.success());
    let all = run(&["wait", "--all", &ev, &proc, "--timeout", "60s"]);
    assert!(stdout(&all).contains("all 2 signalled"), "{}", stderr(&all));
    child.wait().unwrap();
    let bad = run(&["wait", "pipe:x"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("cannot be waited on"), "{}", stderr(&bad));
}

#[test]
fn cli_semaphore_over_release_shows_the_classic_code() {
    let n = unique("sem");
    let _holder = Holder::start(&["semaphore", "create", &n, "--initial", "1", "--maximum", "2"]);
    assert!(stdout(&run(&["semaphore", "release", &n])).contains("previous count 1"));
    let over = run(&["semaphore", "release", &n]);
    assert_eq!(over.status.code(), Some(1));
    assert!(stderr(&over).contains("ERROR_TOO_MANY_POSTS, 298"), "{}", stderr(&over));
    assert!(stdout(&run(&["semaphore", "info", &n])).contains("count 2 of maximum 2"));
}

#[test]
fn cli_mutex_run_holds_the_lock_for_the_command() {
    let n = unique("mx");
    let out = run(&["mutex", "run", &n, "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "the command's exit code is passed on");
    let ok = run(&["mutex", "run", &n, "--", "true"]);
    assert!(ok.status.success());
}

#[test]
fn cli_invalid_name_and_usage_errors_have_distinct_exit_codes() {
    let bad = run(&["event", "set", "a\\b\\c"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("ERROR_INVALID_NAME, 123"), "{}", stderr(&bad));
    assert_eq!(run(&["no-such-verb"]).status.code(), Some(2));
}

/// A short soak: every mechanism from several processes with kills, and
/// its report says nothing acknowledged was lost and nothing was left.
/// (`.ci/run` runs a minute of it; the issue-10 note has a 10-minute run.)
#[test]
fn cli_soak_loses_nothing_acknowledged_and_leaves_nothing() {
    let out = run(&["soak", "--minutes", "0.15", "--seed", "7"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for carrier in ["mailslot", "port", "pipe", "link", "message", "dde"] {
        let line = text.lines().find(|l| l.trim_start().starts_with(carrier)).unwrap_or_default();
        assert!(line.contains("all arrived once and in order"), "{carrier}: {text}");
        let count: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!(count > 0, "{carrier} carried messages: {text}");
    }
    assert!(text.contains("left behind: nothing") && text.contains("soak: passed"), "{text}");
    let kills: u32 = text
        .split(" workers killed")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(kills > 0, "workers were killed: {text}");
}

#[test]
fn cli_tour_exercises_every_mechanism_with_real_processes() {
    let _one_gateway = one_gateway_at_a_time();
    let out = run(&["tour", "--rounds", "50"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for row in [
        "file mapping + events",
        "semaphore",
        "event (manual reset)",
        "mutex",
        "wait on several",
        "handle sharing",
        "shared-memory link",
        "completion port",
        "anonymous pipe",
        "named pipe",
        "remote pipe (gateways)",
        "mailslot",
        "socket",
        "namespace",
    ] {
        assert!(text.contains(row), "missing row {row}: {text}");
    }
    assert!(text.contains("50/50 echoes verified") && text.contains("WAIT_ABANDONED"), "{text}");
    assert!(text.contains(r"\\tour-far\pipe through two gateways"), "the remote row ran: {text}");
    assert!(!text.contains("FAILED"), "{text}");
}

#[test]
fn pipe_s22_cli_pipe_verbs_serve_call_send_connect() {
    let n = unique("pipe");
    let (server, ready) = spawn_ready(&["pipe", "serve", &n, "--message", "--echo", "--clients", "3"]);
    assert!(ready.starts_with("serving pipe"), "{ready:?}");
    let ls = stdout(&run(&["ls", "--json"]));
    assert!(ls.lines().any(|l| l.contains("\"kind\":\"pipe\"") && l.contains(&n)), "ls shows the pipe: {ls}");
    let call = run(&["pipe", "call", &n, "hello"]);
    assert!(call.status.success(), "{}", stderr(&call));
    assert_eq!(stdout(&call).trim(), "hello", "the echo of the one message");
    assert!(run(&["pipe", "send", &n, "one", "two"]).status.success());
    let mut connect = bin().args(["pipe", "connect", &n]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut connect.stdin.take().unwrap(), b"abc\n").unwrap();
    let out = connect.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "abc\n");
    let served = server.wait_with_output().unwrap();
    assert!(served.status.success());
    let log = String::from_utf8_lossy(&served.stdout);
    let lines: Vec<&str> = log.lines().map(|l| l.split_once(": ").unwrap().1).collect();
    assert_eq!(lines, ["hello", "one", "two", "abc"]);
    let missing = run(&["pipe", "call", &unique("nopipe"), "x"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("ERROR_FILE_NOT_FOUND"), "{}", stderr(&missing));
}

#[test]
fn mailslot_s04_cli_mailslot_verbs_create_write_info_read() {
    let n = unique("slot");
    let mut server = bin()
        .args(["mailslot", "create", &n, "--max-size", "64", "--count", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    let mut err = BufReader::new(server.stderr.take().unwrap());
    err.read_line(&mut ready).unwrap();
    assert!(ready.starts_with("mailslot"), "{ready:?}");
    let ls = stdout(&run(&["ls", "--json"]));
    assert!(ls.lines().any(|l| l.contains("\"kind\":\"mailslot\"") && l.contains(&n)), "ls shows the mailslot: {ls}");
    let info = stdout(&run(&["mailslot", "info", &n, "--json"]));
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!((v["max_message_size"].as_u64(), v["read_timeout_ms"].is_null()), (Some(64), true), "{info}");
    let too_big = run(&["mailslot", "write", &n, &"x".repeat(65)]);
    assert_eq!(too_big.status.code(), Some(1));
    assert!(stderr(&too_big).contains("ERROR_INVALID_PARAMETER"), "{}", stderr(&too_big));
    assert!(run(&["mailslot", "write", &n, "one", "", "three"]).status.success());
    let served = server.wait_with_output().unwrap();
    assert!(served.status.success());
    assert_eq!(String::from_utf8_lossy(&served.stdout), "local: one\nlocal: \nlocal: three\n");
    let missing = run(&["mailslot", "write", &unique("noslot"), "x"]);
    assert!(stderr(&missing).contains("ERROR_FILE_NOT_FOUND"), "{}", stderr(&missing));
    let empty = run(&["mailslot", "read", &unique("slot"), "--timeout", "0"]);
    assert_eq!(empty.status.code(), Some(3), "an empty mailslot with timeout 0: {}", stderr(&empty));
}

/// `mailslot info`, run from another process than the server, shows the
/// server's network counts.
#[test]
fn mailslot_s11_cli_info_shows_the_network_drop_counters() {
    let n = unique("netslot");
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let created = run(&["mailslot", "create", &n, "--broadcast", "--port", &port, "--detach"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let said = stdout(&created);
    let pid = said.split("(detached, pid ").nth(1).and_then(|r| r.split(')').next()).expect("--detach says the pid");
    let _server = Killed(pid.to_owned());
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for junk in [&b"not a datagram"[..], b""] {
        tx.send_to(junk, ("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let info = loop {
        let info = stdout(&run(&["mailslot", "info", &n, "--json"]));
        let v: serde_json::Value = serde_json::from_str(&info).unwrap();
        if v["network"]["malformed"].as_u64() == Some(2) || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(info["network"]["malformed"].as_u64(), Some(2), "{info}");
    assert_eq!(info["network"]["delivered"].as_u64(), Some(0), "{info}");
    let text = stdout(&run(&["mailslot", "info", &n]));
    assert!(text.contains("2 malformed"), "{text}");
}

/// Kills the process with this pid when dropped (a detached holder).
struct Killed(String);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.0).status();
    }
}

/// Starts `switchboard socket listen …` and returns it with its first stderr line.
fn socket_listener(args: &[&str]) -> (std::process::Child, String) {
    let mut child = bin().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    err.read_line(&mut line).unwrap();
    // Keep draining: a closed stderr would make the listener's next message fail.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    (child, line.trim().to_owned())
}

#[test]
fn socket_s05_cli_socket_listen_and_send_frames_over_unix_and_tcp() {
    let name = format!("unix:@{}", unique("sock"));
    let (unix, ready) = socket_listener(&["socket", "listen", &name, "--count", "2"]);
    assert!(ready.starts_with("listening"), "{ready}");
    let sent = run(&["socket", "send", &name, "one", "two"]);
    assert!(sent.status.success(), "{}", stderr(&sent));
    let out = unix.wait_with_output().unwrap();
    let me = format!("uid {}", std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("pid ") && lines[0].contains(&me) && lines[0].ends_with(": one"), "{text}");
    assert!(lines[1].ends_with(": two"), "{text}");
    let (tcp, ready) = socket_listener(&["socket", "listen", "tcp:127.0.0.1:0", "--count", "1"]);
    let addr = ready.strip_prefix("listening on ").unwrap();
    assert!(run(&["socket", "send", addr, "over tcp"]).status.success());
    let out = tcp.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).trim_end().ends_with(": over tcp"));
    // A client that connects and says nothing: the listener gives up with exit code 3.
    let silent = unique("quiet");
    let (quiet, _) = socket_listener(&["socket", "listen", &format!("unix:@{silent}"), "--timeout", "100"]);
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(silent.as_bytes()).unwrap();
    let _mute = std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
    assert_eq!(quiet.wait_with_output().unwrap().status.code(), Some(3));
    let refused = run(&["socket", "send", &format!("unix:@{}", unique("nobody")), "x"]);
    assert!(stderr(&refused).contains("ERROR_FILE_NOT_FOUND"), "{}", stderr(&refused));
}

/// `message listen` prints a send, a post and a data copy from stdin (8 MB)
/// in the order the loop ran them; `send` prints the reply; a WM_QUIT's
/// code is the listener's exit code; posting a data copy is refused.
#[test]
fn message_s04_cli_message_verbs_listen_send_post_copydata() {
    let n = unique("rx");
    let (listener, ready) = socket_listener(&["message", "listen", &n, "--reply", "42", "--format", "json"]);
    assert!(ready.starts_with(&format!("receiver {n}")), "{ready}");
    let sent = run(&["message", "send", &n, "WM_USER+1", "7", "-3"]);
    assert_eq!((stdout(&sent).trim(), sent.status.success()), ("42", true), "{}", stderr(&sent));
    assert!(run(&["message", "post", &n, "0x500", "1"]).status.success());
    let mut copy = bin()
        .args(["message", "copydata", &n, "--tag", "9"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let big: Vec<u8> = (0..8_000_000u32).map(|i| (i % 97) as u8 + b' ').collect();
    std::io::Write::write_all(&mut copy.stdin.take().unwrap(), &big).unwrap();
    let copied = copy.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&copied.stdout).trim(), "8000000");
    let refused = run(&["message", "post", &n, "WM_COPYDATA"]);
    assert!(stderr(&refused).contains("ERROR_MESSAGE_SYNC_ONLY"), "{}", stderr(&refused));
    assert!(run(&["message", "post", &n, "WM_QUIT", "5"]).status.success());
    let out = listener.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5), "the quit code");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let how: Vec<&str> = lines.iter().map(|v| v["how"].as_str().unwrap()).collect();
    assert_eq!(how, ["sent", "posted", "copydata"], "{text}");
    assert_eq!(
        (lines[0]["msg"].as_u64(), lines[0]["wparam"].as_u64(), lines[0]["lparam"].as_i64()),
        (Some(0x401), Some(7), Some(-3))
    );
    assert_eq!((lines[2]["bytes"].as_u64(), lines[2]["lparam"].as_i64()), (Some(8_000_000), Some(9)));
    let missing = run(&["message", "send", &unique("norx"), "1"]);
    assert!(stderr(&missing).contains("ERROR_FILE_NOT_FOUND"), "{}", stderr(&missing));
}

/// The S12 demo from the shell: `dde sheet` serves a formula cell, `dde
/// advise` in another process prints every update of it in order while
/// `dde poke` and `dde execute` change the cell it depends on; `dde
/// request` reads cells and the System topic; `dde ls` lists the pairs.
#[test]
fn dde_s12_cli_sheet_advise_poke_request_execute() {
    let service = unique("cli-sheet");
    let (mut sheet, ready) = socket_listener(&["dde", "sheet", &service, "--set", "R3C1==R1C1*2"]);
    assert!(ready.starts_with("serving sheet"), "{ready}");
    let (advise, ready) = socket_listener(&["dde", "advise", &service, "Sheet1", "R3C1", "--count", "4"]);
    assert!(ready.starts_with("advising"), "{ready}");
    for v in ["1", "2", "3"] {
        let poked = run(&["dde", "poke", &service, "sheet1", "r1c1", v]);
        assert!(poked.status.success(), "{}", stderr(&poked));
    }
    assert!(run(&["dde", "execute", &service, "Sheet1", "R1C1=50"]).status.success());
    let out = advise.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n4\n6\n100\n");
    assert_eq!(stdout(&run(&["dde", "request", &service, "Sheet1", "R3C1"])), "100\n");
    assert_eq!(stdout(&run(&["dde", "request", &service, "System", "Topics"])), "Sheet1\tSystem\n");
    let listed = stdout(&run(&["dde", "ls", &service]));
    assert_eq!(listed, format!("{service}\tSheet1\n{service}\tSystem\n"));
    let refused = run(&["dde", "request", &service, "Sheet1", "not-a-cell"]);
    assert!(!refused.status.success() && stderr(&refused).contains("DMLERR_NOTPROCESSED"), "{}", stderr(&refused));
    let nobody = run(&["dde", "request", &unique("no-such-service"), "t", "i"]);
    assert!(stderr(&nobody).contains("DMLERR_NO_CONV_ESTABLISHED"), "{}", stderr(&nobody));
    let _ = sheet.kill();
    let out = sheet.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(printed.ends_with("R1C1 = 50\nR3C1 = 100\n"), "{printed}");
}

/// Waits until a `clip watch` process sleeps on the clipboard's directory
/// (its inotify watch exists, made after the desktop's): it read the
/// sequence number it waits to change.
fn await_watching(watcher: &Child) {
    let pid = watcher.id();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().contains("inotify")))
    {
        assert!(std::time::Instant::now() < until, "the watcher never watched");
        std::thread::yield_now();
    }
}

/// `clip set` from standard input and arguments, `get` in text and a MIME
/// type, `formats`, and `watch` seeing a change (a clipboard of the test's
/// own, through `SWITCHBOARD_CLIPBOARD_DIR`).
#[test]
fn clipboard_s03_cli_clip_verbs_set_get_formats_watch() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("clip"));
    let clip = |args: &[&str], input: Option<&[u8]>| {
        let mut c = bin()
            .arg("clip")
            .args(args)
            .env("SWITCHBOARD_CLIPBOARD_DIR", &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = c.stdin.take().unwrap();
        if let Some(bytes) = input {
            std::io::Write::write_all(&mut stdin, bytes).unwrap();
        }
        drop(stdin);
        c.wait_with_output().unwrap()
    };
    assert!(clip(&["set"], Some(b"from stdin")).status.success());
    assert_eq!(stdout(&clip(&["get"], None)), "from stdin");
    let formats = stdout(&clip(&["formats", "--format", "json"], None));
    let names: Vec<String> = formats
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["CF_TEXT", "CF_UNICODETEXT", "CF_LOCALE"]);
    let watcher = bin()
        .args(["clip", "watch", "--count", "1", "--timeout", "60s", "--format", "json"])
        .env("SWITCHBOARD_CLIPBOARD_DIR", &dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    await_watching(&watcher);
    assert!(clip(&["set", "--mime", "text/html", "<b>x</b>"], None).status.success());
    let seen = watcher.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&seen.stdout).trim()).unwrap();
    assert_eq!(v["formats"], serde_json::json!(["text/html"]));
    assert_eq!(stdout(&clip(&["get", "--mime", "text/html"], None)), "<b>x</b>");
    assert_eq!(clip(&["get"], None).status.code(), Some(3), "no text now");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An X server of the test's own (Xvfb), stopped with SIGTERM so that it
/// removes its lock file.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0", "320x240x24"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (Debian package xvfb; .ci/test installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let number: u32 = line.trim().parse().expect("Xvfb said its display number");
        Xvfb { child, display: format!(":{number}") }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` with `input` on its standard input (its output piped, or
/// dropped when `quiet`: a program that forks a server keeps it open) and
/// checks that it succeeded; its standard output.
fn run_fed(mut cmd: Command, input: &[u8], quiet: bool) -> Vec<u8> {
    let out = if quiet { Stdio::null() } else { Stdio::piped() };
    let err = if quiet { Stdio::null() } else { Stdio::piped() };
    let mut c = cmd.stdin(Stdio::piped()).stdout(out).stderr(err).spawn().expect("spawn");
    std::io::Write::write_all(&mut c.stdin.take().unwrap(), input).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
    out.stdout
}

/// 06-S11 against a desktop's own programs: `theirs_in` places text as
/// they do (xclip -i, wl-copy), `theirs_out` reads it as they do, `clip`
/// builds a `switchboard clip` command on the same desktop. Text goes both
/// ways, 20 MiB too.
fn desktop_exchange(clip: &dyn Fn() -> Command, theirs_in: &dyn Fn() -> Command, theirs_out: &dyn Fn() -> Command) {
    let sb = |verb: &str, input: &[u8]| {
        let mut c = clip();
        c.arg(verb);
        run_fed(c, input, false)
    };
    let copy = |input: &[u8]| run_fed(theirs_in(), input, true);
    let paste = || run_fed(theirs_out(), b"", false);
    let big: Vec<u8> = (0..20u32 << 20).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789 "[(i % 37) as usize]).collect();
    copy(b"set by them");
    assert_eq!(sb("get", b""), b"set by them");
    sb("set", "set by switchboard, ünïcode".as_bytes());
    assert_eq!(paste(), "set by switchboard, ünïcode".as_bytes());
    sb("set", &big);
    assert!(paste() == big, "20 MiB from switchboard to them");
    copy(&big);
    assert!(sb("get", b"") == big, "20 MiB from them to switchboard");
    // Their new selection is a change: a watcher wakes and sees its text.
    let mut watch = clip();
    watch.args(["watch", "--count", "1", "--timeout", "60s", "--format", "json"]);
    let watcher = watch.stdout(Stdio::piped()).spawn().unwrap();
    await_watching(&watcher);
    let copied = std::time::Instant::now();
    copy(b"watched");
    let seen = watcher.wait_with_output().unwrap();
    // Woken by the change, not by its 60 s timeout's last look.
    assert!(copied.elapsed() < std::time::Duration::from_secs(45), "the watcher slept through the change");
    let v: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&seen.stdout).trim()).unwrap();
    assert_eq!(v["text"], "watched", "{v}");
}

/// 06-S11 with a program not written here: under Xvfb, text xclip sets is
/// what `switchboard clip get` reads, and text `switchboard clip set`
/// places is what `xclip -o` reads — 20 MiB too (INCR both ways); with no
/// display, the clipboard goes on alone.
#[test]
fn clipboard_s11_xclip_and_switchboard_see_each_others_text_under_xvfb() {
    let x = Xvfb::start();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("clipx"));
    let on_x = |program: &str, args: &[&str]| {
        let mut c = Command::new(program);
        c.args(args).env("DISPLAY", &x.display).env("SWITCHBOARD_CLIPBOARD_DIR", &dir);
        c
    };
    let sb = env!("CARGO_BIN_EXE_switchboard");
    desktop_exchange(&|| on_x(sb, &["clip"]), &|| on_x("xclip", &["-selection", "clipboard", "-i"]), &|| {
        on_x("xclip", &["-selection", "clipboard", "-o"])
    });
    // No display: the clipboard alone, with the text last brought in.
    let alone =
        bin().args(["clip", "get"]).env("SWITCHBOARD_CLIPBOARD_DIR", &dir).env_remove("DISPLAY").output().unwrap();
    assert_eq!(alone.stdout, b"watched", "the clipboard's own text without a display");
    drop(x);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A headless sway of the test's own (sway will not run as root: as root,
/// it runs as uid 65534 in a runtime directory of that user's), stopped
/// with SIGTERM and its directory removed.
struct Sway {
    child: Child,
    runtime: std::path::PathBuf,
    display: String,
}

impl Sway {
    fn start() -> Sway {
        let runtime = std::path::PathBuf::from(format!("/var/tmp/swaytest-{}", std::process::id()));
        std::fs::create_dir_all(&runtime).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        let root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap();
        let mut cmd = if root {
            std::os::unix::fs::chown(&runtime, Some(65534), Some(65534)).unwrap();
            let mut c = Command::new("setpriv");
            c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--", "sway"]);
            c
        } else {
            Command::new("sway")
        };
        let child = cmd
            .args(["-c", "/dev/null"])
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("WLR_BACKENDS", "headless")
            .env("WLR_LIBINPUT_NO_DEVICES", "1")
            .env("WLR_RENDERER", "pixman")
            .env_remove("DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sway (Debian package sway; .ci/test installs it)");
        // Ready once its socket is there (the lock file comes first).
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let display = loop {
            let socket = std::fs::read_dir(&runtime).unwrap().flatten().find_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name.starts_with("wayland-") && !name.ends_with(".lock")).then_some(name)
            });
            if let Some(name) = socket {
                break name;
            }
            assert!(std::time::Instant::now() < until, "sway never made its socket");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        Sway { child, runtime, display }
    }
}

impl Drop for Sway {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.runtime);
    }
}

/// 06-S11 on Wayland with programs not written here: under a headless
/// sway, text wl-copy sets is what `switchboard clip get` reads, and text
/// `switchboard clip set` places is what `wl-paste` reads — 20 MiB too.
#[test]
fn clipboard_s11_wl_copy_and_wl_paste_share_text_with_switchboard_under_sway() {
    let wl = Sway::start();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("clipwl"));
    let on_wl = |program: &str, args: &[&str]| {
        let mut c = Command::new(program);
        c.args(args)
            .env("XDG_RUNTIME_DIR", &wl.runtime)
            .env("WAYLAND_DISPLAY", &wl.display)
            .env("SWITCHBOARD_CLIPBOARD_DIR", &dir)
            .env_remove("DISPLAY");
        c
    };
    let sb = env!("CARGO_BIN_EXE_switchboard");
    desktop_exchange(&|| on_wl(sb, &["clip"]), &|| on_wl("wl-copy", &[]), &|| on_wl("wl-paste", &["--no-newline"]));
    drop(wl);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn port_s04_cli_port_verbs_post_get_and_time_out() {
    let n = unique("port");
    let _server = Holder::start(&["port", "create", &n, "--concurrency", "1"]);
    assert!(run(&["port", "post", &n, "5", "42", "7"]).status.success());
    assert!(run(&["port", "post", &n, "6", "43"]).status.success());
    let got = stdout(&run(&["port", "get", &n, "--max", "8", "--timeout", "10000"]));
    assert_eq!(got, "bytes=5 key=42 overlapped=7\nbytes=6 key=43 overlapped=0\n");
    let empty = run(&["port", "get", &n, "--timeout", "10"]);
    assert_eq!(empty.status.code(), Some(3), "{}", stderr(&empty));
}

/// The nine paths, each drawn as a line.
const PATHS_DRAWN: usize = 9;

#[test]
fn cli_bench_quick_json_reports_every_floor_and_path_with_ratios() {
    // remote_pipe_transact starts this user's gateway for the run.
    let _one_gateway = one_gateway_at_a_time();
    let plot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.svg", unique("bench")));
    let out = run(&["bench", "--quick", "--json", "--plot", plot.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert!(v["machine"]["cpus"].as_u64().unwrap() >= 1);
    let names = |key: &str| -> Vec<String> {
        v[key].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect()
    };
    for floor in ["spin", "futex", "pipe", "unix_stream", "tcp", "memcpy"] {
        assert!(names("floors").iter().any(|n| n == floor), "floor {floor} missing");
    }
    for path in [
        "shm_link_busy",
        "shm_link_adaptive",
        "shm_link_blocking",
        "stream_unix",
        "stream_tcp",
        "port",
        "pipe_message_transact",
        "mailslot",
        "shm_loan",
    ] {
        assert!(names("paths").iter().any(|n| n == path), "path {path} missing");
    }
    for p in v["paths"].as_array().unwrap() {
        assert!(p["rtt_p50_ns"].as_u64().unwrap() > 0 && p["rtt_p99_ns"].as_u64() >= p["rtt_p50_ns"].as_u64());
        assert!(p["ratio"].as_f64().unwrap() > 0.0, "{p}");
        assert_eq!(p["throughput_gbps"].is_number(), p["payload"].as_u64().unwrap() >= 65536, "{p}");
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    std::fs::remove_file(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("shm_link_busy") && svg.contains("1 MiB"), "{svg}");
    assert!(svg.matches("<polyline").count() >= PATHS_DRAWN, "one line per path");
}

/// `bench --fan-in`: N writer processes into a mailslot, a port and a
/// named pipe server, and the spin floor, for each N; every writer got
/// messages through (none starved), and the JSON carries rate, age and
/// ratios.
#[test]
fn cli_bench_fan_in_json_reports_each_kind_and_every_writers_count() {
    let out = run(&["bench", "--quick", "--json", "--fan-in", "1,3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let rows = v["fan_in"].as_array().unwrap();
    for n in [1u64, 3] {
        for kind in ["spin", "mailslot", "port", "pipe"] {
            let row =
                rows.iter().find(|r| r["kind"] == kind && r["writers"] == n).unwrap_or_else(|| panic!("{kind} {n}"));
            let counts: Vec<u64> = row["per_writer"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
            assert_eq!(counts.len() as u64, n, "{row}");
            assert!(counts.iter().all(|c| *c > 0), "a writer starved: {row}");
            assert!(row["messages_per_sec"].as_f64().unwrap() > 0.0, "{row}");
            assert!(row["age_p99_ns"].as_u64() >= row["age_p50_ns"].as_u64(), "{row}");
            assert!(row["throughput_vs_spin"].as_f64().unwrap() > 0.0, "{row}");
        }
    }
    assert!(switchboard::namespace::list().iter().all(|e| !e.name.starts_with("bench-fan")), "left behind");
}

/// Regression: `switchboard ls --json | head -c 10` panicked (exit 101)
/// when the reader had gone. Here the reader is gone before ls writes.
#[test]
fn a_closed_stdout_ends_the_command_quietly_with_exit_0() {
    let name = unique("closed-stdout");
    let _held = switchboard::sync::Event::create(name.as_str(), true, false).unwrap();
    for args in [&["ls", "--json"][..], &["ls"][..]] {
        let (reader, writer) = switchboard::pipe::anon::pipe().unwrap();
        drop(reader);
        let out = bin().args(args).stdout(Stdio::from(writer)).output().expect("run switchboard");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

/// Regression: one stopped holder made `ls` drop other live objects (one
/// 2 s deadline for all). Now each holder has its own, and the silent one
/// is reported.
#[test]
fn names_s10_ls_reports_a_stopped_holder_and_still_lists_the_others() {
    let (live, stopped) = (unique("ls-live"), unique("ls-stopped"));
    let _live = Holder::start(&["event", "create", &live]);
    let silent = Holder::start(&["event", "create", &stopped]);
    let pid = silent.0.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let out = run(&["ls"]);
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&live), "the live object is listed: {}", stdout(&out));
    assert!(!stdout(&out).contains(&stopped));
    let err = stderr(&out);
    assert!(err.contains(&stopped) && err.contains("did not answer") && err.contains(&pid), "{err}");
}

/// The README's CLI walk-through runs top to bottom as written.
#[test]
fn readme_walkthrough_runs_top_to_bottom() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let after = readme.split("<!-- walkthrough").nth(1).expect("the README marks its walk-through");
    let script = after.split("```sh\n").nth(1).and_then(|b| b.split("```").next()).expect("a sh block");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_switchboard")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash").args(["-euo", "pipefail", "-c", script]).env("PATH", path).output().unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    // Stop every background holder the walk-through started.
    for pid in text.split("(detached, pid ").skip(1).filter_map(|rest| rest.split(')').next()) {
        let _ = Command::new("kill").arg(pid).status();
    }
    assert!(out.status.success(), "the walk-through failed:\n{text}\n{err}");
    for want in ["\nhi\n", "new text", "timed out: exit code 3", "ran under the mutex", "are you there?", "demo-inbox"]
    {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

/// `switchboard advise`: each answer leads to its recommendations, first
/// the best one, with a reason; measured rows carry a round trip.
#[test]
fn cli_advise_answers_lead_to_their_mechanisms() {
    let mechanisms = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["advise", "--no-measure", "--json"];
        all.extend_from_slice(args);
        let out = run(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let rows = v["recommendations"].as_array().unwrap().clone();
        assert!(rows.iter().all(|r| !r["why"].as_str().unwrap().is_empty()), "every row has its reason");
        rows.iter().map(|r| r["mechanism"].as_str().unwrap().to_owned()).collect()
    };
    let first = |args: &[&str]| mechanisms(args)[0].clone();
    assert_eq!(first(&[]), "shared-memory link", "two local processes, small messages");
    assert!(mechanisms(&[]).contains(&"named pipe".to_owned()));
    assert_eq!(first(&["--peer", "child"]), "anonymous pipe");
    assert_eq!(mechanisms(&["--fanout", "many-to-one"]), ["mailslot", "completion port"]);
    assert_eq!(first(&["--fanout", "broadcast"]), "manual-reset event + file mapping");
    assert_eq!(mechanisms(&["--reach", "network"]), ["socket (TCP, framed)"]);
    assert!(mechanisms(&["--reach", "network", "--fanout", "broadcast"]).contains(&"mailslot broadcast".to_owned()));
    assert_eq!(mechanisms(&["--foreign"]), ["socket (TCP, framed)", "socket (Unix, framed)"]);
    assert!(mechanisms(&["--size", "1048576"]).contains(&"file mapping (shared memory)".to_owned()));
    assert!(mechanisms(&["--size", "1048576"]).contains(&"zero-copy samples on a link".to_owned()));
    assert!(!mechanisms(&["--size", "1048576", "--fanout", "many-to-one"])
        .contains(&"zero-copy samples on a link".to_owned()));
    assert_eq!(first(&["--persist"]), "file mapping backed by a file");
    assert_eq!(first(&["--window"]), "window messages, data copy, clipboard");
    // Measured: a quick bench of each candidate on this machine.
    let out = run(&["advise", "--fanout", "many-to-one", "--size", "64", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    for row in v["recommendations"].as_array().unwrap() {
        let us = row["round_trip_p50_us"].as_f64().unwrap_or_else(|| panic!("measured: {row}"));
        assert!(us > 0.0, "{row}");
    }
    let table = stdout(&run(&["advise", "--no-measure", "--peer", "child"]));
    assert!(table.contains("anonymous pipe") && table.contains("round trip here"), "{table}");
}

/// `switchboard advise` on a terminal (a pty from `script`) asks its
/// questions and answers from what was typed.
#[test]
fn cli_advise_asks_its_questions_on_a_terminal() {
    let exe = env!("CARGO_BIN_EXE_switchboard");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &format!("{exe} advise --no-measure"), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs the advisor on a pty");
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"local\nno\nnamed\nmany-to-one\nsmall\nno\nno\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Across the network, or this machine only?"), "{text}");
    assert!(text.contains("mailslot") && text.contains("completion port"), "the typed answers were used: {text}");
}

/// `rpc calc` serves the example; `ls` finds it through the endpoint
/// mapper, `describe` lists its methods, `call` calls them by name over
/// a binding or `find`, with the classic codes for failures.
#[test]
fn rpc_s06_cli_rpc_calc_ls_describe_call() {
    let name = unique("cli-calc");
    let (mut server, ready) = socket_listener(&["rpc", "calc", &format!("local:{name}"), "tcp:127.0.0.1[0]"]);
    assert!(ready.starts_with("serving Calc on local:"), "{ready}");
    let at = format!("local:{name}");
    let pid = server.id();
    let listed = stdout(&run(&["--format", "json", "rpc", "ls"]));
    let ours: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["pid"] == pid)
        .collect();
    assert_eq!(ours.len(), 1, "{listed}");
    assert_eq!(ours[0]["name"], "Calc");
    assert_eq!(ours[0]["endpoints"][0], at.as_str());
    let described = stdout(&run(&["rpc", "describe", &at]));
    assert!(described.contains("[0] add(a: i64, b: i64) -> i64"), "{described}");
    assert!(described.contains("[4] sum(values: Vec<f64>) -> f64"), "{described}");
    assert_eq!(stdout(&run(&["rpc", "call", &at, "Calc", "add", "2", "3"])), "5\n");
    assert_eq!(stdout(&run(&["rpc", "call", &at, "calc", "sum", "[1.5, 2.5]"])), "4.0\n");
    assert_eq!(stdout(&run(&["rpc", "call", &at, "Calc", "echo", "[1,2,255]"])), "[1,2,255]\n");
    let found = run(&["rpc", "call", "find", "b9b6d3a0-1c1e-4a57-9a43-6f0d3c2e5a10", "mul", "6", "7"]);
    assert_eq!(stdout(&found), "42\n", "{}", stderr(&found));
    let refused = run(&["rpc", "call", &at, "Calc", "div", "1", "0"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("ERROR_INVALID_PARAMETER, 87"), "{}", stderr(&refused));
    let nobody = run(&["rpc", "call", &format!("local:{}", unique("nobody")), "Calc", "add", "1", "2"]);
    assert!(stderr(&nobody).contains("RPC_S_SERVER_UNAVAILABLE, 1722"), "{}", stderr(&nobody));
    let wrong = run(&["rpc", "call", &at, "Calc", "add", "1"]);
    assert!(stderr(&wrong).contains("takes 2 arguments"), "{}", stderr(&wrong));
    let _ = server.kill();
    let _ = server.wait();
}

/// `serial send` on one end of a socat pty pair, `serial monitor` on the
/// other; `serial ls` lists (what the machine has, maybe nothing).
#[test]
fn serial_s06_cli_serial_send_monitor_ls_through_a_socat_pty_pair() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("serial"));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a"), dir.join("b"));
    let mut socat = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()))
        .spawn()
        .expect("socat (installed by .ci/test)");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(a.exists() && b.exists()) {
        assert!(std::time::Instant::now() < until, "socat made no ptys");
        std::thread::yield_now();
    }
    let (monitor, ready) =
        socket_listener(&["serial", "monitor", a.to_str().unwrap(), "--baud", "115200", "--count", "12"]);
    assert!(ready.starts_with("monitoring"), "{ready}");
    let sent = run(&["serial", "send", b.to_str().unwrap(), "--baud", "115200", "hello", "world"]);
    assert!(sent.status.success(), "{}", stderr(&sent));
    let out = monitor.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello world\n");
    assert!(run(&["serial", "ls"]).status.success());
    let nothing = run(&["serial", "send", "/dev/ttyNOSUCH", "x"]);
    assert!(stderr(&nothing).contains("ERROR_FILE_NOT_FOUND"), "{}", stderr(&nothing));
    let _ = socat.kill();
    let _ = socat.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serial_s08_cli_serial_pair_open_monitor_send() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("pair"));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("com1"), dir.join("com2"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let mut pair = Holder(bin().args(["serial", "pair", "--link", a, b]).stdout(Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    BufReader::new(pair.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), format!("{a}\t{b}"));
    let (monitor, ready) =
        socket_listener(&["--format", "json", "serial", "monitor", b, "--baud", "9600", "--count", "7"]);
    assert!(ready.starts_with("monitoring"), "{ready}");
    // Opening the far end raises its lines here; the break, then the text.
    let opened = run(&["serial", "open", a, "--baud", "9600", "--data-bits", "7", "--parity", "even", "--break"]);
    assert!(opened.status.success(), "{}", stderr(&opened));
    assert!(stdout(&opened).starts_with(&format!("{a}: 9600 baud 7E1")), "{}", stdout(&opened));
    assert!(stdout(&opened).contains("modem: CTS on DSR on DCD on"), "{}", stdout(&opened));
    let sent = run(&["serial", "send", a, "--baud", "9600", "hello"]);
    assert!(sent.status.success(), "{}", stderr(&sent));
    let out = monitor.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let events: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    assert!(events.contains(&"CTS on") && events.contains(&"DCD on") && events.contains(&"break"), "{lines:?}");
    let bytes: Vec<u8> =
        lines.iter().filter_map(|l| l["bytes"].as_array()).flatten().map(|b| b.as_u64().unwrap() as u8).collect();
    assert_eq!(bytes, b"\0hello\n");
    // A plain pty has no modem lines: said so.
    let plain = run(&["serial", "open", "/dev/ptmx"]);
    assert!(!plain.status.success() || stdout(&plain).contains("modem: none"), "{}", stdout(&plain));
    // Interrupted, the pair removes its links.
    assert!(Command::new("kill").arg(pair.0.id().to_string()).status().unwrap().success());
    assert!(pair.0.wait().unwrap().success());
    assert!(!std::path::Path::new(a).exists() && !std::path::Path::new(b).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inet_s06_cli_http_serve_get_put() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("http"));
    let served = dir.join("served");
    std::fs::create_dir_all(&served).unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(served.join("file.bin"), &data).unwrap();
    let mut server = Holder(
        bin()
            .args(["http", "serve"])
            .arg(&served)
            .args(["--listen", "127.0.0.1:0", "--max-upload", "100K"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut url = String::new();
    BufReader::new(server.0.stdout.take().unwrap()).read_line(&mut url).unwrap();
    let url = url.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let out = dir.join("got.bin");
    let got = run(&["--format", "json", "http", "get", &format!("{url}file.bin"), "-o", out.to_str().unwrap()]);
    assert!(got.status.success(), "{}", stderr(&got));
    let report: serde_json::Value = serde_json::from_str(stdout(&got).trim()).unwrap();
    assert_eq!(report["bytes"], 200_000);
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let again = run(&["--format", "json", "http", "get", &format!("{url}file.bin"), "-o", out.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_str(stdout(&again).trim()).unwrap();
    assert_eq!(report["already_complete"], true);
    let put = run(&["http", "put", out.to_str().unwrap(), &format!("{url}too-big.bin"), "-q"]);
    assert!(!put.status.success());
    assert!(stderr(&put).contains("413"), "{}", stderr(&put));
    let small = dir.join("small.txt");
    std::fs::write(&small, b"hello").unwrap();
    let put = run(&["http", "put", small.to_str().unwrap(), &format!("{url}small.txt"), "-q"]);
    assert!(put.status.success(), "{}", stderr(&put));
    assert_eq!(std::fs::read(served.join("small.txt")).unwrap(), b"hello");
    let missing = run(&["http", "get", &format!("{url}nothing"), "-o", dir.join("n").to_str().unwrap(), "-q"]);
    assert!(stderr(&missing).contains("HTTP 404 Not Found"), "{}", stderr(&missing));
    assert!(Command::new("kill").arg(server.0.id().to_string()).status().unwrap().success());
    assert!(server.0.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// 13-S01 from a shell: two gateways on loopback (the second only exposes
/// this machine's objects as host "beta"), `ls --host`, a pipe call and a
/// mailslot write through them; without a gateway, a clear 53.
#[test]
fn net_s01_cli_gateway_ls_host_pipe_call_and_mailslot_write() {
    let _one_gateway = one_gateway_at_a_time();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let none = run(&["ls", "--host", "beta"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(stderr(&none).contains("ERROR_BAD_NETPATH"), "{}", stderr(&none));
    let _alpha = Holder::saying(&["gateway", "--host", "alpha", "--listen", &listen], "gateway ");
    let beta = ["gateway", "--host", "beta", "--listen", "tcp/127.0.0.1:0", "--connect", &listen, "--expose-only"];
    let _beta = Holder::saying(&beta, "gateway ");
    let (p, m) = (unique("gwpipe"), unique("gwslot"));
    let (mut server, ready) = spawn_ready(&["pipe", "serve", &p, "--message", "--echo", "--clients", "1"]);
    assert!(ready.starts_with("serving pipe"), "{ready:?}");
    let (reader, ready) = spawn_ready(&["mailslot", "read", &m, "--count", "1", "--timeout", "30s"]);
    assert!(ready.contains("ready"), "{ready:?}");
    let ls = stdout(&run(&["ls", "--host", "beta", "--json"]));
    assert!(ls.contains(&format!("\"name\":\"{p}\"")), "{ls}");
    let call = run(&["pipe", "call", &format!(r"\\beta\pipe\{p}"), "over there"]);
    assert!(call.status.success(), "{}", stderr(&call));
    assert_eq!(stdout(&call).trim(), "over there");
    assert!(server.wait().unwrap().success());
    let wrote = run(&["mailslot", "write", &format!(r"\\beta\mailslot\{m}"), "a note"]);
    assert!(wrote.status.success(), "{}", stderr(&wrote));
    let out = reader.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("a note"), "{out:?}");
    // With this user's gateway running, the bench cannot start its own for
    // its remote path: it skips that path, says why, and still succeeds.
    let bench = run(&["bench", "--quick", "--json", "--only", "remote_pipe_transact"]);
    assert!(bench.status.success(), "{}", stderr(&bench));
    assert!(stderr(&bench).contains("remote_pipe_transact skipped") && stderr(&bench).contains("gateway"));
    let v: serde_json::Value = serde_json::from_slice(&bench.stdout).expect("valid JSON");
    assert!(v["paths"].as_array().unwrap().is_empty(), "{v}");
}
