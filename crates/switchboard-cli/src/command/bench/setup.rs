//! Connecting the two sides of each scenario. The parent creates the
//! rendezvous, starts `switchboard bench-peer NAME PAYLOAD ROUNDS PINNED ARG…`
//! and returns its side; the child joins with the arguments.

use std::net::{TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};
use switchboard::link::{Link, ShmLink, ShmLinkListener, ShmLinkOptions, StreamLink, StreamLinkListener, WaitMode};
use switchboard::mailslot::{Mailslot, MailslotClient, MailslotOptions};
use switchboard::mapping::{Access, Mapping};
use switchboard::port::Port;

use switchboard::pipe::named::{PipeClient, PipeOptions, PipeType, ReadMode};

use super::echo::{Bytes, Echo, Futex, Linked, Ported, Serving, Slotted, Spin, Transact, DATA, PATIENCE};

/// Ring size of the benchmark pipe: the shared-memory link's default, so
/// the two compare like for like.
const PIPE_BUFFER: usize = 1 << 20;

/// A benchmark mailslot: messages up to the largest payload, read timeout
/// `PATIENCE`.
fn inbox(name: &str, payload: usize) -> anyhow::Result<Mailslot> {
    Ok(MailslotOptions::new().max_message_size(payload.max(1)).read_timeout(PATIENCE).create(name)?)
}

/// Reads the child's "ready" line.
fn ready(child: &mut Child) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().context("stdout")?), &mut line)?;
    anyhow::ensure!(line.trim() == "ready", "the benchmark peer said {line:?}");
    Ok(())
}

/// Tells the parent the child's side exists.
fn say_ready() -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    Ok(out.flush()?)
}

pub(super) fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("bench-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub(super) fn spawn(
    name: &str,
    payload: usize,
    rounds: u32,
    pinned: bool,
    args: &[&str],
    stdio: bool,
) -> anyhow::Result<Child> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("bench-peer").args([name, &payload.to_string(), &rounds.to_string(), if pinned { "1" } else { "0" }]);
    cmd.args(args);
    if stdio {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
    }
    cmd.spawn().context("starting the benchmark peer")
}

fn wait_mode(name: &str) -> WaitMode {
    match name {
        "shm_link_busy" => WaitMode::BusyPoll,
        "shm_link_blocking" => WaitMode::Blocking,
        _ => WaitMode::default(),
    }
}

fn abstract_addr(name: &str) -> anyhow::Result<SocketAddr> {
    Ok(SocketAddr::from_abstract_name(format!("sb1/bench/{name}"))?)
}

fn area(payload: usize) -> usize {
    payload.max(8)
}

fn shared(view: switchboard::mapping::View, me: usize, payload: usize) -> Spin {
    Spin { view, me, sent: 0, seen: 0, max: area(payload) }
}

