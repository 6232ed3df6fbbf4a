//! `switchboard ls` (spec 00-S10): every live named object, and the names
//! whose holders did not answer.

use std::process::ExitCode;

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde_json::json;

pub fn run(json: bool, host: Option<&str>) -> anyhow::Result<ExitCode> {
    if let Some(host) = host {
        return remote(json, host);
    }
    let listing = switchboard::namespace::listing();
    if json {
        for e in &listing.objects {
            let line = json!({"kind": e.kind.as_str(), "scope": e.scope.to_string(), "name": e.name,
                "owner_pid": e.owner_pid, "holders": e.holders});
            out!("{line}");
        }
        for u in &listing.unanswered {
            let line = json!({"unanswered": u.address, "holder_pids": u.holder_pids, "why": u.why});
            out!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if listing.objects.is_empty() {
        out!("no live named objects");
    } else {
        let mut table = Table::new();
        table.load_preset(UTF8_BORDERS_ONLY).set_header(["kind", "scope", "name", "owner pid", "holders"]);
        for e in listing.objects {
            table.add_row([
                e.kind.to_string(),
                e.scope.to_string(),
                e.name,
                e.owner_pid.to_string(),
                e.holders.to_string(),
            ]);
        }
        out!("{table}");
    }
    for u in &listing.unanswered {
        let pids: Vec<String> = u.holder_pids.iter().map(u32::to_string).collect();
        note!("switchboard: {} (held by pid {}) did not answer: {}", u.address, pids.join(", "), u.why);
    }
    Ok(ExitCode::SUCCESS)
}

/// What `host` exposes, through this host's gateway (13-S01).
fn remote(json: bool, host: &str) -> anyhow::Result<ExitCode> {
    let objects = switchboard::remote::list(host)?;
    if json {
        for o in &objects {
            out!("{}", json!({"host": host, "kind": o.kind, "name": o.name}));
        }
    } else if objects.is_empty() {
        out!("{host} exposes no pipes or mailslots");
    } else {
        let mut table = Table::new();
        table.load_preset(UTF8_BORDERS_ONLY).set_header(["kind", "name"]);
        for o in objects {
            let full = format!(r"\\{host}\{}\{}", o.kind, o.name);
            table.add_row([o.kind, full]);
        }
        out!("{table}");
    }
    Ok(ExitCode::SUCCESS)
}
