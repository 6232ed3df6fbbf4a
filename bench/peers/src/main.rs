//! switchboard beside other Rust IPC crates (ipc-channel, interprocess,
//! iceoryx2, tarpc), in one run: a cross-process
//! ping-pong of 64-byte messages, parent pinned to CPU 0 and child to CPU 1;
//! a 64-byte RPC echo call (switchboard RPC over `local:` and `unix:`,
//! tarpc over a Unix socket); then zero-copy samples (switchboard's loans, iceoryx2's slices) of 64 B,
//! 1 MiB and 16 MiB, untouched and written in full.
//!
//! ```sh
//! cd bench/peers && cargo run --release            # default 20 000 rounds
//! cd bench/peers && cargo run --release -- 100000  # more rounds
//! ```

mod rpc;

use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::ipc::Service as IoxIpc;
use interprocess::local_socket::{prelude::*, GenericNamespaced, ListenerOptions, Stream};
use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer};
use switchboard::link::{Link, ShmLink, ShmLinkListener, ShmLinkOptions, WaitMode};

const PAYLOAD: usize = 64;

static PINNED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// One side of a ping-pong.
trait Side {
    fn send(&mut self, msg: &[u8]);
    fn recv(&mut self) -> Vec<u8>;
}

struct Shm(ShmLink);
impl Side for Shm {
    fn send(&mut self, msg: &[u8]) {
        self.0.send(msg).unwrap();
    }
    fn recv(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.0.recv(&mut buf).unwrap();
        buf
    }
}

struct IpcChannel(IpcBytesSender, IpcBytesReceiver);
impl Side for IpcChannel {
    fn send(&mut self, msg: &[u8]) {
        self.0.send(msg).unwrap();
    }
    fn recv(&mut self) -> Vec<u8> {
        self.1.recv().unwrap()
    }
}

struct LocalSocket(Stream);
impl Side for LocalSocket {
    fn send(&mut self, msg: &[u8]) {
        self.0.write_all(msg).unwrap();
    }
    fn recv(&mut self) -> Vec<u8> {
        let mut buf = vec![0; PAYLOAD];
        self.0.read_exact(&mut buf).unwrap();
        buf
    }
}

type Msg = [u8; PAYLOAD];

/// Returns once the service we publish on has a subscriber (a sample
/// sent before that would be lost).
fn await_subscriber(subscribers: impl Fn() -> usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while subscribers() == 0 {
        assert!(Instant::now() < deadline, "iceoryx2: the peer never subscribed");
        std::thread::yield_now();
    }
}

/// iceoryx2 publish-subscribe: one service each way, both sides busy-poll
/// `receive` (iceoryx2's own benchmark does the same).
struct Iceoryx2 {
    _node: Node<IoxIpc>,
    tx: Publisher<IoxIpc, Msg, ()>,
    rx: Subscriber<IoxIpc, Msg, ()>,
}

impl Iceoryx2 {
    /// Publishes on `out`, subscribes to `back`; returns once a subscriber
    /// of `out` exists (a sample sent before that would be lost).
    fn new(out: &str, back: &str) -> Iceoryx2 {
        set_log_level(LogLevel::Error);
        let node = NodeBuilder::new().create::<IoxIpc>().unwrap();
        let service = |name: &str| {
            node.service_builder(&name.try_into().unwrap()).publish_subscribe::<Msg>().open_or_create().unwrap()
        };
        let (out_service, back_service) = (service(out), service(back));
        let tx = out_service.publisher_builder().create().unwrap();
        let rx = back_service.subscriber_builder().create().unwrap();
        await_subscriber(|| out_service.dynamic_config().number_of_subscribers());
        Iceoryx2 { _node: node, tx, rx }
    }
}

impl Side for Iceoryx2 {
    fn send(&mut self, msg: &[u8]) {
        let sample = self.tx.loan_uninit().unwrap();
        sample.write_payload(msg.try_into().unwrap()).send().unwrap();
    }
    fn recv(&mut self) -> Vec<u8> {
        loop {
            if let Some(sample) = self.rx.receive().unwrap() {
                return sample.payload().to_vec();
            }
            std::hint::spin_loop();
        }
    }
}

/// Zero-copy sizes.
const ZERO_COPY_SIZES: [usize; 3] = [64, 1 << 20, 16 << 20];

