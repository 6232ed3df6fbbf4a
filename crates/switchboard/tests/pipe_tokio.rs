//! Named pipes under tokio (feature `tokio`): `AsyncRead` / `AsyncWrite`.
#![cfg(feature = "tokio")]

mod util;

use std::time::Duration;

use switchboard::pipe::asyncio::AsyncPipe;
use switchboard::pipe::named::{PipeClient, PipeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::{unique, Watchdog};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap()
}

#[test]
fn pipe_tokio_async_write_and_read_carry_a_stream_through_a_small_buffer() {
    let _w = Watchdog::test();
    let name = unique("tokio");
    let server = PipeOptions::new().buffer(4096).create(&name).unwrap();
    let client = PipeClient::open(&name).unwrap();
    server.connect().unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    runtime().block_on(async {
        let (mut tx, mut rx) = (AsyncPipe::new(client), AsyncPipe::new(server));
        let expect = data.clone();
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; expect.len()];
            rx.read_exact(&mut got).await.unwrap();
            assert!(got == expect, "the stream arrived changed");
            rx
        });
        tx.write_all(&data).await.unwrap();
        tx.flush().await.unwrap();
        let rx = reader.await.unwrap();
        drop(tx);
        // The writer is gone: end of stream, as std::io::Read reports it.
        let mut rx = rx;
        assert_eq!(rx.read(&mut [0u8; 8]).await.unwrap(), 0);
    });
}

#[test]
fn pipe_tokio_a_read_cancelled_by_a_timeout_loses_nothing() {
    let _w = Watchdog::test();
    let name = unique("tokio-cancel");
    let server = PipeOptions::new().create(&name).unwrap();
    let client = PipeClient::open(&name).unwrap();
    server.connect().unwrap();
    runtime().block_on(async {
        let mut rx = AsyncPipe::new(server);
        let mut buf = [0u8; 16];
        let early = tokio::time::timeout(Duration::from_millis(50), rx.read(&mut buf));
        assert!(early.await.is_err(), "nothing was written yet");
        client.write(b"late but kept").unwrap();
        let n = rx.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"late but kept");
    });
}
