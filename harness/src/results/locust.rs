//! Locust's CSV files (`--csv PREFIX`): `PREFIX_stats.csv` and
//! `PREFIX_failures.csv` at the end of the run, `PREFIX_stats_history.csv`
//! a row per request name and an `Aggregated` row every second while it
//! runs, with Locust's column names, so that spreadsheets and scripts made
//! for Locust's output read ours. Times in milliseconds, as Locust's.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use super::RunResult;
use crate::metrics::MetricsSet;

/// Locust's reported percentiles and their column names.
const PERCENTILES: [(f64, &str); 11] = [
    (0.50, "50%"),
    (0.66, "66%"),
    (0.75, "75%"),
    (0.80, "80%"),
    (0.90, "90%"),
    (0.95, "95%"),
    (0.98, "98%"),
    (0.99, "99%"),
    (0.999, "99.9%"),
    (0.9999, "99.99%"),
    (1.0, "100%"),
];

const STATS_HEAD: [&str; 11] = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
];

const HISTORY_TOTALS: [&str; 7] = [
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
];

/// `<prefix>_<kind>.csv`.
pub fn path(prefix: &Path, kind: &str) -> PathBuf {
    let mut name = prefix.file_name().unwrap_or_default().to_os_string();
    name.push(format!("_{kind}.csv"));
    prefix.with_file_name(name)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// A time in ms as Locust prints it: whole for percentiles and medians.
fn whole_ms(us: u64) -> String {
    format!("{}", (us as f64 / 1000.0).round() as u64)
}

fn short(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".into()
    } else {
        s.to_string()
    }
}

fn percentiles(h: &Histogram<u64>) -> Vec<String> {
    PERCENTILES
        .iter()
        .map(|(q, _)| {
            if h.is_empty() {
                "N/A".into()
            } else if *q >= 1.0 {
                whole_ms(h.max())
            } else {
                whole_ms(h.value_at_quantile(*q))
            }
        })
        .collect()
}

/// Median, average, min, max of a histogram (Locust writes 0 for an empty one).
fn summary(h: &Histogram<u64>) -> [String; 4] {
    if h.is_empty() {
        return ["0".into(), "0".into(), "0".into(), "0".into()];
    }
    [
        whole_ms(h.value_at_quantile(0.5)),
        short(h.mean() / 1000.0),
        short(ms(h.min())),
        short(ms(h.max())),
    ]
}

fn write_row(w: &mut csv::Writer<impl Write>, row: &[String]) -> std::io::Result<()> {
    w.write_record(row).map_err(std::io::Error::other)
}

/// The `_stats_history.csv` writer, fed once a second by the engine.
pub struct History {
    out: csv::Writer<std::io::BufWriter<std::fs::File>>,
    /// (method, name) per load step.
    steps: Vec<(String, String)>,
    pub path: PathBuf,
    /// The first write error; later rows are skipped and the run goes on.
    pub failed: Option<std::io::Error>,
}

impl History {
    pub fn create(prefix: &Path, steps: Vec<(String, String)>) -> Result<History> {
        let path = path(prefix, "stats_history");
        let file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = csv::Writer::from_writer(std::io::BufWriter::new(file));
        let mut head: Vec<String> = [
            "Timestamp",
            "User Count",
            "Type",
            "Name",
            "Requests/s",
            "Failures/s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        head.extend(PERCENTILES.iter().map(|(_, n)| n.to_string()));
        head.extend(HISTORY_TOTALS.iter().map(|s| s.to_string()));
        write_row(&mut out, &head).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(History {
            out,
            steps,
            path,
            failed: None,
        })
    }

    fn rows(&mut self, vus: u64, window: &MetricsSet, total: &MetricsSet) -> std::io::Result<()> {
        // As Locust: the time the row is written (trials of --repeat follow one another).
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        let row = |out: &mut csv::Writer<_>,
                   method: &str,
                   name: &str,
                   count: u64,
                   failed: u64,
                   wh: &Histogram<u64>,
                   tcount: u64,
                   tfailed: u64,
                   th: &Histogram<u64>| {
            let mut r = vec![
                ts.clone(),
                vus.to_string(),
                method.to_string(),
                name.to_string(),
                format!("{:.6}", count as f64),
                format!("{:.6}", failed as f64),
            ];
            r.extend(percentiles(wh));
            r.push(tcount.to_string());
            r.push(tfailed.to_string());
            r.extend(summary(th));
            // Bodies are not measured per request (bytes on the wire are in the JSON result).
            r.push("0".into());
            write_row(out, &r)
        };
        for (i, (method, name)) in self.steps.iter().enumerate() {
            let (w, t) = (&window.requests[i], &total.requests[i]);
            row(
                &mut self.out,
                method,
                name,
                w.count,
                w.failed,
                &w.duration,
                t.count,
                t.failed,
                &t.duration,
            )?;
        }
        row(
            &mut self.out,
            "",
            "Aggregated",
            window.total_requests(),
            window.total_failed(),
            &window.all_durations(),
            total.total_requests(),
            total.total_failed(),
            &total.all_durations(),
        )?;
        self.out.flush()
    }
}

impl crate::engine::WindowSink for History {
    fn window(&mut self, _second: u64, vus: u64, window: &MetricsSet, total: &MetricsSet) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.rows(vus, window, total) {
            self.failed = Some(e);
        }
    }
}

