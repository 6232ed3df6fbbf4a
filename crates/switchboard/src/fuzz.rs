//! Entry points for the fuzz targets (`fuzz/`) and their corpus replay
//! (`tests/fuzz_corpus.rs`): every decoder of bytes a peer controls, and
//! every shared segment driven while a "peer" rewrites it. Not part of the
//! API; each entry takes arbitrary bytes and must return — never panic,
//! hang or spin — whatever they are. Properties that must hold (a decoded
//! message encodes back to the same bytes) are asserted.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use switchboard_shm::duplex::Duplex;
use switchboard_shm::mailslot::{Origin, Queue};
use switchboard_shm::peer::Peer;
use switchboard_shm::pipe::{Channel, Framing};
use switchboard_shm::port::{Packet, PortQueue};
use switchboard_sys::OwnedFd;

use crate::rendezvous::{wire, Family};

/// A rendezvous reply as a client reads it: byte 0 picks the family the
/// client expects, the rest is the reply; a granted object reply's body is
/// decoded as the object's description.
pub fn rendezvous_reply(data: &[u8]) {
    let Some((&pick, reply)) = data.split_first() else { return };
    let family = Family::ALL[usize::from(pick) % Family::ALL.len()];
    if let Ok(r) = wire::decode(family, reply) {
        assert_eq!(wire::encode(family, r.status, r.body), reply, "a decoded reply encodes back the same");
        if family == Family::OBJECT && r.status == wire::Status::Granted {
            let _ = crate::namespace::wire::decode(r.body);
        }
    }
}

/// A mailslot broadcast datagram as a server receives it.
pub fn mailslot_datagram(data: &[u8]) {
    let mut seen = crate::mailslot::net::Seen::default();
    let name = crate::mailslot::net::decode(data).map_or("fuzz", |d| d.name).to_lowercase();
    crate::mailslot::net::check_round_trip(data);
    let _ = crate::mailslot::net::judge(data, &name, &mut seen);
}

/// A call-layer message as the receiving side reads it.
pub fn call_message(data: &[u8]) {
    crate::call::check_decode(data);
}

/// An RPC frame's payload (after its length prefix) as a server or client
/// reads it: a frame that decodes encodes back to bytes that decode to the
/// same frame; the body's extent found by its markers agrees with a parse.
pub fn rpc_frame(data: &[u8]) {
    use crate::rpc::wire::{Frame, DEFAULT_MAX_FRAME, PREFIX};
    crate::rpc::wire::check_extent(data);
    if let Ok(frame) = Frame::decode(data) {
        let bytes = frame.encode(DEFAULT_MAX_FRAME).expect("a frame that decoded fits the maximum");
        assert_eq!(Frame::decode(&bytes[PREFIX..]).ok().as_ref(), Some(&frame), "a decoded frame round-trips");
        let _ = crate::rpc::wire::from_body::<crate::rpc::wire::FaultBody>(frame.body);
    }
}

/// A shared segment of one kind, driven by a program in `data`: byte 0
/// picks the kind (pipe channel, link duplex, mailslot queue, completion
/// port), and each following instruction either writes bytes anywhere in
/// the segment (as a hostile peer may, between any two calls) or makes one
/// call with a short deadline. A lock word set to a live thread makes a
/// call wait out the stall grace, shortened here to a millisecond (the same
/// path, a thousandth of the time).
pub fn segment(data: &[u8]) {
    let Some((&pick, program)) = data.split_first() else { return };
    switchboard_shm::peer::set_stall_grace(Duration::from_millis(1));
    match pick % 4 {
        0 => pipe_channel(program),
        1 => link_duplex(program),
        2 => mailslot_queue(program),
        _ => completion_port(program),
    }
}

/// A deadline a fuzzed call may not pass by much.
fn soon() -> Option<Instant> {
    Some(Instant::now() + Duration::from_millis(1))
}

/// The instructions of a program: `Write(offset, bytes)` or `Call(n)`.
enum Step<'a> {
    Write(u64, &'a [u8]),
    Call(u8),
}

/// Splits a program into steps: a byte below 0x80 starts a write of
/// `1 + byte % 8` bytes at the little-endian u16 offset after it; any
/// other byte is a call.
fn steps(mut program: &[u8]) -> impl Iterator<Item = Step<'_>> {
    std::iter::from_fn(move || {
        let (&op, rest) = program.split_first()?;
        program = rest;
        if op >= 0x80 {
            return Some(Step::Call(op - 0x80));
        }
        let (&[lo, hi], rest) = program.split_first_chunk::<2>()?;
        let len = (1 + usize::from(op % 8)).min(rest.len());
        let (bytes, rest) = rest.split_at(len);
        program = rest;
        Some(Step::Write(u64::from(u16::from_le_bytes([lo, hi])), bytes))
    })
}

