//! Multi-process test harness.
//!
//! A test re-executes its own binary (`current_exe() TEST --exact`) with
//! `SB_ROLE` set; the same test function then sees [`role`] return the role
//! and runs the peer's side. Parent and peer talk through the API under test;
//! the harness only adds a line protocol on the peer's stdin/stdout for
//! "I am ready"/"go on" steps, which is not part of what is tested.
//!
//! Nothing here sleeps to synchronise. A [`Watchdog`] aborts a deadlocked
//! test (killing its peers) instead of hanging CI; peers die with their
//! parent (`PR_SET_PDEATHSIG`) and have their own watchdog.
#![allow(dead_code)]

pub mod ca;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long any single step may take before the test is declared hung.
pub const STEP: Duration = Duration::from_secs(60);

static PEERS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// The role this process plays, if it is a peer.
pub fn role() -> Option<String> {
    let r = std::env::var("SB_ROLE").ok()?;
    let _ = switchboard_sys::process::die_with_parent();
    std::mem::forget(Watchdog::new(STEP * 3));
    Some(r)
}

/// The peer's arguments.
pub fn args() -> Vec<String> {
    std::env::var("SB_ARGS").map(|a| a.split('\x1f').map(str::to_owned).collect()).unwrap_or_default()
}

/// Peer side: tells the parent something (one line).
pub fn say(msg: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "SB:{msg}");
    let _ = out.flush();
}

/// Peer side: waits for the parent's next line.
pub fn hear() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("read from parent");
    line.trim_end().to_owned()
}

/// Peer side: tell the parent `msg`, keep everything held until the parent
/// says to go on, then exit successfully.
pub fn hold(msg: &str) -> ! {
    say(msg);
    hear();
    done()
}

/// Peer side: finish now with success, skipping the rest of the test body.
pub fn done() -> ! {
    std::process::exit(0)
}

/// Whether thread `tid` of this process is asleep in `futex` or
/// `futex_waitv` (as `/proc` shows it): a test can act on a blocked call
/// knowing it is really blocked, without sleeping.
pub fn asleep_in_futex(tid: u32) -> bool {
    switchboard_sys::process::blocked_in_futex(std::process::id(), tid)
}

/// The threads of this process (for tests that show a wait parks none).
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Runs the tests of one binary that take it one at a time: tests that
/// count this process's threads or descriptors, which a test running
/// beside them would change.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A peer process.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pub pid: u32,
}

impl Peer {
    /// Starts `test` of this binary as `role` with `args`.
    pub fn spawn(test: &str, role: &str, args: &[&str]) -> Peer {
        Peer::spawn_in(None, test, role, args)
    }

    /// Starts `test` of this binary as `role` with `args`, inside network
    /// namespace `netns` when given (`ip netns exec`, which execs in place).
    pub fn spawn_in(netns: Option<&str>, test: &str, role: &str, args: &[&str]) -> Peer {
        Peer::spawn_with(netns, None, test, role, args)
    }

    /// Starts `test` of this binary as `role` with `args` in a process of
    /// user and group `uid` (`setpriv`, which execs in place). Needs root.
    pub fn spawn_as(uid: u32, test: &str, role: &str, args: &[&str]) -> Peer {
        Peer::spawn_with(None, Some(uid), test, role, args)
    }

    /// Starts `test` of this binary as `role` with `args`, in network
    /// namespace `netns` (`ip netns exec`) and as user and group `uid`
    /// (`setpriv`), each when given; both exec in place, so the peer's pid
    /// is the test binary's.
    pub fn spawn_with(netns: Option<&str>, uid: Option<u32>, test: &str, role: &str, args: &[&str]) -> Peer {
        let exe = std::env::current_exe().expect("current_exe");
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let Some(ns) = netns {
            argv.extend(["ip", "netns", "exec", ns].map(Into::into));
        }
        if let Some(uid) = uid {
            let id = uid.to_string();
            argv.extend(["setpriv", "--reuid", &id, "--regid", &id, "--clear-groups", "--"].map(Into::into));
        }
        argv.push(exe.into());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        Peer::start(cmd, test, role, args)
    }

    fn start(mut cmd: Command, test: &str, role: &str, args: &[&str]) -> Peer {
        let mut child = cmd
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("SB_ROLE", role)
            .env("SB_ARGS", args.join("\x1f"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn peer");
        let pid = child.id();
        PEERS.lock().unwrap().push(pid);
        let (tx, lines) = channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || forward_lines(stdout, tx));
        Peer { stdin: child.stdin.take(), child, lines, pid }
    }

    /// Waits for the peer's next line and returns it.
    pub fn next(&mut self) -> String {
        match self.lines.recv_timeout(STEP) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => panic!("peer {} said nothing for {STEP:?}", self.pid),
            Err(RecvTimeoutError::Disconnected) => panic!("peer {} exited: {:?}", self.pid, self.child.try_wait()),
        }
    }

