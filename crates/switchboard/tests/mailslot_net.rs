//! Spec 03, S11 and S13 — mailslot broadcast over UDP. Everything here
//! talks to loopback, or to network namespaces the test makes itself.

mod util;

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use switchboard::mailslot::{BroadcastConfig, Mailslot, MailslotClient, MailslotOptions, Sender};
use util::{done, hear, ip, role, say, unique, Netns, Peer, Watchdog};

const LONG: Duration = Duration::from_secs(60);
const LOOPBACK_BROADCAST: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 255);

/// A mailslot receiving broadcasts on a port the system picked (so no
/// other test can be holding it), and that port.
fn listening_anywhere(name: &str) -> (Mailslot, u16) {
    let server = listening(name, loopback(0));
    let port = server.broadcast_port().unwrap();
    (server, port)
}

fn loopback(port: u16) -> BroadcastConfig {
    BroadcastConfig { port, targets: Some(vec![LOOPBACK_BROADCAST]) }
}

fn listening(name: &str, config: BroadcastConfig) -> Mailslot {
    MailslotOptions::new().read_timeout(LONG).receive_broadcasts(config).create(name).unwrap()
}

/// A datagram built by hand from the documented format (not by the library).
fn datagram(sender: u64, seq: u32, name: &str, message: &[u8]) -> Vec<u8> {
    let mut d = b"SBM1".to_vec();
    d.extend_from_slice(&sender.to_le_bytes());
    d.extend_from_slice(&seq.to_le_bytes());
    d.push(name.len() as u8);
    d.extend_from_slice(name.as_bytes());
    d.extend_from_slice(message);
    d
}

fn read_from(server: &Mailslot) -> (Vec<u8>, Sender) {
    let mut buf = [0u8; 1024];
    let r = server.read_from(&mut buf).unwrap();
    (buf[..r.len].to_vec(), r.sender)
}

fn host_of(s: Sender) -> IpAddr {
    match s {
        Sender::Network { host, .. } => host.ip(),
        Sender::Local => panic!("expected a network message"),
    }
}

#[test]
fn mailslot_s11_a_broadcast_over_424_bytes_is_bad_net_path() {
    let (_anchor, port) = listening_anywhere(&unique("ms11big"));
    for name in [r"\\*\mailslot\big", r"\\WORKGROUP\mailslot\big"] {
        let c = MailslotClient::open_with(name, &loopback(port)).unwrap();
        assert!(c.is_broadcast());
        assert_eq!(c.max_message_size(), 424);
        let e = c.write(&[0u8; 425]).unwrap_err();
        assert_eq!((e.win32(), e.win32_name()), (53, "ERROR_BAD_NETPATH"), "{e:?}");
        c.write(&[0u8; 424]).unwrap();
    }
}

#[test]
fn mailslot_s11_a_broadcast_reaches_the_mailslot_of_its_name_and_no_other() {
    if let Some(_r) = role() {
        let a = util::args();
        let c = MailslotClient::open_with(&format!(r"\\*\mailslot\{}", a[0]), &loopback(a[1].parse().unwrap()));
        c.unwrap().write(b"to everyone").unwrap();
        done();
    }
    let _w = Watchdog::test();
    let name = unique("ms11");
    let (server, port) = listening_anywhere(&name);
    let other = listening(&unique("ms11other"), loopback(port));
    let mut peer = Peer::spawn(
        "mailslot_s11_a_broadcast_reaches_the_mailslot_of_its_name_and_no_other",
        "writer",
        &[&name, &port.to_string()],
    );
    let (msg, from) = read_from(&server);
    assert_eq!(msg, b"to everyone");
    assert_eq!(host_of(from), IpAddr::V4(Ipv4Addr::LOCALHOST));
    peer.finish();
    util::eventually("the other mailslot saw a foreign datagram", || other.network_stats().foreign >= 1);
    assert_eq!(other.info().unwrap().count, 0);
}

