//! `switchboard dde sheet|advise|request|poke|execute|ls`.

use std::cell::RefCell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;
use switchboard::clipboard::CF_TEXT;
use switchboard::dde::sheet::{self, Sheet};
use switchboard::dde::{dmlerr, Dde, Event, Reply};
use switchboard::time::Deadline;
use switchboard::Error;

use crate::cli::parse_duration;
use crate::EXIT_TIMEOUT;

/// How long a transaction waits by default.
const TRANSACTION: &str = "10s";

#[derive(Debug, Subcommand)]
pub enum DdeCmd {
    /// Serve a small spreadsheet: items R1C1… hold numbers, text or
    /// formulas (=R1C1*2+SUM(R1C2:R3C2)); pokes and `R1C1=…` executes set
    /// cells, and every cell that changes is published to its advise loops.
    #[command(after_help = "Example:\n  switchboard dde sheet sheet --set R3C1==R1C1*2 &\n  \
                            switchboard dde advise sheet Sheet1 R3C1 &\n  \
                            switchboard dde poke sheet Sheet1 R1C1 21\n\n\
                            Each change is printed as `ITEM = VALUE` (--format json: one object per line).")]
    Sheet {
        /// The service to register.
        #[arg(default_value = "sheet")]
        service: String,
        /// The sheet's topic.
        #[arg(long, default_value = "Sheet1")]
        topic: String,
        /// Cells to set first, as ITEM=TEXT (a formula starts with `=`: R3C1==R1C1*2).
        #[arg(long, value_name = "ITEM=TEXT")]
        set: Vec<String>,
    },
    /// Keep an advise loop on an item and print every update, in order.
    #[command(after_help = "Example:\n  switchboard dde advise sheet Sheet1 R3C1 --count 3\n\n\
                            Each update is one line: the value (a warm loop prints the value it then requests; \
                            --format json: {\"item\", \"value\"}). The loop ends after --count updates or when \
                            the server goes (exit code 1).")]
    Advise {
        /// The service.
        service: String,
        /// The topic.
        topic: String,
        /// The item.
        item: String,
        /// Exit after this many updates.
        #[arg(long)]
        count: Option<u64>,
        /// A warm loop: notifications only; each is followed by a request.
        #[arg(long, conflicts_with = "ackreq")]
        warm: bool,
        /// An ack-paced loop: the server waits for each update to be taken
        /// (values in between may be skipped; the latest always comes).
        #[arg(long)]
        ackreq: bool,
    },
    /// Request an item's value and print it.
    #[command(after_help = "Example:\n  switchboard dde request sheet Sheet1 R1C1\n  \
                            switchboard dde request sheet System Topics")]
    Request {
        /// The service.
        service: String,
        /// The topic.
        topic: String,
        /// The item.
        item: String,
        /// Give up after this long (exit code 3).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = TRANSACTION)]
        timeout: Duration,
    },
    /// Give an item a new value (the arguments joined by spaces).
    #[command(after_help = "Example:\n  switchboard dde poke sheet Sheet1 R1C1 21")]
    Poke {
        /// The service.
        service: String,
        /// The topic.
        topic: String,
        /// The item.
        item: String,
        /// The value.
        #[arg(required = true, allow_hyphen_values = true)]
        value: Vec<String>,
        /// Give up after this long (exit code 3).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = TRANSACTION)]
        timeout: Duration,
    },
    /// Run a command on the server (the arguments joined by spaces).
    #[command(after_help = "Example:\n  switchboard dde execute sheet Sheet1 R2C1=5\n  \
                            switchboard dde execute sheet Sheet1 clear")]
    Execute {
        /// The service.
        service: String,
        /// The topic.
        topic: String,
        /// The command.
        #[arg(required = true, allow_hyphen_values = true)]
        command: Vec<String>,
        /// Give up after this long (exit code 3).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = TRANSACTION)]
        timeout: Duration,
    },
    /// List the (service, topic) pairs this user's servers accept.
    #[command(after_help = "Example:\n  switchboard dde ls\n  switchboard dde ls sheet")]
    Ls {
        /// Only this service.
        service: Option<String>,
    },
}

