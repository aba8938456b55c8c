//! One HTTP GET for readiness: an app service without a healthcheck of its
//! own is ready when its health path answers.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

/// The status code of `GET url` (http only), within two seconds.
pub async fn get_status(url: &str) -> Result<u16> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("`{url}` is not a URL"))?;
    let host = uri.host().ok_or_else(|| anyhow!("`{url}` has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect((host, port)).await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let req = http::Request::get(path)
            .header(http::header::HOST, format!("{host}:{port}"))
            .body(Empty::<bytes::Bytes>::new())?;
        let res = send.send_request(req).await?;
        Ok::<_, anyhow::Error>(res.status().as_u16())
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .map_err(|_| anyhow!("no answer within 2 s"))?
}
