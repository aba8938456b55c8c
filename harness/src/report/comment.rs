//! An A/B verdict as the one comment a reviewer reads in a pull request
//! (`--format github`) or a merge request (`--format gitlab`): the verdict
//! per gate with its interval and trial count, what the verdict rests on, the
//! "where" table, every metric folded away, and where the HTML report is.
//! The first line is a hidden marker, so a CI job finds and updates its own
//! comment instead of adding one per push.

use std::fmt::Write;

use super::ab::{finding_parts, headline, is_points, sentence, short, tolerance};
use crate::compare::ab::{AbResult, MetricOutcome, Outcome};
use crate::compare::paired::Decision;

/// Which code host renders the comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Github,
    Gitlab,
}

/// The hidden first line a CI job looks for (one comment per scenario).
pub fn marker(scenario: &str) -> String {
    format!("<!-- loadtest-ab: {} -->", cell(scenario))
}

/// Text safe inside a table cell: a `|` would end the cell, a line break the
/// row; `<` would open HTML.
pub fn cell(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '|' => o.push_str("\\|"),
            '\n' | '\r' | '\t' => o.push(' '),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            _ => o.push(ch),
        }
    }
    o
}

/// Inline code that survives backticks in the text (CommonMark: a run of
/// backticks longer than any inside, padded with spaces when needed).
pub fn code(s: &str) -> String {
    let runs = s.split(|c: char| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(runs + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    // A code span is literal (no HTML, no entities), but GFM splits table
    // cells before it reads spans: pipes stay escaped.
    let body = s.replace('|', "\\|").replace(['\n', '\r', '\t'], " ");
    format!("{fence}{pad}{body}{pad}{fence}")
}

fn verdict_word(r: &AbResult) -> &'static str {
    match r.outcome {
        Outcome::Pass => "PASS",
        Outcome::Regressed => "REGRESSED",
        Outcome::Undecided => "UNDECIDED",
    }
}

fn decision(m: &MetricOutcome) -> &'static str {
    match m.decision {
        Decision::Worse => "**regressed**",
        Decision::Better => "improved",
        Decision::NotWorse => "within tolerance",
        Decision::Undecided => "undecided",
    }
}

fn change_cells(m: &MetricOutcome) -> (String, String) {
    if is_points(m) {
        (
            format!("{:+.2} pt", m.change),
            format!("[{:+.2}, {:+.2}] pt", m.low, m.high),
        )
    } else {
        (
            format!("{:+.1}%", m.change * 100.0),
            format!("[{:+.1}%, {:+.1}%]", m.low * 100.0, m.high * 100.0),
        )
    }
}

fn detectable(m: &MetricOutcome) -> String {
    if is_points(m) {
        format!("{:.2} pt", m.detectable)
    } else {
        format!("{:.1}%", m.detectable * 100.0)
    }
}

fn metric_rows(o: &mut String, metrics: &[&MetricOutcome]) {
    let _ = writeln!(
        o,
        "| scope | metric | A (median) | B (median) | change | interval | p | tolerance | could detect | verdict |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---|---:|---|---:|---|");
    for m in metrics {
        let (c, iv) = change_cells(m);
        let _ = writeln!(
            o,
            "| {} | {}{} | {} | {} | {c} | {iv} | {} | {} | {} | {} |",
            cell(&m.scope),
            cell(&m.metric),
            if m.gate { "" } else { " (info)" },
            super::ab::value(m, m.median_a),
            super::ab::value(m, m.median_b),
            super::ab::p_text(m.p),
            cell(&tolerance(m)),
            detectable(m),
            decision(m)
        );
    }
}

/// Where the HTML report of the verdict is: its path in the job's
/// artifacts and, when the CI says, a URL to open (GitLab: the file itself;
/// GitHub: the run page listing the artifacts).
#[derive(Clone, Debug, Default)]
pub struct ReportLink {
    pub path: String,
    pub url: Option<String>,
}

