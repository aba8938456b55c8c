//! Renders a comparison: console text (also the `.diff` file), markdown for a
//! pull-request comment, JUnit XML with one test case per gate, and JSON.

use std::fmt::Write;

use crate::compare::stats::Change;
use crate::compare::{Comparison, Method, MetricKind, MetricVerdict, Verdict};

pub fn value(m: MetricKind, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) => match m {
            MetricKind::Rps => format!("{v:.1}"),
            MetricKind::ErrorRate | MetricKind::ChecksRate => format!("{v:.2}%"),
            _ => format!("{v:.2}"),
        },
    }
}

fn signed(m: MetricKind, v: f64) -> String {
    match m.change() {
        Change::Percent => format!("{v:+.1}%"),
        Change::Points => format!("{v:+.2}pp"),
    }
}

pub fn change(mv: &MetricVerdict) -> String {
    mv.change
        .map(|c| signed(mv.metric, c))
        .unwrap_or_else(|| "-".into())
}

pub fn interval(mv: &MetricVerdict) -> String {
    match mv.interval {
        Some((lo, hi)) => format!("[{}, {}]", signed(mv.metric, lo), signed(mv.metric, hi)),
        None => "-".into(),
    }
}

pub fn p_value(mv: &MetricVerdict) -> String {
    match mv.p_value {
        Some(p) if p < 0.001 => "<0.001".into(),
        Some(p) => format!("{p:.3}"),
        None => "-".into(),
    }
}

fn tolerance(mv: &MetricVerdict) -> String {
    match mv.metric.change() {
        Change::Percent => format!("{}%", mv.tolerance),
        Change::Points => format!("{}pp", mv.tolerance),
    }
}

pub fn verdict(mv: &MetricVerdict) -> String {
    let v = mv.verdict.text();
    match (mv.verdict, mv.gate) {
        (Verdict::Regressed, true) => "REGRESSED".into(),
        (_, true) => v.into(),
        (_, false) => format!("{v} (info)"),
    }
}

fn method(c: &Comparison) -> String {
    if c.method == Method::SingleRuns {
        return match &c.noise {
            Some(n) => format!(
                "one run a side, against the between-run noise of {} runs of one commit; {:.0}% interval, t test on the runs' spread (never tighter than each run's own percentile sampling error), alpha {}",
                n.runs,
                c.confidence * 100.0,
                c.alpha
            ),
            None => "one run a side, no between-run noise known: only changes beyond the conservative bounds count".into(),
        };
    }
    let n = c
        .scopes
        .first()
        .and_then(|s| s.metrics.iter().find(|m| m.metric == MetricKind::P50))
        .map(|m| (m.n_baseline, m.n_current))
        .unwrap_or((0, 0));
    let unit = match c.method {
        Method::Windows => "one-second windows",
        Method::Trials | Method::SingleRuns => "trials",
    };
    format!(
        "{} vs {} {unit}; {:.0}% bootstrap interval ({} resamples); Mann-Whitney U, alpha {}",
        n.0,
        n.1,
        c.confidence * 100.0,
        c.resamples,
        c.alpha
    )
}

fn headline(c: &Comparison) -> String {
    let reg = c.regressed_gates();
    if reg.is_empty() {
        "OK: no gate regressed".into()
    } else {
        let which: Vec<String> = reg
            .iter()
            .map(|(s, m)| format!("{} {}", s.title(), m.metric.key()))
            .collect();
        format!(
            "REGRESSED: {} gate{} ({})",
            reg.len(),
            if reg.len() == 1 { "" } else { "s" },
            which.join(", ")
        )
    }
}

fn run_line(r: &crate::compare::RunRef) -> String {
    format!(
        "{}  (commit {}, {})  {}",
        r.run,
        r.commit.as_deref().unwrap_or("unknown"),
        r.started_at.get(..19).unwrap_or(&r.started_at),
        r.file
    )
}

/// The console table, also the head of the `.diff` file.
pub fn text(c: &Comparison) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "loadtest compare: {}", c.scenario);
    let _ = writeln!(o, "  baseline  {}", run_line(&c.baseline));
    let _ = writeln!(o, "  current   {}", run_line(&c.current));
    let _ = writeln!(o, "  method    {}", method(c));
    let _ = writeln!(o, "  verdict   {}", headline(c));
    for m in &c.mismatches {
        let _ = writeln!(o, "  MISMATCH  {m} (accepted with --allow-mismatch)");
    }
    for w in &c.warnings {
        let _ = writeln!(o, "  warning   {w}");
    }
    for s in &c.scopes {
        let _ = writeln!(o, "\n{}", s.title());
        let _ = writeln!(
            o,
            "  {:<12} {:>11} {:>11} {:>9}  {:<20} {:>7} {:>7}  verdict",
            "metric", "baseline", "current", "change", "95% interval", "p", "tol."
        );
        for mv in &s.metrics {
            let _ = writeln!(
                o,
                "  {:<12} {:>11} {:>11} {:>9}  {:<20} {:>7} {:>7}  {}",
                mv.metric.label(),
                value(mv.metric, mv.baseline),
                value(mv.metric, mv.current),
                change(mv),
                interval(mv),
                p_value(mv),
                tolerance(mv),
                verdict(mv)
            );
        }
    }
    let _ = writeln!(
        o,
        "\nA metric regresses only when the change is significant (p < {}) and the whole interval lies beyond its\ntolerance (tol.: from config/regression.toml, raised for fast requests so that a latency change must also\nexceed min_change_ms). (info) marks metrics that are reported but do not fail the check.",
        c.alpha
    );
    o
}

