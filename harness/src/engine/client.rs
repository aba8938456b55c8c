//! The HTTP/1.1 client: one keep-alive connection per VU (over TLS for https),
//! driven by hyper directly (no pool, no locks), with byte counting on the socket.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use http::header::HOST;
use http::response::Parts;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::error::{Error, InvalidPath};
use super::tls::{Tls, TlsSettings};
pub use crate::scenario::options::HttpVersion;

/// The system under test, resolved once before the run.
#[derive(Debug)]
pub struct Target {
    /// The URL as given, with any password replaced by `***` (it is stored and printed).
    pub url: String,
    pub addr: SocketAddr,
    pub host: HeaderValue,
    /// `user:password@` in the URL, sent as Basic authorization (as k6 does),
    /// never in the Host header.
    pub auth: Option<HeaderValue>,
    /// Path prefix from the target URL, without a trailing slash.
    pub base_path: String,
    /// Set for https targets.
    pub tls: Option<Tls>,
    /// HTTP/2 without TLS, with prior knowledge (`http_version = "2"` on http://).
    pub h2c: bool,
    /// `scheme://host:port`, for HTTP/2's pseudo-headers.
    origin: String,
}

impl Target {
    /// Parses and resolves `http[s]://host:port[/prefix]`.
    pub async fn resolve(
        given: &str,
        tls: &TlsSettings,
        version: HttpVersion,
        hosts: &std::collections::BTreeMap<String, SocketAddr>,
    ) -> Result<Target> {
        let shown = crate::redact::userinfo(given);
        let url = shown.as_str();
        let uri: Uri = given
            .parse()
            .map_err(|e| anyhow!("--target `{url}` is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => bail!("--target `{url}` must start with http:// or https://"),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("--target `{url}` has no host"))?;
        let (userinfo, hostport) = match authority.as_str().rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority.as_str()),
        };
        let auth = userinfo
            .map(|u| {
                use base64::Engine as _;
                let token = base64::engine::general_purpose::STANDARD.encode(u.as_bytes());
                HeaderValue::from_str(&format!("Basic {token}"))
            })
            .transpose()
            .map_err(|_| anyhow!("--target `{url}`: the credentials cannot be sent as a header"))?
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        // http gives no port for one it cannot read as u16: look at the text itself.
        let written = authority
            .as_str()
            .rsplit_once(':')
            .map(|(_, p)| p)
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let port = match (written, authority.port_u16()) {
            (None, _) if https => 443,
            (None, _) => 80,
            (Some(_), Some(p)) if p > 0 => p,
            (Some(p), _) => bail!("--target `{url}`: port {p} is not a TCP port (1-65535)"),
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = match hosts.get(&host.to_ascii_lowercase()) {
            // Port 0: the address only, the target's port kept.
            Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), port),
            Some(a) => *a,
            None => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| anyhow!("--target `{url}`: cannot resolve `{host}`: {e}"))?
                .next()
                .ok_or_else(|| anyhow!("--target `{url}`: `{host}` resolves to no address"))?,
        };
        let tls = https
            .then(|| Tls::new(host, tls, version))
            .transpose()
            .map_err(|e| anyhow!("--target `{url}`: {e:#}"))?;
        Ok(Target {
            url: shown.clone(),
            addr,
            host: HeaderValue::from_str(hostport)?,
            auth,
            base_path: uri.path().trim_end_matches('/').to_string(),
            tls,
            h2c: !https && version == HttpVersion::Two,
            origin: format!("{}://{hostport}", if https { "https" } else { "http" }),
        })
    }

    /// The absolute form of an origin-form request URI.
    fn absolute(&self, uri: &Uri) -> Uri {
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        format!("{}{pq}", self.origin)
            .parse()
            .unwrap_or_else(|_| uri.clone())
    }

    /// The request URI for a path (origin form, as HTTP/1.1 sends it).
    pub fn uri(&self, path: &str) -> Result<Uri, InvalidPath> {
        let full = format!("{}{}", self.base_path, path);
        full.parse()
            .map_err(|e: http::uri::InvalidUri| InvalidPath {
                reason: e.to_string(),
                path: full,
            })
    }
}

/// Bytes on the wire, per worker thread.
#[derive(Default, Debug)]
pub struct IoCounters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