/// The parent's side of scenario `name`, and the running child.
pub fn parent(name: &str, payload: usize, rounds: u32, pinned: bool) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let peer = |args: &[&str]| spawn(name, payload, rounds, pinned, args, false);
    Ok(match name {
        "spin" | "futex" => {
            let n = unique(name);
            let m = Mapping::create(n.as_str(), (DATA + 2 * area(payload)) as u64)?;
            let spin = shared(m.map_view(Access::Write, 0, 0)?, 0, payload);
            let child = peer(&[&n])?;
            if name == "spin" {
                (Box::new(spin), child)
            } else {
                (Box::new(Futex(spin)), child)
            }
        }
        "pipe" => {
            let mut child = spawn(name, payload, rounds, pinned, &[], true)?;
            let (w, r) = (child.stdin.take().context("stdin")?, child.stdout.take().context("stdout")?);
            (Box::new(Bytes { reader: r, writer: w }), child)
        }
        "unix_stream" => {
            let n = unique(name);
            let l = UnixListener::bind_addr(&abstract_addr(&n)?)?;
            let child = peer(&[&n])?;
            let (s, _) = l.accept()?;
            s.set_read_timeout(Some(PATIENCE))?;
            (Box::new(Bytes { reader: s.try_clone()?, writer: s }), child)
        }
        "tcp" => {
            let l = TcpListener::bind("127.0.0.1:0")?;
            let child = peer(&[&l.local_addr()?.port().to_string()])?;
            let (s, _) = l.accept()?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(PATIENCE))?;
            (Box::new(Bytes { reader: s.try_clone()?, writer: s }), child)
        }
        "shm_link_busy" | "shm_link_adaptive" | "shm_link_blocking" => {
            let n = unique(name);
            let l = ShmLinkListener::bind(&n)?;
            let child = peer(&[&n])?;
            let mut link = l.accept(Some(PATIENCE))?;
            link.set_wait_mode(wait_mode(name));
            (Box::new(Linked(Box::new(link))), child)
        }
        "stream_unix" => {
            let n = unique(name);
            let l = StreamLinkListener::bind_unix(&n)?;
            let child = peer(&[&n])?;
            (Box::new(Linked(Box::new(l.accept()?))), child)
        }
        "stream_tcp" => {
            let l = StreamLinkListener::bind_tcp("127.0.0.1:0")?;
            let child = peer(&[&l.port().context("port")?.to_string()])?;
            (Box::new(Linked(Box::new(l.accept()?))), child)
        }
        "port" => {
            let (a, b) = (unique("port-a"), unique("port-b"));
            let (there, back) = (Port::create(a.as_str(), 1)?, Port::create(b.as_str(), 1)?);
            let child = peer(&[&a, &b])?;
            (Box::new(Ported { there, back }), child)
        }
        "pipe_message_transact" => {
            // The child serves; it says "ready" once the pipe exists.
            let n = unique(name);
            let mut child = spawn(name, payload, rounds, pinned, &[&n], true)?;
            ready(&mut child)?;
            let client = PipeClient::open(&n)?;
            client.set_read_mode(ReadMode::Message)?;
            (Box::new(Transact { client, request: Vec::new() }), child)
        }
        "mailslot" => {
            let (mine, theirs) = (unique("slot-a"), unique("slot-b"));
            let inbox = inbox(&mine, payload)?;
            let mut child = spawn(name, payload, rounds, pinned, &[&mine, &theirs], true)?;
            ready(&mut child)?;
            (Box::new(Slotted { inbox, out: MailslotClient::open(&theirs)? }), child)
        }
        other => bail!("unknown benchmark {other}"),
    })
}

/// The child's side of scenario `name`.
pub fn child(name: &str, payload: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    let arg = |i: usize| args.get(i).map(String::as_str).context("missing bench-peer argument");
    Ok(match name {
        "spin" | "futex" => {
            let spin = shared(Mapping::open(arg(0)?, Access::Write)?.map_view(Access::Write, 0, 0)?, 1, payload);
            if name == "spin" {
                Box::new(spin)
            } else {
                Box::new(Futex(spin))
            }
        }
        "pipe" => {
            // Unbuffered: std's stdout is line-buffered and would hold a short message back.
            use std::os::fd::AsFd;
            let out = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
            let inp = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
            Box::new(Bytes { reader: inp, writer: out })
        }
        "unix_stream" => {
            let s = UnixStream::connect_addr(&abstract_addr(arg(0)?)?)?;
            Box::new(Bytes { reader: s.try_clone()?, writer: s })
        }
        "tcp" => {
            let s = TcpStream::connect(("127.0.0.1", arg(0)?.parse::<u16>()?))?;
            s.set_nodelay(true)?;
            Box::new(Bytes { reader: s.try_clone()?, writer: s })
        }
        "shm_link_busy" | "shm_link_adaptive" | "shm_link_blocking" => {
            let opts = ShmLinkOptions { wait: wait_mode(name), ..ShmLinkOptions::default() };
            Box::new(Linked(Box::new(ShmLink::connect(arg(0)?, opts)?)))
        }
        "stream_unix" => Box::new(Linked(Box::new(StreamLink::connect_unix(arg(0)?)?) as Box<dyn Link>)),
        "stream_tcp" => Box::new(Linked(Box::new(StreamLink::connect_tcp(("127.0.0.1", arg(0)?.parse::<u16>()?))?))),
        "port" => Box::new(Ported { there: Port::open(arg(1)?)?, back: Port::open(arg(0)?)? }),
        "pipe_message_transact" => {
            let opts = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message).buffer(PIPE_BUFFER);
            let server = opts.create(arg(0)?)?;
            say_ready()?;
            server.connect_timeout(Some(PATIENCE))?;
            Box::new(Serving(server))
        }
        "mailslot" => {
            let inbox = inbox(arg(1)?, payload)?;
            let out = MailslotClient::open(arg(0)?)?;
            say_ready()?;
            Box::new(Slotted { inbox, out })
        }
        other => bail!("unknown benchmark {other}"),
    })
}
