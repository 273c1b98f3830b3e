//! TLS for `--tls`: which certificates the client trusts, and the handshake.
//!
//! With `--ca FILE` the client trusts exactly the certificates in that PEM
//! file (a private CA, or a self-signed server certificate); without it, the
//! Mozilla root set compiled in by `webpki-roots`, so the client behaves the
//! same on every machine. The server name checked is the host part of ADDR
//! (a DNS name or an IP address).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::Error;

/// How to secure connections: the trusted roots, built once at start-up.
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// Trusts the certificates in `ca`, or the Mozilla roots when `None`.
    pub fn new(ca: Option<&Path>) -> Result<Self, Error> {
        let roots = match ca {
            Some(path) => roots_from_file(path)?,
            None => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(format!("cannot set up TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls { connector: TlsConnector::from(Arc::new(config)) })
    }

    /// Runs the handshake over `stream`, checking the certificate against `host`.
    pub async fn handshake(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{host:?} is no TLS server name"),
            )
        })?;
        self.connector.connect(name, stream).await
    }
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, Error> {
    let cannot =
        |reason: String| Error::Tls(format!("cannot use CA file {}: {reason}", path.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| cannot(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(cannot("no usable certificate in it".to_owned()));
    }
    Ok(roots)
}
