use std::sync::Arc;
use switchboard::pipe::named::{PipeClient, PipeOptions, PipeType, ReadMode};
use switchboard_gateway::{Gateway, ZenohBackend, ZenohConfig};

fn main() {
    let ep = "tcp/127.0.0.1:17999".to_string();
    let near = Gateway::start(Arc::new(ZenohBackend::open(&ZenohConfig { listen: vec![ep.clone()], ..Default::default() }).unwrap()), "near", true).unwrap();
    let far = Gateway::start(Arc::new(ZenohBackend::open(&ZenohConfig { connect: vec![ep], ..Default::default() }).unwrap()), "far", false).unwrap();
    let server = PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message).buffer(1 << 20).create("probe1").unwrap();
    let t = std::thread::spawn(move || {
        server.connect().unwrap();
        let mut buf = vec![0u8; 2 << 20];
        loop {
            match server.read(&mut buf) {
                Ok(n) => server.write(&buf[..n]).unwrap(),
                Err(e) => { eprintln!("server read: {e:?}"); break; }
            }
        }
    });
    let client = PipeClient::open(r"\\far\pipe\probe1").unwrap();
    client.set_read_mode(ReadMode::Message).unwrap();
    for size in [64usize, 1000, 70_000, 300_000, 1 << 20] {
        let msg = vec![5u8; size];
        let mut reply = vec![0u8; size.max(1)];
        for i in 0..20 {
            match client.transact(&msg, &mut reply) {
                Ok(n) => assert_eq!(n, size),
                Err(e) => { eprintln!("size {size} round {i}: {e:?}"); std::process::exit(1); }
            }
        }
        eprintln!("size {size} ok");
    }
    drop(client);
    let _ = t.join();
    drop((near, far));
}
