//! Command-line definitions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Classic inter-process communication mechanisms, natively on Linux.
#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about,
    after_help = "Durations (--timeout, --hold, --linger) take a unit: 500ms, 5s, 2m, 1h; a bare number is milliseconds.\n\
                  Exit codes: 0 ok, 1 error, 2 usage, 3 wait timed out.\n\n\
                  Example:\n  switchboard event create ready --manual &\n  switchboard event wait ready --timeout 5s"
)]
pub struct Cli {
    /// How verbs that report print it: `table` for people, `json` for
    /// programs (`ls`, `bench`, `mailslot info`).
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

/// How reports are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// JSON for programs.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every live named object: kind, scope, name, owner pid, holders.
    #[command(after_help = "Example:\n  switchboard ls --json")]
    Ls {
        /// Print one JSON object per line (same as `--format json`).
        #[arg(long)]
        json: bool,
    },
    /// File mapping (named shared memory).
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard mapping create demo-map 4096 --init hi &\n  switchboard mapping read demo-map"
    )]
    Mapping(MappingCmd),
    /// Named mutex.
    #[command(subcommand, after_help = "Example:\n  switchboard mutex run build-lock -- make")]
    Mutex(MutexCmd),
    /// Named semaphore.
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard semaphore create slots --initial 2 --maximum 2 &\n  switchboard semaphore wait slots --timeout 5s"
    )]
    Semaphore(SemaphoreCmd),
    /// Named event.
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard event create ready --manual &\n  switchboard event set ready"
    )]
    Event(EventCmd),
    /// Completion port (a cross-process packet queue).
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard port create demo-jobs &\n  switchboard port post demo-jobs 512 7"
    )]
    Port(PortCmd),
    /// Named pipe: serve, connect, send, call.
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard pipe serve demo-pipe --message --echo &\n  switchboard pipe call demo-pipe hello"
    )]
    Pipe(PipeCmd),
    /// Mailslot: create (and print what arrives), read, write, info.
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard mailslot create inbox &\n  switchboard mailslot write inbox hello"
    )]
    Mailslot(MailslotCmd),
    /// Sockets with length-prefixed frames: listen (print what arrives), send.
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard socket listen unix:@frames --count 1 &\n  switchboard socket send unix:@frames hello"
    )]
    Socket(SocketCmd),
    /// Start real child processes, exercise every mechanism, print a table.
    #[command(after_help = "Example:\n  switchboard tour --rounds 500")]
    Tour {
        /// Round trips per timed row.
        #[arg(long, default_value_t = 2000)]
        rounds: u32,
    },
    /// Measure every path against its physical floor in one run (ratios, p50/p99).
    #[command(after_help = "Example:\n  switchboard bench --quick --only peer_death,mailslot")]
    Bench {
        /// Fewer rounds: finishes in well under a minute.
        #[arg(long)]
        quick: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also write an SVG chart of the ratios.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// Measure only these paths (comma-separated) and their floors.
        #[arg(long, value_name = "PATH,…", value_delimiter = ',')]
        only: Vec<String>,
    },
    /// (internal) the child side of `bench`.
    #[command(hide = true)]
    BenchPeer { args: Vec<String> },
    /// (internal) the child side of `tour`.
    #[command(hide = true)]
    TourPeer { role: String, args: Vec<String> },
}

/// The one duration convention of every flag: `500ms`, `5s`, `2m`, `1h`;
/// a bare number is milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{text:?} is not a duration (like 500ms, 5s, 2m)"))?;
    let ms = match unit {
        "" | "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("unknown unit {unit:?} in {text:?}: use ms, s, m or h")),
    };
    ms.map(Duration::from_millis).ok_or_else(|| format!("{text:?} is too long"))
}

/// How long a `create` keeps the object alive (objects die with their last holder).
#[derive(Debug, Args)]
pub struct Hold {
    /// Hold for this long, then exit (default: until interrupted).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub hold: Option<Duration>,
    /// Hold for this many seconds (older spelling of --hold).
    #[arg(long, hide = true, conflicts_with = "hold")]
    pub seconds: Option<u64>,
    /// Hold it in the background: return once it exists, printing the
    /// holder's pid.
    #[arg(long)]
    pub detach: bool,
}

