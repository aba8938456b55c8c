//! https targets: a real rustls server on 127.0.0.1 with certificates made for
//! each test (a CA, a server certificate for 127.0.0.1, and the bad cases).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA, written to `<dir>/ca.pem`.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem: PathBuf,
}

fn ca(dir: &Path, name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("loadtest test CA {name}"),
    );
    let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let pem = dir.join(format!("{name}.pem"));
    std::fs::write(&pem, issuer.pem()).unwrap();
    Ca { issuer, pem }
}

/// A leaf certificate for `names` signed by `ca` (or by itself), valid from
/// `days.0` to `days.1` days from now. Returns (chain, key) as rustls wants them.
fn leaf(
    ca: Option<&Issuer<'_, KeyPair>>,
    names: &[&str],
    days: (i64, i64),
) -> (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    String,
    String,
) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    for n in names {
        p.subject_alt_names.push(match n.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*n).try_into().unwrap()),
        });
    }
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now + time::Duration::days(days.0);
    p.not_after = now + time::Duration::days(days.1);
    let key = KeyPair::generate().unwrap();
    let cert = match ca {
        Some(ca) => p.signed_by(&key, ca).unwrap(),
        None => p.self_signed(&key).unwrap(),
    };
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    let chain = vec![cert.der().clone()];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    (chain, key, cert_pem, key_pem)
}

/// What a run must say, and the certificate that makes it say so: issuer
/// (`None`: self-signed), names, validity in days from now.
type BadCert<'a> = (
    &'a str,
    Option<&'a Issuer<'a, KeyPair>>,
    &'a [&'a str],
    (i64, i64),
);

/// The test API over TLS on 127.0.0.1:0; stops when dropped.
struct TlsServer {
    url: String,
    /// Handshakes that resumed an earlier session.
    resumed: Arc<std::sync::atomic::AtomicU64>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TlsServer {
    fn start(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        client_ca: Option<&Path>,
    ) -> TlsServer {
        Self::with_alpn(chain, key, client_ca, &[b"h2", b"http/1.1"])
    }

    /// Offering these protocols by ALPN (HTTP/2 and HTTP/1.1 both served).
    fn with_alpn(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        client_ca: Option<&Path>,
        alpn: &[&[u8]],
    ) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca).unwrap() {
                    roots.add(c.unwrap()).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let config = Arc::new(config);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let app = router(Arc::new(AppState::default()));
        let resumed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let resumed_count = resumed.clone();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        a = listener.accept() => a.unwrap(),
                        _ = &mut rx => return,
                    };
                    let (acceptor, app) = (acceptor.clone(), app.clone());
                    let resumed = resumed_count.clone();
                    tokio::spawn(async move {
                        // A failed handshake is the client's problem under test.
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
                        {
                            resumed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        let svc = hyper_util::service::TowerToHyperService::new(app);
                        let _ = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                    });
                }
            });
        });
        let addr = addr_rx.recv().unwrap();
        TlsServer {
            url: format!("https://{addr}"),
            resumed,
            _shutdown: tx,
        }
    }
}

const SCENARIO: &str = "[options]\nexecutor = \"per-vu-iterations\"\nvus = 2\niterations = 3\n\n\
    [[steps]]\nname = \"health\"\npath = \"/health\"\nchecks = { status = 200 }\n";

