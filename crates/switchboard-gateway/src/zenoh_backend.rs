//! The Zenoh backend (feature `zenoh`): one Zenoh session per gateway, in
//! router mode so that gateways route for each other, with multicast
//! scouting off (explicit endpoints only: scouting is slow and does not
//! cross network namespaces) and a short lease, so a cut link is noticed in
//! seconds.

use std::path::PathBuf;
use std::time::Duration;

use switchboard::{Error, Result};
use zenoh::qos::CongestionControl;
use zenoh::sample::SampleKind;
use zenoh::Wait;

use crate::backend::{Backend, Guard, OnToken, Query, Sample};

/// Where a gateway's Zenoh session listens and connects, and its TLS.
#[derive(Clone, Debug, Default)]
pub struct ZenohConfig {
    /// Endpoints to listen on (`tcp/127.0.0.1:7447`, `tls/10.0.0.1:7447`,
    /// `unixsock-stream/PATH`).
    pub listen: Vec<String>,
    /// Endpoints of other gateways to connect to (retried until they answer).
    pub connect: Vec<String>,
    /// TLS: the CA that signs every gateway's certificate.
    pub tls_ca: Option<PathBuf>,
    /// TLS: this gateway's certificate (PEM), shown to peers both ways.
    pub tls_cert: Option<PathBuf>,
    /// TLS: its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// How long a silent link lives (default 4 s).
    pub lease: Option<Duration>,
    /// With TLS: the certificate common names of the gateways let in. The
    /// access-control list denies by default: only those peers, and
    /// programs on this machine (loopback, Unix sockets), reach anything.
    pub allow: Vec<String>,
}

/// Whether `endpoint` stays on this machine: loopback TCP or a Unix socket.
pub fn is_local(endpoint: &str) -> bool {
    let Some((proto, rest)) = endpoint.split_once('/') else { return false };
    let addr = rest.split('#').next().unwrap_or(rest);
    match proto {
        "unixsock-stream" => true,
        "tcp" | "tls" => addr
            .rsplit_once(':')
            .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
            .is_some_and(|h| h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())),
        _ => false,
    }
}

impl ZenohConfig {
    /// The Zenoh configuration.
    ///
    /// # Errors
    /// `InvalidParameter` for an endpoint off this machine that is not
    /// `tls/` with a CA, certificate and key (mutual TLS: only holders of a
    /// certificate the CA signed get in).
    pub fn to_zenoh(&self) -> Result<zenoh::Config> {
        let tls = self.tls_ca.is_some() && self.tls_cert.is_some() && self.tls_key.is_some();
        for e in self.listen.iter().chain(&self.connect) {
            if !(is_local(e) || tls && e.starts_with("tls/")) {
                return Err(Error::InvalidParameter(
                    "an endpoint off this machine must be tls/ with --tls-ca, --tls-cert and --tls-key (mutual TLS)",
                ));
            }
        }
        let mut c = zenoh::Config::default();
        let set = |c: &mut zenoh::Config, k: &str, v: String| {
            c.insert_json5(k, &v).map_err(|e| invalid(format!("gateway setting {k}: {e}")))
        };
        let json = |v: &[String]| serde_json_list(v);
        set(&mut c, "mode", "\"router\"".into())?;
        set(&mut c, "scouting/multicast/enabled", "false".into())?;
        set(&mut c, "listen/endpoints", json(&self.listen))?;
        set(&mut c, "connect/endpoints", json(&self.connect))?;
        // Keep retrying a gateway that is not up yet (or whose link was cut).
        set(&mut c, "connect/timeout_ms", "-1".into())?;
        set(&mut c, "connect/exit_on_failure", "false".into())?;
        set(&mut c, "listen/exit_on_failure", "true".into())?;
        let lease = self.lease.unwrap_or(Duration::from_secs(4)).as_millis().max(500);
        set(&mut c, "transport/link/tx/lease", lease.to_string())?;
        set(&mut c, "transport/link/tx/keep_alive", "4".into())?;
        set(&mut c, "adminspace/enabled", "false".into())?;
        if let (Some(ca), Some(cert), Some(key)) = (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            let path = |p: &PathBuf| format!("{:?}", p.display().to_string());
            set(&mut c, "transport/link/tls/root_ca_certificate", path(ca))?;
            set(&mut c, "transport/link/tls/listen_certificate", path(cert))?;
            set(&mut c, "transport/link/tls/listen_private_key", path(key))?;
            set(&mut c, "transport/link/tls/connect_certificate", path(cert))?;
            set(&mut c, "transport/link/tls/connect_private_key", path(key))?;
            set(&mut c, "transport/link/tls/enable_mtls", "true".into())?;
            set(&mut c, "transport/link/tls/verify_name_on_connect", "false".into())?;
            set(&mut c, "access_control", acl(&self.allow))?;
        }
        Ok(c)
    }
}

/// The access-control list of a TLS gateway: deny by default; allow every
/// switchboard message to and from the gateways whose certificate's common
/// name is in `allow`, and to and from programs on this machine.
fn acl(allow: &[String]) -> String {
    let messages = "[\"put\",\"delete\",\"declare_subscriber\",\"query\",\"declare_queryable\",\"reply\",\
                    \"liveliness_token\",\"declare_liveliness_subscriber\",\"liveliness_query\"]";
    let mut subjects = vec![
        r#"{"id":"loopback","interfaces":["lo"]}"#.to_owned(),
        r#"{"id":"unix","link_protocols":["unixsock-stream"]}"#.to_owned(),
    ];
    let mut names = vec!["\"loopback\"".to_owned(), "\"unix\"".to_owned()];
    if !allow.is_empty() {
        subjects.push(format!(r#"{{"id":"peers","cert_common_names":{}}}"#, serde_json_list(allow)));
        names.push("\"peers\"".to_owned());
    }
    format!(
        r#"{{"enabled":true,"default_permission":"deny","rules":[{{"id":"switchboard","key_exprs":["switchboard/**"],"messages":{messages},"flows":["egress","ingress"],"permission":"allow"}}],"subjects":[{}],"policies":[{{"rules":["switchboard"],"subjects":[{}]}}]}}"#,
        subjects.join(","),
        names.join(",")
    )
}

fn serde_json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(","))
}

