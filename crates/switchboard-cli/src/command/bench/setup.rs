//! Connecting the two sides of each scenario. The parent creates the
//! rendezvous, starts `switchboard bench-peer NAME PAYLOAD ROUNDS PINNED ARG…`
//! and returns its side; the child joins with the arguments.

use std::net::{TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use switchboard::link::{Link, ShmLink, ShmLinkListener, ShmLinkOptions, StreamLink, StreamLinkListener, WaitMode};
use switchboard::mailslot::{Mailslot, MailslotClient, MailslotOptions};
use switchboard::mapping::{Access, Mapping};
use switchboard::port::Port;

use switchboard::pipe::named::{PipeClient, PipeOptions, PipeType, ReadMode};

#[cfg(feature = "gateway")]
use super::echo::Kept;
use super::echo::{Answering, Called, DdeClient, DdeServing, Messaged, Posting, RpcServing, DDE_ITEM};
use super::echo::{Bytes, Echo, Futex, Linked, Loaned, Ported, Serving, Slotted, Spin, Transact, DATA, PATIENCE};
use super::Placement;

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
    let said = ready_saying(child)?;
    anyhow::ensure!(said.is_empty(), "the benchmark peer said ready {said:?}");
    Ok(())
}

/// Reads the child's "ready WHAT" line; WHAT.
fn ready_saying(child: &mut Child) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().context("stdout")?), &mut line)?;
    let said = line.trim().strip_prefix("ready").with_context(|| format!("the benchmark peer said {line:?}"))?;
    Ok(said.trim().to_owned())
}

/// Tells the parent the child's side exists.
fn say_ready() -> anyhow::Result<()> {
    say_ready_with("")
}

/// Tells the parent the child's side exists, and `what`.
fn say_ready_with(what: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {what}")?;
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
    placement: Placement,
    args: &[&str],
    stdio: bool,
) -> anyhow::Result<Child> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("bench-peer").args([name, &payload.to_string(), &rounds.to_string(), placement.arg()]);
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

/// One run of a path: its name and what the parent measures.
pub struct Run<'a> {
    /// The path's name (also the child's role).
    pub name: &'a str,
    /// Bytes per message.
    pub payload: usize,
    /// Round trips the child answers.
    pub rounds: u32,
    /// Whether the child pins itself to CPU 1.
    pub placement: Placement,
}

impl Run<'_> {
    /// Starts the child with `args` (its stdin and stdout closed).
    fn peer(&self, args: &[&str]) -> anyhow::Result<Child> {
        spawn(self.name, self.payload, self.rounds, self.placement, args, false)
    }

    /// Starts the child with `args`, its stdin and stdout piped to us.
    fn peer_piped(&self, args: &[&str]) -> anyhow::Result<Child> {
        spawn(self.name, self.payload, self.rounds, self.placement, args, true)
    }
}

/// The parent's side of a path: its echo and the running child.
pub type ParentSide = fn(&Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)>;
/// The child's side of a path, from its name, payload and arguments.
pub type ChildSide = fn(&str, usize, &[String]) -> anyhow::Result<Box<dyn Echo>>;

fn arg(args: &[String], i: usize) -> anyhow::Result<&str> {
    args.get(i).map(String::as_str).context("missing bench-peer argument")
}

/// `spin` and `futex`: one shared cache line, spun on or slept on.
pub fn cache_line_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let n = unique(run.name);
    let m = Mapping::create(n.as_str(), (DATA + 2 * area(run.payload)) as u64)?;
    let spin = shared(m.map_view(Access::Write, 0, 0)?, 0, run.payload);
    let child = run.peer(&[&n])?;
    Ok(if run.name == "spin" { (Box::new(spin), child) } else { (Box::new(Futex(spin)), child) })
}

/// See [`cache_line_parent`].
pub fn cache_line_child(name: &str, payload: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    let spin = shared(Mapping::open(arg(args, 0)?, Access::Write)?.map_view(Access::Write, 0, 0)?, 1, payload);
    Ok(if name == "spin" { Box::new(spin) } else { Box::new(Futex(spin)) })
}

/// `pipe`: the child's stdin and stdout.
pub fn os_pipe_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let mut child = run.peer_piped(&[])?;
    let (w, r) = (child.stdin.take().context("stdin")?, child.stdout.take().context("stdout")?);
    Ok((Box::new(Bytes { reader: r, writer: w }), child))
}