/// One side of a zero-copy ping-pong: send a sample of `len` bytes
/// (written in full when `touch`), receive one and return its length.
trait Loaner {
    fn send(&mut self, len: usize, touch: bool);
    fn recv(&mut self) -> usize;
}

/// switchboard's loans: each sample its own sealed memfd.
struct ShmLoans(ShmLink);
impl Loaner for ShmLoans {
    fn send(&mut self, len: usize, touch: bool) {
        let mut loan = self.0.loan(len).unwrap();
        if touch {
            loan.prefault().unwrap();
            loan.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        }
        self.0.send_loan(loan).unwrap();
    }
    fn recv(&mut self) -> usize {
        let sample = self.0.recv_borrowed(switchboard::time::Deadline::NEVER).unwrap();
        assert!(sample.is_shared());
        sample.len()
    }
}

/// Bytes whose sample can be sent without writing them (`MaybeUninit`
/// is iceoryx2's own way to loan memory it need not initialise; written
/// as uninitialised, the compiler drops the stores).
type Byte = MaybeUninit<u8>;

/// iceoryx2 slices from its publisher's pool (recycled), one service
/// each way, both sides busy-polling `receive`.
struct IoxSlices {
    _node: Node<IoxIpc>,
    tx: Publisher<IoxIpc, [Byte], ()>,
    rx: Subscriber<IoxIpc, [Byte], ()>,
}

impl IoxSlices {
    fn new(out: &str, back: &str, max: usize) -> IoxSlices {
        set_log_level(LogLevel::Error);
        let node = NodeBuilder::new().create::<IoxIpc>().unwrap();
        let service = |name: &str| {
            node.service_builder(&name.try_into().unwrap())
                .publish_subscribe::<[Byte]>()
                .history_size(0)
                .subscriber_max_buffer_size(2)
                .subscriber_max_borrowed_samples(2)
                .open_or_create()
                .unwrap()
        };
        let (out_service, back_service) = (service(out), service(back));
        let tx = out_service.publisher_builder().initial_max_slice_len(max).max_loaned_samples(2).create().unwrap();
        let rx = back_service.subscriber_builder().create().unwrap();
        await_subscriber(|| out_service.dynamic_config().number_of_subscribers());
        IoxSlices { _node: node, tx, rx }
    }
}

impl Loaner for IoxSlices {
    fn send(&mut self, len: usize, touch: bool) {
        let sample = self.tx.loan_slice_uninit(len).unwrap();
        let sample = if touch {
            sample.write_from_fn(|i| MaybeUninit::new(i as u8))
        } else {
            sample.write_from_fn(|_| MaybeUninit::uninit())
        };
        sample.send().unwrap();
    }
    fn recv(&mut self) -> usize {
        loop {
            if let Some(sample) = self.rx.receive().unwrap() {
                return sample.payload().len();
            }
            std::hint::spin_loop();
        }
    }
}

fn spawn(contender: &str, rendezvous: &str, rounds: u32) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    if rpc::CONTENDERS.contains(&contender) {
        // Its stdout says when it listens.
        cmd.stdout(std::process::Stdio::piped());
    }
    cmd
        // The child inherits our affinity (CPU 0 only), so it cannot work out
        // by itself how many CPUs there are: tell it whether to pin.
        .args([
            "child",
            contender,
            rendezvous,
            &rounds.to_string(),
            if PINNED.get() == Some(&true) { "1" } else { "0" },
        ])
        .spawn()
        .unwrap()
}

fn mode(contender: &str) -> WaitMode {
    match contender {
        "switchboard_shm_link_busy" => WaitMode::BusyPoll,
        "switchboard_shm_link_blocking" => WaitMode::Blocking,
        _ => WaitMode::default(),
    }
}

/// The parent's side of `contender`, and the child.
fn parent_side(contender: &str, rounds: u32) -> (Box<dyn Side>, Child) {
    let name = format!("peerbench-{}-{contender}", std::process::id());
    match contender {
        c if c.starts_with("switchboard") => {
            let l = ShmLinkListener::bind(&name).unwrap();
            let child = spawn(c, &name, rounds);
            let mut link = l.accept(Some(Duration::from_secs(30))).unwrap();
            link.set_wait_mode(mode(c));
            (Box::new(Shm(link)), child)
        }
        "ipc_channel" => {
            let (server, server_name) = IpcOneShotServer::<(IpcBytesSender, IpcBytesReceiver)>::new().unwrap();
            let child = spawn(contender, &server_name, rounds);
            let (_, (to_child, from_child)) = server.accept().unwrap();
            (Box::new(IpcChannel(to_child, from_child)), child)
        }
        "interprocess" => {
            let l = ListenerOptions::new()
                .name(name.as_str().to_ns_name::<GenericNamespaced>().unwrap())
                .create_sync()
                .unwrap();
            let child = spawn(contender, &name, rounds);
            (Box::new(LocalSocket(l.accept().unwrap())), child)
        }
        "iceoryx2" => {
            let child = spawn(contender, &name, rounds);
            (Box::new(Iceoryx2::new(&format!("{name}/ping"), &format!("{name}/pong"))), child)
        }
        other => panic!("unknown contender {other}"),
    }
}

