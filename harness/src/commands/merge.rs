//! `loadtest merge`: the results of a split run's shards into one result, as
//! one generator would have recorded it; thresholds judged on the sum.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::exit::{self, Classify, Failure};
use crate::files::write_atomic;
use crate::results::{self, RunResult};
use crate::scenario::{self, Scenario};
use crate::shard::merge;

pub const MERGE_HELP: &str =
    "Each shard's result must come from `loadtest run --shard i/N` (or k6's segment flags) of
the same scenario file (its sha256), by a build with the same histogram settings.
Latency histograms are added (exact, not re-bucketed), counters, checks, status codes and errors
summed, seconds aligned on the shards' agreed start; thresholds are evaluated on the merged data,
each shard's own verdict is kept as information only.

Exit codes:
  0   merged; every threshold held on the merged data
  1   a shard is missing or was cut short: the result is written marked incomplete and passes no
      threshold (--allow-partial: labelled partial, judged on what is there)
  2   not shard results, shards of another scenario or split, a shard given twice
  99  a threshold is crossed on the merged data";

#[derive(clap::Args, Debug)]
pub struct MergeCmd {
    /// The shards' result files (<run>_<scenario>.json)
    #[arg(required = true, value_name = "SHARD")]
    pub shards: Vec<PathBuf>,
    /// Where to write the merged result (its .summary goes beside it)
    #[arg(short, long, value_name = "RESULT")]
    pub output: PathBuf,
    /// The scenario (name or path); default: the file the shards recorded
    #[arg(short, long)]
    pub scenario: Option<String>,
    /// Scenario folder for a scenario given by name
    #[arg(long, env = "LOADTEST_SCENARIOS_DIR", default_value = "scenarios")]
    pub scenarios_dir: PathBuf,
    /// Run name of the merged result; default: the shards' without `-shard<i>`
    #[arg(short, long)]
    pub run_name: Option<String>,
    /// Merge what is there when shards are missing: a labelled partial result, judged as it is
    #[arg(long)]
    pub allow_partial: bool,
    #[arg(short, long)]
    pub quiet: bool,
}

impl MergeCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let mut shards = Vec::new();
        for f in &self.shards {
            let r = RunResult::load(f).usage()?;
            shards.push((f.display().to_string(), r));
        }
        let path = match &self.scenario {
            Some(s) => scenario::resolve(s, &self.scenarios_dir).usage()?,
            None => {
                let p = PathBuf::from(&shards[0].1.scenario_file);
                if !p.is_file() {
                    return Err(Failure::Usage(anyhow!(
                        "{}: its scenario file {} is not here: give it with -s/--scenario",
                        shards[0].0,
                        p.display()
                    )));
                }
                p
            }
        };
        let sc = scenario::load(&path).usage()?;
        let run = self
            .run_name
            .clone()
            .unwrap_or_else(|| default_run_name(&shards[0].1.run));
        results::check_name("run name", &run).usage()?;
        let merged = merge::merge(&sc, &shards, &run, self.allow_partial).usage()?;
        finish(&merged, &self.output, self.allow_partial, self.quiet)
    }
}

/// `base-shard2` -> `base`.
pub fn default_run_name(shard_run: &str) -> String {
    match shard_run.rsplit_once("-shard") {
        Some((base, i)) if !base.is_empty() && i.chars().all(|c| c.is_ascii_digit()) => base.into(),
        _ => "merged".into(),
    }
}

/// Writes a merged result and its summary, prints the summary, and says
/// what it comes to as an exit code.
pub fn finish(r: &RunResult, out: &Path, partial: bool, quiet: bool) -> Result<u8, Failure> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::Usage(anyhow!("cannot create {}: {e}", dir.display())))?;
    }
    let text = results::summary(r);
    write_atomic(out, r.to_json().as_bytes()).runtime()?;
    let summary = out.with_extension("summary");
    write_atomic(&summary, text.as_bytes()).runtime()?;
    if !quiet {
        crate::outln!("{text}");
        crate::outln!("  results: {}", out.display());
        crate::outln!("           {}", summary.display());
    }
    let m = r.merged.as_ref().expect("a merged result");
    if !m.missing.is_empty() {
        let names: Vec<String> = m.missing.iter().map(|i| i.to_string()).collect();
        crate::errln!(
            "incomplete: shard(s) {} of {} missing or cut short{}",
            names.join(", "),
            m.count,
            if partial {
                "; judged on what is there (--allow-partial)"
            } else {
                ": no threshold passes on an incomplete sum (--allow-partial judges what is there)"
            }
        );
        if !partial {
            return Ok(exit::RUNTIME);
        }
    }
    if r.thresholds.iter().any(|t| !t.ok) {
        let crossed = r.crossed_thresholds();
        crate::errln!(
            "thresholds crossed on the merged data: {}",
            crossed.join("; ")
        );
        return Ok(exit::THRESHOLDS);
    }
    Ok(exit::OK)
}

/// The scenario of a split run, loaded once by whoever merges.
pub fn load_scenario(name: &str, dir: &Path) -> Result<(PathBuf, Scenario), Failure> {
    let path = scenario::resolve(name, dir).usage()?;
    if scenario::is_script(&path) {
        return Err(Failure::Usage(anyhow!(
            "{}: a k6 script is split by k6 itself (`loadtest run --shard`); merging k6 shards is not available yet",
            path.display()
        )));
    }
    let sc = scenario::load(&path).usage()?;
    Ok((path, sc))
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_names_lose_their_shard_suffix() {
        assert_eq!(super::default_run_name("nightly-shard3"), "nightly");
        assert_eq!(super::default_run_name("baseline"), "merged");
        assert_eq!(super::default_run_name("-shard1"), "merged");
    }
}
