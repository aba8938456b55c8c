//! End-to-end runs of the `loadtest` binary against a real HTTP server on 127.0.0.1.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use common::*;
use loadtest::results::RunResult;

/// Load tests share two cores: run them one at a time so timings stay honest.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn the_example_scenario_runs_end_to_end() {
    let _g = serial();
    let srv = TestServer::start();
    let out = tempdir();
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/example-from-issue.toml");
    // Verbatim: the file's own 30 s ramp to 25 VUs with 1..5 s think time.
    let o = loadtest(&[
        "run",
        "-s",
        scenario.to_str().unwrap(),
        "-t",
        &srv.url,
        "-o",
        out.path().to_str().unwrap(),
        "-r",
        "e2e",
        "-q",
    ]);
    assert_eq!(
        code(&o),
        0,
        "stdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    let json = out.path().join("e2e_example-from-issue.json");
    let summary = out.path().join("e2e_example-from-issue.summary");
    assert!(summary.is_file());
    let r = RunResult::load(&json).unwrap();
    assert_eq!(r.run, "e2e");
    assert_eq!(r.scenario, "example-from-issue");
    assert_eq!(r.scenario_sha256.len(), 64);
    assert_eq!(r.options["executor"], "ramping-vus");
    assert!(r.overrides.is_empty());
    assert_eq!(r.metrics.vus_max, 25);
    let create = &r.requests["create payment"];
    let confirm = &r.requests["confirm payment"];
    // 25 VUs, ~20 s at full strength, one iteration every ~3 s each.
    assert!(create.http_reqs.count >= 100, "{create:?}");
    assert_eq!(create.http_reqs.count, confirm.http_reqs.count);
    assert_eq!(
        confirm.status_codes.get("200"),
        Some(&confirm.http_reqs.count)
    );
    // Every check passed: setup extraction, per-VU extraction and templates all worked.
    assert_eq!(r.metrics.checks.fails, 0, "{:?}", r.requests);
    assert_eq!(r.metrics.checks.passes, 4 * create.http_reqs.count);
    assert_eq!(r.metrics.http_req_failed.rate, 0.0);
    assert!(r.thresholds.iter().all(|t| t.ok), "{:?}", r.thresholds);
    assert_eq!(r.thresholds.len(), 4);
    // Think time (1..5 s) is part of every iteration.
    assert!(r.metrics.iteration_duration.min >= 1000.0);
    assert!(!r.timeline.is_empty());
    assert!(r.metrics.data_sent.count > 0 && r.metrics.data_received.count > 0);
    assert!(r.host.cores >= 1 && !r.host.kernel.is_empty());
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.contains("{ name:confirm payment }"), "{text}");
    assert!(
        text.contains("✓ http_req_duration{name:confirm payment}: p(99) < 800"),
        "{text}"
    );
}

#[test]
fn constant_arrival_rate_is_accurate() {
    let _g = serial();
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "rate",
        r#"
[options]
executor = "constant-arrival-rate"
rate = 500
duration = "4s"
pre_allocated_vus = 20
max_vus = 100

[[steps]]
name = "health"
path = "/health"
checks = { status = 200 }
"#,
    );
    let o = run_scenario(&sc, &srv.url, dir.path(), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = RunResult::load(&dir.path().join("baseline_rate.json")).unwrap();
    let n = r.metrics.iterations.count as f64;
    assert!(
        (1960.0..=2040.0).contains(&n),
        "iterations {n}, dropped {}",
        r.metrics.dropped_iterations.count
    );
    assert_eq!(
        srv.state.hits.load(Ordering::Relaxed),
        r.metrics.http_reqs.count
    );
    // Open model: both latency figures are kept.
    let u = r
        .metrics
        .http_req_duration_uncorrected
        .as_ref()
        .expect("uncorrected latency kept");
    assert!(r.metrics.http_req_duration.med >= u.med);
    assert!(r.requests["health"].histogram_uncorrected.is_some());
}