impl ReportLink {
    /// From the CI's own variables (`env` reads one), for `path` relative to
    /// the job's working folder.
    pub fn from_ci(host: Host, path: &str, env: impl Fn(&str) -> Option<String>) -> ReportLink {
        let url = match host {
            Host::Gitlab => env("CI_JOB_URL").map(|job| format!("{job}/artifacts/file/{path}")),
            Host::Github => match (
                env("GITHUB_SERVER_URL"),
                env("GITHUB_REPOSITORY"),
                env("GITHUB_RUN_ID"),
            ) {
                (Some(s), Some(r), Some(id)) => Some(format!("{s}/{r}/actions/runs/{id}")),
                _ => None,
            },
        };
        ReportLink {
            path: path.to_string(),
            url: url.filter(|u| u.starts_with("http")),
        }
    }
}

/// The comment, with where the HTML report is when one was written.
pub fn comment(r: &AbResult, host: Host, report: Option<&ReportLink>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", marker(&r.scenario));
    let _ = writeln!(
        o,
        "### loadtest A/B {}: **{}**\n",
        code(&r.scenario),
        verdict_word(r)
    );
    let _ = writeln!(o, "{}\n", cell(&headline(r)));
    let _ = writeln!(
        o,
        "A = {} ({}), B = {} ({}); {} trials ({} pairs) of {:.0} s after {:.0} s warm-up, {}.\n",
        code(&short(&r.base.commit)),
        cell(&r.base.reference),
        code(&short(&r.head.commit)),
        cell(&r.head.reference),
        r.trials.len(),
        r.trials.len() / 2,
        r.settings.trial_s,
        r.settings.warmup_s,
        cell(&r.settings.apps)
    );
    let gates: Vec<&MetricOutcome> = r.metrics.iter().filter(|m| m.gate).collect();
    if gates.is_empty() {
        let _ = writeln!(o, "No gated metric was measured.\n");
    } else {
        metric_rows(&mut o, &gates);
        o.push('\n');
        for m in gates.iter().filter(|m| m.decision == Decision::Worse) {
            let _ = writeln!(o, "- {}: {}", cell(&m.scope), cell(&sentence(m)));
        }
        if gates.iter().any(|m| m.decision == Decision::Worse) {
            o.push('\n');
        }
    }
    let _ = writeln!(
        o,
        "How far to trust it: a gate regresses only when B is worse with p < {} (an exact sign-flip test over the pairs, {} false alarms in 100 at most by design) and the whole {:.0}% interval lies beyond its tolerance; tolerances {}. \"could detect\": the smallest change these trials could have shown. Measured false-alarm rate and power of this rule: `docs/verdict.md`.\n",
        r.settings.alpha,
        (r.settings.alpha * 100.0).round(),
        (1.0 - r.settings.alpha) * 100.0,
        cell(&r.settings.tolerances)
    );
    where_section(&mut o, r);
    let _ = writeln!(
        o,
        "<details><summary>Every metric ({})</summary>\n",
        r.metrics.len()
    );
    let all: Vec<&MetricOutcome> = r.metrics.iter().collect();
    metric_rows(&mut o, &all);
    let _ = writeln!(o, "\n</details>\n");
    if let Some(link) = report {
        let path = code(&link.path);
        let _ = match (&link.url, host) {
            (Some(url), Host::Gitlab) => writeln!(o, "HTML report: [{path}]({url})"),
            (Some(url), Host::Github) => writeln!(
                o,
                "HTML report: {path}, in [the workflow run's artifacts]({url})"
            ),
            (None, Host::Github) => {
                writeln!(o, "HTML report: {path}, in the workflow run's artifacts")
            }
            (None, Host::Gitlab) => writeln!(o, "HTML report: {path}, in the job's artifacts"),
        };
    }
    o
}

