//! `switchboard mapping create|write|read|info`.

use std::process::ExitCode;

use switchboard::mapping::{Access, Mapping};

use crate::cli::MappingCmd;

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
