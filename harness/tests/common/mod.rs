//! A real HTTP server for the tests, on 127.0.0.1:0, with the routes the
//! scenarios use (a tiny payments API) plus a few knobs (delay, failures).

#![allow(dead_code)]

pub mod stack;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
pub struct AppState {
    /// api key -> merchant id
    keys: Mutex<HashMap<String, String>>,
    /// payment id -> (merchant id, status)
    payments: Mutex<HashMap<String, (String, String)>>,
    next: AtomicU64,
    /// Extra latency added to /slow, in ms.
    pub slow_ms: AtomicU64,
    /// Latency of /steady, in ms.
    pub steady_ms: AtomicU64,
    pub hits: AtomicU64,
    /// /who: requests by (x-user, x-vu) header pair.
    pub who: Mutex<HashMap<(String, String), u64>>,
    /// /flaky: attempts per item.
    pub attempts: Mutex<HashMap<String, u64>>,
    /// /flaky: items created (answered 200).
    pub created: Mutex<Vec<String>>,
    /// /headers: the last request's Host and Authorization.
    pub seen: Mutex<(String, String)>,
}

pub struct TestServer {
    pub url: String,
    pub state: Arc<AppState>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

fn id(state: &AppState, prefix: &str) -> String {
    format!("{prefix}_{}", state.next.fetch_add(1, Ordering::Relaxed))
}

fn merchant(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let key = headers.get("api-key")?.to_str().ok()?;
    state.keys.lock().unwrap().get(key).cloned()
}

async fn accounts(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    if headers.get("api-key").and_then(|v| v.to_str().ok()) != Some("test_admin") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "unauthorized", "message": "bad admin key"}})),
        );
    }
    if body.get("merchant_name").and_then(|v| v.as_str()).is_none() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": "invalid", "message": "merchant_name"}})),
        );
    }
    let m = id(&s, "mer");
    let k = id(&s, "key");
    s.keys.lock().unwrap().insert(k.clone(), m.clone());
    (
        StatusCode::OK,
        Json(json!({"merchant_id": m, "api_key": k})),
    )
}

async fn create_payment(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    let Some(m) = merchant(&s, &headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "unauthorized", "message": "api key"}})),
        );
    };
    if body.get("amount").and_then(|a| a.as_i64()).unwrap_or(0) <= 0 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": "invalid", "message": "amount"}})),
        );
    }
    let confirm = body
        .get("confirm")
        .and_then(|c| c.as_bool())
        .unwrap_or(false);
    let status = if confirm {
        "succeeded"
    } else {
        "requires_confirmation"
    };
    let p = id(&s, "pay");
    s.payments
        .lock()
        .unwrap()
        .insert(p.clone(), (m.clone(), status.to_string()));
    (
        StatusCode::OK,
        Json(
            json!({"payment_id": p, "merchant_id": m, "status": status, "amount": body["amount"], "currency": body["currency"]}),
        ),
    )
}

async fn confirm(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(pid): UrlPath<String>,
) -> impl IntoResponse {
    let Some(m) = merchant(&s, &headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "unauthorized", "message": "api key"}})),
        );
    };
    let mut payments = s.payments.lock().unwrap();
    match payments.get_mut(&pid) {
        Some((owner, status)) if *owner == m => {
            if status == "succeeded" {
                return (
                    StatusCode::CONFLICT,
                    Json(json!({"error": {"code": "conflict", "message": "already confirmed"}})),
                );
            }
            *status = "succeeded".into();
            (
                StatusCode::OK,
                Json(json!({"payment_id": pid, "merchant_id": m, "status": "succeeded"})),
            )
        }
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "not_found", "message": "payment"}})),
        ),
    }
}

async fn health(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    s.hits.fetch_add(1, Ordering::Relaxed);
    Json(json!({"status": "ok"}))
}

async fn slow(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    s.hits.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(s.slow_ms.load(Ordering::Relaxed))).await;
    Json(json!({"status": "ok"}))
}

async fn steady(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    tokio::time::sleep(Duration::from_millis(s.steady_ms.load(Ordering::Relaxed))).await;
    Json(json!({"status": "ok"}))
}

async fn fail() -> impl IntoResponse {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"status": "broken"})),
    )
}

/// A 10 MB body (the same bytes every time), for memory tests.
async fn big() -> impl IntoResponse {
    static BODY: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    BODY.get_or_init(|| bytes::Bytes::from(vec![b'x'; 10 << 20]))
        .clone()
}

/// A header's text, empty when absent or not text.
fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Records the Host and Authorization headers of each request (last one wins).
async fn headers_seen(State(s): State<Arc<AppState>>, headers: HeaderMap) -> impl IntoResponse {
    let h = |n: &str| header(&headers, n);
    *s.seen.lock().unwrap() = (h("host"), h("authorization"));
    Json(json!({"status": "ok"}))
}

async fn who(State(s): State<Arc<AppState>>, headers: HeaderMap) -> impl IntoResponse {
    let h = |n: &str| header(&headers, n);
    *s.who
        .lock()
        .unwrap()
        .entry((h("x-user"), h("x-vu")))
        .or_default() += 1;
    Json(json!({"status": "ok"}))
}

