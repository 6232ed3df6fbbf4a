//! The call layer across processes: post vs send, re-entrant dispatch,
//! many calls in flight, deadlines with cancellation, faults, peer death.
//! The peer is this test binary re-executed, speaking over a `ShmLink`.

mod util;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard::call::{Calls, Fault, Handler};
use switchboard::link::{ShmLink, ShmLinkListener, ShmLinkOptions};
use switchboard::sync::{Event, WaitStatus};
use switchboard::{Code, Deadline, Error};
use util::{role, unique, Peer, Watchdog};

const LONG: Duration = Duration::from_secs(60);
const ADD: u32 = 1;
const NEST: u32 = 2;
const WAIT_FOR_EVENT: u32 = 3;
const FAIL: u32 = 4;
const NOTE: u32 = 5;
const NOTES: u32 = 6;

/// The handler both sides run.
#[derive(Default)]
struct Both {
    notes: Mutex<Vec<u8>>,
}

impl Handler for Both {
    fn call(&self, calls: &mut Calls, method: u32, args: &[u8]) -> Result<Vec<u8>, Fault> {
        match method {
            ADD => Ok(args.iter().map(|b| u32::from(*b)).sum::<u32>().to_le_bytes().to_vec()),
            // Calls back through the caller, who is blocked in its send.
            NEST => match args.first() {
                None | Some(0) => Ok(b"bottom".to_vec()),
                Some(&n) => {
                    let mut inner =
                        calls.send(NEST, &[n - 1], Some(LONG)).map_err(|e| Fault::new(e.win32(), e.to_string()))?;
                    inner.push(n);
                    Ok(inner)
                }
            },
            WAIT_FOR_EVENT => {
                let name = std::str::from_utf8(args).map_err(|_| Fault::new(87, "name"))?;
                let e = Event::open(name).map_err(|e| Fault::new(e.win32(), e.to_string()))?;
                match e.wait_timeout(LONG) {
                    WaitStatus::Acquired => Ok(b"late".to_vec()),
                    _ => Err(Fault::new(258, "the event was never set")),
                }
            }
            FAIL => Err(Fault::new(87, "bad argument")),
            NOTES => Ok(std::mem::take(&mut *self.notes.lock().unwrap())),
            _ => Err(Fault::new(1, "no such method")),
        }
    }

    fn post(&self, _: &mut Calls, method: u32, args: &[u8]) {
        if method == NOTE {
            self.notes.lock().unwrap().extend_from_slice(args);
        }
    }
}

/// Peer side: connect to the parent's link and serve until it goes.
fn serve_parent() -> ! {
    let link = ShmLink::connect(&util::args()[0], ShmLinkOptions::default()).unwrap();
    let mut calls = Calls::new(link).with_handler(Arc::new(Both::default()));
    let _ = calls.serve(Deadline::NEVER);
    util::done()
}

/// Parent side: a peer serving us, and our end.
fn start(test: &str) -> (Peer, Calls) {
    let name = unique("call");
    let listener = ShmLinkListener::bind(&name).unwrap();
    let peer = Peer::spawn(test, "server", &[&name]);
    let link = listener.accept(Some(LONG)).unwrap();
    (peer, Calls::new(link).with_handler(Arc::new(Both::default())))
}

#[test]
fn call_send_returns_the_reply_and_posts_arrive_in_order_without_one() {
    let _w = Watchdog::test();
    if role().is_some() {
        serve_parent();
    }
    let (mut peer, mut calls) = start("call_send_returns_the_reply_and_posts_arrive_in_order_without_one");
    assert_eq!(calls.send(ADD, &[1, 2, 3, 250], Some(LONG)).unwrap(), 256u32.to_le_bytes());
    for i in 0..100u8 {
        calls.post(NOTE, &[i]).unwrap();
    }
    let notes = calls.send(NOTES, &[], Some(LONG)).unwrap();
    assert_eq!(notes, (0..100u8).collect::<Vec<_>>(), "posts arrive whole, in order, before a later send");
    let e = calls.send(FAIL, &[], Some(LONG)).unwrap_err();
    assert!(matches!(&e, Error::Remote { code: Code::Win32(87), message } if message == "bad argument"), "{e}");
    assert_eq!(e.code(), Code::Win32(87));
    assert_eq!(e.win32(), 87);
    drop(calls);
    peer.finish();
}

