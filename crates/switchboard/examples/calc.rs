//! The example RPC service (`switchboard::rpc::calc`), as two processes:
//!
//! ```text
//! cargo run --example calc -- serve local:calc tcp:127.0.0.1[4747]
//! cargo run --example calc -- call local:calc      # or tcp:127.0.0.1[4747], or `find`
//! ```
//!
//! `call` makes 2000 calls and prints their median time; `find` asks the
//! endpoint mapper where a `Calc` server is.

use std::time::{Duration, Instant};

use switchboard::rpc::calc::{Calc, CalcClient, CalcServer, Calculator};
use switchboard::rpc::{AuthLevel, Server};

fn main() -> switchboard::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") if args.len() > 1 => {
            // A plain `tcp:` binding admits whoever reaches the port, which
            // a server must say (the default requires `Connect`).
            let server = Server::builder().serve(CalcServer(Calculator)).auth_level(AuthLevel::None).build();
            for binding in &args[1..] {
                println!("listening on {}", server.listen(binding)?);
            }
            loop {
                std::thread::park();
            }
        }
        Some("call") if args.len() == 2 => {
            let calc = match args[1].as_str() {
                "find" => CalcClient::find()?,
                binding => CalcClient::connect(binding)?,
            };
            println!("2 + 3 = {}", calc.add(2, 3)?);
            println!("7 / 0: {}", calc.div(7, 0).unwrap_err());
            let mut times: Vec<Duration> = (0..2000)
                .map(|i| {
                    let t = Instant::now();
                    let sum = calc.add(i, 1);
                    let took = t.elapsed();
                    assert_eq!(sum.ok(), Some(i + 1));
                    took
                })
                .collect();
            times.sort();
            println!("2000 calls over {}: p50 {:?}", calc.client().binding(), times[times.len() / 2]);
            Ok(())
        }
        _ => {
            eprintln!("usage: calc serve BINDING...  |  calc call BINDING|find");
            std::process::exit(2)
        }
    }
}
