//! The Grafana provisioning and the "Load test" dashboard hold together: the
//! datasource points at the stack's Prometheus, the provider at the folder
//! compose mounts, and every panel queries through the provisioned datasource
//! with the run and scenario variables. (The queries themselves are run against
//! the real Prometheus in demo_stack.rs.)

mod common;

use std::collections::HashSet;

use common::repo_root;
use serde_json::Value;

fn yaml(path: &str) -> serde_norway::Value {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dashboard() -> Value {
    let text =
        std::fs::read_to_string(repo_root().join("grafana/dashboards/loadtest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// (host path, container path) of the grafana service's bind mounts.
fn grafana_mounts(compose: &serde_norway::Value) -> Vec<(String, String)> {
    compose["services"]["grafana"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.as_str().unwrap().split(':').collect();
            (parts[0].to_string(), parts[1].to_string())
        })
        .collect()
}

#[test]
fn compose_runs_grafana_behind_a_profile_with_the_provisioning_mounted() {
    let compose = yaml("compose/docker-compose.yml");
    let g = &compose["services"]["grafana"];
    assert_eq!(g["profiles"][0].as_str(), Some("grafana"), "{g:?}");
    let port = g["ports"][0].as_str().unwrap();
    assert!(
        port.starts_with("127.0.0.1:"),
        "published on loopback only: {port}"
    );
    let mounts = grafana_mounts(&compose);
    let compose_dir = repo_root().join("compose");
    for (host, _) in &mounts {
        assert!(compose_dir.join(host).is_dir(), "{host} does not exist");
    }
    assert!(mounts
        .iter()
        .any(|(h, c)| h.ends_with("grafana/provisioning") && c == "/etc/grafana/provisioning"));
}

#[test]
fn provisioning_points_at_the_stack_prometheus_and_the_mounted_dashboards() {
    let compose = yaml("compose/docker-compose.yml");
    let ds = yaml("grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(ds["apiVersion"].as_u64(), Some(1));
    let list = ds["datasources"].as_sequence().unwrap();
    assert_eq!(list.len(), 1);
    let d = &list[0];
    assert_eq!(d["type"].as_str(), Some("prometheus"));
    // The URL names the compose service and the port Prometheus listens on inside it.
    let url = d["url"].as_str().unwrap();
    let hostport = url.strip_prefix("http://").unwrap();
    let (host, port) = hostport.split_once(':').unwrap();
    assert!(compose["services"][host].is_mapping(), "no service {host}");
    let published = compose["services"][host]["ports"][0].as_str().unwrap();
    assert!(
        published.ends_with(&format!(":{port}")),
        "{published} vs {url}"
    );
    let uid = d["uid"].as_str().unwrap();

    let prov = yaml("grafana/provisioning/dashboards/loadtest.yml");
    assert_eq!(prov["apiVersion"].as_u64(), Some(1));
    let p = &prov["providers"][0];
    assert_eq!(p["type"].as_str(), Some("file"));
    let path = p["options"]["path"].as_str().unwrap();
    let mounts = grafana_mounts(&compose);
    let (host, _) = mounts
        .iter()
        .find(|(_, c)| c == path)
        .unwrap_or_else(|| panic!("{path} is not mounted: {mounts:?}"));
    assert!(repo_root()
        .join("compose")
        .join(host)
        .join("loadtest.json")
        .is_file());

    // Every datasource reference in the dashboard is the provisioned one.
    let dash = dashboard();
    let mut refs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        refs.push(&p["datasource"]);
        for t in p["targets"].as_array().unwrap() {
            refs.push(&t["datasource"]);
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        refs.push(&v["datasource"]);
    }
    for r in refs {
        assert_eq!(r["uid"].as_str(), Some(uid), "{r}");
        assert_eq!(r["type"].as_str(), Some("prometheus"), "{r}");
    }
}

#[test]
fn the_dashboard_has_the_panels_and_variables_and_a_sound_layout() {
    let dash = dashboard();
    assert_eq!(dash["title"], "Load test");
    // The link printed after a run opens this uid.
    let url = loadtest::report::links::dashboard_url(
        "http://g:3000",
        "r1",
        "s1",
        chrono::Utc::now(),
        chrono::Utc::now(),
    );
    assert!(
        url.contains(&format!("/d/{}/", dash["uid"].as_str().unwrap())),
        "{url}"
    );
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["run", "scenario"]);

    let panels = dash["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Requests per second",
        "Error rate",
        "Client latency p50 / p95 / p99",
        "Server latency p50 / p95 / p99",
        "Virtual users",
        "Checks",
        "Dropped iterations",
    ] {
        assert!(
            titles.iter().any(|t| t.starts_with(want)),
            "no panel `{want}`: {titles:?}"
        );
    }
    let mut ids = HashSet::new();
    let mut cells = HashSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id {}",
            p["id"]
        );
        assert!(
            !p["description"].as_str().unwrap_or("").is_empty(),
            "{}",
            p["title"]
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "{} is wider than the grid", p["title"]);
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "{} overlaps another panel",
                    p["title"]
                );
            }
        }
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            let e = t["expr"].as_str().unwrap();
            // The harness's series are always narrowed to the chosen run and scenario.
            if e.contains("k6_") {
                assert_eq!(
                    e.matches("k6_").count(),
                    e.matches(r#"run=~"$run",scenario=~"$scenario""#).count(),
                    "{e}"
                );
            }
        }
    }
}

/// The binary carries the dashboard: `loadtest dashboard` in a folder with no
/// checkout of this repository writes the same files, the datasource at the
/// given Prometheus, and never overwrites them.
#[test]
fn the_dashboard_comes_out_of_the_binary_anywhere() {
    let dir = common::tempdir();
    let run = |args: &[&str]| {
        std::process::Command::new(common::bin())
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let o = run(&[
        "dashboard",
        "--out",
        "g",
        "--prometheus-url",
        "http://10.1.2.3:9090",
    ]);
    assert_eq!(common::code(&o), 0, "{}", common::stderr(&o));
    let read = |rel: &str| std::fs::read_to_string(dir.path().join("g").join(rel)).unwrap();
    let repo = |rel: &str| std::fs::read_to_string(repo_root().join("grafana").join(rel)).unwrap();
    assert_eq!(
        read("dashboards/loadtest.json"),
        repo("dashboards/loadtest.json")
    );
    assert_eq!(
        read("provisioning/dashboards/loadtest.yml"),
        repo("provisioning/dashboards/loadtest.yml")
    );
    let ds: serde_norway::Value =
        serde_norway::from_str(&read("provisioning/datasources/prometheus.yml")).unwrap();
    assert_eq!(ds["datasources"][0]["url"], "http://10.1.2.3:9090");
    assert_eq!(ds["datasources"][0]["uid"], "loadtest-prometheus");

    // A second call refuses before writing anything; the files stay as they were.
    std::fs::write(dir.path().join("g/dashboards/loadtest.json"), "{}").unwrap();
    let o = run(&["dashboard", "--out", "g"]);
    assert_eq!(common::code(&o), 2, "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains("never overwrites"),
        "{}",
        common::stderr(&o)
    );
    assert_eq!(read("dashboards/loadtest.json"), "{}");

    let o = run(&["dashboard", "--stdout"]);
    assert_eq!(common::code(&o), 0);
    let printed: Value = serde_json::from_str(&common::stdout(&o)).unwrap();
    assert_eq!(printed, dashboard());
}
