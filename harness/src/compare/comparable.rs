//! Whether two runs can be compared at all (same scenario, executor
//! settings, thresholds), and reasons to distrust a run's figures.

use crate::results::RunResult;

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
