//! The HTML report (`loadtest report`, and beside every result): one file that shows a result offline: timeline
//! charts, the latency distribution from the HDR histograms (a baseline's
//! overlaid), thresholds, checks, errors, the stack's images and the commit;
//! with a baseline, the comparison's verdict table; for an A/B result, the
//! trials side by side and the verdict with its intervals.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use minijinja::{context, Environment, Value};
use serde::Serialize;
use serde_json::json;

use super::ab::short;
use crate::compare::ab::{AbResult, Outcome, Trial, ALL_REQUESTS};
use crate::compare::paired::Decision;
use crate::compare::{Comparison, Verdict};
use crate::results::{RunResult, TimelineEntry};
use crate::view::{ms, script_json, CHARTS_JS, CSS};

const TEMPLATE: &str = include_str!("assets/report.html");
const PAGE_JS: &str = include_str!("assets/report.js");

#[derive(Serialize)]
struct Kv {
    k: String,
    v: String,
}

fn kv(k: &str, v: impl Into<String>) -> Kv {
    Kv {
        k: k.into(),
        v: v.into(),
    }
}

#[derive(Serialize)]
struct Banner {
    class: &'static str,
    text: String,
}

#[derive(Serialize)]
struct VerdictRow {
    scope: String,
    metric: String,
    gate: bool,
    left: String,
    right: String,
    change: String,
    interval: String,
    p: String,
    tolerance: String,
    verdict: String,
    class: &'static str,
}

#[derive(Serialize)]
struct VerdictTable {
    title: String,
    left: String,
    right: String,
    rows: Vec<VerdictRow>,
    notes: Vec<String>,
}

fn ser<T: Serialize>(v: T) -> Value {
    Value::from(minijinja::value::Serde(v))
}

fn render(ctx: Value) -> Result<String> {
    let mut env = Environment::new();
    // The `.html` name turns on HTML escaping for everything not marked safe.
    env.add_template("report.html", TEMPLATE)
        .context("report template")?;
    env.get_template("report.html")?
        .render(ctx)
        .context("rendering the report")
}

fn footer() -> String {
    format!(
        "Written by loadtest {} on {}. Self-contained: open it anywhere, offline.",
        env!("CARGO_PKG_VERSION"),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )
}

/// Seconds from the start of the load for each timeline entry (trials follow each other).
fn seconds(timeline: &[TimelineEntry]) -> Vec<f64> {
    let mut offset = 0.0;
    let mut last_trial = 0;
    let mut out = Vec::with_capacity(timeline.len());
    let mut prev_end = 0.0;
    for e in timeline {
        if e.trial != last_trial {
            offset = prev_end;
            last_trial = e.trial;
        }
        let x = offset + e.t as f64;
        prev_end = x + e.span_s;
        out.push(x);
    }
    out
}

fn per_second(n: u64, span: f64) -> f64 {
    (n as f64 / span.max(0.001) * 10.0).round() / 10.0
}

/// The timeline as columns, for the charts.
pub fn timeline_data(r: &RunResult) -> serde_json::Value {
    let tl = &r.timeline;
    let mut requests = serde_json::Map::new();
    let mut names: Vec<(&String, usize)> = r.requests.iter().map(|(n, q)| (n, q.index)).collect();
    names.sort_by_key(|(_, i)| *i);
    for (name, _) in names {
        let col =
            |f: &dyn Fn(&crate::results::RequestWindow, f64) -> Option<f64>| -> Vec<Option<f64>> {
                tl.iter()
                    .map(|e| e.by_request.get(name).and_then(|w| f(w, e.span_s)))
                    .collect()
            };
        requests.insert(
            name.clone(),
            json!({
                "rps": col(&|w, s| Some(per_second(w.requests, s))),
                "p95": col(&|w, _| w.p95),
                "p99": col(&|w, _| w.p99),
            }),
        );
    }
    json!({
        "x": seconds(tl),
        "rps": tl.iter().map(|e| per_second(e.requests, e.span_s)).collect::<Vec<_>>(),
        "failures": tl.iter().map(|e| per_second(e.failures, e.span_s)).collect::<Vec<_>>(),
        "vus": tl.iter().map(|e| e.vus).collect::<Vec<_>>(),
        "p50": tl.iter().map(|e| e.p50).collect::<Vec<_>>(),
        "p95": tl.iter().map(|e| e.p95).collect::<Vec<_>>(),
        "p99": tl.iter().map(|e| e.p99).collect::<Vec<_>>(),
        "requests": requests,
    })
}