/// See [`os_pipe_parent`].
pub fn os_pipe_child(_: &str, _: usize, _: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    // Unbuffered: std's stdout is line-buffered and would hold a short message back.
    use std::os::fd::AsFd;
    let out = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let inp = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    Ok(Box::new(Bytes { reader: inp, writer: out }))
}

/// `unix_stream`: a Unix stream socket.
pub fn unix_stream_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let n = unique(run.name);
    let l = UnixListener::bind_addr(&abstract_addr(&n)?)?;
    let child = run.peer(&[&n])?;
    let (s, _) = l.accept()?;
    s.set_read_timeout(Some(PATIENCE))?;
    Ok((Box::new(Bytes { reader: s.try_clone()?, writer: s }), child))
}

/// See [`unix_stream_parent`].
pub fn unix_stream_child(_: &str, _: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    let s = UnixStream::connect_addr(&abstract_addr(arg(args, 0)?)?)?;
    Ok(Box::new(Bytes { reader: s.try_clone()?, writer: s }))
}

/// `tcp`: a loopback TCP connection.
pub fn tcp_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let child = run.peer(&[&l.local_addr()?.port().to_string()])?;
    let (s, _) = l.accept()?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(PATIENCE))?;
    Ok((Box::new(Bytes { reader: s.try_clone()?, writer: s }), child))
}

/// See [`tcp_parent`].
pub fn tcp_child(_: &str, _: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    let s = TcpStream::connect(("127.0.0.1", arg(args, 0)?.parse::<u16>()?))?;
    s.set_nodelay(true)?;
    Ok(Box::new(Bytes { reader: s.try_clone()?, writer: s }))
}

/// `shm_link_*`: a shared-memory link in the path's wait mode.
pub fn shm_link_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let n = unique(run.name);
    let l = ShmLinkListener::bind(&n)?;
    let child = run.peer(&[&n])?;
    let mut link = l.accept(Some(PATIENCE))?;
    link.set_wait_mode(wait_mode(run.name));
    Ok((Box::new(Linked(Box::new(link))), child))
}

/// See [`shm_link_parent`].
pub fn shm_link_child(name: &str, _: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    let opts = ShmLinkOptions { wait: wait_mode(name), ..ShmLinkOptions::default() };
    Ok(Box::new(Linked(Box::new(ShmLink::connect(arg(args, 0)?, opts)?))))
}

/// `shm_loan`: a shared-memory link whose messages are loaned samples.
pub fn shm_loan_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let n = unique(run.name);
    let l = ShmLinkListener::bind(&n)?;
    let child = run.peer(&[&n])?;
    Ok((Box::new(Loaned(l.accept(Some(PATIENCE))?)), child))
}

/// See [`shm_loan_parent`].
pub fn shm_loan_child(_: &str, _: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    Ok(Box::new(Loaned(ShmLink::connect(arg(args, 0)?, ShmLinkOptions::default())?)))
}

/// `stream_unix`: a framed Unix stream link.
pub fn stream_unix_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let n = unique(run.name);
    let l = StreamLinkListener::bind_unix(&n)?;
    let child = run.peer(&[&n])?;
    Ok((Box::new(Linked(Box::new(l.accept()?))), child))
}

/// See [`stream_unix_parent`].
pub fn stream_unix_child(_: &str, _: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    Ok(Box::new(Linked(Box::new(StreamLink::connect_unix(arg(args, 0)?)?) as Box<dyn Link>)))
}

/// `stream_tcp`: a framed TCP link.
pub fn stream_tcp_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let l = StreamLinkListener::bind_tcp("127.0.0.1:0")?;
    let child = run.peer(&[&l.port().context("port")?.to_string()])?;
    Ok((Box::new(Linked(Box::new(l.accept()?))), child))
}

/// See [`stream_tcp_parent`].
pub fn stream_tcp_child(_: &str, _: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    Ok(Box::new(Linked(Box::new(StreamLink::connect_tcp(("127.0.0.1", arg(args, 0)?.parse::<u16>()?))?))))
}

/// `port`: a packet each way through two completion ports.
pub fn port_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let (a, b) = (unique("port-a"), unique("port-b"));
    let (there, back) = (Port::create(a.as_str(), 1)?, Port::create(b.as_str(), 1)?);
    let child = run.peer(&[&a, &b])?;
    Ok((Box::new(Ported { there, back }), child))
}

/// See [`port_parent`].
pub fn port_child(_: &str, _: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    Ok(Box::new(Ported { there: Port::open(arg(args, 1)?)?, back: Port::open(arg(args, 0)?)? }))
}

