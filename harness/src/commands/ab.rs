//! `loadtest ab`: the pre-merge check, A = the service built from a git ref,
//! B = the working tree. Its flags and what it prints; the trials themselves
//! are `ab::trials`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;

use crate::ab::{self, git, Context, Mode, Plan};
use crate::compare::ab::{AbResult, AbSettings, JudgeSettings, Kind, SideInfo};
use crate::compare::GateConfig;
use crate::exit::{Classify, Failure};
use crate::files::write_atomic;
use crate::results;

use crate::report::{self, ab::short, Format};

pub const AB_HELP: &str = "A is the service built from --base (default: the commit of benchmark/baseline_<scenario>.json
when git has it, else the merge-base with the default branch); B is the working tree, uncommitted changes
included. Both run at once on one stack, each on its own port, in new containers every block. Trials come in
randomized ABBA/BAAB blocks (by default the two trials of a pair run at the same time: --mode duet),
the database reset from its template before each, a warm-up before each that is not measured. Every gated metric
(config/regression.toml) is judged on the paired trials: a bootstrap interval of the B/A ratio and an exact
sign-flip permutation test; it regressed when significant (p < alpha) and the whole interval lies beyond its
tolerance. While neither shown worse nor within the tolerances, blocks are added up to --max-trials/--budget.
With benchmark/calibration_<scenario>.json (`loadtest calibrate`) the tolerances follow the measured noise.

Exit codes:
  0   no gate is worse beyond its tolerance
  1   runtime error or interrupted (Ctrl-C); the trials so far are written
  2   usage error, a ref that does not exist or does not build (nothing is left running)
  97  undecided: the trials ran out before a verdict (the report says the smallest detectable change)
  98  at least one gate regressed";

#[derive(clap::Args, Debug, Clone)]
pub struct TrialArgs {
    /// Scenario name or path (default: LOADTEST_SCENARIO, else health)
    #[arg(short, long)]
    pub scenario: Option<String>,
    /// Measured length of one trial (default: the scenario's [ab] duration, else 15s)
    #[arg(long, value_parser = super::parse_duration)]
    pub duration: Option<Duration>,
    /// Unmeasured load before each trial (default: the scenario's [ab] warmup, else 5s)
    #[arg(long, value_parser = super::parse_duration)]
    pub warmup: Option<Duration>,
    /// Seed of the block order (default: from the clock; recorded in the result)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Settings file
    #[arg(long, default_value_os_t = crate::config::default_path())]
    pub config: PathBuf,
    #[arg(long, default_value = ".env")]
    pub env_file: PathBuf,
    /// Take the stack down afterwards (default: leave it up)
    #[arg(long)]
    pub down: bool,
    /// No progress lines
    #[arg(short, long)]
    pub quiet: bool,
    /// How the sides share the machine: `duet` loads A and B at the same time (interference
    /// hits both alike), `alternate` runs one trial at a time
    #[arg(long, value_enum, default_value = "duet")]
    pub mode: Mode,
    /// Serve a live page (default 127.0.0.1:5665; PORT or HOST:PORT): trials as they complete,
    /// A beside B, the verdict so far, a Stop button
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    pub web: Option<String>,
    /// NAME=VALUE for a k6 script's __ENV (repeatable), as `k6 run -e`
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = super::run::parse_env_pair)]
    pub env: Vec<(String, String)>,
}

impl TrialArgs {
    pub fn options(&self) -> ab::Options {
        ab::Options {
            scenario: self.scenario.clone(),
            duration: self.duration,
            warmup: self.warmup,
            seed: self.seed,
            config: self.config.clone(),
            env_file: self.env_file.clone(),
            down: self.down,
            quiet: self.quiet,
            mode: self.mode,
            web: self.web.clone(),
            env: self.env.clone(),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct AbCmd {
    /// Git ref of A, the base (a branch, tag or commit)
    #[arg(long)]
    pub base: Option<String>,
    #[command(flatten)]
    pub t: TrialArgs,
    /// Trials before the first verdict (rounded up to blocks of 4)
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(4..=400))]
    pub trials: u32,
    /// Most trials while undecided (rounded up to blocks of 4)
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(4..=400))]
    pub max_trials: u32,
    /// Most wall time for the trials; no block is started that would end past it
    #[arg(long, default_value = "10m", value_parser = super::parse_duration)]
    pub budget: Duration,
    /// What to print
    #[arg(short, long, value_enum, default_value = "text")]
    pub format: Format,
    /// Tolerances and gates (default: config/regression.toml)
    #[arg(long, default_value = "config/regression.toml")]
    pub gates: PathBuf,
    /// Calibration to set tolerances from (default: benchmark/calibration_<scenario>.json when present)
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Use the configured tolerances even when a calibration exists
    #[arg(long)]
    pub no_calibration: bool,
    /// Also write the printed report to this file
    #[arg(long)]
    pub report: Option<PathBuf>,
}