/// Latency by percentile: x = -log10(1 - q) from 0 up to the percentile the
/// sample can resolve, y in ms.
fn percentile_curve(h: &hdrhistogram::Histogram<u64>) -> (Vec<f64>, Vec<f64>) {
    if h.is_empty() {
        return (Vec::new(), Vec::new());
    }
    // Beyond 1 - 1/n every percentile is the maximum.
    let top = (h.len() as f64).log10().clamp(0.5, 5.0);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut x = 0.0;
    while x <= top + 1e-9 {
        let q = 1.0 - 10f64.powf(-x);
        xs.push((x * 1000.0).round() / 1000.0);
        ys.push(h.value_at_quantile(q) as f64 / 1000.0);
        x += 0.05;
    }
    (xs, ys)
}

fn distribution(r: &RunResult, label: Option<&str>, dash: bool) -> Result<Vec<serde_json::Value>> {
    let mut names: Vec<(&String, usize)> = r.requests.iter().map(|(n, q)| (n, q.index)).collect();
    names.sort_by_key(|(_, i)| *i);
    let mut all = crate::metrics::new_histogram();
    let mut out = Vec::new();
    for (name, _) in &names {
        let h = r
            .histogram(name)
            .with_context(|| format!("the histogram of `{name}` in run {}", r.run))?;
        all.add(&h).ok();
        if names.len() > 1 {
            let (xs, ys) = percentile_curve(&h);
            out.push(json!({"name": series_name(label, name), "xs": xs, "ys": ys, "dash": dash}));
        }
    }
    let (xs, ys) = percentile_curve(&all);
    out.insert(
        0,
        json!({"name": series_name(label, "all requests"), "xs": xs, "ys": ys, "dash": dash}),
    );
    Ok(out)
}

fn series_name(label: Option<&str>, name: &str) -> String {
    match label {
        Some(l) => format!("{l}: {name}"),
        None => name.to_string(),
    }
}

fn tiles(r: &RunResult) -> Vec<Kv> {
    let m = &r.metrics;
    let d = &m.http_req_duration;
    let total_checks = m.checks.passes + m.checks.fails;
    let mut t = vec![
        kv("requests", m.http_reqs.count.to_string()),
        kv("req/s", format!("{:.1}", m.http_reqs.rate)),
        kv("failed", format!("{:.2}%", m.http_req_failed.rate * 100.0)),
        kv("p50", format!("{} ms", ms(d.med))),
        kv("p95", format!("{} ms", ms(d.p95))),
        kv("p99", format!("{} ms", ms(d.p99))),
    ];
    if total_checks > 0 {
        t.push(kv("checks", format!("{:.2}%", m.checks.rate * 100.0)));
    }
    t.push(kv("VUs (max)", m.vus_max.to_string()));
    t.push(kv("iterations", m.iterations.count.to_string()));
    if m.dropped_iterations.count > 0 {
        t.push(kv("dropped", m.dropped_iterations.count.to_string()));
    }
    t
}

fn run_meta(r: &RunResult) -> Vec<String> {
    let mut meta = vec![
        format!("started {}", r.started_at),
        format!("{:.0} s", r.duration_s),
        format!("target {}", r.target),
    ];
    if let Some(g) = &r.git {
        meta.push(format!(
            "commit {}{}",
            short(&g.commit),
            if g.dirty {
                " (uncommitted changes)"
            } else {
                ""
            }
        ));
    }
    meta.push(format!("{} cores, {}", r.host.cores, r.host.hostname));
    meta
}

