//! `switchboard serial ls|open|pair|send|monitor`.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::json;
use switchboard::serial::{self, events, FlowControl, LineSettings, Parity, SerialPort, StopBits, Timeouts};

use crate::cli::parse_duration;

/// The modem-line and line-error events `monitor` reports.
const LINE_EVENTS: [(u32, &str); 6] = [
    (events::CTS, "CTS"),
    (events::DSR, "DSR"),
    (events::RLSD, "DCD"),
    (events::RING, "RING"),
    (events::BREAK, "break"),
    (events::ERR, "error"),
];
use crate::EXIT_TIMEOUT;

#[derive(Debug, Subcommand)]
pub enum SerialCmd {
    /// List the serial and parallel ports the system has (device and driver).
    #[command(after_help = "Example:\n  switchboard serial ls")]
    Ls,
    /// Open a port: apply settings, set its modem lines, send a break, and
    /// print what the driver applied and the modem status.
    #[command(after_help = "Example:\n  switchboard serial open /dev/ttyUSB0 --baud 115200\n  \
                            switchboard serial open /dev/pts/7 --data-bits 7 --parity even --rts off --hold 10s\n  \
                            switchboard serial open /dev/pts/7 --dcb \"baud=19200 parity=e data=7 stop=1\"\n\n\
                            Modem lines and counters are there on UARTs and on the ends of `serial pair`; \
                            a plain pty has none (said so). --hold keeps the port open (and its lines as set) that long.")]
    Open {
        /// The port's device.
        path: String,
        #[command(flatten)]
        line: LineArgs,
        /// A device-control string on top of those, as Windows' mode
        /// command takes it: "baud=9600 parity=e data=7 stop=1" or "96,e,7,1".
        #[arg(long, value_name = "STRING")]
        dcb: Option<String>,
        /// Raise (on) or drop (off) RTS.
        #[arg(long, value_parser = parse_on_off)]
        rts: Option<bool>,
        /// Raise (on) or drop (off) DTR.
        #[arg(long, value_parser = parse_on_off)]
        dtr: Option<bool>,
        /// Send a break.
        #[arg(long = "break")]
        send_break: bool,
        /// Keep the port open this long before closing it.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        hold: Option<Duration>,
    },
    /// A virtual null-modem: two pty ends joined by a cable switchboard plays
    /// (paced bytes, crossed modem lines, break, framing errors).
    #[command(after_help = "Example:\n  switchboard serial pair --link /tmp/com1 /tmp/com2 &\n  \
                            switchboard serial monitor /tmp/com2 --baud 9600 &\n  \
                            switchboard serial send /tmp/com1 --baud 9600 hello\n\n\
                            Prints the two ends' paths (--format json: {\"ends\": [a, b]}) and runs until \
                            interrupted (or for --for), then removes the links. Both ends must use the same \
                            baud rate and frame, as on a real cable: bytes sent otherwise arrive as framing errors.")]
    Pair {
        /// Make these two symbolic links to the ends (removed at exit).
        #[arg(long, num_args = 2, value_names = ["A", "B"])]
        link: Vec<String>,
        /// Stop after this long (default: when interrupted).
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        run_for: Option<Duration>,
    },
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
    /// Print what arrives on a port, as it arrives, and its modem-line events.
    #[command(after_help = "Example:\n  switchboard serial monitor /dev/ttyUSB0 --baud 115200 --count 64\n\n\
                            Bytes are printed as they come (--format json: one {\"bytes\": [..]} per read). \
                            Where the driver reports them (UARTs, `serial pair` ends), modem-line changes, breaks \
                            and line errors are printed as they happen: on stderr as `[CTS on]`, `[break]`, \
                            `[error: framing]` (--format json: {\"event\": .., \"modem\": {..}} on stdout). \
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

/// Line settings on the command line.
#[derive(Debug, clap::Args)]
pub struct LineArgs {
    /// Bits per second (any rate the driver takes).
    #[arg(long, default_value_t = 9600)]
    baud: u32,
    /// Data bits: 5 to 8.
    #[arg(long, default_value_t = 8)]
    data_bits: u8,
    /// none, odd, even, mark or space.
    #[arg(long, default_value = "none", value_parser = parse_parity)]
    parity: Parity,
    /// 1, 1.5 or 2.
    #[arg(long, default_value = "1", value_parser = parse_stop_bits)]
    stop_bits: StopBits,
    /// none, rts-cts or xon-xoff.
    #[arg(long, default_value = "none", value_parser = parse_flow)]
    flow: FlowControl,
}

impl LineArgs {
    fn settings(&self) -> LineSettings {
        LineSettings {
            baud: self.baud,
            data_bits: self.data_bits,
            parity: self.parity,
            stop_bits: self.stop_bits,
            flow: self.flow,
            ..LineSettings::default()
        }
    }
}

fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" | "1" | "true" => Ok(true),
        "off" | "0" | "false" => Ok(false),
        _ => Err(format!("{text:?}: on or off")),
    }
}

