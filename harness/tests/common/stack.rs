//! The demo stack on its own project and free ports, for tests that need it whole.

use std::process::Command;

use super::{bin, repo_root};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn demo_bin() -> String {
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

pub struct Stack {
    pub project: String,
    pub db_port: u16,
    pub app_port: u16,
    pub push_port: u16,
    pub prom_port: u16,
    /// The https demo of the `tls` profile.
    pub tls_port: u16,
}

impl Stack {
    /// A project named after the test and this process, on free ports.
    pub fn new(name: &str) -> Stack {
        Stack {
            project: format!("ltt-{name}-{}", std::process::id()),
            db_port: free_port(),
            app_port: free_port(),
            push_port: free_port(),
            prom_port: free_port(),
            tls_port: free_port(),
        }
    }

    /// `loadtest` in the repository root with the stack's ports, and extra environment.
    pub fn cmd_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(repo_root())
            .env("LOADTEST_DB_PORT", self.db_port.to_string())
            .env("LOADTEST_APP_PORT", self.app_port.to_string())
            .env("LOADTEST_PUSHGATEWAY_PORT", self.push_port.to_string())
            .env("LOADTEST_PROMETHEUS_PORT", self.prom_port.to_string())
            .env("LOADTEST_APP_TLS_PORT", self.tls_port.to_string())
            .env("LOADTEST_DEMO_BIN", demo_bin())
            .env("LOADTEST_PROJECT", &self.project);
        c
    }

    pub fn cmd(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.app_port)
    }

    pub fn db_url(&self) -> String {
        format!("postgres://demo:demo@127.0.0.1:{}/demo", self.db_port)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The app image built for this test goes too: test runs must not pile images up.
        let _ = self.cmd(&["down", "--rmi"]);
    }
}

/// GET on the stack's Prometheus HTTP API (plain HTTP/1.0 over a socket); the JSON body.
pub fn prom_get(port: u16, path: &str, params: &[(&str, &str)]) -> serde_json::Value {
    use std::io::{Read, Write};
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", loadtest::metrics::server::encode(v)))
        .collect();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path}?{} HTTP/1.0\r\nHost: localhost\r\n\r\n",
        q.join("&")
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let body = raw.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {raw}"))
}

/// Every target of every panel of the Grafana dashboard, with Grafana's
/// variables filled in, returns data from the real Prometheus over the run.
pub fn assert_dashboard_has_data(prom_port: u16, run: &str, scenario: &str, from: f64, to: f64) {
    let text =
        std::fs::read_to_string(repo_root().join("grafana/dashboards/loadtest.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    let mut empty = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let q = expr
                .replace("$__rate_interval", "15s")
                .replace("$run", run)
                .replace("$scenario", scenario);
            assert!(!q.contains('$'), "unsubstituted variable in {expr}");
            let v = prom_get(
                prom_port,
                "/api/v1/query_range",
                &[
                    ("query", &q),
                    ("start", &format!("{from:.3}")),
                    ("end", &format!("{to:.3}")),
                    ("step", "2"),
                ],
            );
            assert_eq!(v["status"], "success", "{q}: {v}");
            let series = v["data"]["result"].as_array().unwrap();
            let points: usize = series
                .iter()
                .map(|s| s["values"].as_array().map_or(0, |a| a.len()))
                .sum();
            if points == 0 {
                empty.push(format!("{} / {}: {q}", p["title"], t["refId"]));
            }
            checked += 1;
        }
    }
    assert!(empty.is_empty(), "panel targets without data: {empty:#?}");
    assert!(checked >= 13, "only {checked} targets found");
    // The variables' queries: label_values(k6_vus, run) and label_values(k6_vus{run=~"$run"}, scenario).
    let runs = prom_get(
        prom_port,
        "/api/v1/label/run/values",
        &[("match[]", "k6_vus")],
    );
    assert!(
        runs["data"].as_array().unwrap().iter().any(|r| r == run),
        "{runs}"
    );
    let sel = format!("k6_vus{{run=~\"{run}\"}}");
    let scenarios = prom_get(
        prom_port,
        "/api/v1/label/scenario/values",
        &[("match[]", &sel)],
    );
    assert!(
        scenarios["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == scenario),
        "{scenarios}"
    );
}
