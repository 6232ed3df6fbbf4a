use std::time::Instant;
use switchboard::rpc::calc::{ByteBuf, Calc, CalcClient, CalcServer, Calculator};
use switchboard::rpc::Server;
fn main() {
    let name = format!("local:perf-{}", std::process::id());
    let server = Server::builder().serve(CalcServer(Calculator)).build();
    server.listen(&name).unwrap();
    let calc = CalcClient::connect(&name).unwrap();
    let msg = vec![7u8; 64];
    for round in 0..3 {
        let t = Instant::now();
        let n = 200_000;
        for _ in 0..n {
            let got = calc.echo(ByteBuf::from(msg.clone())).unwrap();
            assert_eq!(got.len(), 64);
        }
        println!("round {round}: {:?} per call", t.elapsed() / n);
    }
}
