//! `switchboard tour`: start real child processes and exercise every
//! mechanism built so far, one table row each.
//!
//! The children are this same binary run as `switchboard tour-peer ROLE …`.
//! Every wait in a child has a time limit, so a child whose parent died
//! exits on its own instead of lingering.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use switchboard::link::{Link, ShmLink, ShmLinkListener, ShmLinkOptions};
use switchboard::mailslot::{MailslotClient, MailslotOptions};
use switchboard::mapping::{Access, Mapping};
use switchboard::pipe::anon;
use switchboard::pipe::named::{PipeClient, PipeOptions, PipeServer, PipeType, ReadMode};
use switchboard::port::Port;
use switchboard::socket::{self, Framed, SocketOptions};
use switchboard::sync::{wait_any, Event, Mutex, Semaphore, WaitMany, WaitStatus, Waitable};
use switchboard::HandleValue;

/// A child waits at most this long for anything.
const PEER_PATIENCE: Duration = Duration::from_secs(30);

pub(crate) struct Row {
    mechanism: &'static str,
    exchanged: String,
    result: String,
    time: String,
}

/// A tour row: runs one mechanism with real processes.
pub(crate) type Step = fn(&Names, u32) -> anyhow::Result<Row>;

/// Unique object names for one tour.
pub(crate) struct Names(String);

impl Names {
    fn get(&self, what: &str) -> String {
        format!("{}-{what}", self.0)
    }
}

pub fn run(rounds: u32) -> anyhow::Result<ExitCode> {
    let names = Names(format!("tour-{}", std::process::id()));
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header([
        "mechanism",
        "what was exchanged",
        "result",
        "round trip",
    ]);
    let mut failed = 0;
    for step in super::scenario::tour_steps() {
        match step(&names, rounds.max(1)) {
            Ok(r) => {
                table.add_row([r.mechanism.to_owned(), r.exchanged, r.result, r.time]);
            }
            Err(e) => {
                failed += 1;
                table.add_row(["(step failed)".to_owned(), String::new(), format!("FAILED: {e:#}"), String::new()]);
            }
        }
    }
    table.add_row(leftovers_row(&names));
    out!("{table}");
    if failed > 0 {
        bail!("{failed} tour step(s) failed");
    }
    Ok(ExitCode::SUCCESS)
}

fn spawn(role: &str, args: &[&str]) -> anyhow::Result<Child> {
    Command::new(std::env::current_exe()?)
        .arg("tour-peer")
        .arg(role)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting a tour child process")
}

/// Reads the child's first line of output (its "ready" signal).
fn first_line(child: &mut Child) -> anyhow::Result<String> {
    let out = child.stdout.take().context("child stdout")?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    ensure!(!line.is_empty(), "the child exited before it was ready");
    Ok(line.trim().to_owned())
}

fn finish(mut child: Child) -> anyhow::Result<()> {
    let status = child.wait()?;
    ensure!(status.success(), "child exited with {status}");
    Ok(())
}

fn median_us(samples: Vec<Duration>) -> String {
    let n = samples.len();
    let (p50, p99) = super::percentiles(samples);
    format!("p50 {:.1} µs, p99 {:.1} µs (n={n})", micros(p50), micros(p99))
}

fn micros(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}

fn acquired(s: WaitStatus) -> anyhow::Result<()> {
    ensure!(s == WaitStatus::Acquired, "wait ended {s:?}");
    Ok(())
}

pub(crate) fn mapping_row(names: &Names, rounds: u32) -> anyhow::Result<Row> {
    let (m, req, rep) = (names.get("map"), names.get("req"), names.get("rep"));
    let mapping = Mapping::create(m.as_str(), 4096)?;
    let (ping, pong) = (Event::create(req.as_str(), false, false)?, Event::create(rep.as_str(), false, false)?);
    let view = mapping.map_view(Access::Write, 0, 0)?;
    let child = spawn("echo", &[&m, &req, &rep, &rounds.to_string()])?;
    let mut samples = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        let msg = [(i % 251) as u8; 64];
        let t = Instant::now();
        view.write(0, &msg)?;
        ping.set();
        acquired(pong.wait_timeout(PEER_PATIENCE))?;
        samples.push(t.elapsed());
        ensure!(view.read_vec(64, 64)? == msg, "reply {i} differs from the request");
    }
    finish(child)?;
    Ok(Row {
        mechanism: "file mapping + events",
        exchanged: format!("{rounds} × 64 B request → 64 B echo through a shared view"),
        result: format!("{rounds}/{rounds} echoes verified"),
        time: median_us(samples),
    })
}

