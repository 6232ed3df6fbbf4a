//! Spec 07, S01–S10 and S12 — DDE, across processes: the servers (and in
//! S12 the poker) are peers re-executed from this test binary.

mod util;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use switchboard::clipboard::CF_TEXT;
use switchboard::dde::sheet::{self, Sheet};
use switchboard::dde::{dmlerr, Conversation, Dde, Enable, Event, Reply, TxnId};
use switchboard::Error;
use util::{args, done, role, say, unique, Peer, Watchdog};

const LONG: Duration = Duration::from_secs(60);
const NOBODY: u32 = 65534;

fn dml<T: std::fmt::Debug>(r: switchboard::Result<T>) -> u16 {
    match r {
        Err(Error::Dde(code)) => code,
        other => panic!("expected a DDE error, got {other:?}"),
    }
}

/// Peer side: a DDE server of `args()[0]` that accepts topics `args()[1..]`.
/// Items are values poked into it (any topic); `log` lists the pokes in
/// the order they ran; `busy` answers busy, `block` blocks. Executes:
/// `quit`, `bye` (disconnect this conversation), `hold` (block pokes),
/// `release` (stop blocking and replay), `publish ITEM N` (set ITEM to
/// 1..=N, posting each). It says `disconnect died=…` for each end.
fn server_peer() -> ! {
    let a = args();
    let (service, topics) = (a[0].clone(), a[1..].to_vec());
    let values: RefCell<HashMap<String, Vec<u8>>> = RefCell::default();
    let log: RefCell<Vec<String>> = RefCell::default();
    let (quit, holding) = (Rc::new(Cell::new(false)), Cell::new(false));
    let quit_flag = quit.clone();
    let dde = Dde::new(move |dde, e| match *e {
        Event::Connect { topic, .. } if topics.iter().any(|t| t.eq_ignore_ascii_case(topic)) => Reply::Ack,
        Event::WildConnect { .. } => Reply::Pairs(topics.iter().map(|t| (service.clone(), t.clone())).collect()),
        Event::Request { item, .. } | Event::AdviseRequest { item, .. } => match item.to_lowercase().as_str() {
            // (the `dde` here is the server's own instance)
            "busy" => Reply::Busy,
            "block" => {
                say("blocked");
                Reply::Block
            }
            "log" => Reply::Data(log.borrow().join(",").into_bytes()),
            // `ask SERVICE ITEM`: requests ITEM from SERVICE (topic t) and
            // answers with it: a transaction made inside a transaction.
            other if other.starts_with("ask ") => {
                let words: Vec<&str> = other.split(' ').collect();
                let back = dde.connect(words[1], "t").unwrap();
                Reply::Data(back.request(words[2], CF_TEXT, LONG).unwrap())
            }
            other => values.borrow().get(other).cloned().map_or(Reply::NotProcessed, Reply::Data),
        },
        Event::Poke { item, .. } if item.eq_ignore_ascii_case("busy") => Reply::Busy,
        Event::Poke { .. } if holding.get() => Reply::Block,
        Event::Poke { topic, item, data, .. } => {
            values.borrow_mut().insert(item.to_lowercase(), data.to_vec());
            log.borrow_mut().push(String::from_utf8_lossy(data).into_owned());
            dde.post_advise(topic, item);
            Reply::Ack
        }
        Event::Execute { conv, topic, command } => {
            let command = String::from_utf8_lossy(command).into_owned();
            let words: Vec<&str> = command.split_whitespace().collect();
            match words.as_slice() {
                ["quit"] => quit_flag.set(true),
                ["bye"] => dde.disconnect(conv).unwrap(),
                ["hold"] => holding.set(true),
                ["release"] => {
                    holding.set(false);
                    dde.enable_callback(None, Enable::All).unwrap();
                }
                ["publish", item, n] => {
                    for i in 1..=n.parse::<u32>().unwrap() {
                        values.borrow_mut().insert(item.to_lowercase(), i.to_string().into_bytes());
                        dde.post_advise(topic, item);
                    }
                }
                _ => return Reply::NotProcessed,
            }
            Reply::Ack
        }
        Event::AdviseStart { .. } => Reply::Ack,
        Event::Disconnect { died, .. } => {
            say(&format!("disconnect died={died}"));
            Reply::Ack
        }
        _ => Reply::NotProcessed,
    })
    .unwrap();
    dde.register(&a[0]).unwrap();
    say("ready");
    while !quit.get() {
        dde.pump(Duration::from_millis(200)).unwrap();
    }
    done()
}

