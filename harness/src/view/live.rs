//! The live page of `--web`: served by the harness itself on 127.0.0.1 while
//! a run goes on. The page gets the run's seconds as server-sent events, can
//! stop the run (as Ctrl-C does: graceful, results written) and, at the end,
//! receives the result files to download, so it keeps working after the
//! process has exited. Everything the page needs is embedded in the binary.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{CHARTS_JS, CSS};
use crate::metrics::window::Window;
use crate::metrics::{self, MetricsSet};
use crate::scenario::thresholds::Agg;
use crate::scenario::Scenario;

/// Where `--web` serves when no address is given (k6's dashboard port).
pub const DEFAULT_ADDR: &str = "127.0.0.1:5665";
const PAGE: &str = include_str!("assets/live.html");
const PAGE_JS: &str = include_str!("assets/live.js");
/// Seconds kept for a page opened late (an hour; older ones are dropped).
const KEEP: usize = 3600;
/// How long the end waits for open pages to take the final event.
const FAREWELL: Duration = Duration::from_secs(3);

type Body = BoxBody<Bytes, Infallible>;

struct State {
    /// Every message a new page needs first: hello, the seconds so far, the end.
    history: VecDeque<Arc<str>>,
    hello: Arc<str>,
    done: Option<Arc<str>>,
    files: Vec<(String, Vec<u8>)>,
}

struct Shared {
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<str>>,
    stop: CancellationToken,
    /// Pages with an open event stream.
    clients: AtomicUsize,
    page: Bytes,
}

/// The running server. Dropping it stops serving.
pub struct Live {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn sse(event: &str, data: &Value) -> Arc<str> {
    Arc::from(format!("event: {event}\ndata: {data}\n\n"))
}

impl Live {
    /// Binds `addr` now (so a taken port is an error before anything runs)
    /// and serves from a thread of its own. `hello` describes the run.
    pub fn start(addr: &str, hello: Value) -> Result<Live> {
        let listener = std::net::TcpListener::bind(addr).with_context(|| {
            format!("cannot serve the live page on {addr} (another run's page? choose another with --web HOST:PORT)")
        })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let page = PAGE
            .replace("/*CSS*/", CSS)
            .replace("/*CHARTS*/", CHARTS_JS)
            .replace("/*PAGE*/", PAGE_JS);
        let (tx, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                history: VecDeque::new(),
                hello: sse("hello", &hello),
                done: None,
                files: Vec::new(),
            }),
            tx,
            stop: CancellationToken::new(),
            clients: AtomicUsize::new(0),
            page: Bytes::from(page),
        });
        let shutdown = CancellationToken::new();
        let (s, down) = (shared.clone(), shutdown.clone());
        let thread = std::thread::Builder::new()
            .name("loadtest-web".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        crate::errln!("warning: the live page stopped: {e}");
                        return;
                    }
                };
                rt.block_on(serve(listener, s, down));
            })
            .context("starting the live page's thread")?;
        Ok(Live {
            shared,
            addr,
            shutdown,
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Cancelled when the page's Stop button is pressed.
    pub fn stop_token(&self) -> CancellationToken {
        self.shared.stop.clone()
    }

    /// Sends an event to every open page and keeps it for pages opened later.
    pub fn send(&self, event: &str, data: &Value) {
        let msg = sse(event, data);
        let mut st = self.shared.state.lock().expect("live state");
        if st.history.len() >= KEEP {
            st.history.pop_front();
        }
        st.history.push_back(msg.clone());
        // Sent under the lock, so a page joining now sees it once: in the history or live.
        let _ = self.shared.tx.send(msg);
    }

    /// The end: `data` (exit code, what happened) and the result files go to
    /// every open page; waits a moment for them to take it, then stops serving.
    pub fn finish(mut self, data: Value, files: Vec<(String, Vec<u8>)>) {
        let listed: Vec<Value> = files
            .iter()
            .map(|(name, bytes)| {
                json!({"name": name, "url": format!("/files/{name}"),
                       "text": String::from_utf8_lossy(bytes)})
            })
            .collect();
        let mut data = data;
        data["files"] = Value::Array(listed);
        let msg = sse("done", &data);
        {
            let mut st = self.shared.state.lock().expect("live state");
            st.files = files;
            st.done = Some(msg.clone());
            let _ = self.shared.tx.send(msg);
        }
        let until = Instant::now() + FAREWELL;
        while self.shared.clients.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.close();
    }

    fn close(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.close();
    }
}

async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, down: CancellationToken) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            crate::errln!("warning: the live page stopped: {e}");
            return;
        }
    };
    loop {
        let stream = tokio::select! {
            _ = down.cancelled() => return,
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
        };
        let (shared, down) = (shared.clone(), down.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(req, &shared)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = down.cancelled() => {}
            }
        });
    }
}

