//! `switchboard gateway`: this host's node of the network (spec 13-S01).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use switchboard_gateway::{Gateway, ZenohBackend, ZenohConfig};

/// Where the gateway listens when not told.
pub const DEFAULT_LISTEN: &str = "tcp/127.0.0.1:7447";

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// This host's name on the network (default: the system's host name).
    #[arg(long)]
    host: Option<String>,
    /// Where other gateways reach this one (repeatable): tcp/ADDR:PORT on
    /// loopback, unixsock-stream/PATH, or tls/ADDR:PORT with the TLS options
    /// [default: tcp/127.0.0.1:7447].
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// Another host's gateway to link to (repeatable; retried until it answers).
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// The CA (PEM) that signs every gateway's certificate: mutual TLS,
    /// required for any endpoint off this machine.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// This gateway's certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_ca")]
    tls_cert: Option<PathBuf>,
    /// This gateway's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_ca")]
    tls_key: Option<PathBuf>,
    /// With TLS: a gateway let in, by its certificate's common name
    /// (repeatable). Everything else off this machine is denied.
    #[arg(long, value_name = "CN", requires = "tls_ca")]
    allow: Vec<String>,
    /// How long a silent link lives before its peers count it as gone.
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::parse_duration, default_value = "4s")]
    lease: Duration,
    /// Expose this host's pipes and mailslots only: do not serve this
    /// user's processes here (another gateway of this user does).
    #[arg(long)]
    expose_only: bool,
}

fn system_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "localhost".into(), |h| h.trim().to_owned())
}

pub fn run(args: GatewayArgs, json: bool) -> anyhow::Result<ExitCode> {
    let stop = switchboard::process::block_termination()?;
    let host = args.host.unwrap_or_else(system_host_name);
    let listen = if args.listen.is_empty() { vec![DEFAULT_LISTEN.to_owned()] } else { args.listen };
    if args.tls_ca.is_some() && args.allow.is_empty() {
        note!("switchboard: TLS without --allow: no other gateway gets in (deny by default)");
    }
    let config = ZenohConfig {
        listen: listen.clone(),
        connect: args.connect.clone(),
        tls_ca: args.tls_ca,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        lease: Some(args.lease),
        allow: args.allow,
    };
    let backend = ZenohBackend::open(&config)?;
    let gateway = Gateway::start(Arc::new(backend), &host, !args.expose_only)?;
    match json {
        true => out!(
            "{}",
            json!({"host": gateway.host(), "listen": listen, "connect": args.connect, "pid": std::process::id()})
        ),
        false => out!("gateway {} listening on {}", gateway.host(), listen.join(", ")),
    }
    note!(
        "other hosts reach \\\\{}\\pipe\\NAME and \\\\{}\\mailslot\\NAME through it (pid {}); interrupt to stop",
        gateway.host(),
        gateway.host(),
        std::process::id()
    );
    stop.wait();
    drop(gateway);
    Ok(ExitCode::SUCCESS)
}

/// Two hosts on one machine, for `tour` and `bench`: this process's
/// gateway (it serves this process; host `near`) on a free loopback port.
/// Returns it and the endpoint the far side connects to.
///
/// # Errors
/// When this user already runs a gateway here (stop it first), or Zenoh
/// cannot listen.
pub fn start_near(host: &str) -> anyhow::Result<(Gateway, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let config = ZenohConfig { listen: vec![endpoint.clone()], ..ZenohConfig::default() };
    let gateway = Gateway::start(Arc::new(ZenohBackend::open(&config)?), host, true).map_err(|e| match e {
        switchboard::Error::AlreadyExists(_) => anyhow::Error::new(AlreadyRunning(e.to_string())),
        e => anyhow::anyhow!("{e}"),
    })?;
    Ok((gateway, endpoint))
}

/// This user runs a gateway here already (one per user per host), so a
/// verb that would start one of its own cannot: the tour and the bench
/// skip their remote row on it.
#[derive(Debug)]
pub struct AlreadyRunning(String);

impl std::fmt::Display for AlreadyRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: stop this user's `switchboard gateway` first", self.0)
    }
}

impl std::error::Error for AlreadyRunning {}

/// The far host's gateway (it only exposes this process's objects), linked
/// to `endpoint`.
///
/// # Errors
/// When Zenoh cannot start.
pub fn start_far(host: &str, endpoint: &str) -> anyhow::Result<Gateway> {
    let config = ZenohConfig { connect: vec![endpoint.to_owned()], ..ZenohConfig::default() };
    Ok(Gateway::start(Arc::new(ZenohBackend::open(&config)?), host, false)?)
}

/// Waits until the client of `server` closes: then every reply written
/// was relayed, and the far gateway may go.
pub fn wait_for_close(server: &switchboard::pipe::named::PipeServer, patience: Duration) {
    server.set_read_timeout(Some(patience));
    let mut byte = [0u8; 1];
    while matches!(server.read(&mut byte), Ok(_) | Err(switchboard::Error::MoreData { .. })) {}
}
