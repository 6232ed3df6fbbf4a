//! Named pipes under tokio (feature `tokio`): `AsyncRead` / `AsyncWrite`.
#![cfg(feature = "tokio")]

mod util;

use std::time::Duration;

use switchboard::pipe::asyncio::AsyncPipe;
use switchboard::pipe::named::{PipeClient, PipeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::{unique, Watchdog};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().enable_io().build().unwrap()
}

#[test]
fn pipe_tokio_async_write_and_read_carry_a_stream_through_a_small_buffer() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
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
    let _one_at_a_time = util::serial();
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

/// Client reads await the pipe's doorbell: 20 of them wait at once on a
/// single-threaded runtime without a thread each, then a writer thread
/// answers them in reverse order; a read cancelled by a timeout loses
/// nothing; the server's end reads as the end of the stream.
#[test]
fn pipe_tokio_client_reads_await_the_doorbell_without_a_thread_each() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
    let pairs: Vec<_> = (0..20)
        .map(|i| {
            let name = unique(&format!("tokio-bell{i}"));
            let server = PipeOptions::new().create(&name).unwrap();
            let client = PipeClient::open(&name).unwrap();
            server.connect().unwrap();
            (server, client)
        })
        .collect();
    let (servers, clients): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build().unwrap();
    rt.block_on(async {
        let mut pipes: Vec<AsyncPipe<PipeClient>> = clients.into_iter().map(AsyncPipe::new).collect();
        let mut buf = [0u8; 16];
        let early = tokio::time::timeout(Duration::from_millis(20), pipes[0].read(&mut buf));
        assert!(early.await.is_err(), "nothing was written yet");
        let before = util::thread_count();
        let mut tasks = Vec::new();
        for (i, mut pipe) in pipes.into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                let mut buf = [0u8; 16];
                let n = pipe.read(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], format!("to {i}").as_bytes());
                pipe
            }));
        }
        tokio::task::yield_now().await;
        assert!(util::thread_count() <= before, "waiting reads took threads: {before} → {}", util::thread_count());
        let writer = std::thread::spawn(move || {
            for (i, s) in servers.iter().enumerate().rev() {
                s.write(format!("to {i}").as_bytes()).unwrap();
            }
            servers
        });
        let mut pipes = Vec::new();
        for t in tasks {
            pipes.push(t.await.unwrap());
        }
        drop(writer.join().unwrap());
        // Every server end is gone: end of stream.
        assert_eq!(pipes[3].read(&mut buf).await.unwrap(), 0);
    });
}

/// A server end's reads await its current client's doorbell, registered
/// again after a disconnect and a new client, parking no thread: each read
/// is pending (asleep in the reactor) before its client writes.
#[test]
fn pipe_tokio_server_reads_follow_the_doorbell_of_each_client() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
    let name = unique("tokio-server-bell");
    let server = PipeOptions::new().create(&name).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build().unwrap();
    rt.block_on(async {
        let mut rx = AsyncPipe::new(server);
        for (i, word) in ["first client", "second client"].into_iter().enumerate() {
            // The client waits for a free instance: after a disconnect the
            // instance listens again only once connect is called.
            let name = name.clone();
            let (opened_tx, opened) = std::sync::mpsc::channel();
            let (go_tx, go) = std::sync::mpsc::channel::<()>();
            let writer = std::thread::spawn(move || {
                let client = PipeClient::open_wait(&name, Duration::from_secs(60)).unwrap();
                opened_tx.send(()).unwrap();
                go.recv().unwrap();
                client.write(word.as_bytes()).unwrap();
                client
            });
            rx.get_ref().connect().unwrap();
            opened.recv().unwrap();
            let before = util::thread_count();
            let reading = tokio::spawn(async move {
                let mut buf = [0u8; 32];
                let n = rx.read(&mut buf).await.unwrap();
                (rx, buf[..n].to_vec())
            });
            // The read runs until it must wait, then the client writes.
            tokio::task::yield_now().await;
            assert!(util::thread_count() <= before, "the read took a thread: {before} → {}", util::thread_count());
            go_tx.send(()).unwrap();
            let (back, got) = reading.await.unwrap();
            rx = back;
            assert_eq!(got, word.as_bytes(), "client {i}");
            drop(writer.join().unwrap());
            rx.get_ref().disconnect().unwrap();
        }
    });
}

/// Writes that fit go straight into the pipe: 200 small writes start no
/// blocking-pool thread; one larger than the buffer still arrives whole.
#[test]
fn pipe_tokio_writes_that_fit_take_no_thread() {
    let _w = Watchdog::test();
    let _one_at_a_time = util::serial();
    let name = unique("tokio-write");
    let server =
        PipeOptions::new().pipe_type(switchboard::pipe::named::PipeType::Message).buffer(4096).create(&name).unwrap();
    let client = PipeClient::open(&name).unwrap();
    server.connect().unwrap();
    server.set_read_mode(switchboard::pipe::named::ReadMode::Message).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    rt.block_on(async {
        let mut tx = AsyncPipe::new(client);
        let before = util::thread_count();
        for i in 0..200u32 {
            tx.write_all(&i.to_le_bytes()).await.unwrap();
            let mut buf = [0u8; 8];
            let n = server.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], i.to_le_bytes());
        }
        assert_eq!(util::thread_count(), before, "a write that fits took a thread");
        // Larger than the 4 KiB buffer: through the blocking pool, whole.
        let big = vec![7u8; 20_000];
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 32_000];
            let n = server.read(&mut buf).unwrap();
            buf.truncate(n);
            buf
        });
        tx.write_all(&big).await.unwrap();
        assert_eq!(reader.join().unwrap(), big);
    });
}