fn run_banners(r: &RunResult) -> Vec<Banner> {
    let mut b = Vec::new();
    if r.interrupted {
        b.push(Banner {
            class: "warn",
            text: "Stopped before its planned end: the figures cover the part that ran.".into(),
        });
    }
    if let Some(t) = &r.aborted_by {
        b.push(Banner {
            class: "bad",
            text: format!("Aborted by the threshold {t}."),
        });
    }
    let crossed = r.crossed_thresholds();
    if !crossed.is_empty() {
        b.push(Banner {
            class: "bad",
            text: format!("Thresholds crossed: {}", crossed.join("; ")),
        });
    } else if !r.thresholds.is_empty() {
        b.push(Banner {
            class: "ok",
            text: format!("All {} thresholds held.", r.thresholds.len()),
        });
    }
    b
}

fn verdict_rows(cmp: &Comparison) -> Vec<VerdictRow> {
    let mut rows = Vec::new();
    for scope in &cmp.scopes {
        for mv in &scope.metrics {
            let class = match mv.verdict {
                Verdict::Regressed if mv.gate => "bad",
                Verdict::Regressed => "warn",
                Verdict::Improved => "ok",
                _ => "",
            };
            rows.push(VerdictRow {
                scope: scope.title().to_string(),
                metric: mv.metric.label().to_string(),
                gate: mv.gate,
                left: super::comparison::value(mv.metric, mv.baseline),
                right: super::comparison::value(mv.metric, mv.current),
                change: super::comparison::change(mv),
                interval: super::comparison::interval(mv),
                p: mv.p_value.map(|p| format!("{p:.3}")).unwrap_or("-".into()),
                tolerance: format!("{:.1}", mv.tolerance),
                verdict: mv.verdict.text().to_string(),
                class,
            });
        }
    }
    rows
}

fn check_row(request: &str, c: &crate::results::CheckResult) -> BTreeMap<&'static str, String> {
    let n = c.passes + c.fails;
    BTreeMap::from([
        ("request", request.to_string()),
        ("name", c.name.clone()),
        ("passes", c.passes.to_string()),
        ("fails", c.fails.to_string()),
        ("class", if c.fails > 0 { "bad" } else { "" }.into()),
        (
            "rate",
            if n == 0 {
                "-".into()
            } else {
                format!("{:.2}%", c.passes as f64 * 100.0 / n as f64)
            },
        ),
    ])
}

