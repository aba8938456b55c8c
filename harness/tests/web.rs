//! Seeing a run, in a real browser (Debian's chromium, headless): the HTML
//! report renders its charts, with a baseline beside the run; the live page
//! shows a run as it goes and its Stop button ends it as Ctrl-C does. Neither
//! page makes a request outside 127.0.0.1.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use browser::{ink, keep_screenshot, Browser};
use common::*;

const SCENARIO: &str = r#"
[options]
executor = "constant-vus"
vus = 4
duration = "4s"

[[steps]]
name = "health"
method = "GET"
path = "/health"
checks = { status = 200 }

[[steps]]
name = "slow"
method = "GET"
path = "/slow"
checks = { status = 200 }

[thresholds]
http_req_duration = ["p(95) < 2000"]
"#;

/// Every request went to the page itself, to 127.0.0.1, or stayed inside the browser.
fn local_only(urls: &[String]) {
    for u in urls {
        assert!(
            u.starts_with("http://127.0.0.1:")
                || u.starts_with("file://")
                || u.starts_with("data:")
                || u.starts_with("blob:")
                || u == "about:blank",
            "the page requested {u}"
        );
    }
}

fn count(b: &mut Browser, css: &str) -> u64 {
    b.eval(&format!("document.querySelectorAll({css:?}).length"))
        .as_u64()
        .unwrap()
}

