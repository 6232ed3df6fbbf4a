//! RPC beside RPC: a 64-byte echo call from the parent to a server in the
//! child, over switchboard's `local:` (shared memory) and `unix:` bindings
//! and over tarpc with a Unix socket (serde transport, bincode; a tokio
//! current-thread runtime on each side).

use std::process::Child;
use std::time::Duration;

use futures::StreamExt;
use serde_bytes::ByteBuf;
use switchboard::rpc::calc::{Calc, CalcClient, CalcServer, Calculator};
use switchboard::rpc::Server;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;

#[tarpc::service]
pub trait Echo {
    async fn echo(data: ByteBuf) -> ByteBuf;
}

#[derive(Clone)]
struct Echoing;

impl Echo for Echoing {
    async fn echo(self, _: tarpc::context::Context, data: ByteBuf) -> ByteBuf {
        data
    }
}

pub const CONTENDERS: [&str; 3] = ["switchboard_rpc_local", "switchboard_rpc_unix", "tarpc_unix"];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn binding(contender: &str, rendezvous: &str) -> String {
    match contender {
        "switchboard_rpc_local" => format!("local:{rendezvous}"),
        _ => format!("unix:{rendezvous}"),
    }
}

fn socket_path(rendezvous: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{rendezvous}.sock"))
}

/// The child: serves until its one client has come and gone; says
/// `ready` on stdout once it listens.
pub fn serve(contender: &str, rendezvous: &str) {
    use std::io::Write;
    if contender == "tarpc_unix" {
        let path = socket_path(rendezvous);
        runtime().block_on(async {
            let mut incoming = tarpc::serde_transport::unix::listen(&path, Bincode::default).await.unwrap();
            println!("ready");
            std::io::stdout().flush().unwrap();
            let transport = incoming.next().await.unwrap().unwrap();
            BaseChannel::with_defaults(transport)
                .execute(Echoing.serve())
                .for_each(|call| async move {
                    call.await;
                })
                .await;
        });
        let _ = std::fs::remove_file(path);
        return;
    }
    let server = Server::builder().serve(CalcServer(Calculator)).build();
    server.listen(&binding(contender, rendezvous)).unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    assert!(server.wait_idle(Duration::from_secs(600)));
}

/// The parent's side: one call per round.
pub enum Caller {
    Switchboard(CalcClient),
    Tarpc(tokio::runtime::Runtime, EchoClient),
}

impl Caller {
    pub fn connect(contender: &str, rendezvous: &str, child: &mut Child) -> Caller {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        if contender == "tarpc_unix" {
            let rt = runtime();
            let client = rt.block_on(async {
                let transport = tarpc::serde_transport::unix::connect(socket_path(rendezvous), Bincode::default).await.unwrap();
                EchoClient::new(tarpc::client::Config::default(), transport).spawn()
            });
            return Caller::Tarpc(rt, client);
        }
        Caller::Switchboard(CalcClient::connect(&binding(contender, rendezvous)).unwrap())
    }

    pub fn call(&mut self, msg: &[u8]) -> ByteBuf {
        match self {
            Caller::Switchboard(calc) => calc.echo(ByteBuf::from(msg.to_vec())).unwrap(),
            Caller::Tarpc(rt, client) => {
                rt.block_on(client.echo(tarpc::context::current(), ByteBuf::from(msg.to_vec()))).unwrap()
            }
        }
    }
}
