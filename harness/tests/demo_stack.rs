//! The whole stack on the real Docker Engine: up (Postgres stand-in + the demo
//! built from this checkout) -> healthy -> migrate -> the API contract and a
//! short payment-confirm run -> down leaves nothing.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use loadtest::results::RunResult;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn demo_bin() -> String {
    let root = repo_root();
    let bin = root.join("target/debug/demo");
    if !bin.is_file() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "demo"])
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(st.success(), "building the demo failed");
    }
    "target/debug/demo".to_string()
}

struct Stack {
    project: String,
    db_port: u16,
    app_port: u16,
    push_port: u16,
    prom_port: u16,
}

impl Stack {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .args(args)
            .current_dir(repo_root())
            .env("LOADTEST_DB_PORT", self.db_port.to_string())
            .env("LOADTEST_APP_PORT", self.app_port.to_string())
            .env("LOADTEST_PUSHGATEWAY_PORT", self.push_port.to_string())
            .env("LOADTEST_PROMETHEUS_PORT", self.prom_port.to_string())
            .env("LOADTEST_DEMO_BIN", demo_bin())
            .env("LOADTEST_PROJECT", &self.project)
            .output()
            .unwrap()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.app_port)
    }

    fn db_url(&self) -> String {
        format!("postgres://demo:demo@127.0.0.1:{}/demo", self.db_port)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.cmd(&["down"]);
    }
}

/// GET /api/v1/query on the stack's Prometheus (plain HTTP/1.0 over a socket).
fn prom_query(port: u16, q: &str) -> String {
    use std::io::{Read, Write};
    let enc: String = q
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_-.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /api/v1/query?query={enc} HTTP/1.0\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
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
    let s = Stack {
        project: format!("ltt-demo-{}", std::process::id()),
        db_port: free_port(),
        app_port: free_port(),
        push_port: free_port(),
        prom_port: free_port(),
    };
    let o = s.cmd(&["up", "--fresh", "-q", "--timeout", "180s"]);
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

    // Live metrics: pushed during the run, scraped by the stack's Prometheus, queryable mid-run.
    let push = format!("http://127.0.0.1:{}", s.push_port);
    let child = Command::new(bin())
        .args([
            "run",
            "-s",
            "health",
            "-t",
            &s.url(),
            "--vus",
            "2",
            "--duration",
            "14s",
            "-o",
            out.path().to_str().unwrap(),
            "-r",
            "live",
            "-q",
            "--push-url",
            &push,
        ])
        .current_dir(repo_root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(9));
    let mid = prom_query(
        s.prom_port,
        "k6_http_reqs_total{run=\"live\",scenario=\"health\"}",
    );
    let server = prom_query(s.prom_port, "http_requests_total{route=\"/health\"}");
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        mid.contains("\"status\":\"success\"") && mid.contains("\"name\":\"health\""),
        "mid-run query: {mid}"
    );
    assert!(
        server.contains("\"job\":\"demo\""),
        "the demo's own metrics are scraped: {server}"
    );

    // The app dies mid-run: the run completes, errors are grouped, the exit says so.
    let child = Command::new(bin())
        .args([
            "run",
            "-s",
            "health",
            "-t",
            &s.url(),
            "--vus",
            "4",
            "--duration",
            "4s",
            "-o",
            out.path().to_str().unwrap(),
            "-r",
            "killed",
            "-q",
        ])
        .current_dir(repo_root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
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