#[test]
fn ramping_arrival_rate_follows_its_stages() {
    let _g = serial();
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "ramp-rate",
        r#"
[options]
executor = "ramping-arrival-rate"
start_rate = 0
stages = [{ duration = "2s", target = 200 }, { duration = "1s", target = 200 }]
pre_allocated_vus = 10
max_vus = 50

[[steps]]
name = "health"
path = "/health"
"#,
    );
    let o = run_scenario(&sc, &srv.url, dir.path(), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = RunResult::load(&dir.path().join("baseline_ramp-rate.json")).unwrap();
    // 200 during the ramp (its integral) plus 200 on the plateau.
    let n = r.metrics.iterations.count as f64 + r.metrics.dropped_iterations.count as f64;
    assert!((392.0..=408.0).contains(&n), "{n}");
    let tl = &r.timeline;
    // The first second of the ramp carries a quarter of its iterations, the second three quarters.
    assert!((40..=60).contains(&tl[0].iterations), "{tl:?}");
    assert!((140..=160).contains(&tl[1].iterations), "{tl:?}");
}

#[test]
fn a_slow_server_makes_the_open_model_drop_iterations() {
    let _g = serial();
    let srv = TestServer::start();
    srv.state.slow_ms.store(200, Ordering::Relaxed);
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "drop",
        r#"
[options]
executor = "constant-arrival-rate"
rate = 50
duration = "2s"
pre_allocated_vus = 2
max_vus = 2

[[steps]]
name = "slow"
path = "/slow"
"#,
    );
    let o = run_scenario(&sc, &srv.url, dir.path(), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = RunResult::load(&dir.path().join("baseline_drop.json")).unwrap();
    let done = r.metrics.iterations.count;
    let dropped = r.metrics.dropped_iterations.count;
    // Two VUs at 200 ms each manage about 10 of the 100 planned iterations.
    assert!(dropped >= 70, "dropped {dropped}, done {done}");
    assert!(
        (95..=100).contains(&(done + dropped + r.metrics.interrupted_iterations)),
        "{done} + {dropped}"
    );
    assert!(r.metrics.http_req_duration.min >= 200.0);
    let text = std::fs::read_to_string(dir.path().join("baseline_drop.summary")).unwrap();
    assert!(text.contains("dropped_iterations"), "{text}");
}

#[test]
fn crossed_thresholds_exit_99_and_abort_on_fail_stops_early() {
    let _g = serial();
    let srv = TestServer::start();
    srv.state.slow_ms.store(20, Ordering::Relaxed);
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "slow",
        r#"
[options]
executor = "constant-vus"
vus = 2
duration = "2s"

[[steps]]
name = "slow"
path = "/slow"

[thresholds]
http_req_duration = ["p(90) < 5", "max < 10000"]
"#,
    );
    let o = run_scenario(&sc, &srv.url, dir.path(), &[]);
    assert_eq!(code(&o), 99, "{}", stderr(&o));
    let r = RunResult::load(&dir.path().join("baseline_slow.json")).unwrap();
    assert!(
        !r.thresholds[0].ok && r.thresholds[0].value.unwrap() >= 20.0,
        "{:?}",
        r.thresholds
    );
    assert!(r.thresholds[1].ok);
    assert!(stderr(&o).contains("p(90) < 5"));

    let sc = scenario_file(
        dir.path(),
        "abort",
        r#"
[options]
executor = "constant-vus"
vus = 2
duration = "30s"

[[steps]]
name = "slow"
path = "/slow"

[thresholds]
http_req_duration = [{ threshold = "p(90) < 5", abort_on_fail = true }]
"#,
    );
    let started = std::time::Instant::now();
    let o = run_scenario(&sc, &srv.url, dir.path(), &[]);
    assert_eq!(code(&o), 99, "{}", stderr(&o));
    assert!(started.elapsed().as_secs() < 10);
    let r = RunResult::load(&dir.path().join("baseline_abort.json")).unwrap();
    assert_eq!(
        r.aborted_by.as_deref(),
        Some("http_req_duration: p(90) < 5")
    );
    assert!(r.duration_s < 10.0);
}

