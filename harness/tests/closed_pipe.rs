//! A reader that goes away (`loadtest images | grep -q missing`, `| head`) ends
//! the process as it ends a Unix tool: killed by SIGPIPE, no panic.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use common::*;

/// Runs `loadtest args` with stdout (or stderr) on a pipe whose reader is
/// already closed, so the first write fails whatever the timing.
fn with_closed(args: &[&str], close_stderr: bool) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut c = Command::new(bin());
    c.args(args).current_dir(repo_root()).stdin(Stdio::null());
    let out = if close_stderr {
        c.stderr(writer).stdout(Stdio::piped()).output().unwrap()
    } else {
        c.stdout(writer).stderr(Stdio::piped()).output().unwrap()
    };
    let other = String::from_utf8_lossy(if close_stderr {
        &out.stdout
    } else {
        &out.stderr
    })
    .into_owned();
    (out.status, other)
}

#[test]
fn closed_stdout_ends_quietly_by_sigpipe() {
    // `images` is the command loadtest.sh pipes into grep -q (it asks the Engine).
    for args in [
        &["scenarios"][..],
        &["images"],
        &["validate", "-s", "health"],
    ] {
        let (status, err) = with_closed(args, false);
        assert_eq!(
            status.signal(),
            Some(libc_sigpipe()),
            "loadtest {args:?}: {status:?}, stderr: {err}"
        );
        assert!(!err.contains("panicked"), "loadtest {args:?}: {err}");
        assert!(err.is_empty(), "loadtest {args:?} must stop quietly: {err}");
    }
}

#[test]
fn every_command_survives_a_closed_stdout() {
    let none = format!("ltt-nothing-{}", std::process::id());
    let mut cases: Vec<Vec<String>> = [
        "run",
        "compare",
        "history",
        "bench",
        "up",
        "down",
        "ps",
        "images",
        "populate",
        "db",
        "migrate",
        "validate",
        "scenarios",
    ]
    .iter()
    .map(|c| vec![c.to_string(), "--help".to_string()])
    .collect();
    cases.push(vec!["ps".into(), "-p".into(), none.clone()]);
    cases.push(vec!["down".into(), "-p".into(), none]);
    cases.push(vec!["--help".into()]);
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, err) = with_closed(&args, false);
        // Help text is clap's: it stops at the closed pipe and exits 0; ours dies by SIGPIPE.
        assert!(
            status.code() == Some(0) || status.signal() == Some(libc_sigpipe()),
            "loadtest {args:?}: {status:?}, stderr: {err}"
        );
        assert!(!err.contains("panicked"), "loadtest {args:?}: {err}");
    }
}

#[test]
fn closed_stderr_ends_quietly_by_sigpipe() {
    // An error message is the first thing written, to the closed stderr.
    let (status, out) = with_closed(&["validate", "-s", "no-such-scenario"], true);
    assert_eq!(status.signal(), Some(libc_sigpipe()), "{status:?} {out}");
    // `--help` goes to stdout, which is open: unaffected.
    let (status, out) = with_closed(&["scenarios"], true);
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("health"), "{out}");
}

#[test]
fn a_shell_pipeline_into_grep_q_sees_the_match() {
    // The pattern of loadtest.sh: the reader stops at its first match.
    let o = Command::new("bash")
        .args([
            "-c",
            &format!(
                "for i in 1 2 3 4 5; do {} scenarios; done | grep -q health",
                bin()
            ),
        ])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

fn libc_sigpipe() -> i32 {
    13
}