/// Parent side: a [`server_peer`] of `service` with `topics`, registered.
fn server(test: &str, service: &str, topics: &[&str]) -> Peer {
    let mut a = vec![service];
    a.extend_from_slice(topics);
    let mut peer = Peer::spawn(test, "server", &a);
    peer.expect("ready");
    peer
}

/// A client instance that records what its callback is told.
fn client() -> (Dde, Rc<RefCell<Vec<String>>>) {
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    let log = seen.clone();
    let dde = Dde::new(move |_, e| {
        let line = match e {
            Event::AdviseData { item, data, .. } => {
                format!("data {item} {}", data.map_or("-".into(), |d| String::from_utf8_lossy(d).into_owned()))
            }
            Event::Disconnect { died, .. } => format!("disconnect died={died}"),
            Event::Complete { txn, outcome, .. } => match outcome {
                Ok(d) => format!("complete {} {}", txn.0, String::from_utf8_lossy(d)),
                Err(Error::Dde(code)) => format!("complete {} err {code:#x}", txn.0),
                Err(e) => format!("complete {} {e}", txn.0),
            },
            _ => return Reply::NotProcessed,
        };
        log.borrow_mut().push(line);
        Reply::Ack
    })
    .unwrap();
    (dde, seen)
}

/// Runs `dde`'s loop until `cond` holds.
fn pump_until(dde: &Dde, what: &str, cond: impl Fn() -> bool) {
    let until = Instant::now() + LONG;
    while !cond() {
        assert!(Instant::now() < until, "never happened: {what}");
        dde.pump(Duration::from_millis(50)).unwrap();
    }
}

fn quit(conv: &Conversation, mut peer: Peer) {
    conv.execute("quit", LONG).unwrap();
    peer.finish();
}

fn peer_role() {
    match role().as_deref() {
        Some("server") => server_peer(),
        Some("sheet") => sheet_peer(),
        Some("poker") => poker_peer(),
        Some("churner") => churner_peer(),
        Some(_) | None => {}
    }
}

#[test]
fn dde_s01_service_topic_item_names_are_case_insensitive_and_bounded() {
    let _w = Watchdog::test();
    peer_role();
    let service = unique("S01-Service");
    let peer = server("dde_s01_service_topic_item_names_are_case_insensitive_and_bounded", &service, &["Topic"]);
    let (dde, _) = client();
    let conv = dde.connect(&service.to_uppercase(), "tOPIC").unwrap();
    conv.poke_text("Item", "v", LONG).unwrap();
    assert_eq!(conv.request_text("ITEM", LONG).unwrap(), "v");
    let long = "x".repeat(256);
    assert!(matches!(dde.connect(&long, "Topic"), Err(Error::InvalidName { .. })));
    assert!(matches!(dde.connect(&service, ""), Err(Error::InvalidName { .. })));
    assert!(matches!(conv.request(&long, CF_TEXT, LONG), Err(Error::InvalidName { .. })));
    assert!(matches!(dde.register(""), Err(Error::InvalidName { .. })));
    let max = "y".repeat(255);
    dde.register(&max).unwrap();
    assert!(matches!(dde.register(&max.to_uppercase()), Err(Error::AlreadyExists(_))));
    quit(&conv, peer);
}

