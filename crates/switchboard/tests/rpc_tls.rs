//! Spec 08-S10 over TCP: mutual TLS (feature `tls`). The server is a peer
//! process; certificates are made for each run (rcgen).

mod util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::ExtendedKeyUsagePurpose;
use switchboard::rpc::calc::{Calc, CalcClient, CalcServer, Calculator};
use switchboard::rpc::tls::{TlsClient, TlsServer};
use switchboard::rpc::{AuthLevel, ClientOptions, Server};
use switchboard::Error;
use util::ca::Ca;
use util::{args, role, say, unique, Peer, Watchdog};

/// The PEM files of one run, in a directory of its own.
struct Pems(PathBuf);

impl Pems {
    fn new() -> Pems {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("tls"));
        std::fs::create_dir_all(&dir).unwrap();
        Pems(dir)
    }
    fn write(&self, name: &str, pem: &str) {
        std::fs::write(self.0.join(name), pem).unwrap();
    }
    fn read(dir: &Path, name: &str) -> Vec<u8> {
        std::fs::read(dir.join(name)).unwrap()
    }
}

impl Drop for Pems {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Peer side: serves `Calc` on TCP, with TLS from the PEM files in
/// `args()[0]` when `args()[1]` is `tls`; says `ready BINDING`.
fn server_peer() -> ! {
    let a = args();
    let dir = Path::new(&a[0]);
    let builder = Server::builder().serve(CalcServer(Calculator));
    let server = match a[1].as_str() {
        "tls" => {
            let tls = TlsServer::from_pem(
                &Pems::read(dir, "server.pem"),
                &Pems::read(dir, "server.key"),
                &Pems::read(dir, "ca.pem"),
            )
            .unwrap();
            builder.auth_level(AuthLevel::Privacy).tls(tls).build()
        }
        _ => builder.auth_level(AuthLevel::None).build(),
    };
    say(&format!("ready {}", server.listen("tcp:127.0.0.1[0]").unwrap()));
    util::hear();
    util::done()
}

fn spawn_server(test: &str, dir: &Path, mode: &str) -> (Peer, String) {
    let mut peer = Peer::spawn(test, "server", &[dir.to_str().unwrap(), mode]);
    let line = peer.next();
    let at = line.strip_prefix("ready ").unwrap().to_owned();
    (peer, at)
}

fn client_tls(ca: &Ca, client: &(String, String), name: &str) -> ClientOptions {
    let tls = TlsClient::from_pem(ca.cert.pem().as_bytes(), client.0.as_bytes(), client.1.as_bytes(), name).unwrap();
    ClientOptions::new().auth_level(AuthLevel::Privacy).tls(tls)
}

/// A TCP relay from a port of its own to `to`, keeping every byte the
/// client sent: what someone on the path would see.
fn eavesdropper(to: &str) -> (String, Arc<Mutex<Vec<u8>>>) {
    let port: u16 = to.rsplit_once('[').unwrap().1.trim_end_matches(']').parse().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = format!("tcp:127.0.0.1[{}]", listener.local_addr().unwrap().port());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let mut server = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let log = log.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = c2.read(&mut buf) {
                    // Logged before it is passed on: once the server has
                    // seen a byte, so has the log (the test reads it then).
                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                    if n == 0 || server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = server.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut client);
            });
        }
    });
    (at, seen)
}

fn peer_role() {
    if role().as_deref() == Some("server") {
        server_peer();
    }
}

const SECRET: &[u8] = b"the secret argument 0123456789";

#[test]
fn rpc_s10_mutual_tls_authenticates_both_sides_and_encrypts() {
    peer_role();
    let _w = Watchdog::test();
    let test = "rpc_s10_mutual_tls_authenticates_both_sides_and_encrypts";
    let (ca, rogue) = (Ca::new("switchboard test CA"), Ca::new("someone else's CA"));
    let pems = Pems::new();
    let (cert, key) = ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    pems.write("server.pem", &cert);
    pems.write("server.key", &key);
    pems.write("ca.pem", &ca.cert.pem());
    let (mut peer, at) = spawn_server(test, &pems.0, "tls");
    let at = at.replace("127.0.0.1", "localhost");
    let good = ca.issue("client", ExtendedKeyUsagePurpose::ClientAuth);

    // Both sides present certificates their peer's CA signed: calls work,
    // and what crosses the wire is not the plaintext.
    let (via, seen) = eavesdropper(&at);
    let calc = CalcClient::connect_with(&via, &client_tls(&ca, &good, "localhost")).unwrap();
    assert_eq!(calc.add(2, 3).unwrap(), 5);
    assert_eq!(&calc.echo(SECRET.to_vec().into()).unwrap()[..], SECRET);
    let wire = seen.lock().unwrap().clone();
    assert!(wire.len() > SECRET.len());
    assert!(!wire.windows(SECRET.len()).any(|w| w == SECRET), "the argument crossed the wire in the clear");

    // A client certificate from another CA: refused.
    let stranger = rogue.issue("client", ExtendedKeyUsagePurpose::ClientAuth);
    let e = CalcClient::connect_with(&at, &client_tls(&ca, &stranger, "localhost")).map(drop).unwrap_err();
    assert!(matches!(e, Error::AccessDenied(_)), "{e:?}");
    // A server certificate the client's CA did not sign: refused by the client.
    let e = CalcClient::connect_with(&at, &client_tls(&rogue, &good, "localhost")).map(drop).unwrap_err();
    assert!(matches!(e, Error::AccessDenied(_)), "{e:?}");
    // A name the server's certificate does not carry: refused.
    let e = CalcClient::connect_with(&at, &client_tls(&ca, &good, "calc.example")).map(drop).unwrap_err();
    assert!(matches!(e, Error::AccessDenied(_)), "{e:?}");
    // A plain client: the server answers its bind with AccessDenied (5).
    let e = CalcClient::connect(&at).map(drop).unwrap_err();
    assert!(matches!(e, Error::AccessDenied(_)), "{e:?}");
    assert_eq!(e.win32(), 5);
    assert!(e.to_string().contains("mutual TLS"), "{e}");
    // After all that, the server still serves.
    assert_eq!(calc.mul(6, 7).unwrap(), 42);
    peer.dismiss();
}

#[test]
fn rpc_s10_a_tls_client_and_a_plain_server_disagree_with_access_denied() {
    peer_role();
    let _w = Watchdog::test();
    let test = "rpc_s10_a_tls_client_and_a_plain_server_disagree_with_access_denied";
    let ca = Ca::new("switchboard test CA");
    let pems = Pems::new();
    let (mut peer, at) = spawn_server(test, &pems.0, "plain");
    let good = ca.issue("client", ExtendedKeyUsagePurpose::ClientAuth);
    let e = CalcClient::connect_with(&at, &client_tls(&ca, &good, "localhost")).map(drop).unwrap_err();
    assert!(matches!(e, Error::AccessDenied(_)), "{e:?}");
    // In the clear, the argument is there for anyone on the path: the
    // control for the test above.
    let (via, seen) = eavesdropper(&at);
    let calc = CalcClient::connect(&via).unwrap();
    assert_eq!(&calc.echo(SECRET.to_vec().into()).unwrap()[..], SECRET);
    assert!(seen.lock().unwrap().windows(SECRET.len()).any(|w| w == SECRET));
    peer.dismiss();
}