fn parse_parity(text: &str) -> Result<Parity, String> {
    Ok(match text {
        "none" | "n" => Parity::None,
        "odd" | "o" => Parity::Odd,
        "even" | "e" => Parity::Even,
        "mark" | "m" => Parity::Mark,
        "space" | "s" => Parity::Space,
        _ => return Err(format!("{text:?}: none, odd, even, mark or space")),
    })
}

fn parse_stop_bits(text: &str) -> Result<StopBits, String> {
    Ok(match text {
        "1" => StopBits::One,
        "1.5" => StopBits::OnePointFive,
        "2" => StopBits::Two,
        _ => return Err(format!("{text:?}: 1, 1.5 or 2")),
    })
}

fn parse_flow(text: &str) -> Result<FlowControl, String> {
    Ok(match text {
        "none" => FlowControl::None,
        "rts-cts" | "hardware" => FlowControl::RtsCts,
        "xon-xoff" | "software" => FlowControl::XonXoff,
        _ => return Err(format!("{text:?}: none, rts-cts or xon-xoff")),
    })
}

fn open(path: &str, baud: u32) -> anyhow::Result<SerialPort> {
    let port = SerialPort::open(path)?;
    port.set_settings(&LineSettings { baud, ..LineSettings::default() })?;
    Ok(port)
}

/// Prints the line events in `happened` (stderr, or JSON on stdout).
fn report_events(port: &SerialPort, happened: u32, json: bool) -> anyhow::Result<()> {
    if happened == 0 {
        return Ok(());
    }
    let modem = port.modem_status()?;
    let errors = if happened & events::ERR != 0 { port.clear_errors()?.errors } else { 0 };
    for (bit, name) in LINE_EVENTS.iter().filter(|(bit, _)| happened & bit != 0) {
        let state = match *bit {
            events::CTS => Some(modem.cts),
            events::DSR => Some(modem.dsr),
            events::RLSD => Some(modem.rlsd),
            events::RING => Some(modem.ring),
            _ => None,
        };
        let detail = match (*bit, state) {
            (_, Some(on)) => format!("{name} {}", if on { "on" } else { "off" }),
            (events::ERR, _) => format!("error: {}", error_names(errors)),
            _ => (*name).to_owned(),
        };
        match json {
            true => out!("{}", json!({"event": detail, "modem": modem_json(&modem), "errors": errors})),
            false => note!("[{detail}]"),
        }
    }
    Ok(())
}

fn error_names(errors: u32) -> String {
    use serial::errors::{BREAK, FRAME, OVERRUN, RXOVER, RXPARITY};
    let names: Vec<&str> =
        [(FRAME, "framing"), (RXPARITY, "parity"), (OVERRUN, "overrun"), (RXOVER, "buffer overrun"), (BREAK, "break")]
            .iter()
            .filter(|(bit, _)| errors & bit != 0)
            .map(|(_, n)| *n)
            .collect();
    names.join(", ")
}

fn modem_json(m: &serial::ModemStatus) -> serde_json::Value {
    json!({"cts": m.cts, "dsr": m.dsr, "ring": m.ring, "dcd": m.rlsd})
}

fn modem_text(m: &serial::ModemStatus) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    format!("CTS {} DSR {} DCD {} RING {}", on(m.cts), on(m.dsr), on(m.rlsd), on(m.ring))
}

fn settings_json(s: &LineSettings) -> serde_json::Value {
    json!({
        "baud": s.baud,
        "data_bits": s.data_bits,
        "parity": format!("{:?}", s.parity).to_lowercase(),
        "stop_bits": stop_text(s.stop_bits),
        "flow": format!("{:?}", s.flow),
    })
}

fn stop_text(s: StopBits) -> &'static str {
    match s {
        StopBits::One => "1",
        StopBits::OnePointFive => "1.5",
        StopBits::Two => "2",
    }
}