fn where_section(o: &mut String, r: &AbResult) {
    if r.examined.is_empty() && r.database.is_none() {
        return;
    }
    let _ = writeln!(
        o,
        "#### Where\n\nResource use per request of each side, judged pair by pair like the verdict; it explains, it does not gate.\n"
    );
    if let Some(reach) = crate::compare::ab::findings_reach(r) {
        let _ = writeln!(o, "{reach}.\n");
    }
    if r.findings.is_empty() {
        let _ = writeln!(
            o,
            "Nothing moved beyond noise ({} figures examined).\n",
            r.examined.len()
        );
    } else {
        let _ = writeln!(o, "| where | figure | A | B | change | interval | p |");
        let _ = writeln!(o, "|---|---|---:|---:|---:|---|---:|");
        for f in &r.findings {
            let p = finding_parts(f);
            let service = match f.service.strip_prefix("db: ") {
                Some(stmt) => format!("db: {}", code(stmt)),
                None => cell(&f.service),
            };
            let _ = writeln!(
                o,
                "| {service} | {} | {} | {} | {} | [{}, {}] | {} |",
                cell(&p.what),
                cell(&p.a),
                cell(&p.b),
                p.change,
                p.low,
                p.high,
                super::ab::p_text(f.p)
            );
        }
        o.push('\n');
    }
    if let Some(d) = &r.database {
        let _ = writeln!(o, "{}\n", cell(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulldown_cmark::{html, Options, Parser};

    fn result(stmt: &str) -> AbResult {
        let m = |scope: &str, metric: &str, gate: bool, decision: &str| {
            serde_json::json!({
                "scope": scope, "metric": metric, "gate": gate, "pairs": 6,
                "change": 0.226, "low": 0.13, "high": 0.337, "p": 0.03125,
                "detectable": 0.08, "tolerance": 0.1, "tolerance_source": "configured",
                "decision": decision, "median_a": 148.0, "median_b": 181.4
            })
        };
        let v = serde_json::json!({
            "schema_version": 1, "kind": "ab", "scenario": "payment|confirm",
            "base": {"reference": "origin/main", "commit": "0123456789abcdef0123", "image": "a", "image_id": "x"},
            "head": {"reference": "HEAD", "commit": "fedcba9876543210fedc-dirty", "image": "b", "image_id": "y"},
            "settings": {"trial_s": 15.0, "warmup_s": 5.0, "min_trials": 12, "max_trials": 32,
                "budget_s": 600.0, "alpha": 0.05, "seed": 7, "apps": "A and B at once (duet)",
                "tolerances": "configured (config/regression.toml)"},
            "started_at": "2026-12-03T00:00:00Z", "wall_s": 89.0,
            "trials": [],
            "metrics": [
                m("all requests", "p95", true, "worse"),
                m("all requests", "p50", true, "not_worse"),
                m("confirm | pay", "p99", false, "undecided")
            ],
            "outcome": "regressed", "exit_code": 98,
            "findings": [
                {"service": format!("db: {stmt}"), "figure": "calls_per_request",
                 "median_a": 0.0, "median_b": 1.0, "change": 1.0, "low": 1.0, "high": 1.0,
                 "p": 0.03125, "pairs": 6},
                {"service": "app", "figure": "cpu_us_per_request",
                 "median_a": 50.1, "median_b": 70.3, "change": 0.402, "low": 0.31, "high": 0.495,
                 "p": 0.03125, "pairs": 6}
            ],
            "examined": ["app cpu_us_per_request"],
            "database": null
        });
        serde_json::from_value(v).unwrap()
    }

    fn render(md: &str) -> String {
        let mut out = String::new();
        html::push_html(&mut out, Parser::new_ext(md, Options::ENABLE_TABLES));
        out
    }

    /// Every table renders as a table whose rows all have the header's cell
    /// count, whatever the statement's text holds (pipes, backticks, `<`).
    #[test]
    fn tables_stay_whole_with_pipes_and_backticks_in_a_statement() {
        let stmt = "SELECT a || b FROM `t` WHERE x < $1";
        let link = ReportLink::from_ci(Host::Gitlab, "benchmark/ab_x.html", |k| {
            (k == "CI_JOB_URL").then(|| "https://gitlab.example/g/p/-/jobs/9".to_string())
        });
        let md = comment(&result(stmt), Host::Gitlab, Some(&link));
        assert!(
            md.starts_with("<!-- loadtest-ab: payment\\|confirm -->\n"),
            "{md}"
        );
        let page = render(&md);
        // Three tables: gates, where, every metric.
        assert_eq!(page.matches("<table>").count(), 3, "{page}");
        for table in page.split("<table>").skip(1) {
            let table = &table[..table.find("</table>").unwrap()];
            let head = table[..table.find("</thead>").unwrap()]
                .matches("</th>")
                .count();
            let body = &table[table.find("<tbody>").unwrap()..];
            for row in body.split("<tr>").skip(1) {
                assert_eq!(row.matches("</td>").count(), head, "{row}\n{md}");
            }
        }
        // The statement arrives whole, as code, its pipes and `<` as text.
        assert!(
            page.contains("<code>SELECT a || b FROM `t` WHERE x &lt; $1</code>"),
            "{page}"
        );
        assert!(page.contains("<strong>REGRESSED</strong>"), "{page}");
        assert!(page.contains(
            "href=\"https://gitlab.example/g/p/-/jobs/9/artifacts/file/benchmark/ab_x.html\""
        ));
        // The gate table holds the gates only; the folded one every metric.
        let gates = page.split("<table>").nth(1).unwrap();
        assert_eq!(gates.matches("<tr>").count(), 3, "{gates}");
        assert!(md.contains("<details><summary>Every metric (3)</summary>"));
        assert!(md.contains("p < 0.05"), "{md}");
    }

    #[test]
    fn github_links_the_run_page_and_says_where_the_file_is() {
        let env = |k: &str| match k {
            "GITHUB_SERVER_URL" => Some("https://github.com".to_string()),
            "GITHUB_REPOSITORY" => Some("o/r".to_string()),
            "GITHUB_RUN_ID" => Some("42".to_string()),
            _ => None,
        };
        let link = ReportLink::from_ci(Host::Github, "benchmark/ab_x.html", env);
        let md = comment(&result("SELECT 1"), Host::Github, Some(&link));
        assert!(md.contains(
            "HTML report: `benchmark/ab_x.html`, in [the workflow run's artifacts](https://github.com/o/r/actions/runs/42)"
        ), "{md}");
        let none = ReportLink::from_ci(Host::Github, "benchmark/ab_x.html", |_| None);
        assert!(none.url.is_none());
    }

    #[test]
    fn code_spans_outlast_the_backticks_inside() {
        assert_eq!(code("a"), "`a`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x`"), "`` `x` ``");
        assert_eq!(cell("a|b\nc<d"), "a\\|b c&lt;d");
    }

    /// Too few pairs are said, with how many trials would do.
    #[test]
    fn too_few_pairs_for_a_finding_are_said() {
        use crate::compare::ab::{findings_reach, Trial};
        let mut r = result("SELECT 1");
        r.examined = [
            "app cpu_us_per_request",
            "app mem_mb",
            "app net_bytes_per_request",
            "db queries_per_request",
        ]
        .map(String::from)
        .to_vec();
        let trials = |n: usize| -> Vec<Trial> {
            (0..n)
                .map(|i| {
                    serde_json::from_value(serde_json::json!({
                        "index": i, "side": if i % 2 == 0 { "A" } else { "B" },
                        "started_at": "", "duration_s": 1.0, "reset_ms": 0, "requests": 1,
                        "values": {}
                    }))
                    .unwrap()
                })
                .collect()
        };
        r.trials = trials(8);
        let said = findings_reach(&r).unwrap();
        assert!(
            said.starts_with("4 pairs cannot show a finding") && said.contains("12 trials"),
            "{said}"
        );
        r.trials = trials(12);
        let said = findings_reach(&r).unwrap();
        assert!(
            said.contains("cannot name a container's figure") && said.contains("16 trials"),
            "{said}"
        );
        assert!(comment(&r, Host::Github, None).contains(&said));
        r.trials = trials(16);
        assert_eq!(findings_reach(&r), None);
    }
}