/// Markdown for a pull-request comment: summary line, regressions, then details.
pub fn markdown(c: &Comparison) -> String {
    let mut o = String::new();
    let reg = c.regressed_gates();
    let runs = format!(
        "baseline `{}` ({}) → current `{}` ({})",
        c.baseline.run,
        c.baseline.commit.as_deref().unwrap_or("unknown"),
        c.current.run,
        c.current.commit.as_deref().unwrap_or("unknown")
    );
    if reg.is_empty() {
        let _ = writeln!(
            o,
            "**loadtest** ✅ `{}`: no gate regressed — {runs}\n",
            c.scenario
        );
    } else {
        let _ = writeln!(
            o,
            "**loadtest** ❌ `{}`: {} gate{} regressed — {runs}\n",
            c.scenario,
            reg.len(),
            if reg.len() == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            o,
            "| request | metric | baseline | current | change [95% CI] | p | tolerance |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---|---:|---:|");
        for (s, mv) in &reg {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | **{}** {} | {} | {} |",
                s.title(),
                mv.metric.label(),
                value(mv.metric, mv.baseline),
                value(mv.metric, mv.current),
                change(mv),
                interval(mv),
                p_value(mv),
                tolerance(mv)
            );
        }
        let _ = writeln!(o);
    }
    let improved: Vec<String> = c
        .scopes
        .iter()
        .flat_map(|s| s.metrics.iter().map(move |m| (s, m)))
        .filter(|(_, m)| m.verdict == Verdict::Improved)
        .map(|(s, m)| format!("{} {} {}", s.title(), m.metric.key(), change(m)))
        .collect();
    if !improved.is_empty() {
        let _ = writeln!(o, "Improved: {}\n", improved.join(", "));
    }
    for m in &c.mismatches {
        let _ = writeln!(o, "> ⚠️ mismatch: {m}");
    }
    for w in &c.warnings {
        let _ = writeln!(o, "> ⚠️ {w}");
    }
    if !c.mismatches.is_empty() || !c.warnings.is_empty() {
        let _ = writeln!(o);
    }
    let _ = writeln!(
        o,
        "<details><summary>All metrics ({})</summary>\n",
        method(c)
    );
    for s in &c.scopes {
        let _ = writeln!(o, "#### {}\n", s.title());
        let _ = writeln!(
            o,
            "| metric | baseline | current | change | 95% CI | p | verdict |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---|---:|---|");
        for mv in &s.metrics {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} |",
                mv.metric.label(),
                value(mv.metric, mv.baseline),
                value(mv.metric, mv.current),
                change(mv),
                interval(mv),
                p_value(mv),
                verdict(mv)
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "</details>");
    o
}

/// JUnit XML: one test case per gate, failed when the gate regressed.
pub fn junit(c: &Comparison) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("loadtest compare");
    let mut suite = TestSuite::new(format!("loadtest.{}", c.scenario));
    for s in &c.scopes {
        for mv in s.metrics.iter().filter(|m| m.gate) {
            let detail = format!(
                "{} {}: {} -> {}, change {} {}, p {}, tolerance {}, verdict {}",
                s.title(),
                mv.metric.label(),
                value(mv.metric, mv.baseline),
                value(mv.metric, mv.current),
                change(mv),
                interval(mv),
                p_value(mv),
                tolerance(mv),
                mv.verdict.text()
            );
            let status = if mv.regressed_gate() {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(format!("{} regressed", mv.metric.key()))
                    .set_type("regression")
                    .set_description(detail.clone());
                st
            } else {
                TestCaseStatus::success()
            };
            let mut case = TestCase::new(format!("{} {}", s.title(), mv.metric.key()), status);
            case.set_classname(format!("loadtest.{}.{}", c.scenario, s.title()));
            case.set_system_out(detail);
            suite.add_test_case(case);
        }
    }
    report.add_test_suite(suite);
    report.to_string().unwrap_or_default()
}

pub fn json(c: &Comparison, exit_code: u8) -> String {
    let mut v = serde_json::to_value(c).expect("comparison serialises");
    if let Some(m) = v.as_object_mut() {
        m.insert("passed".into(), serde_json::Value::Bool(c.passed()));
        m.insert("exit_code".into(), serde_json::Value::from(exit_code));
    }
    serde_json::to_string_pretty(&v).expect("json")
}

/// Unified diff of the two text summaries, for the `.diff` file.
pub fn summary_diff(base: &str, cur: &str, base_name: &str, cur_name: &str) -> String {
    similar::TextDiff::from_lines(base, cur)
        .unified_diff()
        .context_radius(3)
        .header(base_name, cur_name)
        .to_string()
}