#[test]
fn dde_s02_every_server_is_offered_and_none_accepting_is_no_conversation() {
    let _w = Watchdog::test();
    peer_role();
    let test = "dde_s02_every_server_is_offered_and_none_accepting_is_no_conversation";
    let service = unique("s02");
    let a = server(test, &service, &["alpha"]);
    let b = server(test, &service, &["beta"]);
    let (dde, _) = client();
    // Each server is offered; the one that accepts the topic answers.
    let to_b = dde.connect(&service, "beta").unwrap();
    assert_eq!(to_b.server_pid(), b.pid);
    let to_a = dde.connect(&service, "alpha").unwrap();
    assert_eq!(to_a.server_pid(), a.pid);
    assert_eq!(dml(dde.connect(&service, "gamma")), dmlerr::NO_CONV_ESTABLISHED);
    assert_eq!(dml(dde.connect(&unique("nobody-serves-this"), "alpha")), dmlerr::NO_CONV_ESTABLISHED);
    // Wildcards: one conversation per accepting pair (System included).
    let mut pairs: Vec<(String, String)> =
        dde.connect_list(Some(&service), None).unwrap().iter().map(Conversation::service_topic).collect();
    pairs.sort();
    let want = |t: &[&str]| -> Vec<(String, String)> {
        let mut v: Vec<_> = t.iter().map(|t| (service.clone(), (*t).to_owned())).collect();
        v.sort();
        v
    };
    assert_eq!(pairs, want(&["System", "System", "alpha", "beta"]));
    let mut listed = dde.wildconnect(None, Some("alpha"));
    listed.retain(|(s, _)| *s == service);
    assert_eq!(listed, want(&["alpha"]));
    assert_eq!(dml(dde.connect_list(Some(&service), Some("gamma"))), dmlerr::NO_CONV_ESTABLISHED);
    quit(&to_a, a);
    quit(&to_b, b);
}

#[test]
fn dde_s03_every_server_answers_the_system_topic() {
    let _w = Watchdog::test();
    peer_role();
    let service = unique("s03");
    let peer = server("dde_s03_every_server_answers_the_system_topic", &service, &["One", "Two"]);
    let (dde, _) = client();
    let sys = dde.connect(&service, "system").unwrap();
    assert_eq!(sys.request_text("Topics", LONG).unwrap(), "One\tTwo\tSystem");
    assert_eq!(sys.request_text("SysItems", LONG).unwrap(), "Topics\tSysItems\tFormats\tStatus\tHelp");
    assert_eq!(sys.request_text("Formats", LONG).unwrap(), "TEXT");
    assert_eq!(sys.request_text("Status", LONG).unwrap(), "Ready");
    assert!(sys.request_text("Help", LONG).unwrap().contains(&service));
    assert_eq!(dml(sys.request("NoSuchItem", CF_TEXT, LONG)), dmlerr::NOTPROCESSED);
    let one = dde.connect(&service, "One").unwrap();
    quit(&one, peer);
}

#[test]
fn dde_s04_request_gives_data_not_processed_or_a_timeout() {
    let _w = Watchdog::test();
    peer_role();
    let service = unique("s04");
    let peer = server("dde_s04_request_gives_data_not_processed_or_a_timeout", &service, &["t"]);
    let (dde, _) = client();
    let conv = dde.connect(&service, "t").unwrap();
    conv.poke("x", CF_TEXT, b"payload", LONG).unwrap();
    assert_eq!(conv.request("x", CF_TEXT, LONG).unwrap(), b"payload");
    assert_eq!(dml(conv.request("missing", CF_TEXT, LONG)), dmlerr::NOTPROCESSED);
    // A held request never gets its data: the timeout ends it.
    assert_eq!(dml(conv.request("block", CF_TEXT, Duration::from_millis(300))), dmlerr::DATAACKTIMEOUT);
    // The conversation goes on (its transactions are held behind the
    // blocked one, so a second conversation quits the server).
    let other = dde.connect(&service, "t").unwrap();
    quit(&other, peer);
}

#[test]
fn dde_s05_poke_and_execute_are_acknowledged_not_processed_or_busy() {
    let _w = Watchdog::test();
    peer_role();
    let service = unique("s05");
    let peer = server("dde_s05_poke_and_execute_are_acknowledged_not_processed_or_busy", &service, &["t"]);
    let (dde, _) = client();
    let conv = dde.connect(&service, "t").unwrap();
    conv.poke_text("a", "1", LONG).unwrap();
    assert_eq!(dml(conv.poke_text("busy", "1", LONG)), dmlerr::BUSY);
    conv.execute("publish a 3", LONG).unwrap();
    assert_eq!(conv.request_text("a", LONG).unwrap(), "3");
    assert_eq!(dml(conv.execute("no such command", LONG)), dmlerr::NOTPROCESSED);
    // A poke and an execute the server holds time out with their codes.
    conv.execute("hold", LONG).unwrap();
    assert_eq!(dml(conv.poke_text("a", "2", Duration::from_millis(300))), dmlerr::POKEACKTIMEOUT);
    assert_eq!(dml(conv.execute("publish a 1", Duration::from_millis(300))), dmlerr::EXECACKTIMEOUT);
    let other = dde.connect(&service, "t").unwrap();
    quit(&other, peer);
}