pub(crate) fn semaphore_row(names: &Names, rounds: u32) -> anyhow::Result<Row> {
    let (a, b) = (names.get("sem-a"), names.get("sem-b"));
    let (there, back) = (Semaphore::create(a.as_str(), 0, 1)?, Semaphore::create(b.as_str(), 0, 1)?);
    let child = spawn("semaphore", &[&a, &b, &rounds.to_string()])?;
    let mut samples = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        let t = Instant::now();
        there.release(1)?;
        acquired(back.wait_timeout(PEER_PATIENCE))?;
        samples.push(t.elapsed());
    }
    finish(child)?;
    let err = there.release(2).expect_err("max is 1");
    Ok(Row {
        mechanism: "semaphore",
        exchanged: format!("{rounds} counts released and taken back"),
        result: format!("ok; over-release refused: {} ({})", err.win32_name(), err.win32()),
        time: median_us(samples),
    })
}

pub(crate) fn event_row(names: &Names, _rounds: u32) -> anyhow::Result<Row> {
    let go = names.get("go");
    let event = Event::create(go.as_str(), true, false)?;
    let children: Vec<Child> = (0..3).map(|_| spawn("event-waiter", &[&go])).collect::<Result<_, _>>()?;
    let mut children = children;
    for c in &mut children {
        ensure!(first_line(c)? == "waiting", "child not waiting");
    }
    let t = Instant::now();
    event.set();
    for c in children {
        finish(c)?;
    }
    Ok(Row {
        mechanism: "event (manual reset)",
        exchanged: "one set → 3 waiting processes".into(),
        result: "all 3 released".into(),
        time: format!("set → all exited {:.1} ms", t.elapsed().as_secs_f64() * 1e3),
    })
}

pub(crate) fn mutex_row(names: &Names, _rounds: u32) -> anyhow::Result<Row> {
    let n = names.get("mutex");
    let mutex = Mutex::create(n.as_str(), false)?;
    let mut child = spawn("mutex-owner", &[&n])?;
    ensure!(first_line(&mut child)? == "owned", "child did not take the mutex");
    let t = Instant::now();
    child.kill()?;
    child.wait()?;
    let status = mutex.wait_timeout(PEER_PATIENCE);
    let took = t.elapsed();
    ensure!(status == WaitStatus::Abandoned, "expected WAIT_ABANDONED, got {status:?}");
    mutex.release()?;
    Ok(Row {
        mechanism: "mutex",
        exchanged: "owner process killed (SIGKILL) while holding it".into(),
        result: "next waiter got WAIT_ABANDONED and owns it".into(),
        time: format!("kill → acquired {:.1} ms", took.as_secs_f64() * 1e3),
    })
}

pub(crate) fn wait_any_row(names: &Names, _rounds: u32) -> anyhow::Result<Row> {
    let (m, s, e) = (names.get("any-m"), names.get("any-s"), names.get("any-e"));
    let mutex = Mutex::create(m.as_str(), false)?;
    let sem = Semaphore::create(s.as_str(), 0, 1)?;
    let event = Event::create(e.as_str(), false, false)?;
    let objs: [&dyn Waitable; 3] = [&sem, &event, &mutex];
    let mut child = spawn("hold-and-set", &[&m, &e])?;
    ensure!(first_line(&mut child)? == "holding", "child not ready");
    let t = Instant::now();
    let got = wait_any(&objs[..2], Some(PEER_PATIENCE))?;
    let took = t.elapsed();
    finish(child)?;
    ensure!(got == WaitMany::Signaled(1), "wait_any returned {got:?}");
    let after = wait_any(&objs, Some(PEER_PATIENCE))?;
    ensure!(after == WaitMany::Abandoned(2), "the exited child's mutex should be abandoned, got {after:?}");
    mutex.release()?;
    Ok(Row {
        mechanism: "wait on several",
        exchanged: "semaphore, event, mutex; the child sets the event, then exits holding the mutex".into(),
        result: "index 1 signalled, then index 2 abandoned".into(),
        time: format!("set → woken {:.1} µs", micros(took)),
    })
}

pub(crate) fn handle_row(_names: &Names, _rounds: u32) -> anyhow::Result<Row> {
    let mapping = Mapping::create(None, 4096)?;
    mapping.map_view(Access::Write, 0, 0)?.write(0, b"hello from the parent")?;
    let pid = std::process::id().to_string();
    let mut child = spawn("take-handle", &[&pid, &mapping.handle().to_string()])?;
    let line = first_line(&mut child)?;
    finish(child)?;
    let result = match line.strip_prefix("read ") {
        Some(text) => format!("child read {text:?} through the taken handle"),
        None => format!("the OS refused pidfd_getfd; fd passing remains ({line})"),
    };
    Ok(Row {
        mechanism: "handle sharing",
        exchanged: format!("child took unnamed mapping handle {} from pid {pid} (pidfd_getfd)", mapping.handle()),
        result,
        time: "—".into(),
    })
}