/// The report of one run, with its comparison against a baseline when given.
pub fn run_report(r: &RunResult, baseline: Option<(&RunResult, &Comparison)>) -> Result<String> {
    let mut dist = distribution(r, baseline.map(|_| r.run.as_str()), false)?;
    let mut data = json!({"kind": "run", "timeline": timeline_data(r)});
    let mut banners = run_banners(r);
    let verdict = match baseline {
        Some((b, cmp)) => {
            dist.extend(distribution(b, Some(&b.run), true)?);
            data["baseline_timeline"] = timeline_data(b);
            let regressed = cmp.regressed_gates().len();
            banners.insert(
                0,
                if regressed > 0 {
                    Banner {
                        class: "bad",
                        text: format!(
                            "{regressed} gate(s) regressed against the baseline `{}`: `loadtest compare` exits 98.",
                            b.run
                        ),
                    }
                } else {
                    Banner {
                        class: "ok",
                        text: format!("No gate regressed against the baseline `{}`.", b.run),
                    }
                },
            );
            let mut notes = cmp.mismatches.clone();
            notes.extend(cmp.warnings.iter().cloned());
            Some(VerdictTable {
                title: format!("Against the baseline `{}`", b.run),
                left: format!("baseline ({})", b.run),
                right: format!("this run ({})", r.run),
                rows: verdict_rows(cmp),
                notes,
            })
        }
        None => None,
    };
    data["distribution"] = serde_json::Value::Array(dist);

    let mut names: Vec<(&String, &crate::results::RequestResult)> = r.requests.iter().collect();
    names.sort_by_key(|(_, q)| q.index);
    let requests: Vec<BTreeMap<&str, String>> = names
        .iter()
        .map(|(name, q)| {
            let d = &q.http_req_duration;
            let statuses: Vec<String> = q
                .status_codes
                .iter()
                .map(|(c, n)| format!("{c}: {n}"))
                .collect();
            BTreeMap::from([
                ("name", name.to_string()),
                ("method", q.method.clone()),
                ("count", q.http_reqs.count.to_string()),
                ("rps", format!("{:.1}", q.http_reqs.rate)),
                ("failed", q.http_req_failed.passes.to_string()),
                (
                    "failed_class",
                    if q.http_req_failed.passes > 0 {
                        "bad"
                    } else {
                        ""
                    }
                    .into(),
                ),
                ("p50", ms(d.med)),
                ("p90", ms(d.p90)),
                ("p95", ms(d.p95)),
                ("p99", ms(d.p99)),
                ("max", ms(d.max)),
                ("statuses", statuses.join(", ")),
                ("protocol", q.protocol.clone().unwrap_or_default()),
            ])
        })
        .collect();
    // Checks not tied to a request (a k6 script's) come first.
    let checks: Vec<BTreeMap<&str, String>> = r
        .checks
        .iter()
        .map(|c| check_row("-", c))
        .chain(
            names
                .iter()
                .flat_map(|(name, q)| q.checks.iter().map(move |c| check_row(name, c))),
        )
        .collect();
    let thresholds: Vec<BTreeMap<&str, String>> = r
        .thresholds
        .iter()
        .map(|t| {
            BTreeMap::from([
                ("metric", t.metric.clone()),
                ("expression", t.expression.clone()),
                (
                    "value",
                    t.value
                        .map(|v| format!("{v:.3}"))
                        .unwrap_or("no data".into()),
                ),
                ("result", if t.ok { "held" } else { "crossed" }.into()),
                ("class", if t.ok { "ok" } else { "bad" }.into()),
            ])
        })
        .collect();
    let images: Vec<BTreeMap<&str, String>> = r
        .stack
        .iter()
        .flat_map(|s| {
            s.images
                .iter()
                .map(|(svc, id)| BTreeMap::from([("service", svc.clone()), ("id", id.clone())]))
        })
        .collect();
    render(context! {
        kind => "run",
        title => format!("{} · {}", r.scenario, r.run),
        meta => ser(run_meta(r)),
        banners => ser(&banners),
        tiles => ser(tiles(r)),
        verdict => ser(&verdict),
        has_baseline => baseline.is_some(),
        requests => ser(&requests),
        thresholds => ser(&thresholds),
        checks => ser(&checks),
        errors => ser(&r.errors),
        images => ser(&images),
        footer => footer(),
        css => Value::from_safe_string(CSS.to_string()),
        charts => Value::from_safe_string(CHARTS_JS.to_string()),
        page => Value::from_safe_string(PAGE_JS.to_string()),
        data => Value::from_safe_string(script_json(&data)),
    })
}