impl Command {
    /// Whether the command asked to run in the background.
    pub fn detach(&self) -> bool {
        match self {
            Command::Mapping(MappingCmd::Create { hold, .. })
            | Command::Mutex(MutexCmd::Create { hold, .. })
            | Command::Semaphore(SemaphoreCmd::Create { hold, .. })
            | Command::Event(EventCmd::Create { hold, .. })
            | Command::Port(PortCmd::Create { hold, .. }) => hold.detach,
            Command::Pipe(PipeCmd::Serve { detach, .. }) | Command::Mailslot(MailslotCmd::Create { detach, .. }) => {
                *detach
            }
            _ => false,
        }
    }
}

impl Hold {
    /// How long to hold, if not forever.
    pub fn duration(&self) -> Option<Duration> {
        self.hold.or(self.seconds.map(Duration::from_secs))
    }
}

/// A wait timeout.
#[derive(Debug, Args)]
pub struct Timeout {
    /// Give up after this long (exit code 3); default: wait forever.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum MappingCmd {
    /// Create (or open) a mapping and hold it.
    #[command(after_help = "Example:\n  switchboard mapping create demo-map 4096 --init hello --hold 60s &")]
    Create {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// Size in bytes (for --file, 0 = the file's size).
        size: u64,
        /// Back the mapping with this file instead of memory.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Initial contents written at offset 0 (only if newly created).
        #[arg(long)]
        init: Option<String>,
        #[command(flatten)]
        hold: Hold,
    },
    /// Write text into a mapping.
    #[command(after_help = "Example:\n  switchboard mapping write demo-map \"new text\" --offset 0")]
    Write {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// The text to write.
        data: String,
        /// Byte offset in the mapping.
        #[arg(long, default_value_t = 0)]
        offset: usize,
    },
    /// Read bytes from a mapping (as text, or --hex).
    #[command(after_help = "Example:\n  switchboard mapping read demo-map --len 8 --hex")]
    Read {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// Byte offset in the mapping.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Bytes to read (default: up to the first NUL, at most 4 KiB).
        #[arg(long)]
        len: Option<usize>,
        /// Print the bytes in hex instead of as text.
        #[arg(long)]
        hex: bool,
    },
    /// Show a mapping's size, protection and holders.
    #[command(after_help = "Example:\n  switchboard mapping info demo-map")]
    Info {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MutexCmd {
    /// Create (or open) a mutex and hold the handle (not the lock).
    #[command(after_help = "Example:\n  switchboard mutex create build-lock &")]
    Create {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        #[command(flatten)]
        hold: Hold,
    },
    /// Acquire the mutex, run a command, release.
    #[command(after_help = "Example:\n  switchboard mutex run build-lock --timeout 30s -- make")]
    Run {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        #[command(flatten)]
        timeout: Timeout,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Show the owner, if any.
    #[command(after_help = "Example:\n  switchboard mutex info build-lock")]
    Info {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SemaphoreCmd {
    /// Create (or open) a semaphore and hold it.
    #[command(after_help = "Example:\n  switchboard semaphore create slots --initial 2 --maximum 2 &")]
    Create {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// The initial count.
        #[arg(long, default_value_t = 0)]
        initial: u32,
        /// The largest count.
        #[arg(long, default_value_t = 1)]
        maximum: u32,
        #[command(flatten)]
        hold: Hold,
    },
    /// Add counts; prints the previous count.
    #[command(after_help = "Example:\n  switchboard semaphore release slots 1")]
    Release {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// Counts to add.
        #[arg(default_value_t = 1)]
        count: u32,
    },
    /// Take one count.
    #[command(after_help = "Example:\n  switchboard semaphore wait slots --timeout 5s")]
    Wait {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Show count and maximum.
    #[command(after_help = "Example:\n  switchboard semaphore info slots")]
    Info {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventCmd {
    /// Create (or open) an event and hold it.
    #[command(after_help = "Example:\n  switchboard event create ready --manual &")]
    Create {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// Manual-reset (default: auto-reset).
        #[arg(long)]
        manual: bool,
        /// Initially signalled.
        #[arg(long)]
        set: bool,
        #[command(flatten)]
        hold: Hold,
    },
    /// Signal the event.
    #[command(after_help = "Example:\n  switchboard event set ready")]
    Set {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
    },
    /// Un-signal the event.
    #[command(after_help = "Example:\n  switchboard event reset ready")]
    Reset {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
    },
    /// Release current waiters and leave it unsignalled.
    #[command(after_help = "Example:\n  switchboard event pulse ready")]
    Pulse {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
    },
    /// Wait until signalled.
    #[command(after_help = "Example:\n  switchboard event wait ready --timeout 5s")]
    Wait {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        #[command(flatten)]
        timeout: Timeout,
    },
}

#[derive(Debug, Subcommand)]
pub enum PipeCmd {
    /// Serve a pipe: print every message (or line of bytes) each client sends;
    /// clients are served one after another.
    #[command(after_help = "Example:\n  switchboard pipe serve demo-pipe --message --echo &")]
    Serve {
        /// `NAME` or `\\.\pipe\NAME`.
        name: String,
        /// A message pipe (each write one message) instead of a byte pipe.
        #[arg(long)]
        message: bool,
        /// Write every message back to its sender.
        #[arg(long)]
        echo: bool,
        /// Exit after serving this many clients (default: serve forever).
        #[arg(long)]
        clients: Option<u32>,
        /// Serve in the background: return once the pipe exists, printing
        /// the server's pid (what clients send is not printed).
        #[arg(long)]
        detach: bool,
    },
    /// Connect to a pipe: standard input goes to the pipe, the pipe to standard output.
    #[command(after_help = "Example:\n  echo hello | switchboard pipe connect demo-pipe --timeout 5s")]
    Connect {
        /// The pipe: `NAME` or `\\.\pipe\NAME`.
        name: String,
        /// Wait this long for a free instance.
        #[arg(long, alias = "wait", value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
        timeout: Duration,
        /// After standard input ends, keep printing replies this long.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "300ms")]
        linger: Duration,
    },
    /// Send each MESSAGE as one write, then close.
    #[command(after_help = "Example:\n  switchboard pipe send demo-pipe one two")]
    Send {
        /// The pipe: `NAME` or `\\.\pipe\NAME`.
        name: String,
        /// The messages, each one write.
        #[arg(required = true)]
        messages: Vec<String>,
    },
    /// Send one message and print the one-message reply (classic CallNamedPipe).
    #[command(after_help = "Example:\n  switchboard pipe call demo-pipe \"are you there?\"")]
    Call {
        /// The pipe: `NAME` or `\\.\pipe\NAME`.
        name: String,
        /// The request message.
        message: String,
        /// Wait this long for a free instance (exit code 3 when none).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
        timeout: Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum SocketCmd {
    /// Listen on ADDR and print every frame each client sends ("PEER: TEXT");
    /// clients are served one after another. Unix peers show as "pid N uid U".
    #[command(after_help = "Example:\n  switchboard socket listen unix:@frames --count 2 &")]
    Listen {
        /// `tcp:HOST:PORT` (port 0 picks one), `unix:PATH` or `unix:@NAME` (abstract).
        addr: String,
        /// Exit after this many frames.
        #[arg(long)]
        count: Option<u64>,
        /// Wait at most this long for each frame (exit code 3 when none came).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// Let other sockets that ask share the port (SO_REUSEPORT).
        #[arg(long)]
        reuse_port: bool,
    },
    /// Connect to ADDR and send each MESSAGE as one frame.
    #[command(after_help = "Example:\n  switchboard socket send unix:@frames hello world")]
    Send {
        /// `tcp:HOST:PORT`, `unix:PATH` or `unix:@NAME` (abstract).
        addr: String,
        /// The messages, each one frame.
        #[arg(required = true)]
        messages: Vec<String>,
    },
}

/// Where mailslot broadcasts go and arrive.
#[derive(Debug, Args)]
pub struct BroadcastArgs {
    /// UDP port of broadcasts (default 13138, or $SWITCHBOARD_MAILSLOT_PORT).
    #[arg(long)]
    pub port: Option<u16>,
}

#[derive(Debug, Subcommand)]
pub enum MailslotCmd {
    /// Create a mailslot and print every message that arrives ("SENDER: TEXT"),
    /// until Ctrl-C or --count messages. This process is its server.
    #[command(after_help = "Example:\n  switchboard mailslot create inbox --max-size 400 &")]
    Create {
        /// `NAME` or `\\.\mailslot\NAME`.
        name: String,
        /// Largest message in bytes (0: any size).
        #[arg(long, default_value_t = 0)]
        max_size: usize,
        /// Also receive broadcasts from the network (opens a UDP port).
        #[arg(long)]
        broadcast: bool,
        #[command(flatten)]
        net: BroadcastArgs,
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// Serve in the background: return once the mailslot exists,
        /// printing the server's pid (what arrives is not printed).
        #[arg(long)]
        detach: bool,
    },
    /// Create a mailslot, read up to --count messages, print them, and exit
    /// (exit code 3 when none arrives within --timeout).
    #[command(after_help = "Example:\n  switchboard mailslot read inbox --count 2 --timeout 5s")]
    Read {
        /// The mailslot: `NAME` or `\\.\mailslot\NAME` (for write, `\\*\mailslot\NAME` broadcasts).
        name: String,
        /// Read timeout per message; 0 answers at once.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
        timeout: Duration,
        /// Messages to read.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Also receive broadcasts from the network (opens a UDP port).
        #[arg(long)]
        broadcast: bool,
        #[command(flatten)]
        net: BroadcastArgs,
    },
    /// Write each MESSAGE as one message; `\\*\mailslot\NAME` broadcasts.
    #[command(after_help = "Example:\n  switchboard mailslot write inbox hello \"second message\"")]
    Write {
        /// The mailslot: `NAME` or `\\.\mailslot\NAME` (for write, `\\*\mailslot\NAME` broadcasts).
        name: String,
        /// The messages, each one mailslot message.
        #[arg(required = true)]
        messages: Vec<String>,
        /// Wait this long for room in a full mailslot.
        #[arg(long, alias = "wait", value_name = "DURATION", value_parser = parse_duration, default_value = "0")]
        timeout: Duration,
        #[command(flatten)]
        net: BroadcastArgs,
    },
    /// Print a mailslot's max message size, queued count, next size and read timeout.
    #[command(after_help = "Example:\n  switchboard mailslot info inbox --json")]
    Info {
        /// The mailslot: `NAME` or `\\.\mailslot\NAME` (for write, `\\*\mailslot\NAME` broadcasts).
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PortCmd {
    /// Create a port and hold it (this process is its server: when it exits the port closes).
    #[command(after_help = "Example:\n  switchboard port create demo-jobs --concurrency 2 &")]
    Create {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// Consumers released at once (0: number of CPUs).
        #[arg(long, default_value_t = 0)]
        concurrency: u32,
        /// Packets the queue holds.
        #[arg(long, default_value_t = 4096)]
        capacity: u32,
        /// Fail posts when full instead of blocking.
        #[arg(long)]
        fail_when_full: bool,
        #[command(flatten)]
        hold: Hold,
    },
    /// Post one packet.
    #[command(after_help = "Example:\n  switchboard port post demo-jobs 512 7")]
    Post {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        /// The packet's byte count (opaque to the port).
        bytes: u32,
        /// The completion key (opaque).
        key: u64,
        /// The overlapped value (opaque).
        #[arg(default_value_t = 0)]
        overlapped: u64,
    },
    /// Take packets (up to --max) and print them.
    #[command(after_help = "Example:\n  switchboard port get demo-jobs --max 16 --timeout 1s")]
    Get {
        /// The object's name: `NAME` or `Local\NAME` (this user), `Global\NAME` (machine-wide).
        name: String,
        #[command(flatten)]
        timeout: Timeout,
        /// Most packets to take at once.
        #[arg(long, default_value_t = 1)]
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every help page has an example and describes every argument.
    #[test]
    fn every_help_page_has_an_example_and_describes_every_argument() {
        fn walk(cmd: &clap::Command, path: &str) {
            if cmd.is_hide_set() || cmd.get_name() == "help" {
                return;
            }
            let after = cmd.get_after_help().map(ToString::to_string).unwrap_or_default();
            assert!(after.contains("Example:"), "`{path}` has no example");
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" {
                    assert!(arg.get_help().is_some(), "`{path}`: argument {id} has no description");
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&super::Cli::command(), "switchboard");
    }

    #[test]
    fn durations_take_units_and_bare_numbers_are_milliseconds() {
        use std::time::Duration;
        assert_eq!(super::parse_duration("250"), Ok(Duration::from_millis(250)));
        assert_eq!(super::parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(super::parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(super::parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(super::parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(super::parse_duration("5q").is_err());
        assert!(super::parse_duration("s").is_err());
        assert!(super::parse_duration("99999999999999999999h").is_err());
    }
}