    /// The peer's next line if it has already said one.
    pub fn try_next(&mut self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// Waits for the peer's next line and checks it.
    pub fn expect(&mut self, want: &str) {
        let got = self.next();
        assert_eq!(got, want, "peer {} said {got:?}, expected {want:?}", self.pid);
    }

    /// Sends the peer a line.
    pub fn tell(&mut self, msg: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{msg}").expect("write to peer");
        stdin.flush().expect("flush to peer");
    }

    /// `kill -9` the peer and reap it.
    pub fn kill9(&mut self) {
        let _ = switchboard_sys::process::kill9(self.pid);
        self.child.wait().expect("reap killed peer");
    }

    /// Waits (bounded by the watchdog step) for the peer to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let until = Instant::now() + STEP;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(Instant::now() < until, "peer {} did not exit", self.pid);
            // Reaping has no notification we can block on with a timeout
            // from std; poll the exit status gently.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Lets a peer that is in [`hold`] go, and checks that it exits cleanly.
    pub fn dismiss(&mut self) {
        self.tell("go on");
        self.finish();
    }

    /// Waits for the peer to exit successfully.
    pub fn finish(&mut self) {
        let status = self.wait();
        assert!(status.success(), "peer {} failed: {status}", self.pid);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn forward_lines(stdout: std::process::ChildStdout, tx: Sender<String>) {
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        // libtest may have printed "test NAME ... " on the same line first.
        if let Some(msg) = line.find("SB:").map(|at| &line[at + 3..]) {
            if tx.send(msg.to_owned()).is_err() {
                return;
            }
        } else {
            // libtest's own chatter from the peer; keep it visible.
            println!("[peer] {line}");
        }
    }
}

/// Runs `ip ARGS…` (iproute2); whether it succeeded.
pub fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// A network namespace of a test's own, its loopback up; deleted on drop.
pub struct Netns(String);

impl Netns {
    /// Adds namespace `name`, or `None` when this process may not (not
    /// root, no `ip`).
    pub fn add(name: String) -> Option<Netns> {
        if !ip(&["netns", "add", &name]) {
            return None;
        }
        let ns = Netns(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]).then_some(ns)
    }

    /// Its name (for `ip -n` and [`Peer::spawn_in`]).
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Aborts the whole test process (after killing its peers) if not dropped
/// within its time limit: a deadlock fails instead of hanging CI.
pub struct Watchdog(Option<Sender<()>>);

impl Watchdog {
    pub fn new(limit: Duration) -> Watchdog {
        let (tx, rx) = channel::<()>();
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("watchdog: test still running after {limit:?}; killing peers and aborting");
                for pid in PEERS.lock().map(|p| p.clone()).unwrap_or_default() {
                    let _ = switchboard_sys::process::kill9(pid);
                }
                std::process::abort();
            }
        });
        Watchdog(Some(tx))
    }

    /// The default watchdog for one test.
    pub fn test() -> Watchdog {
        Watchdog::new(STEP * 4)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A unique object name for this test run.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("sbtest-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Whether `switchboard::namespace::list()` shows an object named `name`.
pub fn listed(name: &str) -> bool {
    switchboard::namespace::list().iter().any(|e| e.name == name)
}

/// The entries of a directory (empty if it does not exist).
pub fn dir_entries(path: &str) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(path)
        .map(|d| d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect())
        .unwrap_or_default()
}

/// Everything switchboard could conceivably leave on disk, for before/after
/// comparisons in crash tests.
pub fn disk_snapshot() -> Vec<(String, std::collections::BTreeSet<String>)> {
    let mut dirs = vec!["/dev/shm".to_owned(), std::env::temp_dir().to_string_lossy().into_owned()];
    if let Ok(x) = std::env::var("XDG_RUNTIME_DIR") {
        dirs.push(x);
    }
    dirs.into_iter()
        .map(|d| {
            let e = dir_entries(&d)
                .into_iter()
                .filter(|n| n.contains("switchboard") || n.contains("sbtest") || n.starts_with("sb1"))
                .collect();
            (d, e)
        })
        .collect()
}

/// Polls `cond` until true or the step limit; for conditions that the kernel
/// makes true asynchronously (a killed process's sockets closing) and that
/// have no event to block on.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < until, "never became true: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Raises this process's descriptor limit to at least `want` (children
/// inherit it), failing the test when the machine does not allow it.
pub fn raise_fd_limit(want: u64) {
    let got = switchboard_sys::process::raise_fd_limit(want);
    assert!(got >= want, "this test needs {want} open descriptors; the limit is {got}");
}

/// A small deterministic generator (xorshift64*), so a failure repeats
/// from its seed.
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Runs `f` on a thread of scope `s` and returns once that thread is
/// asleep in the kernel (a futex wait): the call `f` makes is really
/// blocked, with no sleep to guess how long that takes.
pub fn spawn_asleep<'scope, T: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, T> {
    let (tid_tx, tid) = channel();
    let handle = s.spawn(move || {
        tid_tx.send(switchboard_sys::process::tid()).expect("the spawner waits for the tid");
        f()
    });
    let tid = tid.recv().expect("the thread started");
    eventually("the thread is asleep in the kernel", || asleep_in_futex(tid));
    handle
}

/// The repository's root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A command running the project's Python (`target/python-venv`, with
/// msgpack and pyserial from PyPI), made by `python/run-tests --setup` the
/// first time (`.ci/test` makes it too), so a bare `cargo test` works:
/// once per test process, and `python/run-tests` locks the venv against
/// other processes (tests in parallel once raced to make it).
pub fn python() -> Command {
    static MADE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let root = repo_root();
    let made = MADE
        .get_or_init(|| Command::new(root.join("python/run-tests")).arg("--setup").status().is_ok_and(|s| s.success()));
    assert!(made, "python/run-tests --setup failed");
    Command::new(root.join("target/python-venv/bin/python"))
}