#[test]
fn dde_s06_hot_and_warm_advise_loops_deliver_until_unadvised() {
    let _w = Watchdog::test();
    peer_role();
    let service = unique("s06");
    let peer = server("dde_s06_hot_and_warm_advise_loops_deliver_until_unadvised", &service, &["t"]);
    let (dde, seen) = client();
    let conv = dde.connect(&service, "t").unwrap();
    conv.advise("hot", CF_TEXT, LONG).unwrap();
    conv.advise_nodata("warm", CF_TEXT, LONG).unwrap();
    conv.poke_text("hot", "h1", LONG).unwrap();
    conv.poke_text("warm", "w1", LONG).unwrap();
    conv.poke_text("other", "o1", LONG).unwrap();
    pump_until(&dde, "two updates", || seen.borrow().len() >= 2);
    assert_eq!(*seen.borrow(), ["data hot h1", "data warm -"]);
    // A warm loop's client requests the value itself.
    assert_eq!(conv.request_text("warm", LONG).unwrap(), "w1");
    conv.unadvise("hot", CF_TEXT, LONG).unwrap();
    assert_eq!(dml(conv.unadvise("hot", CF_TEXT, LONG)), dmlerr::NOTPROCESSED);
    conv.poke_text("hot", "h2", LONG).unwrap();
    conv.poke_text("warm", "w2", LONG).unwrap();
    pump_until(&dde, "the warm update", || seen.borrow().len() >= 3);
    // The hot loop is gone: its poke (sent before the warm one) brought nothing.
    assert_eq!(seen.borrow()[2], "data warm -");
    quit(&conv, peer);
    assert_eq!(seen.borrow().len(), 3);
}

#[test]
fn dde_s07_an_ack_paced_loop_skips_but_always_delivers_the_latest() {
    let _w = Watchdog::test();
    peer_role();
    let service = unique("s07");
    let peer = server("dde_s07_an_ack_paced_loop_skips_but_always_delivers_the_latest", &service, &["t"]);
    let (dde, seen) = client();
    let conv = dde.connect(&service, "t").unwrap();
    conv.advise_ackreq("n", CF_TEXT, LONG).unwrap();
    // 2000 changes in one go: the server may send only while acknowledged.
    let n = 2000;
    conv.execute(&format!("publish n {n}"), LONG).unwrap();
    pump_until(&dde, "the latest value", || seen.borrow().last().is_some_and(|l| *l == format!("data n {n}")));
    let got: Vec<u32> = seen.borrow().iter().map(|l| l.rsplit(' ').next().unwrap().parse().unwrap()).collect();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
    assert!(got.len() < n as usize, "an ack-paced loop sent {} of {n} without acks", got.len());
    quit(&conv, peer);
}

#[test]
fn dde_s08_blocked_transactions_replay_in_order_when_enabled() {
    let _w = Watchdog::test();
    peer_role();
    let service = unique("s08");
    let peer = server("dde_s08_blocked_transactions_replay_in_order_when_enabled", &service, &["t"]);
    let (dde, seen) = client();
    let held = dde.connect(&service, "t").unwrap();
    let control = dde.connect(&service, "t").unwrap();
    control.execute("hold", LONG).unwrap();
    let txns: Vec<TxnId> = (1..=3).map(|i| held.poke_async("v", CF_TEXT, i.to_string().as_bytes()).unwrap()).collect();
    // The first blocks; the others wait behind it, in order.
    assert_eq!(control.request_text("log", LONG).unwrap(), "");
    assert!(seen.borrow().is_empty());
    control.execute("release", LONG).unwrap();
    pump_until(&dde, "three completions", || seen.borrow().len() >= 3);
    let want: Vec<String> = txns.iter().map(|t| format!("complete {} ", t.0)).collect();
    assert_eq!(*seen.borrow(), want);
    assert_eq!(control.request_text("log", LONG).unwrap(), "1,2,3");
    quit(&control, peer);
}

