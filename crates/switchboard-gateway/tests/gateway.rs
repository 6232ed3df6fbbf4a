//! Spec 13 (reaching other machines), 02-S26 and 03-S12: hosts are network
//! namespaces joined by veth pairs (addresses only inside them), each with
//! its own gateway, speaking mutual TLS between hosts. Each namespace has
//! its own abstract sockets, so each is a host of its own to switchboard.
//!
//! Topology: a — b — c (two links; a and c reach each other through b's
//! gateway, which routes).

#[path = "../../switchboard/tests/util/mod.rs"]
mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
use switchboard::mailslot::{Mailslot, MailslotClient, MailslotOptions};
use switchboard::pipe::named::{PipeClient, PipeOptions, PipeServer, PipeType, ReadMode};
use switchboard::rpc::calc::{Calc, CalcClient, CalcInterface, CalcServer, Calculator};
use switchboard::rpc::{AuthLevel, Interface, Server};
use switchboard::Error;
use switchboard_gateway::{Backend, Gateway, ZenohBackend, ZenohConfig};
use util::{args, hear, ip, role, say, Netns, Peer, Watchdog};

/// Three namespaces a, b, c; links a–b and b–c; removed on drop.
struct Hosts {
    ns: [Netns; 3],
    dir: PathBuf,
}

/// b's address on link a–b and on link b–c.
const B_AB: &str = "10.77.1.2";
const B_BC: &str = "10.77.2.2";
/// Where each host's gateway listens for programs on that host.
const LOOPBACK: &str = "tcp/127.0.0.1:7447";

impl Hosts {
    fn build(tag: &str) -> Hosts {
        let pid = std::process::id();
        let ns = ["a", "b", "c"]
            .map(|h| Netns::add(format!("sbg{pid}{tag}{h}")).expect("ip netns add (root and iproute2 are needed)"));
        let dir = std::env::temp_dir().join(format!("sbg-{pid}-{tag}"));
        let hosts = Hosts { ns, dir: dir.clone() };
        let ns = |i: usize| hosts.ns[i].name();
        let link = |x: usize, dx: &str, ax: &str, y: usize, dy: &str, ay: &str| {
            assert!(ip(&["link", "add", dx, "netns", ns(x), "type", "veth", "peer", "name", dy, "netns", ns(y)]));
            for (n, d, a) in [(x, dx, ax), (y, dy, ay)] {
                assert!(ip(&["-n", ns(n), "addr", "add", &format!("{a}/24"), "dev", d]));
                assert!(ip(&["-n", ns(n), "link", "set", d, "up"]));
            }
        };
        link(0, "ab", "10.77.1.1", 1, "ba", B_AB);
        link(1, "bc", B_BC, 2, "cb", "10.77.2.3");
        // Certificates: one CA, one certificate per gateway (mutual TLS).
        std::fs::create_dir_all(&dir).unwrap();
        let ca = util::ca::Ca::new("switchboard test CA");
        std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
        // "rogue": a certificate the CA signed, for a gateway nobody allows.
        for h in ["a", "b", "c", "rogue"] {
            let (cert, key) = ca.issue_for(&format!("{h}.test"), vec![ServerAuth, ClientAuth]);
            std::fs::write(dir.join(format!("{h}.pem")), cert).unwrap();
            std::fs::write(dir.join(format!("{h}.key")), key).unwrap();
        }
        hosts
    }

    /// Starts the gateways: b listens on both links, a and c connect to it.
    fn gateways(&self, test: &str) -> Vec<Peer> {
        let dir = self.dir.to_str().unwrap();
        // Each also listens on its own loopback, for programs on its host.
        let b_listen = format!("tls/{B_AB}:7447,tls/{B_BC}:7447,{LOOPBACK}");
        let mut b = Peer::spawn_in(Some(self.ns[1].name()), test, "gateway", &["b", &b_listen, "", dir]);
        b.expect("up");
        let to_b = format!("tls/{B_AB}:7447");
        let mut a = Peer::spawn_in(Some(self.ns[0].name()), test, "gateway", &["a", LOOPBACK, &to_b, dir]);
        let to_b = format!("tls/{B_BC}:7447");
        let mut c = Peer::spawn_in(Some(self.ns[2].name()), test, "gateway", &["c", LOOPBACK, &to_b, dir]);
        a.expect("up");
        c.expect("up");
        vec![a, b, c]
    }