fn settings_text(s: &LineSettings) -> String {
    let parity = format!("{:?}", s.parity).chars().next().unwrap_or('N');
    format!("{} baud {}{}{} flow {:?}", s.baud, s.data_bits, parity, stop_text(s.stop_bits), s.flow)
}

/// Symbolic links made for a pair, removed when dropped.
struct Links(Vec<String>);

impl Drop for Links {
    fn drop(&mut self) {
        for l in &self.0 {
            let _ = std::fs::remove_file(l);
        }
    }
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(serial::MAXDWORD - 1).max(1)
}

pub fn run(cmd: SerialCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        SerialCmd::Ls => {
            let parallel = serial::list_parallel_ports().into_iter().map(|p| (p, "ppdev (parallel)".to_owned()));
            for (path, driver) in serial::list_ports().into_iter().map(|p| (p.path, p.driver)).chain(parallel) {
                match json {
                    true => out!("{}", json!({"path": path, "driver": driver})),
                    false => out!("{}\t{}", path.display(), driver),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SerialCmd::Open { path, line, dcb, rts, dtr, send_break, hold } => {
            let port = SerialPort::open(&path)?;
            let mut settings = line.settings();
            if let Some(text) = dcb {
                (settings, _) = serial::build_dcb(&text, &settings, &Timeouts::default())
                    .map_err(|e| anyhow::anyhow!("--dcb {text:?}: {e}"))?;
            }
            let applied = port.set_settings(&settings)?;
            if let Some(on) = rts {
                port.set_rts(on)?;
            }
            if let Some(on) = dtr {
                port.set_dtr(on)?;
            }
            if send_break {
                port.send_break()?;
            }
            let modem = port.modem_status().ok();
            let status = port.clear_errors()?;
            match json {
                true => out!(
                    "{}",
                    json!({
                        "path": path,
                        "settings": settings_json(&applied),
                        "modem": modem.map(|m| modem_json(&m)),
                        "errors": status.errors,
                        "in_queue": status.in_queue,
                        "out_queue": status.out_queue,
                    })
                ),
                false => {
                    out!("{path}: {}", settings_text(&applied));
                    match modem {
                        Some(m) => out!("modem: {}", modem_text(&m)),
                        None => out!("modem: none (the driver has no modem lines)"),
                    }
                }
            }
            if let Some(d) = hold {
                std::thread::sleep(d);
            }
            Ok(ExitCode::SUCCESS)
        }
        SerialCmd::Pair { link, run_for } => {
            // Before any thread starts: the stop signals wait for us.
            let stop = switchboard::process::block_termination()?;
            let pair = serial::SerialPair::new()?;
            let ends = [pair.path(0).to_owned(), pair.path(1).to_owned()];
            let mut links = Links(Vec::new());
            for (l, end) in link.iter().zip(&ends) {
                std::os::unix::fs::symlink(end, l).map_err(|e| anyhow::anyhow!("linking {l} to {end}: {e}"))?;
                links.0.push(l.clone());
            }
            let shown: Vec<&str> = if link.is_empty() {
                ends.iter().map(String::as_str).collect()
            } else {
                link.iter().map(String::as_str).collect()
            };
            match json {
                true => out!("{}", json!({"ends": shown, "devices": ends})),
                false => out!("{}\t{}", shown[0], shown[1]),
            }
            note!("null-modem between {} and {} (pid {}); interrupt to stop", ends[0], ends[1], std::process::id());
            match run_for {
                Some(d) => std::thread::sleep(d),
                None => drop(stop.wait()),
            }
            drop(pair);
            drop(links);
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
            let line_events = LINE_EVENTS.iter().fold(0, |m, (bit, _)| m | bit);
            // Modem-line events where the driver reports them.
            let watch_lines = port.set_event_mask(events::RXCHAR | line_events).is_ok();
            let (mut seen, mut buf) = (0usize, vec![0u8; 4096]);
            let mut last = Instant::now();
            loop {
                if watch_lines {
                    let happened = match port.wait_event(Some(idle.saturating_sub(last.elapsed()))) {
                        Ok(e) => e,
                        Err(switchboard::Error::Timeout) => return Ok(ExitCode::from(EXIT_TIMEOUT)),
                        Err(e) => return Err(e.into()),
                    };
                    report_events(&port, happened & line_events, json)?;
                    if happened & events::RXCHAR == 0 {
                        continue;
                    }
                }
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
