//! Attack: another local user floods a gateway with pipe opens on its
//! loopback port (which admits any local user to the keys, as any TCP
//! service does; the gateway opens local objects only as its own user).
//! Each open runs on a thread of its own for as long as its local open
//! takes — up to the rendezvous' 10 s when the pipe's server does not
//! answer — so without a cap a flood costs one thread per query. With it
//! ([`MAX_QUERIES`]), the gateway answers the rest busy at once and keeps
//! serving.
//!
//! A test binary of its own: the flood loads both cores, and the other
//! gateway tests' leases would feel it.

#[path = "../../switchboard/tests/util/mod.rs"]
mod util;

use std::process::Command;
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::pipe::named::{PipeOptions, PipeType};
use switchboard_gateway::proto::{OpenReply, OpenRequest, WINDOW};
use switchboard_gateway::{keys, Gateway, ZenohBackend, ZenohConfig, MAX_QUERIES};
use util::{args, role, Netns, Peer, Watchdog};
use zenoh::Wait;

const TEST: &str = "net_s01_attack_another_user_flooding_a_gateway_with_opens_costs_it_a_bounded_number_of_threads";
const LOOPBACK: &str = "tcp/127.0.0.1:7447";
/// Opens the attacker sends at once.
const FLOOD: usize = 4 * MAX_QUERIES;

fn play() -> bool {
    let Some(r) = role() else { return false };
    let a = args();
    match r.as_str() {
        "gateway" => {
            let config = ZenohConfig { listen: vec![LOOPBACK.into()], ..ZenohConfig::default() };
            let _gateway = Gateway::start(Arc::new(ZenohBackend::open(&config).unwrap()), "b", false).unwrap();
            util::hold("up");
        }
        "held" => {
            let _server = PipeOptions::new().pipe_type(PipeType::Message).create(&a[0]).unwrap();
            util::hold("ready");
        }
        "flood" => flood(),
        other => panic!("no role {other}"),
    }
    true
}

/// The attacker: a raw Zenoh client on the gateway's loopback port. Sends
/// [`FLOOD`] opens of the held pipe at once, counts the answers, then asks
/// for a listing (the gateway still serves).
fn flood() {
    let mut config = zenoh::Config::default();
    for (k, v) in [
        ("mode", "\"client\"".to_owned()),
        ("connect/endpoints", format!("[\"{LOOPBACK}\"]")),
        ("scouting/multicast/enabled", "false".to_owned()),
    ] {
        config.insert_json5(k, &v).unwrap();
    }
    let session = zenoh::open(config).wait().unwrap();
    let listed = |within: Duration| {
        let until = Instant::now() + within;
        while Instant::now() < until {
            let replies = session.get(keys::ls("b")).timeout(Duration::from_secs(1)).wait().unwrap();
            if replies.recv_timeout(Duration::from_secs(2)).ok().flatten().is_some_and(|r| r.result().is_ok()) {
                return true;
            }
        }
        false
    };
    assert!(listed(Duration::from_secs(30)), "the gateway answered no listing before the flood");
    util::say("linked");
    // Each query's callback holds a sender; dropped when the query ends.
    let (tx, answers) = channel::<Option<u32>>();
    for _ in 0..FLOOD {
        let request = rmp_serde::to_vec_named(&OpenRequest { id: keys::new_id(), window: WINDOW }).unwrap();
        let tx = tx.clone();
        session
            .get(keys::pipe("b", "held"))
            .payload(request)
            .timeout(Duration::from_secs(30))
            .callback(move |reply| {
                let code = reply
                    .result()
                    .ok()
                    .and_then(|s| rmp_serde::from_slice::<OpenReply>(&s.payload().to_bytes()).ok().map(|r| r.code));
                let _ = tx.send(code);
            })
            .wait()
            .unwrap();
    }
    drop(tx);
    let (mut busy, mut other, mut garbled) = (0, 0, 0);
    for code in answers {
        match code {
            Some(231) => busy += 1,
            Some(_) => other += 1,
            None => garbled += 1,
        }
    }
    util::say(&format!("busy:{busy} other:{other} garbled:{garbled}"));
    util::say(&format!("listed:{}", listed(Duration::from_secs(30))));
}

/// Threads of process `pid` named `name`.
fn threads_named(pid: u32, name: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name))
        .count()
}

#[test]
fn net_s01_attack_another_user_flooding_a_gateway_with_opens_costs_it_a_bounded_number_of_threads() {
    if play() {
        return;
    }
    let _watchdog = Watchdog::new(Duration::from_secs(180));
    // A namespace of its own, so its loopback port is free.
    let ns = Netns::add(format!("sbgf{}", std::process::id())).expect("ip netns add (root and iproute2 are needed)");
    let mut gateway = Peer::spawn_in(Some(ns.name()), TEST, "gateway", &[]);
    gateway.expect("up");
    // A pipe whose server is stopped: an open of it waits for an answer
    // that never comes, until the rendezvous gives up (10 s).
    let mut held = Peer::spawn_in(Some(ns.name()), TEST, "held", &["held"]);
    held.expect("ready");
    assert!(Command::new("kill").args(["-STOP", &held.pid.to_string()]).status().unwrap().success());
    let mut attacker = Peer::spawn_with(Some(ns.name()), Some(65534), TEST, "flood", &[]);
    attacker.expect("linked");
    // While the flood is answered: the most query threads the gateway ran.
    let mut most = 0;
    let result = loop {
        most = most.max(threads_named(gateway.pid, "sb-gw-query"));
        if let Some(line) = attacker.try_next() {
            break line;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    println!("{result}; at most {most} query threads");
    let count = |what: &str| -> usize {
        let field = result.split(' ').find_map(|f| f.strip_prefix(what)).expect("a count");
        field.parse().unwrap()
    };
    assert!(most <= MAX_QUERIES, "the gateway ran {most} query threads at once (cap {MAX_QUERIES})");
    assert!(count("busy:") >= FLOOD - MAX_QUERIES, "{result}: the opens past the cap are answered busy at once");
    assert_eq!(count("busy:") + count("other:"), FLOOD, "{result}: every open is answered");
    assert_eq!(attacker.next(), "listed:true", "after the flood the gateway still answers");
    attacker.finish();
    assert!(Command::new("kill").args(["-CONT", &held.pid.to_string()]).status().unwrap().success());
    held.kill9();
    gateway.kill9();
}
