//! Property tests of the parsers that read users' files: from valid files
//! with random edits (bytes replaced, inserted, removed, lines doubled) and
//! from arbitrary text, every parser returns a value or an error, never a
//! panic. The case count is bounded (FUZZ_CASES, default 64 per parser) so
//! CI spends seconds; raise it locally for a longer hunt.

mod common;

use std::path::Path;

use proptest::prelude::*;

use common::*;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// One edit of a text: at a relative position, replace, insert or delete a
/// byte, or repeat the line there.
#[derive(Debug, Clone)]
enum Edit {
    Replace(f64, u8),
    Insert(f64, u8),
    Delete(f64),
    DoubleLine(f64),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that matter to the formats more often than others.
    let byte = prop_oneof![
        3 => prop::sample::select(b"{}[]\"'=:,.$-_ \n\t#0123456789eE+".to_vec()),
        1 => any::<u8>(),
    ];
    prop_oneof![
        (0.0..1.0f64, byte.clone()).prop_map(|(p, b)| Edit::Replace(p, b)),
        (0.0..1.0f64, byte).prop_map(|(p, b)| Edit::Insert(p, b)),
        (0.0..1.0f64).prop_map(Edit::Delete),
        (0.0..1.0f64).prop_map(Edit::DoubleLine),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    for e in edits {
        let at = |p: f64, len: usize| ((p * len as f64) as usize).min(len.saturating_sub(1));
        match *e {
            Edit::Replace(p, x) if !b.is_empty() => {
                let i = at(p, b.len());
                b[i] = x;
            }
            Edit::Insert(p, x) => {
                let i = at(p, b.len() + 1);
                b.insert(i, x);
            }
            Edit::Delete(p) if !b.is_empty() => {
                let i = at(p, b.len());
                b.remove(i);
            }
            Edit::DoubleLine(p) if !b.is_empty() => {
                let i = at(p, b.len());
                let start = b[..i]
                    .iter()
                    .rposition(|c| *c == b'\n')
                    .map_or(0, |x| x + 1);
                let end = b[i..]
                    .iter()
                    .position(|c| *c == b'\n')
                    .map_or(b.len(), |x| i + x + 1);
                let line = b[start..end].to_vec();
                b.splice(end..end, line);
            }
            _ => {}
        }
    }
    b
}

fn edited(text: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(edit(), 1..8).prop_map(move |e| apply(text, &e))
}

fn file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

const SCENARIO: &str = include_str!("../../scenarios/payment-create-and-confirm.toml");
const COMPOSE: &str = include_str!("../../compose/docker-compose.yml");
const DATA: &str = include_str!("../../config/data.toml");
const SETTINGS: &str = include_str!("../../config/loadtest.toml");
const GATES: &str = include_str!("../../config/regression.toml");

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn scenario_files(bytes in edited(SCENARIO)) {
        let dir = tempdir();
        let _ = loadtest::scenario::load(&file(dir.path(), "s.toml", &bytes));
    }

    #[test]
    fn compose_files(bytes in edited(COMPOSE)) {
        let dir = tempdir();
        let f = file(dir.path(), "docker-compose.yml", &bytes);
        let vars = loadtest::stack::compose::Vars { dotenv: Default::default() };
        let _ = loadtest::stack::compose::load(&f, Some("fuzz"), &vars, &[]);
    }

    #[test]
    fn data_files(bytes in edited(DATA)) {
        let dir = tempdir();
        let _ = loadtest::db::seed::load(&file(dir.path(), "data.toml", &bytes));
    }

    #[test]
    fn settings_files(bytes in edited(SETTINGS)) {
        let dir = tempdir();
        let vars = loadtest::stack::compose::Vars { dotenv: Default::default() };
        let _ = loadtest::config::Config::load(&file(dir.path(), "loadtest.toml", &bytes), &vars);
    }

    #[test]
    fn gate_files(bytes in edited(GATES)) {
        let dir = tempdir();
        let _ = loadtest::compare::GateConfig::load(&file(dir.path(), "regression.toml", &bytes), true);
    }

    #[test]
    fn durations_and_interpolation(text in "\\PC{0,40}") {
        let _ = loadtest::duration::parse(&text);
        let vars = loadtest::stack::compose::Vars { dotenv: Default::default() };
        let _ = loadtest::stack::interpolate::interpolate(&text, &vars);
    }
}

/// Result files and history lines, edited from a real run's.
#[test]
fn result_files_and_history_lines() {
    let srv = TestServer::start();
    let dir = tempdir();
    let out = dir.path().join("out");
    let o = run_scenario(
        &repo_root().join("scenarios/health.toml"),
        &srv.url,
        &out,
        &["--vus", "1", "--duration", "1s"],
    );
    assert!(code(&o) == 0 || code(&o) == 99, "{}", stderr(&o));
    let result = std::fs::read_to_string(out.join("baseline_health.json")).unwrap();
    let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
    let result: &'static str = Box::leak(result.into_boxed_str());
    let history: &'static str = Box::leak(history.into_boxed_str());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    });
    runner
        .run(&(edited(result), edited(history)), |(r, h)| {
            let d = tempdir();
            let _ = loadtest::results::RunResult::load(&file(d.path(), "r.json", &r));
            std::fs::write(d.path().join("history.jsonl"), &h).unwrap();
            let _ = loadtest::results::history::read(d.path(), "health");
            Ok(())
        })
        .unwrap();
}