/// Runs `program` over the segment behind `fd`: writes go through the
/// descriptor (the pages every mapping shows), calls to `call`.
fn run(fd: &OwnedFd, program: &[u8], mut call: impl FnMut(u8)) {
    let Ok(file) = fd.try_clone().map(File::from) else { return };
    let len = file.metadata().map_or(0, |m| m.len());
    for step in steps(program) {
        match step {
            Step::Write(at, bytes) if at < len => {
                let _ = file.write_at(&bytes[..bytes.len().min((len - at) as usize)], at);
            }
            Step::Write(..) => {}
            Step::Call(n) => call(n),
        }
    }
}

fn pipe_channel(program: &[u8]) {
    let Ok((fd, server)) = Channel::create(4096, 0) else { return };
    let Ok(client) = Channel::open(&fd, 1) else { return };
    let mut buf = [0u8; 300];
    run(&fd, program, |n| {
        let (end, other) = if n & 1 == 0 { (&server, &client) } else { (&client, &server) };
        let framing = if n & 2 == 0 { Framing::Message } else { Framing::Bytes };
        let _ = match (n >> 2) % 6 {
            0 => end.write(&[n; 254][..usize::from(n) * 2], soon(), Peer::PRESENT).map(drop),
            1 => end.try_write(b"hello", Peer::PRESENT).map(drop),
            2 => end.read(&mut buf, framing, soon(), Peer::PRESENT).map(drop),
            3 => end.peek(&mut buf, framing).map(drop),
            4 => {
                let _ = end.has_data();
                other.read(&mut buf[..3], framing, soon(), Peer::PRESENT).map(drop)
            }
            _ => {
                end.disconnect();
                Ok(())
            }
        };
    });
    server.close();
    client.close();
}

fn link_duplex(program: &[u8]) {
    let Ok((fd, mine)) = Duplex::create(4096) else { return };
    let mut producers = [Default::default(), Default::default()];
    let mut consumers = [Default::default(), Default::default()];
    let mut out = Vec::new();
    run(&fd, program, |n| {
        // A peer's view is opened again after any write: the layout checks
        // on open see what was written.
        let theirs = if n & 4 == 0 { None } else { Duplex::open(&fd).ok() };
        let d = theirs.as_ref().unwrap_or(&mine);
        let which = usize::from(n & 1);
        let ring = d.ring(which);
        let _ = if n & 2 == 0 {
            ring.try_push(&mut producers[which], &[n; 40][..usize::from(n % 40)], n & 8 != 0).map(drop)
        } else {
            out.clear();
            ring.try_pop(&mut consumers[which], &mut out).map(drop)
        };
        let _ = (ring.has_data(&consumers[which]), ring.has_room(&producers[which], 64));
    });
}

fn mailslot_queue(program: &[u8]) {
    let Ok((fd, server)) = Queue::create(64, 1024) else { return };
    let mut reader = server.reader();
    let mut buf = [0u8; 64];
    run(&fd, program, |n| {
        let writer = if n & 1 == 0 { None } else { Queue::open(&fd).ok() };
        let q = writer.as_ref().unwrap_or(&server);
        let _ = match (n >> 1) % 4 {
            0 => q.push(Origin::Local, &[n; 70][..usize::from(n % 70)], Some(Duration::from_millis(1)), Peer::PRESENT),
            // As the server reads: a message longer than its buffer stays.
            1 => match q.next(&reader) {
                Ok(Some(next)) if next.len <= buf.len() => {
                    q.take(&mut reader, &next, &mut buf);
                    Ok(())
                }
                other => other.map(drop),
            },
            2 => q.count(&reader).map(drop),
            _ => {
                let _ = (q.net_counts(), q.is_closed(), q.max_message());
                Ok(())
            }
        };
    });
    server.close();
}

fn completion_port(program: &[u8]) {
    let Ok((fd, server)) = PortQueue::create(8, 1) else { return };
    let me = switchboard_sys::process::tid();
    let mut out = Vec::new();
    run(&fd, program, |n| {
        let client = if n & 1 == 0 { None } else { PortQueue::open(&fd).ok() };
        let q = client.as_ref().unwrap_or(&server);
        let _ = match (n >> 1) % 4 {
            0 => q.post(Packet { bytes: n.into(), key: 1, overlapped: 2 }, false, Peer::PRESENT),
            1 => q.get(me, soon(), Peer::PRESENT).map(drop),
            2 => {
                out.clear();
                q.drain(me, 4, &mut out);
                Ok(())
            }
            _ => {
                let _ = (q.queued(), q.waiting(), q.concurrency(), q.is_closed());
                Ok(())
            }
        };
    });
    server.close();
}