fn full(status: StatusCode, kind: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", kind)
        .header("cache-control", "no-store")
        .body(Full::new(body.into()).boxed())
        .expect("static response")
}

fn route(req: Request<hyper::body::Incoming>, shared: &Arc<Shared>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/") => full(
            StatusCode::OK,
            "text/html; charset=utf-8",
            shared.page.clone(),
        ),
        (&Method::GET, "/events") => events(shared),
        (&Method::POST, "/stop") => {
            // Another site's page must not be able to stop the run through the browser.
            let host = req.headers().get("host").and_then(|h| h.to_str().ok());
            let origin = req.headers().get("origin").and_then(|h| h.to_str().ok());
            if let (Some(o), Some(h)) = (origin, host) {
                if o != format!("http://{h}") {
                    return full(StatusCode::FORBIDDEN, "text/plain", "foreign origin");
                }
            }
            shared.stop.cancel();
            full(
                StatusCode::ACCEPTED,
                "application/json",
                r#"{"stopping":true}"#,
            )
        }
        (&Method::GET, p) if p.starts_with("/files/") => {
            let name = &p["/files/".len()..];
            let st = shared.state.lock().expect("live state");
            match st.files.iter().find(|(n, _)| n == name) {
                Some((n, bytes)) => {
                    let kind = if n.ends_with(".json") {
                        "application/json"
                    } else {
                        "text/plain; charset=utf-8"
                    };
                    let mut r = full(StatusCode::OK, kind, bytes.clone());
                    if let Ok(v) = format!("attachment; filename=\"{n}\"").parse() {
                        r.headers_mut().insert("content-disposition", v);
                    }
                    r
                }
                None => full(StatusCode::NOT_FOUND, "text/plain", "no such file (yet)"),
            }
        }
        (_, "/" | "/events" | "/stop") => full(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed",
        ),
        _ => full(StatusCode::NOT_FOUND, "text/plain", "not found"),
    }
}

/// Counts a page's open stream for as long as the stream lives.
struct Client(Arc<Shared>);

