//! An A/B verdict as text, markdown or JUnit: one sentence per gated metric,
//! e.g. `B is 12.4% slower on p95 [+8.1%, +16.9%], p = 0.002, 12 trials`.

use std::fmt::Write;

use crate::compare::ab::{is_additive, AbResult, Finding, MetricOutcome, Outcome, ToleranceSource};
use crate::compare::paired::Decision;
use crate::compare::stats::Change;
use crate::compare::MetricKind;

fn pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

fn points(x: f64) -> String {
    format!("{x:+.2} pt")
}

pub(super) fn is_points(m: &MetricOutcome) -> bool {
    m.kind().is_some_and(|k| k.change() == Change::Points)
}

/// The change in words, B against A.
pub fn sentence(m: &MetricOutcome) -> String {
    let size = |x: f64| {
        if is_points(m) {
            format!("{:.2} points", x.abs())
        } else {
            format!("{:.1}%", x.abs() * 100.0)
        }
    };
    let c = m.change;
    let what = match m.kind() {
        Some(MetricKind::Rps) if c < 0.0 => format!("B serves {} fewer req/s", size(c)),
        Some(MetricKind::Rps) => format!("B serves {} more req/s", size(c)),
        Some(MetricKind::ErrorRate) if c > 0.0 => format!("B's error rate is {} higher", size(c)),
        Some(MetricKind::ErrorRate) => format!("B's error rate is {} lower", size(c)),
        Some(MetricKind::ChecksRate) if c < 0.0 => format!("B passes {} fewer checks", size(c)),
        Some(MetricKind::ChecksRate) => format!("B passes {} more checks", size(c)),
        _ if c > 0.0 => format!("B is {} slower on {}", size(c), m.metric),
        _ => format!("B is {} faster on {}", size(c), m.metric),
    };
    let (lo, hi) = if is_points(m) {
        (points(m.low), points(m.high))
    } else {
        (pct(m.low), pct(m.high))
    };
    format!(
        "{what} [{lo}, {hi}], p = {}, {} trials",
        p_text(m.p),
        m.pairs * 2
    )
}

pub(super) fn p_text(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("{p:.3}")
    }
}

pub(super) fn tolerance(m: &MetricOutcome) -> String {
    let v = if is_points(m) {
        format!("{:.2} pt", m.tolerance)
    } else {
        format!("{:.1}%", m.tolerance * 100.0)
    };
    let src = match m.tolerance_source {
        ToleranceSource::Configured => "configured",
        ToleranceSource::Calibrated => "calibrated",
        ToleranceSource::Floor => "latency floor",
    };
    format!("{v} {src}")
}

fn detectable(m: &MetricOutcome) -> String {
    if is_points(m) {
        format!("{:.2} points", m.detectable)
    } else {
        format!("{:.1}%", m.detectable * 100.0)
    }
}

fn decision(m: &MetricOutcome) -> &'static str {
    match m.decision {
        Decision::Worse => "REGRESSED",
        Decision::Better => "improved",
        Decision::NotWorse => "within tolerance",
        Decision::Undecided => "undecided",
    }
}

pub(super) fn value(m: &MetricOutcome, v: f64) -> String {
    match m.kind() {
        Some(MetricKind::Rps) => format!("{v:.1}"),
        Some(MetricKind::ErrorRate | MetricKind::ChecksRate) => format!("{v:.2}%"),
        _ => format!("{v:.2} ms"),
    }
}

