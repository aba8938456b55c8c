//! The stack commands against the real Docker Engine: up, health waits, ps
//! (ours and docker-compose's), down, and the faults that must leave nothing behind.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use common::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A compose file: Postgres (stand-in) with a healthcheck, and a service built
/// from a Dockerfile that waits for it.
fn stack_file(dir: &Path, db_port: u16, web_health: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("web")).unwrap();
    std::fs::write(
        dir.join("web/Dockerfile"),
        "FROM loadtest/debian:bookworm\nRUN echo built > /built\n",
    )
    .unwrap();
    std::fs::write(dir.join("web/.dockerignore"), "junk\n").unwrap();
    std::fs::write(dir.join("web/junk"), "must not reach the build").unwrap();
    let compose = format!(
        r#"services:
  db:
    image: ${{LT_TEST_PG_IMAGE:-loadtest/postgres:15}}
    environment:
      POSTGRES_USER: demo
      POSTGRES_PASSWORD: demo
      POSTGRES_DB: demo
    ports: ["127.0.0.1:{db_port}:5432"]
    volumes: ["dbdata:/var/lib/postgresql/data"]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U demo -d demo -h 127.0.0.1"]
      interval: 1s
      timeout: 3s
      retries: 60
  web:
    build: ./web
    command: ["sh", "-c", "test ! -e /junk && echo web is up && sleep infinity"]
    healthcheck:
      test: ["CMD-SHELL", "{web_health}"]
      interval: 1s
      timeout: 2s
      retries: 2
    depends_on:
      db: {{ condition: service_healthy }}
volumes:
  dbdata: {{}}
"#
    );
    let f = dir.join("docker-compose.yml");
    std::fs::write(&f, compose).unwrap();
    f
}

/// Objects of any kind that carry the project label.
fn leftovers(project: &str) -> Vec<String> {
    let label = format!("label=com.docker.compose.project={project}");
    let mut out = Vec::new();
    for (kind, args) in [
        ("container", vec!["ps", "-aq", "--filter", &label]),
        ("network", vec!["network", "ls", "-q", "--filter", &label]),
        ("volume", vec!["volume", "ls", "-q", "--filter", &label]),
    ] {
        // The docker CLI is only the test's witness here; the harness itself uses the Engine API.
        let o = Command::new("docker").args(&args).output().unwrap();
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            out.push(format!("{kind} {l}"));
        }
    }
    out
}

fn lt(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().unwrap()
}

#[test]
fn up_ps_and_down_leave_nothing_and_spare_other_projects() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir();
    let f = stack_file(dir.path(), free_port(), "test -e /built");
    let f = f.to_str().unwrap();
    let (p, other) = (
        format!("ltt-{}", std::process::id()),
        format!("ltt-other-{}", std::process::id()),
    );

    let o = lt(&["up", "-f", f, "-p", &p, "--timeout", "180s"]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("{p}-db-1")) && out.contains("healthy"),
        "{out}"
    );

    // Our ps and docker-compose's agree on what runs.
    let o = lt(&["ps", "-p", &p, "-f", f]);
    assert!(stdout(&o).contains(&format!("{p}-web-1")), "{}", stdout(&o));
    if let Ok(c) = Command::new("docker-compose")
        .args(["-f", f, "-p", &p, "ps"])
        .output()
    {
        let listed = String::from_utf8_lossy(&c.stdout).to_string();
        assert!(
            listed.contains(&format!("{p}-db-1")) && listed.contains(&format!("{p}-web-1")),
            "{listed}"
        );
    }
    // A second project on another port.
    let dir2 = tempdir();
    let f2 = stack_file(dir2.path(), free_port(), "true");
    let o = lt(&[
        "up",
        "-f",
        f2.to_str().unwrap(),
        "-p",
        &other,
        "--timeout",
        "180s",
        "-q",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // up refuses to stack a project on itself.
    let o = lt(&["up", "-f", f, "-p", &p, "-q"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("already has 2 container(s)"),
        "{}",
        stderr(&o)
    );

    let o = lt(&["down", "-p", &p]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("volume") && stdout(&o).contains("network"),
        "{}",
        stdout(&o)
    );
    assert!(leftovers(&p).is_empty(), "{:?}", leftovers(&p));
    assert_eq!(
        leftovers(&other).len(),
        4,
        "the other project must survive: {:?}",
        leftovers(&other)
    );
    let o = lt(&["down", "-p", &other]);
    assert_eq!(code(&o), 0);
    assert!(leftovers(&other).is_empty());
}

#[test]
fn a_healthcheck_that_never_passes_fails_in_time_and_cleans_up() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir();
    let f = stack_file(dir.path(), free_port(), "echo not yet >&2; exit 1");
    let p = format!("ltt-unhealthy-{}", std::process::id());
    let started = std::time::Instant::now();
    let o = lt(&[
        "up",
        "-f",
        f.to_str().unwrap(),
        "-p",
        &p,
        "--timeout",
        "60s",
        "-q",
    ]);
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(e.contains("service `web` is unhealthy"), "{e}");
    assert!(
        e.contains("web is up"),
        "the container's last log lines are shown: {e}"
    );
    assert!(e.contains("removed what it had made"), "{e}");
    assert!(started.elapsed().as_secs() < 60);
    assert!(leftovers(&p).is_empty(), "{:?}", leftovers(&p));
}

#[test]
fn a_taken_port_is_named_and_nothing_is_created() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let dir = tempdir();
    let f = stack_file(dir.path(), port, "true");
    let p = format!("ltt-port-{}", std::process::id());
    let o = lt(&["up", "-f", f.to_str().unwrap(), "-p", &p, "-q"]);
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(
        e.contains(&format!("127.0.0.1:{port} is already in use")) && e.contains("service `db`"),
        "{e}"
    );
    assert!(leftovers(&p).is_empty(), "{:?}", leftovers(&p));
}