/// A TCP stream that counts what goes through it.
struct Counted {
    inner: TcpStream,
    counters: Arc<IoCounters>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.counters.received.fetch_add(n, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.counters.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &r {
            self.counters.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The request side of one connection.
enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn ready(&mut self) -> Result<(), hyper::Error> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        }
    }
}

/// HTTP/1.1 or HTTP/2 on an open connection; the connection is driven by its own task.
/// `local`: the caller runs inside a LocalSet (a worker thread), where the
/// connection task is spawned beside the VU tasks.
async fn handshake<T>(io: T, addr: SocketAddr, h2: bool, local: bool) -> Result<Sender, Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let fail = |source| Error::Handshake { addr, source };
    if h2 {
        let (sender, conn) = http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .map_err(fail)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Sender::H2(sender))
    } else {
        let (sender, conn) = http1::handshake(io).await.map_err(fail)?;
        let drive = async move {
            let _ = conn.await;
        };
        // On a worker, the connection runs on the same LocalSet as its VU: a
        // task on the runtime's own queue beside the LocalSet cost a switch
        // between the two schedulers at every request.
        if local {
            tokio::task::spawn_local(drive);
        } else {
            tokio::spawn(drive);
        }
        Ok(Sender::H1(sender))
    }
}

/// The largest body kept for checks, extraction and error messages.
pub const BODY_KEEP_MAX: usize = 8 << 20;

/// A response, read to its end; `body` holds what the caller asked to keep.
pub struct Response {
    pub parts: Parts,
    pub body: Bytes,
}

/// How long opening a connection took (µs).
#[derive(Clone, Copy, Debug)]
pub struct Opened {
    pub connect_us: u64,
    /// The TLS handshake, when it completed.
    pub tls_us: Option<u64>,
}

/// One VU's connection to the target.
pub struct Client {
    target: Arc<Target>,
    counters: Arc<IoCounters>,
    sender: Option<Sender>,
    /// Set when the last `send` opened a connection; taken by the caller.
    opened: Option<Opened>,
    /// The request timeout, one per VU, moved forward only when it fires
    /// before the current request's deadline (see `send`): a new timer per
    /// request was inserted in and removed from the timer wheel each time
    /// (about 5% of the instructions per request).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Runs inside a LocalSet (see `handshake`).
    local: bool,
}

impl Client {
    pub fn new(target: Arc<Target>, counters: Arc<IoCounters>) -> Self {
        Client {
            target,
            counters,
            sender: None,
            opened: None,
            timer: None,
            local: false,
        }
    }

    /// For a client that is only used inside a LocalSet (a worker's VU).
    pub fn in_local_set(mut self) -> Self {
        self.local = true;
        self
    }

    /// The URL of a request to the target (for the cookie jar).
    pub fn url_of(&self, uri: &Uri) -> Option<url::Url> {
        url::Url::parse(&self.target.absolute(uri).to_string()).ok()
    }

    /// Puts back what `take_opened` took (a redirect chain reports its first connection).
    pub fn put_opened(&mut self, o: Option<Opened>) {
        self.opened = o;
    }

    /// The origin-form URI a redirect from `from` to `location` leads to,
    /// when it stays on the target's origin.
    pub fn follow(&self, from: &Uri, location: &str) -> Result<Uri, Error> {
        let base = self
            .url_of(from)
            .ok_or_else(|| Error::RedirectAway(String::from("an unreadable location")))?;
        let next = base
            .join(location)
            .map_err(|_| Error::RedirectAway(String::from("an unreadable location")))?;
        if next.origin() != base.origin() {
            return Err(Error::RedirectAway(next.origin().ascii_serialization()));
        }
        let pq = match next.query() {
            Some(q) => format!("{}?{q}", next.path()),
            None => next.path().to_string(),
        };
        pq.parse()
            .map_err(|_| Error::RedirectAway(String::from("an unreadable location")))
    }

    /// The timings of the connection the last `send` opened, if it opened one.
    pub fn take_opened(&mut self) -> Option<Opened> {
        self.opened.take()
    }