#[test]
fn dde_s09_asynchronous_transactions_complete_as_events_and_can_be_abandoned() {
    let _w = Watchdog::test();
    peer_role();
    let service = unique("s09");
    let peer = server("dde_s09_asynchronous_transactions_complete_as_events_and_can_be_abandoned", &service, &["t"]);
    let (dde, seen) = client();
    let conv = dde.connect(&service, "t").unwrap();
    conv.poke_text("a", "A", LONG).unwrap();
    let first = conv.request_async("a", CF_TEXT).unwrap();
    let abandoned = conv.request_async("a", CF_TEXT).unwrap();
    let missing = conv.request_async("missing", CF_TEXT).unwrap();
    dde.abandon(abandoned).unwrap();
    assert_eq!(dml(dde.abandon(abandoned)), dmlerr::UNFOUND_QUEUE_ID);
    pump_until(&dde, "two completions", || seen.borrow().len() >= 2);
    // The request after them proves the abandoned one's reply came and went.
    assert_eq!(conv.request_text("a", LONG).unwrap(), "A");
    assert_eq!(*seen.borrow(), [format!("complete {} A", first.0), format!("complete {} err 0x4009", missing.0)]);
    assert_eq!(dml(dde.abandon(first)), dmlerr::UNFOUND_QUEUE_ID);
    quit(&conv, peer);
}

#[test]
fn dde_s10_disconnect_from_either_side_notifies_the_other() {
    let _w = Watchdog::test();
    peer_role();
    let service = unique("s10-bye");
    let mut peer = server("dde_s10_disconnect_from_either_side_notifies_the_other", &service, &["t"]);
    let (dde, seen) = client();
    // The client leaves: the server hears of it.
    drop(dde.connect(&service, "t").unwrap());
    peer.expect("disconnect died=false");
    // The server leaves: the client hears, and the conversation is over.
    let conv = dde.connect(&service, "t").unwrap();
    conv.execute("bye", LONG).unwrap();
    pump_until(&dde, "the server's disconnect", || !seen.borrow().is_empty());
    assert_eq!(*seen.borrow(), ["disconnect died=false"]);
    assert!(!conv.is_connected());
    assert_eq!(dml(conv.request("a", CF_TEXT, LONG)), dmlerr::NO_CONV_ESTABLISHED);
    quit(&dde.connect(&service, "t").unwrap(), peer);
}

