//! How much a metric varies where no trials say it: between whole runs of
//! one commit (the history), and the sampling error of one run's percentile.

use serde::Serialize;

use super::metric::MetricKind;
use crate::results::RunResult;

/// How much whole runs of one commit vary, per metric key: the standard
/// deviation of ln(value) (points for rates), from `history.jsonl`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunNoise {
    /// Where it was measured, for the report.
    pub source: String,
    /// Runs it rests on.
    pub runs: usize,
    pub sd: std::collections::BTreeMap<String, f64>,
    /// Degrees of freedom behind each `sd` (runs less groups): few runs give
    /// an uncertain spread, judged with Student's t rather than the normal.
    pub df: std::collections::BTreeMap<String, usize>,
}

/// What one run a side is judged against, for one metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SingleNoise {
    /// Between-run standard deviation (log scale; points for rates).
    pub sd: f64,
    /// Its degrees of freedom.
    pub df: usize,
    /// The two runs' own sampling error of the statistic (log scale), when
    /// known: a spread measured on a few runs that agreed by chance must not
    /// claim more precision than the percentiles of the runs themselves have.
    pub sampling: Option<f64>,
}

/// Without a measured noise, one run a side regresses only beyond these
/// changes of the ratio (rates: points). Two runs of one commit on fresh stacks
/// differed here by up to 36% in req/s and 47% in p95 (six runs, 30 pairs);
/// tails of short runs on a busy machine by more (p95 +52% against a local
/// server that did not change).
pub fn conservative_bound(m: MetricKind) -> f64 {
    match m {
        MetricKind::P99 | MetricKind::Max => 3f64.ln(),
        MetricKind::P90 | MetricKind::P95 => 2f64.ln(),
        MetricKind::ErrorRate | MetricKind::ChecksRate => 5.0,
        _ => 1.5f64.ln(),
    }
}

/// Between-run noise from the history lines of a scenario: the pooled spread
/// of runs that share a commit (at least 3 runs in groups of 2 or more),
/// leaving out the runs being compared (`exclude`: their result files).
pub fn run_noise(
    lines: &[crate::results::history::HistoryLine],
    exclude: &[std::path::PathBuf],
) -> Option<RunNoise> {
    let same_file = |f: &str| {
        let p = std::path::Path::new(f);
        let canon = p.canonicalize().ok();
        exclude
            .iter()
            .any(|x| x == p || (canon.is_some() && x.canonicalize().ok() == canon))
    };
    let mut groups: std::collections::BTreeMap<String, Vec<&crate::results::history::HistoryLine>> =
        Default::default();
    for l in lines
        .iter()
        .filter(|l| !l.interrupted && l.trials <= 1 && !same_file(&l.file))
    {
        if let Some(c) = &l.commit {
            // Runs of a dirty tree count together only with each other.
            let key = format!("{c}{}", if l.dirty { "-dirty" } else { "" });
            groups.entry(key).or_default().push(l);
        }
    }
    let groups: Vec<_> = groups.into_values().filter(|g| g.len() >= 2).collect();
    let runs: usize = groups.iter().map(|g| g.len()).sum();
    if runs < 3 {
        return None;
    }
    type Pick = fn(&crate::results::history::HistoryLine) -> Option<f64>;
    let metrics: [(&str, Pick); 6] = [
        ("rps", |l| (l.rps > 0.0).then(|| l.rps.ln())),
        ("p50", |l| (l.p50 > 0.0).then(|| l.p50.ln())),
        ("p95", |l| (l.p95 > 0.0).then(|| l.p95.ln())),
        ("p99", |l| (l.p99 > 0.0).then(|| l.p99.ln())),
        ("error_rate", |l| Some(l.error_rate * 100.0)),
        ("checks_rate", |l| Some(l.checks_rate * 100.0)),
    ];
    let mut sd = std::collections::BTreeMap::new();
    let mut dfs = std::collections::BTreeMap::new();
    for (key, pick) in metrics {
        let (mut ss, mut df) = (0.0, 0usize);
        for g in &groups {
            let v: Vec<f64> = g.iter().filter_map(|l| pick(l)).collect();
            if v.len() < 2 {
                continue;
            }
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            ss += v.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
            df += v.len() - 1;
        }
        if df >= 2 {
            sd.insert(key.to_string(), (ss / df as f64).sqrt());
            dfs.insert(key.to_string(), df);
        }
    }
    Some(RunNoise {
        source: "history.jsonl: runs of one commit".into(),
        runs,
        sd,
        df: dfs,
    })
}

/// The sampling error, on the log scale, of a run's percentile `q` (0..1)
/// from its histogram: the distribution-free interval of a quantile (order
/// statistics at ranks n*q -/+ z*sqrt(n*q*(1-q))), its log width over 2z.
/// A p99 of 600 requests rests on its 6 slowest: this says how loosely.
pub fn quantile_log_se(h: &hdrhistogram::Histogram<u64>, q: f64, z: f64) -> Option<f64> {
    let n = h.len() as f64;
    if n < 2.0 || !(0.0..1.0).contains(&q) || z <= 0.0 {
        return None;
    }
    let half = z * (n * q * (1.0 - q)).sqrt();
    let lo_rank = (n * q - half).floor().max(1.0);
    let hi_rank = (n * q + half + 1.0).ceil().min(n);
    let lo = h.value_at_quantile(lo_rank / n) as f64;
    let hi = h.value_at_quantile(hi_rank / n) as f64;
    if lo <= 0.0 || hi < lo {
        return None;
    }
    Some((hi / lo).ln() / (2.0 * z))
}

/// The sampling error of a run's percentile for one scope (None: all
/// requests together), from the histograms stored in the result.
pub fn run_sampling_se(r: &RunResult, request: Option<&str>, m: MetricKind, z: f64) -> Option<f64> {
    let q = match m {
        MetricKind::P50 => 0.5,
        MetricKind::P90 => 0.9,
        MetricKind::P95 => 0.95,
        MetricKind::P99 => 0.99,
        _ => return None,
    };
    let h = match request {
        Some(n) => r.histogram(n).ok()?,
        None => {
            let mut all: Option<hdrhistogram::Histogram<u64>> = None;
            for name in r.requests.keys() {
                let h = r.histogram(name).ok()?;
                match &mut all {
                    None => all = Some(h),
                    Some(a) => a.add(&h).ok()?,
                }
            }
            all?
        }
    };
    quantile_log_se(&h, q, z)
}