#[test]
fn mailslot_s11_repeated_datagrams_are_delivered_once() {
    let name = unique("ms11d");
    let (server, port) = listening_anywhere(&name);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let once = datagram(77, 5, &name, b"once");
    for _ in 0..3 {
        tx.send_to(&once, ("127.0.0.1", port)).unwrap();
    }
    tx.send_to(&datagram(77, 4, &name, b"older, new"), ("127.0.0.1", port)).unwrap();
    tx.send_to(&datagram(78, 5, &name, b"other sender"), ("127.0.0.1", port)).unwrap();
    assert_eq!(read_from(&server).0, b"once");
    assert_eq!(read_from(&server).0, b"older, new");
    let (msg, from) = read_from(&server);
    assert_eq!(msg, b"other sender");
    assert!(matches!(from, Sender::Network { sender_id: 78, .. }));
    // Counted just after queueing: the reader may be ahead of the counter.
    util::eventually("three delivered", || server.network_stats().delivered == 3);
    assert_eq!(server.network_stats().duplicates, 2);
}

#[test]
fn mailslot_s11_malformed_datagrams_are_dropped_and_counted() {
    let name = unique("ms11m");
    let (server, port) = listening_anywhere(&name);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let good = datagram(1, 0, &name, b"fine");
    let mut bad: Vec<Vec<u8>> = vec![
        vec![],
        b"SBM".to_vec(),
        datagram(1, 1, &name, b"x").iter().map(|b| b ^ 0x20).collect(),
        datagram(1, 2, "", b"no name"),
        datagram(1, 3, &name, &[0u8; 425]),
        {
            let mut d = datagram(1, 4, "ab", b"");
            d[16] = 200; // a name longer than the datagram
            d
        },
        {
            let mut d = datagram(1, 5, &name, b"");
            d[17] = 0xff; // not UTF-8
            d
        },
        (0..1400u32).map(|i| (i * 31 % 251) as u8).collect(),
    ];
    bad.extend((0..good.len()).map(|cut| good[..cut].to_vec()).filter(|d| d.len() < 17 + name.len()));
    for d in &bad {
        tx.send_to(d, ("127.0.0.1", port)).unwrap();
    }
    tx.send_to(&good, ("127.0.0.1", port)).unwrap();
    assert_eq!(read_from(&server).0, b"fine");
    util::eventually("the sentinel counted", || server.network_stats().delivered == 1);
    assert_eq!(server.network_stats().malformed, bad.len() as u64);
    assert_eq!(server.info().unwrap().count, 0);
    // Writers see the same counts: they live in the queue's segment.
    let seen_by_writer = MailslotClient::open(&name).unwrap().info().unwrap().network;
    assert_eq!(seen_by_writer, server.network_stats());
}

#[test]
fn mailslot_s11_socat_sends_a_broadcast_in_the_documented_format() {
    let name = unique("ms11s");
    let (server, port) = listening_anywhere(&name);
    let mut socat = Command::new("socat")
        .args(["-u", "-", &format!("UDP-DATAGRAM:{LOOPBACK_BROADCAST}:{port},broadcast")])
        .stdin(Stdio::piped())
        .spawn()
        .expect("socat must be installed (.ci/run installs it)");
    use std::io::Write;
    socat.stdin.take().unwrap().write_all(&datagram(0x5eed, 1, &name, b"from socat")).unwrap();
    assert!(socat.wait().unwrap().success());
    let (msg, from) = read_from(&server);
    assert_eq!(msg, b"from socat");
    assert!(matches!(from, Sender::Network { sender_id: 0x5eed, .. }));
    assert_eq!(host_of(from), IpAddr::V4(Ipv4Addr::LOCALHOST));
}

