//! `switchboard serial ls|send|monitor`.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::json;
use switchboard::serial::{self, LineSettings, SerialPort, Timeouts};

use crate::cli::parse_duration;
use crate::EXIT_TIMEOUT;

#[derive(Debug, Subcommand)]
pub enum SerialCmd {
    /// List the serial ports the system has (device and driver).
    #[command(after_help = "Example:\n  switchboard serial ls")]
    Ls,
    /// Write text (the arguments joined by spaces, and a newline) to a port.
    #[command(after_help = "Example:\n  switchboard serial send /dev/ttyUSB0 --baud 115200 AT")]
    Send {
        /// The port's device (a pty works too).
        path: String,
        /// The text.
        #[arg(required = true)]
        text: Vec<String>,
        /// Bits per second (any rate the driver takes).
        #[arg(long, default_value_t = 9600)]
        baud: u32,
        /// Give up on what is not written after this long.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
        timeout: Duration,
    },
    /// Print what arrives on a port, as it arrives.
    #[command(after_help = "Example:\n  switchboard serial monitor /dev/ttyUSB0 --baud 115200 --count 64\n\n\
                            Bytes are printed as they come (--format json: one {\"bytes\": [..]} per read). \
                            Ends after --count bytes (exit 0) or when nothing came for --idle (exit 3).")]
    Monitor {
        /// The port's device.
        path: String,
        /// Bits per second.
        #[arg(long, default_value_t = 9600)]
        baud: u32,
        /// Stop after this many bytes.
        #[arg(long)]
        count: Option<usize>,
        /// Stop when nothing came for this long (exit code 3).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1h")]
        idle: Duration,
    },
}

fn open(path: &str, baud: u32) -> anyhow::Result<SerialPort> {
    let port = SerialPort::open(path)?;
    port.set_settings(&LineSettings { baud, ..LineSettings::default() })?;
    Ok(port)
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(serial::MAXDWORD - 1).max(1)
}

pub fn run(cmd: SerialCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        SerialCmd::Ls => {
            for p in serial::list_ports() {
                match json {
                    true => out!("{}", json!({"path": p.path, "driver": p.driver})),
                    false => out!("{}\t{}", p.path.display(), p.driver),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SerialCmd::Send { path, text, baud, timeout } => {
            let port = open(&path, baud)?;
            port.set_timeouts(Timeouts { write_total_constant: ms(timeout), ..Timeouts::default() });
            let line = format!("{}\n", text.join(" "));
            let wrote = port.write(line.as_bytes())?;
            if wrote < line.len() {
                note!("{wrote} of {} bytes written within {timeout:?}", line.len());
                return Ok(ExitCode::from(EXIT_TIMEOUT));
            }
            port.drain()?;
            Ok(ExitCode::SUCCESS)
        }
        SerialCmd::Monitor { path, baud, count, idle } => {
            let port = open(&path, baud)?;
            // Each read: whatever came, within `idle` of the last byte.
            port.set_timeouts(Timeouts { read_interval: 20, read_total_constant: ms(idle), ..Timeouts::default() });
            note!("monitoring {path} at {baud} baud");
            let (mut seen, mut buf) = (0usize, vec![0u8; 4096]);
            let mut last = Instant::now();
            loop {
                let want = count.map_or(buf.len(), |c| (c - seen).min(buf.len()));
                let n = port.read(&mut buf[..want])?;
                if n == 0 {
                    if last.elapsed() >= idle {
                        return Ok(ExitCode::from(EXIT_TIMEOUT));
                    }
                    continue;
                }
                last = Instant::now();
                seen += n;
                match json {
                    true => out!("{}", json!({"bytes": &buf[..n]})),
                    false => {
                        let mut stdout = std::io::stdout().lock();
                        stdout.write_all(&buf[..n])?;
                        stdout.flush()?;
                    }
                }
                if count.is_some_and(|c| seen >= c) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
}
