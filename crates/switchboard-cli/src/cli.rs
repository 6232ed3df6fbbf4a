//! Command-line definitions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use crate::command::clip::ClipCmd;
pub use crate::command::dde::DdeCmd;
#[cfg(feature = "inet")]
pub use crate::command::http::HttpCmd;
pub use crate::command::mailslot::MailslotCmd;
pub use crate::command::mapping::MappingCmd;
pub use crate::command::message::MessageCmd;
pub use crate::command::pipe::PipeCmd;
pub use crate::command::port::PortCmd;
pub use crate::command::rpc::RpcCmd;
pub use crate::command::serial::SerialCmd;
pub use crate::command::socket::SocketCmd;
pub use crate::command::sync::{EventCmd, MutexCmd, SemaphoreCmd, TimerCmd};

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
    /// List every live named object: kind, scope, name, owner pid, holders;
    /// with --host, the pipes and mailslots another host's gateway exposes.
    #[command(after_help = "Example:\n  switchboard ls --json\n  switchboard ls --host beta")]
    Ls {
        /// Print one JSON object per line (same as `--format json`).
        #[arg(long)]
        json: bool,
        /// Ask HOST's gateway, through this host's (`switchboard gateway`).
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
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
    /// Waitable timer: signalled when due, once or every period.
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard timer create tick &\n  switchboard timer set tick 1s --period 1s\n  switchboard timer wait tick"
    )]
    Timer(TimerCmd),
    /// Wait for any (or all) of several objects: events, mutexes,
    /// semaphores, timers, ports, processes (classic WaitForMultipleObjects).
    #[command(after_help = "Example:\n  switchboard wait event:ready process:4242 --timeout 30s\n  \
                            switchboard wait --all semaphore:slots mutex:build-lock\n\n\
                            Prints which object was signalled (by its position, from 0). A mutex or \
                            semaphore waited for is taken; a port or process is only looked at.")]
    Wait {
        /// `KIND:NAME` for each object — kind `event`, `mutex`, `semaphore`,
        /// `timer` or `port` and its name, or `process:PID`.
        #[arg(required = true, value_name = "KIND:NAME")]
        objects: Vec<String>,
        /// Wait until every object is signalled at once (default: any one).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        timeout: Timeout,
    },
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
    /// Window messages: a named receiver (listen), post, send with a
    /// result, data copy (WM_COPYDATA).
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard message listen demo-rx --reply 42 &\n  switchboard message send demo-rx WM_USER 1"
    )]
    Message(MessageCmd),
    /// The clipboard of this user's session: get, set, formats, watch.
    #[command(
        subcommand,
        after_help = "Example:\n  echo hello | switchboard clip set\n  switchboard clip get\n\n\
                      The clipboard lives in $SWITCHBOARD_CLIPBOARD_DIR, else $XDG_RUNTIME_DIR/switchboard-clipboard, \
                      else /tmp/switchboard-clipboard-UID."
    )]
    Clip(ClipCmd),
    /// DDE: a live spreadsheet server, advise loops, request, poke,
    /// execute, and the services this user runs.
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard dde sheet sheet &\n  switchboard dde advise sheet Sheet1 R3C1 &\n  \
                      switchboard dde poke sheet Sheet1 R1C1 21"
    )]
    Dde(DdeCmd),
    /// RPC: the servers this user runs (the endpoint mapper), what a
    /// server serves, a call by method name, and the example `Calc` service.
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard rpc calc local:calc &\n  switchboard rpc ls\n  \
                      switchboard rpc call local:calc Calc add 2 3"
    )]
    Rpc(RpcCmd),
    /// Serial ports: the ports present, open one (settings, modem lines,
    /// break), a virtual null-modem pair, send a line, print what arrives.
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard serial ls\n  switchboard serial monitor /dev/ttyUSB0 --baud 115200 &\n  \
                      switchboard serial send /dev/ttyUSB0 --baud 115200 hello"
    )]
    Serial(SerialCmd),
    /// Internet file transfer: resumable downloads and uploads with a
    /// progress bar, and a folder served over HTTP.
    #[cfg(feature = "inet")]
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard http serve ./shared --listen 127.0.0.1:8080 &\n  \
                      switchboard http get http://127.0.0.1:8080/big.iso -o big.iso"
    )]
    Http(HttpCmd),
    /// This host's network gateway (Zenoh): exposes this host's pipes and
    /// mailslots to other hosts, and reaches theirs (\\HOST\pipe\NAME,
    /// \\HOST\mailslot\NAME, \\*\mailslot\NAME) for this host's processes.
    #[cfg(feature = "gateway")]
    #[command(after_help = "Example:\n  switchboard gateway --host alpha --listen tcp/127.0.0.1:7447 &\n  \
                      switchboard gateway --host beta --listen tcp/127.0.0.1:7448 --connect tcp/127.0.0.1:7447\n\n\
                      Off this machine, mutual TLS:\n  \
                      switchboard gateway --host alpha --listen tls/10.0.0.1:7447 --tls-ca ca.pem --tls-cert alpha.pem --tls-key alpha.key \\\n    \
                      --allow beta.example --allow gamma.example")]
    Gateway(crate::command::gateway::GatewayArgs),
    /// Sockets with length-prefixed frames: listen (print what arrives), send.
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard socket listen unix:@frames --count 1 &\n  switchboard socket send unix:@frames hello"
    )]
    Socket(SocketCmd),
    /// Which mechanism for a job: answers to a few questions (flags, or
    /// asked on a terminal) → recommendations with reasons and round trips
    /// measured here.
    #[command(after_help = "Example:\n  switchboard advise --fanout many-to-one --size 512\n  \
                            switchboard advise --reach network --json\n\n\
                            With no flags on a terminal, it asks. Each measured row is a quick bench on this machine \
                            (a few seconds); --no-measure gives the reasons alone.")]
    Advise(crate::command::advise::Answers),
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
        /// Run both processes on one CPU (where spinning steals the peer's
        /// time); by default they run on two.
        #[arg(long)]
        same_core: bool,
        /// Instead of round trips: N writer processes into one mailslot,
        /// one port and one named pipe server, for each N given
        /// (messages per second, age p50/p99 against the spin floor, and
        /// each writer's count).
        #[arg(long, value_name = "N,…", value_delimiter = ',', conflicts_with_all = ["only", "plot"])]
        fan_in: Vec<usize>,
    },
    /// Every mechanism at once from several processes, killing them at
    /// random; checks nothing acknowledged is lost, nothing is left behind
    /// and memory stays flat.
    #[command(after_help = "Example:\n  switchboard soak --minutes 10\n\n\
                            Prints a progress line every 10 s and a report at the end; exits 1 if a check failed.")]
    Soak {
        /// How long to run (fractions allowed: 0.5 is 30 s).
        #[arg(long, default_value_t = 1.0)]
        minutes: f64,
        /// Worker processes running at once (each drives every mechanism).
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Seed of the kill schedule (default: from the process id; printed).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// (internal) a worker of `soak`.
    #[command(hide = true)]
    SoakPeer { args: Vec<String> },
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
            | Command::Timer(TimerCmd::Create { hold, .. })
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
