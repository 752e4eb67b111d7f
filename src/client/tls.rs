//! TLS for `--server https://…`: one rustls configuration for REST (ureq)
//! and `/ws` (tungstenite, `wss://`). It trusts the webpki roots (as ureq
//! does by default) and, with `--ca-file FILE` / `TESTSCHEDULER_CA_FILE`, the
//! PEM certificates in FILE too (a private CA, a self-signed server).

use super::ClientError;
use rustls::pki_types::{pem::PemObject, CertificateDer};
use std::path::Path;
use std::sync::Arc;

/// The client's TLS configuration.
pub fn config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(file) = ca_file {
        let bad = |why: String| ClientError::Usage(format!("--ca-file {}: {why}", file.display()));
        let certs = CertificateDer::pem_file_iter(file)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Usage(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
