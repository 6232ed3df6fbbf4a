//! `switchboard rpc ls|describe|call|calc`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Value};
use switchboard::rpc::calc::{CalcServer, Calculator};
use switchboard::rpc::mgmt::{Management, ManagementClient, Served};
use switchboard::rpc::wire::{from_body, to_body, InterfaceId};
use switchboard::rpc::{mapper, AuthLevel, Client, Server};
use switchboard::Error;

use crate::cli::parse_duration;
use crate::EXIT_TIMEOUT;

#[derive(Debug, Subcommand)]
pub enum RpcCmd {
    /// List this user's RPC servers: the endpoint mapper's registrations.
    #[command(after_help = "Example:\n  switchboard rpc calc local:calc &\n  switchboard rpc ls")]
    Ls,
    /// Show the interfaces a server serves, with their methods.
    #[command(after_help = "Example:\n  switchboard rpc describe local:calc")]
    Describe {
        /// The server's binding (local:NAME, unix:NAME, tcp:HOST[PORT], pipe:\\.\pipe\NAME).
        binding: String,
    },
    /// Call a method by name; each argument is a JSON value (a word that
    /// is not JSON is a string). Prints the result as JSON.
    #[command(after_help = "Example:\n  switchboard rpc call local:calc Calc add 2 3\n  \
                            switchboard rpc call find Calc sum '[1.5, 2.5]'\n\n\
                            BINDING `find` asks the endpoint mapper for a server of the interface. \
                            Byte strings print as arrays of numbers. A server error exits with code 1, \
                            a call timeout with code 3.")]
    Call {
        /// The server's binding, or `find`.
        binding: String,
        /// The interface: its name or UUID.
        interface: String,
        /// The method's name.
        method: String,
        /// The arguments, in order.
        args: Vec<String>,
        /// Give up after this long (exit code 3).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
        timeout: Duration,
    },
    /// Serve the example interface `Calc` (add, sub, mul, div, sum, echo).
    #[command(after_help = "Example:\n  switchboard rpc calc local:calc 'tcp:127.0.0.1[4747]' --auth none\n\n\
                            local:, unix: and pipe: bindings admit this user only (the kernel checks). A plain tcp: \
                            binding admits anyone who reaches the port, so its clients are refused (access denied) \
                            unless --auth none says so.")]
    Calc {
        /// Bindings to listen on.
        #[arg(required = true)]
        bindings: Vec<String>,
        /// The authentication level required of every connection: none,
        /// connect, integrity or privacy.
        #[arg(long, default_value = "connect", value_parser = parse_auth)]
        auth: AuthLevel,
    },
}

