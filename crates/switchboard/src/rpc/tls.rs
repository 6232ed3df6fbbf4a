//! Mutual TLS for `tcp:` bindings (feature `tls`, S10): rustls with the
//! ring provider, certificates from PEM. Both sides present a
//! certificate and check the other's against the CA they were given, so
//! a connection is authenticated (`Connect`), and every record
//! authenticated and encrypted (`Integrity`, `Privacy`).
//!
//! ```no_run
//! use switchboard::rpc::tls::{TlsClient, TlsServer};
//! use switchboard::rpc::{calc::{CalcClient, CalcServer, Calculator}, AuthLevel, ClientOptions, Server};
//!
//! let pem = |f: &str| std::fs::read(f).unwrap();
//! let tls = TlsServer::from_pem(&pem("server.pem"), &pem("server.key"), &pem("client-ca.pem"))?;
//! let server = Server::builder().serve(CalcServer(Calculator)).auth_level(AuthLevel::Privacy).tls(tls).build();
//! server.listen("tcp:0.0.0.0[4747]")?;
//!
//! let tls = TlsClient::from_pem(&pem("server-ca.pem"), &pem("client.pem"), &pem("client.key"), "calc.example")?;
//! let options = ClientOptions::new().auth_level(AuthLevel::Privacy).tls(tls);
//! let calc = CalcClient::connect_with("tcp:calc.example[4747]", &options)?;
//! # Ok::<(), switchboard::Error>(())
//! ```

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::{Error, Result};

/// A server's TLS: its certificate chain and key, and the CA its clients'
/// certificates must be signed by.
#[derive(Clone, Debug)]
pub struct TlsServer(pub(crate) Arc<ServerConfig>);

/// A client's TLS: the CA the server's certificate must be signed by, the
/// client's own certificate chain and key, and the server's name.
#[derive(Clone, Debug)]
pub struct TlsClient {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn invalid(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("TLS {what}: {e}")))
}

pub(crate) fn certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| invalid("certificates", e))?;
    match certs.is_empty() {
        true => Err(invalid("certificates", "no CERTIFICATE in the PEM")),
        false => Ok(certs),
    }
}

fn key(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| invalid("private key", e))
}

fn roots(pem: &[u8]) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in certs(pem)? {
        roots.add(cert).map_err(|e| invalid("CA certificate", e))?;
    }
    Ok(Arc::new(roots))
}

impl TlsServer {
    /// From PEM: the server's certificate chain, its private key, and the
    /// CA certificates client certificates are checked against.
    ///
    /// # Errors
    /// `InvalidInput` for PEM that holds no usable certificate or key.
    pub fn from_pem(cert_chain: &[u8], private_key: &[u8], client_ca: &[u8]) -> Result<TlsServer> {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(client_ca)?, provider())
            .build()
            .map_err(|e| invalid("client verifier", e))?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("versions", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(cert_chain)?, key(private_key)?)
            .map_err(|e| invalid("server certificate", e))?;
        Ok(TlsServer(Arc::new(config)))
    }
}

impl TlsClient {
    /// From PEM: the CA certificates the server's certificate is checked
    /// against, the client's certificate chain and private key; and the
    /// name the server's certificate must carry.
    ///
    /// # Errors
    /// `InvalidInput` for PEM that holds no usable certificate or key, or
    /// a server name that is not a DNS name or an IP address.
    pub fn from_pem(server_ca: &[u8], cert_chain: &[u8], private_key: &[u8], server_name: &str) -> Result<TlsClient> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("versions", e))?
            .with_root_certificates(roots(server_ca)?)
            .with_client_auth_cert(certs(cert_chain)?, key(private_key)?)
            .map_err(|e| invalid("client certificate", e))?;
        let server_name = ServerName::try_from(server_name.to_owned()).map_err(|e| invalid("server name", e))?;
        Ok(TlsClient { config: Arc::new(config), server_name })
    }
}
