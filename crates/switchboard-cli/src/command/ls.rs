//! `switchboard ls` (spec 00-S10).

use std::process::ExitCode;

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};

pub fn run(json: bool) -> anyhow::Result<ExitCode> {
    let entries = switchboard::namespace::list();
    if json {
        for e in &entries {
            out!(
                "{{\"kind\":\"{}\",\"scope\":\"{}\",\"name\":{:?},\"owner_pid\":{},\"holders\":{}}}",
                e.kind,
                e.scope,
                e.name,
                e.owner_pid,
                e.holders
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        out!("no live named objects");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header(["kind", "scope", "name", "owner pid", "holders"]);
    for e in entries {
        table.add_row([
            e.kind.to_string(),
            e.scope.to_string(),
            e.name,
            e.owner_pid.to_string(),
            e.holders.to_string(),
        ]);
    }
    out!("{table}");
    Ok(ExitCode::SUCCESS)
}
