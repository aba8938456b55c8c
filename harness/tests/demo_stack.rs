//! The whole stack on the real Docker Engine: up (Postgres stand-in + the demo
//! built from this checkout) -> healthy -> migrate -> the API contract and a
//! short payment-confirm run -> down leaves nothing.

mod common;

use std::path::Path;
use std::process::Command;

use common::stack::{assert_dashboard_has_data, prom_get, Stack};
use common::*;
use loadtest::results::RunResult;

fn prom_query(port: u16, q: &str) -> String {
    prom_get(port, "/api/v1/query", &[("query", q)]).to_string()
}

/// `loadtest run -q` against the stack's app in the background, output piped.
fn spawn_run(
    s: &Stack,
    scenario: &str,
    run: &str,
    out: &Path,
    extra: &[&str],
) -> std::process::Child {
    let url = s.url();
    let mut args = vec![
        "run",
        "-s",
        scenario,
        "-t",
        &url,
        "-o",
        out.to_str().unwrap(),
        "-r",
        run,
        "-q",
    ];
    args.extend_from_slice(extra);
    Command::new(bin())
        .args(&args)
        .current_dir(repo_root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn labelled(project: &str) -> usize {
    let label = format!("label=com.docker.compose.project={project}");
    ["ps -aq", "network ls -q", "volume ls -q"]
        .iter()
        .map(|c| {
            let mut args: Vec<&str> = c.split(' ').collect();
            args.extend(["--filter", &label]);
            let o = Command::new("docker").args(&args).output().unwrap();
            String::from_utf8_lossy(&o.stdout).lines().count()
        })
        .sum()
}

#[test]
fn the_stack_serves_the_contract_and_a_payment_run() {
    let s = Stack::new("demo");
    // With the https demo of the `tls` profile next to the plain one.
    let o = s.cmd(&[
        "up",
        "--fresh",
        "--profile",
        "tls",
        "-q",
        "--timeout",
        "180s",
    ]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("healthy"), "{}", stdout(&o));

    let o = s.cmd(&["migrate", "--database-url", &s.db_url()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("migrations: 2 applied"),
        "{}",
        stdout(&o)
    );

    // A broken migration is named with the database's error.
    let bad = tempdir();
    for e in std::fs::read_dir(repo_root().join("demo/migrations"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), bad.path().join(e.file_name())).unwrap();
    }
    std::fs::write(
        bad.path().join("20990101000000_broken.sql"),
        "CREATE TABLE broken (;",
    )
    .unwrap();
    let o = s.cmd(&[
        "migrate",
        "--database-url",
        &s.db_url(),
        "--migrations",
        bad.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("migration 20990101000000 (broken)")
            && stderr(&o).contains("syntax error"),
        "{}",
        stderr(&o)
    );

    // The contract: every status code of the API, checked by a scenario.
    let out = tempdir();
    let contract = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo-contract.toml");
    let o = s.cmd(&[
        "run",
        "-s",
        contract.to_str().unwrap(),
        "-t",
        &s.url(),
        "-o",
        out.path().to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let r = RunResult::load(&out.path().join("baseline_demo-contract.json")).unwrap();
    let failed: Vec<String> = r
        .requests
        .iter()
        .flat_map(|(n, q)| {
            q.checks
                .iter()
                .filter(|c| c.fails > 0)
                .map(move |c| format!("{n}: {}", c.name))
        })
        .collect();
    assert!(failed.is_empty(), "contract checks failed: {failed:?}");
    assert_eq!(r.requests.len(), 21);
    let declared = loadtest::scenario::load(&contract).unwrap().check_count() as u64;
    assert_eq!(r.metrics.checks.passes, declared);
    assert_eq!(r.metrics.checks.fails, 0);
    // Payments created with card data and left to confirm: the database holds no card number
    // and no CVC for them, only the outcome and the last four digits.
    let unconfirmed = out.path().join("unconfirmed.toml");
    std::fs::write(
        &unconfirmed,
        r#"[options]
executor = "per-vu-iterations"
vus = 1
iterations = 3

[[setup]]
name = "merchant"
method = "POST"
path = "/accounts"
headers = { "api-key" = "test_admin" }
json = { merchant_name = "card-storage" }
extract = { api_key = "$.api_key" }

[[steps]]
name = "create with card"
method = "POST"
path = "/payments"
headers = { "api-key" = "{{ api_key }}" }
json = { amount = 100, currency = "USD", confirm = false, payment_method_data = { card = { card_number = "4242424242424242", card_exp_month = "10", card_exp_year = "35", card_cvc = "123" } } }
checks = { status = 200 }
"#,
    )
    .unwrap();
    let o = s.cmd(&[
        "run",
        "-s",
        unconfirmed.to_str().unwrap(),
        "-t",
        &s.url(),
        "-o",
        out.path().to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cards: Vec<String> = rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&s.db_url()).await.unwrap();
        sqlx::query_scalar("SELECT card::text FROM payments WHERE card IS NOT NULL")
            .fetch_all(&mut c)
            .await
            .unwrap()
    });
    assert!(cards.len() >= 3, "{cards:?}");
    for card in &cards {
        assert!(
            !card.contains("4242424242424242") && !card.contains("cvc") && card.contains("last4"),
            "stored card data: {card}"
        );
    }

    // A short payment-confirm run against the fresh stack.
    let o = s.cmd(&[
        "run",
        "-s",
        "payment-confirm",
        "-t",
        &s.url(),
        "--vus",
        "4",
        "--duration",
        "3s",
        "-o",
        out.path().to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let r = RunResult::load(&out.path().join("baseline_payment-confirm.json")).unwrap();
    assert!(r.metrics.http_reqs.count > 50, "{:?}", r.metrics.http_reqs);
    assert_eq!(r.metrics.checks.fails, 0);

    // The same over HTTPS, end to end: the tls profile's self-signed certificate, HTTP/2 by ALPN.
    let https = format!("https://localhost:{}", s.tls_port);
    let o = s.cmd(&[
        "run",
        "-s",
        "payment-confirm",
        "-t",
        &https,
        "--insecure-skip-tls-verify",
        "--vus",
        "2",
        "--duration",
        "2s",
        "-r",
        "https",
        "-o",
        out.path().to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let r = RunResult::load(&out.path().join("https_payment-confirm.json")).unwrap();
    assert!(r.metrics.http_reqs.count > 10, "{:?}", r.metrics.http_reqs);
    assert_eq!(r.metrics.checks.fails, 0, "{:?}", r.errors);
    assert!(
        r.requests
            .values()
            .all(|q| q.protocol.as_deref() == Some("HTTP/2")),
        "{:?}",
        r.requests.values().map(|q| &q.protocol).collect::<Vec<_>>()
    );
    let hs = r
        .metrics
        .http_req_tls_handshaking
        .as_ref()
        .expect("TLS handshakes timed");
    assert!(hs.count >= 2 && hs.med > 0.0, "{hs:?}");
    // Without the flag the certificate is refused, with a reason and the fix.
    let o = s.cmd(&[
        "run",
        "-s",
        "health",
        "-t",
        &https,
        "--vus",
        "1",
        "--duration",
        "1s",
        "-r",
        "untrusted",
        "-o",
        out.path().to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code(&o), 99, "thresholds fail: {}", stderr(&o));
    let r = RunResult::load(&out.path().join("untrusted_health.json")).unwrap();
    assert!(
        r.errors
            .iter()
            .any(|e| e.error.contains("TLS handshake failed")
                && e.error.contains("--insecure-skip-tls-verify")),
        "{:?}",
        r.errors
    );

    // Live metrics: pushed during the run, scraped by the stack's Prometheus, queryable mid-run;
    // afterwards every dashboard panel has data and the result holds the server-side view.
    let push = format!("http://127.0.0.1:{}", s.push_port);
    let prom = format!("http://127.0.0.1:{}", s.prom_port);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dashboard.toml");
    let from = unix_now();
    let child = spawn_run(
        &s,
        fixture.to_str().unwrap(),
        "live",
        out.path(),
        &[
            "--push-url",
            &push,
            "--prometheus-url",
            &prom,
            "--grafana-url",
            "http://127.0.0.1:3999",
        ],
    );
    std::thread::sleep(std::time::Duration::from_secs(9));
    let mid = prom_query(
        s.prom_port,
        "k6_http_reqs_total{run=\"live\",scenario=\"dashboard\"}",
    );
    let server = prom_query(s.prom_port, "http_requests_total{route=\"/health\"}");
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    assert!(
        mid.contains("\"status\":\"success\"") && mid.contains("\"name\":\"create payment\""),
        "mid-run query: {mid}"
    );
    assert!(
        server.contains("\"job\":\"demo\""),
        "the demo's own metrics are scraped: {server}"
    );
    assert_dashboard_has_data(s.prom_port, "live", "dashboard", from, unix_now());

    let r = RunResult::load(&out.path().join("live_dashboard.json")).unwrap();
    let v = r.server.as_ref().expect("server-side view in the result");
    let create = v
        .routes
        .iter()
        .find(|x| x.method == "POST" && x.route == "/payments")
        .unwrap_or_else(|| panic!("{v:#?}"));
    assert_eq!(create.requests, vec!["create payment".to_string()]);
    assert!(
        create.client_p95_ms > 0.0 && create.server_p95_ms > 0.0,
        "{create:?}"
    );
    // The service counted (within scrape edges) what the client sent.
    let sent = r.requests["create payment"].http_reqs.count as f64;
    assert!(
        (create.server_count as f64) > 0.8 * sent && (create.server_count as f64) < 1.2 * sent,
        "server {} vs client {sent}",
        create.server_count
    );
    let missing = v
        .routes
        .iter()
        .find(|x| x.route == "/payments/{payment_id}");
    assert!(
        missing.is_some_and(|m| m.requests == ["missing payment"]),
        "{v:#?}"
    );
    let summary = stdout(&o);
    assert!(summary.contains("CLIENT VS SERVER"), "{summary}");
    let url = r.dashboard_url.as_deref().unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:3999/d/loadtest/load-test?")
            && url.contains("var-run=live")
            && url.contains("var-scenario=dashboard")
            && url.contains("&from=")
            && url.contains("&to="),
        "{url}"
    );
    assert!(summary.contains(url), "the link is printed: {summary}");

    // Prometheus stops mid-run: one warning, the run completes with its own results.
    let child = spawn_run(
        &s,
        "health",
        "promgone",
        out.path(),
        &[
            "--vus",
            "2",
            "--duration",
            "6s",
            "--push-url",
            &push,
            "--prometheus-url",
            &prom,
        ],
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let k = Command::new("docker")
        .args(["stop", "-t", "1", &format!("{}-prometheus-1", s.project)])
        .output()
        .unwrap();
    assert!(k.status.success(), "{}", String::from_utf8_lossy(&k.stderr));
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{}", stderr(&o));
    assert!(warnings[0].contains("server-side view"), "{}", warnings[0]);
    let r = RunResult::load(&out.path().join("promgone_health.json")).unwrap();
    assert!(r.server.is_none() && r.metrics.http_reqs.count > 0);

    // The app dies mid-run: the run completes, errors are grouped, the exit says so.
    let child = spawn_run(
        &s,
        "health",
        "killed",
        out.path(),
        &["--vus", "4", "--duration", "4s"],
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let k = Command::new("docker")
        .args(["kill", &format!("{}-app-1", s.project)])
        .output()
        .unwrap();
    assert!(k.status.success(), "{}", String::from_utf8_lossy(&k.stderr));
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 99, "{}", stderr(&o));
    let r = RunResult::load(&out.path().join("killed_health.json")).unwrap();
    assert!(r.metrics.http_reqs.count > 0 && r.metrics.http_req_failed.passes > 0);
    assert!(!r.errors.is_empty(), "errors are grouped: {:?}", r.errors);

    let o = s.cmd(&["down"]);
    assert_eq!(code(&o), 0);
    assert_eq!(labelled(&s.project), 0);
}
