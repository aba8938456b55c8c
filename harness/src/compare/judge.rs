//! Judging one metric: a verdict from the two sides' observations (trials),
//! or from one run a side against the between-run noise.

use serde::Serialize;

use super::metric::MetricKind;
use super::noise::{conservative_bound, run_sampling_se, SingleNoise};
use super::stats::{self, Change, Samples};
use crate::results::RunResult;

/// Resamples per bootstrap interval.
pub const RESAMPLES: usize = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Improved,
    Regressed,
    NoSignificantChange,
    /// Fewer than three observations on a side: nothing can be judged.
    InsufficientData,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Regressed => "regressed",
            Verdict::NoSignificantChange => "no significant change",
            Verdict::InsufficientData => "insufficient data",
        }
    }
}

/// Where the observations come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// One-second windows of a single run (no longer used for verdicts: the
    /// seconds of one run move together).
    Windows,
    /// Whole trials of `--repeat` runs (between-trial variance).
    Trials,
    /// One run a side: the change against the between-run noise of runs of
    /// one commit (history), or against a conservative bound when unknown.
    SingleRuns,
}

/// Judges one run a side. With `noise` (between-run spread of the metric and
/// its degrees of freedom) the difference has spread sd * sqrt 2, judged with
/// Student's t, and never less than the two runs' own sampling error; without
/// it only a change beyond [`conservative_bound`] counts.
pub fn judge_single(
    b: Option<f64>,
    c: Option<f64>,
    m: MetricKind,
    tolerance: f64,
    noise: Option<SingleNoise>,
    alpha: f64,
    confidence: f64,
) -> Judgement {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let none = Judgement {
        change: None,
        interval: None,
        p_value: None,
        verdict: Verdict::InsufficientData,
    };
    let (Some(b), Some(c)) = (b, c) else {
        return none;
    };
    let change = m.change().of(b, c);
    let points = m.change() == Change::Points;
    if !points && (b <= 0.0 || c <= 0.0) {
        return Judgement { change, ..none };
    }
    // Judged on the log scale for ratios, in points for rates.
    let d = if points { c - b } else { (c / b).ln() };
    let to_report = |x: f64| if points { x } else { x.exp_m1() * 100.0 };
    let worse = |lo: f64, hi: f64, t: f64| {
        if m.higher_is_worse() {
            (lo > t, hi < -t)
        } else {
            (hi < -t, lo > t)
        }
    };
    let Some(noise) = noise.filter(|n| n.sd > 0.0 && n.sd.is_finite() && n.df >= 1) else {
        let bound = conservative_bound(m);
        let verdict = match worse(d, d, bound) {
            (true, _) => Verdict::Regressed,
            (_, true) => Verdict::Improved,
            _ => Verdict::InsufficientData,
        };
        return Judgement {
            change,
            interval: None,
            p_value: None,
            verdict,
        };
    };
    let n = StudentsT::new(0.0, 1.0, noise.df as f64).expect("t with df >= 1");
    let se = (noise.sd * std::f64::consts::SQRT_2).max(noise.sampling.unwrap_or(0.0));
    let z = n.inverse_cdf(1.0 - (1.0 - confidence) / 2.0);
    let (lo, hi) = (to_report(d - z * se), to_report(d + z * se));
    let p = 2.0 * (1.0 - n.cdf(d.abs() / se));
    let verdict = if p < alpha {
        match worse(lo, hi, tolerance) {
            (true, _) => Verdict::Regressed,
            (_, true) => Verdict::Improved,
            _ => Verdict::NoSignificantChange,
        }
    } else {
        Verdict::NoSignificantChange
    };
    Judgement {
        change,
        interval: Some((lo, hi)),
        p_value: Some(p),
        verdict,
    }
}

/// The outcome of judging one metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judgement {
    pub change: Option<f64>,
    pub interval: Option<(f64, f64)>,
    pub p_value: Option<f64>,
    pub verdict: Verdict,
}

/// Judges one metric from the two runs' observations.
pub fn judge(
    base: &Samples,
    cur: &Samples,
    m: MetricKind,
    tolerance: f64,
    alpha: f64,
    confidence: f64,
    seed: u64,
) -> Judgement {
    let change = match (base.statistic(), cur.statistic()) {
        (Some(b), Some(c)) => m.change().of(b, c),
        _ => None,
    };
    if base.len() < 3 || cur.len() < 3 {
        return Judgement {
            change,
            interval: None,
            p_value: None,
            verdict: Verdict::InsufficientData,
        };
    }
    let interval = stats::bootstrap_interval(base, cur, m.change(), RESAMPLES, confidence, seed);
    let p = stats::rank_test(&base.points(), &cur.points()).map(|(_, p)| p);
    let verdict = match (interval, p) {
        (Some((lo, hi)), Some(p)) if p < alpha => {
            // Worse means up for latency and errors, down for throughput and checks.
            let (worse, better) = if m.higher_is_worse() {
                (lo > tolerance, hi < -tolerance)
            } else {
                (hi < -tolerance, lo > tolerance)
            };
            if worse {
                Verdict::Regressed
            } else if better {
                Verdict::Improved
            } else {
                Verdict::NoSignificantChange
            }
        }
        (None, _) | (_, None) => Verdict::InsufficientData,
        _ => Verdict::NoSignificantChange,
    };
    Judgement {
        change,
        interval,
        p_value: p,
        verdict,
    }
}

/// The sampling error of the log ratio of two runs' percentile.
pub(super) fn sampling_pair(
    base: &RunResult,
    cur: &RunResult,
    scope: Option<&str>,
    m: MetricKind,
    confidence: f64,
) -> Option<f64> {
    use statrs::distribution::{ContinuousCDF, Normal};
    let z = Normal::new(0.0, 1.0)
        .expect("standard normal")
        .inverse_cdf(1.0 - (1.0 - confidence) / 2.0);
    let b = run_sampling_se(base, scope, m, z)?;
    let c = run_sampling_se(cur, scope, m, z)?;
    Some(b.hypot(c))
}
