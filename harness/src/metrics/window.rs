//! One second of a run, summarised as it completes: the engine emits these
//! (the timeline) and the result file stores them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::MetricsSet;
use crate::scenario::thresholds::Agg;

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One request name's figures within one second.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestWindow {
    pub requests: u64,
    pub failures: u64,
    pub checks_passes: u64,
    pub checks_fails: u64,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Window {
    /// Trial number (0-based) under `--repeat`.
    #[serde(default)]
    pub trial: u32,
    /// Seconds since the start of the load phase.
    pub t: u64,
    /// Length of the window in seconds: 1, except for the last one of a trial.
    pub span_s: f64,
    pub requests: u64,
    pub failures: u64,
    pub iterations: u64,
    pub dropped_iterations: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    #[serde(default)]
    pub p90: Option<f64>,
    #[serde(default)]
    pub mean: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub checks_passes: u64,
    #[serde(default)]
    pub checks_fails: u64,
    pub vus: u64,
    /// The same second per request name.
    pub by_request: BTreeMap<String, RequestWindow>,
}

impl Window {
    /// The figures of all requests together, shaped like a request's.
    pub fn overall(&self) -> RequestWindow {
        RequestWindow {
            requests: self.requests,
            failures: self.failures,
            checks_passes: self.checks_passes,
            checks_fails: self.checks_fails,
            mean: self.mean,
            p50: self.p50,
            p90: self.p90,
            p95: self.p95,
            p99: self.p99,
            max: self.max,
        }
    }

    /// `steps` pairs each request name with the range of its checks.
    pub fn from_window(
        t: u64,
        set: &MetricsSet,
        vus: u64,
        steps: &[(String, std::ops::Range<usize>)],
    ) -> Window {
        let h = set.all_durations();
        let by_request = steps
            .iter()
            .zip(&set.requests)
            .map(|((name, checks), r)| {
                let (cp, cf) = set.check_totals(checks.clone());
                let d = &r.duration;
                (
                    name.clone(),
                    RequestWindow {
                        requests: r.count,
                        failures: r.failed,
                        checks_passes: cp,
                        checks_fails: cf,
                        mean: super::trend_value(d, Agg::Avg).map(round3),
                        p50: super::trend_value(d, Agg::Med),
                        p90: super::trend_value(d, Agg::P(90.0)),
                        p95: super::trend_value(d, Agg::P(95.0)),
                        p99: super::trend_value(d, Agg::P(99.0)),
                        max: super::trend_value(d, Agg::Max),
                    },
                )
            })
            .collect();
        Window {
            trial: 0,
            t,
            span_s: 1.0,
            requests: set.total_requests(),
            failures: set.total_failed(),
            iterations: set.iterations,
            dropped_iterations: set.dropped_iterations,
            p50: super::trend_value(&h, Agg::Med),
            p95: super::trend_value(&h, Agg::P(95.0)),
            p99: super::trend_value(&h, Agg::P(99.0)),
            p90: super::trend_value(&h, Agg::P(90.0)),
            mean: super::trend_value(&h, Agg::Avg).map(round3),
            max: super::trend_value(&h, Agg::Max),
            checks_passes: set.checks.iter().map(|c| c[0]).sum(),
            checks_fails: set.checks.iter().map(|c| c[1]).sum(),
            vus,
            by_request,
        }
    }
}
