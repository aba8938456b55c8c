//! `[[populate]]`: items created through the API with retries (exponential
//! backoff with jitter on 5xx, 429 and connection errors), an error budget,
//! and a file listing what was not created.

mod common;

use common::*;

fn file(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    scenario_file(dir, "pop", body)
}

#[test]
fn retries_until_created_and_writes_the_created_items() {
    let srv = TestServer::start();
    let d = tempdir();
    let out = d.path().join("created.csv");
    let unp = d.path().join("unprocessed.jsonl");
    let f = file(
        d.path(),
        &format!(
            r#"
[[populate]]
name = "things"
path = "/flaky"
json = {{ item = "{{{{ item }}}}", n = "{{{{ index }}}}" }}
items = ["a", "b", "busy1"]
concurrency = 2
retries = 4
backoff = "10ms"
extract = {{ id = "$.id" }}
output = {:?}
unprocessed = {:?}
"#,
            out.display().to_string(),
            unp.display().to_string()
        ),
    );
    let o = loadtest(&["populate", "-s", f.to_str().unwrap(), "-t", &srv.url, "-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // 503 twice then 200 for a and b; 429 once for busy1.
    let attempts = srv.state.attempts.lock().unwrap().clone();
    assert_eq!(attempts["a"], 3);
    assert_eq!(attempts["b"], 3);
    assert_eq!(attempts["busy1"], 2);
    assert!(
        stderr(&o).contains("3 created, 0 failed, 0 not tried, 5 retries"),
        "{}",
        stderr(&o)
    );
    let csv = std::fs::read_to_string(&out).unwrap();
    assert_eq!(csv, "item,id\na,id-a\nb,id-b\nbusy1,id-busy1\n");
    assert!(!unp.exists(), "nothing unprocessed");
}

#[test]
fn the_error_budget_stops_population_and_lists_what_is_missing() {
    let srv = TestServer::start();
    let d = tempdir();
    let unp = d.path().join("unprocessed.jsonl");
    let f = file(
        d.path(),
        &format!(
            r#"
[[populate]]
name = "things"
path = "/flaky"
json = {{ item = "{{{{ item }}}}" }}
items = ["ok1", "bad1", "ok2", "bad2", "ok3", "bad3"]
concurrency = 1
retries = 1
backoff = "1ms"
error_budget = 2
unprocessed = {:?}
"#,
            unp.display().to_string()
        ),
    );
    let o = loadtest(&["populate", "-s", f.to_str().unwrap(), "-t", &srv.url, "-q"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("error budget (2) was spent")
            && stderr(&o).contains("unprocessed.jsonl"),
        "{}",
        stderr(&o)
    );
    // ok1 needs 3 attempts but only 2 are allowed (retries = 1): it fails; bad1 is refused
    // outright (400, not retried); the budget of 2 is spent, nothing else is tried.
    let attempts = srv.state.attempts.lock().unwrap().clone();
    assert_eq!(attempts.get("ok1"), Some(&2));
    assert_eq!(attempts.get("bad1"), Some(&1));
    assert_eq!(attempts.get("ok2"), None);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&unp)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let items: Vec<&str> = lines.iter().map(|l| l["item"].as_str().unwrap()).collect();
    assert_eq!(items, ["ok1", "bad1", "ok2", "bad2", "ok3", "bad3"]);
    assert!(
        lines[0]["error"].as_str().unwrap().contains("status 503")
            && lines[0]["error"].as_str().unwrap().contains("2 attempts")
    );
    assert!(lines[1]["error"].as_str().unwrap().contains("status 400"));
    assert!(lines[2]["error"].as_str().unwrap().contains("not tried"));
}

#[test]
fn a_run_populates_before_its_load_and_bad_entries_are_refused() {
    let srv = TestServer::start();
    let d = tempdir();
    let f = file(
        d.path(),
        r#"
[options]
executor = "per-vu-iterations"
vus = 1
iterations = 2

[[populate]]
path = "/flaky"
json = { item = "n{{ item }}" }
items = 4
backoff = "1ms"

[[steps]]
path = "/health"
"#,
    );
    let o = run_scenario(&f, &srv.url, &d.path().join("out"), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut created = srv.state.created.lock().unwrap().clone();
    created.sort();
    assert_eq!(created, ["n0", "n1", "n2", "n3"]);

    let bad = file(d.path(), "[[populate]]\npath = \"/flaky\"\nitems = 0\n");
    let o = loadtest(&["populate", "-s", bad.to_str().unwrap(), "-t", &srv.url]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("pop.toml:3:") && stderr(&o).contains("items"),
        "{}",
        stderr(&o)
    );
    let o = run_scenario(
        &file(d.path(), "[[populate]]\npath = \"/flaky\"\nitems = 1\n"),
        &srv.url,
        &d.path().join("out"),
        &[],
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("loadtest populate"), "{}", stderr(&o));
}
