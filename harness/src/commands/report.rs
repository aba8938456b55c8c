//! `loadtest report`: one self-contained HTML file from a result file (with a
//! baseline's comparison when given) or from an A/B result.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::compare::ab::AbResult;
use crate::compare::GateConfig;
use crate::exit::{self, Classify, Failure};
use crate::files::write_atomic;
use crate::results::RunResult;

pub const REPORT_HELP: &str = "RESULT is a run's result (<run>_<scenario>.json) or an A/B result (ab_<scenario>_<base>_<head>.json).

The page works offline: styles, data and the chart drawing are inside the file, nothing is fetched.
With --baseline, the comparison `loadtest compare BASE RESULT` would make is shown with its intervals, and
the baseline's latency distribution and timeline are drawn beside the run's.

Exit codes:
  0   written
  2   unusable input: missing or corrupt file, unknown schema_version, a baseline given for an A/B result";

#[derive(clap::Args, Debug)]
pub struct ReportCmd {
    /// A result file, or an A/B result file
    pub result: PathBuf,
    /// A baseline result to compare with (run results only)
    #[arg(short, long)]
    pub baseline: Option<PathBuf>,
    /// Where to write (default: RESULT with .html)
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Tolerances and gates for the comparison (default: config/regression.toml if present)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// An A/B result printed as `ab --format` would (e.g. github, gitlab: the pull-request
    /// comment again, pointing at RESULT's .html when it exists) instead of the HTML page
    #[arg(short, long, value_enum)]
    pub format: Option<crate::report::Format>,
}

impl ReportCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let text = std::fs::read_to_string(&self.result)
            .map_err(|e| anyhow!("cannot read {}: {e}", self.result.display()))
            .usage()?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{} is not valid JSON: {e}", self.result.display()))
            .usage()?;
        let is_ab = matches!(
            v.get("kind").and_then(|k| k.as_str()),
            Some("ab" | "calibration")
        );
        if self.format.is_some() && !is_ab {
            return Err(Failure::Usage(anyhow!(
                "--format is for A/B results; {} is a run's result: `loadtest compare BASE {}` prints it in a format",
                self.result.display(),
                self.result.display()
            )));
        }
        let page = if is_ab {
            if self.baseline.is_some() {
                return Err(Failure::Usage(anyhow!(
                    "{} is an A/B result: it holds both sides already; --baseline is for run results",
                    self.result.display()
                )));
            }
            let r: AbResult = serde_json::from_value(v)
                .map_err(|e| anyhow!("{}: malformed A/B result: {e}", self.result.display()))
                .usage()?;
            if let Some(format) = self.format {
                return self.print(format, &r);
            }
            crate::report::html::ab_report(&r).runtime()?
        } else {
            let cur = RunResult::load(&self.result).usage()?;
            match &self.baseline {
                None => crate::report::html::run_report(&cur, None).runtime()?,
                Some(bp) => {
                    let base = RunResult::load(bp).usage()?;
                    let cfg = match &self.config {
                        Some(p) => GateConfig::load(p, true),
                        None => GateConfig::load(Path::new("config/regression.toml"), false),
                    }
                    .usage()?;
                    let cmp = super::compare::comparison(bp, &self.result, &base, &cur, &cfg);
                    crate::report::html::run_report(&cur, Some((&base, &cmp))).runtime()?
                }
            }
        };
        let out = self
            .output
            .clone()
            .unwrap_or_else(|| self.result.with_extension("html"));
        write_atomic(&out, page.as_bytes()).runtime()?;
        crate::outln!("report: {}", out.display());
        Ok(exit::OK)
    }
}

impl ReportCmd {
    /// An A/B result in a text format, to standard output or `--output`.
    fn print(&self, format: crate::report::Format, r: &AbResult) -> Result<u8, Failure> {
        use crate::report::comment::{comment, Host, ReportLink};
        use crate::report::Format;
        let host = match format {
            Format::Github => Some(Host::Github),
            Format::Gitlab => Some(Host::Gitlab),
            _ => None,
        };
        let text = match host {
            Some(host) => {
                let html = self.result.with_extension("html");
                let link = html.is_file().then(|| {
                    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                    ReportLink::from_ci(host, &html.display().to_string(), env)
                });
                comment(r, host, link.as_ref())
            }
            None => crate::report::ab(format, r),
        };
        match &self.output {
            Some(out) => {
                write_atomic(out, text.as_bytes()).runtime()?;
                crate::outln!("report: {}", out.display());
            }
            None => crate::outln!("{text}"),
        }
        Ok(exit::OK)
    }
}
