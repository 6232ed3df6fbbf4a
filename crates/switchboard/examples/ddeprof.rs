use std::time::{Duration, Instant};
use switchboard::dde::{Dde, Event, Reply};
fn main() {
    let service = format!("prof-{}", std::process::id());
    let s2 = service.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let dde = Dde::new(|_, e| match *e {
            Event::Connect { .. } => Reply::Ack,
            Event::Request { .. } => Reply::Data(vec![b'x'; 64]),
            _ => Reply::NotProcessed,
        })
        .unwrap();
        dde.register(&s2).unwrap();
        tx.send(()).unwrap();
        dde.serve(Duration::from_secs(30)).unwrap();
    });
    rx.recv().unwrap();
    let dde = Dde::new(|_, _| Reply::NotProcessed).unwrap();
    let conv = dde.connect(&service, "t").unwrap();
    let n = 300_000;
    let t = Instant::now();
    for _ in 0..n {
        conv.request("64", 1, Duration::from_secs(10)).unwrap();
    }
    eprintln!("{:?} per request", t.elapsed() / n);
}
