//! Live export to a Pushgateway-compatible endpoint: pushes arrive during the
//! run, carry k6's metric names, and an unreachable gateway costs one warning.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::put;
use axum::Router;
use common::*;

type Pushes = Arc<Mutex<Vec<(Instant, String, String)>>>;

async fn record(State(p): State<Pushes>, Path(rest): Path<String>, body: String) -> &'static str {
    p.lock().unwrap().push((Instant::now(), rest, body));
    ""
}

/// A real HTTP server that accepts pushes like a Pushgateway and keeps them.
fn gateway() -> (String, Pushes) {
    let pushes: Pushes = Arc::default();
    let app = Router::new()
        .route("/metrics/job/{*rest}", put(record))
        .with_state(pushes.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    (format!("http://{}", rx.recv().unwrap()), pushes)
}

#[test]
fn metrics_are_pushed_during_the_run_under_k6_names() {
    let srv = TestServer::start();
    let (url, pushes) = gateway();
    let dir = tempdir();
    let started = Instant::now();
    let o = loadtest(&[
        "run",
        "-s",
        "health",
        "--scenarios-dir",
        repo_root().join("scenarios").to_str().unwrap(),
        "-t",
        &srv.url,
        "--vus",
        "2",
        "--duration",
        "11s",
        "-o",
        dir.path().to_str().unwrap(),
        "-q",
        "--push-url",
        &url,
    ]);
    let ended = Instant::now();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let p = pushes.lock().unwrap();
    // At 5 s and 10 s, then the final one.
    assert!(p.len() >= 3, "{} pushes", p.len());
    let first = p[0].0.duration_since(started);
    assert!(
        first < Duration::from_secs(8) && p[0].0 < ended - Duration::from_secs(3),
        "first push after {first:?}"
    );
    assert_eq!(p[0].1, "loadtest/run/baseline/scenario/health");
    let last = &p.last().unwrap().2;
    for name in [
        "k6_http_reqs_total{method=\"GET\",name=\"health\",status=\"200\"}",
        "k6_http_req_duration_p95{method=\"GET\",name=\"health\"}",
        "k6_http_req_failed_rate{method=\"GET\",name=\"health\"} 0",
        "k6_checks_rate{name=\"health\"} 1",
        "k6_vus_max 2",
        "k6_iterations_total",
        "k6_data_received_total",
    ] {
        assert!(last.contains(name), "{name} missing from:\n{last}");
    }
    // Counters only grow from push to push.
    let count = |body: &str| -> u64 {
        body.lines()
            .find(|l| l.starts_with("k6_http_reqs_total{") && l.contains("status=\"200\""))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    assert!(count(&p[0].2) > 0 && count(&p[0].2) < count(last));
}

#[test]
fn an_unreachable_gateway_costs_one_warning_not_the_run() {
    let srv = TestServer::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempdir();
    let url = format!("http://127.0.0.1:{port}");
    let o = loadtest(&[
        "run",
        "-s",
        "health",
        "--scenarios-dir",
        repo_root().join("scenarios").to_str().unwrap(),
        "-t",
        &srv.url,
        "--vus",
        "2",
        "--duration",
        "11s",
        "-o",
        dir.path().to_str().unwrap(),
        "-q",
        "--push-url",
        &url,
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.matches("cannot push live metrics").count(), 1, "{e}");
    assert!(e.contains(&url), "{e}");
    let o = loadtest(&[
        "run",
        "-s",
        "health",
        "--scenarios-dir",
        repo_root().join("scenarios").to_str().unwrap(),
        "-t",
        &srv.url,
        "--push-url",
        "https://x",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("must start with http://"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_k6_script_is_pushed_live_like_a_native_run() {
    let srv = TestServer::start();
    let (url, pushes) = gateway();
    let dir = tempdir();
    let script = dir.path().join("health.js");
    std::fs::write(
        &script,
        "import http from 'k6/http';\nimport { check } from 'k6';\n\
         export const options = { vus: 2, duration: '11s' };\n\
         export default function () {\n  const r = http.get(`${__ENV.BASE_URL}/health`, { tags: { name: 'health' } });\n  \
         check(r, { 'status is 200': (x) => x.status === 200 });\n}\n",
    )
    .unwrap();
    let started = Instant::now();
    let o = loadtest(&[
        "run",
        "-s",
        script.to_str().unwrap(),
        "-t",
        &srv.url,
        "-o",
        dir.path().to_str().unwrap(),
        "-q",
        "--push-url",
        &url,
    ]);
    let ended = Instant::now();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let p = pushes.lock().unwrap();
    // During the run, not only at its end: k6's output is read as k6 writes it.
    assert!(p.len() >= 3, "{} pushes", p.len());
    let first = p[0].0.duration_since(started);
    assert!(
        p[0].0 < ended - Duration::from_secs(3),
        "first push after {first:?}"
    );
    assert_eq!(p[0].1, "loadtest/run/baseline/scenario/health");
    let last = &p.last().unwrap().2;
    for name in [
        "k6_http_reqs_total{method=\"GET\",name=\"health\",status=\"200\"}",
        "k6_http_req_duration_p95{method=\"GET\",name=\"health\"}",
        "k6_vus_max 2",
        "k6_iterations_total",
    ] {
        assert!(last.contains(name), "{name} missing from:\n{last}");
    }
    // The pushed total is the result file's: the same points, read twice.
    let r: serde_json::Value = read_json(&dir.path().join("baseline_health.json"));
    let pushed: u64 = last
        .lines()
        .find(|l| l.starts_with("k6_http_reqs_total{") && l.contains("status=\"200\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap();
    assert_eq!(pushed, r["metrics"]["http_reqs"]["count"].as_u64().unwrap());
    assert_eq!(r["requests"]["health"]["http_reqs"]["count"], pushed);
}
