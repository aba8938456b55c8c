//! The system under test: a small payments API modelled on the part of a
//! payments router that load tests exercise. Configured by environment:
//! DATABASE_URL, BIND_ADDR (0.0.0.0:8080), ADMIN_API_KEY (test_admin),
//! DB_POOL_SIZE (10); TLS_BIND_ADDR (unset: no https) with TLS_CERT_FILE,
//! TLS_KEY_FILE or TLS_NAMES (see tls.rs). `demo healthcheck` probes /health
//! for container healthchecks.

mod api;
mod card;
mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

/// `demo healthcheck`: exit 0 when GET /health answers 200 (no curl in the image).
fn healthcheck(bind: &str) -> i32 {
    use std::io::{Read, Write};
    let port = bind.rsplit(':').next().unwrap_or("8080");
    let addr = format!("127.0.0.1:{port}");
    let probe = || -> std::io::Result<bool> {
        let mut s = std::net::TcpStream::connect_timeout(
            &addr.parse().map_err(std::io::Error::other)?,
            Duration::from_secs(2),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        Ok(buf[..n].starts_with(b"HTTP/1.1 200") || buf[..n].starts_with(b"HTTP/1.0 200"))
    };
    match probe() {
        Ok(true) => 0,
        Ok(false) => {
            eprintln!("GET /health did not answer 200");
            1
        }
        Err(e) => {
            eprintln!("GET /health on {addr} failed: {e}");
            1
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bind = env_or("BIND_ADDR", "0.0.0.0:8080");
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        std::process::exit(healthcheck(&bind));
    }
    let url = std::env::var("DATABASE_URL")
        .context("DATABASE_URL is not set (postgres://user:password@host/db)")?;
    let pool_size: u32 = env_or("DB_POOL_SIZE", "10")
        .parse()
        .context("DB_POOL_SIZE must be a number")?;
    // Lazy: the service answers /health before the database is up; /health/ready tells.
    let db = PgPoolOptions::new()
        .max_connections(pool_size)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&url)
        .context("DATABASE_URL is not a valid Postgres URL")?;
    let app = api::App::new(db, env_or("ADMIN_API_KEY", "test_admin"));
    let addr: SocketAddr = bind
        .parse()
        .with_context(|| format!("BIND_ADDR `{bind}` is not host:port"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!("demo listening on {addr}");
    let router = api::router(app);
    if let Some(tls_bind) = std::env::var("TLS_BIND_ADDR")
        .ok()
        .filter(|s| !s.is_empty())
    {
        let tls_addr: SocketAddr = tls_bind
            .parse()
            .with_context(|| format!("TLS_BIND_ADDR `{tls_bind}` is not host:port"))?;
        let tls_app = router.clone();
        // Started before serving, so that a bad certificate stops the process at once.
        let (certs_ok_tx, certs_ok) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let r = tls::serve(tls_addr, tls_app, certs_ok_tx).await;
            if let Err(e) = r {
                eprintln!("demo: https listener failed: {e:#}");
                std::process::exit(1);
            }
        });
        certs_ok
            .await
            .map_err(|_| anyhow::anyhow!("the https listener did not start"))?;
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await?;
    Ok(())
}