    fn spawn(&self, host: usize, test: &str, role: &str, args: &[&str]) -> Peer {
        Peer::spawn_in(Some(self.ns[host].name()), test, role, args)
    }

    /// Cuts (or restores) link a–b, on a's side.
    fn link_ab(&self, up: bool) {
        assert!(ip(&["-n", self.ns[0].name(), "link", "set", "ab", if up { "up" } else { "down" }]));
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The peer roles every test here shares. Returns when this process is a
/// test's peer, having played its role.
fn play(test: &str) -> bool {
    let Some(r) = role() else { return false };
    let a = args();
    match r.as_str() {
        "gateway" => run_gateway(&a),
        "echo" => echo_server(&a[0], false),
        "reject" => echo_server(&a[0], true),
        "mailslot" => mailslot_server(&a[0]),
        "rpc" => {
            let server = Server::builder().serve(CalcServer(Calculator)).auth_level(AuthLevel::None).build();
            for binding in a {
                server.listen(binding.as_str()).unwrap();
            }
            util::hold("ready");
        }
        "deaf" => {
            let _server = PipeOptions::new().pipe_type(PipeType::Message).create(&a[0]).unwrap();
            util::hold("ready");
        }
        other => client(test, other, &a),
    }
    true
}

fn run_gateway(a: &[String]) {
    let list = |s: &String| s.split(',').filter(|e| !e.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    let dir = Path::new(&a[3]);
    // Mutual TLS and a deny-by-default list: b lets a and c in, they let b in.
    let allow = match a[0].as_str() {
        "b" => vec!["a.test".to_owned(), "c.test".to_owned()],
        _ => vec!["b.test".to_owned()],
    };
    let cert = a.get(4).cloned().unwrap_or_else(|| a[0].clone());
    let config = ZenohConfig {
        listen: list(&a[1]),
        connect: list(&a[2]),
        tls_ca: Some(dir.join("ca.pem")),
        tls_cert: Some(dir.join(format!("{cert}.pem"))),
        tls_key: Some(dir.join(format!("{cert}.key"))),
        lease: Some(Duration::from_secs(6)),
        allow,
    };
    let _gateway = Gateway::start(Arc::new(ZenohBackend::open(&config).unwrap()), &a[0], true).unwrap();
    util::hold("up");
}

/// A message pipe whose server answers each message with "echo:" + it.
fn echo_server(name: &str, reject_remote: bool) {
    let opts =
        PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message).reject_remote(reject_remote);
    let server: PipeServer = opts.create(name).unwrap();
    say("ready");
    loop {
        server.connect().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match server.read(&mut buf) {
                Ok(n) if &buf[..n] == b"stop" => {
                    say("stopped");
                    return;
                }
                Ok(n) => {
                    let mut reply = b"echo:".to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    if server.write(&reply).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        server.disconnect().unwrap();
    }
}

/// A mailslot that reports each message it reads, as text.
fn mailslot_server(name: &str) {
    let slot: Mailslot = MailslotOptions::new().create(name).unwrap();
    slot.set_read_timeout(Duration::from_secs(30));
    say("ready");
    let mut buf = vec![0u8; 70_000];
    loop {
        match slot.read(&mut buf) {
            Ok(n) => say(&format!("mail:{}", String::from_utf8_lossy(&buf[..n]))),
            Err(e) => say(&format!("mail error:{e}")),
        }
    }
}

fn client(test: &str, role: &str, a: &[String]) {
    let _ = test;
    match role {
        // Opens \\HOST\pipe\NAME and transacts each further argument.
        "transact" => {
            // Waiting while the instance is busy (a client before this one
            // may not have been seen leaving yet).
            let name = format!(r"\\{}\pipe\{}", a[0], a[1]);
            let pipe = match PipeClient::open_wait(&name, Duration::from_secs(20)) {
                Ok(p) => p,
                Err(e) => {
                    say(&format!("error:{}", e.win32()));
                    util::done();
                }
            };
            pipe.set_read_mode(ReadMode::Message).unwrap();
            for m in &a[2..] {
                let mut reply = vec![0u8; 64];
                match pipe.transact(m.as_bytes(), &mut reply) {
                    Ok(n) => say(&format!("reply:{}", String::from_utf8_lossy(&reply[..n]))),
                    Err(Error::MoreData { received }) => {
                        let mut rest = vec![0u8; 1 << 20];
                        let n = pipe.read(&mut rest).unwrap();
                        say(&format!("more:{received}+{n}"));
                    }
                    Err(e) => say(&format!("error:{}", e.win32())),
                }
            }
        }
        // Tries to open \\HOST\pipe\NAME; says the Win32 code (0: opened).
        "open" => {
            let code = PipeClient::open(&format!(r"\\{}\pipe\{}", a[0], a[1])).map_or_else(|e| e.win32(), |_| 0);
            say(&format!("open:{code}"));
        }
        // Writes each further argument to mailslot name a[1] on host a[0].
        "mail" => {
            let writer = match MailslotClient::open(&format!(r"\\{}\mailslot\{}", a[0], a[1])) {
                Ok(w) => w,
                Err(e) => {
                    say(&format!("wrote:{}", e.win32()));
                    util::done();
                }
            };
            for m in &a[2..] {
                let code = writer.write(m.as_bytes()).map_or_else(|e| e.win32(), |()| 0);
                say(&format!("wrote:{code}"));
            }
        }
        // Finds Calc on host a[0] through the gateways and calls it; then
        // calls the binding a[1] directly (plain TCP across hosts).
        "calc" => {
            let uuid = CalcInterface::ID.to_string();
            let bindings = switchboard::remote::lookup(&a[0], &uuid, CalcInterface::VERSION).unwrap();
            say(&format!("bindings:{}", bindings.join(" ")));
            let calc = CalcClient::find_on(&a[0]).unwrap();
            say(&format!("found:{}:{}", calc.add(2, 3).unwrap(), calc.client().binding()));
            let tcp = CalcClient::connect(&a[1]).unwrap();
            say(&format!("tcp:{}", tcp.mul(6, 7).unwrap()));
            let none = switchboard::remote::lookup(&a[0], "00000000-0000-0000-0000-000000000000", (1, 0));
            say(&format!("none:{}", none.map_or_else(|e| e.win32(), |_| 0)));
        }
        // Counts the connection tokens alive on the network (a raw Zenoh
        // peer on this host's loopback), waiting up to 20 s for none.
        "tokens" => {
            let config = ZenohConfig { connect: vec![LOOPBACK.into()], ..ZenohConfig::default() };
            let backend = ZenohBackend::open(&config).unwrap();
            let alive = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
            let seen = alive.clone();
            let _watch = backend
                .watch(
                    "switchboard/*/conn/*/client",
                    Box::new(move |key, up| {
                        let mut seen = seen.lock().unwrap();
                        if up {
                            seen.insert(key.to_owned());
                        } else {
                            seen.remove(key);
                        }
                    }),
                )
                .unwrap();
            // The history arrives within a moment of linking; then wait
            // for the count to fall to none.
            std::thread::sleep(Duration::from_secs(2));
            let until = Instant::now() + Duration::from_secs(20);
            while !alive.lock().unwrap().is_empty() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            say(&format!("tokens:{}", alive.lock().unwrap().len()));
        }
        // Lists host a[0].
        "ls" => {
            let objects = switchboard::remote::list(&a[0]).unwrap();
            let names: Vec<String> = objects.iter().map(|o| format!("{}:{}", o.kind, o.name)).collect();
            say(&format!("ls:{}", names.join(",")));
        }
        // Opens, transacts once, then answers the parent's steps.
        "session" => {
            // A gateway just (re)started is linked within Zenoh's reconnect
            // period (1 to 4 s): opens meanwhile are 53, and are retried.
            let name = format!(r"\\{}\pipe\{}", a[0], a[1]);
            let until = Instant::now() + Duration::from_secs(40);
            let pipe = loop {
                match PipeClient::open(&name) {
                    Err(Error::NetPath(_)) if Instant::now() < until => {}
                    other => break other.unwrap(),
                }
            };
            pipe.set_read_mode(ReadMode::Message).unwrap();
            say("opened");
            loop {
                let msg = hear();
                let mut reply = vec![0u8; 64];
                let started = Instant::now();
                match pipe.transact(msg.as_bytes(), &mut reply) {
                    Ok(n) => say(&format!("reply:{}", String::from_utf8_lossy(&reply[..n]))),
                    Err(e) => say(&format!("error:{}:{}ms", e.win32(), started.elapsed().as_millis())),
                }
            }
        }
        // Writes 4 KiB messages to a pipe nobody reads, until a write
        // waits past 2 s; says how many bytes went in.
        "flood" => {
            let pipe = PipeClient::open(&format!(r"\\{}\pipe\{}", a[0], a[1])).unwrap();
            pipe.set_write_timeout(Some(Duration::from_secs(2)));
            let chunk = vec![7u8; 4096];
            let mut sent = 0usize;
            while sent < 64 << 20 && pipe.write(&chunk).is_ok() {
                sent += chunk.len();
            }
            say(&format!("sent:{sent}"));
            hear();
        }
        other => panic!("unknown role {other}"),
    }
    util::done();
}

fn reply_of(line: &str) -> &str {
    line.strip_prefix("reply:").unwrap_or_else(|| panic!("not a reply: {line}"))
}

const PIPES: &str = "net_s01_s02_pipe_s26_pipes_across_one_and_two_gateways_refusals_and_a_listing";

/// 13-S01, S02 and 02-S26 on three hosts: pipe transacts from a to b and
/// from a to c (through b), message semantics kept; a pipe that refuses
/// remote clients, one that does not exist, a host nobody serves; what b
/// exposes, listed from a.
#[test]
fn net_s01_s02_pipe_s26_pipes_across_one_and_two_gateways_refusals_and_a_listing() {
    if play(PIPES) {
        return;
    }
    let _w = Watchdog::test();
    let hosts = Hosts::build("t");
    let _gateways = hosts.gateways(PIPES);
    let mut echo_b = hosts.spawn(1, PIPES, "echo", &["orders"]);
    let mut echo_c = hosts.spawn(2, PIPES, "echo", &["Orders"]);
    let mut reject = hosts.spawn(1, PIPES, "reject", &["private"]);
    let mut slot_b = hosts.spawn(1, PIPES, "mailslot", &["log"]);
    for p in [&mut echo_b, &mut echo_c, &mut reject, &mut slot_b] {
        p.expect("ready");
    }

    // Message semantics across hosts; names case-insensitive.
    let mut t = hosts.spawn(0, PIPES, "transact", &["B", "ORDERS", "one", "two", &"x".repeat(100)]);
    assert_eq!(reply_of(&t.next()), "echo:one");
    assert_eq!(reply_of(&t.next()), "echo:two");
    assert_eq!(t.next(), "more:64+41", "a reply longer than the buffer is MoreData, the rest read after");
    t.finish();
    let mut t = hosts.spawn(0, PIPES, "transact", &["c", "orders", "via b"]);
    assert_eq!(reply_of(&t.next()), "echo:via b", "a reaches c through b's gateway");
    t.finish();

    // 02-S26: a pipe created with reject_remote refuses (5), and a pipe
    // that does not exist is NotFound (2), each from the far host.
    let mut o = hosts.spawn(0, PIPES, "open", &["b", "private"]);
    assert_eq!(o.next(), "open:5");
    o.finish();
    let mut o = hosts.spawn(0, PIPES, "open", &["b", "nothing-here"]);
    assert_eq!(o.next(), "open:2");
    o.finish();
    // A host nobody serves: a clear error (53) within the open's deadline.
    let mut o = hosts.spawn(0, PIPES, "open", &["nowhere", "orders"]);
    assert_eq!(o.next(), "open:53");
    o.finish();

    // 13-S01: what b exposes, asked from a; the gateways' own relays are not listed.
    let mut l = hosts.spawn(0, PIPES, "ls", &["b"]);
    let listing = l.next();
    l.finish();
    for want in ["mailslot:log", "pipe:orders", "pipe:private"] {
        assert!(listing.contains(want), "{want} in {listing}");
    }
    assert!(!listing.contains("sbgw-"), "{listing}");

    // Every connection, the refused and failed opens' included, let go of
    // its client token: nothing of them lingers in a's gateway.
    let mut t = hosts.spawn(0, PIPES, "tokens", &[]);
    assert_eq!(t.next(), "tokens:0");
    t.finish();
}

const MAIL: &str = "net_s03_mailslot_s12_a_write_to_one_host_arrives_in_its_queue_only";

/// 13-S03 / 03-S12: a write from a to `\\b\mailslot\log` arrives in b's
/// queue, and one to c (through b) in c's; neither in the other's.
#[test]
fn net_s03_mailslot_s12_a_write_to_one_host_arrives_in_its_queue_only() {
    if play(MAIL) {
        return;
    }
    let _w = Watchdog::test();
    let hosts = Hosts::build("m");
    let _gateways = hosts.gateways(MAIL);
    let mut slot_b = hosts.spawn(1, MAIL, "mailslot", &["log"]);
    let mut slot_c = hosts.spawn(2, MAIL, "mailslot", &["LOG"]);
    slot_b.expect("ready");
    slot_c.expect("ready");
    let mut m = hosts.spawn(0, MAIL, "mail", &["b", "log", "to b", "again"]);
    assert_eq!(m.next(), "wrote:0");
    assert_eq!(m.next(), "wrote:0");
    m.finish();
    let mut m = hosts.spawn(0, MAIL, "mail", &["C", "Log", "to c"]);
    assert_eq!(m.next(), "wrote:0");
    m.finish();
    assert_eq!(slot_b.next(), "mail:to b");
    assert_eq!(slot_b.next(), "mail:again", "in order");
    assert_eq!(slot_c.next(), "mail:to c", "c got its own, not b's");
}

const ALL: &str = "net_s04_a_domain_broadcast_reaches_every_gateways_host";

/// 13-S04: a write to `\\*\mailslot\log` on a reaches the mailslot log
/// of every gateway's host (a's own included); over 424 bytes is 53 and
/// reaches nobody.
#[test]
fn net_s04_a_domain_broadcast_reaches_every_gateways_host() {
    if play(ALL) {
        return;
    }
    let _w = Watchdog::test();
    let hosts = Hosts::build("d");
    let _gateways = hosts.gateways(ALL);
    let mut slots: Vec<Peer> = (0..3).map(|h| hosts.spawn(h, ALL, "mailslot", &["log"])).collect();
    for s in &mut slots {
        s.expect("ready");
    }
    let mut m = hosts.spawn(0, ALL, "mail", &["*", "log", &"y".repeat(425), "to all"]);
    assert_eq!(m.next(), "wrote:53");
    assert_eq!(m.next(), "wrote:0");
    m.finish();
    for (h, s) in slots.iter_mut().enumerate() {
        assert_eq!(s.next(), "mail:to all", "host {h}: the broadcast, and nothing over 424 bytes before it");
    }
}

const SLOW: &str = "net_s02_a_reader_that_does_not_read_holds_the_writer_back";

/// The credit protocol: a writer into a remote pipe whose server never
/// reads is held back after a bounded amount (the pipe buffers and one
/// window), instead of the gateways buffering without bound.
#[test]
fn net_s02_a_reader_that_does_not_read_holds_the_writer_back() {
    if play(SLOW) {
        return;
    }
    let _w = Watchdog::test();
    let hosts = Hosts::build("s");
    let _gateways = hosts.gateways(SLOW);
    // A server that never reads: the pipe exists, its reader sleeps.
    let mut deaf = hosts.spawn(1, SLOW, "deaf", &["deaf"]);
    deaf.expect("ready");
    let mut f = hosts.spawn(0, SLOW, "flood", &["b", "deaf"]);
    let sent: usize = f.next().strip_prefix("sent:").unwrap().parse().unwrap();
    // The private relay pipe (1 MiB), one window (256 KiB), the far pipe
    // (64 KiB) and a message the relay holds: under 2 MiB; never the
    // 64 MiB offered.
    println!("{sent} bytes went in before the writer was held");
    assert!(sent > 0 && sent < 2 << 20, "{sent} bytes went in before the writer was held");
    f.tell("done");
    f.finish();
}

/// Entries of /dev/shm and the temporary directory, for a before/after look.
fn leftovers() -> std::collections::BTreeSet<String> {
    ["/dev/shm".to_owned(), std::env::temp_dir().to_string_lossy().into_owned()]
        .iter()
        .flat_map(|d| util::dir_entries(d).into_iter().map(move |e| format!("{d}/{e}")))
        .filter(|e| !e.contains("/sbg-"))
        .collect()
}

fn error_within(line: &str, limit_ms: u128) {
    let rest = line.strip_prefix("error:").unwrap_or_else(|| panic!("not an error: {line}"));
    let (code, ms) = rest.split_once(':').unwrap();
    let ms: u128 = ms.trim_end_matches("ms").parse().unwrap();
    assert!(["109", "232", "233", "53"].contains(&code), "a broken or closed pipe or a lost network path, not {line}");
    assert!(ms < limit_ms, "the error came after {ms} ms: {line}");
}

const CUT: &str = "net_s07_a_cut_link_gives_clients_a_clear_error_and_traffic_recovers";

/// S07: a link cut under an open pipe ends it with an error within the
/// lease (6 s here), never a hang; an open meanwhile is 53 within its
/// deadline; once the link is back, traffic flows again.
#[test]
fn net_s07_a_cut_link_gives_clients_a_clear_error_and_traffic_recovers() {
    if play(CUT) {
        return;
    }
    let _w = Watchdog::test();
    let hosts = Hosts::build("k");
    let _gateways = hosts.gateways(CUT);
    let mut echo = hosts.spawn(1, CUT, "echo", &["orders"]);
    echo.expect("ready");
    let mut s = hosts.spawn(0, CUT, "session", &["b", "orders"]);
    s.expect("opened");
    s.tell("before");
    assert_eq!(reply_of(&s.next()), "echo:before");

    hosts.link_ab(false);
    s.tell("during");
    error_within(&s.next(), 15_000);
    let mut o = hosts.spawn(0, CUT, "open", &["b", "orders"]);
    assert_eq!(o.next(), "open:53");
    o.finish();
    // c, on the other side of b, is cut off from a too; b still reaches c.
    let mut o = hosts.spawn(1, CUT, "open", &["c", "nothing"]);
    assert_eq!(o.next(), "open:2", "b and c are still linked");
    o.finish();

    hosts.link_ab(true);
    // Zenoh reconnects on its own (retrying every 1 to 4 s); an open
    // retries within its deadline, and a few opens cover a slow return.
    let mut tries = Vec::new();
    let recovered = (0..5).any(|_| {
        let mut t = hosts.spawn(0, CUT, "transact", &["b", "orders", "after"]);
        let line = t.next();
        t.finish();
        tries.push(line.clone());
        line == "reply:echo:after"
    });
    assert!(recovered, "traffic came back after the link did: {tries:?}");
    s.kill9();
}

const KILL: &str = "net_s01_gateways_killed_with_kill9_leave_clients_with_errors_never_hangs";

/// A far gateway killed with `kill -9` under an open pipe: the client's
/// next call fails at once; its own gateway killed: the same, and new
/// opens say no gateway runs (53). Nothing is left behind.
#[test]
fn net_s01_gateways_killed_with_kill9_leave_clients_with_errors_never_hangs() {
    if play(KILL) {
        return;
    }
    let _w = Watchdog::test();
    let before = leftovers();
    let hosts = Hosts::build("x");
    let mut gateways = hosts.gateways(KILL);
    let mut echo = hosts.spawn(1, KILL, "echo", &["orders"]);
    echo.expect("ready");
    let mut echo_c = hosts.spawn(2, KILL, "echo", &["orders"]);
    echo_c.expect("ready");
    let mut echo_b2 = hosts.spawn(1, KILL, "echo", &["more"]);
    echo_b2.expect("ready");
    let mut to_b = hosts.spawn(0, KILL, "session", &["b", "orders"]);
    to_b.expect("opened");
    to_b.tell("one");
    assert_eq!(reply_of(&to_b.next()), "echo:one");
    // c's session to b: b's death ends it too.
    let mut c_to_b = hosts.spawn(2, KILL, "session", &["b", "more"]);
    c_to_b.expect("opened");

    gateways[1].kill9();
    to_b.tell("two");
    error_within(&to_b.next(), 5_000);
    c_to_b.tell("two");
    error_within(&c_to_b.next(), 5_000);

    // a's own gateway: b back, a session from a to c through it, then
    // a's gateway killed under it.
    let dir = hosts.dir.to_str().unwrap();
    let b_listen = format!("tls/{B_AB}:7447,tls/{B_BC}:7447,{LOOPBACK}");
    let mut b = hosts.spawn(1, KILL, "gateway", &["b", &b_listen, "", dir]);
    b.expect("up");
    let mut to_c = hosts.spawn(0, KILL, "session", &["c", "orders"]);
    to_c.expect("opened");
    to_c.tell("three");
    assert_eq!(reply_of(&to_c.next()), "echo:three");
    gateways[0].kill9();
    to_c.tell("four");
    error_within(&to_c.next(), 5_000);
    let mut o = hosts.spawn(0, KILL, "open", &["c", "orders"]);
    assert_eq!(o.next(), "open:53", "no gateway runs on a any more");
    o.finish();

    for p in [&mut to_b, &mut c_to_b, &mut to_c, &mut b, &mut echo, &mut echo_c, &mut echo_b2] {
        p.kill9();
    }
    for g in &mut gateways {
        g.kill9();
    }
    drop(hosts);
    util::eventually("nothing left in /dev/shm or the temporary directory", || leftovers() == before);
}

const PY: &str = "net_s08_eclipse_zenoh_python_writes_a_mailslot_and_transacts_on_a_pipe";

/// S08: a peer no one here wrote — `python/gateway_peer.py` on the
/// `eclipse-zenoh` package, written from `doc/gateway-keys.md` only — on
/// host a, connected to a's gateway on loopback, writes a mailslot on host
/// b and transacts on b's message pipe (through both gateways).
#[test]
fn net_s08_eclipse_zenoh_python_writes_a_mailslot_and_transacts_on_a_pipe() {
    if play(PY) {
        return;
    }
    let _w = Watchdog::test();
    let _ = util::python(); // the venv, with eclipse-zenoh
    let venv_python = util::repo_root().join("target/python-venv/bin/python");
    let script = util::repo_root().join("python/gateway_peer.py");
    let hosts = Hosts::build("p");
    let _gateways = hosts.gateways(PY);
    let mut echo = hosts.spawn(1, PY, "echo", &["orders"]);
    let mut slot = hosts.spawn(1, PY, "mailslot", &["log"]);
    let mut echo_c = hosts.spawn(2, PY, "echo", &["orders"]);
    echo.expect("ready");
    slot.expect("ready");
    echo_c.expect("ready");
    let run = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", hosts.ns[0].name()])
            .arg(&venv_python)
            .arg(&script)
            .args([LOOPBACK, "b"])
            .args(args)
            .output()
            .expect("python");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run(&["mailslot", "log", "from python"]), "sent\n");
    assert_eq!(slot.next(), "mail:from python");
    let out = run(&["pipe", "ORDERS", "first", "second"]);
    assert_eq!(out, "opened: message_mode=True\nreply: echo:first\nreply: echo:second\n");
    // A peer on the raw keys naming a remote pipe gets a local name's
    // refusal (123) from b, never a hop on to c, which serves "orders".
    let out = run(&["pipe", r"\\c\pipe\orders", "hop"]);
    assert!(out.starts_with("refused: 123 "), "{out}");
    // The pipe's server saw the Python client's close and serves again.
    let mut t = hosts.spawn(0, PY, "transact", &["b", "orders", "after python"]);
    assert_eq!(reply_of(&t.next()), "echo:after python");
    t.finish();
}

const RPC: &str = "net_s05_rpc_s06_an_interface_is_found_on_another_host_through_its_gateway";

/// 13-S05 / 08-S06: a client on host a finds Calc on host b by interface
/// alone (b's endpoint mapper, through the gateways): b's pipe binding
/// comes back as `pipe:\\b\pipe\NAME` and is called through the gateways;
/// b's TCP binding on the a–b link is a plain TCP binding a calls directly;
/// its loopback and local bindings are not offered; an interface nobody
/// serves there is NotRegistered (1753).
#[test]
fn net_s05_rpc_s06_an_interface_is_found_on_another_host_through_its_gateway() {
    if play(RPC) {
        return;
    }
    let _w = Watchdog::test();
    let hosts = Hosts::build("r");
    let _gateways = hosts.gateways(RPC);
    let tcp = format!("tcp:{B_AB}[4747]");
    let mut server = hosts.spawn(1, RPC, "rpc", &["pipe:calc", "local:calc", "tcp:127.0.0.1[4748]", &tcp]);
    server.expect("ready");
    let mut c = hosts.spawn(0, RPC, "calc", &["b", &tcp]);
    assert_eq!(c.next(), format!(r"bindings:pipe:\\b\pipe\calc {tcp}"));
    assert_eq!(c.next(), r"found:5:pipe:\\b\pipe\calc");
    assert_eq!(c.next(), "tcp:42");
    assert_eq!(c.next(), "none:1753");
    c.finish();
}

const ROGUE: &str = "net_s01_attack_a_gateway_with_a_valid_certificate_but_not_allowed_reaches_nothing";

/// 13-S01, deny by default: a gateway whose certificate the CA signed but
/// whose name b does not allow links to b's TLS endpoint and still reaches
/// nothing there — no pipe, no listing, no mailslot — while an allowed
/// gateway does.
#[test]
fn net_s01_attack_a_gateway_with_a_valid_certificate_but_not_allowed_reaches_nothing() {
    if play(ROGUE) {
        return;
    }
    let _w = Watchdog::test();
    let hosts = Hosts::build("g");
    let dir = hosts.dir.to_str().unwrap();
    let b_listen = format!("tls/{B_AB}:7447,tls/{B_BC}:7447,{LOOPBACK}");
    let mut b = hosts.spawn(1, ROGUE, "gateway", &["b", &b_listen, "", dir]);
    b.expect("up");
    // On host c, a gateway calling itself c but holding the rogue certificate.
    let mut rogue = hosts.spawn(2, ROGUE, "gateway", &["c", LOOPBACK, &format!("tls/{B_BC}:7447"), dir, "rogue"]);
    rogue.expect("up");
    let mut a = hosts.spawn(0, ROGUE, "gateway", &["a", LOOPBACK, &format!("tls/{B_AB}:7447"), dir]);
    a.expect("up");
    let mut echo = hosts.spawn(1, ROGUE, "echo", &["orders"]);
    let mut slot = hosts.spawn(1, ROGUE, "mailslot", &["log"]);
    echo.expect("ready");
    slot.expect("ready");
    // The allowed gateway's client gets through (and so the topology works).
    let mut t = hosts.spawn(0, ROGUE, "transact", &["b", "orders", "allowed"]);
    assert_eq!(reply_of(&t.next()), "echo:allowed");
    t.finish();
    // The rogue's clients: no host b at all (53), for a pipe and a listing.
    let mut o = hosts.spawn(2, ROGUE, "open", &["b", "orders"]);
    assert_eq!(o.next(), "open:53");
    o.finish();
    let mut m = hosts.spawn(2, ROGUE, "mail", &["b", "log", "from the rogue"]);
    let wrote = m.next();
    m.finish();
    assert_eq!(wrote, "wrote:53", "the rogue cannot even see b");
    let mut m = hosts.spawn(0, ROGUE, "mail", &["b", "log", "from a"]);
    assert_eq!(m.next(), "wrote:0");
    m.finish();
    assert_eq!(slot.next(), "mail:from a", "nothing from the rogue arrived first");
}

/// A peer's frames are checked: 5000 random byte strings, and every
/// truncation of a real frame, decode to an error or a frame, never a
/// panic (the protocol's decoder sees only what a peer put on a key).
#[test]
fn net_s02_frames_from_a_peer_are_checked_never_trusted() {
    let mut rng = util::Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..5000 {
        let len = (rng.next() % 48) as usize;
        let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = switchboard_gateway::proto::Frame::decode(junk);
    }
    let whole = switchboard_gateway::proto::encode(7, 0, 0, b"a message");
    for cut in 0..whole.len() {
        assert!(switchboard_gateway::proto::Frame::decode(whole[..cut].to_vec()).is_err(), "cut at {cut}");
    }
    assert!(switchboard_gateway::proto::Frame::decode(whole).is_ok());
}