#[test]
fn dde_s10_a_server_killed_mid_transaction_ends_it_with_server_died() {
    let _w = Watchdog::test();
    peer_role();
    let service = unique("s10-kill");
    let before = util::disk_snapshot();
    let mut peer = server("dde_s10_a_server_killed_mid_transaction_ends_it_with_server_died", &service, &["t"]);
    let (dde, seen) = client();
    let conv = dde.connect(&service, "t").unwrap();
    let async_conv = dde.connect(&service, "t").unwrap();
    let pending = async_conv.request_async("block", CF_TEXT).unwrap();
    peer.expect("blocked");
    // Killed while the synchronous request waits (the server holds it).
    let killer = std::thread::spawn(move || {
        peer.expect("blocked");
        peer.kill9();
    });
    let started = Instant::now();
    assert_eq!(dml(conv.request("block", CF_TEXT, LONG)), dmlerr::SERVER_DIED);
    assert!(started.elapsed() < LONG / 2, "the death was seen at once, not at the timeout");
    killer.join().unwrap();
    pump_until(&dde, "both conversations end", || seen.borrow().len() >= 3);
    let mut got = seen.borrow().clone();
    got.sort();
    let mut want = vec![
        format!("complete {} err 0x400e", pending.0),
        "disconnect died=true".into(),
        "disconnect died=true".into(),
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(dml(conv.request("a", CF_TEXT, LONG)), dmlerr::SERVER_DIED);
    assert_eq!(dml(dde.connect(&service, "t")), dmlerr::NO_CONV_ESTABLISHED);
    drop((conv, async_conv, dde));
    assert_eq!(util::disk_snapshot(), before, "nothing left behind");
}

/// Peer side: the S12 sheet (`args()[0]` service, topic `Sheet1`), with
/// `R3C1 = R1C1 * 2`, served until killed.
fn sheet_peer() -> ! {
    let cells = Rc::new(RefCell::new(Sheet::default()));
    cells.borrow_mut().set("R3C1", "=R1C1*2").unwrap();
    let dde = sheet::serve(&args()[0], "Sheet1", cells, |_, _| {}).unwrap();
    say("ready");
    dde.serve(switchboard::Deadline::NEVER).unwrap();
    done()
}

/// Peer side: pokes R1C1 = 1..=N (`args()[1]`) into the sheet.
fn poker_peer() -> ! {
    let a = args();
    let (dde, _) = client();
    let conv = dde.connect(&a[0], "Sheet1").unwrap();
    for i in 1..=a[1].parse::<u32>().unwrap() {
        conv.poke_text("R1C1", &i.to_string(), LONG).unwrap();
    }
    say("poked");
    done()
}

#[test]
fn dde_s12_a_hot_link_on_a_formula_sees_every_update_in_order() {
    let _w = Watchdog::test();
    peer_role();
    let test = "dde_s12_a_hot_link_on_a_formula_sees_every_update_in_order";
    let service = unique("s12-sheet");
    let mut sheet = Peer::spawn(test, "sheet", &[&service]);
    sheet.expect("ready");
    let (dde, seen) = client();
    let conv = dde.connect(&service, "sheet1").unwrap();
    conv.advise("r3c1", CF_TEXT, LONG).unwrap();
    let n = 10_000u32;
    let mut poker = Peer::spawn(test, "poker", &[&service, &n.to_string()]);
    let last = format!("data r3c1 {}", 2 * n);
    pump_until(&dde, "the last update", || seen.borrow().last() == Some(&last));
    let want: Vec<String> = (1..=n).map(|i| format!("data r3c1 {}", 2 * i)).collect();
    assert_eq!(seen.borrow().len(), want.len(), "none lost, none repeated");
    assert!(*seen.borrow() == want, "in order");
    poker.expect("poked");
    poker.finish();
    assert_eq!(conv.request_text("R1C1", LONG).unwrap(), n.to_string());
    sheet.kill9();
}

/// Peer side: a client that keeps two conversations busy (pokes, async
/// requests, an advise loop) until it is killed.
fn churner_peer() -> ! {
    let (dde, _) = client();
    let a = dde.connect(&args()[0], "t").unwrap();
    let b = dde.connect(&args()[0], "t").unwrap();
    b.advise("c", CF_TEXT, LONG).unwrap();
    say("connected");
    // Until killed, or until the server dies under it.
    for i in 0u64.. {
        let going = a.poke_text("c", &i.to_string(), LONG).and_then(|()| b.request_async("c", CF_TEXT));
        if let Err(e) = going {
            assert!(matches!(e, Error::Dde(dmlerr::SERVER_DIED | dmlerr::NO_CONV_ESTABLISHED)), "{e:?}");
            break;
        }
        dde.pump(switchboard::Deadline::now()).unwrap();
    }
    done()
}

#[test]
fn dde_kill9_clients_and_servers_at_random_points_leave_nothing_and_hang_no_one() {
    let _w = Watchdog::test();
    peer_role();
    let test = "dde_kill9_clients_and_servers_at_random_points_leave_nothing_and_hang_no_one";
    let before = util::disk_snapshot();
    let mut rng = util::Rng(u64::from(std::process::id()));
    for round in 0..6 {
        let service = unique(&format!("kill{round}"));
        let mut srv = server(test, &service, &["t"]);
        let (dde, seen) = client();
        let conv = dde.connect(&service, "t").unwrap();
        conv.advise("c", CF_TEXT, LONG).unwrap();
        let mut churner = Peer::spawn(test, "churner", &[&service]);
        churner.expect("connected");
        let delay = Duration::from_micros(rng.next() % 30_000);
        if round % 2 == 0 {
            // The server dies under a client in mid-transaction.
            let killer = std::thread::spawn(move || {
                std::thread::sleep(delay);
                srv.kill9();
            });
            let started = Instant::now();
            let ended = loop {
                match conv.poke_text("x", "1", LONG) {
                    Ok(()) => {}
                    Err(e) => break e,
                }
            };
            assert!(matches!(ended, Error::Dde(dmlerr::SERVER_DIED)), "round {round}: {ended:?}");
            assert!(started.elapsed() < LONG / 2, "round {round}: the death was seen at once");
            killer.join().unwrap();
            pump_until(&dde, "the disconnect", || seen.borrow().iter().any(|l| l == "disconnect died=true"));
            churner.wait();
        } else {
            // A busy client dies; the server goes on serving the others.
            std::thread::sleep(delay);
            churner.kill9();
            srv.expect("disconnect died=true");
            srv.expect("disconnect died=true");
            conv.poke_text("c", "still here", LONG).unwrap();
            assert_eq!(conv.request_text("c", LONG).unwrap(), "still here");
            pump_until(&dde, "the update", || seen.borrow().iter().any(|l| l == "data c still here"));
            quit(&conv, srv);
        }
        drop((conv, dde));
    }
    assert_eq!(util::disk_snapshot(), before, "nothing left behind");
}

#[test]
fn dde_s02_attack_another_users_squatter_is_skipped() {
    let _w = Watchdog::test();
    peer_role();
    let test = "dde_s02_attack_another_users_squatter_is_skipped";
    if role().as_deref() == Some("squatter") {
        // Binds where this user's DDE servers are listed, and answers nobody.
        let addr = format!("sb1/L{}/w/ddes.{}", args()[0], args()[1]);
        let _l = switchboard_sys::socket::Listener::bind_with_backlog(addr.as_bytes(), 0).unwrap();
        util::hold("squatting");
    }
    if switchboard_sys::process::uid() != 0 {
        eprintln!("skipped: the attacker runs as uid {NOBODY}, which needs root to start");
        return;
    }
    let service = unique("s02-squat");
    // A topic of its own: a wildcard over services reaches every test's servers.
    let topic = unique("squat-topic");
    let peer = server(test, &service, &[&topic]);
    let me = switchboard_sys::process::uid().to_string();
    let mut squatter = Peer::spawn_as(NOBODY, test, "squatter", &[&me, &unique("squat")]);
    squatter.expect("squatting");
    let (dde, _) = client();
    // Every server is offered (the squatter too, and refused for its uid);
    // the real one answers.
    let convs = dde.connect_list(None, Some(&topic)).unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].server_pid(), peer.pid);
    let conv = dde.connect(&service, &topic).unwrap();
    drop(convs);
    quit(&conv, peer);
    squatter.dismiss();
}

