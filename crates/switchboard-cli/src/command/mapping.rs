//! `switchboard mapping create|write|read|info`.

use std::process::ExitCode;

use switchboard::mapping::{Access, Mapping};

use crate::cli::Hold;
use clap::Subcommand;
use std::path::PathBuf;

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

pub fn run(cmd: MappingCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        MappingCmd::Create { name, size, file, init, hold } => {
            let file = file.map(|p| std::fs::OpenOptions::new().read(true).write(true).open(p)).transpose()?;
            let m = match &file {
                Some(f) => Mapping::from_file(f, size, name.as_str())?,
                None => Mapping::create(name.as_str(), size)?,
            };
            if let (Some(text), false) = (init, m.already_existed()) {
                m.map_view(Access::Write, 0, 0)?.write(0, text.as_bytes())?;
            }
            super::hold(&format!("mapping {name} ({} bytes)", m.size()), m.already_existed(), &hold)
        }
        MappingCmd::Write { name, data, offset } => {
            let m = Mapping::open(&name, Access::Write)?;
            m.map_view(Access::Write, 0, 0)?.write(offset, data.as_bytes())?;
            out!("wrote {} bytes at offset {offset}", data.len());
            Ok(ExitCode::SUCCESS)
        }
        MappingCmd::Read { name, offset, len, hex } => {
            let m = Mapping::open(&name, Access::Read)?;
            let view = m.map_view(Access::Read, 0, 0)?;
            let avail = view.len().saturating_sub(offset);
            let mut bytes = view.read_vec(offset, len.unwrap_or(avail.min(4096)).min(avail))?;
            if len.is_none() {
                bytes.truncate(bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len()));
            }
            if hex {
                let text: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
                out!("{}", text.join(" "));
            } else {
                out!("{}", String::from_utf8_lossy(&bytes));
            }
            Ok(ExitCode::SUCCESS)
        }
        MappingCmd::Info { name } => {
            let m = Mapping::open(&name, Access::Read)?;
            let holders = super::ls_holders(&name);
            out!("mapping {name}: {} bytes, {:?}, {holders} other holder(s)", m.size(), m.protection());
            Ok(ExitCode::SUCCESS)
        }
    }
}