/// The headline: what the verdict is and what it rests on.
pub fn headline(r: &AbResult) -> String {
    let n = r.trials.len();
    let base = short(&r.base.commit);
    let head = short(&r.head.commit);
    match r.outcome {
        Outcome::Pass => format!(
            "PASS: B ({head}) is not slower than A ({base}) beyond the tolerances, {n} trials in {:.0}s",
            r.wall_s
        ),
        Outcome::Regressed => format!(
            "REGRESSED: B ({head}) is slower than A ({base}), {n} trials in {:.0}s",
            r.wall_s
        ),
        Outcome::Undecided => {
            let worst = r
                .metrics
                .iter()
                .filter(|m| m.gate && m.decision == Decision::Undecided)
                .max_by(|a, b| {
                    (a.detectable / a.tolerance.max(1e-9))
                        .total_cmp(&(b.detectable / b.tolerance.max(1e-9)))
                });
            let why = match worst {
                Some(m) => format!(
                    "; the smallest change these trials could detect is {} on {} ({}) against a tolerance of {}",
                    detectable(m),
                    m.metric,
                    m.scope,
                    tolerance(m)
                ),
                None => String::new(),
            };
            format!(
                "UNDECIDED: {n} trials in {:.0}s could not tell B ({head}) from A ({base}){why}; more trials (--max-trials, --budget) or `loadtest calibrate` may decide",
                r.wall_s
            )
        }
    }
}

pub fn short(commit: &str) -> String {
    match commit.split_once('-') {
        Some((sha, rest)) => format!("{}-{rest}", &sha[..sha.len().min(12)]),
        None => commit[..commit.len().min(12)].to_string(),
    }
}

pub fn text(r: &AbResult) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "A/B {}: A = {} ({}), B = {} ({})",
        r.scenario,
        short(&r.base.commit),
        r.base.reference,
        short(&r.head.commit),
        r.head.reference
    );
    let _ = writeln!(
        o,
        "  {} trials of {:.0}s after {:.0}s warm-up ({}), ABBA/BAAB blocks, database reset before each; tolerances: {}",
        r.trials.len(),
        r.settings.trial_s,
        r.settings.warmup_s,
        r.settings.apps,
        r.settings.tolerances
    );
    for m in r.metrics.iter().filter(|m| m.gate) {
        let extra = if m.decision == Decision::Undecided {
            format!(", could detect {}", detectable(m))
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "  {:<16} {}: {} (tolerance {}{extra})",
            m.scope,
            sentence(m),
            decision(m),
            tolerance(m)
        );
    }
    o.push_str(&where_text(r));
    let _ = writeln!(o, "{}", headline(r));
    o
}

/// A resource figure's name and value as a reader says them.
fn figure(name: &str, v: f64) -> (&'static str, String) {
    match name {
        "cpu_us_per_request" => ("CPU/request", format!("{v:.1} µs")),
        "net_bytes_per_request" => ("network/request", format!("{v:.0} B")),
        "mem_mb" => ("memory", format!("{v:.1} MB")),
        "calls_per_request" => ("calls/request", format!("{v:.2}")),
        "queries_per_request" => ("queries/request", format!("{v:.2}")),
        "ms_per_request" | "db_ms_per_request" => ("DB time/request", format!("{v:.2} ms")),
        _ => ("", format!("{v:.3}")),
    }
}

/// A finding's parts as a reader says them: the figure's name, both medians
/// and the change with its interval.
pub(super) struct FindingParts {
    pub what: String,
    pub a: String,
    pub b: String,
    pub change: String,
    pub low: String,
    pub high: String,
}

pub(super) fn finding_parts(f: &Finding) -> FindingParts {
    let (what, a) = figure(&f.figure, f.median_a);
    let (_, b) = figure(&f.figure, f.median_b);
    let what = if what.is_empty() {
        f.figure.clone()
    } else {
        what.to_string()
    };
    let (change, low, high) = if is_additive(&f.figure) {
        let d = |x: f64| format!("{x:+.2}");
        (d(f.change), d(f.low), d(f.high))
    } else {
        (pct(f.change), pct(f.low), pct(f.high))
    };
    FindingParts {
        what,
        a,
        b,
        change,
        low,
        high,
    }
}

/// One finding in a line: `app CPU/request +40.2% [+31.0%, +49.5%] (A 50.1 µs, B 70.3 µs), p = 0.008`.
pub fn finding(f: &Finding) -> String {
    let p = finding_parts(f);
    format!(
        "{} {} {} [{}, {}] (A {}, B {}), p = {}, {} pairs",
        f.service,
        p.what,
        p.change,
        p.low,
        p.high,
        p.a,
        p.b,
        p_text(f.p),
        f.pairs
    )
}

