//! The CI examples a team copies (examples/ci): they parse as YAML, run
//! `loadtest ab` with flags the binary has, keep the results, and look for
//! their comment by the marker the binary writes first.

mod common;

use common::*;
use serde_norway::Value;

fn yaml(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join(rel)).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every shell text of the file (GitHub's `run:`, GitLab's `script:` items).
fn shell(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    (Some("run"), Value::String(s)) => out.push(s.clone()),
                    (Some("script"), Value::Sequence(items)) => {
                        out.extend(items.iter().filter_map(|i| i.as_str().map(String::from)))
                    }
                    _ => shell(v, out),
                }
            }
        }
        Value::Sequence(s) => s.iter().for_each(|v| shell(v, out)),
        _ => {}
    }
}

/// Each `loadtest SUB --flag ...` call: the sub-command and its long and short flags.
fn calls(scripts: &[String]) -> Vec<(String, Vec<String>)> {
    let joined = scripts.join("\n").replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if *w != "loadtest" || i + 1 >= words.len() {
                continue;
            }
            // `cargo install ... loadtest` names the crate, not a call.
            if i > 0 && words[..i].contains(&"install") {
                continue;
            }
            let flags = words[i + 2..]
                .iter()
                .take_while(|w| !matches!(**w, ";" | "&&" | "||" | "|"))
                .filter(|w| w.starts_with('-'))
                .map(|w| w.split('=').next().unwrap().to_string())
                .collect();
            out.push((words[i + 1].to_string(), flags));
        }
    }
    out
}

fn check_calls(file: &str, scripts: &[String]) {
    let calls = calls(scripts);
    assert!(
        calls.iter().any(|(sub, _)| sub == "ab"),
        "{file}: no `loadtest ab` in {scripts:?}"
    );
    for (sub, flags) in calls {
        let o = loadtest(&[&sub, "--help"]);
        assert_eq!(code(&o), 0, "{file}: `loadtest {sub}` is no command");
        let help = stdout(&o);
        for f in flags {
            let named = if f.starts_with("--") {
                help.contains(&format!("{f} ")) || help.contains(&format!("{f}\n"))
            } else {
                help.contains(&format!("{f}, "))
            };
            assert!(named, "{file}: `loadtest {sub} {f}` is not in its --help");
        }
    }
}

/// The marker the scripts look for, with the scenario variable, is the
/// binary's first line of a comment.
fn check_marker(file: &str, scripts: &[String]) {
    let text = scripts.join("\n");
    assert!(
        text.contains("marker=\"<!-- loadtest-ab: $SCENARIO -->\""),
        "{file}: the comment marker differs from what `ab --format` writes"
    );
}

#[test]
fn the_github_workflow_runs_ab_on_pull_requests_and_updates_one_comment() {
    let file = "examples/ci/github-actions.yml";
    let v = yaml(file);
    assert!(
        v["on"].get("pull_request").is_some(),
        "{file}: not on pull_request"
    );
    assert_eq!(v["permissions"]["pull-requests"], "write");
    let steps = v["jobs"]["ab"]["steps"].as_sequence().unwrap();
    let checkout = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout"))
        })
        .expect("a checkout step");
    assert_eq!(checkout["with"]["fetch-depth"], 0, "ab needs the history");
    let mut scripts = Vec::new();
    shell(&v, &mut scripts);
    check_calls(file, &scripts);
    check_marker(file, &scripts);
    let all = scripts.join("\n");
    assert!(all.contains("--format github") && all.contains("--report loadtest-ab.md"));
    assert!(all.contains("body=@loadtest-ab.md"));
    assert!(steps
        .iter()
        .any(|s| s["with"]["path"].as_str() == Some("benchmark/")));
}

#[test]
fn the_gitlab_job_runs_ab_on_merge_requests_and_updates_one_note() {
    let file = "examples/ci/gitlab-ci.yml";
    let v = yaml(file);
    let job = &v["loadtest-ab"];
    let rules = serde_norway::to_string(&job["rules"]).unwrap();
    assert!(rules.contains("merge_request_event"), "{rules}");
    assert_eq!(job["variables"]["GIT_DEPTH"], "0");
    let mut scripts = Vec::new();
    shell(&v, &mut scripts);
    check_calls(file, &scripts);
    check_marker(file, &scripts);
    let all = scripts.join("\n");
    assert!(all.contains("--format gitlab") && all.contains("--report loadtest-ab.md"));
    let paths = job["artifacts"]["paths"].as_sequence().unwrap();
    assert!(paths.iter().any(|p| p == "benchmark/"), "{paths:?}");
    assert_eq!(job["artifacts"]["when"], "always");
}

/// What the scripts look for is what the binary writes: a comment re-made
/// from a stored A/B result starts with the marker for its scenario.
#[test]
fn the_binary_writes_the_marker_the_scripts_look_for() {
    let dir = tempdir();
    let ab = dir.path().join("ab_payment-confirm_a_b.json");
    std::fs::write(&ab, include_str!("fixtures/ab-result.json")).unwrap();
    for (format, host_words) in [
        ("github", "workflow run's artifacts"),
        ("gitlab", "job's artifacts"),
    ] {
        std::fs::write(ab.with_extension("html"), "<html></html>").unwrap();
        let o = loadtest(&["report", ab.to_str().unwrap(), "--format", format]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let text = stdout(&o);
        assert!(
            text.starts_with("<!-- loadtest-ab: payment-confirm -->\n"),
            "{text}"
        );
        assert!(text.contains(host_words), "{text}");
    }
    // A run's result has no comment form: said, exit 2.
    let run = dir.path().join("baseline_x.json");
    std::fs::write(&run, "{\"schema_version\": 1}").unwrap();
    let o = loadtest(&["report", run.to_str().unwrap(), "--format", "github"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--format is for A/B results"),
        "{}",
        stderr(&o)
    );
}

/// The HTML A/B report says, under "Where", when the trials were too few to
/// name anything (as the text and the comment do).
#[test]
fn the_html_report_says_when_the_pairs_are_too_few() {
    let dir = tempdir();
    let ab = dir.path().join("ab_payment-confirm_a_b.json");
    std::fs::write(&ab, include_str!("fixtures/ab-result.json")).unwrap();
    let html = dir.path().join("page.html");
    let o = loadtest(&["report", ab.to_str().unwrap(), "-o", html.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    let at = page.find("id=\"where\"").expect("a where section");
    assert!(
        page[at..].contains("0 pairs cannot show a finding"),
        "{}",
        &page[at..at + 800.min(page.len() - at)]
    );
}
