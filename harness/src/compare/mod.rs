//! Baseline vs current: per request name and overall, each metric gets a
//! change with a bootstrap confidence interval, a rank-test p-value and a
//! verdict. A metric regresses only when the change is significant **and** the
//! whole interval lies beyond its tolerance in the bad direction.

pub mod config;
pub mod paired;
pub mod stats;

use serde::Serialize;

use crate::results::{Figures, RunResult};
pub use config::GateConfig;
use stats::{Change, Samples};

/// Resamples per bootstrap interval.
pub const RESAMPLES: usize = 2000;
/// Fixed so that comparing the same two files always prints the same thing.
const SEED: u64 = 0x10ad_7e57;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Rps,
    P50,
    P90,
    P95,
    P99,
    Max,
    Mean,
    ErrorRate,
    ChecksRate,
}

impl MetricKind {
    pub const ALL: [MetricKind; 9] = [
        MetricKind::Rps,
        MetricKind::P50,
        MetricKind::P90,
        MetricKind::P95,
        MetricKind::P99,
        MetricKind::Max,
        MetricKind::Mean,
        MetricKind::ErrorRate,
        MetricKind::ChecksRate,
    ];

    pub fn key(self) -> &'static str {
        match self {
            MetricKind::Rps => "rps",
            MetricKind::P50 => "p50",
            MetricKind::P90 => "p90",
            MetricKind::P95 => "p95",
            MetricKind::P99 => "p99",
            MetricKind::Max => "max",
            MetricKind::Mean => "mean",
            MetricKind::ErrorRate => "error_rate",
            MetricKind::ChecksRate => "checks_rate",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            MetricKind::Rps => "req/s",
            MetricKind::P50 => "p50 (ms)",
            MetricKind::P90 => "p90 (ms)",
            MetricKind::P95 => "p95 (ms)",
            MetricKind::P99 => "p99 (ms)",
            MetricKind::Max => "max (ms)",
            MetricKind::Mean => "mean (ms)",
            MetricKind::ErrorRate => "error rate",
            MetricKind::ChecksRate => "checks rate",
        }
    }

    pub fn parse(s: &str) -> Result<MetricKind, String> {
        MetricKind::ALL
            .into_iter()
            .find(|m| m.key() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = MetricKind::ALL.iter().map(|m| m.key()).collect();
                format!("unknown metric `{s}` (known: {})", known.join(", "))
            })
    }

    /// Built-in tolerance: percent, or percentage points for rates.
    pub fn default_tolerance(self) -> f64 {
        match self {
            MetricKind::P99 | MetricKind::Max => 10.0,
            MetricKind::ErrorRate | MetricKind::ChecksRate => 0.5,
            _ => 5.0,
        }
    }

    /// Whether a larger value is worse (latency, errors) or better (throughput, checks).
    pub fn higher_is_worse(self) -> bool {
        !matches!(self, MetricKind::Rps | MetricKind::ChecksRate)
    }

    pub fn change(self) -> Change {
        match self {
            MetricKind::ErrorRate | MetricKind::ChecksRate => Change::Points,
            _ => Change::Percent,
        }
    }

    fn of_figures(self, f: &Figures) -> f64 {
        match self {
            MetricKind::Rps => f.rps,
            MetricKind::P50 => f.p50,
            MetricKind::P90 => f.p90,
            MetricKind::P95 => f.p95,
            MetricKind::P99 => f.p99,
            MetricKind::Max => f.max,
            MetricKind::Mean => f.mean,
            MetricKind::ErrorRate => ratio(f.failures, f.requests),
            MetricKind::ChecksRate => ratio(f.checks_passes, f.checks_passes + f.checks_fails),
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b > 0 {
        a as f64 / b as f64
    } else {
        0.0
    }
}

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

#[derive(Clone, Debug, Serialize)]
pub struct MetricVerdict {
    pub metric: MetricKind,
    /// Whole-run figures (percent for rates).
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    /// Change of the judged statistic: percent, or percentage points for rates.
    pub change: Option<f64>,
    pub interval: Option<(f64, f64)>,
    pub p_value: Option<f64>,
    /// The tolerance applied: the configured one, raised for fast requests to
    /// cover `min_change_ms`.
    pub tolerance: f64,
    pub gate: bool,
    pub verdict: Verdict,
    pub n_baseline: usize,
    pub n_current: usize,
}

impl MetricVerdict {
    pub fn regressed_gate(&self) -> bool {
        self.gate && self.verdict == Verdict::Regressed
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ScopeComparison {
    /// `None` for all requests together.
    pub request: Option<String>,
    pub metrics: Vec<MetricVerdict>,
}

impl ScopeComparison {
    pub fn title(&self) -> &str {
        self.request.as_deref().unwrap_or("overall")
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RunRef {
    pub run: String,
    pub file: String,
    pub commit: Option<String>,
    pub started_at: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub scenario: String,
    pub baseline: RunRef,
    pub current: RunRef,
    pub method: Method,
    pub alpha: f64,
    pub confidence: f64,
    pub resamples: usize,
    pub scopes: Vec<ScopeComparison>,
    /// The between-run noise single runs were judged against, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<RunNoise>,
    /// Differences that make the runs hard to compare (accepted with --allow-mismatch).
    pub mismatches: Vec<String>,
    /// Reasons to distrust a run's figures.
    pub warnings: Vec<String>,
}

impl Comparison {
    pub fn regressed_gates(&self) -> Vec<(&ScopeComparison, &MetricVerdict)> {
        self.scopes
            .iter()
            .flat_map(|s| s.metrics.iter().map(move |m| (s, m)))
            .filter(|(_, m)| m.regressed_gate())
            .collect()
    }

    pub fn passed(&self) -> bool {
        self.regressed_gates().is_empty()
    }
}

/// What makes two runs incomparable: scenario, executor settings, thresholds.
pub fn mismatches(base: &RunResult, cur: &RunResult) -> Vec<String> {
    let mut out = Vec::new();
    if base.scenario != cur.scenario {
        out.push(format!("scenario: {} vs {}", base.scenario, cur.scenario));
    }
    if base.scenario_sha256 != cur.scenario_sha256 {
        out.push(format!(
            "scenario file changed (sha256 {}… vs {}…)",
            &base.scenario_sha256[..12.min(base.scenario_sha256.len())],
            &cur.scenario_sha256[..12.min(cur.scenario_sha256.len())]
        ));
    }
    let (bo, co) = (base.options.as_object(), cur.options.as_object());
    if let (Some(bo), Some(co)) = (bo, co) {
        let mut keys: Vec<&String> = bo.keys().chain(co.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let (a, b) = (bo.get(k), co.get(k));
            if a != b {
                let show = |v: Option<&serde_json::Value>| {
                    v.map(|v| v.to_string()).unwrap_or_else(|| "unset".into())
                };
                out.push(format!("options.{k}: {} vs {}", show(a), show(b)));
            }
        }
    }
    let th = |r: &RunResult| -> Vec<String> {
        r.thresholds
            .iter()
            .map(|t| format!("{}: {}", t.metric, t.expression))
            .collect()
    };
    if th(base) != th(cur) {
        out.push(format!(
            "thresholds: [{}] vs [{}]",
            th(base).join("; "),
            th(cur).join("; ")
        ));
    }
    if base.trials.len().max(1) != cur.trials.len().max(1) {
        out.push(format!(
            "trials (--repeat): {} vs {}",
            base.trials.len().max(1),
            cur.trials.len().max(1)
        ));
    }
    out
}

/// Reasons to distrust a run's figures, named by role (baseline/current).
pub fn warnings(role: &str, r: &RunResult) -> Vec<String> {
    let mut w = Vec::new();
    let m = &r.metrics;
    if r.interrupted {
        w.push(format!(
            "{role} run was interrupted (Ctrl-C): its figures cover part of the plan"
        ));
    }
    if let Some(t) = &r.aborted_by {
        w.push(format!("{role} run was aborted by threshold `{t}`"));
    }
    if m.dropped_iterations.count > 0 {
        w.push(format!(
            "{role} run dropped {} iterations: the VU pool or the load generator fell behind the schedule, so throughput understates the offered load",
            m.dropped_iterations.count
        ));
    }
    if r.loadgen.cpu_saturation > 0.85 {
        w.push(format!(
            "{role} run: the loadtest process used {:.0}% of the machine's CPU; latencies include its own queueing",
            r.loadgen.cpu_saturation * 100.0
        ));
    }
    if m.http_req_failed.rate > 0.05 {
        w.push(format!(
            "{role} run: {:.1}% of requests failed, so latencies describe mostly error responses",
            m.http_req_failed.rate * 100.0
        ));
    }
    w
}

/// Observations of a metric: per trial when the run has trials, else per one-second window.
pub fn samples(r: &RunResult, request: Option<&str>, m: MetricKind) -> Samples {
    if r.trials.len() >= 2 {
        let figs: Vec<&Figures> = r
            .trials
            .iter()
            .filter_map(|t| match request {
                Some(n) => t.requests.get(n),
                None => Some(&t.overall),
            })
            .collect();
        return match m {
            MetricKind::ErrorRate => Samples::Ratios(
                figs.iter()
                    .map(|f| (f.failures as f64, f.requests as f64))
                    .collect(),
            ),
            MetricKind::ChecksRate => Samples::Ratios(
                figs.iter()
                    .filter(|f| f.checks_passes + f.checks_fails > 0)
                    .map(|f| {
                        (
                            f.checks_passes as f64,
                            (f.checks_passes + f.checks_fails) as f64,
                        )
                    })
                    .collect(),
            ),
            _ => Samples::Values(
                figs.iter()
                    .filter(|f| f.requests > 0 || m == MetricKind::Rps)
                    .map(|f| m.of_figures(f))
                    .collect(),
            ),
        };
    }
    let rows = r.timeline.iter().filter_map(|e| {
        let w = match request {
            None => e.overall(),
            Some(n) => e.by_request.get(n)?.clone(),
        };
        Some((e, w))
    });
    match m {
        // A window much shorter than a second says little about a rate.
        MetricKind::Rps => Samples::Values(
            rows.filter(|(e, _)| e.span_s >= 0.5)
                .map(|(e, w)| w.requests as f64 / e.span_s)
                .collect(),
        ),
        MetricKind::ErrorRate => Samples::Ratios(
            rows.filter(|(_, w)| w.requests > 0)
                .map(|(_, w)| (w.failures as f64, w.requests as f64))
                .collect(),
        ),
        MetricKind::ChecksRate => Samples::Ratios(
            rows.filter(|(_, w)| w.checks_passes + w.checks_fails > 0)
                .map(|(_, w)| {
                    let n = w.checks_passes + w.checks_fails;
                    (w.checks_passes as f64, n as f64)
                })
                .collect(),
        ),
        _ => Samples::Values(
            rows.filter_map(|(_, w)| match m {
                MetricKind::P50 => w.p50,
                MetricKind::P90 => w.p90,
                MetricKind::P95 => w.p95,
                MetricKind::P99 => w.p99,
                MetricKind::Max => w.max,
                _ => w.mean,
            })
            .collect(),
        ),
    }
}

/// The whole-run figure shown in tables (rates as percent).
pub fn headline(r: &RunResult, request: Option<&str>, m: MetricKind) -> Option<f64> {
    let (reqs, dur, failed, checks) = match request {
        None => (
            &r.metrics.http_reqs,
            &r.metrics.http_req_duration,
            &r.metrics.http_req_failed,
            (r.metrics.checks.passes, r.metrics.checks.fails),
        ),
        Some(n) => {
            let q = r.requests.get(n)?;
            let c = q
                .checks
                .iter()
                .fold((0, 0), |(p, f), c| (p + c.passes, f + c.fails));
            (&q.http_reqs, &q.http_req_duration, &q.http_req_failed, c)
        }
    };
    Some(match m {
        MetricKind::Rps => reqs.rate,
        MetricKind::P50 => dur.med,
        MetricKind::P90 => dur.p90,
        MetricKind::P95 => dur.p95,
        MetricKind::P99 => dur.p99,
        MetricKind::Max => dur.max,
        MetricKind::Mean => dur.avg,
        MetricKind::ErrorRate => failed.rate * 100.0,
        MetricKind::ChecksRate => {
            if checks.0 + checks.1 == 0 {
                return None;
            }
            100.0 * checks.0 as f64 / (checks.0 + checks.1) as f64
        }
    })
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
fn sampling_pair(
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

/// Compares two results. Mismatches are returned for the caller to refuse or accept.
pub fn compare(
    base: &RunResult,
    cur: &RunResult,
    base_file: &str,
    cur_file: &str,
    cfg: &GateConfig,
    noise: Option<&RunNoise>,
) -> Comparison {
    let method = if base.trials.len() >= 2 && cur.trials.len() >= 2 {
        Method::Trials
    } else {
        Method::SingleRuns
    };
    let mut names: Vec<(&String, usize)> = cur.requests.iter().map(|(n, q)| (n, q.index)).collect();
    names.sort_by_key(|(_, i)| *i);
    let scopes_list: Vec<Option<&str>> = std::iter::once(None)
        .chain(names.iter().map(|(n, _)| Some(n.as_str())))
        .collect();
    let mut scopes = Vec::new();
    for (si, scope) in scopes_list.into_iter().enumerate() {
        if let Some(n) = scope {
            if !base.requests.contains_key(n) {
                continue;
            }
        }
        let metrics = MetricKind::ALL
            .iter()
            .enumerate()
            .filter_map(|(mi, &m)| {
                let (bs, cs) = (samples(base, scope, m), samples(cur, scope, m));
                let (b, c) = (headline(base, scope, m), headline(cur, scope, m));
                if m == MetricKind::ChecksRate && (b.is_none() || c.is_none()) {
                    return None;
                }
                let mut tolerance = cfg.tolerance(&cur.scenario, scope, m);
                if m.change() == Change::Percent && m != MetricKind::Rps {
                    // A latency change below the floor is noise however large in percent.
                    if let Some(b) = bs.statistic().filter(|b| *b > 0.0) {
                        let floor = 100.0 * cfg.min_change_ms(&cur.scenario, scope) / b;
                        tolerance = tolerance.max((floor * 10.0).ceil() / 10.0);
                    }
                }
                let seed = SEED ^ ((si as u64) << 8) ^ mi as u64;
                let Judgement {
                    change,
                    interval,
                    p_value,
                    verdict,
                } = if method == Method::Trials {
                    judge(&bs, &cs, m, tolerance, cfg.alpha(), cfg.confidence(), seed)
                } else {
                    let single = noise.and_then(|n| {
                        Some(SingleNoise {
                            sd: *n.sd.get(m.key())?,
                            df: *n.df.get(m.key())?,
                            sampling: sampling_pair(base, cur, scope, m, cfg.confidence()),
                        })
                    });
                    judge_single(b, c, m, tolerance, single, cfg.alpha(), cfg.confidence())
                };
                Some(MetricVerdict {
                    metric: m,
                    baseline: b,
                    current: c,
                    change,
                    interval,
                    p_value,
                    tolerance,
                    gate: cfg.is_gate(&cur.scenario, scope, m),
                    verdict,
                    n_baseline: bs.len(),
                    n_current: cs.len(),
                })
            })
            .collect();
        scopes.push(ScopeComparison {
            request: scope.map(str::to_string),
            metrics,
        });
    }
    let mut warnings = warnings("baseline", base);
    warnings.extend(self::warnings("current", cur));
    if method == Method::SingleRuns {
        match noise {
            Some(n) => warnings.push(format!(
                "one run a side: judged against the between-run noise of {} runs ({}); metrics without it count only beyond the conservative bounds",
                n.runs, n.source
            )),
            None => warnings.push(
                "one run a side cannot support a verdict: runs of one commit differ by up to a third here. Only a change beyond a conservative bound counts (x1.5 for req/s, p50 and mean, x2 for p90/p95, x3 for p99/max, 5 points for rates); for a verdict use `loadtest ab`, or record 3+ runs of one commit (history) so their noise is known".into(),
            ),
        }
    }
    let rref = |r: &RunResult, f: &str| RunRef {
        run: r.run.clone(),
        file: f.to_string(),
        commit: r
            .git
            .as_ref()
            .map(|g| format!("{}{}", g.commit, if g.dirty { "-dirty" } else { "" })),
        started_at: r.started_at.clone(),
    };
    Comparison {
        scenario: cur.scenario.clone(),
        baseline: rref(base, base_file),
        current: rref(cur, cur_file),
        method,
        alpha: cfg.alpha(),
        confidence: cfg.confidence(),
        resamples: RESAMPLES,
        scopes,
        noise: (method == Method::SingleRuns)
            .then(|| noise.cloned())
            .flatten(),
        mismatches: mismatches(base, cur),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(center: f64, n: usize) -> Samples {
        Samples::Values(
            (0..n)
                .map(|i| center * (1.0 + ((i % 7) as f64 - 3.0) * 0.004))
                .collect(),
        )
    }

    #[test]
    fn verdicts_need_significance_and_the_whole_interval_beyond_tolerance() {
        let j = |b: &Samples, c: &Samples, m| {
            judge(b, c, m, m.default_tolerance(), 0.05, 0.95, 7).verdict
        };
        // +30% latency: regressed. -30%: improved.
        assert_eq!(
            j(&vals(10.0, 30), &vals(13.0, 30), MetricKind::P95),
            Verdict::Regressed
        );
        assert_eq!(
            j(&vals(10.0, 30), &vals(7.0, 30), MetricKind::P95),
            Verdict::Improved
        );
        // +2%: significant but inside the 5% tolerance.
        assert_eq!(
            j(&vals(10.0, 30), &vals(10.2, 30), MetricKind::P95),
            Verdict::NoSignificantChange
        );
        // Throughput down 30% is a regression; up is an improvement.
        assert_eq!(
            j(&vals(1000.0, 30), &vals(700.0, 30), MetricKind::Rps),
            Verdict::Regressed
        );
        assert_eq!(
            j(&vals(1000.0, 30), &vals(1300.0, 30), MetricKind::Rps),
            Verdict::Improved
        );
        // Same distribution: nothing.
        assert_eq!(
            j(&vals(10.0, 30), &vals(10.0, 30), MetricKind::P95),
            Verdict::NoSignificantChange
        );
        // Too few observations.
        assert_eq!(
            j(&vals(10.0, 2), &vals(20.0, 2), MetricKind::P95),
            Verdict::InsufficientData
        );
    }

    #[test]
    fn error_rate_is_judged_in_points() {
        let base = Samples::Ratios((0..20).map(|_| (0.0, 100.0)).collect());
        let cur = Samples::Ratios(
            (0..20)
                .map(|i| (if i % 2 == 0 { 3.0 } else { 2.0 }, 100.0))
                .collect(),
        );
        let j = judge(&base, &cur, MetricKind::ErrorRate, 0.5, 0.05, 0.95, 1);
        assert!((j.change.unwrap() - 2.5).abs() < 1e-9);
        assert_eq!(j.verdict, Verdict::Regressed);
        let cur = Samples::Ratios(
            (0..20)
                .map(|i| (if i % 2 == 0 { 0.0 } else { 0.4 }, 100.0))
                .collect(),
        );
        let j = judge(&base, &cur, MetricKind::ErrorRate, 0.5, 0.05, 0.95, 1);
        assert_eq!(j.verdict, Verdict::NoSignificantChange);
    }

    #[test]
    fn one_run_a_side_without_known_noise_needs_a_change_beyond_the_bound() {
        // p50 +40%: within the x1.5 bound, not a verdict.
        let j = judge_single(
            Some(10.0),
            Some(14.0),
            MetricKind::P50,
            5.0,
            None,
            0.05,
            0.95,
        );
        assert_eq!(j.verdict, Verdict::InsufficientData, "{j:?}");
        assert!((j.change.unwrap() - 40.0).abs() < 1e-9);
        // p95 two and a half times as slow (bound x2): regressed even so.
        let j = judge_single(
            Some(10.0),
            Some(25.0),
            MetricKind::P95,
            5.0,
            None,
            0.05,
            0.95,
        );
        assert_eq!(j.verdict, Verdict::Regressed, "{j:?}");
        // Throughput down by half (ratio 0.5 < 1/1.5).
        let j = judge_single(
            Some(100.0),
            Some(50.0),
            MetricKind::Rps,
            5.0,
            None,
            0.05,
            0.95,
        );
        assert_eq!(j.verdict, Verdict::Regressed, "{j:?}");
    }

    #[test]
    fn one_run_a_side_with_known_noise_is_judged_against_it() {
        // Runs of one commit vary by 2% (sd of ln): +20% stands out.
        let j = judge_single(
            Some(10.0),
            Some(12.0),
            MetricKind::P95,
            5.0,
            Some(SingleNoise {
                sd: 0.02,
                df: 30,
                sampling: None,
            }),
            0.05,
            0.95,
        );
        assert_eq!(j.verdict, Verdict::Regressed, "{j:?}");
        let (lo, hi) = j.interval.unwrap();
        assert!(lo > 5.0 && hi > 20.0 && lo < 20.0, "{j:?}");
        // They vary by 15%: +20% does not.
        let j = judge_single(
            Some(10.0),
            Some(12.0),
            MetricKind::P95,
            5.0,
            Some(SingleNoise {
                sd: 0.15,
                df: 30,
                sampling: None,
            }),
            0.05,
            0.95,
        );
        assert_eq!(j.verdict, Verdict::NoSignificantChange, "{j:?}");
        assert!(j.p_value.unwrap() > 0.05);
    }

    #[test]
    fn few_runs_of_noise_or_a_loose_percentile_widen_the_interval() {
        let judge = |sd: f64, df: usize, sampling: Option<f64>| {
            judge_single(
                Some(10.0),
                Some(11.5),
                MetricKind::P99,
                10.0,
                Some(SingleNoise { sd, df, sampling }),
                0.05,
                0.95,
            )
        };
        // +15% against a 1% spread measured with 30 degrees of freedom: beyond 10%.
        assert_eq!(judge(0.01, 30, None).verdict, Verdict::Regressed);
        // The same spread from three runs (df 2, t = 4.3): the interval reaches below 10%.
        let j = judge(0.01, 2, None);
        assert_eq!(j.verdict, Verdict::NoSignificantChange, "{j:?}");
        assert!(j.interval.unwrap().0 < 10.0, "{j:?}");
        // A p99 that its own runs pin down only to +-15% (log se 0.075): not significant.
        let j = judge(0.01, 30, Some(0.075));
        assert_eq!(j.verdict, Verdict::NoSignificantChange, "{j:?}");
        assert!(j.p_value.unwrap() > 0.05, "{j:?}");
    }

    #[test]
    fn a_percentile_of_few_requests_is_loose_and_of_many_is_tight() {
        let z = 1.96;
        let mut few = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        // 600 requests at 10..16 ms and a tail of 6 between 20 and 40 ms.
        for i in 0..594u64 {
            few.record(10_000 + (i % 60) * 100).unwrap();
        }
        for t in [20_000u64, 24_000, 28_000, 32_000, 36_000, 40_000] {
            few.record(t).unwrap();
        }
        let loose = quantile_log_se(&few, 0.99, z).unwrap();
        let mut many =
            hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for i in 0..60_000u64 {
            many.record(10_000 + (i % 600) * 10).unwrap();
        }
        let tight = quantile_log_se(&many, 0.99, z).unwrap();
        // The few-request p99 spans the jump into the tail: wider than 10% a side.
        assert!(loose > 0.1, "{loose}");
        assert!(tight < 0.01, "{tight}");
        assert!(
            quantile_log_se(&hdrhistogram::Histogram::<u64>::new(3).unwrap(), 0.99, z).is_none()
        );
    }

    #[test]
    fn run_noise_pools_runs_of_one_commit_and_leaves_out_the_compared_ones() {
        use crate::results::history::HistoryLine;
        let line = |commit: &str, rps: f64, file: &str| HistoryLine {
            run: "r".into(),
            scenario: "s".into(),
            commit: Some(commit.into()),
            dirty: false,
            time: String::new(),
            duration_s: 10.0,
            trials: 1,
            interrupted: false,
            rps,
            p50: 10.0,
            p95: 20.0,
            p99: 30.0,
            error_rate: 0.0,
            checks_rate: 1.0,
            file: file.into(),
        };
        let lines = vec![
            line("a", 100.0, "x1"),
            line("a", 110.0, "x2"),
            line("b", 200.0, "x3"),
            line("b", 220.0, "x4"),
            line("c", 500.0, "x5"),
            line("a", 1000.0, "compared"),
        ];
        let n = run_noise(&lines, &[std::path::PathBuf::from("compared")]).unwrap();
        assert_eq!(n.runs, 4);
        // Both groups differ by ln(1.1): pooled sd = ln(1.1) / sqrt 2.
        let want = 1.1f64.ln() / 2f64.sqrt();
        assert!((n.sd["rps"] - want).abs() < 1e-9, "{n:?}");
        assert!(n.sd["p95"].abs() < 1e-12);
        // 4 runs in 2 groups: 2 degrees of freedom.
        assert_eq!(n.df["rps"], 2);
        // Two runs of one commit are not enough.
        assert!(run_noise(&lines[..2], &[]).is_none());
    }
}