impl AbCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        if self.max_trials < self.trials {
            return Err(Failure::Usage(anyhow!(
                "--max-trials {} is below --trials {}",
                self.max_trials,
                self.trials
            )));
        }
        let ctx = Context::load(&self.t.options())?;
        let gates = GateConfig::load(&self.gates, false).usage()?;
        let calibration = if self.no_calibration {
            None
        } else {
            let path = self.calibration.clone().unwrap_or_else(|| {
                results::result_path(&ctx.cfg.results, "calibration", &ctx.scenario, "json")
            });
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let c: AbResult = serde_json::from_str(&text).map_err(|e| {
                        Failure::Usage(anyhow!("{}: not a calibration file: {e}", path.display()))
                    })?;
                    if c.kind != Kind::Calibration || c.scenario != ctx.scenario {
                        return Err(Failure::Usage(anyhow!(
                            "{}: holds a {} of scenario `{}`, not a calibration of `{}`",
                            path.display(),
                            c.kind.name(),
                            c.scenario,
                            ctx.scenario
                        )));
                    }
                    Some((path, c.noise))
                }
                Err(_) if self.calibration.is_none() => None,
                Err(e) => {
                    return Err(Failure::Usage(anyhow!(
                        "cannot read {}: {e}",
                        path.display()
                    )))
                }
            }
        };

        // The two sources, both resolved before anything is built.
        let (head_sha, dirty) = git::head(&ctx.repo).usage()?;
        let head_commit = if dirty {
            format!("{head_sha}-dirty")
        } else {
            head_sha.clone()
        };
        let (base_ref, base_sha) = match &self.base {
            Some(r) => (r.clone(), git::resolve(&ctx.repo, r).usage()?),
            None => ctx.default_base()?,
        };
        ctx.say(&format!(
            "ab: A = {} ({base_ref}), B = {} (working tree)",
            short(&base_sha),
            short(&head_commit)
        ));
        let head = ctx.build_head(&head_commit)?;
        let base = ctx.build_base(&base_ref, &base_sha)?;

        let settings = AbSettings {
            // 0 for a k6 script: its trial is the script as written.
            trial_s: if ctx.script {
                0.0
            } else {
                ctx.duration.as_secs_f64()
            },
            warmup_s: ctx.warmup.as_secs_f64(),
            min_trials: round_blocks(self.trials),
            max_trials: round_blocks(self.max_trials),
            budget_s: self.budget.as_secs_f64(),
            alpha: gates.alpha(),
            seed: ctx.seed,
            apps: ctx.apps_text(),
            tolerances: match &calibration {
                Some((p, _)) => format!("calibrated ({})", p.display()),
                None => format!("configured ({})", self.gates.display()),
            },
        };
        let out_path = results::result_path(
            &ctx.cfg.results,
            &format!("ab_{}", ctx.scenario),
            &format!("{}_{}", short(&base_sha), short(&head_commit)),
            "json",
        );
        let judge = JudgeSettings {
            gates: &gates,
            scenario: &ctx.scenario,
            alpha: gates.alpha(),
            noise: calibration.as_ref().map(|(_, n)| n),
            max_pairs: round_blocks(self.max_trials) / 2,
        };
        let result = ctx.trials(Plan {
            base: SideInfo {
                reference: base_ref,
                ..base
            },
            head,
            settings,
            judge: &judge,
            out: &out_path,
            kind: Kind::Ab,
        })?;
        let printed = match self.format {
            Format::Github | Format::Gitlab => self.comment(&ctx, &result, &out_path)?,
            f => report::ab(f, &result),
        };
        crate::outln!("{printed}");
        if let Some(p) = &self.report {
            write_atomic(p, printed.as_bytes()).runtime()?;
        }
        ctx.say(&format!("ab: every trial is in {}", out_path.display()));
        Ok(result.exit_code)
    }
}

impl AbCmd {
    /// The pull-request comment: the HTML report written beside the result
    /// first (the comment points at it), and under GitHub Actions the same
    /// text appended to the job's summary.
    fn comment(&self, ctx: &Context, r: &AbResult, json: &Path) -> Result<String, Failure> {
        use report::comment::{comment, Host, ReportLink};
        let host = if self.format == Format::Github {
            Host::Github
        } else {
            Host::Gitlab
        };
        let html_path = json.with_extension("html");
        let page = report::html::ab_report(r).runtime()?;
        write_atomic(&html_path, page.as_bytes()).runtime()?;
        let shown = html_path
            .strip_prefix(&ctx.repo)
            .unwrap_or(&html_path)
            .display()
            .to_string();
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let link = ReportLink::from_ci(host, &shown, env);
        let text = comment(r, host, Some(&link));
        if host == Host::Github {
            if let Some(summary) = env("GITHUB_STEP_SUMMARY") {
                append(Path::new(&summary), &text).map_err(|e| {
                    Failure::Runtime(anyhow!(
                        "cannot append the verdict to $GITHUB_STEP_SUMMARY ({summary}): {e}"
                    ))
                })?;
            }
        }
        Ok(text)
    }
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}

fn round_blocks(n: u32) -> usize {
    (n as usize).div_ceil(4) * 4
}
