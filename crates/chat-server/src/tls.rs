//! TLS for `--listen-tls`: loading the certificate and key, and the acceptor.
//!
//! rustls (with the `ring` provider, so no C toolchain beyond `cc` is
//! needed) does the protocol; this module only turns the operator's PEM
//! files into a `TlsAcceptor`, naming the file and the reason when one is
//! wrong. Connections over TLS are served by the same code as plain ones.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Builds an acceptor from a PEM certificate chain and a PEM private key.
pub fn acceptor(cert_path: &Path, key_path: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| anyhow::anyhow!("cannot read TLS certificate {}: {e}", cert_path.display()))?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in {}", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| anyhow::anyhow!("cannot read TLS private key {}: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| {
            anyhow::anyhow!(
                "TLS certificate {} and key {} do not work together: {e}",
                cert_path.display(),
                key_path.display()
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_generated_certificate_and_names_bad_files() {
        let dir = std::env::temp_dir().join(format!("chat-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
        assert!(acceptor(&cert_path, &key_path).is_ok());

        let missing = dir.join("missing.pem");
        let err = acceptor(&missing, &key_path).err().expect("missing file fails").to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let err =
            acceptor(&key_path, &key_path).err().expect("a key is no certificate").to_string();
        assert!(err.contains("no certificate"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