#[test]
fn results_round_trip_and_histograms_hold_every_response() {
    let _g = serial();
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "rt",
        r#"
[options]
executor = "per-vu-iterations"
vus = 3
iterations = 50

[[steps]]
name = "health"
path = "/health"
checks = { status = 200, "$.status" = "ok", body_contains = "ok", "header.content-type" = "application/json" }

[[steps]]
name = "fail"
path = "/fail"
checks = { status = 200 }

[[teardown]]
name = "cleanup"
path = "/health"
"#,
    );
    let o = run_scenario(&sc, &srv.url, dir.path(), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let path = dir.path().join("baseline_rt.json");
    let r = RunResult::load(&path).unwrap();
    let again: RunResult = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(again, r);
    assert_eq!(r.metrics.iterations.count, 150);
    assert_eq!(r.metrics.http_reqs.count, 300);
    // 150 load requests to /health, then the teardown's one (not in the metrics).
    assert_eq!(srv.state.hits.load(Ordering::Relaxed), 151);
    // Status >= 400 counts as failed.
    assert_eq!(r.requests["fail"].http_req_failed.passes, 150);
    assert!((r.metrics.http_req_failed.rate - 0.5).abs() < 1e-9);
    assert_eq!(r.metrics.checks.passes, 600);
    assert_eq!(r.metrics.checks.fails, 150);
    for name in ["health", "fail"] {
        let h = r.histogram(name).unwrap();
        assert_eq!(h.len(), 150);
        assert!((h.max() as f64 / 1000.0 - r.requests[name].http_req_duration.max).abs() < 0.01);
    }
    // The JSON has the documented shape.
    let v = read_json(&path);
    for key in ["p90", "p95", "p99", "p999", "med", "avg", "min", "max"] {
        assert!(v["metrics"]["http_req_duration"][key].is_number(), "{key}");
    }
    assert_eq!(v["schema_version"], 1);
    assert!(v["metrics"]["vus_max"].as_u64().unwrap() == 3);
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn ramping_vus_follow_the_stages() {
    let _g = serial();
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "ramp",
        r#"
[options]
executor = "ramping-vus"
start_vus = 0
stages = [{ duration = "2s", target = 6 }, { duration = "2s", target = 6 }, { duration = "1s", target = 0 }]
think_time = "100ms"

[[steps]]
name = "health"
path = "/health"
"#,
    );
    let o = run_scenario(&sc, &srv.url, dir.path(), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = RunResult::load(&dir.path().join("baseline_ramp.json")).unwrap();
    assert_eq!(r.metrics.vus_max, 6);
    let tl = &r.timeline;
    assert!(tl.len() >= 5, "{tl:?}");
    // The plateau runs 6 VUs, each ~10 iterations/s; the first second of the ramp far fewer.
    assert!(tl[2].requests > tl[0].requests * 2, "{tl:?}");
    assert!((40..=70).contains(&tl[2].requests), "{tl:?}");
}

#[test]
fn a_refusing_target_still_completes_and_groups_errors() {
    let _g = serial();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempdir();
    let target = format!("http://127.0.0.1:{port}");
    let o = loadtest(&[
        "run",
        "-s",
        "health",
        "--scenarios-dir",
        repo_root().join("scenarios").to_str().unwrap(),
        "-t",
        &target,
        "--vus",
        "2",
        "--duration",
        "1s",
        "-o",
        dir.path().to_str().unwrap(),
        "-q",
    ]);
    // The run completes; its failure-rate threshold is crossed.
    assert_eq!(code(&o), 99, "{}", stderr(&o));
    let r = RunResult::load(&dir.path().join("baseline_health.json")).unwrap();
    assert!(r.metrics.http_reqs.count > 0);
    assert_eq!(r.metrics.http_req_failed.rate, 1.0);
    let want = format!("connection refused (127.0.0.1:{port})");
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(r.errors[0].error.contains(&want), "{:?}", r.errors);
    assert_eq!(r.errors[0].count, r.metrics.http_reqs.count);
    let text = std::fs::read_to_string(dir.path().join("baseline_health.summary")).unwrap();
    assert!(text.contains(&want), "{text}");
}

#[test]
fn ctrl_c_stops_quickly_and_keeps_partial_results() {
    let _g = serial();
    let srv = TestServer::start();
    let dir = tempdir();
    let child = std::process::Command::new(bin())
        .args([
            "run",
            "-s",
            "health",
            "--scenarios-dir",
            repo_root().join("scenarios").to_str().unwrap(),
            "-t",
            &srv.url,
            "--vus",
            "4",
            "--duration",
            "60s",
            "-o",
            dir.path().to_str().unwrap(),
            "-q",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let sent = std::time::Instant::now();
    let o = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    assert!(took.as_secs_f64() < 2.0, "stopping took {took:?}");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let r = RunResult::load(&dir.path().join("baseline_health.json")).unwrap();
    assert!(r.interrupted);
    assert!(r.duration_s < 10.0);
    assert!(r.metrics.http_reqs.count > 0);
    assert!(stderr(&o).contains("interrupted"));
}

#[test]
fn a_prometheus_that_trickles_costs_a_warning_not_the_results() {
    // Accepts, then sends one byte a second for a minute: never silent long
    // enough for a per-read timeout, never done.
    let trickle = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let prom = format!("http://{}", trickle.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in trickle.incoming().take(4) {
            let Ok(mut c) = conn else { continue };
            std::thread::spawn(move || {
                use std::io::Write;
                for _ in 0..60 {
                    if c.write_all(b"H").is_err() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            });
        }
    });
    let srv = TestServer::start();
    let dir = tempdir();
    let started = std::time::Instant::now();
    let o = run_scenario(
        &repo_root().join("scenarios/health.toml"),
        &srv.url,
        dir.path(),
        &["--vus", "1", "--duration", "1s", "--prometheus-url", &prom],
    );
    let took = started.elapsed();
    assert!(code(&o) == 0 || code(&o) == 99, "{}", stderr(&o));
    assert!(took.as_secs() < 25, "the end of the run waited {took:?}");
    assert!(stderr(&o).contains("no server-side view"), "{}", stderr(&o));
    assert!(dir.path().join("baseline_health.json").is_file());
}

#[test]
fn credentials_in_the_target_are_sent_as_basic_auth_and_never_stored() {
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "creds",
        "[options]\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 3\n\n\
         [[steps]]\nname = \"seen\"\npath = \"/headers\"\nchecks = { status = 200 }\n",
    );
    let with_creds = srv.url.replacen("http://", "http://admin:hunter2@", 1);
    let o = run_scenario(&sc, &with_creds, dir.path(), &["-r", "creds"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (host, auth) = srv.state.seen.lock().unwrap().clone();
    assert!(
        !host.contains("hunter2") && !host.contains('@'),
        "Host: {host}"
    );
    // base64("admin:hunter2")
    assert_eq!(auth, "Basic YWRtaW46aHVudGVyMg==");
    for f in ["creds_creds.json", "creds_creds.summary"] {
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert!(!text.contains("hunter2"), "{f} holds the password");
        assert!(text.contains("admin:***@"), "{f}");
    }
    assert!(!stdout(&o).contains("hunter2") && !stderr(&o).contains("hunter2"));
}

#[test]
fn requests_that_cannot_be_built_are_grouped_and_the_run_keeps_time() {
    let srv = TestServer::start();
    let dir = tempdir();
    // Every iteration renders a header value with a line break (never valid), different each time.
    let sc = scenario_file(
        dir.path(),
        "badheader",
        "[options]\nexecutor = \"constant-vus\"\nvus = 2\nduration = \"2s\"\n\n\
         [[steps]]\nname = \"x\"\npath = \"/health\"\n\
         headers = { \"x-key\" = \"secret-{{ uuid() }}\\nmore\" }\n",
    );
    let o = run_scenario(&sc, &srv.url, dir.path(), &["-r", "bad"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("bad_badheader.json")).unwrap(),
    )
    .unwrap();
    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("header x-key renders to an invalid value"),
        "{errors:?}"
    );
    assert!(errors[0]["count"].as_u64().unwrap() > 10);
    assert!(
        !r.to_string().contains("secret-"),
        "the rendered value leaked"
    );
    // The one-second windows kept coming while every iteration failed.
    assert!(
        r["timeline"].as_array().unwrap().len() >= 2,
        "{}",
        r["timeline"]
    );
    assert_eq!(srv.state.hits.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn result_names_never_collide_and_the_history_stays_in_its_folder() {
    let srv = TestServer::start();
    let dir = tempdir();
    let out = dir.path().join("out");
    let body = "[options]\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 2\n\n\
                [[steps]]\nname = \"h\"\npath = \"/health\"\n";
    let c = scenario_file(dir.path(), "c", body);
    let b_c = scenario_file(dir.path(), "b_c", body);
    let o = run_scenario(&c, &srv.url, &out, &["-r", "a_b"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let first = std::fs::read_to_string(out.join("a_b_c.json")).unwrap();
    // The same file name from another run name and scenario: refused, the first kept.
    let o = run_scenario(&b_c, &srv.url, &out, &["-r", "a"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("would overwrite it"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("a_b_c.json")).unwrap(),
        first
    );

    // A non-UTF-8 byte in one history line spoils that line only.
    let history = out.join("history.jsonl");
    let mut bytes = std::fs::read(&history).unwrap();
    bytes.extend_from_slice(b"{\"run\": \"\xff\xfe\"}\n");
    std::fs::write(&history, &bytes).unwrap();
    let o = loadtest(&["history", "-s", "c", "-d", out.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("skipped"), "{}", stderr(&o));

    // A history that is a symlink to a file elsewhere is not written through.
    let elsewhere = dir.path().join("elsewhere.txt");
    std::fs::write(&elsewhere, "keep\n").unwrap();
    std::fs::remove_file(&history).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &history).unwrap();
    let o = run_scenario(&c, &srv.url, &out, &["-r", "again"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("could not append to the run history"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep\n");
}

#[test]
fn bodies_nobody_reads_are_not_held() {
    let srv = TestServer::start();
    let dir = tempdir();
    // 16 VUs fetching 10 MB bodies with a status check only: nothing needs the bytes.
    let sc = scenario_file(
        dir.path(),
        "big",
        "[options]\nexecutor = \"constant-vus\"\nvus = 16\nduration = \"2s\"\n\n\
         [[steps]]\nname = \"big\"\npath = \"/big\"\nchecks = { status = 200 }\n",
    );
    let o = run_scenario(&sc, &srv.url, dir.path(), &["-r", "big"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = RunResult::load(&dir.path().join("big_big.json")).unwrap();
    assert!(
        r.metrics.http_reqs.count >= 16,
        "{}",
        r.metrics.http_reqs.count
    );
    assert!(
        r.metrics.data_received.count > 100 << 20,
        "the bodies were read to the end"
    );
    // Holding them would take 16 x 10 MB at once.
    assert!(
        r.loadgen.max_rss_kb < 100 * 1024,
        "peak RSS {} kB",
        r.loadgen.max_rss_kb
    );
}

#[test]
fn each_vu_keeps_the_cookies_of_its_iteration() {
    // Every iteration starts without cookies, logs in, and then sends the
    // session cookie (not the one set for /admin) on the next request.
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "cookies",
        r#"[options]
executor = "per-vu-iterations"
vus = 2
iterations = 3

[[steps]]
name = "before"
path = "/cookie"
checks = { "$.cookie" = "" }

[[steps]]
name = "login"
path = "/login"
checks = { status = 200 }

[[steps]]
name = "after"
path = "/cookie"
checks = { "$.cookie" = "session=s3cret" }

[[steps]]
name = "own header wins"
path = "/cookie"
headers = { cookie = "mine=1" }
checks = { "$.cookie" = "mine=1" }
"#,
    );
    let out = dir.path().join("out");
    let o = run_scenario(&sc, &srv.url, &out, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = read_json(&out.join("baseline_cookies.json"));
    let checks = &r["metrics"]["checks"];
    assert_eq!(checks["passes"], 24, "{}", r["requests"]);
    assert_eq!(checks["fails"], 0, "{}", r["requests"]);
}

#[test]
fn redirects_are_followed_within_the_target_and_bodies_decoded_on_request() {
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "redirects",
        r#"[options]
executor = "per-vu-iterations"
vus = 1
iterations = 2

[[steps]]
name = "chain"
path = "/hop/3"
checks = { status = 200, "$.method" = "GET" }

[[steps]]
name = "post then see other"
method = "POST"
path = "/see-other"
json = { a = 1 }
checks = { status = 200, "$.method" = "GET", "$.cookie" = "after=redirect" }

[[steps]]
name = "temporary keeps the method"
method = "POST"
path = "/temp"
json = { a = 1 }
checks = { status = 200, "$.method" = "POST", "$.body" = '{"a":1}' }

[[steps]]
name = "away"
path = "/away"

[[steps]]
name = "loop"
path = "/loop"

[[steps]]
name = "gzip asked for"
path = "/packed/gzip"
checks = { "$.msg" = "packed" }

[[steps]]
name = "deflate asked for"
path = "/packed/deflate"
checks = { "$.msg" = "packed" }

[[steps]]
name = "own encoding header"
path = "/packed/gzip"
headers = { "accept-encoding" = "identity" }
checks = { "$.msg" = "plain" }
"#,
    );
    let with_decompress = std::fs::read_to_string(&sc)
        .unwrap()
        .replace("iterations = 2\n", "iterations = 2\ndecompress = true\n");
    std::fs::write(&sc, with_decompress).unwrap();
    let out = dir.path().join("out");
    let o = run_scenario(&sc, &srv.url, &out, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = read_json(&out.join("baseline_redirects.json"));
    // Every check passed, in both iterations: 2 + 3 + 3 + 1 + 1 + 1 per iteration.
    assert_eq!(r["metrics"]["checks"]["fails"], 0, "{}", r["requests"]);
    assert_eq!(r["metrics"]["checks"]["passes"], 22, "{}", r["requests"]);
    // A chain is one request of its step.
    assert_eq!(
        r["requests"]["chain"]["http_reqs"]["count"], 2,
        "{}",
        r["requests"]["chain"]
    );
    let errors = r["errors"].as_array().unwrap();
    let text = serde_json::to_string(errors).unwrap();
    assert!(
        text.contains("away: redirect to another origin (http://127.0.0.2:9) not followed"),
        "{text}"
    );
    assert!(
        !text.contains("elsewhere?id"),
        "the whole location is not a group key: {text}"
    );
    assert!(text.contains("loop: stopped after 10 redirects"), "{text}");
    assert_eq!(r["requests"]["away"]["http_req_failed"]["rate"], 1.0);

    // Without following or decoding: the 3xx is the answer, the body stays packed.
    let plain = std::fs::read_to_string(&sc)
        .unwrap()
        .replace("decompress = true\n", "max_redirects = 0\n")
        .replace(
            "checks = { status = 200, \"$.method\" = \"GET\" }",
            "checks = { status = 302, \"header.location\" = \"2\" }",
        );
    let sc2 = scenario_file(dir.path(), "noredirects", &plain);
    let o = run_scenario(&sc2, &srv.url, &out, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = read_json(&out.join("baseline_noredirects.json"));
    let passes = |name: &str| {
        r["requests"][name]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["passes"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(passes("chain"), 4, "{}", r["requests"]["chain"]);
    // Not asked for, so sent plain; the 303 is not followed.
    assert_eq!(passes("gzip asked for"), 0);
    assert_eq!(passes("post then see other"), 0);
    assert!(
        r["errors"].as_array().unwrap().is_empty(),
        "{}",
        r["errors"]
    );
}

#[test]
fn an_ipv6_target_is_reached() {
    // A machine without IPv6 on its loopback cannot run this; say so rather than pass.
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        #[allow(clippy::disallowed_macros)]
        {
            eprintln!("SKIPPED: no IPv6 loopback on this machine");
        }
        return;
    }
    let srv = TestServer::start_on("[::1]:0");
    assert!(srv.url.starts_with("http://[::1]:"), "{}", srv.url);
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "six",
        "[options]\nexecutor = \"per-vu-iterations\"\nvus = 2\niterations = 3\n\n\
         [[steps]]\nname = \"health\"\npath = \"/health\"\nchecks = { status = 200 }\n\n\
         [[steps]]\nname = \"headers\"\npath = \"/headers\"\nchecks = { status = 200 }\n",
    );
    let o = run_scenario(&sc, &srv.url, dir.path(), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = read_json(&dir.path().join("baseline_six.json"));
    assert_eq!(r["metrics"]["checks"]["passes"], 12, "{}", r["errors"]);
    assert_eq!(r["target"], srv.url.as_str());
    // Host carries the bracketed address, as HTTP requires.
    let host = srv.state.seen.lock().unwrap().0.clone();
    assert_eq!(format!("http://{host}"), srv.url);
    let o = loadtest(&[
        "run",
        "-s",
        sc.to_str().unwrap(),
        "-t",
        "http://[::1]:1",
        "-o",
        dir.path().to_str().unwrap(),
        "-r",
        "refused",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = read_json(&dir.path().join("refused_six.json"));
    let errors = serde_json::to_string(&r["errors"]).unwrap();
    assert!(errors.contains("connection refused ([::1]:1)"), "{errors}");
}

#[test]
fn locust_csv_files_hold_the_run() {
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "loc",
        "[options]\nexecutor = \"constant-vus\"\nvus = 2\nduration = \"3s\"\n\n\
         [[steps]]\nname = \"ok\"\npath = \"/health\"\n\n\
         [[steps]]\nname = \"broken\"\npath = \"/fail\"\n",
    );
    let out = dir.path().join("out");
    // A prefix in a folder that does not exist: refused before anything is sent.
    let missing = dir.path().join("nowhere/run");
    let o = run_scenario(&sc, &srv.url, &out, &["--csv", missing.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("nowhere/run_stats_history.csv"),
        "{}",
        stderr(&o)
    );
    assert_eq!(srv.state.hits.load(Ordering::Relaxed), 0);

    let prefix = dir.path().join("loc");
    let o = run_scenario(&sc, &srv.url, &out, &["--csv", prefix.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = read_json(&out.join("baseline_loc.json"));
    let read = |kind: &str| -> (Vec<String>, Vec<Vec<String>>) {
        let p = dir.path().join(format!("loc_{kind}.csv"));
        assert!(stdout(&o).contains(p.to_str().unwrap()), "{}", stdout(&o));
        let mut rd = csv::Reader::from_path(&p).unwrap();
        let head = rd.headers().unwrap().iter().map(String::from).collect();
        let rows = rd
            .records()
            .map(|x| x.unwrap().iter().map(String::from).collect())
            .collect();
        (head, rows)
    };
    let percentiles = "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";
    let (head, rows) = read("stats");
    assert_eq!(
        head.join(","),
        format!("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,{percentiles}")
    );
    // Sorted by name, then the aggregate.
    let names: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(names, ["broken", "ok", "Aggregated"]);
    let count = |name: &str| r["requests"][name]["http_reqs"]["count"].as_u64().unwrap();
    assert_eq!(rows[0][0], "GET");
    assert_eq!(rows[0][2], count("broken").to_string());
    assert_eq!(
        rows[0][3],
        count("broken").to_string(),
        "every /fail failed"
    );
    assert_eq!(rows[1][3], "0");
    assert_eq!(rows[2][2], (count("ok") + count("broken")).to_string());
    assert!(
        rows.iter().all(|r| r.len() == 22 && r[21] != "N/A"),
        "{rows:?}"
    );

    let (head, rows) = read("stats_history");
    assert_eq!(
        head.join(","),
        format!("Timestamp,User Count,Type,Name,Requests/s,Failures/s,{percentiles},Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size")
    );
    let agg: Vec<&Vec<String>> = rows.iter().filter(|r| r[3] == "Aggregated").collect();
    assert!(agg.len() >= 3, "one row a second: {rows:?}");
    assert_eq!(
        rows.len(),
        agg.len() * 3,
        "a row per request name and one aggregated"
    );
    let totals: Vec<u64> = agg.iter().map(|r| r[17].parse().unwrap()).collect();
    assert!(totals.windows(2).all(|w| w[0] <= w[1]), "{totals:?}");
    assert_eq!(*totals.last().unwrap(), count("ok") + count("broken"));
    // User Count: the VUs at work at the end of each second (none once the run is over).
    assert_eq!(agg[0][1], "2", "two users: {agg:?}");

    let (head, rows) = read("failures");
    assert_eq!(
        head.join(","),
        "Method,Name,Error,Occurrences,First Seen,Last Seen"
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0][..4],
        ["GET", "broken", "HTTP 500", &count("broken").to_string()]
    );
}

#[test]
fn a_timer_left_at_the_previous_requests_deadline_does_not_cut_the_next_request_short() {
    // Timeout 600 ms. The first request takes 400 ms (deadline at 600 ms); the second starts at
    // 400 ms, takes 400 ms and has until 1000 ms. The VU's timer still holds the first deadline and
    // fires at 600 ms, while the second request is in flight: that must move the timer on, not
    // fail the request.
    let srv = TestServer::start();
    srv.state.steady_ms.store(400, Ordering::Relaxed);
    srv.state.slow_ms.store(400, Ordering::Relaxed);
    let dir = tempdir();
    let sc = scenario_file(
        dir.path(),
        "early_timer",
        "[options]\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 2\ntimeout = \"600ms\"\n\n\
         [[steps]]\nname = \"first\"\npath = \"/steady\"\nchecks = { status = 200 }\n\n\
         [[steps]]\nname = \"second\"\npath = \"/slow\"\nchecks = { status = 200 }\n",
    );
    let o = run_scenario(&sc, &srv.url, dir.path(), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = read_json(&dir.path().join("baseline_early_timer.json"));
    assert_eq!(r["errors"], serde_json::json!([]), "{}", r["errors"]);
    assert_eq!(r["metrics"]["checks"]["passes"], 4, "{}", r["requests"]);
    assert_eq!(r["metrics"]["checks"]["fails"], 0);
    // The second request took its full 400 ms, ending past the first one's deadline.
    let p50 = r["requests"]["second"]["http_req_duration"]["med"]
        .as_f64()
        .unwrap();
    assert!(p50 >= 390.0, "second request {p50} ms");
}

#[test]
fn a_request_past_its_timeout_fails_alone_and_the_next_ones_are_timed_afresh() {
    let srv = TestServer::start();
    srv.state.slow_ms.store(1500, Ordering::Relaxed);
    let dir = tempdir();
    // Each VU: a request that outlasts the timeout, then quick ones, with pauses
    // longer than the timeout between iterations (the per-VU timer must not fire
    // on a later request from an earlier deadline).
    let sc = scenario_file(
        dir.path(),
        "timeouts",
        "[options]\nexecutor = \"per-vu-iterations\"\nvus = 2\niterations = 2\ntimeout = \"300ms\"\n\
         think_time = \"400ms\"\n\n\
         [[steps]]\nname = \"slow\"\npath = \"/slow\"\n\n\
         [[steps]]\nname = \"quick\"\npath = \"/health\"\nchecks = { status = 200 }\n\n\
         [[steps]]\nname = \"quick again\"\npath = \"/health\"\nchecks = { status = 200 }\n",
    );
    let t0 = std::time::Instant::now();
    let o = run_scenario(&sc, &srv.url, dir.path(), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Two iterations of 300 ms + two quick requests + 400 ms each: far below 2 x 1.5 s.
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        t0.elapsed()
    );
    let r = read_json(&dir.path().join("baseline_timeouts.json"));
    let errors = serde_json::to_string(&r["errors"]).unwrap();
    assert!(
        errors.contains("slow: request timeout after 300ms"),
        "{errors}"
    );
    assert_eq!(r["errors"][0]["count"], 4, "{errors}");
    assert_eq!(r["requests"]["slow"]["http_req_failed"]["passes"], 4);
    assert_eq!(r["metrics"]["checks"]["passes"], 8, "{}", r["requests"]);
    assert_eq!(r["metrics"]["checks"]["fails"], 0);
}