/// The report of an A/B (or calibration) result: trials A beside B and the verdict.
pub fn ab_report(r: &AbResult) -> Result<String> {
    let base = short(&r.base.commit);
    let head = short(&r.head.commit);
    let fig = |t: &Trial, k: &str| t.values.get(ALL_REQUESTS).and_then(|m| m.get(k)).copied();
    let side = |t: &Trial| format!("{:?}", t.side);
    let trials_data: Vec<serde_json::Value> = r
        .trials
        .iter()
        .map(|t| {
            json!({"index": t.index, "side": side(t), "rps": fig(t, "rps"), "p95": fig(t, "p95")})
        })
        .collect();
    let trials: Vec<BTreeMap<&str, String>> = r
        .trials
        .iter()
        .map(|t| {
            let f = |k: &str| fig(t, k).map(ms).unwrap_or("-".into());
            BTreeMap::from([
                ("index", t.index.to_string()),
                ("side", side(t)),
                ("started", t.started_at.clone()),
                ("requests", t.requests.to_string()),
                (
                    "rps",
                    fig(t, "rps")
                        .map(|v| format!("{v:.1}"))
                        .unwrap_or("-".into()),
                ),
                ("p50", f("p50")),
                ("p95", f("p95")),
                ("p99", f("p99")),
                ("reset_ms", t.reset_ms.to_string()),
            ])
        })
        .collect();
    let rows: Vec<VerdictRow> = r
        .metrics
        .iter()
        .map(|m| {
            let unit = |x: f64| match m.kind().map(|k| k.change()) {
                Some(crate::compare::stats::Change::Points) => format!("{x:+.2} pt"),
                _ => format!("{:+.1}%", x * 100.0),
            };
            VerdictRow {
                scope: m.scope.clone(),
                metric: m.metric.clone(),
                gate: m.gate,
                left: ms(m.median_a),
                right: ms(m.median_b),
                change: unit(m.change),
                interval: format!("[{}, {}]", unit(m.low), unit(m.high)),
                p: format!("{:.3}", m.p),
                tolerance: unit(m.tolerance).trim_start_matches('+').to_string(),
                verdict: super::ab::sentence(m),
                class: match m.decision {
                    Decision::Worse if m.gate => "bad",
                    Decision::Worse => "warn",
                    Decision::Better => "ok",
                    Decision::NotWorse | Decision::Undecided => "",
                },
            }
        })
        .collect();
    let (class, text) = match r.outcome {
        Outcome::Pass => ("ok", "Pass: no gate is worse beyond its tolerance."),
        Outcome::Regressed => ("bad", "Regressed: B is worse beyond a tolerance."),
        Outcome::Undecided => (
            "warn",
            "Undecided: the trials ran out before a verdict (rerun, or allow more trials).",
        ),
    };
    let mut banners = vec![Banner {
        class,
        text: format!("{text} Exit code {}.", r.exit_code),
    }];
    if r.interrupted {
        banners.push(Banner {
            class: "warn",
            text: "Stopped before a verdict: these are the trials so far.".into(),
        });
    }
    let data = json!({"kind": "ab", "trials": trials_data, "base": base, "head": head});
    render(context! {
        kind => "ab",
        title => format!("{} · A/B {} vs {}", r.scenario, base, head),
        meta => ser(vec![
            format!("A = {} ({})", r.base.reference, base),
            format!("B = {} ({})", r.head.reference, head),
            format!("{} trials, {:.0} s", r.trials.len(), r.wall_s),
            format!("tolerances: {}", r.settings.tolerances),
            format!("started {}", r.started_at),
        ]),
        banners => ser(&banners),
        tiles => ser(vec![
            kv("outcome", format!("{:?}", r.outcome).to_lowercase()),
            kv("trials", r.trials.len().to_string()),
            kv("trial length", format!("{:.0} s", r.settings.trial_s)),
        ]),
        verdict => ser(Some(VerdictTable {
            title: "Verdict per metric (B against A, paired by block)".into(),
            left: "A median".into(),
            right: "B median".into(),
            rows,
            notes: Vec::new(),
        })),
        trials => ser(&trials),
        where => ser((!r.examined.is_empty() || r.database.is_some()).then(|| json!({
            "title": "Resource use per request of each side's app container, judged like the verdict; it explains, it does not gate.",
            "findings": r.findings.iter().map(super::ab::finding).collect::<Vec<_>>(),
            "none": format!("Nothing moved beyond noise ({} figures examined: {}).", r.examined.len(), r.examined.join(", ")),
            "database": r.database,
            "reach": crate::compare::ab::findings_reach(r),
        }))),
        footer => footer(),
        css => Value::from_safe_string(CSS.to_string()),
        charts => Value::from_safe_string(CHARTS_JS.to_string()),
        page => Value::from_safe_string(PAGE_JS.to_string()),
        data => Value::from_safe_string(script_json(&data)),
    })
}