#[test]
fn mailslot_s13_local_and_network_messages_share_one_queue_and_are_told_apart() {
    let name = unique("ms13");
    let (server, port) = listening_anywhere(&name);
    let local = MailslotClient::open(&name).unwrap();
    let net = MailslotClient::open_with(&format!(r"\\*\mailslot\{name}"), &loopback(port)).unwrap();
    local.write(b"L1").unwrap();
    net.write(b"N1").unwrap();
    util::eventually("the broadcast is queued", || server.info().unwrap().count == 2);
    local.write(b"L2").unwrap();
    assert_eq!(read_from(&server), (b"L1".to_vec(), Sender::Local));
    let (msg, from) = read_from(&server);
    assert_eq!(msg, b"N1");
    match from {
        Sender::Network { host, sender_id } => {
            assert_eq!(host.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
            assert_eq!(Some(sender_id), net.sender_id());
        }
        Sender::Local => panic!("a network message read as local"),
    }
    assert_eq!(read_from(&server), (b"L2".to_vec(), Sender::Local));
}

/// Two network namespaces joined by a veth pair; removed on drop.
struct TwoHosts {
    ns: [Netns; 2],
    subnet: u8,
}

impl TwoHosts {
    /// Builds them, or `None` when this process may not (not root, no `ip`).
    fn build() -> Option<TwoHosts> {
        let pid = std::process::id();
        let hosts = TwoHosts {
            ns: [Netns::add(format!("sbm{pid}a"))?, Netns::add(format!("sbm{pid}b"))?],
            subnet: (pid % 250) as u8,
        };
        let (a, b) = (hosts.ns[0].name(), hosts.ns[1].name());
        let ok = ip(&["link", "add", a, "netns", a, "type", "veth", "peer", "name", b, "netns", b]);
        let setup = ok
            && (0..2).all(|i| {
                let (n, addr) = (hosts.ns[i].name(), format!("10.213.{}.{}/24", hosts.subnet, i + 1));
                ip(&["-n", n, "addr", "add", &addr, "broadcast", "+", "dev", n])
                    && ip(&["-n", n, "link", "set", n, "up"])
            });
        setup.then_some(hosts)
    }

    fn addr(&self, i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 213, self.subnet, i as u8 + 1))
    }
}

const TEST_NETNS: &str = "mailslot_s11_a_broadcast_reaches_every_host_of_the_segment";

#[test]
fn mailslot_s11_a_broadcast_reaches_every_host_of_the_segment() {
    if let Some(r) = role() {
        let a = util::args();
        let (name, port) = (&a[0], a[1].parse().unwrap());
        if r == "server" {
            let server = listening(name, BroadcastConfig::on_port(port));
            say("ready");
            let (msg, from) = read_from(&server);
            say(&format!("{} {}", host_of(from), String::from_utf8_lossy(&msg)));
            done();
        }
        // The writer uses the default targets: every interface of its host.
        let c = MailslotClient::open_with(&format!(r"\\*\mailslot\{name}"), &BroadcastConfig::on_port(port)).unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                hear();
                stop.store(true, Ordering::SeqCst);
            });
            // UDP is unreliable and a fresh veth link may drop the first
            // datagrams: send again every 100 ms until the parent has seen
            // both servers get it (each copy has a new sequence number).
            while !stop.load(Ordering::SeqCst) {
                c.write(b"hello segment").unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        done();
    }
    let _w = Watchdog::test();
    let name = unique("ms11n");
    // The namespaces are new: nothing else holds the default port there.
    let port_s = switchboard::mailslot::DEFAULT_PORT.to_string();
    let Some(hosts) = TwoHosts::build() else {
        eprintln!("cannot make network namespaces here (not root?): testing on loopback broadcast instead");
        let (server, port) = listening_anywhere(&name);
        let c = MailslotClient::open_with(&format!(r"\\*\mailslot\{name}"), &loopback(port)).unwrap();
        c.write(b"hello segment").unwrap();
        assert_eq!(read_from(&server).0, b"hello segment");
        return;
    };
    let args = [name.as_str(), port_s.as_str()];
    let mut far = Peer::spawn_in(Some(hosts.ns[1].name()), TEST_NETNS, "server", &args);
    let mut near = Peer::spawn_in(Some(hosts.ns[0].name()), TEST_NETNS, "server", &args);
    far.expect("ready");
    near.expect("ready");
    let mut writer = Peer::spawn_in(Some(hosts.ns[0].name()), TEST_NETNS, "writer", &args);
    let far_got = far.next();
    let near_got = near.next();
    writer.tell("stop");
    writer.finish();
    far.finish();
    near.finish();
    assert_eq!(far_got, format!("{} hello segment", hosts.addr(0)), "the other host");
    let local = [format!("{} hello segment", hosts.addr(0)), "127.0.0.1 hello segment".to_owned()];
    assert!(local.contains(&near_got), "the sending host itself got {near_got:?}");
}