/// `pipe_message_transact`: the child serves a message pipe; the parent
/// transacts (it says "ready" once the pipe exists).
pub fn pipe_transact_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let n = unique(run.name);
    let mut child = run.peer_piped(&[&n])?;
    ready(&mut child)?;
    let client = PipeClient::open(&n)?;
    client.set_read_mode(ReadMode::Message)?;
    Ok((Box::new(Transact { client, request: Vec::new() }), child))
}

/// See [`pipe_transact_parent`].
pub fn pipe_transact_child(_: &str, _: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    let opts = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message).buffer(PIPE_BUFFER);
    let server = opts.create(arg(args, 0)?)?;
    say_ready()?;
    server.connect_timeout(Some(PATIENCE))?;
    Ok(Box::new(Serving(server)))
}

/// `mailslot`: a message each way through two mailslots.
pub fn mailslot_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let (mine, theirs) = (unique("slot-a"), unique("slot-b"));
    let inbox = inbox(&mine, run.payload)?;
    let mut child = run.peer_piped(&[&mine, &theirs])?;
    ready(&mut child)?;
    Ok((Box::new(Slotted { inbox, out: MailslotClient::open(&theirs)? }), child))
}

/// See [`mailslot_parent`].
pub fn mailslot_child(_: &str, payload: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    let inbox = inbox(arg(args, 1)?, payload)?;
    let out = MailslotClient::open(arg(args, 0)?)?;
    say_ready()?;
    Ok(Box::new(Slotted { inbox, out }))
}

/// A receiver whose procedure returns a send's wparam, or a data copy's
/// byte count.
fn answering_receiver(name: &str) -> anyhow::Result<switchboard::message::Receiver> {
    use switchboard::message::{Receiver, WM_COPYDATA};
    Ok(Receiver::create(name, |_, m| if m.msg == WM_COPYDATA { m.data.len() as i64 } else { m.wparam as i64 })?)
}

/// `message_send` and `copydata`: the child owns a receiver, the parent sends.
pub fn message_send_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let name = unique("rx");
    let mut child = run.peer_piped(&[&name])?;
    ready(&mut child)?;
    let to = switchboard::message::find_receiver(&name)?;
    Ok((Box::new(Messaged { to, copy: run.name == "copydata", result: 0 }), child))
}

/// See [`message_send_parent`].
pub fn message_send_child(_: &str, _: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    let rx = answering_receiver(arg(args, 0)?)?;
    say_ready()?;
    Ok(Box::new(Answering { rx, ran: 0 }))
}

/// `message_post`: each side owns a receiver and posts to the other's.
pub fn message_post_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let (mine, theirs) = (unique("rx-a"), unique("rx-b"));
    let inbox = answering_receiver(&mine)?;
    let mut child = run.peer_piped(&[&mine, &theirs])?;
    ready(&mut child)?;
    let to = switchboard::message::find_receiver(&theirs)?;
    Ok((Box::new(Posting { to, inbox }), child))
}

/// See [`message_post_parent`].
pub fn message_post_child(_: &str, _: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    let inbox = answering_receiver(arg(args, 1)?)?;
    let to = switchboard::message::find_receiver(arg(args, 0)?)?;
    say_ready()?;
    Ok(Box::new(Posting { to, inbox }))
}

/// `dde_request` and `dde_advise`: the child serves a DDE service, the
/// parent is its client.
pub fn dde_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    use switchboard::dde::{Dde, Event, Reply};
    let service = unique("dde");
    let mut child = run.peer_piped(&[&service])?;
    ready(&mut child)?;
    let got = std::rc::Rc::new(std::cell::Cell::new(None));
    let update = got.clone();
    let dde = Dde::new(move |_, e| match e {
        Event::AdviseData { data: Some(d), .. } => {
            update.set(Some(d.len()));
            Reply::Ack
        }
        _ => Reply::NotProcessed,
    })?;
    let conv = dde.connect(&service, "bench")?;
    let advise = run.name == "dde_advise";
    if advise {
        conv.advise(DDE_ITEM, switchboard::clipboard::CF_TEXT, PATIENCE)?;
    }
    Ok((Box::new(DdeClient { dde, conv, advise, got }), child))
}

