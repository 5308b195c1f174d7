//! TLS from PEM files (rustls, ring): the server's port, calls to peers, and
//! the JWKS URL. An `https://` URL is always TLS, verified against the
//! configured CA or the system's roots; it never falls back to plaintext.

use std::{path::Path, sync::Arc};

use anyhow::Context as _;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::{PeerSettings, TlsSettings};

fn read(key: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{key} {}", path.display()))
}

/// The server's TLS: `None` when `server.tls.cert_file` is unset. With
/// `client_ca_file`, a client must present a certificate that CA signed.
pub fn server_config(tls: &TlsSettings) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) else {
        return Ok(None);
    };
    let identity = Identity::from_pem(read("server.tls.cert_file", cert)?, read("server.tls.key_file", key)?);
    let mut config = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &tls.client_ca_file {
        config = config.client_ca_root(Certificate::from_pem(read("server.tls.client_ca_file", ca)?));
    }
    Ok(Some(config))
}

/// The TLS of calls to `https://` peers: their certificate checked against
/// `peers.ca_file` (else the system's roots), ours presented when configured.
pub fn peer_config(peers: &PeerSettings) -> anyhow::Result<ClientTlsConfig> {
    let mut config = ClientTlsConfig::new();
    config = match &peers.ca_file {
        Some(ca) => config.ca_certificate(Certificate::from_pem(read("peers.ca_file", ca)?)),
        None => config.with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&peers.cert_file, &peers.key_file) {
        config = config.identity(Identity::from_pem(read("peers.cert_file", cert)?, read("peers.key_file", key)?));
    }
    Ok(config)
}

/// A rustls client configuration trusting `ca_file` (PEM) alone.
pub fn client_config_with_ca(key: &str, ca_file: &Path) -> anyhow::Result<rustls::ClientConfig> {
    use rustls_pki_types::{CertificateDer, pem::PemObject as _};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read(key, ca_file)?) {
        roots.add(cert.with_context(|| format!("{key} {}", ca_file.display()))?)?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