impl Drop for Client {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

fn events(shared: &Arc<Shared>) -> Response<Body> {
    let (first, rx, ended) = {
        let st = shared.state.lock().expect("live state");
        let mut first: VecDeque<Arc<str>> = VecDeque::with_capacity(st.history.len() + 2);
        first.push_back(st.hello.clone());
        first.extend(st.history.iter().cloned());
        if let Some(d) = &st.done {
            first.push_back(d.clone());
        }
        (first, shared.tx.subscribe(), st.done.is_some())
    };
    shared.clients.fetch_add(1, Ordering::SeqCst);
    let guard = Client(shared.clone());
    let stream = futures_util::stream::unfold(
        (first, rx, ended, guard),
        |(mut first, mut rx, mut ended, guard)| async move {
            if let Some(m) = first.pop_front() {
                return Some((
                    Ok(Frame::data(Bytes::from(m.to_string()))),
                    (first, rx, ended, guard),
                ));
            }
            if ended {
                return None;
            }
            loop {
                match rx.recv().await {
                    Ok(m) => {
                        ended = m.starts_with("event: done");
                        return Some((
                            Ok(Frame::data(Bytes::from(m.to_string()))),
                            (first, rx, ended, guard),
                        ));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-store")
        .body(StreamBody::new(stream).boxed())
        .expect("static response")
}

/// What the page is told first about a run.
pub fn hello(sc: &Scenario, run: &str, target: &str, repeat: u32) -> Value {
    let checks: Vec<Value> = sc
        .steps
        .iter()
        .flat_map(|s| {
            s.checks
                .iter()
                .map(move |c| json!({"request": s.name, "name": c.name}))
        })
        .collect();
    json!({
        "kind": "run",
        "scenario": sc.name,
        "run": run,
        "target": target,
        "planned_s": sc.options.executor.planned_duration().as_secs_f64() * repeat.max(1) as f64,
        "requests": sc.steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        "checks": checks,
        "thresholds": sc.thresholds.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "started_at": chrono::Utc::now().to_rfc3339(),
    })
}

/// Turns each completed second into a `window` event.
pub struct LiveSink<'a> {
    live: &'a Live,
    sc: Arc<Scenario>,
    steps: Vec<(String, std::ops::Range<usize>)>,
    names: Vec<String>,
    ranges: Vec<std::ops::Range<usize>>,
    vus_max: u64,
    seconds: u64,
}

impl<'a> LiveSink<'a> {
    pub fn new(live: &'a Live, sc: Arc<Scenario>) -> Self {
        let names: Vec<String> = sc.steps.iter().map(|s| s.name.clone()).collect();
        let ranges = sc.check_ranges();
        LiveSink {
            live,
            steps: names.iter().cloned().zip(ranges.iter().cloned()).collect(),
            names,
            ranges,
            sc,
            vus_max: 0,
            seconds: 0,
        }
    }
}

impl crate::engine::WindowSink for LiveSink<'_> {
    fn window(&mut self, second: u64, vus: u64, window: &MetricsSet, total: &MetricsSet) {
        self.vus_max = self.vus_max.max(vus);
        // Counted across trials, so the page's time axis keeps going.
        self.seconds += 1;
        let w = Window::from_window(second, window, vus, &self.steps);
        let v = |h, a| metrics::trend_value(h, a);
        let requests: Vec<Value> = self
            .names
            .iter()
            .zip(&total.requests)
            .map(|(name, r)| {
                json!({"name": name, "requests": r.count, "failures": r.failed,
                       "p50": v(&r.duration, Agg::Med), "p95": v(&r.duration, Agg::P(95.0)),
                       "p99": v(&r.duration, Agg::P(99.0))})
            })
            .collect();
        let checks: Vec<Value> = total.checks.iter().map(|[p, f]| json!([p, f])).collect();
        let elapsed = second as f64 + 1.0;
        let thresholds: Vec<Value> = self
            .sc
            .thresholds
            .iter()
            .map(|t| {
                let value =
                    metrics::observe(t, total, &self.names, &self.ranges, elapsed, self.vus_max);
                json!({"threshold": t.to_string(), "value": value,
                       "ok": value.map(|x| t.op.holds(x, t.limit))})
            })
            .collect();
        let mut errors: Vec<(&String, &u64)> = total.errors.iter().collect();
        errors.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let errors: Vec<Value> = errors
            .into_iter()
            .take(20)
            .map(|(e, n)| json!({"error": e, "count": n}))
            .collect();
        let all = total.all_durations();
        self.live.send(
            "window",
            &json!({
                "x": self.seconds - 1,
                "window": w,
                "total": {
                    "requests": total.total_requests(),
                    "failures": total.total_failed(),
                    "iterations": total.iterations,
                    "dropped": total.dropped_iterations,
                    "p50": v(&all, Agg::Med), "p95": v(&all, Agg::P(95.0)), "p99": v(&all, Agg::P(99.0)),
                    "by_request": requests,
                    "checks": checks,
                    "thresholds": thresholds,
                    "errors": errors,
                },
            }),
        );
    }
}

/// `--web` without an address, or with one.
pub fn parse_addr(s: &str) -> Result<String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(DEFAULT_ADDR.to_string());
    }
    // A bare port means 127.0.0.1.
    if s.parse::<u16>().is_ok() {
        return Ok(format!("127.0.0.1:{s}"));
    }
    s.parse::<SocketAddr>()
        .map(|a| a.to_string())
        .map_err(|_| anyhow!("--web {s}: expected HOST:PORT (e.g. 127.0.0.1:5665) or a port"))
}
