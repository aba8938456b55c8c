//! `loadtest calibrate`: A/A trials of the working tree against itself,
//! interleaved as `loadtest ab` does. Measures how much one pair of trials
//! varies per metric and writes benchmark/calibration_<scenario>.json, from
//! which `ab` and `compare` take their tolerances.

use crate::ab::{Context, Plan};
use crate::compare::ab::{AbSettings, JudgeSettings, Kind, SideInfo};
use crate::compare::GateConfig;
use crate::exit::{Classify, Failure};
use crate::results;

use super::ab::TrialArgs;

pub const CALIBRATE_HELP: &str = "Both sides are the working tree's build, each in its own container; trials alternate in
ABBA/BAAB blocks with the database reset before each, exactly as `loadtest ab` runs them. For every metric the
spread of one pair's B/A log-ratio is recorded; `ab` then raises a configured tolerance to the smallest change
its --max-trials can detect (5% significance, 80% power) where that is larger, and `compare` (one run a side) uses it to decide whether a change stands out of the between-run noise.";

#[derive(clap::Args, Debug)]
pub struct CalibrateCmd {
    #[command(flatten)]
    pub t: TrialArgs,
    /// Trials (rounded up to blocks of 4)
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(8..=400))]
    pub trials: u32,
}

impl CalibrateCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let ctx = Context::load(&self.t.options())?;
        let gates = GateConfig::default();
        let (sha, dirty) = crate::ab::git::head(&ctx.repo).usage()?;
        let commit = if dirty { format!("{sha}-dirty") } else { sha };
        let head = ctx.build_head(&commit)?;
        let n = (self.trials as usize).div_ceil(4) * 4;
        let settings = AbSettings {
            // 0 for a k6 script: its trial is the script as written.
            trial_s: if ctx.script {
                0.0
            } else {
                ctx.duration.as_secs_f64()
            },
            warmup_s: ctx.warmup.as_secs_f64(),
            min_trials: n,
            max_trials: n,
            budget_s: f64::MAX,
            alpha: gates.alpha(),
            seed: ctx.seed,
            apps: format!("{} (same image)", ctx.apps_text()),
            tolerances: "configured (built-in)".into(),
        };
        let out = results::result_path(&ctx.cfg.results, "calibration", &ctx.scenario, "json");
        let judge = JudgeSettings {
            gates: &gates,
            scenario: &ctx.scenario,
            alpha: gates.alpha(),
            noise: None,
            max_pairs: n / 2,
        };
        let base = SideInfo {
            reference: "working tree (A/A)".into(),
            ..head.clone()
        };
        let r = ctx.trials(Plan {
            base,
            head,
            settings,
            judge: &judge,
            out: &out,
            kind: Kind::Calibration,
        })?;
        let pairs = r.trials.len() / 2;
        let mut text = format!(
            "calibration of {}: {} trials of {:.0}s ({} pairs), the same build on both sides\n",
            r.scenario,
            r.trials.len(),
            r.settings.trial_s,
            pairs
        );
        for (scope, metrics) in &r.noise {
            for (metric, sd) in metrics {
                let points = matches!(metric.as_str(), "error_rate" | "checks_rate");
                // What `ab` with its default 32 trials (16 pairs) can tell apart.
                let d = crate::compare::ab::detectable(*sd, 16, gates.alpha());
                let (spread, tol) = if points {
                    (format!("{sd:.2} pt"), format!("{d:.2} pt"))
                } else {
                    (
                        format!("{:.1}%", sd.exp_m1() * 100.0),
                        format!("{:.1}%", d.exp_m1() * 100.0),
                    )
                };
                let aa = r
                    .metrics
                    .iter()
                    .find(|m| &m.scope == scope && &m.metric == metric)
                    .map(|m| format!(", A/A change {}", crate::report::ab::sentence(m)))
                    .unwrap_or_default();
                text.push_str(&format!(
                    "  {scope:<16} {metric:<12} one pair varies by {spread} (sd); 32 trials detect {tol}{aa}\n"
                ));
            }
        }
        text.push_str(&format!("written: {}", out.display()));
        crate::outln!("{text}");
        Ok(r.exit_code)
    }
}
