//! The result model assembled from what the load phase measured: one run,
//! the trials of a `--repeat` run, and their merge.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::engine::LoadOutput;
use crate::metrics::{self, encode_histogram};
use crate::scenario::Scenario;

/// Merges the trials of a `--repeat` run into one output.
pub fn combine(sc: &Scenario, outs: Vec<LoadOutput>) -> LoadOutput {
    let mut total = metrics::MetricsSet::for_scenario(sc);
    let mut combined = LoadOutput {
        total: total.clone(),
        timeline: Vec::new(),
        duration: Duration::ZERO,
        interrupted: false,
        aborted_by: None,
        vus_max: 0,
        workers: 0,
    };
    for o in outs {
        total.merge(&o.total);
        combined.timeline.extend(o.timeline);
        combined.duration += o.duration;
        combined.interrupted |= o.interrupted;
        combined.aborted_by = combined.aborted_by.or(o.aborted_by);
        combined.vus_max = combined.vus_max.max(o.vus_max);
        combined.workers = combined.workers.max(o.workers);
    }
    combined.total = total;
    combined
}

pub fn trial_result(trial: u32, sc: &Scenario, o: &LoadOutput) -> TrialResult {
    let secs = o.duration.as_secs_f64();
    let t = &o.total;
    let requests = sc
        .steps
        .iter()
        .zip(&t.requests)
        .map(|(step, r)| {
            let checks = t.check_totals(step.check_range());
            (
                step.name.clone(),
                Figures::new(&r.duration, r.count, r.failed, checks, secs),
            )
        })
        .collect();
    TrialResult {
        trial,
        duration_s: (secs * 1000.0).round() / 1000.0,
        interrupted: o.interrupted,
        overall: Figures::new(
            &t.all_durations(),
            t.total_requests(),
            t.total_failed(),
            t.check_totals(0..t.checks.len()),
            secs,
        ),
        requests,
    }
}

pub fn build_result(
    sc: &Scenario,
    path: &Path,
    run_name: &str,
    target_url: &str,
    overrides: Vec<String>,
    started_at: chrono::DateTime<chrono::Utc>,
    out: &LoadOutput,
) -> RunResult {
    let secs = out.duration.as_secs_f64();
    let t = &out.total;
    let names: Vec<String> = sc.steps.iter().map(|s| s.name.clone()).collect();
    let check_ranges = sc.check_ranges();

    let mut requests = BTreeMap::new();
    for (i, step) in sc.steps.iter().enumerate() {
        let rm = &t.requests[i];
        let checks = step
            .checks
            .iter()
            .enumerate()
            .map(|(c, ch)| {
                let [p, f] = t.checks[step.first_check + c];
                CheckResult {
                    name: ch.name.clone(),
                    passes: p,
                    fails: f,
                }
            })
            .collect();
        let mut statuses: Vec<(u16, u64)> = rm.statuses.clone();
        statuses.sort();
        requests.insert(
            step.name.clone(),
            RequestResult {
                index: i,
                method: step.method.to_string(),
                http_reqs: counter(rm.count, secs),
                http_req_failed: rate_stat(rm.failed, rm.count - rm.failed),
                http_req_duration: Trend::from_histogram(&rm.duration),
                http_req_duration_uncorrected: rm.uncorrected.as_ref().map(Trend::from_histogram),
                histogram: encode_histogram(&rm.duration),
                histogram_uncorrected: rm.uncorrected.as_ref().map(encode_histogram),
                status_codes: statuses
                    .into_iter()
                    .map(|(s, n)| (s.to_string(), n))
                    .collect(),
                protocol: rm.protocol().map(str::to_string),
                checks,
            },
        );
    }

    let (passes, fails) = t.check_totals(0..t.checks.len());
    let total_reqs = t.total_requests();
    let failed = t.total_failed();
    let metrics = Metrics {
        http_reqs: counter(total_reqs, secs),
        http_req_failed: rate_stat(failed, total_reqs - failed),
        http_req_duration: Trend::from_histogram(&t.all_durations()),
        http_req_duration_uncorrected: t.all_uncorrected().as_ref().map(Trend::from_histogram),
        iteration_duration: Trend::from_histogram(&t.iteration_duration),
        http_req_connecting: (!t.connecting.is_empty())
            .then(|| Trend::from_histogram(&t.connecting)),
        http_req_tls_handshaking: (!t.tls_handshaking.is_empty())
            .then(|| Trend::from_histogram(&t.tls_handshaking)),
        checks: rate_stat(passes, fails),
        iterations: counter(t.iterations, secs),
        dropped_iterations: counter(t.dropped_iterations, secs),
        interrupted_iterations: t.interrupted_iterations,
        vus_max: out.vus_max,
        data_sent: counter(t.bytes_sent, secs),
        data_received: counter(t.bytes_received, secs),
    };

    let thresholds = sc
        .thresholds
        .iter()
        .map(|th| {
            let value = metrics::observe(th, t, &names, &check_ranges, secs, out.vus_max);
            ThresholdResult {
                metric: th.key.clone(),
                expression: th.expression.clone(),
                value,
                // No data cannot prove a threshold holds.
                ok: value.is_some_and(|v| th.op.holds(v, th.limit)),
                abort_on_fail: th.abort_on_fail,
            }
        })
        .collect();

    let mut errors: Vec<ErrorCount> = t
        .errors
        .iter()
        .map(|(e, n)| ErrorCount {
            error: e.clone(),
            count: *n,
        })
        .collect();
    errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.error.cmp(&b.error)));

    let host = host_info();
    let (cpu, rss) = process_usage();
    let scenario_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    RunResult {
        schema_version: SCHEMA_VERSION,
        run: run_name.to_string(),
        scenario: sc.name.clone(),
        scenario_file: path.display().to_string(),
        scenario_sha256: sc.sha256.clone(),
        description: sc.description.clone(),
        target: target_url.to_string(),
        options: sc.options.to_json(),
        overrides,
        git: git_info(scenario_dir),
        started_at: started_at.to_rfc3339(),
        duration_s: (secs * 1000.0).round() / 1000.0,
        interrupted: out.interrupted,
        aborted_by: out.aborted_by.clone(),
        loadgen: LoadGen {
            workers: out.workers,
            cpu_seconds: (cpu * 100.0).round() / 100.0,
            cpu_saturation: if secs > 0.0 {
                ((cpu / secs / host.cores as f64) * 1000.0).round() / 1000.0
            } else {
                0.0
            },
            max_rss_kb: rss,
        },
        host,
        metrics,
        requests,
        errors,
        thresholds,
        checks: Vec::new(),
        timeline: out.timeline.clone(),
        trials: Vec::new(),
        stack: None,
        server: None,
        dashboard_url: None,
        shard: None,
        merged: None,
    }
}
