//! Spec 08 — RPC, across processes: servers (and the clients that are
//! killed) are peers re-executed from this test binary.

#![allow(missing_docs)] // the test interface's types are pub for the generated code, not an API

mod util;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchboard::rpc::context::{self, ContextHandle};
use switchboard::rpc::wire::{FaultBody, InterfaceId};
use switchboard::rpc::{interface, AuthLevel, Client, ClientOptions, Interface, RemoteError, Server};
use switchboard::{Code, Error, Result};
use util::{args, role, say, unique, Peer, Watchdog};

const NOBODY: u32 = 65534;

/// Every kind of value S03 names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Everything {
    pub small: u8,
    pub big: u64,
    pub negative: i16,
    pub wide: i128,
    pub huge: u128,
    pub ratio: f32,
    pub precise: f64,
    pub flag: bool,
    pub letter: char,
    pub text: String,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    pub maybe: Option<u32>,
    pub nothing: Option<String>,
    pub list: Vec<i32>,
    pub map: BTreeMap<String, u16>,
    pub shapes: Vec<Shape>,
    pub pair: (u8, String),
}

/// Enums of every shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    Dot,
    Circle(f64),
    Line(i32, i32),
    Rect { w: u32, h: u32 },
}

pub fn everything() -> Everything {
    Everything {
        small: 200,
        big: u64::MAX - 1,
        negative: -300,
        wide: i128::MIN + 7,
        huge: u128::MAX / 3,
        ratio: 0.5,
        precise: -1.0e-300,
        flag: true,
        letter: 'ß',
        text: "héllo, wörld ✓".into(),
        bytes: vec![0, 1, 2, 255],
        maybe: Some(42),
        nothing: None,
        list: vec![-1, 0, 1, i32::MAX],
        map: [("a".to_owned(), 1), ("b".to_owned(), 65535)].into(),
        shapes: vec![Shape::Dot, Shape::Circle(1.5), Shape::Line(-2, 3), Shape::Rect { w: 4, h: 5 }],
        pair: (7, "seven".into()),
    }
}

/// The interface's own error type (S07).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CalcError {
    DivideByZero,
    Overflow,
    Failed(String),
}

impl RemoteError for CalcError {
    fn to_fault(&self) -> FaultBody {
        match self {
            CalcError::DivideByZero => FaultBody::new(Code::Win32(0xE000_0001), "divide by zero"),
            CalcError::Overflow => FaultBody::new(Code::Win32(0xE000_0002), "overflow"),
            CalcError::Failed(m) => FaultBody::new(Code::Win32(31), m.clone()),
        }
    }
    fn from_fault(fault: FaultBody) -> Self {
        match fault.code {
            0xE000_0001 => CalcError::DivideByZero,
            0xE000_0002 => CalcError::Overflow,
            _ => CalcError::Failed(fault.message),
        }
    }
    fn from_error(error: Error) -> Self {
        CalcError::Failed(error.to_string())
    }
}

#[interface(uuid = "5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10", version = "1.2")]
pub trait Probe {
    /// Adds two numbers.
    #[opnum(0)]
    fn add(&self, a: i64, b: i64) -> Result<i64>;
    /// Divides, with the interface's own error.
    #[opnum(1)]
    fn divide(&self, a: i64, b: i64) -> std::result::Result<i64, CalcError>;
    #[opnum(2)]
    fn echo(&self, v: Everything) -> Result<Everything>;
    /// Fails with Win32 error `code`.
    #[opnum(3)]
    fn fail(&self, code: u32, message: String) -> Result<()>;
    /// Sleeps `ms`; the calls running when it started (itself included).
    #[opnum(4)]
    fn sleep(&self, ms: u64) -> Result<usize>;
    #[opnum(5)]
    fn open_total(&self, start: i64) -> Result<ContextHandle>;
    #[opnum(6)]
    fn accumulate(&self, total: ContextHandle, v: i64) -> Result<i64>;
    #[opnum(7)]
    fn close_total(&self, total: ContextHandle) -> Result<()>;
    /// Totals run down (dropped) in this server process so far.
    #[opnum(8)]
    fn rundowns(&self) -> Result<u64>;
    #[opnum(9)]
    fn panic(&self) -> Result<()>;
    #[opnum(10)]
    fn pid(&self) -> Result<u32>;
    #[opnum(11)]
    fn nothing(&self) -> Result<()>;
}

/// The same interface, a client compiled against an older minor.
#[interface(uuid = "5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10", version = "1.0")]
pub trait ProbeOlder {
    #[opnum(0)]
    fn add(&self, a: i64, b: i64) -> Result<i64>;
}