/// `_stats.csv` and `_failures.csv` from a finished run; returns their paths.
pub fn write_final(prefix: &Path, r: &RunResult) -> Result<Vec<PathBuf>> {
    let dur = r.duration_s.max(1e-9);
    let mut stats = csv::Writer::from_writer(Vec::new());
    let mut head: Vec<String> = STATS_HEAD.iter().map(|s| s.to_string()).collect();
    head.extend(PERCENTILES.iter().map(|(_, n)| n.to_string()));
    write_row(&mut stats, &head)?;
    // Locust sorts its entries by name, then method.
    let mut names: Vec<(&String, &super::RequestResult)> = r.requests.iter().collect();
    names.sort_by(|a, b| (a.0, &a.1.method).cmp(&(b.0, &b.1.method)));
    let mut all = crate::metrics::new_histogram();
    let (mut count, mut failed) = (0u64, 0u64);
    for (name, q) in &names {
        let h = r.histogram(name)?;
        all.add(&h)
            .map_err(|e| anyhow::anyhow!("histograms of {name}: {e:?}"))?;
        let f = q.http_req_failed.passes;
        count += q.http_reqs.count;
        failed += f;
        let mut row = vec![
            q.method.clone(),
            name.to_string(),
            q.http_reqs.count.to_string(),
            f.to_string(),
        ];
        row.extend(summary(&h));
        row.push("0".into());
        row.push(short(q.http_reqs.count as f64 / dur));
        row.push(short(f as f64 / dur));
        row.extend(percentiles(&h));
        write_row(&mut stats, &row)?;
    }
    let mut row = vec![
        String::new(),
        "Aggregated".into(),
        count.to_string(),
        failed.to_string(),
    ];
    row.extend(summary(&all));
    row.push("0".into());
    row.push(short(count as f64 / dur));
    row.push(short(failed as f64 / dur));
    row.extend(percentiles(&all));
    write_row(&mut stats, &row)?;

    let mut fails = csv::Writer::from_writer(Vec::new());
    write_row(
        &mut fails,
        &[
            "Method",
            "Name",
            "Error",
            "Occurrences",
            "First Seen",
            "Last Seen",
        ]
        .map(String::from),
    )?;
    for (name, q) in &names {
        for (status, n) in &q.status_codes {
            if status.parse::<u16>().is_ok_and(|s| s >= 400) {
                write_row(
                    &mut fails,
                    &[
                        q.method.clone(),
                        name.to_string(),
                        format!("HTTP {status}"),
                        n.to_string(),
                        String::new(),
                        String::new(),
                    ],
                )?;
            }
        }
    }
    // Errors are grouped as "<request name>: <reason>".
    for e in &r.errors {
        let (name, reason) = match e.error.split_once(": ") {
            Some((n, rest)) if r.requests.contains_key(n) => (n.to_string(), rest.to_string()),
            _ => (String::new(), e.error.clone()),
        };
        let method = r
            .requests
            .get(&name)
            .map(|q| q.method.clone())
            .unwrap_or_default();
        write_row(
            &mut fails,
            &[
                method,
                name,
                reason,
                e.count.to_string(),
                String::new(),
                String::new(),
            ],
        )?;
    }
    let mut written = Vec::new();
    for (kind, w) in [("stats", stats), ("failures", fails)] {
        let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        let p = path(prefix, kind);
        crate::files::write_atomic(&p, &bytes)?;
        written.push(p);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_figures_read_as_locust_writes_them() {
        assert_eq!(
            path(Path::new("out/run1"), "stats"),
            PathBuf::from("out/run1_stats.csv")
        );
        assert_eq!(short(12.5), "12.5");
        assert_eq!(short(3.0), "3");
        assert_eq!(whole_ms(1499), "1");
        assert_eq!(whole_ms(1500), "2");
        let mut h = crate::metrics::new_histogram();
        assert!(percentiles(&h).iter().all(|p| p == "N/A"));
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let p = percentiles(&h);
        assert_eq!(p.len(), 11);
        assert_eq!(p[0], "500");
        assert_eq!(p[7], "990");
        assert_eq!(p[10], "1000");
        assert_eq!(summary(&h)[2], "1");
    }
}
