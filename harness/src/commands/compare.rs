//! `loadtest compare`: reads two result files, judges every metric, writes
//! `<current-run>_<scenario>.diff` next to the current result and prints the
//! chosen format.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::compare::{self, GateConfig};
use crate::exit::{self, Classify, Failure};
use crate::files::write_atomic;
use crate::report;
use crate::results::{self, RunResult};

pub use crate::report::Format;

pub const COMPARE_HELP: &str = "BASE and CURRENT are result files, or run names resolved as <dir>/<run>_<scenario>.json.

Each metric (req/s, p50, p90, p95, p99, max, mean, error rate, checks rate), per request name and overall,
gets a change judged against what varies between runs, never the seconds of one run: with `run --repeat N`
on both sides, the trials (bootstrap interval, Mann-Whitney U); with one run a side, the spread of other runs
of one commit in history.jsonl (3 or more), else only a change beyond a conservative bound (x1.5 for req/s,
p50, mean; x2 for p90/p95; x3 for p99/max; 5 points for rates) counts. A metric regresses only when the change is significant and the whole
interval lies beyond its tolerance. Tolerances and gates: config/regression.toml. For a merge decision,
`loadtest ab` compares interleaved trials of both builds.

Exit codes:
  0   no gate regressed
  2   unusable input: missing or corrupt file, unknown schema_version, runs not comparable
  98  at least one gate regressed";

#[derive(clap::Args, Debug)]
pub struct CompareCmd {
    /// The baseline: a result file or a run name (e.g. baseline)
    pub base: String,
    /// The run to judge: a result file or a run name (e.g. a commit hash)
    pub current: String,
    /// Scenario name, to resolve run names
    #[arg(short, long)]
    pub scenario: Option<String>,
    /// Folder of the result files when run names are given
    #[arg(short, long, default_value = "benchmark")]
    pub dir: PathBuf,
    /// What to print
    #[arg(short, long, value_enum, default_value = "text")]
    pub format: Format,
    /// Tolerances and gates (default: config/regression.toml if present)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Judge even when scenario file, executor settings or thresholds differ
    #[arg(long)]
    pub allow_mismatch: bool,
    /// Also write the printed report to this file
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// A path, or a run name resolved as `<dir>/<run>_<scenario>.json`.
pub fn resolve(
    arg: &str,
    scenario: Option<&str>,
    dir: &Path,
    role: &str,
) -> Result<PathBuf, Failure> {
    let path = if arg.ends_with(".json") || arg.contains('/') {
        PathBuf::from(arg)
    } else {
        let s = scenario.ok_or_else(|| {
            Failure::Usage(anyhow!(
                "{role} `{arg}` is a run name: give --scenario so it resolves to {}/{arg}_<scenario>.json",
                dir.display()
            ))
        })?;
        results::result_path(dir, arg, s, "json")
    };
    if !path.is_file() {
        return Err(Failure::Usage(anyhow!(
            "{role} result {} does not exist (run `loadtest run` with that run name first)",
            path.display()
        )));
    }
    Ok(path)
}

impl CompareCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        judge(self)
    }
}

/// The comparison of two result files, with the between-run noise of the
/// current result's history when one run a side is all there is.
pub fn comparison(
    base_path: &Path,
    cur_path: &Path,
    base: &RunResult,
    cur: &RunResult,
    cfg: &GateConfig,
) -> compare::Comparison {
    let noise = if base.trials.len() >= 2 && cur.trials.len() >= 2 {
        None
    } else {
        let dir = cur_path.parent().unwrap_or(Path::new("."));
        crate::results::history::read(dir, &cur.scenario)
            .ok()
            .and_then(|(lines, _)| {
                compare::run_noise(&lines, &[base_path.to_path_buf(), cur_path.to_path_buf()])
            })
    };
    compare::compare(
        base,
        cur,
        &base_path.display().to_string(),
        &cur_path.display().to_string(),
        cfg,
        noise.as_ref(),
    )
}

fn judge(a: &CompareCmd) -> Result<u8, Failure> {
    let base_path = resolve(&a.base, a.scenario.as_deref(), &a.dir, "baseline")?;
    let cur_path = resolve(&a.current, a.scenario.as_deref(), &a.dir, "current")?;
    let base = RunResult::load(&base_path).usage()?;
    let cur = RunResult::load(&cur_path).usage()?;
    let cfg = match &a.config {
        Some(p) => GateConfig::load(p, true),
        None => GateConfig::load(Path::new("config/regression.toml"), false),
    }
    .usage()?;

    let cmp = comparison(&base_path, &cur_path, &base, &cur, &cfg);
    if !cmp.mismatches.is_empty() && !a.allow_mismatch {
        let list: Vec<String> = cmp.mismatches.iter().map(|m| format!("  - {m}")).collect();
        return Err(Failure::Usage(anyhow!(
            "the runs are not comparable:\n{}\nre-run with the same scenario and settings, or pass --allow-mismatch to judge anyway",
            list.join("\n")
        )));
    }
    let code = if cmp.passed() {
        exit::OK
    } else {
        exit::REGRESSED
    };

    let text = report::comparison::text(&cmp);
    let diff = report::comparison::summary_diff(
        &results::summary(&base),
        &results::summary(&cur),
        &base_path.display().to_string(),
        &cur_path.display().to_string(),
    );
    // The names inside a file are input like any other: they must not lead the .diff elsewhere.
    results::check_name("run name", &cur.run)
        .and_then(|_| results::check_name("scenario name", &cur.scenario))
        .map_err(|e| anyhow!("{}: {e}", cur_path.display()))
        .usage()?;
    let diff_path = cur_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("{}_{}.diff", cur.run, cur.scenario));
    let file = format!("{text}\n== summaries (unified diff) ==\n{diff}");
    write_atomic(&diff_path, file.as_bytes()).runtime()?;

    let out = match a.format {
        Format::Text => format!("{text}\n  diff written to {}", diff_path.display()),
        f => report::comparison(f, &cmp, code),
    };
    if let Some(p) = &a.report {
        write_atomic(p, out.as_bytes()).runtime()?;
    }
    crate::outln!("{out}");
    Ok(code)
}