    async fn connect(&mut self) -> Result<Sender, Error> {
        let addr = self.target.addr;
        let t0 = std::time::Instant::now();
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| Error::Connect { addr, source })?;
        let connect_us = t0.elapsed().as_micros() as u64;
        self.opened = Some(Opened {
            connect_us,
            tls_us: None,
        });
        // Small requests must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let io = Counted {
            inner: tcp,
            counters: self.counters.clone(),
        };
        match &self.target.tls {
            None => handshake(io, addr, self.target.h2c, self.local).await,
            Some(tls) => {
                let t1 = std::time::Instant::now();
                let stream = tls
                    .connector
                    .connect(tls.name.clone(), io)
                    .await
                    .map_err(|source| Error::Tls { addr, source })?;
                self.opened = Some(Opened {
                    connect_us,
                    tls_us: Some(t1.elapsed().as_micros() as u64),
                });
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                handshake(stream, addr, h2, self.local).await
            }
        }
    }

    /// Sends a request on the kept-alive connection (reconnecting when needed).
    /// The returned duration covers writing the request to reading the last
    /// body byte; connecting is not part of it (as in k6).
    /// Only the first `keep` bytes of the body are kept (0: none, when no
    /// check or extraction reads it); the rest is read and counted, not held.
    pub async fn send(
        &mut self,
        mut req: Request<Full<Bytes>>,
        timeout: Duration,
        keep: usize,
    ) -> (Result<Response, Error>, Duration) {
        self.opened = None;
        if let Some(s) = self.sender.as_mut() {
            if s.ready().await.is_err() {
                self.sender = None;
            }
        }
        // One clock read on a kept-alive connection: the send starts now and
        // the timeout runs from it; a new connection's time counts toward the
        // timeout but not toward the latency.
        let mut start = std::time::Instant::now();
        let deadline = tokio::time::Instant::from_std(start) + timeout;
        if self.sender.is_none() {
            // Boxed: the connect future (TLS, HTTP/2 handshakes) is ~9 KB, and
            // unboxed it sat in every request's future, copied at each await level.
            match tokio::time::timeout_at(deadline, Box::pin(self.connect())).await {
                Ok(Ok(s)) => self.sender = Some(s),
                Ok(Err(e)) => return (Err(e), Duration::ZERO),
                Err(_) => return (Err(Error::ConnectTimeout(timeout)), Duration::ZERO),
            }
            start = std::time::Instant::now();
        }
        let sender = self.sender.as_mut().expect("connected above");
        if let Sender::H2(_) = sender {
            // HTTP/2 carries scheme and host as pseudo-headers, taken from the URI.
            *req.uri_mut() = self.target.absolute(req.uri());
        } else {
            req.headers_mut().insert(HOST, self.target.host.clone());
        }
        if let Some(auth) = &self.target.auth {
            // A step's own Authorization header wins.
            req.headers_mut()
                .entry(http::header::AUTHORIZATION)
                .or_insert_with(|| auth.clone());
        }
        let exchange = async {
            let resp = match sender {
                Sender::H1(s) => s.send_request(req).await?,
                Sender::H2(s) => s.send_request(req).await?,
            };
            let (parts, mut body) = resp.into_parts();
            let mut chunks: Vec<Bytes> = Vec::new();
            let mut kept = 0usize;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    if kept < keep {
                        let take = data.len().min(keep - kept);
                        kept += take;
                        chunks.push(data.slice(..take));
                    }
                }
            }
            let body = match chunks.len() {
                0 => Bytes::new(),
                1 => chunks.pop().expect("one chunk"),
                _ => Bytes::from(chunks.concat()),
            };
            Ok::<_, hyper::Error>(Response { parts, body })
        };
        // The VU's timer is left at an earlier request's deadline, which is
        // never later than this one's: when it fires before this deadline it
        // is moved forward and the wait goes on. Moving it on every request
        // cost more than the rare early wake-up (once per timeout per VU).
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        let finished = {
            tokio::pin!(exchange);
            loop {
                tokio::select! {
                    biased;
                    r = &mut exchange => break Ok(r),
                    _ = timer.as_mut() => {
                        if tokio::time::Instant::now() >= deadline {
                            break Err(());
                        }
                        timer.as_mut().reset(deadline);
                    }
                }
            }
        };
        let out = match finished {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.sender = None;
                Err(Error::Http(e))
            }
            Err(_) => {
                // The connection may still deliver the late response: drop it.
                self.sender = None;
                Err(Error::RequestTimeout(timeout))
            }
        };
        (out, start.elapsed())
    }
}