#[test]
fn call_a_sender_blocked_in_its_send_serves_the_calls_made_back_to_it() {
    let _w = Watchdog::test();
    if role().is_some() {
        serve_parent();
    }
    let (mut peer, mut calls) = start("call_a_sender_blocked_in_its_send_serves_the_calls_made_back_to_it");
    // 20 levels, alternating between the two processes: each handler runs
    // on a thread that is itself blocked in a send.
    let reply = calls.send(NEST, &[20], Some(LONG)).unwrap();
    let mut want = b"bottom".to_vec();
    want.extend(1..=20u8);
    assert_eq!(reply, want);
    drop(calls);
    peer.finish();
}

#[test]
fn call_many_calls_in_flight_finish_in_any_order() {
    let _w = Watchdog::test();
    if role().is_some() {
        serve_parent();
    }
    let (mut peer, mut calls) = start("call_many_calls_in_flight_finish_in_any_order");
    let begun: Vec<_> = (0..200u8).map(|i| (i, calls.begin(ADD, &[i, 1]).unwrap())).collect();
    for (i, call) in begun.into_iter().rev() {
        let reply = calls.finish(call, LONG).unwrap();
        assert_eq!(reply, (u32::from(i) + 1).to_le_bytes());
    }
    drop(calls);
    peer.finish();
}

#[test]
fn call_a_deadline_cancels_the_call_and_its_late_reply_is_dropped() {
    let _w = Watchdog::test();
    if role().is_some() {
        serve_parent();
    }
    let (mut peer, mut calls) = start("call_a_deadline_cancels_the_call_and_its_late_reply_is_dropped");
    let name = unique("call-event");
    let go = Event::create(name.as_str(), true, false).unwrap();
    let e = calls.send(WAIT_FOR_EVENT, name.as_bytes(), Some(Duration::from_millis(50))).unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e}");
    assert_eq!(e.win32(), 121);
    go.set();
    // The late reply ("late") comes first on the link; it is not taken for
    // the next call's.
    assert_eq!(calls.send(ADD, &[40, 2], Some(LONG)).unwrap(), 42u32.to_le_bytes());
    // A call cancelled before its reply came.
    let call = calls.begin(ADD, &[1]).unwrap();
    calls.cancel(call).unwrap();
    assert_eq!(calls.send(ADD, &[2], Some(LONG)).unwrap(), 2u32.to_le_bytes());
    drop(calls);
    peer.finish();
}

#[test]
fn call_a_peer_killed_during_a_call_is_broken_pipe_not_a_hang() {
    let _w = Watchdog::test();
    if role().is_some() {
        serve_parent();
    }
    let (mut peer, mut calls) = start("call_a_peer_killed_during_a_call_is_broken_pipe_not_a_hang");
    let name = unique("call-never");
    let _never = Event::create(name.as_str(), true, false).unwrap();
    let pid = peer.pid;
    let killer = std::thread::spawn(move || {
        // Kill once the peer's handler is waiting for the event.
        util::eventually("the peer waits", || {
            std::fs::read_to_string(format!("/proc/{pid}/syscall"))
                .is_ok_and(|s| s.starts_with("202 ") || s.starts_with("449 "))
        });
        switchboard_sys::process::kill9(pid).unwrap();
    });
    let e = calls.send(WAIT_FOR_EVENT, name.as_bytes(), Deadline::NEVER).unwrap_err();
    assert!(matches!(e, Error::BrokenPipe), "{e}");
    killer.join().unwrap();
    let _ = peer.wait();
}

/// The same calls over a message-mode named pipe as the link.
#[test]
fn call_runs_over_a_message_mode_named_pipe_link() {
    use switchboard::pipe::named::{PipeClient, PipeOptions, PipeType, ReadMode};
    let _w = Watchdog::test();
    let name = unique("call-pipe");
    let opts = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message);
    let server = opts.create(&name).unwrap();
    let client = PipeClient::open(&name).unwrap().into_link().unwrap();
    server.connect().unwrap();
    let server = server.into_link().unwrap();
    let served =
        std::thread::spawn(move || Calls::new(server).with_handler(Arc::new(Both::default())).serve(Deadline::NEVER));
    let mut calls = Calls::new(client).with_handler(Arc::new(Both::default()));
    let reply = calls.send(NEST, &[5], Some(LONG)).unwrap();
    assert_eq!(reply, [b'b', b'o', b't', b't', b'o', b'm', 1, 2, 3, 4, 5]);
    drop(calls);
    assert!(matches!(served.join().unwrap(), Err(Error::BrokenPipe)));
}