#[test]
fn the_html_report_draws_its_charts_and_a_baseline_beside_the_run() {
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(dir.path(), "look", SCENARIO);
    let out = dir.path().join("out");
    for run in ["before", "after"] {
        let o = run_scenario(&sc, &srv.url, &out, &["-r", run]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    // `run` writes a report beside its result by default.
    assert!(out.join("after_look.html").is_file());
    let html = dir.path().join("report.html");
    let o = loadtest(&[
        "report",
        out.join("after_look.json").to_str().unwrap(),
        "--baseline",
        out.join("before_look.json").to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    for outside in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "url(http",
        "@import",
    ] {
        assert!(
            !page.contains(outside),
            "the report loads from elsewhere: {outside}"
        );
    }

    let mut b = Browser::launch();
    b.open(&format!("file://{}", html.display()));
    // Five charts, each with lines drawn.
    assert_eq!(count(&mut b, "svg.chart"), 5);
    for id in ["c-rps", "c-lat", "c-req", "c-vus", "c-dist"] {
        assert!(
            count(&mut b, &format!("#{id} path.series")) >= 1,
            "{id} has no line"
        );
    }
    // The distribution: all requests and each request, for both runs (the baseline dashed).
    assert_eq!(count(&mut b, "#c-dist path.series"), 6);
    assert_eq!(count(&mut b, "#c-dist path.series[stroke-dasharray]"), 3);
    let legend = b.eval("document.querySelector('#c-dist .legend').textContent");
    let legend = legend.as_str().unwrap();
    assert!(
        legend.contains("before: slow") && legend.contains("after: slow"),
        "{legend}"
    );
    // A line is drawn through real points: its path has many segments and a size.
    let segs =
        b.eval("document.querySelector('#c-dist path.series').getAttribute('d').split('L').length");
    assert!(segs.as_u64().unwrap() > 20, "{segs}");
    let w = b.eval("document.querySelector('#c-rps path.series').getBBox().width");
    assert!(w.as_f64().unwrap() > 100.0, "{w}");
    // The verdict table compares both runs, per request and overall.
    assert!(count(&mut b, "table.verdict tr") > 10);
    let text = b.eval("document.body.innerText");
    let text = text.as_str().unwrap();
    for want in [
        "Against the baseline `before`",
        "Thresholds",
        "p(95) < 2000",
        "Checks",
        "status is 200",
        "Latency distribution",
    ] {
        assert!(text.contains(want), "the report lacks {want:?}");
    }
    let shot = b.screenshot();
    let (covered, colours) = ink(&shot);
    assert!(
        covered > 0.05 && colours > 20,
        "blank screenshot? {covered} {colours}"
    );
    keep_screenshot("report.png", &shot);
    assert_eq!(b.errors(), Vec::<String>::new(), "console errors");
    local_only(&b.requests());
}

#[test]
fn report_refuses_what_it_cannot_show() {
    let dir = tempdir();
    let missing = dir.path().join("nope.json");
    let o = loadtest(&["report", missing.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("nope.json"), "{}", stderr(&o));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"schema_version\": 1, \"run\": 3}").unwrap();
    let o = loadtest(&["report", bad.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("malformed"), "{}", stderr(&o));
    assert!(
        !dir.path().join("bad.html").exists(),
        "no half-written report"
    );
    let o = loadtest(&[
        "run",
        "-s",
        "x",
        "-t",
        "http://127.0.0.1:1",
        "--web",
        "nowhere",
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--web nowhere"), "{}", stderr(&o));
}

#[test]
fn the_live_page_shows_the_run_and_its_stop_button_ends_it_like_ctrl_c() {
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(dir.path(), "watch", SCENARIO);
    let out = dir.path().join("out");
    let mut cmd = Command::new(bin());
    cmd.args(["run", "-s", sc.to_str().unwrap(), "-t", &srv.url])
        .args([
            "-o",
            out.to_str().unwrap(),
            "-r",
            "live",
            "--duration",
            "90s",
            "-q",
        ])
        .args(["--web", "127.0.0.1:0"])
        .stdout(Stdio::null());
    let started = Instant::now();
    let mut served = browser::serve(cmd, Duration::from_secs(30));
    let url = served.url.clone();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let mut b = Browser::launch();
    b.open(&url);
    b.wait_for(
        "document.body.dataset.state === 'running'",
        Duration::from_secs(20),
    );
    let requests = |b: &mut Browser| -> u64 {
        b.eval("Number(document.getElementById('t-requests').textContent)")
            .as_u64()
            .unwrap_or(0)
    };
    b.wait_for(
        "Number(document.getElementById('t-requests').textContent) > 0",
        Duration::from_secs(20),
    );
    let first = requests(&mut b);
    std::thread::sleep(Duration::from_millis(2500));
    let second = requests(&mut b);
    assert!(
        second > first,
        "the request count rises: {first} then {second}"
    );
    assert!(count(&mut b, "#c-rps path.series") >= 1);
    assert!(count(&mut b, "#c-req path.series") >= 2);
    let tables = b.eval("document.body.innerText");
    assert!(
        tables.as_str().unwrap().contains("p(95) < 2000"),
        "thresholds are listed"
    );
    let shot = b.screenshot();
    let (covered, colours) = ink(&shot);
    assert!(
        covered > 0.05 && colours > 20,
        "blank screenshot? {covered} {colours}"
    );
    keep_screenshot("live.png", &shot);

    // Stop, as a user does.
    b.eval("document.getElementById('stop').click()");
    while served.child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, log) = served.finish();
    assert_eq!(status.code(), Some(1), "exit code as with Ctrl-C: {log}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let result = read_json(&out.join("live_watch.json"));
    assert_eq!(result["interrupted"], true);
    assert!(result["duration_s"].as_f64().unwrap() < 60.0);
    assert!(result["metrics"]["http_reqs"]["count"].as_u64().unwrap() >= second);
    // The page got the end and the files, and keeps them after the process is gone.
    b.wait_for(
        "document.body.dataset.state === 'done'",
        Duration::from_secs(10),
    );
    let names = b.eval(
        "[...document.querySelectorAll('#downloads a[download]')].map(a => a.download).join(' ')",
    );
    let names = names.as_str().unwrap();
    for f in [
        "live_watch.json",
        "live_watch.summary",
        "live_watch_stats.csv",
        "live_watch_stats_history.csv",
        "live_watch_failures.csv",
    ] {
        assert!(names.contains(f), "{f} is offered: {names}");
    }
    let json_text = b.eval("fetch(document.querySelector('#downloads a[download$=\".json\"]').href).then(r => r.text())");
    let offered: serde_json::Value = serde_json::from_str(json_text.as_str().unwrap()).unwrap();
    assert_eq!(
        offered, result,
        "the page offers the result file as written"
    );
    let banner = b.eval("document.getElementById('banner').textContent");
    assert!(banner.as_str().unwrap().contains("Exit code 1"), "{banner}");
    assert_eq!(b.errors(), Vec::<String>::new(), "console errors");
    local_only(&b.requests());
}