fn child_side(contender: &str, rendezvous: &str) -> Box<dyn Side> {
    match contender {
        c if c.starts_with("switchboard") => {
            let opts = ShmLinkOptions { wait: mode(c), ..ShmLinkOptions::default() };
            Box::new(Shm(ShmLink::connect(rendezvous, opts).unwrap()))
        }
        "ipc_channel" => {
            let (to_child, from_parent) = ipc::bytes_channel().unwrap();
            let (to_parent, from_child) = ipc::bytes_channel().unwrap();
            let server = ipc::IpcSender::connect(rendezvous.to_owned()).unwrap();
            server.send((to_child, from_child)).unwrap();
            Box::new(IpcChannel(to_parent, from_parent))
        }
        "interprocess" => {
            let name = rendezvous.to_ns_name::<GenericNamespaced>().unwrap();
            Box::new(LocalSocket(Stream::connect(name).unwrap()))
        }
        "iceoryx2" => Box::new(Iceoryx2::new(&format!("{rendezvous}/pong"), &format!("{rendezvous}/ping"))),
        other => panic!("unknown contender {other}"),
    }
}

/// `contender` is `NAME/SIZE/touched|untouched` for zero-copy rows.
fn zero_copy_side(contender: &str, rendezvous: &str, parent: bool) -> Box<dyn Loaner> {
    let mut parts = contender.split('/');
    let (name, max) = (parts.next().unwrap(), parts.next().unwrap().parse::<usize>().unwrap());
    let (out, back) = (format!("{rendezvous}/ping"), format!("{rendezvous}/pong"));
    match (name, parent) {
        ("iceoryx2_slices", true) => Box::new(IoxSlices::new(&out, &back, max)),
        ("iceoryx2_slices", false) => Box::new(IoxSlices::new(&back, &out, max)),
        ("switchboard_shm_loan", false) => {
            Box::new(ShmLoans(ShmLink::connect(rendezvous, ShmLinkOptions::default()).unwrap()))
        }
        (other, _) => panic!("unknown zero-copy contender {other}"),
    }
}

fn measure_zero_copy(contender: &str, rounds: u32) -> (Duration, Duration) {
    let mut parts = contender.split('/');
    let (name, len) = (parts.next().unwrap(), parts.next().unwrap().parse::<usize>().unwrap());
    let touch = parts.next() == Some("touched");
    let rendezvous = format!("peerbench-{}-{}-{len}", std::process::id(), name);
    let warm = rounds / 10;
    let (mut side, mut child): (Box<dyn Loaner>, Child) = if name.starts_with("switchboard") {
        let l = ShmLinkListener::bind(&rendezvous).unwrap();
        let child = spawn(contender, &rendezvous, warm + rounds);
        (Box::new(ShmLoans(l.accept(Some(Duration::from_secs(30))).unwrap())), child)
    } else {
        let child = spawn(contender, &rendezvous, warm + rounds);
        (zero_copy_side(contender, &rendezvous, true), child)
    };
    timed(warm, rounds, &mut child, || {
        side.send(len, touch);
        assert_eq!(side.recv(), len);
    })
}

/// Times `round` after `warm` untimed ones, waits for the child, and
/// returns the p50 and p99.
fn timed(warm: u32, rounds: u32, child: &mut Child, mut round: impl FnMut()) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(rounds as usize);
    for i in 0..warm + rounds {
        let t = Instant::now();
        round();
        if i >= warm {
            samples.push(t.elapsed());
        }
    }
    assert!(child.wait().unwrap().success());
    samples.sort_unstable();
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn measure(contender: &str, rounds: u32) -> (Duration, Duration) {
    let warm = rounds / 10;
    let (mut side, mut child) = parent_side(contender, warm + rounds);
    let msg = [0x5a; PAYLOAD];
    timed(warm, rounds, &mut child, || {
        side.send(&msg);
        assert_eq!(side.recv(), msg);
    })
}