/// The "where" section: what moved beyond noise, largest first, or that
/// nothing did among the figures examined. It explains; it never gates.
fn where_text(r: &AbResult) -> String {
    if r.examined.is_empty() && r.database.is_none() {
        return String::new();
    }
    let mut o = String::from("  where (each side's app container and the database's statements, per request, judged like the verdict; explains, does not gate):\n");
    if let Some(reach) = crate::compare::ab::findings_reach(r) {
        let _ = writeln!(o, "    {reach}");
    }
    if r.findings.is_empty() {
        let _ = writeln!(
            o,
            "    nothing moved beyond noise ({} figures examined: {})",
            r.examined.len(),
            r.examined.join(", ")
        );
    }
    for f in &r.findings {
        let _ = writeln!(o, "    {}", finding(f));
    }
    if let Some(d) = &r.database {
        let _ = writeln!(o, "    {d}");
    }
    o
}

pub fn markdown(r: &AbResult) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "### A/B `{}`: {}\n", r.scenario, headline(r));
    let _ = writeln!(
        o,
        "A = `{}` ({}), B = `{}` ({}); {} trials of {:.0}s (warm-up {:.0}s), tolerances {}.\n",
        short(&r.base.commit),
        r.base.reference,
        short(&r.head.commit),
        r.head.reference,
        r.trials.len(),
        r.settings.trial_s,
        r.settings.warmup_s,
        r.settings.tolerances
    );
    let _ = writeln!(
        o,
        "| scope | metric | A (median) | B (median) | change | interval | p | tolerance | verdict |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---|---:|---|---|");
    for m in &r.metrics {
        let (c, lo, hi) = if is_points(m) {
            (points(m.change), points(m.low), points(m.high))
        } else {
            (pct(m.change), pct(m.low), pct(m.high))
        };
        let _ = writeln!(
            o,
            "| {} | {}{} | {} | {} | {c} | [{lo}, {hi}] | {} | {} | {} |",
            m.scope,
            m.metric,
            if m.gate { "" } else { " (info)" },
            value(m, m.median_a),
            value(m, m.median_b),
            p_text(m.p),
            tolerance(m),
            decision(m)
        );
    }
    if !r.examined.is_empty() || r.database.is_some() {
        let _ = writeln!(o, "\n**Where** (resource use per request of each side's app container; explains, does not gate):\n");
        if let Some(reach) = crate::compare::ab::findings_reach(r) {
            let _ = writeln!(o, "{reach}.\n");
        }
        if r.findings.is_empty() {
            let _ = writeln!(
                o,
                "Nothing moved beyond noise ({} figures examined).",
                r.examined.len()
            );
        }
        for f in &r.findings {
            let _ = writeln!(o, "- {}", finding(f));
        }
        if let Some(d) = &r.database {
            let _ = writeln!(o, "\n{d}");
        }
    }
    o
}

/// JUnit XML: one case per gate; a regression fails, undecided is skipped.
pub fn junit(r: &AbResult) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("loadtest ab");
    let mut suite = TestSuite::new(format!("loadtest.ab.{}", r.scenario));
    for m in r.metrics.iter().filter(|m| m.gate) {
        let detail = format!("{}: {} (tolerance {})", m.scope, sentence(m), tolerance(m));
        let status = match m.decision {
            Decision::Worse => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(format!("{} regressed", m.metric))
                    .set_type("regression")
                    .set_description(detail.clone());
                st
            }
            Decision::Undecided => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(format!("undecided: could detect {}", detectable(m)));
                st
            }
            _ => TestCaseStatus::success(),
        };
        let mut case = TestCase::new(format!("{} {}", m.scope, m.metric), status);
        case.set_classname(format!("loadtest.ab.{}", r.scenario));
        case.set_system_out(detail);
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    report.to_string().unwrap_or_default()
}
