//! `loadtest compare` and `loadtest history` on real runs against a real HTTP server.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use common::*;

static SERIAL: Mutex<()> = Mutex::new(());

const TWO_ROUTES: &str = r#"
[options]
executor = "constant-arrival-rate"
rate = 100
duration = "6s"
pre_allocated_vus = 10
max_vus = 50

[[steps]]
name = "slow"
path = "/slow"
checks = { status = 200 }

[[steps]]
name = "steady"
path = "/steady"
checks = { status = 200 }
"#;

fn run(dir: &Path, scenario: &Path, url: &str, run: &str, extra: &[&str]) {
    let mut args = vec!["-r", run];
    args.extend_from_slice(extra);
    let o = run_scenario(scenario, url, dir, &args);
    assert_eq!(code(&o), 0, "run {run}: {}", stderr(&o));
}

fn compare(dir: &Path, base: &str, cur: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "compare",
        base,
        cur,
        "-s",
        "two",
        "-d",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    loadtest(&args)
}

#[test]
fn unchanged_server_shows_no_change_and_a_slower_route_regresses() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let srv = TestServer::start();
    srv.state.slow_ms.store(10, Ordering::Relaxed);
    srv.state.steady_ms.store(10, Ordering::Relaxed);
    let dir = tempdir();
    let d = dir.path();
    let sc = scenario_file(d, "two", TWO_ROUTES);
    // Runs record the commit of the scenario's repository: one commit for all.
    for args in [
        &["init", "-q"][..],
        &[
            "-c",
            "user.email=t@example.com",
            "-c",
            "user.name=t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ][..],
    ] {
        let st = std::process::Command::new("git")
            .args(args)
            .current_dir(d)
            .status()
            .unwrap();
        assert!(st.success());
    }
    run(d, &sc, &srv.url, "baseline", &[]);

    // One run a side and no other run of the commit yet: no verdict, and no alarm.
    run(d, &sc, &srv.url, "first", &[]);
    let o = compare(d, "baseline", "first", &[]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("cannot support a verdict"),
        "{}",
        stdout(&o)
    );

    // False-positive check: the same server, three more times.
    for i in 0..3 {
        let name = format!("same{i}");
        run(d, &sc, &srv.url, &name, &[]);
        let o = compare(d, "baseline", &name, &[]);
        let out = stdout(&o);
        assert_eq!(code(&o), 0, "{out}\n{}", stderr(&o));
        assert!(out.contains("OK: no gate regressed"), "{out}");
        assert!(!out.contains("REGRESSED"), "{out}");
    }

    // Three times as slow on /slow only.
    srv.state.slow_ms.store(30, Ordering::Relaxed);
    run(d, &sc, &srv.url, "slower", &[]);
    let o = compare(d, "baseline", "slower", &["--format", "json"]);
    assert_eq!(code(&o), 98, "{}\n{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["passed"], false);
    assert_eq!(v["exit_code"], 98);
    let scope = |name: &str| {
        v["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["request"] == name)
            .unwrap()
            .clone()
    };
    let verdict = |s: &serde_json::Value, m: &str| {
        s["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["metric"] == m)
            .unwrap()
            .clone()
    };
    let slow = scope("slow");
    // p50 and p95 are judged against the noise of the three runs of the same
    // commit in the history (p90 is not recorded there: only beyond 50%).
    for m in ["p50", "p95"] {
        let x = verdict(&slow, m);
        assert_eq!(x["verdict"], "regressed", "slow {m}: {x}");
        // +20 ms on ~10 ms: about +150%; the whole interval beyond the 5% tolerance.
        let lo = x["interval"][0].as_f64().unwrap();
        assert!(lo > 5.0, "slow {m}: {x}");
    }
    let steady = scope("steady");
    for m in ["rps", "p50", "p90", "p95", "p99", "error_rate"] {
        let x = verdict(&steady, m);
        assert_ne!(x["verdict"], "regressed", "steady {m}: {x}");
    }
    // Open model: the rate did not move.
    assert_ne!(verdict(&slow, "rps")["verdict"], "regressed");

    // The .diff file: table first, then the unified diff of the summaries.
    let diff = std::fs::read_to_string(d.join("slower_two.diff")).unwrap();
    assert!(diff.starts_with("loadtest compare: two"), "{diff}");
    assert!(
        diff.contains("REGRESSED:") && diff.contains("slow p95"),
        "{diff}"
    );
    assert!(
        diff.contains("== summaries (unified diff) ==") && diff.contains("@@"),
        "{diff}"
    );

    // Markdown for a pull request: summary line first, regressions before the details.
    let o = compare(d, "baseline", "slower", &["--format", "markdown"]);
    assert_eq!(code(&o), 98);
    let md = stdout(&o);
    assert!(md.starts_with("**loadtest** ❌ `two`:"), "{md}");
    let first_regression = md
        .find("| slow | p95 (ms) |")
        .expect("regressed gate listed");
    let details = md.find("<details>").expect("details collapsed");
    assert!(first_regression < details, "{md}");
    assert!(!md[..details].contains("| steady |"), "{md}");
    assert!(md.contains("</details>"));

    // JUnit: one test case per gate; only the slow route's latency gates fail.
    let report = d.join("junit.xml");
    let o = compare(
        d,
        "baseline",
        "slower",
        &["--format", "junit", "--report", report.to_str().unwrap()],
    );
    assert_eq!(code(&o), 98);
    let xml = std::fs::read_to_string(&report).unwrap();
    assert_eq!(xml.trim_end(), stdout(&o).trim_end());
    // 3 scopes x 7 default gates.
    assert_eq!(xml.matches("<testcase ").count(), 21, "{xml}");
    assert!(xml.contains("name=\"slow p95\""), "{xml}");
    let case = |name: &str| {
        let start = xml.find(&format!("name=\"{name}\"")).unwrap();
        let end = xml[start..].find("</testcase>").unwrap() + start;
        xml[start..end].to_string()
    };
    assert!(case("slow p95").contains("<failure"), "{xml}");
    assert!(!case("steady p95").contains("<failure"), "{xml}");
    assert!(!case("steady rps").contains("<failure"), "{xml}");

    // History: every run appended a line; the regressed run is the last.
    let o = loadtest(&["history", "-s", "two", "-d", d.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let h = stdout(&o);
    assert!(h.contains("history of two: 6 runs"), "{h}");
    for r in ["baseline", "same0", "same2", "slower"] {
        assert!(h.contains(r), "{h}");
    }
    assert_eq!(
        std::fs::read_to_string(d.join("history.jsonl"))
            .unwrap()
            .lines()
            .count(),
        6
    );
}

#[test]
fn repeated_trials_are_compared_between_trials() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let srv = TestServer::start();
    srv.state.steady_ms.store(5, Ordering::Relaxed);
    let dir = tempdir();
    let d = dir.path();
    let sc = scenario_file(
        d,
        "two",
        r#"
[options]
executor = "constant-arrival-rate"
rate = 100
duration = "1s"
pre_allocated_vus = 5
[[steps]]
name = "steady"
path = "/steady"
"#,
    );
    run(d, &sc, &srv.url, "a", &["--repeat", "5"]);
    let r = loadtest::results::RunResult::load(&d.join("a_two.json")).unwrap();
    assert_eq!(r.trials.len(), 5);
    assert!(
        r.trials.iter().all(|t| t.overall.requests >= 95),
        "{:?}",
        r.trials
    );
    assert!(r.timeline.iter().any(|e| e.trial == 4));

    // Two separate runs of one server drift apart on a loaded machine (which is
    // why `ab` interleaves), so "no change" is asserted where it is guaranteed:
    // the same trials on both sides.
    std::fs::copy(d.join("a_two.json"), d.join("a2_two.json")).unwrap();
    let o = compare(d, "a", "a2", &["--format", "json"]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["method"], "trials");
    for m in v["scopes"][0]["metrics"].as_array().unwrap() {
        assert_eq!(m["n_baseline"], 5, "{m}");
        assert_eq!(m["change"].as_f64(), Some(0.0), "{m}");
        assert_eq!(m["verdict"], "no_significant_change", "{m}");
    }

    // Eight times the delay: every trial of B is slower than every trial of A.
    srv.state.steady_ms.store(40, Ordering::Relaxed);
    run(d, &sc, &srv.url, "b", &["--repeat", "5"]);
    let o = compare(d, "a", "b", &["--format", "json"]);
    assert_eq!(code(&o), 98, "{}\n{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["method"], "trials");
    let p50 = v["scopes"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "p50")
        .unwrap()
        .clone();
    assert_eq!(p50["verdict"], "regressed", "{p50}");
    assert_eq!(p50["n_current"], 5, "{p50}");
}

#[test]
fn unusable_input_exits_2() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let srv = TestServer::start();
    let dir = tempdir();
    let d = dir.path();
    let sc = scenario_file(
        d,
        "two",
        "[options]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[[steps]]\nname = \"h\"\npath = \"/health\"\n",
    );
    run(d, &sc, &srv.url, "baseline", &[]);
    run(d, &sc, &srv.url, "morevus", &["--vus", "2"]);

    // Mismatched VUs: refused with the list of differences, unless allowed.
    let o = compare(d, "baseline", "morevus", &[]);
    assert_eq!(code(&o), 2);
    let e = stderr(&o);
    assert!(
        e.contains("not comparable")
            && e.contains("options.vus: 1 vs 2")
            && e.contains("--allow-mismatch"),
        "{e}"
    );
    assert!(!d.join("morevus_two.diff").exists());
    let o = compare(d, "baseline", "morevus", &["--allow-mismatch"]);
    assert!(matches!(code(&o), 0 | 98), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("MISMATCH  options.vus: 1 vs 2"),
        "{}",
        stdout(&o)
    );

    // Missing baseline.
    let o = compare(d, "nope", "baseline", &[]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("nope_two.json does not exist"),
        "{}",
        stderr(&o)
    );
    // A run name without --scenario.
    let o = loadtest(&["compare", "baseline", "morevus", "-d", d.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("give --scenario"), "{}", stderr(&o));

    // Corrupt JSON.
    let corrupt = d.join("corrupt_two.json");
    std::fs::write(&corrupt, "{\"schema_version\": 1, \"run\": ").unwrap();
    let o = compare(d, "baseline", corrupt.to_str().unwrap(), &[]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("not valid JSON"), "{}", stderr(&o));

    // Unknown schema version.
    let mut v = read_json(&d.join("baseline_two.json"));
    v["schema_version"] = serde_json::json!(99);
    let future = d.join("future_two.json");
    std::fs::write(&future, v.to_string()).unwrap();
    let o = compare(d, future.to_str().unwrap(), "baseline", &[]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("schema_version 99 is not supported"),
        "{}",
        stderr(&o)
    );

    // A bad gate config names the file and line.
    let cfg = d.join("regression.toml");
    std::fs::write(&cfg, "[tolerance]\np95 = 5\nlatency = 3\n").unwrap();
    let o = compare(
        d,
        "baseline",
        "baseline",
        &["--config", cfg.to_str().unwrap()],
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("regression.toml:3:11")
            && stderr(&o).contains("unknown metric `latency`"),
        "{}",
        stderr(&o)
    );
}