/// Items named `bad...` are refused (400); `busy...` answer 429 once; every other
/// item answers 503 to its first two attempts, then 200.
async fn flaky(State(s): State<Arc<AppState>>, Json(body): Json<Value>) -> impl IntoResponse {
    let item = body["item"].as_str().unwrap_or("").to_string();
    let n = {
        let mut a = s.attempts.lock().unwrap();
        let n = a.entry(item.clone()).or_default();
        *n += 1;
        *n
    };
    if item.starts_with("bad") {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "refused"})));
    }
    if item.starts_with("busy") && n == 1 {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": "slow down"})),
        );
    }
    if !item.starts_with("busy") && n <= 2 {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "try later"})),
        );
    }
    s.created.lock().unwrap().push(item.clone());
    (
        StatusCode::OK,
        Json(json!({"id": format!("id-{item}"), "item": item})),
    )
}

/// Sets a session cookie (and one for another path, which must not come back on /cookie).
async fn login() -> impl IntoResponse {
    (
        axum::response::AppendHeaders([
            ("set-cookie", "session=s3cret; Path=/; HttpOnly"),
            ("set-cookie", "admin=1; Path=/admin"),
        ]),
        Json(json!({"ok": true})),
    )
}

/// The Cookie header the request carried ("" when none).
async fn cookie_seen(headers: HeaderMap) -> impl IntoResponse {
    Json(json!({"cookie": header(&headers, "cookie")}))
}

/// `/hop/N`: a redirect to `N-1` (a relative location) until 0, which says
/// how it was reached.
async fn hop(UrlPath(n): UrlPath<u32>, method: axum::http::Method) -> axum::response::Response {
    if n > 0 {
        return (StatusCode::FOUND, [("location", (n - 1).to_string())]).into_response();
    }
    Json(json!({"method": method.as_str(), "landed": true})).into_response()
}

/// After a POST: 303 to /landing, setting a cookie on the way.
async fn see_other() -> impl IntoResponse {
    (
        StatusCode::SEE_OTHER,
        [
            ("location", "/landing"),
            ("set-cookie", "after=redirect; Path=/"),
        ],
    )
}

async fn landing(method: axum::http::Method, headers: HeaderMap) -> impl IntoResponse {
    Json(json!({"method": method.as_str(), "cookie": header(&headers, "cookie")}))
}

/// 307: the method and body must be repeated at /echo.
async fn temporary() -> impl IntoResponse {
    (StatusCode::TEMPORARY_REDIRECT, [("location", "/echo")])
}

async fn echo(method: axum::http::Method, body: String) -> impl IntoResponse {
    Json(json!({"method": method.as_str(), "body": body}))
}

async fn away() -> impl IntoResponse {
    (
        StatusCode::FOUND,
        [("location", "http://127.0.0.2:9/elsewhere?id=1")],
    )
}

async fn redirect_loop() -> impl IntoResponse {
    (StatusCode::FOUND, [("location", "/loop")])
}

/// `{"msg": "packed"}`, gzip- or zlib-encoded when the client accepts it.
async fn packed(UrlPath(kind): UrlPath<String>, headers: HeaderMap) -> axum::response::Response {
    use std::io::Write;
    let body = br#"{"msg":"packed"}"#;
    if !header(&headers, "accept-encoding").contains(kind.as_str()) {
        return Json(json!({"msg": "plain"})).into_response();
    }
    let bytes = match kind.as_str() {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
    };
    (
        [
            ("content-encoding", kind),
            ("content-type", "application/json".to_string()),
        ],
        bytes,
    )
        .into_response()
}

/// The test API's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/slow", get(slow))
        .route("/fail", get(fail))
        .route("/steady", get(steady))
        .route("/accounts", post(accounts))
        .route("/payments", post(create_payment))
        .route("/payments/{id}/confirm", post(confirm))
        .route("/who", get(who))
        .route("/headers", get(headers_seen))
        .route("/big", get(big))
        .route("/flaky", post(flaky))
        .route("/login", get(login))
        .route("/cookie", get(cookie_seen))
        .route("/hop/{n}", get(hop).post(hop))
        .route("/see-other", post(see_other))
        .route("/landing", get(landing).post(landing))
        .route("/temp", post(temporary))
        .route("/echo", get(echo).post(echo))
        .route("/away", get(away))
        .route("/loop", get(redirect_loop))
        .route("/packed/{kind}", get(packed))
        .with_state(state)
}

impl TestServer {
    /// Starts the server on its own runtime thread; it stops when dropped.
    pub fn start() -> TestServer {
        Self::start_on("127.0.0.1:0")
    }

    /// The same on another local address (`[::1]:0` for IPv6).
    pub fn start_on(bind: &'static str) -> TestServer {
        let state = Arc::new(AppState::default());
        let app = router(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        TestServer {
            url: format!("http://{addr}"),
            state,
            _shutdown: tx,
        }
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_loadtest")
}

/// The repository's root (scenarios/ lives there).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Writes a scenario file into `dir` and returns its path.
pub fn scenario_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, body).unwrap();
    p
}

/// Runs `loadtest` with the given arguments.
pub fn loadtest(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("LOADTEST_TARGET")
        .output()
        .expect("loadtest runs")
}

/// `loadtest run -s SCENARIO -t URL -o OUT -q` plus extra flags.
pub fn run_scenario(scenario: &Path, url: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "-s",
        scenario.to_str().unwrap(),
        "-t",
        url,
        "-o",
        out.to_str().unwrap(),
        "-q",
    ];
    args.extend_from_slice(extra);
    loadtest(&args)
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
