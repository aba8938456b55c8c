//! The metrics a comparison speaks of (req/s, percentiles, rates), their
//! units and direction, and how their observations are read from a result.

use serde::Serialize;

use super::stats::{Change, Samples};
use crate::results::{Figures, RunResult};

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

pub(super) fn ratio(a: u64, b: u64) -> f64 {
    if b > 0 {
        a as f64 / b as f64
    } else {
        0.0
    }
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