/// A postcard varint.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[test]
fn dde_s02_attack_an_offer_naming_another_processs_receiver_is_refused() {
    let _w = Watchdog::test();
    if role().as_deref() == Some("deputy") {
        // Same user, hostile: offers a conversation to every DDE server of
        // the parent, naming the parent's receiver `args()[1]` as its own.
        let (service, victim) = (&args()[0], &args()[1]);
        let parent = std::os::unix::process::parent_id();
        let mut accepted = 0;
        for e in switchboard::namespace::list() {
            if e.owner_pid != parent || !e.name.starts_with("ddes.") {
                continue;
            }
            let mut offer = vec![0u8]; // Initiate
            for s in [service.as_str(), "t", victim.as_str()] {
                varint(s.len() as u64, &mut offer);
                offer.extend_from_slice(s.as_bytes());
            }
            varint(1, &mut offer);
            let to = switchboard::message::find_receiver(&e.name).unwrap();
            accepted += to.send_copydata(None, 0x0044_4445, &offer).unwrap();
        }
        say(&format!("accepted {accepted}"));
        done();
    }
    let service = unique("s02-deputy");
    let confirmed = Rc::new(Cell::new(0));
    let count = confirmed.clone();
    let server = Dde::new(move |_, e| match e {
        Event::Connect { .. } => Reply::Ack,
        Event::ConnectConfirm { .. } => {
            count.set(count.get() + 1);
            Reply::Ack
        }
        _ => Reply::NotProcessed,
    })
    .unwrap();
    server.register(&service).unwrap();
    let victim_name = unique("s02-victim");
    let reached = Rc::new(Cell::new(0));
    let hits = reached.clone();
    let victim = switchboard::message::Receiver::create(&victim_name, move |_, _| {
        hits.set(hits.get() + 1);
        0
    })
    .unwrap();
    let mut deputy = Peer::spawn(
        "dde_s02_attack_an_offer_naming_another_processs_receiver_is_refused",
        "deputy",
        &[&service, &victim_name],
    );
    let said = loop {
        server.pump(Duration::from_millis(20)).unwrap();
        if let Some(line) = deputy.try_next() {
            break line;
        }
    };
    assert_eq!(said, "accepted 0");
    assert_eq!(confirmed.get(), 0);
    let _ = victim.peek(true).unwrap();
    assert_eq!(reached.get(), 0, "the victim's receiver got nothing");
    deputy.finish();
    // The same offer in its own name is accepted (the refusal was the pid).
    let (dde, _) = client();
    drop(dde.connect(&service, "t").unwrap());
    assert_eq!(confirmed.get(), 1);
}