pub(crate) fn shm_link_row(names: &Names, rounds: u32) -> anyhow::Result<Row> {
    let name = names.get("link");
    let listener = ShmLinkListener::bind(&name)?;
    let child = spawn("link-echo", &[&name, &rounds.to_string()])?;
    let mut link = listener.accept(Some(PEER_PATIENCE))?;
    let mut samples = Vec::with_capacity(rounds as usize);
    let mut buf = Vec::new();
    for i in 0..rounds {
        let msg = [(i % 253) as u8; 64];
        let t = Instant::now();
        link.send(&msg)?;
        link.recv_timeout(&mut buf, PEER_PATIENCE)?;
        samples.push(t.elapsed());
        ensure!(buf == msg, "echo {i} differs");
    }
    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    link.send(&big)?;
    link.recv_timeout(&mut buf, PEER_PATIENCE)?;
    ensure!(buf == big, "the 8 MiB echo differs");
    finish(child)?;
    Ok(Row {
        mechanism: "shared-memory link",
        exchanged: format!("{rounds} × 64 B echoes, then one 8 MiB message (8 × the ring) streamed both ways"),
        result: "all echoes verified".into(),
        time: median_us(samples),
    })
}

pub(crate) fn port_row(names: &Names, rounds: u32) -> anyhow::Result<Row> {
    let (there_name, back_name) = (names.get("port-a"), names.get("port-b"));
    let (there, back) = (Port::create(there_name.as_str(), 1)?, Port::create(back_name.as_str(), 1)?);
    let pid = std::process::id().to_string();
    let child = spawn("port-echo", &[&pid, &there.handle().to_string(), &back_name, &rounds.to_string()])?;
    let mut samples = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        let t = Instant::now();
        there.post(i, u64::from(i), !u64::from(i))?;
        let p = back.get(Some(PEER_PATIENCE))?;
        samples.push(t.elapsed());
        ensure!((p.bytes, p.key, p.overlapped) == (i, u64::from(i), !u64::from(i)), "packet {i} differs");
    }
    finish(child)?;
    Ok(Row {
        mechanism: "completion port",
        exchanged: format!("{rounds} packets posted → got → posted back; the child took the port by pid + handle"),
        result: format!("{rounds}/{rounds} packets returned in order"),
        time: median_us(samples),
    })
}

pub(crate) fn anon_pipe_row(_names: &Names, _rounds: u32) -> anyhow::Result<Row> {
    let (child_in, to_child) = anon::pipe()?;
    let (mut from_child, child_out) = anon::pipe()?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["tour-peer", "upper"]);
    let child = anon::spawn(cmd, anon::Stdio { stdin: Some(child_in), stdout: Some(child_out), stderr: None })?;
    let t = Instant::now();
    to_child.write(b"through an anonymous pipe\n")?;
    drop(to_child);
    let mut text = String::new();
    from_child.read_to_string(&mut text)?;
    let took = t.elapsed();
    finish(child)?;
    ensure!(text == "THROUGH AN ANONYMOUS PIPE\n", "the child answered {text:?}");
    Ok(Row {
        mechanism: "anonymous pipe",
        exchanged: "a line to the child's stdin, upper-cased back on its stdout".into(),
        result: "answer verified; EOF seen as the child exited".into(),
        time: format!("{:.1} µs incl. child exit", micros(took)),
    })
}

pub(crate) fn named_pipe_row(names: &Names, rounds: u32) -> anyhow::Result<Row> {
    let name = names.get("pipe");
    let mut child = spawn("pipe-echo", &[&name, &rounds.to_string()])?;
    ensure!(first_line(&mut child)? == "ready", "the pipe server did not start");
    let client = PipeClient::open(&name)?;
    let samples = transact_echoes(&client, rounds)?;
    let server_pid = client.server_process_id();
    drop(client);
    finish(child)?;
    Ok(Row {
        mechanism: "named pipe",
        exchanged: format!("{rounds} × 64 B transact (message mode) with server pid {server_pid}"),
        result: "every reply verified".into(),
        time: median_us(samples),
    })
}

/// `rounds` 64 B transacts in message mode, each reply checked; their times.
fn transact_echoes(client: &PipeClient, rounds: u32) -> anyhow::Result<Vec<Duration>> {
    client.set_read_mode(ReadMode::Message)?;
    let mut samples = Vec::with_capacity(rounds as usize);
    let mut reply = [0u8; 64];
    for i in 0..rounds {
        let msg = [(i % 253) as u8; 64];
        let t = Instant::now();
        let n = client.transact(&msg, &mut reply)?;
        samples.push(t.elapsed());
        ensure!(reply[..n] == msg, "reply {i} differs");
    }
    Ok(samples)
}

/// The server's side of [`transact_echoes`]: `rounds` messages read and
/// written back.
fn serve_echoes(server: &PipeServer, rounds: u32) -> anyhow::Result<()> {
    let mut buf = [0u8; 64];
    for _ in 0..rounds {
        let n = server.read(&mut buf)?;
        server.write(&buf[..n])?;
    }
    Ok(())
}

