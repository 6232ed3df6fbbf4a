//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Classic inter-process communication mechanisms, natively on Linux.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about, after_help = "Exit codes: 0 ok, 1 error, 2 usage, 3 wait timed out.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every live named object: kind, scope, name, owner pid, holders.
    Ls {
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// File mapping (named shared memory).
    #[command(subcommand)]
    Mapping(MappingCmd),
    /// Named mutex.
    #[command(subcommand)]
    Mutex(MutexCmd),
    /// Named semaphore.
    #[command(subcommand)]
    Semaphore(SemaphoreCmd),
    /// Named event.
    #[command(subcommand)]
    Event(EventCmd),
    /// Completion port (a cross-process packet queue).
    #[command(subcommand)]
    Port(PortCmd),
    /// Named pipe: serve, connect, send, call.
    #[command(subcommand)]
    Pipe(PipeCmd),
    /// Mailslot: create (and print what arrives), read, write, info.
    #[command(subcommand)]
    Mailslot(MailslotCmd),
    /// Sockets with length-prefixed frames: listen (print what arrives), send.
    #[command(subcommand)]
    Socket(SocketCmd),
    /// Start real child processes, exercise every mechanism, print a table.
    Tour {
        /// Round trips per timed row.
        #[arg(long, default_value_t = 2000)]
        rounds: u32,
    },
    /// Measure every path against its physical floor in one run (ratios, p50/p99).
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

/// How long a `create` keeps the object alive (objects die with their last holder).
#[derive(Debug, Args)]
pub struct Hold {
    /// Hold for this many seconds, then exit (default: until interrupted).
    #[arg(long)]
    pub seconds: Option<u64>,
}

/// A wait timeout.
#[derive(Debug, Args)]
pub struct Timeout {
    /// Give up after this many milliseconds (exit code 3); default: wait forever.
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum MappingCmd {
    /// Create (or open) a mapping and hold it.
    Create {
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
    Write {
        name: String,
        data: String,
        #[arg(long, default_value_t = 0)]
        offset: usize,
    },
    /// Read bytes from a mapping (as text, or --hex).
    Read {
        name: String,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Bytes to read (default: up to the first NUL, at most 4 KiB).
        #[arg(long)]
        len: Option<usize>,
        #[arg(long)]
        hex: bool,
    },
    /// Show a mapping's size, protection and holders.
    Info { name: String },
}

#[derive(Debug, Subcommand)]
pub enum MutexCmd {
    /// Create (or open) a mutex and hold the handle (not the lock).
    Create {
        name: String,
        #[command(flatten)]
        hold: Hold,
    },
    /// Acquire the mutex, run a command, release.
    Run {
        name: String,
        #[command(flatten)]
        timeout: Timeout,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Show the owner, if any.
    Info { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SemaphoreCmd {
    /// Create (or open) a semaphore and hold it.
    Create {
        name: String,
        #[arg(long, default_value_t = 0)]
        initial: u32,
        #[arg(long, default_value_t = 1)]
        maximum: u32,
        #[command(flatten)]
        hold: Hold,
    },
    /// Add counts; prints the previous count.
    Release {
        name: String,
        #[arg(default_value_t = 1)]
        count: u32,
    },
    /// Take one count.
    Wait {
        name: String,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Show count and maximum.
    Info { name: String },
}

#[derive(Debug, Subcommand)]
pub enum EventCmd {
    /// Create (or open) an event and hold it.
    Create {
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
    Set { name: String },
    /// Un-signal the event.
    Reset { name: String },
    /// Release current waiters and leave it unsignalled.
    Pulse { name: String },
    /// Wait until signalled.
    Wait {
        name: String,
        #[command(flatten)]
        timeout: Timeout,
    },
}

#[derive(Debug, Subcommand)]
pub enum PipeCmd {
    /// Serve a pipe: print every message (or line of bytes) each client sends;
    /// clients are served one after another.
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
    },
    /// Connect to a pipe: standard input goes to the pipe, the pipe to standard output.
    Connect {
        name: String,
        /// Wait this long for a free instance.
        #[arg(long, value_name = "MS", default_value_t = 5000)]
        wait: u64,
        /// After standard input ends, keep printing replies this long.
        #[arg(long, value_name = "MS", default_value_t = 300)]
        linger: u64,
    },
    /// Send each MESSAGE as one write, then close.
    Send {
        name: String,
        #[arg(required = true)]
        messages: Vec<String>,
    },
    /// Send one message and print the one-message reply (classic CallNamedPipe).
    Call {
        name: String,
        message: String,
        /// Wait this long for a free instance (exit code 3 when none).
        #[arg(long, value_name = "MS", default_value_t = 5000)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum SocketCmd {
    /// Listen on ADDR and print every frame each client sends ("PEER: TEXT");
    /// clients are served one after another. Unix peers show as "pid N uid U".
    Listen {
        /// `tcp:HOST:PORT` (port 0 picks one), `unix:PATH` or `unix:@NAME` (abstract).
        addr: String,
        /// Exit after this many frames.
        #[arg(long)]
        count: Option<u64>,
        /// Wait at most this long for each frame (exit code 3 when none came).
        #[arg(long, value_name = "MS")]
        timeout: Option<u64>,
        /// Let other sockets that ask share the port (SO_REUSEPORT).
        #[arg(long)]
        reuse_port: bool,
    },
    /// Connect to ADDR and send each MESSAGE as one frame.
    Send {
        addr: String,
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
    },
    /// Create a mailslot, read up to --count messages, print them, and exit
    /// (exit code 3 when none arrives within --timeout).
    Read {
        name: String,
        /// Read timeout per message; 0 answers at once.
        #[arg(long, value_name = "MS", default_value_t = 5000)]
        timeout: u64,
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Also receive broadcasts from the network (opens a UDP port).
        #[arg(long)]
        broadcast: bool,
        #[command(flatten)]
        net: BroadcastArgs,
    },
    /// Write each MESSAGE as one message; `\\*\mailslot\NAME` broadcasts.
    Write {
        name: String,
        #[arg(required = true)]
        messages: Vec<String>,
        /// Wait this long for room in a full mailslot.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        wait: u64,
        #[command(flatten)]
        net: BroadcastArgs,
    },
    /// Print a mailslot's max message size, queued count, next size and read timeout.
    Info {
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PortCmd {
    /// Create a port and hold it (this process is its server: when it exits the port closes).
    Create {
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
    Post {
        name: String,
        bytes: u32,
        key: u64,
        #[arg(default_value_t = 0)]
        overlapped: u64,
    },
    /// Take packets (up to --max) and print them.
    Get {
        name: String,
        #[command(flatten)]
        timeout: Timeout,
        #[arg(long, default_value_t = 1)]
        max: usize,
    },
}
