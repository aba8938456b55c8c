//! The plain-text end-of-test summary (`<run>_<scenario>.summary`).

use std::fmt::Write;

use super::{RunResult, Trend};

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2}s", v / 1000.0)
    } else {
        format!("{v:.2}ms")
    }
}

fn trend(t: &Trend) -> String {
    format!(
        "avg={} min={} med={} max={} p(90)={} p(95)={} p(99)={}",
        ms(t.avg),
        ms(t.min),
        ms(t.med),
        ms(t.max),
        ms(t.p90),
        ms(t.p95),
        ms(t.p99)
    )
}

fn bytes(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.1} GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1} MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} kB", f / 1e3)
    } else {
        format!("{n} B")
    }
}

fn line(out: &mut String, label: &str, value: String) {
    let dots = 28usize.saturating_sub(label.len());
    let _ = writeln!(out, "    {label}{}: {value}", ".".repeat(dots));
}

/// Renders the summary. It is derived from the result only, so it can be
/// regenerated from a result file.
pub fn render(r: &RunResult) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "  scenario: {} ({})", r.scenario, r.scenario_file);
    if let Some(d) = &r.description {
        let _ = writeln!(o, "            {d}");
    }
    let _ = writeln!(o, "  run:      {}", r.run);
    let _ = writeln!(o, "  target:   {}", r.target);
    let exec = r
        .options
        .get("executor")
        .and_then(|e| e.as_str())
        .unwrap_or(if r.options.get("engine").is_some_and(|e| e == "k6") {
            "k6 script"
        } else {
            "?"
        });
    let _ = writeln!(
        o,
        "  executor: {exec}, up to {} VUs, ran {:.1}s",
        r.metrics.vus_max, r.duration_s
    );
    if let Some(g) = &r.git {
        let _ = writeln!(
            o,
            "  commit:   {}{}",
            g.commit,
            if g.dirty { " (dirty)" } else { "" }
        );
    }
    if r.interrupted {
        let _ = writeln!(
            o,
            "  INTERRUPTED: stopped by Ctrl-C before the planned end; figures are partial"
        );
    }
    if let Some(t) = &r.aborted_by {
        let _ = writeln!(o, "  ABORTED: threshold `{t}` failed with abort_on_fail");
    }
    if let Some(s) = &r.shard {
        let _ = writeln!(
            o,
            "  shard:    {}/{} (segment {} of {}): this generator's share only; `loadtest merge` adds the shards up",
            s.index, s.count, s.segment, s.sequence
        );
    }
    if let Some(m) = &r.merged {
        let parts: Vec<String> = m
            .shards
            .iter()
            .map(|s| {
                format!(
                    "{}: {} requests{}",
                    s.index,
                    s.requests,
                    match &s.problem {
                        Some(p) => format!(" ({p})"),
                        None => String::new(),
                    }
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "  merged:   {} shard results ({})",
            m.shards.len(),
            parts.join(", ")
        );
        if !m.missing.is_empty() {
            let missing: Vec<String> = m.missing.iter().map(|i| i.to_string()).collect();
            let _ = writeln!(
                o,
                "  INCOMPLETE: shard(s) {} missing or cut short: the figures undercount the load",
                missing.join(", ")
            );
        }
    }

    if !r.thresholds.is_empty() {
        let _ = writeln!(o, "\n  THRESHOLDS");
        for t in &r.thresholds {
            let mark = if t.ok { "✓" } else { "✗" };
            let value = match t.value {
                Some(v) => format!("{v:.4}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string(),
                None => "no data".into(),
            };
            let _ = writeln!(
                o,
                "    {mark} {}: {}  (observed {value})",
                t.metric, t.expression
            );
        }
    }

    let mut requests: Vec<_> = r.requests.iter().collect();
    requests.sort_by_key(|(_, q)| q.index);

    let c = &r.metrics.checks;
    if c.passes + c.fails > 0 {
        let _ = writeln!(
            o,
            "\n  CHECKS  {:.2}%  ✓ {}  ✗ {}",
            100.0 * c.rate,
            c.passes,
            c.fails
        );
        for ch in &r.checks {
            let mark = if ch.fails == 0 { "✓" } else { "✗" };
            let _ = writeln!(
                o,
                "    {mark} {}  ({} ✓ / {} ✗)",
                ch.name, ch.passes, ch.fails
            );
        }
        for (name, q) in &requests {
            if q.checks.is_empty() {
                continue;
            }
            let _ = writeln!(o, "    {name}");
            for ch in &q.checks {
                let mark = if ch.fails == 0 { "✓" } else { "✗" };
                let _ = writeln!(
                    o,
                    "      {mark} {}  ({} ✓ / {} ✗)",
                    ch.name, ch.passes, ch.fails
                );
            }
        }
    }

    let m = &r.metrics;
    let _ = writeln!(o, "\n  HTTP");
    line(&mut o, "http_req_duration", trend(&m.http_req_duration));
    for (name, q) in &requests {
        line(
            &mut o,
            &format!("  {{ name:{name} }}"),
            trend(&q.http_req_duration),
        );
    }
    if let Some(u) = &m.http_req_duration_uncorrected {
        line(&mut o, "http_req_duration (uncorr.)", trend(u));
    }
    line(
        &mut o,
        "http_req_failed",
        format!(
            "{:.2}%  {} out of {}",
            100.0 * m.http_req_failed.rate,
            m.http_req_failed.passes,
            m.http_reqs.count
        ),
    );
    line(
        &mut o,
        "http_reqs",
        format!("{}  {:.2}/s", m.http_reqs.count, m.http_reqs.rate),
    );
    for (name, q) in &requests {
        let codes: Vec<String> = q
            .status_codes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        line(
            &mut o,
            &format!("  {{ name:{name} }}"),
            format!(
                "{}  {:.2}/s  failed {:.2}%  [{}]",
                q.http_reqs.count,
                q.http_reqs.rate,
                100.0 * q.http_req_failed.rate,
                codes.join(", ")
            ),
        );
    }

    if let Some(c) = &m.http_req_connecting {
        line(&mut o, "http_req_connecting", trend(c));
    }
    if let Some(t) = &m.http_req_tls_handshaking {
        line(&mut o, "http_req_tls_handshaking", trend(t));
    }

    let _ = writeln!(o, "\n  EXECUTION");
    line(
        &mut o,
        "iterations",
        format!("{}  {:.2}/s", m.iterations.count, m.iterations.rate),
    );
    line(&mut o, "iteration_duration", trend(&m.iteration_duration));
    if m.dropped_iterations.count > 0 || exec.ends_with("arrival-rate") {
        line(
            &mut o,
            "dropped_iterations",
            format!(
                "{}  {:.2}/s",
                m.dropped_iterations.count, m.dropped_iterations.rate
            ),
        );
    }
    if m.interrupted_iterations > 0 {
        line(
            &mut o,
            "interrupted_iterations",
            m.interrupted_iterations.to_string(),
        );
    }
    line(&mut o, "vus_max", m.vus_max.to_string());

    let _ = writeln!(o, "\n  NETWORK");
    line(
        &mut o,
        "data_received",
        format!(
            "{}  {}/s",
            bytes(m.data_received.count),
            bytes(m.data_received.rate as u64)
        ),
    );
    line(
        &mut o,
        "data_sent",
        format!(
            "{}  {}/s",
            bytes(m.data_sent.count),
            bytes(m.data_sent.rate as u64)
        ),
    );

    if let Some(v) = &r.server {
        server_section(&mut o, v);
    }

    if !r.errors.is_empty() {
        let _ = writeln!(
            o,
            "\n  ERRORS (requests that got no response, and template errors)"
        );
        for e in &r.errors {
            let _ = writeln!(o, "    {:>8}  {}", e.count, e.error);
        }
    }

    let lg = &r.loadgen;
    let _ = writeln!(
        o,
        "\n  LOAD GENERATOR  {}, {:.1} CPU s ({:.0}% of {} cores), peak RSS {} MB",
        if lg.workers == 0 {
            "k6".to_string()
        } else {
            format!("{} workers", lg.workers)
        },
        lg.cpu_seconds,
        100.0 * lg.cpu_saturation,
        r.host.cores,
        lg.max_rss_kb / 1024
    );
    if lg.cpu_saturation > 0.9 {
        let _ = writeln!(
            o,
            "    warning: the load generator was CPU-bound; latencies include its own queueing"
        );
    }
    o
}

/// Client vs server p95 per route; large gaps called out.
fn server_section(o: &mut String, v: &crate::metrics::server::ServerView) {
    let _ = writeln!(
        o,
        "\n  CLIENT VS SERVER  p95 per route over the run ({} s, from {})",
        v.window_s, v.prometheus
    );
    let _ = writeln!(
        o,
        "    {:<36} {:>10} {:>10} {:>10} {:>9}",
        "route", "client ms", "server ms", "gap ms", "server n"
    );
    for r in &v.routes {
        let bucket = match r.server_p95_bucket_ms.1 {
            Some(hi) => format!("{}..{hi}", r.server_p95_bucket_ms.0),
            None => format!("> {}", r.server_p95_bucket_ms.0),
        };
        let _ = writeln!(
            o,
            "    {:<36} {:>10.2} {:>10.2} {:>10.2} {:>9}  server bucket {bucket} ms{}",
            format!("{} {}", r.method, r.route),
            r.client_p95_ms,
            r.server_p95_ms,
            r.gap_ms,
            r.server_count,
            if r.large_gap { "  <- LARGE GAP" } else { "" }
        );
    }
    if v.routes.iter().any(|r| r.large_gap) {
        let _ = writeln!(
            o,
            "    LARGE GAP: the client waited well beyond anything the service reports for that route: time goes to the network, queues before the handler, or work the service's telemetry does not time"
        );
    }
    if !v.unmatched.is_empty() {
        let _ = writeln!(o, "    no server route matched: {}", v.unmatched.join(", "));
    }
}
