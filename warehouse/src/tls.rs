//! HTTPS to ClickHouse: rustls (ring), trusting only the configured CA.

use std::path::Path;
use std::sync::Arc;

use firmware_config::ConfigError;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The trust anchors in `pem`: every certificate must parse, and there must be one.
fn roots(pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(roots)
}

/// Reads `clickhouse.ca_file` and checks it, so a bad file stops the start with its name.
pub(crate) fn read_ca(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let pem = std::fs::read(path).map_err(|e| {
        ConfigError::invalid(
            "clickhouse.ca_file",
            path.display(),
            format!("cannot be read: {e}"),
        )
    })?;
    roots(&pem).map_err(|why| ConfigError::invalid("clickhouse.ca_file", path.display(), why))?;
    Ok(pem)
}

/// HTTPS only over `tcp`, trusting the CA in `pem` (checked by [`read_ca`]).
pub(crate) fn connector(pem: &[u8], mut tcp: HttpConnector) -> HttpsConnector<HttpConnector> {
    let roots = roots(pem).expect("checked when the configuration was read");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tcp.enforce_http(false);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(tcp)
}