pub(crate) fn mailslot_row(names: &Names, rounds: u32) -> anyhow::Result<Row> {
    let (mine, theirs) = (names.get("slot-a"), names.get("slot-b"));
    let inbox = MailslotOptions::new().read_timeout(PEER_PATIENCE).create(&mine)?;
    let mut child = spawn("slot-echo", &[&mine, &theirs, &rounds.to_string()])?;
    ensure!(first_line(&mut child)? == "ready", "the child's mailslot did not start");
    let out = MailslotClient::open(&theirs)?;
    let mut samples = Vec::with_capacity(rounds as usize);
    let mut buf = [0u8; 64];
    for i in 0..rounds {
        let msg = [(i % 251) as u8; 64];
        let t = Instant::now();
        out.write(&msg)?;
        let n = inbox.read(&mut buf)?;
        samples.push(t.elapsed());
        ensure!(buf[..n] == msg, "echo {i} differs");
    }
    finish(child)?;
    let late = out.write(b"after exit").map_err(|e| e.win32());
    ensure!(late == Err(2), "a write after the child's mailslot closed gave {late:?}");
    Ok(Row {
        mechanism: "mailslot",
        exchanged: format!("{rounds} × 64 B written to the child's mailslot, echoed to ours"),
        result: "every echo verified; a write after the child exited: ERROR_FILE_NOT_FOUND".into(),
        time: median_us(samples),
    })
}

pub(crate) fn socket_row(names: &Names, rounds: u32) -> anyhow::Result<Row> {
    let rendezvous = names.get("socket");
    let via = socket::HandOff::bind(&rendezvous)?;
    let tcp = SocketOptions::new().tcp_listen("127.0.0.1:0")?;
    let addr = tcp.local_addr()?;
    let child = spawn("socket-echo", &[&rendezvous, &rounds.to_string()])?;
    let conn = via.accept(PEER_PATIENCE)?;
    socket::send_socket(&conn, &tcp)?;
    // Our copy goes: from now on only the child's copy accepts.
    drop(tcp);
    let stream = SocketOptions::new().read_timeout(Some(PEER_PATIENCE)).tcp_connect(addr)?;
    stream.set_nodelay(true)?;
    let mut framed = Framed::new(stream, 64);
    let mut samples = Vec::with_capacity(rounds as usize);
    let mut back = Vec::new();
    for i in 0..rounds {
        let msg = [(i % 249) as u8; 64];
        let t = Instant::now();
        framed.send(&msg)?;
        framed.recv(&mut back)?;
        samples.push(t.elapsed());
        ensure!(back == msg, "frame {i} differs");
    }
    drop(framed);
    finish(child)?;
    Ok(Row {
        mechanism: "socket",
        exchanged: format!("TCP listener sent to the child (SCM_RIGHTS); {rounds} × 64 B frames echoed by it"),
        result: "every frame verified; the listener served from the child after ours closed".into(),
        time: median_us(samples),
    })
}

pub(crate) fn message_row(names: &Names, rounds: u32) -> anyhow::Result<Row> {
    use switchboard::message::{find_receiver, WM_QUIT, WM_USER};
    let name = names.get("rx");
    let mut child = spawn("msg-receiver", &[&name])?;
    ensure!(first_line(&mut child)? == "ready", "the receiver did not start");
    let to = find_receiver(&name)?;
    let mut samples = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        let t = Instant::now();
        let r = to.send(WM_USER, u64::from(i), 0)?;
        samples.push(t.elapsed());
        ensure!(r == i64::from(i) * 2, "send {i} returned {r}");
    }
    let copy: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let sum: i64 = copy.iter().map(|b| i64::from(*b)).sum();
    let t = Instant::now();
    ensure!(to.send_copydata(None, 1, &copy)? == sum, "the 8 MiB copy's checksum differs");
    let copy_time = t.elapsed();
    to.post(WM_QUIT, 0, 0)?;
    finish(child)?;
    Ok(Row {
        mechanism: "window messages",
        exchanged: format!(
            "{rounds} sends to a receiver in a child, each answered by its procedure; an 8 MiB data copy"
        ),
        result: format!(
            "{rounds}/{rounds} results right; the copy's checksum came back in {:.1} ms; WM_QUIT ended the loop",
            micros(copy_time) / 1000.0
        ),
        time: median_us(samples),
    })
}

