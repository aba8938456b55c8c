//! `benchmark/history.jsonl`: one line per run with its key figures, so trends
//! can be followed across commits without keeping every result file.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::RunResult;

pub const FILE: &str = "history.jsonl";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryLine {
    pub run: String,
    pub scenario: String,
    pub commit: Option<String>,
    #[serde(default)]
    pub dirty: bool,
    /// RFC 3339 start time.
    pub time: String,
    pub duration_s: f64,
    #[serde(default)]
    pub trials: usize,
    pub interrupted: bool,
    pub rps: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub error_rate: f64,
    pub checks_rate: f64,
    /// The result file this line summarises.
    pub file: String,
}

impl HistoryLine {
    pub fn from_result(r: &RunResult, file: &Path) -> HistoryLine {
        let m = &r.metrics;
        HistoryLine {
            run: r.run.clone(),
            scenario: r.scenario.clone(),
            commit: r.git.as_ref().map(|g| g.commit.clone()),
            dirty: r.git.as_ref().is_some_and(|g| g.dirty),
            time: r.started_at.clone(),
            duration_s: r.duration_s,
            trials: r.trials.len().max(1),
            interrupted: r.interrupted,
            rps: m.http_reqs.rate,
            p50: m.http_req_duration.med,
            p95: m.http_req_duration.p95,
            p99: m.http_req_duration.p99,
            error_rate: m.http_req_failed.rate,
            checks_rate: m.checks.rate,
            file: file.display().to_string(),
        }
    }
}

/// Appends one line in a single write, so concurrent runs cannot interleave lines.
pub fn append(out: &Path, r: &RunResult, file: &Path) -> Result<()> {
    let path = out.join(FILE);
    let mut line = serde_json::to_string(&HistoryLine::from_result(r, file))?;
    line.push('\n');
    use std::os::unix::fs::OpenOptionsExt;
    // Never through a symlink: the history is a file of the results folder.
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("cannot open {} (a symlink is refused)", path.display()))?;
    f.write_all(line.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Lines for one scenario, oldest first. Unreadable lines are reported, not fatal.
pub fn read(out: &Path, scenario: &str) -> Result<(Vec<HistoryLine>, Vec<String>)> {
    let path = out.join(FILE);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "cannot read {} (it is written by `loadtest run`)",
            path.display()
        )
    })?;
    // A stray non-UTF-8 byte spoils its own line at most, not the history.
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<HistoryLine>(l) {
            Ok(h) if h.scenario == scenario => lines.push(h),
            Ok(_) => {}
            Err(e) => problems.push(format!("{}:{}: skipped: {e}", path.display(), i + 1)),
        }
    }
    Ok((lines, problems))
}