/// A client instance whose callback ignores everything.
fn client() -> switchboard::Result<Dde> {
    Dde::new(|_, _| Reply::NotProcessed)
}

/// A transaction's outcome as an exit code: timeouts are 3.
fn finish(what: &str, r: switchboard::Result<()>) -> anyhow::Result<ExitCode> {
    match r {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Error::Dde(
            dmlerr::DATAACKTIMEOUT | dmlerr::POKEACKTIMEOUT | dmlerr::EXECACKTIMEOUT | dmlerr::ADVACKTIMEOUT,
        )) => {
            note!("{what}: no answer in time");
            Ok(ExitCode::from(EXIT_TIMEOUT))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn run(cmd: DdeCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        DdeCmd::Sheet { service, topic, set } => {
            let cells = Rc::new(RefCell::new(Sheet::default()));
            for s in &set {
                let (item, text) =
                    s.split_once('=').ok_or_else(|| anyhow::anyhow!("--set wants ITEM=TEXT, not {s:?}"))?;
                cells.borrow_mut().set(item, text)?;
            }
            let dde = sheet::serve(&service, &topic, cells, move |item, value| match json {
                true => out!("{}", json!({"item": item, "value": value})),
                false => out!("{item} = {value}"),
            })?;
            note!("serving sheet {service:?}, topic {topic:?} (pid {}): items R1C1…", std::process::id());
            dde.serve(Deadline::NEVER)?;
            Ok(ExitCode::SUCCESS)
        }
        DdeCmd::Advise { service, topic, item, count, warm, ackreq } => {
            let got: Rc<RefCell<Vec<Option<Vec<u8>>>>> = Rc::default();
            let sink = got.clone();
            let dde = Dde::new(move |_, e| match e {
                Event::AdviseData { data, .. } => {
                    sink.borrow_mut().push(data.map(<[u8]>::to_vec));
                    Reply::Ack
                }
                _ => Reply::NotProcessed,
            })?;
            let conv = dde.connect(&service, &topic)?;
            let long = Duration::from_secs(10);
            match (warm, ackreq) {
                (true, _) => conv.advise_nodata(&item, CF_TEXT, long)?,
                (false, true) => conv.advise_ackreq(&item, CF_TEXT, long)?,
                (false, false) => conv.advise(&item, CF_TEXT, long)?,
            }
            note!("advising {item:?} of {service:?}/{topic:?} (server pid {})", conv.server_pid());
            let mut printed = 0u64;
            while count.is_none_or(|c| printed < c) {
                if !conv.is_connected() {
                    anyhow::bail!("the server ended the conversation");
                }
                dde.pump(Duration::from_secs(1))?;
                let updates: Vec<_> = got.borrow_mut().drain(..).collect();
                for update in updates {
                    let bytes = match update {
                        Some(d) => d,
                        None => conv.request(&item, CF_TEXT, long)?,
                    };
                    let value = String::from_utf8_lossy(&bytes);
                    match json {
                        true => out!("{}", json!({"item": item, "value": value})),
                        false => out!("{value}"),
                    }
                    printed += 1;
                    if count.is_some_and(|c| printed >= c) {
                        break;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DdeCmd::Request { service, topic, item, timeout } => {
            let dde = client()?;
            let conv = dde.connect(&service, &topic)?;
            let r = conv.request_text(&item, timeout).map(|v| out!("{v}"));
            finish(&item, r)
        }
        DdeCmd::Poke { service, topic, item, value, timeout } => {
            let dde = client()?;
            let conv = dde.connect(&service, &topic)?;
            finish(&item, conv.poke_text(&item, &value.join(" "), timeout))
        }
        DdeCmd::Execute { service, topic, command, timeout } => {
            let dde = client()?;
            let conv = dde.connect(&service, &topic)?;
            let command = command.join(" ");
            finish(&command, conv.execute(&command, timeout))
        }
        DdeCmd::Ls { service } => {
            let dde = client()?;
            let mut pairs = dde.wildconnect(service.as_deref(), None);
            pairs.sort();
            pairs.dedup();
            for (s, t) in pairs {
                match json {
                    true => out!("{}", json!({"service": s, "topic": t})),
                    false => out!("{s}\t{t}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