pub(crate) fn dde_row(names: &Names, rounds: u32) -> anyhow::Result<Row> {
    use std::cell::RefCell;
    use std::rc::Rc;
    use switchboard::dde::{Dde, Event, Reply};
    let service = names.get("sheet");
    let mut sheet = spawn("dde-sheet", &[&service])?;
    ensure!(first_line(&mut sheet)? == "ready", "the sheet did not start");
    let updates: Rc<RefCell<Vec<String>>> = Rc::default();
    let seen = updates.clone();
    let dde = Dde::new(move |_, e| {
        if let Event::AdviseData { data: Some(d), .. } = e {
            seen.borrow_mut().push(String::from_utf8_lossy(d).into_owned());
        }
        Reply::Ack
    })?;
    let conv = dde.connect(&service, "Sheet1")?;
    conv.advise("R3C1", switchboard::clipboard::CF_TEXT, PEER_PATIENCE)?;
    let poker = spawn("dde-poker", &[&service, &rounds.to_string()])?;
    let until = Instant::now() + PEER_PATIENCE;
    while updates.borrow().len() < rounds as usize {
        ensure!(Instant::now() < until, "{} of {rounds} updates came", updates.borrow().len());
        dde.pump(PEER_PATIENCE)?;
    }
    finish(poker)?;
    let want: Vec<String> = (1..=rounds).map(|i| (i * 2).to_string()).collect();
    ensure!(*updates.borrow() == want, "the updates came out of order");
    let mut samples = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        let t = Instant::now();
        let v = conv.request_text("R3C1", PEER_PATIENCE)?;
        samples.push(t.elapsed());
        ensure!(v == (rounds * 2).to_string(), "R3C1 read {v}");
    }
    drop(conv);
    finish(sheet)?;
    Ok(Row {
        mechanism: "DDE",
        exchanged: format!(
            "a child serves a sheet (R3C1 = R1C1*2); another pokes R1C1 = 1..{rounds}; a hot link here \
             watches R3C1; then {rounds} requests"
        ),
        result: format!("{rounds}/{rounds} updates of R3C1, in order (2, 4, … {})", rounds * 2),
        time: median_us(samples),
    })
}

pub(crate) fn rpc_row(names: &Names, rounds: u32) -> anyhow::Result<Row> {
    use switchboard::rpc::calc::{Calc, CalcClient, CalcInterface};
    let name = format!("local:{}", names.get("calc"));
    let mut server = spawn("rpc-calc", &[&name])?;
    let tcp = first_line(&mut server)?;
    // Found through the endpoint mapper: the child's registration of
    // `Calc` (another Calc server of this user may be running too).
    let found = switchboard::rpc::mapper::lookup(Some(<CalcInterface as switchboard::rpc::Interface>::ID));
    let mine = found.iter().find(|r| r.pid == server.id()).context("the child's Calc is not registered")?;
    let local = mine.endpoints.iter().find(|b| matches!(b, switchboard::rpc::Binding::Local(_)));
    let local = local.context("the child registered no local: binding")?.to_string();
    ensure!(local == name, "the child registered {local}");
    let calc = CalcClient::connect(&local)?;
    let mut samples = Vec::with_capacity(rounds as usize);
    for i in 0..i64::from(rounds) {
        let t = Instant::now();
        let sum = calc.add(i, i)?;
        samples.push(t.elapsed());
        ensure!(sum == 2 * i, "add({i}, {i}) returned {sum}");
    }
    let refused = calc.div(1, 0).err().map(|e| e.win32());
    ensure!(refused == Some(87), "1 / 0 ended {refused:?}");
    let over_tcp = CalcClient::connect(&tcp)?.sum(vec![0.5; 8])?;
    ensure!(over_tcp == 4.0, "the sum over TCP was {over_tcp}");
    drop(calc);
    finish(server)?;
    Ok(Row {
        mechanism: "RPC",
        exchanged: format!(
            "a child serves Calc on local: and tcp:; found by interface through the endpoint mapper; \
             {rounds} calls of add, 1 / 0, a sum over TCP"
        ),
        result: format!("{rounds}/{rounds} results right; 1 / 0 failed with 87 at the client; the TCP sum was 4"),
        time: median_us(samples),
    })
}

/// The tour peer `rpc-calc`: serves `Calc` on `ARG0` and a TCP port (its
/// first line), until its clients have come and gone.
pub(crate) fn rpc_calc_peer(args: &[String]) -> anyhow::Result<()> {
    use switchboard::rpc::calc::{CalcServer, Calculator};
    // Plain TCP admits whoever reaches the port: said so explicitly.
    let server = switchboard::rpc::Server::builder()
        .serve(CalcServer(Calculator))
        .auth_level(switchboard::rpc::AuthLevel::None)
        .build();
    server.listen(arg(args, 0)?)?;
    out!("{}", server.listen("tcp:127.0.0.1[0]")?);
    ensure!(server.wait_idle(PEER_PATIENCE), "the calculator's clients never came and went");
    Ok(())
}

/// A clipboard of the tour's own (the user's is left alone), removed after.
struct TourClipboard(std::path::PathBuf);

