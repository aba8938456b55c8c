//! loadtest.sh and `loadtest bench`: the checks that happen before anything starts.

mod common;

use std::process::Command;

use common::*;

fn script(args: &[&str], results: &std::path::Path) -> std::process::Output {
    Command::new(repo_root().join("loadtest.sh"))
        .args(args)
        .current_dir(repo_root())
        .env("LOADTEST_RESULTS_DIR", results)
        .output()
        .unwrap()
}

#[test]
fn loadtest_sh_refuses_bad_flags_and_missing_baselines() {
    let dir = tempdir();
    let o = script(&["-h"], dir.path());
    assert_eq!(code(&o), 0);
    for flag in ["-r NAME", "-s SCENARIO", "-c", "-a", "98"] {
        assert!(stdout(&o).contains(flag), "{flag} missing from -h");
    }
    let o = script(&["-x"], dir.path());
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("unknown flag -x"));

    // -c without a baseline: refused before building or touching Docker, naming the file.
    let o = script(&["-c", "-s", "payment-confirm"], dir.path());
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let want = format!(
        "{}/baseline_payment-confirm.json is missing",
        dir.path().display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("building"),
        "nothing may start: {}",
        stderr(&o)
    );

    // -ca: every baseline is listed.
    let o = script(&["-ca"], dir.path());
    assert_eq!(code(&o), 2);
    for s in ["health", "payment-confirm", "payment-create-and-confirm"] {
        assert!(
            stderr(&o).contains(&format!("baseline_{s}.json is missing")),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn bench_checks_before_touching_docker() {
    let dir = tempdir();
    let run = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .current_dir(repo_root())
            .env("LOADTEST_RESULTS_DIR", dir.path())
            // Docker must not even be needed for these.
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .unwrap()
    };
    let o = run(&["bench", "-s", "health", "-r", "abc123", "--compare"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("baseline_health.json is missing"),
        "{}",
        stderr(&o)
    );
    let o = run(&["bench", "-s", "nope"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("unknown scenario `nope`"),
        "{}",
        stderr(&o)
    );
    let o = run(&["bench", "-s", "health", "--compare"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("another run name"), "{}", stderr(&o));
}
