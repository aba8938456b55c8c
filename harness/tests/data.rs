//! Per-VU data: rows of a CSV or JSON file handed to VUs per-vu, round-robin
//! or at random, checked against the VUs before the run.

mod common;

use std::path::Path;

use common::*;

fn scenario(dir: &Path, data: &str, vus: u32, iterations: u32) -> std::path::PathBuf {
    scenario_file(
        dir,
        "who",
        &format!(
            r#"
[options]
executor = "per-vu-iterations"
vus = {vus}
iterations = {iterations}

[data]
{data}

[[steps]]
name = "who"
path = "/who"
headers = {{ "x-user" = "{{{{ data.user }}}}", "x-vu" = "{{{{ vu }}}}" }}
checks = {{ status = 200 }}
"#
        ),
    )
}

fn users(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("users.csv");
    std::fs::write(&p, "user,key\nann,k1\nbob,k2\ncid,k3\n").unwrap();
    p
}

#[test]
fn per_vu_gives_each_vu_its_own_row() {
    let srv = TestServer::start();
    let d = tempdir();
    let csv = users(d.path());
    let sc = scenario(
        d.path(),
        &format!("file = {:?}\nmode = \"per-vu\"", csv.display().to_string()),
        3,
        4,
    );
    let o = run_scenario(&sc, &srv.url, &d.path().join("out"), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let who = srv.state.who.lock().unwrap().clone();
    // Three VUs, three users, four iterations each, never mixed.
    assert_eq!(who.len(), 3, "{who:?}");
    let mut users: Vec<&str> = who.keys().map(|(u, _)| u.as_str()).collect();
    users.sort();
    assert_eq!(users, ["ann", "bob", "cid"]);
    assert!(who.values().all(|n| *n == 4), "{who:?}");
}

#[test]
fn round_robin_and_random_spread_over_the_rows() {
    let srv = TestServer::start();
    let d = tempdir();
    let json = d.path().join("users.json");
    std::fs::write(&json, r#"[{"user":"ann"},{"user":"bob"},{"user":"cid"}]"#).unwrap();
    let sc = scenario(
        d.path(),
        &format!("file = {:?}", json.display().to_string()),
        1,
        9,
    );
    let o = run_scenario(&sc, &srv.url, &d.path().join("out"), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let who = srv.state.who.lock().unwrap().clone();
    assert_eq!(who.len(), 3, "one VU cycles through all rows: {who:?}");
    assert!(who.values().all(|n| *n == 3), "{who:?}");

    let srv = TestServer::start();
    let csv = users(d.path());
    let sc = scenario(
        d.path(),
        &format!("file = {:?}\nmode = \"random\"", csv.display().to_string()),
        1,
        60,
    );
    let o = run_scenario(&sc, &srv.url, &d.path().join("out"), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let who = srv.state.who.lock().unwrap().clone();
    // 60 draws miss one of three rows with probability 3 * (2/3)^60, about 1e-10.
    assert_eq!(who.len(), 3, "{who:?}");
}

#[test]
fn data_mismatches_are_errors_before_the_run() {
    let srv = TestServer::start();
    let d = tempdir();
    let csv = users(d.path());
    let out = d.path().join("out");
    // More VUs than rows with per-vu.
    let sc = scenario(
        d.path(),
        &format!("file = {:?}\nmode = \"per-vu\"", csv.display().to_string()),
        5,
        1,
    );
    let o = run_scenario(&sc, &srv.url, &out, &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("3 rows for up to 5 VUs") && stderr(&o).contains("per-vu"),
        "{}",
        stderr(&o)
    );
    assert!(srv.state.who.lock().unwrap().is_empty(), "nothing was sent");
    assert!(!out.join("baseline_who.json").exists());
    // ...also when --vus raises the VUs past the rows.
    let sc = scenario(
        d.path(),
        &format!("file = {:?}\nmode = \"per-vu\"", csv.display().to_string()),
        2,
        1,
    );
    let o = run_scenario(&sc, &srv.url, &out, &["--vus", "4"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    // Unknown mode: the file position.
    let sc = scenario(d.path(), "file = \"x.csv\"\nmode = \"each\"", 1, 1);
    let o = run_scenario(&sc, &srv.url, &out, &[]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("who.toml:9:") && stderr(&o).contains("`each`"),
        "{}",
        stderr(&o)
    );
    // Missing file.
    let sc = scenario(d.path(), "file = \"/nonexistent/users.csv\"", 1, 1);
    let o = run_scenario(&sc, &srv.url, &out, &[]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("/nonexistent/users.csv"),
        "{}",
        stderr(&o)
    );
    // A template using the row outside the load steps is caught statically.
    let sc = scenario_file(
        d.path(),
        "setupdata",
        &format!(
            "[data]\nfile = {:?}\n[[setup]]\npath = \"/who?u={{{{ data.user }}}}\"\n[[steps]]\npath = \"/who\"\n",
            csv.display().to_string()
        ),
    );
    let o = run_scenario(&sc, &srv.url, &out, &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("data"), "{}", stderr(&o));
}
