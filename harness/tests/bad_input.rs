//! Bad input: each case gets a clear error, exit code 2, no request sent and
//! no result file written.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;

use common::*;

const GOOD_STEP: &str = r#"
[[steps]]
name = "health"
path = "/health"
"#;

/// Runs a scenario text against a live server and expects a usage error.
fn expect_usage_error(body: &str, want: &[&str]) -> String {
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(dir.path(), "bad", body);
    let out = dir.path().join("out");
    let o = run_scenario(&sc, &srv.url, &out, &[]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "stderr: {err}");
    for w in want {
        assert!(err.contains(w), "`{w}` missing from: {err}");
    }
    assert_eq!(
        srv.state.hits.load(Ordering::Relaxed),
        0,
        "a request was sent"
    );
    assert!(!out.join("baseline_bad.json").exists());
    err
}

fn at(dir_hint: &str, line: usize, col: usize) -> String {
    format!("{dir_hint}:{line}:{col}")
}

#[test]
fn unknown_scenario_name_lists_the_available_ones() {
    let o = loadtest(&[
        "run",
        "-s",
        "nope",
        "--scenarios-dir",
        repo_root().join("scenarios").to_str().unwrap(),
        "-t",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(code(&o), 2);
    let e = stderr(&o);
    assert!(e.contains("unknown scenario `nope`"), "{e}");
    assert!(
        e.contains("health, payment-confirm, payment-create-and-confirm"),
        "{e}"
    );
}

#[test]
fn toml_syntax_error_gives_line_and_column() {
    let e = expect_usage_error(
        "[options]\nexecutor = \"constant-vus\nvus = 1\n",
        &["bad.toml:2:"],
    );
    assert!(
        e.to_lowercase().contains("string") || e.contains("invalid"),
        "{e}"
    );
}

#[test]
fn unknown_key_is_rejected_with_its_position() {
    let body =
        format!("[options]\nexecutor = \"constant-vus\"\nduration = \"1s\"\nvuz = 3\n{GOOD_STEP}");
    let e = expect_usage_error(&body, &["unknown field `vuz`"]);
    assert!(e.contains(&at("bad.toml", 4, 1)), "{e}");
    let body =
        "[options]\nduration = \"1s\"\n[[steps]]\npath = \"/health\"\nheader = { a = \"b\" }\n";
    let e = expect_usage_error(body, &["unknown field `header`"]);
    assert!(e.contains(&at("bad.toml", 5, 1)), "{e}");
}

#[test]
fn unknown_executor_is_named() {
    let body = format!("[options]\nexecutor = \"constant-vu\"\nduration = \"1s\"\n{GOOD_STEP}");
    let e = expect_usage_error(
        &body,
        &[
            "unknown executor `constant-vu`",
            "constant-vus, ramping-vus",
        ],
    );
    assert!(e.contains(&at("bad.toml", 2, 12)), "{e}");
}

#[test]
fn option_of_another_executor_is_rejected() {
    let body =
        format!("[options]\nexecutor = \"constant-vus\"\nduration = \"1s\"\nrate = 5\n{GOOD_STEP}");
    expect_usage_error(
        &body,
        &[
            "`rate` does not apply to executor constant-vus",
            "bad.toml:4:8",
        ],
    );
}

#[test]
fn unknown_template_variable_names_the_step() {
    let body = r#"
[options]
duration = "1s"

[[steps]]
name = "create payment"
method = "POST"
path = "/payments"
extract = { payment_id = "$.payment_id" }

[[steps]]
name = "confirm payment"
method = "POST"
path = "/payments/{{ paymentid }}/confirm"
"#;
    expect_usage_error(
        body,
        &[
            "`confirm payment`",
            "unknown variable `paymentid`",
            "payment_id",
            "bad.toml:14:8",
        ],
    );
}

#[test]
fn invalid_jsonpath_is_rejected() {
    let body = r#"
[options]
duration = "1s"

[[steps]]
name = "health"
path = "/health"
checks = { "$.[status" = "ok" }
"#;
    expect_usage_error(
        body,
        &["invalid JSONPath `$.[status`", "`health`", "bad.toml:8:"],
    );
    let body = r#"
[options]
duration = "1s"

[[steps]]
name = "health"
path = "/health"
extract = { s = "status" }
"#;
    expect_usage_error(body, &["invalid JSONPath `status`"]);
}

#[test]
fn malformed_threshold_is_rejected() {
    let body = format!("[options]\nduration = \"1s\"\n{GOOD_STEP}\n[thresholds]\nhttp_req_duration = [\"p95 < 200\"]\n");
    expect_usage_error(&body, &["unknown aggregate `p95`", "bad.toml:9:"]);
    let body = format!("[options]\nduration = \"1s\"\n{GOOD_STEP}\n[thresholds]\nhttp_req_failed = [\"rate < lots\"]\n");
    expect_usage_error(&body, &["`lots` is not a number"]);
    let body = format!("[options]\nduration = \"1s\"\n{GOOD_STEP}\n[thresholds]\n\"http_req_duration{{name:nope}}\" = [\"p(95) < 200\"]\n");
    expect_usage_error(&body, &["no step is named `nope`"]);
}

#[test]
fn bad_flags_are_usage_errors() {
    let srv = TestServer::start();
    let sc = repo_root().join("scenarios/health.toml");
    let sc = sc.to_str().unwrap();
    for (args, want) in [
        (
            vec!["run", "-s", sc, "-t", "ftp://x"],
            "must start with http://",
        ),
        (
            vec!["run", "-s", sc, "-t", &srv.url, "--duration", "10"],
            "no unit",
        ),
        (
            vec!["run", "-s", sc, "-t", &srv.url, "-r", "../evil"],
            "run name",
        ),
        (vec!["run", "-s", sc], "--target"),
        (
            vec![
                "run",
                "-s",
                sc,
                "-t",
                "https://127.0.0.1:1",
                "--ca-cert",
                "/nonexistent/ca.pem",
            ],
            "--ca-cert /nonexistent/ca.pem: cannot read it",
        ),
    ] {
        let o = loadtest(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(srv.state.hits.load(Ordering::Relaxed), 0);
}

#[test]
fn failed_setup_is_fatal_with_exit_1() {
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "setup",
        r#"
[options]
duration = "1s"

[[setup]]
name = "create merchant"
method = "POST"
path = "/accounts"
headers = { "api-key" = "wrong" }
json = { merchant_name = "x" }
extract = { api_key = "$.api_key" }
checks = { status = 200 }

[[steps]]
path = "/health"
headers = { "api-key" = "{{ api_key }}" }
"#,
    );
    let o = run_scenario(&sc, &srv.url, dir.path(), &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("setup step `create merchant`") && e.contains("status 401"),
        "{e}"
    );
    assert!(!Path::new(&dir.path().join("baseline_setup.json")).exists());
    assert_eq!(
        srv.state.hits.load(Ordering::Relaxed),
        0,
        "the load phase must not start"
    );
}

#[test]
fn help_documents_exit_codes() {
    let o = loadtest(&["run", "--help"]);
    assert_eq!(code(&o), 0);
    let out = stdout(&o);
    for w in [
        "99",
        "98",
        "--vus",
        "--duration",
        "--run-name",
        "--out",
        "--quiet",
    ] {
        assert!(out.contains(w), "{w} missing from help");
    }
}

#[test]
fn durations_past_a_year_are_usage_errors_not_panics() {
    for d in ["6000000000000000h", "3000000000000000h", "9000h"] {
        let err = expect_usage_error(
            &format!("[options]\nexecutor = \"constant-vus\"\nduration = \"{d}\"\n{GOOD_STEP}"),
            &["longer than the longest duration accepted"],
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let srv = TestServer::start();
    let dir = tempdir();
    let o = run_scenario(
        &repo_root().join("scenarios/health.toml"),
        &srv.url,
        dir.path(),
        &["--duration", "6000000000000000h"],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn a_port_out_of_range_is_refused_not_port_80() {
    let dir = tempdir();
    let o = run_scenario(
        &repo_root().join("scenarios/health.toml"),
        "http://127.0.0.1:99999",
        dir.path(),
        &[],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("port 99999 is not a TCP port"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn names_that_would_leave_the_results_folder_are_refused() {
    let srv = TestServer::start();
    let dir = tempdir();
    let out = dir.path().join("out");
    for bad in ["..", ".", "a/b", &"x".repeat(300)] {
        let o = run_scenario(
            &repo_root().join("scenarios/health.toml"),
            &srv.url,
            &out,
            &["-r", bad],
        );
        assert_eq!(code(&o), 2, "-r {bad}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("becomes part of file names"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(
        srv.state.hits.load(Ordering::Relaxed),
        0,
        "nothing was sent"
    );
    // A result file whose own run name points elsewhere: compare refuses, writes nothing outside.
    let o = run_scenario(
        &repo_root().join("scenarios/health.toml"),
        &srv.url,
        &out,
        &["-r", "base", "--vus", "1", "--duration", "1s"],
    );
    assert!(code(&o) == 0 || code(&o) == 99, "{}", stderr(&o));
    let base = out.join("base_health.json");
    let mut forged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    // out/../escaped_health.diff would land in the folder above the results.
    forged["run"] = serde_json::Value::String("../escaped".into());
    let cur = out.join("cur_health.json");
    std::fs::write(&cur, forged.to_string()).unwrap();
    let o = loadtest(&["compare", base.to_str().unwrap(), cur.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("becomes part of file names"),
        "{}",
        stderr(&o)
    );
    let leaked: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("escaped"))
        .collect();
    assert!(leaked.is_empty(), "a file was written outside: {leaked:?}");
}

#[test]
fn sizes_beyond_reason_are_refused_before_any_work() {
    // Populate with i64::MAX items: refused at validation, with the limit.
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "huge",
        "[[populate]]\nname = \"p\"\nmethod = \"POST\"\npath = \"/flaky\"\nitems = 9223372036854775807\n",
    );
    let o = loadtest(&["validate", "-s", sc.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("at most 10000000 items"),
        "{}",
        stderr(&o)
    );

    // A data file spanning four billion days: refused with the limit, no panic, no database needed.
    let data = dir.path().join("data.toml");
    std::fs::write(
        &data,
        "days = 4000000000\nuntil = \"2026-11-01\"\n[merchants]\ncount = 1\n[customers]\nper_merchant = 1\n\
         [payments]\nper_customer = 1\ncurrencies = [\"USD\"]\n[cards]\n\"4242424242424242\" = 1.0\n",
    )
    .unwrap();
    let o = loadtest(&[
        "db",
        "seed",
        "--data",
        data.to_str().unwrap(),
        "--database-url",
        "postgres://u:p@127.0.0.1:1/none",
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("100 years"), "{}", stderr(&o));

    // random_string of three billion characters: a grouped template error per request, no abort.
    let srv = TestServer::start();
    let sc = scenario_file(
        dir.path(),
        "bigbody",
        "[options]\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 2\n\n\
         [[steps]]\nname = \"big\"\nmethod = \"POST\"\npath = \"/health\"\n\
         body = \"{{ random_string(3000000000) }}\"\n",
    );
    let o = run_scenario(&sc, &srv.url, &dir.path().join("out"), &[]);
    assert!(
        !stderr(&o).contains("panicked") && o.status.code().is_some(),
        "{}",
        stderr(&o)
    );
    let r = std::fs::read_to_string(dir.path().join("out/baseline_bigbody.json")).unwrap();
    assert!(r.contains("at most 1000000 characters"), "{r}");
}

#[test]
fn vus_and_rates_past_the_machine_are_refused_with_the_limit() {
    for (body, want) in [
        (
            "[options]\nexecutor = \"constant-vus\"\nvus = 4294967295\nduration = \"2s\"\n",
            "VUs is more than this machine can hold",
        ),
        (
            "[options]\nexecutor = \"ramping-vus\"\nstages = [{ duration = \"2s\", target = 1e12 }]\n",
            "VUs is more than this machine can hold",
        ),
        (
            "[options]\nexecutor = \"constant-arrival-rate\"\nrate = 1e12\nduration = \"2s\"\npre_allocated_vus = 1\n",
            "iterations/s is more than one machine can schedule",
        ),
    ] {
        expect_usage_error(&format!("{body}{GOOD_STEP}"), &[want]);
    }
    // The --vus flag is held to the same limit.
    let srv = TestServer::start();
    let dir = tempdir();
    let o = run_scenario(
        &repo_root().join("scenarios/health.toml"),
        &srv.url,
        dir.path(),
        &["--vus", "4000000000", "--duration", "1s"],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("more than this machine can hold"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_template_that_loops_without_end_fails_fast() {
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "loops",
        "[options]\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 1\n\n\
         [[steps]]\nname = \"spin\"\nmethod = \"POST\"\npath = \"/health\"\n\
         body = \"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\"\n",
    );
    let started = std::time::Instant::now();
    let o = run_scenario(&sc, &srv.url, &dir.path().join("out"), &[]);
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
    assert!(o.status.code().is_some(), "{}", stderr(&o));
    let r = std::fs::read_to_string(dir.path().join("out/baseline_loops.json")).unwrap();
    assert!(r.contains("template error"), "{r}");
}

#[test]
fn the_highest_arrival_rate_keeps_its_schedule_and_counts_what_it_drops() {
    // 1,000,000 arrivals/s for 2 s with 4 VUs: nearly all find no VU. They are
    // counted, and the run ends on time instead of walking each missed arrival.
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "flood",
        &format!(
            "[options]\nexecutor = \"constant-arrival-rate\"\nrate = 1000000\nduration = \"2s\"\n\
             pre_allocated_vus = 2\nmax_vus = 4\n{GOOD_STEP}"
        ),
    );
    let started = std::time::Instant::now();
    let o = run_scenario(&sc, &srv.url, &dir.path().join("out"), &[]);
    let took = started.elapsed();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/baseline_flood.json")).unwrap(),
    )
    .unwrap();
    let m = &r["metrics"];
    let done = m["iterations"]["count"].as_u64().unwrap();
    let dropped = m["dropped_iterations"]["count"].as_u64().unwrap();
    let cut = m["interrupted_iterations"].as_u64().unwrap_or(0);
    assert_eq!(done + dropped + cut, 2_000_000, "{m}");
    // Before, every missed arrival was walked one by one: a 2 s run lasted 10 s.
    assert!(took.as_secs() < 8, "took {took:?}");
}

#[test]
fn ctrl_c_stops_a_run_whose_templates_burn_all_their_fuel() {
    // Every iteration renders a template that runs out of fuel; Ctrl-C must
    // still end the run promptly with partial results marked interrupted.
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "burn",
        "[options]\nexecutor = \"constant-vus\"\nvus = 2\nduration = \"60s\"\n\n\
         [[steps]]\nname = \"spin\"\nmethod = \"POST\"\npath = \"/health\"\n\
         body = \"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\"\n",
    );
    let out = dir.path().join("out");
    let child = std::process::Command::new(bin())
        .args(["run", "-s", sc.to_str().unwrap(), "-t", &srv.url, "-o"])
        .arg(&out)
        .arg("-q")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let sent = std::time::Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed().as_secs() < 15,
        "Ctrl-C took {:?}",
        sent.elapsed()
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let r = read_json(&out.join("baseline_burn.json"));
    assert_eq!(r["interrupted"], true);
    assert!(r.to_string().contains("ran out of fuel"), "{r}");
}