impl Drop for TourClipboard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn clipboard_row(names: &Names, _rounds: u32) -> anyhow::Result<Row> {
    use switchboard::clipboard::Clipboard;
    let dir = TourClipboard(std::env::temp_dir().join(format!("{}-clipboard", names.0)));
    let clip = Clipboard::at(&dir.0)?;
    let path = dir.0.to_string_lossy().into_owned();
    // Text set by a process that then exits.
    finish(spawn("clip-setter", &[&path])?)?;
    clip.open_timeout(None, PEER_PATIENCE)?;
    let text = clip.get_text()?;
    clip.close()?;
    ensure!(text.as_deref() == Some("set by a process that has exited"), "read {text:?}");
    // A format rendered by its owner only when asked.
    let rx_name = names.get("clip-owner");
    let mut owner = spawn("clip-owner", &[&path, &rx_name])?;
    ensure!(first_line(&mut owner)? == "ready", "the owner did not start");
    let format = clip.register_format("switchboard tour")?;
    clip.open_timeout(None, PEER_PATIENCE)?;
    let t = Instant::now();
    let rendered = clip.get(format)?;
    let took = t.elapsed();
    clip.close()?;
    switchboard::message::find_receiver(&rx_name)?.post(switchboard::message::WM_QUIT, 0, 0)?;
    finish(owner)?;
    ensure!(rendered.as_deref() == Some(&b"rendered on demand"[..]), "rendered {rendered:?}");
    Ok(Row {
        mechanism: "clipboard",
        exchanged: "text set by a child that exited; a format its owner (another child) rendered only when asked"
            .into(),
        result: format!("read {text:?}; the delayed format came back rendered in {:.1} ms", micros(took) / 1000.0),
        time: "—".into(),
    })
}

pub(crate) fn leftovers_row(names: &Names) -> [String; 4] {
    let left: Vec<String> = switchboard::namespace::list()
        .into_iter()
        .filter(|e| e.name.starts_with(&names.0) && e.holders > 0)
        .map(|e| e.name)
        .collect();
    let result =
        if left.is_empty() { "no object held by a child remains".to_owned() } else { format!("still held: {left:?}") };
    ["namespace".into(), "ls after every child exited".into(), result, "—".into()]
}

/// The child side.
/// A tour peer's side: `switchboard tour-peer ROLE ARG…`.
pub(crate) type PeerRole = fn(&[String]) -> anyhow::Result<()>;

fn arg(args: &[String], i: usize) -> anyhow::Result<&str> {
    args.get(i).map(String::as_str).context("missing tour-peer argument")
}

/// The child side of the tour: the role's function from the scenario table.
pub fn peer(role: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    let Some(run) = super::scenario::tour_peer(role) else { bail!("unknown tour role {role}") };
    run(args)?;
    Ok(ExitCode::SUCCESS)
}

/// The tour peer `echo`.
pub(crate) fn echo_peer(args: &[String]) -> anyhow::Result<()> {
    let view = Mapping::open(arg(args, 0)?, Access::Write)?.map_view(Access::Write, 0, 0)?;
    let (req, rep) = (Event::open(arg(args, 1)?)?, Event::open(arg(args, 2)?)?);
    for _ in 0..arg(args, 3)?.parse::<u32>()? {
        acquired(req.wait_timeout(PEER_PATIENCE))?;
        view.write(64, &view.read_vec(0, 64)?)?;
        rep.set();
    }
    Ok(())
}

/// The tour peer `semaphore`.
pub(crate) fn semaphore_peer(args: &[String]) -> anyhow::Result<()> {
    let (there, back) = (Semaphore::open(arg(args, 0)?)?, Semaphore::open(arg(args, 1)?)?);
    for _ in 0..arg(args, 2)?.parse::<u32>()? {
        acquired(there.wait_timeout(PEER_PATIENCE))?;
        back.release(1)?;
    }
    Ok(())
}

/// The tour peer `event-waiter`.
pub(crate) fn event_waiter_peer(args: &[String]) -> anyhow::Result<()> {
    let e = Event::open(arg(args, 0)?)?;
    out!("waiting");
    acquired(e.wait_timeout(PEER_PATIENCE))?;
    Ok(())
}

/// The tour peer `mutex-owner`.
pub(crate) fn mutex_owner_peer(args: &[String]) -> anyhow::Result<()> {
    let m = Mutex::open(arg(args, 0)?)?;
    acquired(m.wait_timeout(PEER_PATIENCE))?;
    out!("owned");
    std::thread::sleep(PEER_PATIENCE);
    Ok(())
}

/// The tour peer `hold-and-set`.
pub(crate) fn hold_and_set_peer(args: &[String]) -> anyhow::Result<()> {
    let m = Mutex::open(arg(args, 0)?)?;
    acquired(m.wait_timeout(PEER_PATIENCE))?;
    out!("holding");
    Event::open(arg(args, 1)?)?.set();
    Ok(())
}

/// The tour peer `take-handle`.
pub(crate) fn take_handle_peer(args: &[String]) -> anyhow::Result<()> {
    let handle = HandleValue(arg(args, 1)?.parse()?);
    match Mapping::from_process(arg(args, 0)?.parse()?, handle, Access::Read) {
        Ok(m) => {
            let bytes = m.map_view(Access::Read, 0, 0)?.read_vec(0, 21)?;
            out!("read {}", String::from_utf8_lossy(&bytes));
        }
        Err(e) => out!("refused {e}"),
    }
    Ok(())
}

