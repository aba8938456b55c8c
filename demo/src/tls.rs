//! Optional HTTPS listener (TLS_BIND_ADDR), next to the plain one: HTTP/2
//! and HTTP/1.1 by ALPN, with the certificate from TLS_CERT_FILE and
//! TLS_KEY_FILE (PEM), or a self-signed one made at start for TLS_NAMES
//! (default `localhost,127.0.0.1`), so that an https run needs no set-up.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn certificate() -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    use rustls::pki_types::pem::PemObject;
    match (std::env::var("TLS_CERT_FILE"), std::env::var("TLS_KEY_FILE")) {
        (Ok(cert), Ok(key)) => {
            let certs = CertificateDer::pem_file_iter(&cert)
                .with_context(|| format!("TLS_CERT_FILE {cert}: cannot read"))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("TLS_CERT_FILE {cert}: not PEM certificates"))?;
            let key = PrivateKeyDer::from_pem_file(&key)
                .with_context(|| format!("TLS_KEY_FILE {key}: no PEM private key"))?;
            Ok((certs, key))
        }
        (Err(_), Err(_)) => {
            let names: Vec<String> = std::env::var("TLS_NAMES")
                .unwrap_or_else(|_| "localhost,127.0.0.1".into())
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let c = rcgen::generate_simple_self_signed(names)
                .context("cannot make a self-signed certificate")?;
            let key = PrivateKeyDer::try_from(c.signing_key.serialize_der())
                .map_err(|e| anyhow!("self-signed key: {e}"))?;
            Ok((vec![c.cert.der().clone()], key))
        }
        _ => Err(anyhow!("set both TLS_CERT_FILE and TLS_KEY_FILE, or neither (a self-signed certificate is made)")),
    }
}

/// Serves `app` over TLS on `addr` until the process ends; `ready` is sent
/// once the certificate is loaded and the port is open.
pub async fn serve(
    addr: SocketAddr,
    app: axum::Router,
    ready: tokio::sync::oneshot::Sender<()>,
) -> anyhow::Result<()> {
    let (certs, key) = certificate()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (TLS_BIND_ADDR)"))?;
    eprintln!("demo listening on {addr} (https)");
    let _ = ready.send(());
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            // A client that fails its handshake only loses its own connection.
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
        });
    }
}
