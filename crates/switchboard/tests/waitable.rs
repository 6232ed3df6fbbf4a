//! The `Waitable` contract, one conformance suite over every waitable kind
//! (mutex, semaphore, event): a single attempt, a timeout, a wake-up by
//! another thread, and wait-any / wait-all over a mix.

mod util;

use std::sync::mpsc;
use std::time::Duration;

use switchboard::sync::{wait_all, wait_any, Event, Mutex, Semaphore, WaitMany, WaitStatus, Waitable};
use util::Watchdog;

const LONG: Duration = Duration::from_secs(60);

/// An unsignalled object of one kind, and how to signal it (from any thread).
struct Unsignalled {
    kind: &'static str,
    obj: Box<dyn Waitable + Send + Sync>,
    signal: Box<dyn FnOnce() + Send>,
}

fn event() -> Unsignalled {
    let e = Event::create(None, true, false).unwrap();
    let other = Event::from_process(std::process::id(), e.handle()).unwrap();
    Unsignalled {
        kind: "event",
        obj: Box::new(e),
        signal: Box::new(move || {
            other.set();
        }),
    }
}

fn semaphore() -> Unsignalled {
    let s = Semaphore::create(None, 0, 1).unwrap();
    let other = Semaphore::from_process(std::process::id(), s.handle()).unwrap();
    Unsignalled {
        kind: "semaphore",
        obj: Box::new(s),
        signal: Box::new(move || {
            other.release(1).unwrap();
        }),
    }
}

/// A mutex owned by a helper thread until signalled.
fn mutex() -> Unsignalled {
    let m = Mutex::create(None, false).unwrap();
    let handle = m.handle();
    let (owned_tx, owned) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mine = Mutex::from_process(std::process::id(), handle).unwrap();
        assert_eq!(mine.wait(), WaitStatus::Acquired);
        owned_tx.send(()).unwrap();
        let _ = go_rx.recv();
        mine.release().unwrap();
    });
    owned.recv().unwrap();
    Unsignalled { kind: "mutex", obj: Box::new(m), signal: Box::new(move || go.send(()).unwrap()) }
}

const KINDS: [fn() -> Unsignalled; 3] = [event, semaphore, mutex];

#[test]
fn mapping_s14_an_unsignalled_object_times_out_and_a_single_attempt_does_not_wait() {
    for make in KINDS {
        let u = make();
        assert_eq!(u.obj.try_wait(), WaitStatus::TimedOut, "{}", u.kind);
        assert_eq!(u.obj.wait_timeout(Duration::from_millis(20)), WaitStatus::TimedOut, "{}", u.kind);
        (u.signal)();
        assert_eq!(u.obj.wait_timeout(LONG), WaitStatus::Acquired, "{} once signalled", u.kind);
    }
}

#[test]
fn mapping_s14_a_waiter_is_woken_by_a_signal_from_another_thread() {
    let _w = Watchdog::test();
    for make in KINDS {
        let u = make();
        let Unsignalled { kind, obj, signal } = u;
        std::thread::scope(|s| {
            let waiter = s.spawn(|| obj.wait_timeout(LONG));
            signal();
            assert_eq!(waiter.join().unwrap(), WaitStatus::Acquired, "{kind}");
        });
    }
}

#[test]
fn mapping_s19_wait_any_takes_the_signalled_one_and_wait_all_needs_every_one() {
    let _w = Watchdog::test();
    let mut kinds = Vec::new();
    let mut objs = Vec::new();
    let mut signals = Vec::new();
    for make in KINDS {
        let u = make();
        kinds.push(u.kind);
        objs.push(u.obj);
        signals.push(u.signal);
    }
    let refs: Vec<&dyn Waitable> = objs.iter().map(|o| o.as_ref() as &dyn Waitable).collect();
    assert_eq!(wait_any(&refs, Some(Duration::from_millis(20))).unwrap(), WaitMany::TimedOut);
    let last = refs.len() - 1;
    let last_signal = signals.pop().unwrap();
    last_signal();
    assert_eq!(wait_any(&refs, Some(LONG)).unwrap(), WaitMany::Signaled(last), "{}", kinds[last]);
    // wait_all times out while the others are not signalled.
    assert_eq!(wait_all(&refs, Some(Duration::from_millis(20))).unwrap(), WaitMany::TimedOut);
    for signal in signals {
        signal();
    }
    // The mutex wait_any took is this thread's (recursive): all three are
    // available to it now.
    assert_eq!(wait_all(&refs, Some(LONG)).unwrap(), WaitMany::Signaled(0));
}