/// Runs `body` as a scenario against `url`; returns (exit code, result JSON, stderr).
fn run(dir: &Path, body: &str, url: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let sc = scenario_file(dir, "tls", body);
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    let o = run_scenario(&sc, url, &out, extra);
    let r = std::fs::read_to_string(out.join("baseline_tls.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(serde_json::Value::Null);
    (code(&o), r, stderr(&o))
}

fn requests(r: &serde_json::Value) -> (u64, u64) {
    let m = &r["metrics"];
    let total = m["http_reqs"]["count"].as_u64().unwrap_or(0);
    let failed = m["http_req_failed"]["passes"].as_u64().unwrap_or(0);
    (total, failed)
}

fn errors(r: &serde_json::Value) -> String {
    r["errors"].to_string()
}

#[test]
fn https_with_a_trusted_ca_and_the_bad_certificates() {
    let dir = tempdir();
    let ca = ca(dir.path(), "ca");
    let (chain, key, _, _) = leaf(Some(&ca.issuer), &["127.0.0.1", "localhost"], (-1, 30));
    let good = TlsServer::start(chain, key, None);
    let ca_flag = ["--ca-cert", ca.pem.to_str().unwrap()];

    // Trusted through --ca-cert: every request answered, on one kept-alive
    // connection per VU, whose connect and handshake times are recorded.
    let (c, r, e) = run(dir.path(), SCENARIO, &good.url, &ca_flag);
    assert_eq!(c, 0, "{e}");
    assert_eq!(requests(&r), (6, 0), "{}", errors(&r));
    let m = &r["metrics"];
    assert_eq!(m["http_req_connecting"]["count"], 2, "{m}");
    assert_eq!(m["http_req_tls_handshaking"]["count"], 2, "{m}");
    assert!(m["http_req_tls_handshaking"]["max"].as_f64().unwrap() > 0.0);
    let summary = std::fs::read_to_string(dir.path().join("out/baseline_tls.summary")).unwrap();
    assert!(summary.contains("http_req_tls_handshaking"), "{summary}");

    // The same through the scenario's tls_ca_file, relative to the scenario file.
    let body = SCENARIO.replace("[options]\n", "[options]\ntls_ca_file = \"ca.pem\"\n");
    let (c, r, e) = run(dir.path(), &body, &good.url, &[]);
    assert_eq!(c, 0, "{e}");
    assert_eq!(requests(&r), (6, 0));

    // Not trusted: each request is an error with the reason and the fix; the run completes.
    let (_, r, _) = run(dir.path(), SCENARIO, &good.url, &[]);
    assert_eq!(requests(&r).0, 6, "{r}");
    let errs = errors(&r);
    assert!(errs.contains("TLS handshake failed"), "{errs}");
    assert!(errs.contains("UnknownIssuer"), "{errs}");
    assert!(errs.contains("--insecure-skip-tls-verify"), "{errs}");

    // Accepted without verification when asked.
    let (c, r, e) = run(
        dir.path(),
        SCENARIO,
        &good.url,
        &["--insecure-skip-tls-verify"],
    );
    assert_eq!(c, 0, "{e}");
    assert_eq!(requests(&r), (6, 0));

    // A certificate for another name, an expired one, a self-signed one.
    let cases: [BadCert; 3] = [
        (
            "not valid for name",
            Some(&ca.issuer),
            &["other.example"],
            (-1, 30),
        ),
        ("expired", Some(&ca.issuer), &["127.0.0.1"], (-30, -1)),
        ("UnknownIssuer", None, &["127.0.0.1"], (-1, 30)),
    ];
    for (want, issuer, names, days) in cases {
        let (chain, key, _, _) = leaf(issuer, names, days);
        let bad = TlsServer::start(chain, key, None);
        let (_, r, _) = run(dir.path(), SCENARIO, &bad.url, &ca_flag);
        let (total, failed) = requests(&r);
        assert_eq!((total, failed), (6, 6), "{want}: {r}");
        assert!(errors(&r).contains(want), "{want}: {}", errors(&r));
    }

    // Plain HTTP has connections but no handshakes.
    let plain = TestServer::start();
    let (c, r, e) = run(dir.path(), SCENARIO, &plain.url, &[]);
    assert_eq!(c, 0, "{e}");
    assert_eq!(r["metrics"]["http_req_connecting"]["count"], 2);
    assert!(r["metrics"].get("http_req_tls_handshaking").is_none());

    // Plain HTTP on the port: a TLS error, counted.
    let url = plain.url.replace("http://", "https://");
    let (_, r, _) = run(dir.path(), SCENARIO, &url, &ca_flag);
    assert_eq!(requests(&r), (6, 6), "{r}");
    assert!(
        errors(&r).contains("TLS handshake failed"),
        "{}",
        errors(&r)
    );
}

#[test]
fn later_connections_resume_the_tls_session() {
    let dir = tempdir();
    let ca = ca(dir.path(), "ca");
    let (chain, key, _, _) = leaf(Some(&ca.issuer), &["127.0.0.1"], (-1, 30));
    let srv = TlsServer::start(chain, key, None);
    // `Connection: close`: a new connection, and handshake, for every request.
    let body = "[options]\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 6\nhttp_version = \"1.1\"\n\n\
        [[steps]]\nname = \"health\"\npath = \"/health\"\nheaders = { connection = \"close\" }\n\
        checks = { status = 200 }\n";
    let (c, r, e) = run(
        dir.path(),
        body,
        &srv.url,
        &["--ca-cert", ca.pem.to_str().unwrap()],
    );
    assert_eq!(c, 0, "{e}");
    assert_eq!(requests(&r), (6, 0), "{}", errors(&r));
    assert_eq!(
        r["metrics"]["http_req_tls_handshaking"]["count"], 6,
        "{}",
        r["metrics"]
    );
    // The first handshake is a full one; the later ones resume its session.
    let resumed = srv.resumed.load(std::sync::atomic::Ordering::Relaxed);
    assert!(resumed >= 4, "{resumed} of 6 handshakes resumed");
}

#[test]
fn mutual_tls_sends_the_client_certificate() {
    let dir = tempdir();
    let server_ca = ca(dir.path(), "server-ca");
    let client_ca = ca(dir.path(), "client-ca");
    let (chain, key, _, _) = leaf(Some(&server_ca.issuer), &["127.0.0.1"], (-1, 30));
    let srv = TlsServer::start(chain, key, Some(&client_ca.pem));
    let (_, _, cert_pem, key_pem) = leaf(Some(&client_ca.issuer), &["client.example"], (-1, 30));
    std::fs::write(dir.path().join("client.pem"), cert_pem).unwrap();
    std::fs::write(dir.path().join("client.key"), key_pem).unwrap();
    let ca_flag = ["--ca-cert", server_ca.pem.to_str().unwrap()];

    let body = SCENARIO.replace(
        "[options]\n",
        "[options]\ntls_client_cert = \"client.pem\"\ntls_client_key = \"client.key\"\n",
    );
    let (c, r, e) = run(dir.path(), &body, &srv.url, &ca_flag);
    assert_eq!(c, 0, "{e}");
    assert_eq!(requests(&r), (6, 0), "{}", errors(&r));

    // Without it the server refuses every connection.
    let (_, r, _) = run(dir.path(), SCENARIO, &srv.url, &ca_flag);
    assert_eq!(requests(&r), (6, 6), "{r}");

    // A key without its certificate is a usage error before anything is sent.
    let body = SCENARIO.replace(
        "[options]\n",
        "[options]\ntls_client_key = \"client.key\"\n",
    );
    let (c, _, e) = run(dir.path(), &body, &srv.url, &ca_flag);
    assert_eq!(c, 2, "{e}");
    assert!(e.contains("tls_client_cert"), "{e}");
}

fn protocol(r: &serde_json::Value) -> String {
    r["requests"]["health"]["protocol"]
        .as_str()
        .unwrap_or("none")
        .to_string()
}

#[test]
fn http2_by_alpn_forced_or_refused_and_h2c_with_prior_knowledge() {
    let dir = tempdir();
    let ca = ca(dir.path(), "ca");
    let ca_flag = ["--ca-cert", ca.pem.to_str().unwrap()];
    let cert = || leaf(Some(&ca.issuer), &["127.0.0.1"], (-1, 30));
    let version = |v: &str| {
        SCENARIO.replace(
            "[options]\n",
            &format!("[options]\nhttp_version = \"{v}\"\n"),
        )
    };

    // A server offering both: auto negotiates HTTP/2; "1.1" keeps HTTP/1.1.
    let (chain, key, _, _) = cert();
    let both = TlsServer::start(chain, key, None);
    let (c, r, e) = run(dir.path(), SCENARIO, &both.url, &ca_flag);
    assert_eq!((c, requests(&r)), (0, (6, 0)), "{e} {r}");
    assert_eq!(protocol(&r), "HTTP/2");
    let (c, r, e) = run(dir.path(), &version("1.1"), &both.url, &ca_flag);
    assert_eq!((c, requests(&r)), (0, (6, 0)), "{e}");
    assert_eq!(protocol(&r), "HTTP/1.1");

    // A server offering HTTP/1.1 only: auto falls back; "2" cannot agree, each request an error.
    let (chain, key, _, _) = cert();
    let h1 = TlsServer::with_alpn(chain, key, None, &[b"http/1.1"]);
    let (c, r, e) = run(dir.path(), SCENARIO, &h1.url, &ca_flag);
    assert_eq!((c, requests(&r)), (0, (6, 0)), "{e}");
    assert_eq!(protocol(&r), "HTTP/1.1");
    let (_, r, _) = run(dir.path(), &version("2"), &h1.url, &ca_flag);
    assert_eq!(requests(&r), (6, 6), "{r}");
    assert!(
        errors(&r).contains("TLS handshake failed"),
        "{}",
        errors(&r)
    );

    // Plain http with "2": HTTP/2 with prior knowledge (h2c).
    let plain = TestServer::start();
    let (c, r, e) = run(dir.path(), &version("2"), &plain.url, &[]);
    assert_eq!((c, requests(&r)), (0, (6, 0)), "{e} {r}");
    assert_eq!(protocol(&r), "HTTP/2");

    // An unknown version is a usage error naming the choices.
    let (c, _, e) = run(dir.path(), &version("3"), &plain.url, &[]);
    assert_eq!(c, 2, "{e}");
    assert!(e.contains("\"1.1\""), "{e}");
}

#[test]
fn hosts_send_a_name_to_a_chosen_address() {
    // A certificate for a name DNS does not know: `hosts` points the name at
    // 127.0.0.1, and the name is still what TLS checks (SNI and certificate).
    let dir = tempdir();
    let ca = ca(dir.path(), "ca");
    let (chain, key, _, _) = leaf(Some(&ca.issuer), &["api.loadtest.test"], (-1, 30));
    let srv = TlsServer::start(chain, key, None);
    let port = srv.url.rsplit(':').next().unwrap();
    let url = format!("https://api.loadtest.test:{port}");
    let ca_flag = ["--ca-cert", ca.pem.to_str().unwrap()];
    let body = SCENARIO.replace(
        "[options]\n",
        "[options]\nhosts = { \"api.loadtest.test\" = \"127.0.0.1\" }\n",
    );
    let (c, r, e) = run(dir.path(), &body, &url, &ca_flag);
    assert_eq!((c, requests(&r)), (0, (6, 0)), "{e} {r}");

    // A value that is no address is a usage error naming the key.
    let body = SCENARIO.replace(
        "[options]\n",
        "[options]\nhosts = { \"api.loadtest.test\" = \"localhost\" }\n",
    );
    let (c, _, e) = run(dir.path(), &body, &url, &ca_flag);
    assert_eq!(c, 2, "{e}");
    assert!(e.contains("not an IP address"), "{e}");
}
