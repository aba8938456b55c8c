//! A split run, through the real binary against a real HTTP server on
//! 127.0.0.1: shards as processes started together by `distribute`, shards
//! run by hand and added up by `merge`, a shard killed mid-run.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

const TICKS: &str = r#"
[options]
executor = "constant-arrival-rate"
rate = 100
time_unit = "1s"
duration = "3s"
pre_allocated_vus = 6
max_vus = 12

[[steps]]
name = "health"
method = "GET"
path = "/health"
checks = { status = 200 }

[thresholds]
http_req_failed = ["rate < 0.01"]
"#;

#[test]
fn distributed_shards_start_together_and_merge_to_the_whole_schedule() {
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(dir.path(), "ticks", TICKS);
    let out = dir.path().join("out");
    let o = loadtest(&[
        "distribute",
        "-s",
        sc.to_str().unwrap(),
        "--shards",
        "3",
        "-t",
        &srv.url,
        "-r",
        "split",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}\n{}", stderr(&o), stdout(&o));
    assert!(
        stderr(&o).contains("every shard checked in"),
        "{}",
        stderr(&o)
    );
    let m = read_json(&out.join("split_ticks.json"));
    let count = m["metrics"]["http_reqs"]["count"].as_u64().unwrap();
    let dropped = m["metrics"]["dropped_iterations"]["count"]
        .as_u64()
        .unwrap();
    // 100/s for 3 s: the shards' stripes together are the whole schedule.
    assert_eq!(count + dropped, 300, "{m}");
    assert_eq!(srv.state.hits.load(Ordering::Relaxed), count);
    let merged = &m["merged"];
    assert_eq!(merged["complete"], true);
    let shards = merged["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    let sum: u64 = shards.iter().map(|s| s["requests"].as_u64().unwrap()).sum();
    assert_eq!(sum, count);
    // Each shard also kept its own result, with the agreed start.
    let starts: Vec<String> = (0..3)
        .map(|i| {
            let r = read_json(&out.join(format!("shards/split-shard{i}_ticks.json")));
            assert_eq!(r["shard"]["index"], i);
            r["shard"]["start_at"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(starts.iter().all(|s| *s == starts[0]), "{starts:?}");
    assert_eq!(
        m["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["requests"].as_u64().unwrap())
            .sum::<u64>(),
        count
    );
}

const ITERATIONS: &str = r#"
[options]
executor = "per-vu-iterations"
vus = 4
iterations = 25
max_duration = "30s"

[[steps]]
name = "health"
method = "GET"
path = "/health"
checks = { status = 200 }

[thresholds]
http_reqs = ["count < 80"]
"#;

fn shard_run(sc: &Path, url: &str, out: &Path, run: &str, how: &[&str]) -> std::process::Output {
    let mut args = vec!["-r", run, "--no-html"];
    args.extend_from_slice(how);
    run_scenario(sc, url, out, &args)
}

#[test]
fn shards_run_by_hand_are_added_up_and_judged_on_the_sum() {
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(dir.path(), "iters", ITERATIONS);
    let out = dir.path().join("out");
    // Shard 0 by --shard, shard 1 by k6's segment flags: the same split.
    let a = shard_run(&sc, &srv.url, &out, "h-shard0", &["--shard", "0/2"]);
    let b = shard_run(
        &sc,
        &srv.url,
        &out,
        "h-shard1",
        &[
            "--execution-segment",
            "1/2:1",
            "--execution-segment-sequence",
            "0,1/2,1",
        ],
    );
    for o in [&a, &b] {
        // Each shard alone: 50 requests, under its `count < 80`.
        assert_eq!(code(o), 0, "{}", stderr(o));
    }
    let f = |run: &str| out.join(format!("{run}_iters.json"));
    for run in ["h-shard0", "h-shard1"] {
        assert_eq!(read_json(&f(run))["metrics"]["http_reqs"]["count"], 50);
    }
    let merged = dir.path().join("merged.json");
    let o = loadtest(&[
        "merge",
        f("h-shard0").to_str().unwrap(),
        f("h-shard1").to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    // Together they are 100: the threshold is crossed on the merged data.
    assert_eq!(code(&o), 99, "{}\n{}", stderr(&o), stdout(&o));
    let m = read_json(&merged);
    assert_eq!(m["metrics"]["http_reqs"]["count"], 100);
    assert_eq!(m["run"], "h");
    assert_eq!(m["thresholds"][0]["ok"], false);
    assert!(
        stdout(&o).contains("merged:   2 shard results"),
        "{}",
        stdout(&o)
    );
    assert!(merged.with_extension("summary").is_file());

    // The same shard twice, or a shard of an edited scenario: refused.
    let o = loadtest(&[
        "merge",
        f("h-shard0").to_str().unwrap(),
        f("h-shard0").to_str().unwrap(),
        "-o",
        dir.path().join("twice.json").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("given twice"), "{}", stderr(&o));
    std::fs::write(&sc, format!("{ITERATIONS}\n# edited\n")).unwrap();
    let c = shard_run(&sc, &srv.url, &out, "e-shard1", &["--shard", "1/2"]);
    assert_eq!(code(&c), 0, "{}", stderr(&c));
    let o = loadtest(&[
        "merge",
        f("e-shard1").to_str().unwrap(),
        f("h-shard0").to_str().unwrap(),
        "-o",
        dir.path().join("mixed.json").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("h-shard0_iters.json") && stderr(&o).contains("different scenarios"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("mixed.json").exists());
    // The shards' own scenario file edited since they ran: refused too.
    let o = loadtest(&[
        "merge",
        f("h-shard0").to_str().unwrap(),
        f("h-shard1").to_str().unwrap(),
        "-o",
        dir.path().join("later.json").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("changed since they ran"),
        "{}",
        stderr(&o)
    );
    // A plain run is no shard.
    let p = run_scenario(&sc, &srv.url, &out, &["-r", "plain", "--no-html"]);
    // The whole run alone: 100 requests, its own threshold crossed.
    assert_eq!(code(&p), 99, "{}", stderr(&p));
    let o = loadtest(&[
        "merge",
        f("plain").to_str().unwrap(),
        "-o",
        dir.path().join("p.json").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("not a shard's result"),
        "{}",
        stderr(&o)
    );
    // Shard numbers outside the split are refused before anything is sent.
    let hits = srv.state.hits.load(Ordering::Relaxed);
    let o = shard_run(&sc, &srv.url, &out, "bad", &["--shard", "2/2"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("numbered from 0"), "{}", stderr(&o));
    assert_eq!(srv.state.hits.load(Ordering::Relaxed), hits);
}

const STEADY: &str = r#"
[options]
executor = "constant-vus"
vus = 3
duration = "8s"

[[steps]]
name = "health"
method = "GET"
path = "/health"
"#;

/// The pid of the process whose command line holds every one of `parts`.
fn find_process(parts: &[&str]) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if parts.iter().all(|p| args.iter().any(|a| a == p)) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_shard_killed_mid_run_is_named_and_the_merge_is_incomplete() {
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(dir.path(), "steady", STEADY);
    let out = dir.path().join("out");
    let child = Command::new(bin())
        .args([
            "distribute",
            "-s",
            sc.to_str().unwrap(),
            "--shards",
            "3",
            "-t",
            &srv.url,
            "-r",
            "killed",
            "-o",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the load to be under way, then kill shard 1 outright.
    let t0 = Instant::now();
    let victim = loop {
        if srv.state.hits.load(Ordering::Relaxed) > 20 {
            if let Some(pid) = find_process(&["--shard", "1/3", "killed-shard1"]) {
                break pid;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the shards never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let killed = Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 1, "{}\n{}", stderr(&o), stdout(&o));
    assert!(stderr(&o).contains("shard 1 failed"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("incomplete: shard(s) 1 of 3"),
        "{}",
        stderr(&o)
    );
    let m = read_json(&out.join("killed_steady.json"));
    assert_eq!(m["merged"]["complete"], false);
    assert_eq!(m["merged"]["missing"], serde_json::json!([1]));
    assert!(stdout(&o).contains("INCOMPLETE"), "{}", stdout(&o));
    // The other two shards' requests are all there.
    let shards = m["merged"]["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    let sum: u64 = shards.iter().map(|s| s["requests"].as_u64().unwrap()).sum();
    assert_eq!(m["metrics"]["http_reqs"]["count"].as_u64().unwrap(), sum);
    assert!(find_process(&["killed-shard0"]).is_none());
    assert!(find_process(&["killed-shard2"]).is_none());
}

/// A single-node swarm on 127.0.0.1 for the test: one that exists is used
/// as it is; one the test made is left again at the end.
struct Swarm {
    made: bool,
}

impl Swarm {
    fn ensure() -> Swarm {
        let state = Command::new("docker")
            .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
            .output()
            .expect("the docker client runs");
        let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
        if state == "active" {
            return Swarm { made: false };
        }
        assert_eq!(state, "inactive", "a swarm in state {state}: not touched");
        let o = Command::new("docker")
            .args(["swarm", "init", "--advertise-addr", "127.0.0.1"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Swarm { made: true }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if self.made {
            let _ = Command::new("docker")
                .args(["swarm", "leave", "--force"])
                .output();
        }
    }
}

fn swarm_objects(kind: &str) -> String {
    let o = Command::new("docker")
        .args([kind, "ls", "-q", "--filter", "label=io.loadtest.distribute"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn shards_run_as_a_swarm_job_and_the_job_is_gone_afterwards() {
    let _swarm = Swarm::ensure();
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(dir.path(), "ticks", TICKS);
    let out = dir.path().join("out");
    let o = loadtest(&[
        "distribute",
        "-s",
        sc.to_str().unwrap(),
        "--shards",
        "3",
        "--on",
        "swarm",
        "-t",
        &srv.url,
        "-r",
        "onswarm",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}\n{}", stderr(&o), stdout(&o));
    assert!(
        stderr(&o).contains("swarm job loadtest-onswarm-"),
        "{}",
        stderr(&o)
    );
    let m = read_json(&out.join("onswarm_ticks.json"));
    let count = m["metrics"]["http_reqs"]["count"].as_u64().unwrap();
    let dropped = m["metrics"]["dropped_iterations"]["count"]
        .as_u64()
        .unwrap();
    assert_eq!(count + dropped, 300, "{m}");
    assert_eq!(srv.state.hits.load(Ordering::Relaxed), count);
    let shards = m["merged"]["shards"].as_array().unwrap();
    let mut slots: Vec<u64> = shards
        .iter()
        .map(|s| s["index"].as_u64().unwrap())
        .collect();
    slots.sort_unstable();
    assert_eq!(slots, vec![0, 1, 2]);
    let sum: u64 = shards.iter().map(|s| s["requests"].as_u64().unwrap()).sum();
    assert_eq!(sum, count);
    assert_eq!(m["scenario_file"], sc.to_str().unwrap());
    assert_eq!(swarm_objects("service"), "", "the job is removed");
    assert_eq!(
        swarm_objects("config"),
        "",
        "the scenario's config is removed"
    );
}

/// The manifests `--on kubernetes` renders: validated against the official
/// Kubernetes 1.33 JSON schemas (strict: no unknown field), vendored under
/// tests/fixtures/k8s-v1.33. No cluster is reachable from here, so what is
/// checked is what can be without one: the schemas, and the shape pinned by
/// a golden copy (UPDATE_GOLDEN=1 rewrites it after a deliberate change).
#[test]
fn kubernetes_manifests_pass_the_official_schemas_and_keep_their_shape() {
    let dir = tempdir();
    let sc = scenario_file(dir.path(), "ticks", TICKS);
    let render = dir.path().join("k8s");
    let o = loadtest(&[
        "distribute",
        "-s",
        sc.to_str().unwrap(),
        "--shards",
        "3",
        "--on",
        "kubernetes",
        "--render",
        render.to_str().unwrap(),
        "--image",
        "registry.example/loadtest:1.0",
        "-t",
        "http://payments.shop.svc:8080",
        "-r",
        "nightly",
        "--namespace",
        "perf",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let schema = |name: &str| -> serde_json::Value {
        read_json(&fixtures.join(format!("k8s-v1.33/{name}.json")))
    };
    let doc = |file: &str| -> serde_json::Value {
        serde_norway::from_str(&std::fs::read_to_string(render.join(file)).unwrap()).unwrap()
    };
    let files = [
        ("01-configmap.yaml", "configmap"),
        ("02-service.yaml", "service"),
        ("04-job.yaml", "job"),
    ];
    for (file, kind) in files {
        let v = jsonschema::validator_for(&schema(kind)).unwrap();
        let d = doc(file);
        let errors: Vec<String> = v.iter_errors(&d).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
    // The coordinator is a Pod: its spec is the Job template's kind of spec.
    let job_schema = schema("job");
    let pod_spec = jsonschema::validator_for(&serde_json::json!({
        "$ref": "#/$defs/io.k8s.api.core.v1.PodSpec",
        "$defs": job_schema["$defs"],
    }))
    .unwrap();
    let coord = doc("03-coordinator.yaml");
    assert_eq!(coord["kind"], "Pod");
    assert!(pod_spec.is_valid(&coord["spec"]), "{}", coord["spec"]);
    // A strict schema does catch a misspelt field.
    let mut bad = doc("04-job.yaml");
    bad["spec"]["completionsMode"] = "Indexed".into();
    assert!(!jsonschema::validator_for(&job_schema)
        .unwrap()
        .is_valid(&bad));

    let job = doc("04-job.yaml");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], 3);
    assert_eq!(spec["parallelism"], 3);
    assert_eq!(spec["backoffLimitPerIndex"], 0);
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
    let c = &spec["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2)
            .any(|w| w == ["--shard", "$(LOADTEST_SHARD_INDEX)/3"]),
        "{args:?}"
    );
    assert!(
        args.contains(&"loadtest-nightly-coordinator.perf.svc:7070"),
        "{args:?}"
    );
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    assert_eq!(doc("02-service.yaml")["spec"]["clusterIP"], "None");
    assert!(doc("01-configmap.yaml")["data"]["ticks.toml"]
        .as_str()
        .unwrap()
        .contains("constant-arrival-rate"));

    let golden = fixtures.join("k8s-golden");
    for (file, _) in files.iter().chain(&[("03-coordinator.yaml", "pod")]) {
        let got = std::fs::read_to_string(render.join(file)).unwrap();
        let path = golden.join(file);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&golden).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap();
        assert_eq!(got, want, "{file} differs from its golden copy");
    }
    // Without --render or --image: refused, nothing written.
    let o = loadtest(&[
        "distribute",
        "-s",
        sc.to_str().unwrap(),
        "--shards",
        "2",
        "--on",
        "kubernetes",
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--render DIR"), "{}", stderr(&o));
}

#[test]
fn an_external_coordinator_waits_for_shards_started_elsewhere() {
    let srv = TestServer::start();
    let dir = tempdir();
    let sc = scenario_file(dir.path(), "ticks", TICKS);
    let out = dir.path().join("out");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let coord = Command::new(bin())
        .args([
            "distribute",
            "-s",
            sc.to_str().unwrap(),
            "--shards",
            "2",
            "--on",
            "external",
        ])
        .args([
            "--listen",
            &listen,
            "-r",
            "ext",
            "-o",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let shards: Vec<_> = (0..2)
        .map(|i| {
            Command::new(bin())
                .args([
                    "run",
                    "-s",
                    sc.to_str().unwrap(),
                    "-t",
                    &srv.url,
                    "-q",
                    "--no-html",
                ])
                .args(["--shard", &format!("{i}/2"), "--coordinator", &listen])
                .args([
                    "-r",
                    &format!("ext-shard{i}"),
                    "-o",
                    dir.path().join("elsewhere").to_str().unwrap(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for s in shards {
        let o = s.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = coord.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let m = read_json(&out.join("ext_ticks.json"));
    let count = m["metrics"]["http_reqs"]["count"].as_u64().unwrap();
    let dropped = m["metrics"]["dropped_iterations"]["count"]
        .as_u64()
        .unwrap();
    assert_eq!(count + dropped, 300);
    assert_eq!(m["merged"]["shards"].as_array().unwrap().len(), 2);
}

/// A k6 script given --shard is split by k6 itself: the harness passes
/// k6's segment flags (50 shared iterations: shard 1 of 2 runs 25).
#[test]
fn a_k6_script_shard_runs_its_segment_through_k6() {
    let srv = TestServer::start();
    let dir = tempdir();
    let script = dir.path().join("split.js");
    std::fs::write(
        &script,
        "import http from \"k6/http\";\n\
         export const options = { scenarios: { s: { executor: \"shared-iterations\", vus: 2, iterations: 50 } } };\n\
         export default function () { http.get(`${__ENV.BASE_URL}/health`); }\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = run_scenario(
        &script,
        &srv.url,
        &out,
        &["-r", "k6s", "--shard", "1/2", "--no-html"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = read_json(&out.join("k6s_split.json"));
    assert_eq!(r["metrics"]["http_reqs"]["count"], 25, "{}", r["metrics"]);
    assert_eq!(srv.state.hits.load(Ordering::Relaxed), 25);
}
