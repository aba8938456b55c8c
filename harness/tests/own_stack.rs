//! A team's own repository through the harness, as the team has it: a scratch
//! copy of examples/router (a Python service, diesel migration folders, a seed
//! SQL file, its own compose file with the app built from `context: ..`, a k6
//! service and a k6 suite that calls `http://router-server:8080`, reads
//! LOADTEST_RUN_NAME and writes its own handleSummary files under /scripts).
//! Real Docker Engine, Postgres and k6.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::stack::free_port;
use common::*;

struct Team {
    dir: tempfile::TempDir,
    project: String,
    port: u16,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
    stdout(&o)
}

impl Team {
    /// examples/router copied into a git repository of its own, on its own project and port.
    fn new(name: &str) -> Team {
        let dir = tempdir();
        copy_tree(&repo_root().join("examples/router"), dir.path());
        git(dir.path(), &["init", "-q"]);
        git(dir.path(), &["add", "-A"]);
        git(
            dir.path(),
            &["commit", "-qm", "the router as the team has it"],
        );
        Team {
            dir,
            project: format!("ltown-{name}-{}", std::process::id()),
            port: free_port(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn loadtest(&self, args: &[&str]) -> Output {
        self.loadtest_env(args, &[])
    }

    fn loadtest_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(self.path())
            .env_remove("LOADTEST_TARGET")
            .env("LOADTEST_PROJECT", &self.project)
            .env("ROUTER_PORT", self.port.to_string());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// The project's containers, as `loadtest ps` lists them (header excluded).
    fn containers(&self) -> Vec<String> {
        let o = self.loadtest(&["ps", "-p", &self.project]);
        stdout(&o)
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect()
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        let _ = self.loadtest(&["down", "-p", &format!("{}-observe", self.project)]);
        let _ = self.loadtest(&["down", "--rmi"]);
    }
}

/// The published port of the harness's Prometheus beside the team's stack.
fn prometheus_port(t: &Team) -> u16 {
    let o = t.loadtest(&["ps", "-p", &format!("{}-observe", t.project)]);
    let ps = stdout(&o);
    let line = ps
        .lines()
        .find(|l| l.starts_with("prometheus"))
        .unwrap_or_else(|| panic!("no prometheus in:\n{ps}"));
    let at = line.find("127.0.0.1:").expect("a published port") + "127.0.0.1:".len();
    line[at..].split("->").next().unwrap().parse().unwrap()
}

fn ok(o: &Output, what: &str) {
    assert_eq!(code(o), 0, "{what}\n{}\n{}", stderr(o), stdout(o));
}

/// A run of the team's script completed: 0, or 99 when the script's own
/// latency thresholds were crossed (they are the team's, set for its
/// machines; a loaded 2-core runner may cross them).
fn ran(o: &Output, what: &str) {
    assert!(
        matches!(code(o), 0 | 99),
        "{what}: exit {}\n{}\n{}",
        code(o),
        stderr(o),
        stdout(o)
    );
}

#[test]
fn a_teams_repository_runs_unchanged_from_init_to_an_ab_verdict() {
    let t = Team::new("router");
    let compose_before = std::fs::read(t.path().join("loadtest/docker-compose.yml")).unwrap();

    // init: reads the repository, writes loadtest.toml, never overwrites it.
    let o = t.loadtest(&["init"]);
    ok(&o, "init");
    let toml = std::fs::read_to_string(t.path().join("loadtest.toml")).unwrap();
    for want in [
        "compose_file = \"loadtest/docker-compose.yml\"",
        "app_service = \"router-server\"",
        "health = \"/health\"",
        "url = \"postgres://router:router@db:5432/router\"",
        "migrate = \"diesel\"",
        "seed_file = \"loadtest/seed.sql\"",
        "dir = \"loadtest/k6\"",
        "mount = \"/scripts\"",
    ] {
        assert!(toml.contains(want), "{want} missing in:\n{toml}");
    }
    let o = t.loadtest(&["init"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("never overwrites"), "{}", stderr(&o));

    // The full cycle with the team's script as written.
    let o = t.loadtest(&["bench", "-s", "payment-confirm", "-q"]);
    ran(&o, "bench payment-confirm");
    let err = stderr(&o);
    let r = read_json(&t.path().join("benchmark/baseline_payment-confirm.json"));
    assert!(
        r["metrics"]["http_reqs"]["count"].as_u64().unwrap() >= 8,
        "{r}"
    );
    assert_eq!(r["metrics"]["checks"]["fails"], 0, "{}", r["metrics"]);
    assert_eq!(r["stack"]["migrations_applied"], 2, "{}", r["stack"]);
    assert!(
        r["stack"]["seeded_rows"].as_u64().unwrap() >= 5000,
        "{}",
        r["stack"]
    );
    // The run's live series reached the harness's Prometheus beside the stack.
    let port = prometheus_port(&t);
    let mut found = String::new();
    for _ in 0..40 {
        let v = common::stack::prom_get(
            port,
            "/api/v1/query",
            &[(
                "query",
                "count({job=\"loadtest\",run=\"baseline\",scenario=\"payment-confirm\"})",
            )],
        );
        found = v["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or("")
            .to_string();
        if found.parse::<u64>().unwrap_or(0) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(
        found.parse::<u64>().unwrap_or(0) > 0,
        "no series of the run in Prometheus:{port}"
    );
    // The k6 service of the team's file is not started; the others are.
    let ps = t.containers();
    assert!(
        ps.iter().any(|l| l.starts_with("router-server ")),
        "{ps:?}\n{err}"
    );
    assert!(ps.iter().any(|l| l.starts_with("redis ")), "{ps:?}");
    assert!(!ps.iter().any(|l| l.starts_with("k6 ")), "{ps:?}");
    // The script's own summary files land where the team's k6 service puts them.
    let team_summary = t
        .path()
        .join("loadtest/k6/benchmark/baseline_payment-confirm.summary");
    let text = std::fs::read_to_string(&team_summary).unwrap();
    assert!(
        text.starts_with("run baseline, scenario payment-confirm"),
        "{text}"
    );
    // Nothing of the team's was edited.
    assert_eq!(
        std::fs::read(t.path().join("loadtest/docker-compose.yml")).unwrap(),
        compose_before
    );
    assert_eq!(git(t.path(), &["diff", "--stat"]), "");

    // Diesel's own table lists both migrations; a second run applies none.
    let o = t.loadtest(&["db", "state"]);
    ok(&o, "db state");
    let state = stdout(&o);
    assert!(
        state
            .lines()
            .any(|l| l.starts_with("public.__diesel_schema_migrations")
                && l.split_whitespace().nth(1) == Some("2")),
        "{state}"
    );
    let o = t.loadtest(&["migrate"]);
    ok(&o, "migrate");
    assert!(stdout(&o).contains("0 applied (2 diesel"), "{}", stdout(&o));

    // A script reading the seed file's rows, and -e reaching __ENV; the next
    // run of the payment script reads the baseline its helper opens and
    // writes the team's .diff beside it.
    let o = t.loadtest(&["bench", "-s", "seeded-lookup", "-q", "-e", "UNUSED=1"]);
    ran(&o, "bench seeded-lookup");
    let r = read_json(&t.path().join("benchmark/baseline_seeded-lookup.json"));
    assert_eq!(r["metrics"]["checks"]["fails"], 0, "{}", r["metrics"]);
    let o = t.loadtest(&["bench", "-s", "payment-confirm", "-r", "second", "-q"]);
    ran(&o, "bench payment-confirm as run `second`");
    let diff = std::fs::read_to_string(
        t.path()
            .join("loadtest/k6/benchmark/second_payment-confirm.diff"),
    )
    .unwrap();
    assert!(diff.contains("p(95)"), "{diff}");

    // A commit that slows the confirm path: the verdict says so.
    t.write(".gitignore", "benchmark/\nloadtest/k6/benchmark/*_*\n");
    git(t.path(), &["add", "-A"]);
    git(t.path(), &["commit", "-qm", "load-test settings"]);
    let router = t.path().join("server/router.py");
    let src = std::fs::read_to_string(&router).unwrap();
    let slow = src
        .replacen("import json\n", "import json\nimport time\n", 1)
        .replacen(
            "            status = \"requires_confirmation\"\n",
            "            time.sleep(0.03)  # an extra fraud check\n            status = \"requires_confirmation\"\n",
            1,
        );
    assert_ne!(slow, src);
    std::fs::write(&router, slow).unwrap();
    git(t.path(), &["commit", "-qam", "an extra fraud check"]);
    let o = t.loadtest(&["ab", "--base", "HEAD~1", "-s", "payment-confirm", "-q"]);
    assert_eq!(code(&o), 98, "{}\n{}", stderr(&o), stdout(&o));
    // A/A on a clean tree: never a regression.
    let o = t.loadtest(&[
        "ab",
        "--base",
        "HEAD",
        "-s",
        "payment-confirm",
        "-q",
        "--trials",
        "8",
        "--max-trials",
        "8",
        "--down",
    ]);
    assert!(matches!(code(&o), 0 | 97), "{}\n{}", stderr(&o), stdout(&o));
    assert_eq!(
        git(t.path(), &["status", "--porcelain"]),
        "",
        "ab left files in the tree"
    );
    assert!(t.containers().is_empty(), "{:?}", t.containers());
}

/// Seed 004's shape: migrations in the app's own command, redis and a mock
/// with `service_started`, a k6 service, an HTTP healthcheck by curl.
#[test]
fn a_stack_that_migrates_itself_at_start_runs_without_edits() {
    let t = Team::new("self-migrating");
    let compose = std::fs::read_to_string(t.path().join("loadtest/docker-compose.yml")).unwrap();
    let own = compose.replacen(
        "    env_file: ./router.env\n",
        "    env_file: ./router.env\n    command: >\n      sh -c \"python3 /app/migrate.py &&\n      exec python3 /app/router.py\"\n",
        1,
    );
    assert_ne!(own, compose);
    t.write("loadtest/docker-compose.yml", &own);
    git(t.path(), &["commit", "-qam", "migrate at start"]);
    let o = t.loadtest(&["init"]);
    ok(&o, "init");
    assert!(stdout(&o).contains("migrations     app"), "{}", stdout(&o));
    let o = t.loadtest(&["bench", "-s", "health", "--down"]);
    ran(&o, "bench health");
    assert!(
        stderr(&o).contains("migrate: by the app at its start"),
        "{}",
        stderr(&o)
    );
    let r = read_json(&t.path().join("benchmark/baseline_health.json"));
    assert_eq!(r["metrics"]["checks"]["fails"], 0, "{}", r["metrics"]);
    assert!(
        r["stack"]["seeded_rows"].as_u64().unwrap() >= 5000,
        "{}",
        r["stack"]
    );
    assert_eq!(git(t.path(), &["diff", "--stat"]), "");
}

/// Each mistake exits 1 or 2 with a message naming the file, service or
/// command, and leaves nothing running.
#[test]
fn a_teams_mistakes_are_named_and_leave_nothing_running() {
    let t = Team::new("mistakes");
    ok(&t.loadtest(&["init"]), "init");

    // A script calling a host that is no service of the stack: before anything starts.
    t.write(
        "loadtest/k6/typo.js",
        "import http from \"k6/http\";\nexport default function () {\n  http.get(\"http://routr-server:8080/health\");\n}\n",
    );
    let o = t.loadtest(&["bench", "-s", "typo", "-q"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("typo.js:3") && e.contains("`routr-server`") && e.contains("router-server"),
        "{e}"
    );
    assert!(t.containers().is_empty(), "{:?}", t.containers());

    // An app service that is not in the file.
    let o = t.loadtest_env(
        &["bench", "-s", "health", "-q"],
        &[("LOADTEST_APP_SERVICE", "api")],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("`api`") && e.contains("docker-compose.yml") && e.contains("router-server"),
        "{e}"
    );

    // A compose file that does not parse: its file and line.
    let o = t.loadtest_env(
        &["bench", "-s", "health", "-q"],
        &[("LOADTEST_COMPOSE_FILE", "broken.yml")],
    );
    t.write("broken.yml", "services:\n  db:\n    image: [unclosed\n");
    let o2 = t.loadtest_env(
        &["bench", "-s", "health", "-q"],
        &[("LOADTEST_COMPOSE_FILE", "broken.yml")],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert_eq!(code(&o2), 2, "{}", stderr(&o2));
    assert!(stderr(&o2).contains("broken.yml:4:1"), "{}", stderr(&o2));

    // A migration with an SQL error: the file and the database's error; the stack is removed.
    t.write(
        "migrations/2024-02-01-000000_broken/up.sql",
        "ALTER TABLE nowhere ADD COLUMN x int;\n",
    );
    t.write(
        "migrations/2024-02-01-000000_broken/down.sql",
        "SELECT 1;\n",
    );
    let o = t.loadtest(&["bench", "-s", "health", "-q"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("2024-02-01-000000_broken/up.sql") && e.contains("nowhere"),
        "{e}"
    );
    assert!(e.contains("the stack was removed"), "{e}");
    assert!(t.containers().is_empty(), "{:?}", t.containers());
    std::fs::remove_dir_all(t.path().join("migrations/2024-02-01-000000_broken")).unwrap();

    // A migration service that exits 1: its name and its output.
    let compose = std::fs::read_to_string(t.path().join("loadtest/docker-compose.yml")).unwrap();
    t.write(
        "loadtest/migrate.yml",
        "services:\n  migrate:\n    image: loadtest/python:3.11\n    command: [\"sh\", \"-c\", \"echo relation users does not exist >&2; exit 1\"]\n    depends_on:\n      db:\n        condition: service_healthy\n",
    );
    let o = t.loadtest_env(
        &["bench", "-s", "health", "-q"],
        &[
            (
                "LOADTEST_COMPOSE_FILE",
                "loadtest/docker-compose.yml:loadtest/migrate.yml",
            ),
            ("LOADTEST_MIGRATE", "service"),
            ("LOADTEST_MIGRATE_SERVICE", "migrate"),
        ],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("migrate_service `migrate`")
            && e.contains("exited 1")
            && e.contains("relation users does not exist"),
        "{e}"
    );
    assert!(t.containers().is_empty(), "{:?}", t.containers());
    assert_eq!(
        std::fs::read_to_string(t.path().join("loadtest/docker-compose.yml")).unwrap(),
        compose
    );
}

/// `init --script` writes the familiar entry point, which calls the harness
/// binary; its checks run before anything starts (no Docker needed here).
#[test]
fn init_writes_the_familiar_entry_point() {
    let t = Team::new("script");
    let o = t.loadtest(&["init", "--script"]);
    ok(&o, "init --script");
    let sh = t.path().join("loadtest.sh");
    let run = |args: &[&str]| {
        Command::new(&sh)
            .args(args)
            .current_dir(t.path())
            .env("LOADTEST_BIN", bin())
            .output()
            .unwrap()
    };
    let o = run(&["-h"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("-c "), "{}", stdout(&o));
    // -c needs the baseline first, and names it.
    let o = run(&["-c", "-s", "health"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("benchmark/baseline_health.json is missing"),
        "{}",
        stderr(&o)
    );
    // -a covers every script of the k6 folder.
    let o = t.loadtest(&["scenarios", "--names"]);
    ok(&o, "scenarios --names");
    assert_eq!(
        stdout(&o).lines().collect::<Vec<_>>(),
        ["health", "payment-confirm", "seeded-lookup"]
    );
    let o = run(&["-ca"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("baseline_health.json is missing"),
        "{}",
        stderr(&o)
    );
    // A second init refuses to overwrite either file.
    let o = t.loadtest(&["init", "--script"]);
    assert_eq!(code(&o), 2);
    assert_eq!(git(t.path(), &["status", "--porcelain"]).lines().count(), 2);
}