/// … a newer minor than the server's.
#[interface(uuid = "5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10", version = "1.3")]
pub trait ProbeNewer {
    #[opnum(0)]
    fn add(&self, a: i64, b: i64) -> Result<i64>;
}

/// … another major.
#[interface(uuid = "5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10", version = "2.0")]
pub trait ProbeNext {
    #[opnum(0)]
    fn add(&self, a: i64, b: i64) -> Result<i64>;
}

/// An interface nobody serves.
#[interface(uuid = "00000000-0000-4000-8000-000000000001", version = "1.0")]
pub trait Stranger {
    #[opnum(0)]
    fn hello(&self) -> Result<()>;
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static RUNDOWNS: AtomicU64 = AtomicU64::new(0);

struct Total(i64);
impl Drop for Total {
    fn drop(&mut self) {
        RUNDOWNS.fetch_add(1, Ordering::SeqCst);
    }
}

struct ProbeImpl;

impl Probe for ProbeImpl {
    fn add(&self, a: i64, b: i64) -> Result<i64> {
        Ok(a.wrapping_add(b))
    }
    fn divide(&self, a: i64, b: i64) -> std::result::Result<i64, CalcError> {
        match b {
            0 => Err(CalcError::DivideByZero),
            _ => a.checked_div(b).ok_or(CalcError::Overflow),
        }
    }
    fn echo(&self, v: Everything) -> Result<Everything> {
        Ok(v)
    }
    fn fail(&self, code: u32, message: String) -> Result<()> {
        Err(Error::Remote { code: Code::Win32(code), message })
    }
    fn sleep(&self, ms: u64) -> Result<usize> {
        let running = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        std::thread::sleep(Duration::from_millis(ms));
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        Ok(running)
    }
    fn open_total(&self, start: i64) -> Result<ContextHandle> {
        context::open(Total(start))
    }
    fn accumulate(&self, total: ContextHandle, v: i64) -> Result<i64> {
        context::with(total, |t: &mut Total| {
            t.0 += v;
            t.0
        })
    }
    fn close_total(&self, total: ContextHandle) -> Result<()> {
        context::close(total)
    }
    fn rundowns(&self) -> Result<u64> {
        Ok(RUNDOWNS.load(Ordering::SeqCst))
    }
    fn panic(&self) -> Result<()> {
        panic!("a method that panics (the test asks for it)")
    }
    fn pid(&self) -> Result<u32> {
        Ok(std::process::id())
    }
    fn nothing(&self) -> Result<()> {
        Ok(())
    }
}

/// A `Probe` server; plain `tcp:` admitted (`AuthLevel::None`: the tests
/// of other statements listen on TCP too).
fn server(max_concurrent: usize) -> Server {
    Server::builder().serve(ProbeServer(ProbeImpl)).max_concurrent(max_concurrent).auth_level(AuthLevel::None).build()
}

/// Peer side: serves `Probe` on the bindings `args()[1..]` with at most
/// `args()[0]` calls at once; says `ready` and the bindings listened on.
fn server_peer() -> ! {
    let a = args();
    let server = server(a[0].parse().unwrap());
    let bound: Vec<String> = a[1..].iter().map(|b| server.listen(b).unwrap().to_string()).collect();
    say(&format!("ready {}", bound.join(" ")));
    util::hear();
    util::done()
}

/// Peer side: a client that opens `args()[1]` totals on `args()[0]`, says
/// `opened`, then calls until killed.
fn client_peer() -> ! {
    let a = args();
    let probe = ProbeClient::connect(&a[0]).unwrap();
    let totals: Vec<_> = (0..a[1].parse().unwrap()).map(|i| probe.open_total(i).unwrap()).collect();
    say("opened");
    loop {
        for t in &totals {
            probe.accumulate(*t, 1).unwrap();
        }
    }
}

fn peer_role() {
    match role().as_deref() {
        Some("server") => server_peer(),
        Some("client") => client_peer(),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// Starts a `Probe` server peer for `test` on `bindings`; the peer and the
/// bindings it listens on.
fn spawn_server(test: &str, max_concurrent: usize, bindings: &[&str]) -> (Peer, Vec<String>) {
    let mut args = vec![max_concurrent.to_string()];
    args.extend(bindings.iter().map(|b| (*b).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut peer = Peer::spawn(test, "server", &args);
    let line = peer.next();
    let bound = line.strip_prefix("ready ").unwrap_or_else(|| panic!("server said {line:?}"));
    let bound = bound.split(' ').map(str::to_owned).collect();
    (peer, bound)
}

fn local(tag: &str) -> String {
    format!("local:{}", unique(tag))
}

fn rpc_status<T: std::fmt::Debug>(r: Result<T>) -> u32 {
    match r {
        Err(e) => match e.code() {
            Code::RpcStatus(s) => s,
            other => panic!("expected an RPC status, got {other:?} ({e})"),
        },
        Ok(v) => panic!("expected an RPC status, got Ok({v:?})"),
    }
}

#[test]
fn rpc_s01_the_description_lists_each_method_with_its_opnum_and_types() {
    peer_role();
    let d: serde_json::Value = serde_json::from_str(ProbeInterface::DESCRIPTION).unwrap();
    assert_eq!(d["name"], "Probe");
    assert_eq!(d["uuid"], "5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10");
    assert_eq!(d["version"], serde_json::json!([1, 2]));
    let methods = d["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 12);
    for (i, m) in methods.iter().enumerate() {
        assert_eq!(m["opnum"], i, "{m}");
    }
    assert_eq!(methods[0]["name"], "add");
    assert_eq!(methods[0]["args"], serde_json::json!([{"name": "a", "type": "i64"}, {"name": "b", "type": "i64"}]));
    assert_eq!(methods[0]["result"], "i64");
    assert_eq!(methods[0]["doc"], "Adds two numbers.");
    assert_eq!(methods[1]["error"], "CalcError");
    assert_eq!(ProbeInterface::ID, InterfaceId::parse("5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10").unwrap());
    assert_eq!(ProbeInterface::VERSION, (1, 2));
}

#[test]
fn rpc_s02_bind_needs_the_same_major_and_no_newer_minor() {
    peer_role();
    let _w = Watchdog::test();
    let (mut peer, bound) = spawn_server("rpc_s02_bind_needs_the_same_major_and_no_newer_minor", 4, &[&local("s02")]);
    let at = &bound[0];
    // An older client binds, and its calls work.
    assert_eq!(ProbeOlderClient::connect(at).unwrap().add(2, 3).unwrap(), 5);
    // The same version.
    assert_eq!(ProbeClient::connect(at).unwrap().add(2, 3).unwrap(), 5);
    // A newer minor, another major, an unknown interface: refused at bind.
    for refused in [
        ProbeNewerClient::connect(at).map(drop),
        ProbeNextClient::connect(at).map(drop),
        StrangerClient::connect(at).map(drop),
    ] {
        let e = refused.unwrap_err();
        assert!(matches!(e, Error::UnknownInterface(_)), "{e:?}");
        assert_eq!(e.win32(), 1717);
        assert_eq!(e.code(), Code::RpcStatus(1717));
    }
    // A call on an interface the connection has not bound is refused too.
    let raw = Client::connect(at).unwrap();
    assert_eq!(rpc_status(raw.finish::<i64, Error>(raw.start::<ProbeInterface, _>(0, &(1i64, 2i64)).unwrap())), 1717);
    peer.dismiss();
}

#[test]
fn rpc_s03_calls_look_like_function_calls_with_any_serde_type() {
    peer_role();
    let _w = Watchdog::test();
    let (mut peer, bound) =
        spawn_server("rpc_s03_calls_look_like_function_calls_with_any_serde_type", 4, &[&local("s03")]);
    let probe = ProbeClient::connect(&bound[0]).unwrap();
    assert_eq!(probe.add(2, 3).unwrap(), 5);
    assert_eq!(probe.add(i64::MIN, -1).unwrap(), i64::MAX);
    assert_eq!(probe.echo(everything()).unwrap(), everything());
    probe.nothing().unwrap();
    assert_eq!(probe.pid().unwrap(), peer.pid, "the call ran in the server's process");
    // Through the trait, as any implementation.
    let as_trait: &dyn Probe = &probe;
    assert_eq!(as_trait.divide(7, 2).unwrap(), 3);
    peer.dismiss();
}

#[test]
fn rpc_s05_one_server_listens_on_every_binding_at_once() {
    peer_role();
    let _w = Watchdog::test();
    let pipe = format!(r"pipe:\\.\pipe\{}", unique("s05pipe"));
    let bindings = [local("s05"), format!("unix:{}", unique("s05unix")), "tcp:127.0.0.1[0]".to_owned(), pipe];
    let asked: Vec<&str> = bindings.iter().map(String::as_str).collect();
    let (mut peer, bound) = spawn_server("rpc_s05_one_server_listens_on_every_binding_at_once", 4, &asked);
    assert_eq!(bound.len(), 4);
    assert!(bound[2].starts_with("tcp:127.0.0.1[") && !bound[2].ends_with("[0]"), "{bound:?}");
    for at in &bound {
        let probe = ProbeClient::connect(at).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(probe.pid().unwrap(), peer.pid, "{at}");
        assert_eq!(probe.echo(everything()).unwrap(), everything(), "{at}");
        assert_eq!(probe.client().binding().to_string(), *at);
    }
    peer.dismiss();
}

#[test]
fn rpc_s05_string_bindings_parse_or_are_refused_with_1700() {
    peer_role();
    for good in ["local:x", "unix:y", "tcp:localhost[80]", "tcp:[::1][8080]", r"pipe:\\.\pipe\z"] {
        let b = switchboard::rpc::Binding::parse(good).unwrap();
        assert_eq!(b.to_string(), good);
    }
    for bad in ["", "local:", "x:y", "tcp:host", "tcp:host[70000]", "tcp:[1]", "nocolon"] {
        let e = switchboard::rpc::Binding::parse(bad).unwrap_err();
        assert_eq!(e.win32(), 1700, "{bad}: {e}");
    }
    let e = ProbeClient::connect(&local("nobody-listens")).unwrap_err();
    assert!(matches!(e, Error::ServerUnavailable(_)), "{e:?}");
    assert_eq!(e.win32(), 1722);
}

#[test]
fn rpc_s07_errors_arrive_typed_and_the_client_never_hangs() {
    peer_role();
    let _w = Watchdog::test();
    let test = "rpc_s07_errors_arrive_typed_and_the_client_never_hangs";
    let (mut peer, bound) = spawn_server(test, 4, &[&local("s07")]);
    let probe = ProbeClient::connect(&bound[0]).unwrap();
    // The interface's own error type.
    assert_eq!(probe.divide(1, 0), Err(CalcError::DivideByZero));
    assert_eq!(probe.divide(i64::MIN, -1), Err(CalcError::Overflow));
    // A server error with its code and message.
    match probe.fail(5, "not you".into()) {
        Err(Error::Remote { code: Code::Win32(5), message }) => assert_eq!(message, "not you"),
        other => panic!("{other:?}"),
    }
    // A method that panics fails its call; the connection goes on.
    assert_eq!(rpc_status(probe.panic()), 1726);
    assert_eq!(probe.add(1, 1).unwrap(), 2);
    // An opnum the interface lacks, arguments that are not the method's.
    let raw = probe.client();
    assert_eq!(rpc_status(raw.finish::<(), Error>(raw.start::<ProbeInterface, _>(99, &[(); 0]).unwrap())), 1745);
    assert_eq!(rpc_status(raw.finish::<i64, Error>(raw.start::<ProbeInterface, _>(0, &("x",)).unwrap())), 1783);
    // A call not answered in time is CallTimeout (1818), at its deadline.
    raw.set_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let e = probe.sleep(3000).unwrap_err();
    assert!(matches!(e, Error::CallTimeout(_)), "{e:?}");
    assert_eq!(e.win32(), 1818);
    assert!(t.elapsed() < Duration::from_secs(2), "returned at its deadline, not the server's pace");
    // The late answer is dropped; the next call gets its own.
    raw.set_timeout(Duration::from_secs(60));
    assert_eq!(probe.add(20, 22).unwrap(), 42);
    // The server dies: the next call is ServerUnavailable (1722), at once.
    peer.kill9();
    let e = probe.add(1, 2).unwrap_err();
    assert!(matches!(e, Error::ServerUnavailable(_)), "{e:?}");
    assert_eq!(e.win32(), 1722);
    assert_eq!(probe.add(1, 2).unwrap_err().win32(), 1722, "and stays so");
}

#[test]
fn rpc_s08_calls_in_flight_match_by_id_and_the_limit_holds() {
    peer_role();
    let _w = Watchdog::test();
    let test = "rpc_s08_calls_in_flight_match_by_id_and_the_limit_holds";
    let (mut peer, bound) = spawn_server(test, 2, &[&local("s08"), "tcp:127.0.0.1[0]"]);
    for at in &bound {
        // 500 calls in flight on one connection, finished in reverse order.
        let client = Client::connect(at).unwrap();
        client.bind::<ProbeInterface>().unwrap();
        let calls: Vec<_> =
            (0..500i64).map(|i| (i, client.start::<ProbeInterface, _>(0, &(i, 1000i64)).unwrap())).collect();
        for (i, call) in calls.into_iter().rev() {
            assert_eq!(client.finish::<i64, Error>(call).unwrap(), i + 1000, "{at}");
        }
    }
    // Six clients at once against a limit of two: never more than two run.
    let seen: Vec<usize> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let probe = ProbeClient::connect(&bound[0]).unwrap();
                    (0..3).map(|_| probe.sleep(40).unwrap()).max().unwrap()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(seen.iter().all(|&n| (1..=2).contains(&n)), "calls running at once: {seen:?}");
    peer.dismiss();
}

#[test]
fn rpc_s09_context_handles_run_down_when_the_client_leaves_or_dies() {
    peer_role();
    let _w = Watchdog::test();
    let test = "rpc_s09_context_handles_run_down_when_the_client_leaves_or_dies";
    let server = server(8);
    let at = server.listen(&local("s09")).unwrap().to_string();
    let probe = ProbeClient::connect(&at).unwrap();
    let before = server.stats().rundowns;
    // Handles work as arguments, and are the connection's own.
    let t = probe.open_total(10).unwrap();
    assert_eq!(probe.accumulate(t, 5).unwrap(), 15);
    let other = ProbeClient::connect(&at).unwrap();
    assert_eq!(rpc_status(other.accumulate(t, 1)), 6, "another connection cannot use it");
    probe.close_total(t).unwrap();
    assert_eq!(rpc_status(probe.accumulate(t, 1)), 6, "a closed handle is gone");
    // A client that disconnects: its handles run down.
    let t2 = probe.open_total(0).unwrap();
    probe.open_total(0).unwrap();
    assert_eq!(probe.accumulate(t2, 1).unwrap(), 1);
    drop(probe);
    util::eventually("two rundowns after the disconnect", || server.stats().rundowns == before + 2);
    // A client killed with kill -9 while calling: its three run down.
    let mut victim = Peer::spawn(test, "client", &[&at, "3"]);
    victim.expect("opened");
    victim.kill9();
    util::eventually("three more rundowns after kill -9", || server.stats().rundowns == before + 5);
    drop(other);
    util::eventually("every connection closed", || server.stats().connections == 0);
}

#[test]
fn rpc_s10_attack_another_user_cannot_connect_to_local_or_unix_bindings() {
    match role().as_deref() {
        Some("attacker") => {
            for at in args() {
                let e = ProbeClient::connect(&at).unwrap_err();
                say(&format!("{}", e.win32()));
            }
            util::done()
        }
        Some(_) => peer_role(),
        None => {}
    }
    let _w = Watchdog::test();
    let server = server(4);
    let local = server.listen(&local("s10")).unwrap().to_string();
    let unix = server.listen(&format!("unix:{}", unique("s10unix"))).unwrap().to_string();
    let mut attacker = Peer::spawn_as(
        NOBODY,
        "rpc_s10_attack_another_user_cannot_connect_to_local_or_unix_bindings",
        "attacker",
        &[&local, &unix],
    );
    let (a, b) = (attacker.next(), attacker.next());
    attacker.finish();
    // Refused: the local name is per user (nothing found under its uid),
    // the Unix socket checks SO_PEERCRED and closes.
    assert!(["1722", "5"].contains(&a.as_str()), "local: {a}");
    assert!(["1722", "5"].contains(&b.as_str()), "unix: {b}");
    assert_eq!(server.stats().calls, 0);
    // The owner still gets in.
    assert_eq!(ProbeClient::connect(&local).unwrap().add(1, 2).unwrap(), 3);
}

/// A raw frame: a 4-byte big-endian length and `payload`.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// Whether the server closed `s` (it reads end of stream, not a timeout).
fn closed(s: &mut std::net::TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn rpc_s12_malformed_or_oversized_frames_close_that_connection_only() {
    peer_role();
    let _w = Watchdog::test();
    let server =
        Server::builder().serve(ProbeServer(ProbeImpl)).max_frame(64 * 1024).auth_level(AuthLevel::None).build();
    let tcp = server.listen("tcp:127.0.0.1[0]").unwrap();
    let switchboard::rpc::Binding::Tcp { port, .. } = tcp else { unreachable!() };
    let good = ProbeClient::connect(&tcp.to_string()).unwrap();
    let garbage: Vec<Vec<u8>> = vec![
        framed(b"not messagepack at all"),
        framed(&[0x93, 1, 2, 3]),                                     // an array of 3
        framed(&[0x98, 9, 2, 1, 0xc4, 0, 0x92, 1, 0, 0, 0xc0, 0xc0]), // wire version 9
        (1u32 << 30).to_be_bytes().to_vec(),                          // 1 GiB announced
        framed(&vec![0x91; 70 * 1024]),                               // over the server's 64 KiB
    ];
    for (i, bytes) in garbage.iter().enumerate() {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(bytes).unwrap();
        assert!(closed(&mut s), "garbage {i}: the connection is closed");
        // … and the server goes on serving the others.
        assert_eq!(good.add(i as i64, 1).unwrap(), i as i64 + 1);
    }
    assert!(server.stats().refused_frames >= 4, "{:?}", server.stats());
    // A frame of a kind only servers send.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let reply = switchboard::rpc::wire::Frame {
        kind: switchboard::rpc::wire::Kind::Response,
        call_id: 1,
        interface: ProbeInterface::ID,
        version: (1, 2),
        opnum: 0,
        context: None,
        body: switchboard::rpc::wire::NIL,
    };
    s.write_all(&reply.encode(1 << 20).unwrap()).unwrap();
    assert!(closed(&mut s));
    assert_eq!(good.add(1, 1).unwrap(), 2);
}

#[test]
fn rpc_kill9_clients_and_servers_at_random_points_hang_no_one_and_leave_nothing() {
    peer_role();
    let _w = Watchdog::new(Duration::from_secs(240));
    let test = "rpc_kill9_clients_and_servers_at_random_points_hang_no_one_and_leave_nothing";
    let before = util::disk_snapshot();
    let mut rng = util::Rng(u64::from(std::process::id()));
    // Clients killed under an in-process server: every handle runs down.
    let server = server(8);
    let at = server.listen(&local("kill")).unwrap().to_string();
    for round in 0..4 {
        let base = server.stats().rundowns;
        let mut victim = Peer::spawn(test, "client", &[&at, "2"]);
        victim.expect("opened");
        std::thread::sleep(Duration::from_millis(rng.next() % 30));
        victim.kill9();
        util::eventually(&format!("round {round}: both handles run down"), || server.stats().rundowns == base + 2);
    }
    // Servers killed under calling clients: the client hears at once.
    for round in 0..4 {
        let (mut peer, bound) = spawn_server(test, 4, &[&local(&format!("kills{round}"))]);
        let probe = ProbeClient::connect(&bound[0]).unwrap();
        let t = probe.open_total(0).unwrap();
        let killer = std::thread::spawn({
            let delay = rng.next() % 30;
            move || {
                std::thread::sleep(Duration::from_millis(delay));
                peer.kill9();
            }
        });
        let started = Instant::now();
        let e = loop {
            if let Err(e) = probe.accumulate(t, 1) {
                break e;
            }
        };
        killer.join().unwrap();
        assert!(matches!(e, Error::ServerUnavailable(_)), "round {round}: {e:?}");
        assert!(started.elapsed() < Duration::from_secs(20), "round {round}: no hang");
    }
    assert_eq!(util::disk_snapshot(), before, "nothing left behind");
}

/// The calls `python/calls_check.py` makes, made by the Rust client, with
/// the same expected results.
fn rust_calls(at: &str) {
    let probe = ProbeClient::connect(at).unwrap();
    assert_eq!(probe.add(2, 3).unwrap(), 5);
    assert_eq!(probe.add(i64::MIN, -1).unwrap(), i64::MAX);
    assert_eq!(probe.echo(everything()).unwrap(), everything());
    assert_eq!(probe.divide(7, 2).unwrap(), 3);
    assert_eq!(probe.divide(1, 0).unwrap_err(), CalcError::DivideByZero);
    match probe.fail(5, "not you".into()).unwrap_err() {
        Error::Remote { code: Code::Win32(5), message } => assert_eq!(message, "not you"),
        other => panic!("{other:?}"),
    }
    let total = probe.open_total(10).unwrap();
    assert_eq!(probe.accumulate(total, 5).unwrap(), 15);
    probe.close_total(total).unwrap();
    probe.nothing().unwrap();
    assert!(matches!(ProbeNewerClient::connect(at).unwrap_err(), Error::UnknownInterface(_)));
}

#[test]
fn rpc_s11_a_python_client_gets_the_same_results_as_the_rust_one() {
    peer_role();
    let _w = Watchdog::new(Duration::from_secs(600));
    let root = util::repo_root();
    let server = server(8);
    let bindings =
        [server.listen("tcp:127.0.0.1[0]").unwrap(), server.listen(&format!("unix:{}", unique("s11"))).unwrap()];
    for at in bindings.iter().map(ToString::to_string) {
        rust_calls(&at);
        let out = util::python()
            .arg(root.join("python/calls_check.py"))
            .arg(&at)
            .env("PYTHONPATH", root.join("python"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{at}: python failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let checks: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("ok ")).collect();
        assert_eq!(checks.len(), 14, "{at}: {stdout}");
        assert_eq!(stdout.lines().last(), Some("done"));
    }
}

#[test]
fn rpc_s06_a_client_finds_a_server_by_interface_alone() {
    let _w = Watchdog::test();
    let test = "rpc_s06_a_client_finds_a_server_by_interface_alone";
    // Nobody else in this test binary registers `Lonely`.
    #[interface(uuid = "7c3e2a10-5b4d-4f6e-8a9b-0c1d2e3f4a5b", version = "3.1")]
    pub trait Lonely {
        #[opnum(0)]
        fn pid(&self) -> Result<u32>;
    }
    struct L;
    impl Lonely for L {
        fn pid(&self) -> Result<u32> {
            Ok(std::process::id())
        }
    }
    match role().as_deref() {
        Some("lonely") => {
            let server = Server::builder().serve(LonelyServer(L)).build();
            server.listen("tcp:127.0.0.1[0]").unwrap();
            server.listen(&local("s06")).unwrap();
            say("ready");
            util::hear();
            util::done()
        }
        Some(_) => peer_role(),
        None => {}
    }
    let e = LonelyClient::find().unwrap_err();
    assert!(matches!(e, Error::NotRegistered(_)), "{e:?}");
    assert_eq!(e.win32(), 1753);
    let mut peer = Peer::spawn(test, "lonely", &[]);
    peer.expect("ready");
    // The registration lists both bindings, and the client takes the fastest.
    let found = switchboard::rpc::mapper::lookup(Some(LonelyInterface::ID));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].pid, found[0].version, found[0].name.as_str()), (peer.pid, (3, 1), "Lonely"));
    assert_eq!(found[0].endpoints.len(), 2);
    let lonely = LonelyClient::find().unwrap();
    assert_eq!(lonely.pid().unwrap(), peer.pid);
    assert!(lonely.client().binding().to_string().starts_with("local:"));
    // The listing of every interface has it too.
    assert!(switchboard::rpc::mapper::lookup(None).iter().any(|r| r.interface == LonelyInterface::ID));
    // A killed server is unregistered by the kernel.
    peer.kill9();
    util::eventually("the registration is gone", || {
        switchboard::rpc::mapper::lookup(Some(LonelyInterface::ID)).is_empty()
    });
    assert!(matches!(LonelyClient::find().unwrap_err(), Error::NotRegistered(_)));
}

#[test]
fn rpc_s10_plain_tcp_is_refused_unless_the_server_says_none() {
    peer_role();
    let _w = Watchdog::test();
    // The default: `Connect`, which plain TCP does not give.
    let strict = Server::builder().serve(ProbeServer(ProbeImpl)).build();
    let tcp = strict.listen("tcp:127.0.0.1[0]").unwrap().to_string();
    let local = strict.listen(&local("s10-levels")).unwrap().to_string();
    let e = ProbeClient::connect(&tcp).unwrap_err();
    assert!(matches!(e, Error::AccessDenied(_)), "{e:?}");
    assert_eq!(e.win32(), 5);
    assert!(e.to_string().contains("requires connect"), "{e}");
    // Local bindings give `Privacy`: the kernel checked the peer, and no
    // one else can read the ring.
    let private = ClientOptions::new().auth_level(AuthLevel::Privacy);
    assert_eq!(ProbeClient::connect_with(&local, &private).unwrap().add(1, 2).unwrap(), 3);
    // A client that requires more than plain TCP gives refuses at once,
    // before sending anything.
    let open = server(4);
    let tcp = open.listen("tcp:127.0.0.1[0]").unwrap().to_string();
    assert_eq!(ProbeClient::connect(&tcp).unwrap().add(2, 2).unwrap(), 4);
    let before = open.stats().calls;
    let e = ProbeClient::connect_with(&tcp, &ClientOptions::new().auth_level(AuthLevel::Connect)).unwrap_err();
    assert!(matches!(e, Error::AccessDenied(_)), "{e:?}");
    assert_eq!(open.stats().calls, before, "nothing was sent");
}

#[test]
fn rpc_s06_a_dropped_server_frees_its_names_and_unregisters() {
    peer_role();
    let _w = Watchdog::test();
    #[interface(uuid = "2e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b", version = "1.0")]
    pub trait Dropped {
        #[opnum(0)]
        fn ping(&self) -> Result<u8>;
    }
    struct D;
    impl Dropped for D {
        fn ping(&self) -> Result<u8> {
            Ok(7)
        }
    }
    let name = local("dropped");
    let unix = format!("unix:{}", unique("dropped"));
    let server = Server::builder().serve(DroppedServer(D)).auth_level(AuthLevel::None).build();
    server.listen(&name).unwrap();
    server.listen(&unix).unwrap();
    let tcp = server.listen("tcp:127.0.0.1[0]").unwrap().to_string();
    let open = DroppedClient::connect(&name).unwrap();
    assert_eq!(switchboard::rpc::mapper::lookup(Some(DroppedInterface::ID)).len(), 1);
    drop(server);
    // Unregistered at once; the names free once each accepting thread
    // took its wake-up call; the open connection still served.
    assert!(switchboard::rpc::mapper::lookup(Some(DroppedInterface::ID)).is_empty());
    assert_eq!(open.ping().unwrap(), 7);
    for at in [&name, &unix, &tcp] {
        util::eventually(&format!("{at} is free"), || {
            matches!(DroppedClient::connect(at), Err(Error::ServerUnavailable(_)))
        });
    }
    // … and the names can be listened on again.
    let again = Server::builder().serve(DroppedServer(D)).build();
    again.listen(&name).unwrap();
    assert_eq!(DroppedClient::connect(&name).unwrap().ping().unwrap(), 7);
}

/// An interface with blocking and async methods side by side.
#[interface(uuid = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d", version = "1.0")]
pub trait Gate {
    /// Blocking: opens the gate.
    #[opnum(0)]
    fn open(&self) -> Result<()>;
    /// Async: waits until the gate is open (a future woken by `open`).
    #[opnum(1)]
    async fn pass(&self, who: String) -> Result<String>;
    /// Async, at once.
    #[opnum(2)]
    async fn double(&self, v: i64) -> std::result::Result<i64, CalcError>;
}

/// A gate whose `pass` is a future that waits for `open`, woken through
/// its waker (no thread of its own blocks on it).
#[derive(Default)]
struct GateImpl(std::sync::Mutex<(bool, Vec<std::task::Waker>)>);

impl Gate for GateImpl {
    fn open(&self) -> Result<()> {
        let wakers = {
            let mut g = self.0.lock().unwrap();
            g.0 = true;
            std::mem::take(&mut g.1)
        };
        wakers.into_iter().for_each(std::task::Waker::wake);
        Ok(())
    }
    async fn pass(&self, who: String) -> Result<String> {
        std::future::poll_fn(|cx| {
            let mut g = self.0.lock().unwrap();
            match g.0 {
                true => std::task::Poll::Ready(()),
                false => {
                    g.1.push(cx.waker().clone());
                    std::task::Poll::Pending
                }
            }
        })
        .await;
        Ok(format!("{who} passed"))
    }
    async fn double(&self, v: i64) -> std::result::Result<i64, CalcError> {
        v.checked_mul(2).ok_or(CalcError::Overflow)
    }
}

#[test]
fn rpc_s03_async_methods_wait_without_blocking_their_executor() {
    match role().as_deref() {
        Some("gate") => {
            let server = Server::builder().serve(GateServer(GateImpl::default())).build();
            say(&format!("ready {}", server.listen(&local("gate")).unwrap()));
            util::hear();
            util::done()
        }
        Some(_) => peer_role(),
        None => {}
    }
    let _w = Watchdog::test();
    let mut peer = Peer::spawn("rpc_s03_async_methods_wait_without_blocking_their_executor", "gate", &[]);
    let line = peer.next();
    let at = line.strip_prefix("ready ").unwrap();
    let (waiting, opener) = (GateClient::connect(at).unwrap(), GateClient::connect(at).unwrap());
    // One thread runs both: `pass` is pending at the server until `open`
    // arrives, and `open` is sent by the same thread after `pass` began.
    // Had the async call blocked the thread, `open` would never be sent
    // (the watchdog would end the test).
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (passed, opened) = rt.block_on(async {
        let pass = waiting.pass("alice".into());
        let open = async {
            tokio::task::yield_now().await;
            opener.open()
        };
        tokio::join!(pass, open)
    });
    opened.unwrap();
    assert_eq!(passed.unwrap(), "alice passed");
    // Several calls awaited at once, each with its own result; the
    // interface's own error type through an async method.
    let three = rt.block_on(async { tokio::join!(waiting.double(1), waiting.double(2), opener.double(3)) });
    assert_eq!(three, (Ok(2), Ok(4), Ok(6)));
    assert_eq!(rt.block_on(waiting.double(i64::MAX)), Err(CalcError::Overflow));
    // Any executor: the server's own minimal one drives a client future too.
    assert_eq!(switchboard::rpc::block_on(opener.double(21)), Ok(42));
    peer.dismiss();
}
