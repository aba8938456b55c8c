//! The docs stay honest: every relative link in README.md and docs/ resolves
//! (file and heading), and every flag the docs give a `loadtest` command is
//! one its `--help` lists.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;

fn doc_files() -> Vec<PathBuf> {
    let root = repo_root();
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    files.sort();
    files
}

/// GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut in_code = false;
    let mut out = Vec::new();
    for l in text.lines() {
        if l.starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && l.starts_with('#') {
            out.push(slug(l.trim_start_matches('#')));
        }
    }
    out
}

/// `](target)` links of a markdown text.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        out.push(after[..end].to_string());
        rest = &after[end..];
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    for f in doc_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match link.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                f.clone()
            } else {
                f.parent().unwrap().join(path)
            };
            if !target.exists() {
                broken.push(format!("{}: {link} (no {})", f.display(), target.display()));
                continue;
            }
            if let Some(a) = anchor {
                if target.extension().is_some_and(|x| x == "md")
                    && !anchors(&target).contains(&a.to_string())
                {
                    broken.push(format!("{}: {link} (no heading #{a})", f.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

fn help(args: &[&str]) -> String {
    let mut a = args.to_vec();
    a.push("--help");
    let o = loadtest(&a);
    assert_eq!(code(&o), 0, "loadtest {a:?}: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn every_flag_the_docs_name_is_in_help() {
    let top = help(&[]);
    // Sub-commands as `loadtest --help` lists them (two-space indented names).
    let subs: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|s| s != "help")
        .collect();
    assert!(
        subs.contains(&"bench".to_string()) && subs.contains(&"init".to_string()),
        "{subs:?}"
    );
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    for s in &subs {
        let mut text = help(&[s]);
        // `db` has commands of its own: their flags count for it too.
        if s == "db" {
            for inner in [
                "state",
                "prepare",
                "reset",
                "restore",
                "seed",
                "reset-bench",
            ] {
                text.push_str(&help(&["db", inner]));
            }
        }
        if s == "import" {
            text.push_str(&help(&["import", "k6"]));
        }
        helps.insert(s.clone(), text);
    }
    let mut missing = Vec::new();
    let mut checked = 0;
    for f in doc_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines() {
            let mut rest = line;
            while let Some(at) = rest.find("loadtest ") {
                let after = &rest[at + "loadtest ".len()..];
                rest = after;
                let Some(sub) = after.split_whitespace().next() else {
                    continue;
                };
                let Some(h) = helps.get(sub) else { continue };
                // The command's own words: up to a comment, a pipe, a code span's end or another command.
                let end = after.find(['#', '|', '`', ';', ')']).unwrap_or(after.len());
                let end = ["&&", "$("]
                    .iter()
                    .filter_map(|m| after[..end].find(m))
                    .min()
                    .unwrap_or(end);
                for word in after[..end].split_whitespace() {
                    let w = word.trim_start_matches(['[', '(']);
                    if !w.starts_with("--") || w.len() < 3 {
                        continue;
                    }
                    let flag: String = w
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    checked += 1;
                    if !h.contains(&flag) {
                        missing.push(format!("{}: `loadtest {sub} ... {flag}`", f.display()));
                    }
                }
            }
        }
    }
    assert!(checked > 30, "only {checked} flags found in the docs");
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "flags the docs name that --help does not:\n{}",
        missing.join("\n")
    );
}
