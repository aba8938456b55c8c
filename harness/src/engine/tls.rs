//! TLS for https targets (rustls with ring): one client configuration per run,
//! shared by every VU, so that sessions resume across connections.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

pub use crate::scenario::options::TlsSettings;

/// What a VU needs to open a TLS connection to the target.
pub struct Tls {
    pub connector: tokio_rustls::TlsConnector,
    /// Sent as SNI (host names only) and checked against the certificate.
    pub name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls({:?})", self.name)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("{what} {}: cannot read it", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{what} {}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{what} {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}

impl Tls {
    /// Builds the configuration for `host` (a DNS name or an IP address).
    pub fn new(
        host: &str,
        s: &TlsSettings,
        version: crate::scenario::options::HttpVersion,
    ) -> Result<Tls> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow!("TLS: {e}"))?;
        let builder = if s.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        } else {
            let mut roots = RootCertStore::empty();
            // The system's roots; one unreadable system certificate is not our user's problem.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if let Some(ca) = &s.ca_file {
                for c in read_certs(ca, "--ca-cert")? {
                    roots.add(c).map_err(|e| {
                        anyhow!(
                            "--ca-cert {}: not a usable CA certificate: {e}",
                            ca.display()
                        )
                    })?;
                }
            }
            if roots.is_empty() {
                bail!("TLS: no trusted root certificates (none on this system and no --ca-cert); pass --ca-cert FILE or --insecure-skip-tls-verify");
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match (&s.client_cert, &s.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "tls_client_cert")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    anyhow!("tls_client_key {}: no PEM private key: {e}", key.display())
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| anyhow!("tls_client_cert/tls_client_key: {e}"))?
            }
            _ => bail!("mutual TLS needs both tls_client_cert and tls_client_key"),
        };
        use crate::scenario::options::HttpVersion as V;
        // Offered by ALPN; the server picks (auto prefers HTTP/2, as browsers do).
        config.alpn_protocols = match version {
            V::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            V::One => vec![b"http/1.1".to_vec()],
            V::Two => vec![b"h2".to_vec()],
        };
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| anyhow!("`{host}` cannot be checked against a certificate: {e}"))?;
        Ok(Tls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

/// `--insecure-skip-tls-verify`: any certificate chain is accepted; the
/// handshake's signatures are still checked, so the session is sound.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
