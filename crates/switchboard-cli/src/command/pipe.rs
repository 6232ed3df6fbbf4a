//! `switchboard pipe serve|connect|send|call`.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use switchboard::pipe::named::{call_named_pipe, PipeClient, PipeOptions, PipeType, ReadMode};
use switchboard::Error;

use crate::cli::PipeCmd;
use crate::EXIT_TIMEOUT;

/// Largest message `serve` and `call` read in one go.
const MAX_MESSAGE: usize = 1 << 20;

pub fn run(cmd: PipeCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PipeCmd::Serve { name, message, echo, clients, .. } => serve(&name, message, echo, clients),
        PipeCmd::Connect { name, timeout, linger } => connect(&name, timeout, linger),
        PipeCmd::Send { name, messages } => {
            let client = PipeClient::open_wait(&name, Duration::from_secs(5))?;
            for m in &messages {
                client.write(m.as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        PipeCmd::Call { name, message, timeout } => {
            let mut reply = vec![0u8; MAX_MESSAGE];
            match call_named_pipe(&name, message.as_bytes(), &mut reply, timeout) {
                Ok(n) => {
                    out!("{}", String::from_utf8_lossy(&reply[..n]));
                    Ok(ExitCode::SUCCESS)
                }
                Err(Error::Timeout) => {
                    note!("pipe {name}: no free instance in time (ERROR_SEM_TIMEOUT, 121)");
                    Ok(ExitCode::from(EXIT_TIMEOUT))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn serve(name: &str, message: bool, echo: bool, clients: Option<u32>) -> anyhow::Result<ExitCode> {
    let opts = if message {
        PipeOptions::new().pipe_type(PipeType::Message).read_mode(ReadMode::Message)
    } else {
        PipeOptions::new()
    };
    let server = opts.create(name)?;
    if super::detach::detached() {
        out!("serving pipe {}", server.name());
        super::detach::ready();
    } else {
        note!("serving pipe {} (pid {})", server.name(), std::process::id());
    }
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut served = 0;
    while clients.is_none_or(|n| served < n) {
        server.connect()?;
        let pid = server.client_process_id()?;
        loop {
            let n = match server.read(&mut buf) {
                Ok(n) => n,
                Err(Error::BrokenPipe) => break,
                Err(e) => return Err(e.into()),
            };
            let mut out = std::io::stdout().lock();
            writeln!(out, "{pid}: {}", String::from_utf8_lossy(&buf[..n]).trim_end_matches('\n'))?;
            out.flush()?;
            if echo {
                match server.write(&buf[..n]) {
                    Ok(()) | Err(Error::NoData) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        server.disconnect()?;
        served += 1;
    }
    Ok(ExitCode::SUCCESS)
}

fn connect(name: &str, wait: Duration, linger: Duration) -> anyhow::Result<ExitCode> {
    let client = PipeClient::open_wait(name, wait)?;
    std::thread::scope(|s| -> anyhow::Result<()> {
        let pipe = &client;
        s.spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut out = std::io::stdout();
            while let Ok(n) = pipe.read(&mut buf) {
                if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                    break;
                }
            }
        });
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stdin.read(&mut buf)?;
            if n == 0 {
                // Give replies to what was sent a moment to arrive, then
                // leave the reader to the process exit.
                std::thread::sleep(linger);
                std::process::exit(0);
            }
            client.write(&buf[..n])?;
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