/// Prints `(contender, p50, p99)` rows, each p50 also as a multiple of
/// row `base`'s (named `base_name`).
fn print_table(rows: &[(&str, Duration, Duration)], base: usize, base_name: &str) {
    let base_p50 = rows[base].1.as_nanos() as f64;
    println!("{:<32} {:>10} {:>10} {:>22}", "contender", "p50 µs", "p99 µs", format!("p50 ÷ {base_name} p50"));
    for (c, p50, p99) in rows {
        println!(
            "{c:<32} {:>10.2} {:>10.2} {:>22.1}",
            p50.as_nanos() as f64 / 1e3,
            p99.as_nanos() as f64 / 1e3,
            p50.as_nanos() as f64 / base_p50
        );
    }
}

fn measure_rpc(contender: &str, rounds: u32) -> (Duration, Duration) {
    let rendezvous = format!("peerbench-{}-{contender}", std::process::id());
    let mut child = spawn(contender, &rendezvous, 0);
    let mut caller = rpc::Caller::connect(contender, &rendezvous, &mut child);
    let msg = [0x5a; PAYLOAD];
    let warm = rounds / 10;
    let mut samples = Vec::with_capacity(rounds as usize);
    for i in 0..warm + rounds {
        let t = Instant::now();
        let got = caller.call(&msg);
        if i >= warm {
            samples.push(t.elapsed());
        }
        assert_eq!(&got[..], &msg[..]);
    }
    drop(caller);
    assert!(child.wait().unwrap().success());
    samples.sort_unstable();
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        if args.get(5).map(String::as_str) == Some("1") {
            switchboard::raw::pin_to_cpu(1).unwrap();
        }
        if rpc::CONTENDERS.contains(&args[2].as_str()) {
            return rpc::serve(&args[2], &args[3]);
        }
        let rounds = args[4].parse::<u32>().unwrap();
        if args[2].contains('/') {
            let touch = args[2].ends_with("/touched");
            let mut side = zero_copy_side(&args[2], &args[3], false);
            for _ in 0..rounds {
                let len = side.recv();
                side.send(len, touch);
            }
            return;
        }
        let mut side = child_side(&args[2], &args[3]);
        for _ in 0..rounds {
            let m = side.recv();
            side.send(&m);
        }
        return;
    }
    let pinned = switchboard::raw::cpu_count() >= 2 && switchboard::raw::pin_to_cpu(0).is_ok();
    PINNED.set(pinned).unwrap();
    let rounds: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let contenders = [
        "switchboard_shm_link_busy",
        "switchboard_shm_link_adaptive",
        "switchboard_shm_link_blocking",
        "ipc_channel",
        "interprocess",
        "iceoryx2",
    ];
    let results: Vec<(&str, Duration, Duration)> = contenders
        .iter()
        .map(|c| {
            let (p50, p99) = measure(c, rounds);
            (*c, p50, p99)
        })
        .collect();
    println!("{PAYLOAD} B round trip, {rounds} rounds, pinned: {pinned}");
    print_table(&results, 1, "sb adaptive");
    println!();
    println!("{PAYLOAD} B RPC echo call, {rounds} rounds");
    let calls: Vec<(&str, Duration, Duration)> = rpc::CONTENDERS
        .iter()
        .map(|c| {
            let (p50, p99) = measure_rpc(c, rounds);
            (*c, p50, p99)
        })
        .collect();
    print_table(&calls, 0, "sb rpc local");
    // Large samples take longer: fewer rounds, never under 200.
    let zc_rounds = (rounds / 10).max(200);
    println!();
    println!(
        "zero-copy samples, {zc_rounds} rounds (untouched: handed over as loaned; touched: every byte written first)"
    );
    println!("{:<40} {:>10} {:>10}", "contender/size/how", "p50 µs", "p99 µs");
    for how in ["untouched", "touched"] {
        for name in ["switchboard_shm_loan", "iceoryx2_slices"] {
            for size in ZERO_COPY_SIZES {
                let contender = format!("{name}/{size}/{how}");
                let (p50, p99) = measure_zero_copy(&contender, zc_rounds);
                println!("{contender:<40} {:>10.2} {:>10.2}", p50.as_nanos() as f64 / 1e3, p99.as_nanos() as f64 / 1e3);
            }
        }
    }
}