pub fn run(cmd: RpcCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        RpcCmd::Ls => {
            for r in mapper::lookup(None) {
                let endpoints: Vec<String> = r.endpoints.iter().map(ToString::to_string).collect();
                match json {
                    true => out!(
                        "{}",
                        json!({"interface": r.interface.to_string(), "name": r.name, "version": [r.version.0, r.version.1],
                               "pid": r.pid, "endpoints": endpoints})
                    ),
                    false => out!(
                        "{}\t{}\t{}.{}\tpid {}\t{}",
                        r.interface,
                        r.name,
                        r.version.0,
                        r.version.1,
                        r.pid,
                        endpoints.join(" ")
                    ),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RpcCmd::Describe { binding } => {
            for served in served(&binding)? {
                let d: Value = serde_json::from_str(&served.description)?;
                match json {
                    true => out!("{d}"),
                    false => describe(&d),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RpcCmd::Call { binding, interface, method, args, timeout } => {
            call(&binding, &interface, &method, &args, timeout)
        }
        RpcCmd::Calc { bindings, auth } => {
            let server = Server::builder().serve(CalcServer(Calculator)).auth_level(auth).build();
            for b in &bindings {
                let bound = server.listen(b).with_context(|| format!("listening on {b}"))?;
                note!("serving Calc on {bound} (pid {})", std::process::id());
            }
            loop {
                std::thread::park();
            }
        }
    }
}

fn parse_auth(text: &str) -> Result<AuthLevel, String> {
    AuthLevel::parse(text).map_err(|e| e.to_string())
}

/// What the server at `binding` serves (its management interface).
fn served(binding: &str) -> anyhow::Result<Vec<Served>> {
    Ok(ManagementClient::connect(binding)?.interfaces()?)
}

fn describe(d: &Value) {
    out!(
        "{} {} v{}.{}",
        d["name"].as_str().unwrap_or("?"),
        d["uuid"].as_str().unwrap_or("?"),
        d["version"][0],
        d["version"][1]
    );
    for m in d["methods"].as_array().into_iter().flatten() {
        let args: Vec<String> = m["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| format!("{}: {}", a["name"].as_str().unwrap_or("?"), a["type"].as_str().unwrap_or("?")))
            .collect();
        let doc = m["doc"].as_str().filter(|d| !d.is_empty()).map(|d| format!("  — {d}")).unwrap_or_default();
        out!(
            "  [{}] {}({}) -> {}{doc}",
            m["opnum"],
            m["name"].as_str().unwrap_or("?"),
            args.join(", "),
            m["result"].as_str().unwrap_or("?")
        );
    }
}

/// The binding to call `interface` at: `binding`, or the endpoint mapper's.
fn locate(binding: &str, interface: &str) -> anyhow::Result<String> {
    if binding != "find" {
        return Ok(binding.to_owned());
    }
    let found = mapper::lookup(None);
    let r = found
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(interface) || r.interface.to_string().eq_ignore_ascii_case(interface))
        .ok_or_else(|| Error::NotRegistered(interface.to_owned()))?;
    let best = mapper::resolve(r.interface, r.version)?;
    Ok(best[0].to_string())
}

fn call(binding: &str, interface: &str, method: &str, args: &[String], timeout: Duration) -> anyhow::Result<ExitCode> {
    let binding = locate(binding, interface)?;
    let served = served(&binding)?;
    let iface = served
        .iter()
        .filter_map(|s| serde_json::from_str::<Value>(&s.description).ok())
        .find(|d| {
            d["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(interface))
                || d["uuid"].as_str().is_some_and(|u| u.eq_ignore_ascii_case(interface))
        })
        .ok_or_else(|| anyhow!("{binding} does not serve an interface {interface:?}"))?;
    let m = iface["methods"].as_array().into_iter().flatten().find(|m| m["name"] == method).ok_or_else(|| {
        anyhow!("interface {interface} has no method {method:?} (see `switchboard rpc describe {binding}`)")
    })?;
    let wanted = m["args"].as_array().map_or(0, Vec::len);
    if args.len() != wanted {
        bail!("{method} takes {wanted} arguments, not {}", args.len());
    }
    let values: Vec<Value> =
        args.iter().map(|a| serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.clone()))).collect();
    let id = InterfaceId::parse(iface["uuid"].as_str().unwrap_or_default())?;
    let version = (iface["version"][0].as_u64().unwrap_or(0) as u16, iface["version"][1].as_u64().unwrap_or(0) as u16);
    let client = Client::connect(&binding)?;
    client.set_timeout(timeout);
    client.bind_id(id, version)?;
    let opnum = m["opnum"].as_u64().unwrap_or(u64::MAX) as u32;
    match client.call_raw(id, version, opnum, &to_body(&values)?) {
        Ok(body) => {
            let Json(v) = from_body(&body)?;
            out!("{v}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ Error::CallTimeout(_)) => {
            note!("{e}");
            Ok(ExitCode::from(EXIT_TIMEOUT))
        }
        Err(e) => Err(e.into()),
    }
}

/// A MessagePack value as JSON (byte strings as arrays of numbers).
struct Json(Value);

impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a MessagePack value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json(v.into()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json(v.into()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json(v.into()))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Json, E> {
        Ok(Json(v.iter().map(|b| Value::from(*b)).collect()))
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut out = Vec::new();
        while let Some(Json(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Json(Value::Array(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some((Json(k), Json(v))) = map.next_entry()? {
            let key = match k {
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.insert(key, v);
        }
        Ok(Json(Value::Object(out)))
    }
}