#[test]
fn dde_s04_two_instances_that_request_from_each_other_do_not_deadlock() {
    let _w = Watchdog::test();
    peer_role();
    let service = unique("s04-mutual");
    let peer = server("dde_s04_two_instances_that_request_from_each_other_do_not_deadlock", &service, &["t"]);
    // This process serves too: the peer's answer needs one of ours.
    let mine = unique("s04-mine");
    let here = Dde::new(|_, e| match e {
        Event::Connect { .. } => Reply::Ack,
        Event::Request { item, .. } if *item == "x" => Reply::Data("héllo wörld ✓".as_bytes().to_vec()),
        _ => Reply::NotProcessed,
    })
    .unwrap();
    here.register(&mine).unwrap();
    let (dde, _) = client();
    let conv = dde.connect(&service, "t").unwrap();
    // Our request waits for the peer, whose callback requests from us
    // meanwhile: our wait serves it (and the text comes back whole).
    for _ in 0..3 {
        assert_eq!(conv.request_text(&format!("ask {mine} x"), LONG).unwrap(), "héllo wörld ✓");
    }
    quit(&conv, peer);
}

#[test]
fn dde_s08_attack_a_flood_into_a_held_conversation_is_bounded() {
    let _w = Watchdog::test();
    peer_role();
    let service = unique("s08-flood");
    let peer = server("dde_s08_attack_a_flood_into_a_held_conversation_is_bounded", &service, &["t"]);
    let (dde, seen) = client();
    let flooded = dde.connect(&service, "t").unwrap();
    let control = dde.connect(&service, "t").unwrap();
    control.execute("hold", LONG).unwrap();
    let extra = 10;
    for i in 0..switchboard::dde::HELD_MAX + extra {
        flooded.poke_async("v", CF_TEXT, i.to_string().as_bytes()).unwrap();
    }
    // The server keeps HELD_MAX (the first, blocked, and those behind it)
    // and answers the rest busy at once.
    pump_until(&dde, "the busy answers", || seen.borrow().len() >= extra);
    assert!(seen.borrow().iter().all(|l| l.ends_with("err 0x4001")), "{:?}", seen.borrow());
    assert_eq!(control.request_text("log", LONG).unwrap(), "", "nothing held ran");
    quit(&control, peer);
}

#[test]
fn dde_s10_a_conversation_dropped_in_its_own_callback_still_tells_the_server() {
    let _w = Watchdog::test();
    peer_role();
    let service = unique("s10-drop");
    let mut peer =
        server("dde_s10_a_conversation_dropped_in_its_own_callback_still_tells_the_server", &service, &["t"]);
    let slot: Rc<RefCell<Option<Conversation>>> = Rc::default();
    let held = slot.clone();
    let dde = Dde::new(move |_, e| {
        if let Event::AdviseData { .. } = e {
            // The application lets go of the conversation on its first update.
            drop(held.borrow_mut().take());
        }
        Reply::Ack
    })
    .unwrap();
    let conv = dde.connect(&service, "t").unwrap();
    conv.advise("a", CF_TEXT, LONG).unwrap();
    let id = conv.id();
    *slot.borrow_mut() = Some(conv);
    let other = dde.connect(&service, "t").unwrap();
    other.poke_text("a", "go", LONG).unwrap();
    pump_until(&dde, "the update", || slot.borrow().is_none());
    peer.expect("disconnect died=false");
    assert_eq!(dde.conversations(), 1, "conversation {id} is gone here too");
    quit(&other, peer);
}
