//! `switchboard clip get|set|formats|watch`.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use switchboard::clipboard::{Clipboard, CF_TEXT};
use switchboard::Error;

use crate::cli::{parse_duration, Timeout};
use crate::EXIT_TIMEOUT;

/// Which format: by number or name, or a MIME type (a registered format of that name).
#[derive(Debug, Args)]
pub struct Format {
    /// The clipboard format (xclip's -t; `--format` is the output's): a
    /// number, a standard name (CF_TEXT, UNICODETEXT, DIB…) or a registered
    /// name (registered if new). Default: text.
    #[arg(long = "type", short = 't', value_name = "FORMAT")]
    kind: Option<String>,
    /// A MIME type, as a registered format of that name (e.g. text/html).
    #[arg(long, conflicts_with = "kind")]
    mime: Option<String>,
}

impl Format {
    fn id(&self, clip: &Clipboard) -> anyhow::Result<u32> {
        Ok(match (&self.kind, &self.mime) {
            (Some(f), _) => clip.format_by_name(f)?,
            (None, Some(m)) => clip.register_format(m)?,
            (None, None) => CF_TEXT,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum ClipCmd {
    /// Print what the clipboard holds in one format (text by default) to
    /// standard output, as bytes (exit code 3 when it holds none).
    #[command(after_help = "Example:\n  switchboard clip get\n  switchboard clip get --type CF_DIB > picture.dib")]
    Get {
        #[command(flatten)]
        format: Format,
        /// Wait this long for another process to close the clipboard.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
        wait: Duration,
    },
    /// Empty the clipboard and place data in one format: the arguments
    /// joined by spaces, or standard input when there are none (like xclip).
    #[command(after_help = "Example:\n  switchboard clip set hello world\n  \
                            printf '<b>hi</b>' | switchboard clip set --mime text/html")]
    Set {
        /// The data (default: standard input).
        data: Vec<String>,
        #[command(flatten)]
        format: Format,
        /// Wait this long for another process to close the clipboard.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
        wait: Duration,
    },
    /// List the formats on the clipboard, in placement order (synthesized ones last).
    #[command(after_help = "Example:\n  switchboard clip formats --format json")]
    Formats {
        /// Wait this long for another process to close the clipboard.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
        wait: Duration,
    },
    /// (internal) serve the clipboard's text to X clients until another takes the selection.
    #[command(hide = true)]
    ServeX11,
    /// (internal) offer the clipboard's text to Wayland clients until another replaces it.
    #[command(hide = true)]
    ServeWayland,
    /// Print a line at every change of the clipboard: its sequence number
    /// and formats (and the text, if any), until --count changes.
    #[command(after_help = "Example:\n  switchboard clip watch --count 1 --timeout 30s")]
    Watch {
        /// Exit after this many changes.
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        timeout: Timeout,
    },
}

fn describe(clip: &Clipboard, formats: &[u32]) -> Vec<String> {
    formats.iter().map(|f| clip.describe_format(*f).unwrap_or_else(|| format!("{f:#06x}"))).collect()
}

/// Opens the clipboard (waiting up to `wait`), runs `f`, closes it.
fn opened<T>(clip: &Clipboard, wait: Duration, f: impl FnOnce() -> switchboard::Result<T>) -> anyhow::Result<T> {
    clip.open_timeout(None, wait)?;
    let out = f();
    clip.close()?;
    Ok(out?)
}

pub fn run(cmd: ClipCmd, json: bool) -> anyhow::Result<ExitCode> {
    let clip = Clipboard::user()?;
    match cmd {
        ClipCmd::Get { format, wait } => {
            let id = format.id(&clip)?;
            let data = opened(&clip, wait, || clip.get(id))?;
            let Some(mut data) = data else {
                note!("the clipboard holds no {}", describe(&clip, &[id])[0]);
                return Ok(ExitCode::from(EXIT_TIMEOUT));
            };
            if id == CF_TEXT {
                while data.last() == Some(&0) {
                    data.pop();
                }
            }
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(&data).and_then(|()| out.flush()) {
                crate::stdout_failed(&e);
            }
            Ok(ExitCode::SUCCESS)
        }
        ClipCmd::Set { data, format, wait } => {
            let bytes = if data.is_empty() {
                let mut b = Vec::new();
                std::io::stdin().lock().read_to_end(&mut b)?;
                b
            } else {
                data.join(" ").into_bytes()
            };
            let id = format.id(&clip)?;
            opened(&clip, wait, || {
                clip.empty()?;
                clip.set(id, &bytes)
            })?;
            note!(
                "placed {} bytes as {} (sequence {})",
                bytes.len(),
                describe(&clip, &[id])[0],
                clip.sequence_number()
            );
            for (var, verb, whom) in DESKTOPS {
                if std::env::var_os(var).is_some_and(|d| !d.is_empty()) {
                    match start_server(verb) {
                        Ok(pid) => note!("serving the text to {whom} (pid {pid}, until another replaces it)"),
                        Err(e) => note!("not shared with {whom}: {e:#}"),
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClipCmd::ServeX11 => {
            #[cfg(feature = "x11")]
            {
                switchboard::clipboard::x11::serve(&clip, || {
                    out!("ready");
                })?;
                Ok(ExitCode::SUCCESS)
            }
            #[cfg(not(feature = "x11"))]
            anyhow::bail!("this switchboard was built without the x11 feature")
        }
        ClipCmd::ServeWayland => {
            #[cfg(feature = "wayland")]
            {
                switchboard::clipboard::wayland::serve(&clip, || {
                    out!("ready");
                })?;
                Ok(ExitCode::SUCCESS)
            }
            #[cfg(not(feature = "wayland"))]
            anyhow::bail!("this switchboard was built without the wayland feature")
        }
        ClipCmd::Formats { wait } => {
            let formats = opened(&clip, wait, || clip.formats())?;
            for (id, name) in formats.iter().zip(describe(&clip, &formats)) {
                match json {
                    true => out!("{}", json!({ "id": id, "name": name })),
                    false => out!("{id:#06x} {name}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClipCmd::Watch { count, timeout } => {
            let deadline = switchboard::time::Deadline::from(timeout.timeout);
            let mut seq = clip.sequence_number();
            let mut seen = 0u64;
            while count.is_none_or(|c| seen < c) {
                seq = match clip.wait_for_change(seq, deadline) {
                    Ok(s) => s,
                    Err(Error::Timeout) => return Ok(ExitCode::from(EXIT_TIMEOUT)),
                    Err(e) => return Err(e.into()),
                };
                seen += 1;
                let (formats, text) = opened(&clip, Duration::from_secs(2), || Ok((clip.formats()?, clip.get_text()?)))
                    .unwrap_or_default();
                let names = describe(&clip, &formats);
                match json {
                    true => out!("{}", json!({ "sequence": seq, "formats": names, "text": text })),
                    false => out!("{seq}: {} {}", names.join(","), text.map(|t| format!("{t:?}")).unwrap_or_default()),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The desktops `clip set` shares its text with, as built: the variable
/// that says one is there, the `clip` verb that serves it, and whom.
const DESKTOPS: &[(&str, &str, &str)] = &[
    #[cfg(feature = "x11")]
    ("DISPLAY", "serve-x11", "X clients"),
    #[cfg(feature = "wayland")]
    ("WAYLAND_DISPLAY", "serve-wayland", "Wayland clients"),
];

/// Starts `switchboard clip VERB` (a desktop server) in a process of its
/// own (a new process group, no terminal), as xclip and wl-copy fork to
/// keep serving, and waits until it holds the selection; returns its pid.
fn start_server(verb: &str) -> anyhow::Result<u32> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe()?)
        .args(["clip", verb])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    anyhow::ensure!(line.trim() == "ready", "the serving process did not start ({:?})", child.try_wait()?);
    Ok(child.id())
}