/// A setting Zenoh refused (classic 87, as `InvalidParameter`).
fn invalid(why: String) -> Error {
    Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, why))
}

fn zerr(what: &str, e: impl std::fmt::Display) -> Error {
    Error::NetPath(format!("{what}: {e}"))
}

/// A gateway's Zenoh session.
pub struct ZenohBackend {
    session: zenoh::Session,
}

impl std::fmt::Debug for ZenohBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZenohBackend").field("zid", &self.session.zid()).finish()
    }
}

impl ZenohBackend {
    /// Opens a session as `config` says.
    ///
    /// # Errors
    /// As [`ZenohConfig::to_zenoh`]; `NetPath` when Zenoh cannot listen.
    pub fn open(config: &ZenohConfig) -> Result<ZenohBackend> {
        // Zenoh's own log, when RUST_LOG asks for it (`RUST_LOG=zenoh=debug`).
        zenoh::try_init_log_from_env();
        let session = zenoh::open(config.to_zenoh()?).wait().map_err(|e| zerr("the gateway's Zenoh session", e))?;
        Ok(ZenohBackend { session })
    }
}

struct ZQuery(zenoh::query::Query, Vec<u8>);

impl Query for ZQuery {
    fn key(&self) -> &str {
        self.0.key_expr().as_str()
    }

    fn payload(&self) -> &[u8] {
        &self.1
    }

    fn reply(self: Box<Self>, payload: Vec<u8>) {
        let _ = self.0.reply(self.0.key_expr().clone(), payload).wait();
    }
}

impl Backend for ZenohBackend {
    fn put(&self, key: &str, payload: Vec<u8>) -> Result<()> {
        self.session
            .put(key, payload)
            .congestion_control(CongestionControl::Block)
            .express(true)
            .wait()
            .map_err(|e| zerr("a put", e))
    }

    fn subscribe(&self, key_expr: &str, on: Box<dyn Fn(Sample) + Send + Sync>) -> Result<Guard> {
        let sub = self
            .session
            .declare_subscriber(key_expr.to_owned())
            .callback(move |s: zenoh::sample::Sample| {
                if s.kind() == SampleKind::Put {
                    on(Sample { key: s.key_expr().as_str().to_owned(), payload: s.payload().to_bytes().into_owned() });
                }
            })
            .wait()
            .map_err(|e| zerr("a subscription", e))?;
        Ok(Box::new(sub))
    }

    fn serve(&self, key_expr: &str, on: Box<dyn Fn(Box<dyn Query>) + Send + Sync>) -> Result<Guard> {
        let q = self
            .session
            .declare_queryable(key_expr.to_owned())
            .callback(move |q: zenoh::query::Query| {
                let payload = q.payload().map(|p| p.to_bytes().into_owned()).unwrap_or_default();
                on(Box::new(ZQuery(q, payload)));
            })
            .wait()
            .map_err(|e| zerr("a queryable", e))?;
        Ok(Box::new(q))
    }

    fn query(&self, key: &str, payload: Vec<u8>, timeout: Duration) -> Result<Vec<Vec<u8>>> {
        let replies = self.session.get(key).payload(payload).timeout(timeout).wait().map_err(|e| zerr("a query", e))?;
        let mut out = Vec::new();
        while let Ok(r) = replies.recv() {
            if let Ok(s) = r.result() {
                out.push(s.payload().to_bytes().into_owned());
            }
        }
        Ok(out)
    }

    fn token(&self, key: &str) -> Result<Guard> {
        let t = self.session.liveliness().declare_token(key.to_owned()).wait().map_err(|e| zerr("a token", e))?;
        Ok(Box::new(t))
    }

    fn watch(&self, key_expr: &str, on: OnToken) -> Result<Guard> {
        let sub = self
            .session
            .liveliness()
            .declare_subscriber(key_expr.to_owned())
            .history(true)
            .callback(move |s: zenoh::sample::Sample| on(s.key_expr().as_str(), s.kind() == SampleKind::Put))
            .wait()
            .map_err(|e| zerr("a liveliness watch", e))?;
        Ok(Box::new(sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_endpoints_go_without_tls() {
        assert!(is_local("tcp/127.0.0.1:7447") && is_local("tcp/[::1]:7447") && is_local("unixsock-stream/x"));
        assert!(!is_local("tcp/10.0.0.1:7447") && !is_local("tcp/0.0.0.0:7447") && !is_local("udp/127.0.0.1:1"));
        let open = ZenohConfig { listen: vec!["tcp/10.0.0.1:7447".into()], ..ZenohConfig::default() };
        assert!(open.to_zenoh().is_err());
        let tls = ZenohConfig {
            listen: vec!["tls/10.0.0.1:7447".into()],
            tls_ca: Some("ca.pem".into()),
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..ZenohConfig::default()
        };
        assert!(tls.to_zenoh().is_ok());
        assert!(ZenohConfig { listen: vec!["unixsock-stream/a".into()], ..ZenohConfig::default() }.to_zenoh().is_ok());
    }
}
