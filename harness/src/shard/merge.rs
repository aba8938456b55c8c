//! Shards' results into one: histograms added (exact), counters, checks,
//! status codes and errors summed, seconds aligned on the shared start,
//! thresholds evaluated on the merged data. Each shard's own threshold
//! verdicts are kept as information only.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::engine::LoadOutput;
use crate::metrics::window::Window;
use crate::metrics::MetricsSet;
use crate::results::shard::{MergeInfo, MergedShard, ShardPart};
use crate::results::{assemble, LoadGen, RunResult};
use crate::scenario::Scenario;

/// Adds the shards' results up. `partial`: missing shards are named and the
/// rest merged (labelled); without it the result is still written, marked
/// incomplete, and its thresholds do not pass.
pub fn merge(
    sc: &Scenario,
    shards: &[(String, RunResult)],
    run_name: &str,
    partial: bool,
) -> Result<RunResult> {
    let Some((first_file, first)) = shards.first() else {
        bail!("no shard results to merge");
    };
    let part = |f: &str, r: &RunResult| -> Result<ShardPart> {
        r.shard.clone().with_context(|| {
            format!(
                "{f} is not a shard's result (it was not run with --shard or --execution-segment)"
            )
        })
    };
    let p0 = part(first_file, first)?;
    if first.scenario_sha256 != sc.sha256 {
        bail!(
            "the shards ran {} with sha256 {}; the file {} is now {}: it changed since they ran, and \
             thresholds must be judged by the scenario they ran (merge with that version)",
            first.scenario,
            short(&first.scenario_sha256),
            sc.file.display(),
            short(&sc.sha256)
        );
    }
    let mut seen: BTreeMap<usize, &str> = BTreeMap::new();
    let mut missing = Vec::new();
    let mut used = Vec::new();
    let mut info = Vec::new();
    for (file, r) in shards {
        let p = part(file, r)?;
        if r.scenario_sha256 != first.scenario_sha256 || r.scenario != first.scenario {
            bail!(
                "{file} ran scenario `{}` (sha256 {}), {first_file} ran `{}` ({}): shards of different \
                 scenarios cannot be added up",
                r.scenario,
                short(&r.scenario_sha256),
                first.scenario,
                short(&first.scenario_sha256)
            );
        }
        if p.sequence != p0.sequence {
            bail!(
                "{file} is a shard of the sequence {}, {first_file} of {}: merge shards of one split",
                p.sequence,
                p0.sequence
            );
        }
        if let Some(other) = seen.insert(p.index, file) {
            bail!(
                "shard {}/{} is given twice ({other} and {file})",
                p.index,
                p.count
            );
        }
        let problem = if r.interrupted {
            Some("interrupted before its end".to_string())
        } else {
            None
        };
        info.push(MergedShard {
            index: p.index,
            run: r.run.clone(),
            host: r.host.hostname.clone(),
            requests: r.metrics.http_reqs.count,
            thresholds_ok: r.thresholds.iter().all(|t| t.ok),
            problem: problem.clone(),
        });
        if problem.is_some() {
            missing.push(p.index);
        }
        used.push((r, p));
    }
    missing.extend((0..p0.count).filter(|i| !seen.contains_key(i)));
    missing.sort_unstable();
    info.sort_by_key(|s| s.index);

    // Seconds are aligned on the earliest start: a shard that started later
    // (no coordinator) has its seconds shifted by whole seconds.
    let starts: Vec<Option<chrono::DateTime<chrono::FixedOffset>>> = used
        .iter()
        .map(|(r, p)| {
            let at = p.start_at.as_deref().unwrap_or(&r.started_at);
            chrono::DateTime::parse_from_rfc3339(at).ok()
        })
        .collect();
    let earliest = starts.iter().flatten().min().copied();
    let mut total = MetricsSet::for_scenario(sc);
    let mut windows: BTreeMap<u64, (MetricsSet, u64)> = BTreeMap::new();
    let (mut duration, mut vus_max, mut workers) = (0.0f64, 0u64, 0usize);
    let (mut cpu, mut rss) = (0.0f64, 0u64);
    for ((r, p), start) in used.iter().zip(&starts) {
        let shift = match (start, earliest) {
            (Some(s), Some(e)) => (*s - e).num_milliseconds().max(0) as f64 / 1000.0,
            _ => 0.0,
        };
        let set = p
            .total
            .unpack()
            .with_context(|| format!("shard {}", p.index))?;
        check_shape(&total, &set, p.index)?;
        total.merge(&set);
        for w in &p.windows {
            let t = w.t + shift.round() as u64;
            let ws = w
                .set
                .unpack()
                .with_context(|| format!("shard {}, second {}", p.index, w.t))?;
            let e = windows
                .entry(t)
                .or_insert_with(|| (MetricsSet::for_scenario(sc), 0));
            e.0.merge(&ws);
            e.1 += w.vus;
        }
        duration = duration.max(shift + r.duration_s);
        vus_max += r.metrics.vus_max;
        workers += r.loadgen.workers;
        cpu += r.loadgen.cpu_seconds;
        rss = rss.max(r.loadgen.max_rss_kb);
    }
    let steps: Vec<(String, std::ops::Range<usize>)> = sc
        .steps
        .iter()
        .map(|s| s.name.clone())
        .zip(sc.check_ranges())
        .collect();
    let last = windows.keys().last().copied();
    let timeline = windows
        .iter()
        .map(|(t, (set, vus))| {
            let mut w = Window::from_window(*t, set, *vus, &steps);
            if Some(*t) == last {
                w.span_s = ((duration - *t as f64).clamp(0.001, 1.0) * 1000.0).round() / 1000.0;
            }
            w
        })
        .collect();
    let out = LoadOutput {
        total,
        timeline,
        duration: Duration::from_secs_f64(duration.max(0.0)),
        interrupted: used.iter().any(|(r, _)| r.interrupted),
        aborted_by: used.iter().find_map(|(r, _)| r.aborted_by.clone()),
        vus_max,
        workers,
    };
    let started = earliest
        .map(|e| e.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now);
    // The scenario as loaded here (a swarm task saw its own copy's path).
    let mut result = assemble::build_result(
        sc,
        &sc.file,
        run_name,
        &first.target,
        first.overrides.clone(),
        started,
        &out,
    );
    result.git = first.git.clone();
    result.host = first.host.clone();
    result.loadgen = LoadGen {
        workers,
        cpu_seconds: (cpu * 100.0).round() / 100.0,
        cpu_saturation: used
            .iter()
            .map(|(r, _)| r.loadgen.cpu_saturation)
            .fold(0.0, f64::max),
        max_rss_kb: rss,
    };
    let complete = missing.is_empty();
    if !complete && !partial {
        // An incomplete sum undercounts the load: it may not pass.
        for t in &mut result.thresholds {
            t.ok = false;
        }
    }
    result.merged = Some(MergeInfo {
        count: p0.count,
        shards: info,
        missing,
        complete,
    });
    Ok(result)
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// Shards of one scenario record the same requests and checks.
fn check_shape(total: &MetricsSet, set: &MetricsSet, index: usize) -> Result<()> {
    if total.requests.len() != set.requests.len() || total.checks.len() != set.checks.len() {
        bail!(
            "shard {index} recorded {} requests and {} checks, the scenario has {} and {}",
            set.requests.len(),
            set.checks.len(),
            total.requests.len(),
            total.checks.len()
        );
    }
    Ok(())
}

/// The files of a distributed run: `<run>-shard<i>` per shard.
pub fn shard_run_name(run: &str, index: usize) -> String {
    format!("{run}-shard{index}")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::executor::segment::Stripe;
    use crate::metrics::{encode_histogram, new_histogram, Sample};
    use crate::results::shard::{PackedSet, PackedWindow};

    const SCENARIO: &str = r#"
[options]
executor = "constant-vus"
vus = 4
duration = "3s"

[[steps]]
name = "get"
method = "GET"
path = "/"
checks = { status = 200 }

[thresholds]
http_req_duration = ["p(95) < 150"]
http_reqs = ["count < 1500"]
"#;

    fn scenario() -> Scenario {
        crate::scenario::parse(Path::new("scenarios/split.toml"), SCENARIO).unwrap()
    }

    /// A fixed, skewed set of latencies (µs): request g of the whole run.
    fn latency(g: u64) -> u64 {
        let x = (g * 7919 + 13) % 1000;
        match x {
            0..=899 => 300 + x * 11,
            900..=989 => 12_000 + x * 97,
            _ => 250_000 + x * 1_303,
        }
    }

    fn record(set: &mut MetricsSet, us: u64) {
        let s = Sample::Response {
            status: 200,
            latency_us: us,
            late_us: 0,
            http2: false,
        };
        set.record_request(0, s, 0, [true]);
    }

    /// Shard `i` of `n` of a run of `total` requests: its stripe of them,
    /// spread over three seconds.
    fn shard(sc: &Scenario, i: usize, n: usize, total: u64) -> (String, RunResult) {
        let stripe = Stripe::equal(i, n).unwrap();
        let mut all = MetricsSet::for_scenario(sc);
        let mut secs: Vec<MetricsSet> = (0..3).map(|_| MetricsSet::for_scenario(sc)).collect();
        for g in (0..total).filter(|g| stripe.owns(*g)) {
            record(&mut all, latency(g));
            record(&mut secs[(g * 3 / total) as usize], latency(g));
        }
        all.iterations = all.total_requests();
        let out = LoadOutput {
            total: all.clone(),
            timeline: Vec::new(),
            duration: Duration::from_secs(3),
            interrupted: false,
            aborted_by: None,
            vus_max: 1,
            workers: 1,
        };
        let mut r = assemble::build_result(
            sc,
            &sc.file,
            &format!("x-shard{i}"),
            "http://127.0.0.1:1",
            Vec::new(),
            chrono::Utc::now(),
            &out,
        );
        let (segment, sequence) = stripe.k6_flags();
        r.shard = Some(ShardPart {
            index: i,
            count: n,
            segment,
            sequence,
            start_at: Some("2026-12-03T10:00:00.000Z".into()),
            clock_offset_ms: None,
            total: PackedSet::pack(&all),
            windows: secs
                .iter()
                .enumerate()
                .map(|(t, s)| PackedWindow {
                    t: t as u64,
                    vus: 1,
                    set: PackedSet::pack(s),
                })
                .collect(),
        });
        (format!("shard{i}.json"), r)
    }

    #[test]
    fn four_shards_merge_to_exactly_one_generators_histogram() {
        let sc = scenario();
        let total = 10_000;
        let mut one = new_histogram();
        for g in 0..total {
            one.record(latency(g)).unwrap();
        }
        let shards: Vec<_> = (0..4).map(|i| shard(&sc, i, 4, total)).collect();
        let m = merge(&sc, &shards, "x", false).unwrap();
        let merged = m.histogram("get").unwrap();
        // Value for value: every bucket's count is the same.
        let pairs = |h: &hdrhistogram::Histogram<u64>| {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&merged), pairs(&one));
        assert_eq!(m.requests["get"].histogram, encode_histogram(&one));
        for q in [0.5, 0.99, 0.999] {
            assert_eq!(
                merged.value_at_quantile(q),
                one.value_at_quantile(q),
                "q {q}"
            );
        }
        assert_eq!(merged.max(), one.max());
        assert_eq!(m.metrics.http_reqs.count, total);
        assert_eq!(m.timeline.iter().map(|w| w.requests).sum::<u64>(), total);
        assert!(m.merged.as_ref().unwrap().complete);

        // A merge that rounds (as Locust does: about two significant digits)
        // does not reproduce the p99.
        let mut rounded = new_histogram();
        for (_, r) in &shards {
            let h = crate::metrics::decode_histogram(&r.requests["get"].histogram).unwrap();
            for v in h.iter_recorded() {
                let x = v.value_iterated_to();
                let mag = 10u64.pow((x as f64).log10().floor() as u32).max(10) / 10;
                rounded
                    .record_n((x / mag).max(1) * mag, v.count_at_value())
                    .unwrap();
            }
        }
        assert_ne!(rounded.value_at_quantile(0.99), one.value_at_quantile(0.99));
    }

    #[test]
    fn thresholds_are_judged_on_the_merged_data_only() {
        let sc = scenario();
        // 600 requests per shard: each alone passes `count < 1500`, the
        // three together (1800) do not.
        let shards: Vec<_> = (0..3).map(|i| shard(&sc, i, 3, 1800)).collect();
        for (_, r) in &shards {
            assert!(r.thresholds.iter().all(|t| t.ok), "{:?}", r.thresholds);
        }
        let m = merge(&sc, &shards, "x", false).unwrap();
        let count = m
            .thresholds
            .iter()
            .find(|t| t.metric == "http_reqs")
            .unwrap();
        assert!(!count.ok);
        assert_eq!(count.value, Some(1800.0));

        // A shard failing `p(95) < 150` alone (its share holds the slow
        // requests) does not fail the merged run: the sum decides.
        let mut shards: Vec<_> = (0..2).map(|i| shard(&sc, i, 2, 400)).collect();
        let mut slow = MetricsSet::for_scenario(&sc);
        for g in 0..200u64 {
            record(&mut slow, if g < 15 { 300_000 } else { 1_000 });
        }
        // Alone, this shard's p95 is 300 ms: it would fail its threshold.
        assert_eq!(slow.all_durations().value_at_quantile(0.95) / 1000, 300);
        let r = &mut shards[1].1;
        r.thresholds[0].ok = false;
        let part = r.shard.as_mut().unwrap();
        part.total = PackedSet::pack(&slow);
        part.windows.clear();
        let m = merge(&sc, &shards, "x", false).unwrap();
        let p95 = &m.thresholds[0];
        assert!(p95.ok, "{p95:?}");
        assert!(!m.merged.as_ref().unwrap().shards[1].thresholds_ok);
    }

    #[test]
    fn a_missing_shard_is_named_and_nothing_passes_unless_partial_is_asked() {
        let sc = scenario();
        let shards: Vec<_> = [0, 2].iter().map(|i| shard(&sc, *i, 3, 300)).collect();
        let m = merge(&sc, &shards, "x", false).unwrap();
        let info = m.merged.as_ref().unwrap();
        assert_eq!(info.missing, vec![1]);
        assert!(!info.complete);
        assert!(m.thresholds.iter().all(|t| !t.ok));
        let text = crate::results::summary(&m);
        assert!(text.contains("INCOMPLETE: shard(s) 1 missing"), "{text}");
        let p = merge(&sc, &shards, "x", true).unwrap();
        assert!(p.thresholds.iter().all(|t| t.ok));
        assert_eq!(p.merged.unwrap().missing, vec![1]);
    }

    #[test]
    fn shards_that_do_not_belong_together_are_refused() {
        let sc = scenario();
        let a = shard(&sc, 0, 2, 100);
        let mut b = shard(&sc, 1, 2, 100);
        b.1.scenario_sha256 = "0".repeat(64);
        let e = merge(&sc, &[a.clone(), b], "x", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("shard1.json") && e.contains("different scenarios"),
            "{e}"
        );
        let e = merge(&sc, &[a.clone(), a.clone()], "x", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("given twice"), "{e}");
        let c = shard(&sc, 1, 3, 100);
        let e = merge(&sc, &[a.clone(), c], "x", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("one split"), "{e}");
        let mut plain = a.clone();
        plain.1.shard = None;
        let e = merge(&sc, &[plain], "x", false).unwrap_err().to_string();
        assert!(e.contains("not a shard's result"), "{e}");
    }
}