#[test]
fn bad_compose_files_and_an_unreachable_engine() {
    let dir = tempdir();
    let f = dir.path().join("docker-compose.yml");
    std::fs::write(&f, "services:\n  db:\n    image: [oops\n").unwrap();
    let o = lt(&["up", "-f", f.to_str().unwrap(), "-p", "ltt-bad"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("docker-compose.yml:4:1"),
        "{}",
        stderr(&o)
    );

    std::fs::write(&f, "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n").unwrap();
    let o = lt(&["up", "-f", f.to_str().unwrap(), "-p", "ltt-bad"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("cycle among: a, b"), "{}", stderr(&o));

    std::fs::write(
        &f,
        "services:\n  a:\n    image: x\n    depends_on: [nope]\n",
    )
    .unwrap();
    let o = lt(&["up", "-f", f.to_str().unwrap(), "-p", "ltt-bad"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("depends on `nope`"), "{}", stderr(&o));

    let o = Command::new(bin())
        .args(["down", "-p", "ltt-bad"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("unix:///nonexistent/docker.sock"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn project_names_are_normalised_alike_by_every_command() {
    // `up -p MyProj` makes project `myproj`; `down -p MyProj` must look for the same one.
    let given = format!("LTT-Case-{}", std::process::id());
    let o = loadtest(&["down", "-p", &given]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let want = format!("project ltt-case-{}:", std::process::id());
    assert!(stdout(&o).contains(&want), "{}", stdout(&o));
    let o = loadtest(&["ps", "-p", "!!!"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("empty after removing"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_checkout_never_takes_down_another_checkouts_project() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Two checkouts (two folders with a compose file) using one project name.
    let (mine, theirs) = (tempdir(), tempdir());
    let f_mine = stack_file(mine.path(), free_port(), "true");
    let f_theirs = stack_file(theirs.path(), free_port(), "true");
    let p = format!("ltt-owner-{}", std::process::id());
    let o = lt(&[
        "up",
        "-f",
        f_theirs.to_str().unwrap(),
        "-p",
        &p,
        "--timeout",
        "180s",
        "-q",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let before = leftovers(&p);
    assert!(!before.is_empty());
    // `down` and `up --fresh` from the other checkout refuse and touch nothing.
    for args in [
        vec!["down", "-f", f_mine.to_str().unwrap(), "-p", &p],
        vec![
            "up",
            "--fresh",
            "-f",
            f_mine.to_str().unwrap(),
            "-p",
            &p,
            "-q",
        ],
    ] {
        let o = lt(&args);
        assert_eq!(code(&o), 1, "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("belongs to another checkout"),
            "{}",
            stderr(&o)
        );
        assert_eq!(
            leftovers(&p),
            before,
            "{args:?} touched the other checkout's stack"
        );
    }
    // From its own checkout it goes.
    let o = lt(&["down", "-f", f_theirs.to_str().unwrap(), "-p", &p]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(leftovers(&p).is_empty());
}