/// See [`dde_parent`]: a request for item `N` is answered with N bytes; a
/// poke is kept and published to the item's advise loops.
pub fn dde_child(_: &str, _: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    use switchboard::dde::{Dde, Event, Reply};
    let served = std::rc::Rc::new(std::cell::Cell::new(0));
    let count = served.clone();
    let value = std::cell::RefCell::new(Vec::new());
    let dde = Dde::new(move |dde, e| match *e {
        Event::Connect { .. } | Event::AdviseStart { .. } => Reply::Ack,
        Event::Request { item, .. } => {
            count.set(count.get() + 1);
            item.parse::<usize>().map_or(Reply::NotProcessed, |n| Reply::Data(vec![b'x'; n]))
        }
        Event::AdviseRequest { .. } => Reply::Data(value.borrow().clone()),
        Event::Poke { topic, item, data, .. } => {
            data.clone_into(&mut value.borrow_mut());
            dde.post_advise(topic, item);
            count.set(count.get() + 1);
            Reply::Ack
        }
        _ => Reply::NotProcessed,
    })?;
    dde.register(arg(args, 0)?)?;
    say_ready()?;
    Ok(Box::new(DdeServing { dde, served }))
}

/// `rpc_call_local`, `rpc_call_tcp`: calls of `Calc::echo` to a server in
/// the child, over a shared-memory or a TCP binding.
pub fn rpc_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    use switchboard::rpc::calc::CalcClient;
    let binding = match run.name {
        "rpc_call_tcp" => "tcp:127.0.0.1[0]".to_owned(),
        _ => format!("local:{}", unique(run.name)),
    };
    let mut child = run.peer_piped(&[&binding])?;
    let bound = ready_saying(&mut child)?;
    Ok((Box::new(Called { calc: CalcClient::connect(&bound)?, got: Default::default() }), child))
}

/// See [`rpc_parent`].
pub fn rpc_child(_: &str, _: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    use switchboard::rpc::calc::{CalcServer, Calculator};
    let server = switchboard::rpc::Server::builder()
        .serve(CalcServer(Calculator))
        .auth_level(switchboard::rpc::AuthLevel::None)
        .build();
    let bound = server.listen(arg(args, 0)?)?;
    say_ready_with(&bound.to_string())?;
    Ok(Box::new(RpcServing { server, done: false }))
}

/// `remote_pipe_transact`: a message-pipe transact through two gateways on
/// loopback (13-S02): this process's gateway (it serves this process) and
/// the child's, which exposes the child's pipe as host `bench-far`.
#[cfg(feature = "gateway")]
pub fn remote_pipe_parent(run: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    let (gateway, endpoint) = crate::command::gateway::start_near("bench-near")?;
    let n = unique(run.name);
    let mut child = run.peer_piped(&[&n, &endpoint])?;
    ready(&mut child)?;
    let client = PipeClient::open(&format!(r"\\bench-far\pipe\{n}"))?;
    client.set_read_mode(ReadMode::Message)?;
    Ok((Box::new(Kept { echo: Transact { client, request: Vec::new() }, _alive: Box::new(gateway) }), child))
}

/// See [`remote_pipe_parent`].
#[cfg(feature = "gateway")]
pub fn remote_pipe_child(_: &str, _: usize, args: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    let gateway = crate::command::gateway::start_far("bench-far", arg(args, 1)?)?;
    let opts = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message).buffer(PIPE_BUFFER);
    let server = opts.create(arg(args, 0)?)?;
    say_ready()?;
    server.connect_timeout(Some(PATIENCE))?;
    Ok(Box::new(FarEnd { serving: Serving(server), _gateway: gateway }))
}

/// The far host's side: its pipe server and its gateway, which must
/// outlive the last reply (it is still on its way when the rounds end).
#[cfg(feature = "gateway")]
struct FarEnd {
    serving: Serving,
    _gateway: switchboard_gateway::Gateway,
}

#[cfg(feature = "gateway")]
impl Echo for FarEnd {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        self.serving.send(msg)
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        self.serving.recv(buf, len)
    }
}

#[cfg(feature = "gateway")]
impl Drop for FarEnd {
    fn drop(&mut self) {
        crate::command::gateway::wait_for_close(&self.serving.0, PATIENCE);
    }
}

/// Without the `gateway` feature there is no remote path to measure.
#[cfg(not(feature = "gateway"))]
pub fn remote_pipe_parent(_: &Run<'_>) -> anyhow::Result<(Box<dyn Echo>, Child)> {
    anyhow::bail!("remote_pipe_transact needs switchboard built with the `gateway` feature")
}

/// See [`remote_pipe_parent`].
#[cfg(not(feature = "gateway"))]
pub fn remote_pipe_child(_: &str, _: usize, _: &[String]) -> anyhow::Result<Box<dyn Echo>> {
    anyhow::bail!("remote_pipe_transact needs switchboard built with the `gateway` feature")
}