/// The tour peer `link-echo`.
pub(crate) fn link_echo_peer(args: &[String]) -> anyhow::Result<()> {
    let mut link = ShmLink::connect(arg(args, 0)?, ShmLinkOptions::default())?;
    let mut buf = Vec::new();
    for _ in 0..=arg(args, 1)?.parse::<u32>()? {
        link.recv_timeout(&mut buf, PEER_PATIENCE)?;
        link.send(&buf)?;
    }
    Ok(())
}

/// The tour peer `port-echo`.
pub(crate) fn port_echo_peer(args: &[String]) -> anyhow::Result<()> {
    let there = Port::from_process(arg(args, 0)?.parse()?, HandleValue(arg(args, 1)?.parse()?))?;
    let back = Port::open(arg(args, 2)?)?;
    for _ in 0..arg(args, 3)?.parse::<u32>()? {
        let p = there.get(Some(PEER_PATIENCE))?;
        back.post(p.bytes, p.key, p.overlapped)?;
    }
    Ok(())
}

/// The tour peer `upper`.
pub(crate) fn upper_peer(_args: &[String]) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    out!("{}", line.to_uppercase().trim_end_matches('\n'));
    Ok(())
}

/// Remote reach (spec 13): a message-pipe transact to another "host"
/// through two gateways on loopback — this process's, and the child's,
/// which exposes the child's pipe as host `tour-far`.
#[cfg(feature = "gateway")]
pub(crate) fn remote_pipe_row(names: &Names, rounds: u32) -> anyhow::Result<Row> {
    let name = names.get("remote");
    let rounds = rounds.min(500);
    let (gateway, endpoint) = match super::gateway::start_near("tour-near") {
        Ok(started) => started,
        Err(e) => {
            return Ok(Row {
                mechanism: "remote pipe (gateways)",
                exchanged: "not run".into(),
                result: format!("skipped: {e}"),
                time: String::new(),
            })
        }
    };
    let mut child = spawn("remote-echo", &[&name, &endpoint, &rounds.to_string()])?;
    ensure!(first_line(&mut child)? == "ready", "the far host's pipe did not start");
    let client = PipeClient::open(&format!(r"\\tour-far\pipe\{name}"))?;
    let samples = transact_echoes(&client, rounds)?;
    drop(client);
    finish(child)?;
    drop(gateway);
    Ok(Row {
        mechanism: "remote pipe (gateways)",
        exchanged: format!(r"{rounds} × 64 B transact to \\tour-far\pipe through two gateways (Zenoh, loopback)"),
        result: "every reply verified".into(),
        time: median_us(samples),
    })
}

/// Without the `gateway` feature: a row that says so.
#[cfg(not(feature = "gateway"))]
pub(crate) fn remote_pipe_row(_: &Names, _: u32) -> anyhow::Result<Row> {
    Ok(Row {
        mechanism: "remote pipe (gateways)",
        exchanged: "not run".into(),
        result: "skipped: built without the `gateway` feature".into(),
        time: String::new(),
    })
}

/// The tour peer `remote-echo`: the far host — its gateway and a message
/// pipe that echoes, kept until the client closes.
#[cfg(feature = "gateway")]
pub(crate) fn remote_echo_peer(args: &[String]) -> anyhow::Result<()> {
    let _gateway = super::gateway::start_far("tour-far", arg(args, 1)?)?;
    let opts = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message);
    let server = opts.create(arg(args, 0)?)?;
    out!("ready");
    server.connect_timeout(Some(PEER_PATIENCE))?;
    serve_echoes(&server, arg(args, 2)?.parse()?)?;
    super::gateway::wait_for_close(&server, PEER_PATIENCE);
    Ok(())
}

/// Without the `gateway` feature there is no far host.
#[cfg(not(feature = "gateway"))]
pub(crate) fn remote_echo_peer(_: &[String]) -> anyhow::Result<()> {
    bail!("built without the `gateway` feature")
}

/// The tour peer `pipe-echo`.
pub(crate) fn pipe_echo_peer(args: &[String]) -> anyhow::Result<()> {
    let opts = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message);
    let server = opts.create(arg(args, 0)?)?;
    out!("ready");
    server.connect_timeout(Some(PEER_PATIENCE))?;
    serve_echoes(&server, arg(args, 1)?.parse()?)
}

/// The tour peer `slot-echo`.
pub(crate) fn slot_echo_peer(args: &[String]) -> anyhow::Result<()> {
    let inbox = MailslotOptions::new().read_timeout(PEER_PATIENCE).create(arg(args, 1)?)?;
    let back = MailslotClient::open(arg(args, 0)?)?;
    out!("ready");
    let mut buf = [0u8; 64];
    for _ in 0..arg(args, 2)?.parse::<u32>()? {
        let n = inbox.read(&mut buf)?;
        back.write(&buf[..n])?;
    }
    Ok(())
}

