//! Baseline vs current: per request name and overall, each metric gets a
//! change with a bootstrap confidence interval, a rank-test p-value and a
//! verdict. A metric regresses only when the change is significant **and** the
//! whole interval lies beyond its tolerance in the bad direction.

pub mod ab;
pub mod config;
pub mod paired;
pub mod stats;

use serde::Serialize;

use crate::results::RunResult;
pub use config::GateConfig;
use stats::Change;

/// Fixed so that comparing the same two files always prints the same thing.
const SEED: u64 = 0x10ad_7e57;

mod comparable;
mod judge;
mod metric;
mod noise;

pub use comparable::*;
pub use judge::*;
pub use metric::*;
pub use noise::*;

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
    use super::stats::Samples;
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