/// The tour peer `socket-echo`.
pub(crate) fn socket_echo_peer(args: &[String]) -> anyhow::Result<()> {
    let conn = socket::HandOff::connect(arg(args, 0)?, PEER_PATIENCE)?;
    let listener: std::net::TcpListener = socket::receive_socket(&conn, Some(PEER_PATIENCE))?;
    let opts = SocketOptions::new().read_timeout(Some(PEER_PATIENCE));
    let (stream, _) = opts.accept(&listener)?;
    stream.set_nodelay(true)?;
    let mut framed = Framed::new(stream, 64);
    let mut buf = Vec::new();
    for _ in 0..arg(args, 1)?.parse::<u32>()? {
        framed.recv(&mut buf)?;
        framed.send(&buf)?;
    }
    Ok(())
}

/// The tour peer `msg-receiver`: doubles a send's wparam, sums a data
/// copy's bytes, runs until WM_QUIT.
pub(crate) fn message_receiver_peer(args: &[String]) -> anyhow::Result<()> {
    use switchboard::message::{Receiver, WM_COPYDATA};
    let rx = Receiver::create(arg(args, 0)?, |_, m| match m.msg {
        WM_COPYDATA => m.data.iter().map(|b| i64::from(*b)).sum(),
        _ => m.wparam as i64 * 2,
    })?;
    out!("ready");
    loop {
        let p = rx.get(PEER_PATIENCE)?;
        if p.msg == switchboard::message::WM_QUIT {
            return Ok(());
        }
        rx.dispatch(&p);
    }
}

/// The tour peer `clip-setter`: places text on the clipboard at `DIR`, exits.
pub(crate) fn clip_setter_peer(args: &[String]) -> anyhow::Result<()> {
    let clip = switchboard::clipboard::Clipboard::at(arg(args, 0)?)?;
    clip.open_timeout(None, PEER_PATIENCE)?;
    clip.empty()?;
    clip.set_text("set by a process that has exited")?;
    clip.close()?;
    Ok(())
}

/// The tour peer `clip-owner`: owns the clipboard at `DIR` with a delayed
/// format, renders it when asked, runs until WM_QUIT.
pub(crate) fn clip_owner_peer(args: &[String]) -> anyhow::Result<()> {
    use switchboard::clipboard::{Clipboard, WM_RENDERFORMAT};
    use switchboard::message::{Receiver, WM_QUIT};
    let clip = Clipboard::at(arg(args, 0)?)?;
    let render = clip.clone();
    let rx = Receiver::create(arg(args, 1)?, move |_, m| {
        if m.msg == WM_RENDERFORMAT {
            let _ = render.render(m.wparam as u32, b"rendered on demand");
        }
        0
    })?;
    let format = clip.register_format("switchboard tour")?;
    clip.open_timeout(Some(&rx), PEER_PATIENCE)?;
    clip.empty()?;
    clip.set_delayed(format)?;
    clip.close()?;
    out!("ready");
    loop {
        let p = rx.get(PEER_PATIENCE)?;
        if p.msg == WM_QUIT {
            return Ok(());
        }
        rx.dispatch(&p);
    }
}

/// The tour peer `dde-sheet`: serves a sheet with `R3C1 = R1C1*2` as
/// service `ARG0`, until its last conversation ends.
pub(crate) fn dde_sheet_peer(args: &[String]) -> anyhow::Result<()> {
    use switchboard::dde::sheet::{self, Sheet};
    let cells = std::rc::Rc::new(std::cell::RefCell::new(Sheet::default()));
    cells.borrow_mut().set("R3C1", "=R1C1*2")?;
    let dde = sheet::serve(arg(args, 0)?, "Sheet1", cells, |_, _| {})?;
    out!("ready");
    let (until, mut had) = (Instant::now() + PEER_PATIENCE, false);
    while Instant::now() < until {
        dde.pump(Duration::from_millis(100))?;
        had |= dde.conversations() > 0;
        if had && dde.conversations() == 0 {
            return Ok(());
        }
    }
    bail!("the sheet's clients never left")
}

/// The tour peer `dde-poker`: pokes R1C1 = 1..=N into the sheet `ARG0`.
pub(crate) fn dde_poker_peer(args: &[String]) -> anyhow::Result<()> {
    let dde = switchboard::dde::Dde::new(|_, _| switchboard::dde::Reply::NotProcessed)?;
    let conv = dde.connect(arg(args, 0)?, "Sheet1")?;
    for i in 1..=arg(args, 1)?.parse::<u32>()? {
        conv.poke_text("R1C1", &i.to_string(), PEER_PATIENCE)?;
    }
    Ok(())
}
