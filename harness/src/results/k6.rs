//! A k6 run as a result file: k6's JSON output (`--out json=FILE`, gzipped or
//! not) read point by point into the same model a native run has: lossless
//! HDR histograms per request name, the one-second timeline, checks by name,
//! iterations, dropped iterations, VUs, bytes; thresholds as k6 evaluated them
//! (its `--summary-export`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use serde::Deserialize;

use super::{
    counter, rate_stat, CheckResult, ErrorCount, HostInfo, LoadGen, Metrics, RequestResult,
    RequestWindow, RunResult, ThresholdResult, TimelineEntry, Trend, SCHEMA_VERSION,
};
use crate::metrics::export::{self, Exporter, Snapshot, PUSH_EVERY_S};
use crate::metrics::{self, new_histogram, MetricsSet, Sample};
use crate::scenario::thresholds::Agg;

/// What the caller knows of the run besides k6's output.
pub struct K6Meta {
    pub run: String,
    pub scenario: String,
    pub scenario_file: String,
    pub scenario_sha256: String,
    pub target: String,
    pub git: Option<super::GitInfo>,
    pub host: HostInfo,
    pub loadgen: LoadGen,
    pub options: serde_json::Value,
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    metric: String,
    #[serde(default)]
    data: Option<PointData>,
}

#[derive(Deserialize)]
struct PointData {
    #[serde(default)]
    time: Option<chrono::DateTime<chrono::FixedOffset>>,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Default)]
struct Req {
    index: usize,
    method: String,
    count: u64,
    failed: u64,
    statuses: BTreeMap<String, u64>,
    protocols: std::collections::BTreeSet<String>,
    hist: Option<Histogram<u64>>,
}

/// One second of the timeline while it is still open.
#[derive(Default)]
struct Second {
    requests: BTreeMap<String, (Histogram<u64>, u64, u64)>,
    iterations: u64,
    dropped: u64,
    vus: u64,
    checks: [u64; 2],
}

/// Seconds kept open for points k6 writes late (it flushes about every second).
const OPEN_SECONDS: u64 = 5;

fn us(ms: f64) -> u64 {
    (ms * 1000.0).round().max(1.0) as u64
}

/// The request name: k6's `name` tag, or method and URL where the name is the URL (k6's default).
fn request_name(tags: &BTreeMap<String, String>) -> String {
    let name = tags.get("name").map(String::as_str).unwrap_or("");
    let method = tags.get("method").map(String::as_str).unwrap_or("GET");
    if name.is_empty() || name.starts_with("http://") || name.starts_with("https://") {
        let url = tags.get("url").map(String::as_str).unwrap_or(name);
        format!("{method} {url}")
    } else {
        name.to_string()
    }
}

/// Setup and teardown are not part of the load, as in a native run.
fn outside_load(tags: &BTreeMap<String, String>) -> bool {
    tags.get("group")
        .is_some_and(|g| g.starts_with("::setup") || g.starts_with("::teardown"))
}

fn record(h: &mut Histogram<u64>, v: u64) {
    // Beyond an hour is clamped to the histogram's top, as the engine does.
    let _ = h.record(v.min(h.high()));
}

/// Opens k6's JSON output, gzipped or not.
fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("cannot read k6 output {}", path.display()))?;
    let mut r = BufReader::new(f);
    let gz = r.fill_buf().map(|b| b.starts_with(&[0x1f, 0x8b]))?;
    Ok(if gz {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(r)))
    } else {
        Box::new(r)
    })
}

struct Reader {
    reqs: BTreeMap<String, Req>,
    checks: Vec<(String, [u64; 2])>,
    errors: BTreeMap<String, u64>,
    all: Histogram<u64>,
    iteration: Histogram<u64>,
    connecting: Histogram<u64>,
    tls: Histogram<u64>,
    iterations: u64,
    dropped: u64,
    vus_max: u64,
    sent: f64,
    received: f64,
    t0: Option<chrono::DateTime<chrono::FixedOffset>>,
    last: Option<chrono::DateTime<chrono::FixedOffset>>,
    open: BTreeMap<u64, Second>,
    timeline: Vec<TimelineEntry>,
}

impl Reader {
    fn second(&mut self, t: chrono::DateTime<chrono::FixedOffset>) -> Option<&mut Second> {
        let t0 = *self.t0.get_or_insert(t);
        let s = ((t - t0).num_microseconds().unwrap_or(0).max(0) / 1_000_000) as u64;
        // Close the seconds no late point can reach any more.
        while let Some(&first) = self.open.keys().next() {
            if first + OPEN_SECONDS >= s {
                break;
            }
            let sec = self.open.remove(&first).expect("present");
            self.close(first, sec, 1.0);
        }
        let oldest = self.timeline.last().map(|e| e.t + 1).unwrap_or(0);
        // A point later than that is put in the oldest second still open.
        Some(self.open.entry(s.max(oldest)).or_default())
    }

    fn close(&mut self, t: u64, sec: Second, span: f64) {
        let mut all = new_histogram();
        let mut by_request = BTreeMap::new();
        let (mut requests, mut failures) = (0, 0);
        for (name, (h, n, f)) in &sec.requests {
            let _ = all.add(h);
            requests += n;
            failures += f;
            let v = |a| metrics::trend_value(h, a);
            by_request.insert(
                name.clone(),
                RequestWindow {
                    requests: *n,
                    failures: *f,
                    checks_passes: 0,
                    checks_fails: 0,
                    mean: v(Agg::Avg).map(|x| (x * 1000.0).round() / 1000.0),
                    p50: v(Agg::Med),
                    p90: v(Agg::P(90.0)),
                    p95: v(Agg::P(95.0)),
                    p99: v(Agg::P(99.0)),
                    max: v(Agg::Max),
                },
            );
        }
        let v = |a| metrics::trend_value(&all, a);
        self.timeline.push(TimelineEntry {
            trial: 0,
            t,
            span_s: span,
            requests,
            failures,
            iterations: sec.iterations,
            dropped_iterations: sec.dropped,
            p50: v(Agg::Med),
            p95: v(Agg::P(95.0)),
            p99: v(Agg::P(99.0)),
            p90: v(Agg::P(90.0)),
            mean: v(Agg::Avg).map(|x| (x * 1000.0).round() / 1000.0),
            max: v(Agg::Max),
            checks_passes: sec.checks[0],
            checks_fails: sec.checks[1],
            vus: sec.vus,
            by_request,
        });
    }

    fn point(&mut self, metric: &str, d: PointData) {
        let tags = d.tags.unwrap_or_default();
        if outside_load(&tags) {
            return;
        }
        let value = d.value.unwrap_or(0.0);
        let Some(time) = d.time else { return };
        if self.last.is_none_or(|l| time > l) {
            self.last = Some(time);
        }
        match metric {
            "http_req_duration" => {
                let name = request_name(&tags);
                let n = self.reqs.len();
                let r = self.reqs.entry(name.clone()).or_insert_with(|| Req {
                    index: n,
                    method: tags.get("method").cloned().unwrap_or_default(),
                    ..Default::default()
                });
                r.count += 1;
                let status = tags.get("status").cloned().unwrap_or_default();
                *r.statuses.entry(status.clone()).or_default() += 1;
                if let Some(p) = tags.get("proto") {
                    r.protocols.insert(p.clone());
                }
                // A request without a response (status 0) has no latency to count, as natively.
                let responded = status != "0";
                if responded {
                    record(r.hist.get_or_insert_with(new_histogram), us(value));
                    record(&mut self.all, us(value));
                }
                let failed = tags.get("expected_response").is_some_and(|e| e == "false");
                if failed {
                    r.failed += 1;
                }
                if !responded {
                    let why = tags
                        .get("error")
                        .cloned()
                        .unwrap_or_else(|| "no response".into());
                    *self.errors.entry(format!("{name}: {why}")).or_default() += 1;
                }
                if let Some(s) = self.second(time) {
                    let e = s
                        .requests
                        .entry(name)
                        .or_insert_with(|| (new_histogram(), 0, 0));
                    if responded {
                        record(&mut e.0, us(value));
                    }
                    e.1 += 1;
                    e.2 += failed as u64;
                }
            }
            "checks" => {
                let name = tags.get("check").cloned().unwrap_or_default();
                let group = tags.get("group").cloned().unwrap_or_default();
                let key = if group.is_empty() {
                    name
                } else {
                    format!("{group}::{name}")
                };
                let ok = value > 0.0;
                match self.checks.iter_mut().find(|(n, _)| *n == key) {
                    Some((_, c)) => c[if ok { 0 } else { 1 }] += 1,
                    None => self.checks.push((key, if ok { [1, 0] } else { [0, 1] })),
                }
                if let Some(s) = self.second(time) {
                    s.checks[if ok { 0 } else { 1 }] += 1;
                }
            }
            "iterations" => {
                self.iterations += value as u64;
                if let Some(s) = self.second(time) {
                    s.iterations += value as u64;
                }
            }
            "iteration_duration" => record(&mut self.iteration, us(value)),
            "dropped_iterations" => {
                self.dropped += value as u64;
                if let Some(s) = self.second(time) {
                    s.dropped += value as u64;
                }
            }
            "vus" => {
                self.vus_max = self.vus_max.max(value as u64);
                if let Some(s) = self.second(time) {
                    s.vus = s.vus.max(value as u64);
                }
            }
            "vus_max" => self.vus_max = self.vus_max.max(value as u64),
            "data_sent" => self.sent += value,
            "data_received" => self.received += value,
            // k6 counts every request, a reused connection as 0; the model keeps opened ones only.
            "http_req_connecting" if value > 0.0 => record(&mut self.connecting, us(value)),
            "http_req_tls_handshaking" if value > 0.0 => record(&mut self.tls, us(value)),
            _ => {}
        }
    }
}

/// Thresholds as k6 evaluated them, from its `--summary-export` file (where
/// `true` means crossed).
pub fn thresholds(summary: &Path) -> Result<Vec<ThresholdResult>> {
    let text = std::fs::read_to_string(summary)
        .with_context(|| format!("cannot read k6 summary {}", summary.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", summary.display()))?;
    let mut out = Vec::new();
    let Some(metrics) = v.get("metrics").and_then(|m| m.as_object()) else {
        return Ok(out);
    };
    for (key, m) in metrics {
        let Some(ts) = m.get("thresholds").and_then(|t| t.as_object()) else {
            continue;
        };
        for (expr, crossed) in ts {
            // The figure the expression reads: `p(95)`, `avg`, `rate`, `count`...
            let agg: String = expr
                .chars()
                .take_while(|c| !matches!(c, '<' | '>' | '=' | '!'))
                .collect::<String>()
                .trim()
                .to_string();
            let field = if agg == "rate" && m.get("rate").is_none() {
                "value"
            } else {
                agg.as_str()
            };
            out.push(ThresholdResult {
                metric: key.clone(),
                expression: expr.clone(),
                value: m.get(field).and_then(|x| x.as_f64()),
                ok: !crossed.as_bool().unwrap_or(true),
                abort_on_fail: false,
            });
        }
    }
    Ok(out)
}

/// The figure a latency threshold reads (`http_req_duration` or `{name:X}`), from the histograms.
fn latency_figure(
    metric: &str,
    expr: &str,
    reqs: &BTreeMap<String, Req>,
    all: &Histogram<u64>,
) -> Option<f64> {
    let h = match metric.strip_prefix("http_req_duration") {
        Some("") => all,
        Some(sub) => {
            let name = sub.strip_prefix("{name:")?.strip_suffix('}')?;
            reqs.get(name)?.hist.as_ref()?
        }
        None => return None,
    };
    let agg = expr.split(['<', '>', '=', '!']).next()?.trim();
    let agg = match agg {
        "avg" => Agg::Avg,
        "min" => Agg::Min,
        "med" => Agg::Med,
        "max" => Agg::Max,
        p => Agg::P(p.strip_prefix("p(")?.strip_suffix(')')?.parse().ok()?),
    };
    metrics::trend_value(h, agg)
}

/// Reads k6's JSON output into a result.
pub fn read(output: &Path, summary: Option<&Path>, meta: K6Meta) -> Result<RunResult> {
    let mut r = Reader {
        reqs: BTreeMap::new(),
        checks: Vec::new(),
        errors: BTreeMap::new(),
        all: new_histogram(),
        iteration: new_histogram(),
        connecting: new_histogram(),
        tls: new_histogram(),
        iterations: 0,
        dropped: 0,
        vus_max: 0,
        sent: 0.0,
        received: 0.0,
        t0: None,
        last: None,
        open: BTreeMap::new(),
        timeline: Vec::new(),
    };
    let mut points = 0u64;
    for (i, line) in open(output)?.lines().enumerate() {
        let line = line.with_context(|| format!("{}: line {}", output.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(&line).map_err(|e| {
            anyhow!(
                "{}: line {} is not k6 JSON output ({e}); expected lines of `k6 run --out json=FILE`",
                output.display(),
                i + 1
            )
        })?;
        if l.kind == "Point" {
            if let Some(d) = l.data {
                r.point(&l.metric, d);
                points += 1;
            }
        }
    }
    if points == 0 {
        bail!(
            "{}: no data points: not the output of `k6 run --out json=FILE`, or the run sent nothing",
            output.display()
        );
    }
    let (t0, last) = (r.t0.unwrap_or_default(), r.last.unwrap_or_default());
    let secs = ((last - t0).num_microseconds().unwrap_or(0) as f64 / 1e6).max(0.001);
    let open = std::mem::take(&mut r.open);
    let n_open = open.len();
    for (k, (t, sec)) in open.into_iter().enumerate() {
        let span = if k + 1 == n_open {
            ((secs - t as f64).clamp(0.001, 1.0) * 1000.0).round() / 1000.0
        } else {
            1.0
        };
        r.close(t, sec, span);
    }
    let (mut passes, mut fails) = (0, 0);
    for (_, [p, f]) in &r.checks {
        passes += p;
        fails += f;
    }
    let total: u64 = r.reqs.values().map(|q| q.count).sum();
    let failed: u64 = r.reqs.values().map(|q| q.failed).sum();
    let trend = |h: &Histogram<u64>| Trend::from_histogram(h);
    let requests = r
        .reqs
        .iter()
        .map(|(name, q)| {
            let h = q.hist.clone().unwrap_or_else(new_histogram);
            (
                name.clone(),
                RequestResult {
                    index: q.index,
                    method: q.method.clone(),
                    http_reqs: counter(q.count, secs),
                    http_req_failed: rate_stat(q.failed, q.count - q.failed),
                    http_req_duration: trend(&h),
                    http_req_duration_uncorrected: None,
                    histogram: metrics::encode_histogram(&h),
                    histogram_uncorrected: None,
                    status_codes: q.statuses.clone(),
                    protocol: match q.protocols.len() {
                        0 => None,
                        _ => Some(q.protocols.iter().cloned().collect::<Vec<_>>().join(", ")),
                    },
                    checks: Vec::new(),
                },
            )
        })
        .collect();
    let mut errors: Vec<ErrorCount> = r
        .errors
        .iter()
        .map(|(e, n)| ErrorCount {
            error: e.clone(),
            count: *n,
        })
        .collect();
    errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.error.cmp(&b.error)));
    let mut thresholds = match summary {
        Some(p) => thresholds(p)?,
        None => Vec::new(),
    };
    // k6's summary export holds only some figures (not p(99)); latency ones are read from the histograms.
    for t in thresholds.iter_mut().filter(|t| t.value.is_none()) {
        t.value = latency_figure(&t.metric, &t.expression, &r.reqs, &r.all);
    }
    Ok(RunResult {
        schema_version: SCHEMA_VERSION,
        run: meta.run,
        scenario: meta.scenario,
        scenario_file: meta.scenario_file,
        scenario_sha256: meta.scenario_sha256,
        description: None,
        target: meta.target,
        options: meta.options,
        overrides: Vec::new(),
        git: meta.git,
        started_at: t0.to_rfc3339(),
        duration_s: (secs * 1000.0).round() / 1000.0,
        interrupted: false,
        aborted_by: None,
        host: meta.host,
        loadgen: meta.loadgen,
        metrics: Metrics {
            http_reqs: counter(total, secs),
            http_req_failed: rate_stat(failed, total - failed),
            http_req_duration: trend(&r.all),
            http_req_duration_uncorrected: None,
            iteration_duration: trend(&r.iteration),
            http_req_connecting: (!r.connecting.is_empty()).then(|| trend(&r.connecting)),
            http_req_tls_handshaking: (!r.tls.is_empty()).then(|| trend(&r.tls)),
            checks: rate_stat(passes, fails),
            iterations: counter(r.iterations, secs),
            dropped_iterations: counter(r.dropped, secs),
            interrupted_iterations: 0,
            vus_max: r.vus_max,
            data_sent: counter(r.sent as u64, secs),
            data_received: counter(r.received as u64, secs),
        },
        requests,
        errors,
        thresholds,
        checks: r
            .checks
            .into_iter()
            .map(|(name, [p, f])| CheckResult {
                name,
                passes: p,
                fails: f,
            })
            .collect(),
        timeline: r.timeline,
        trials: Vec::new(),
        stack: None,
        server: None,
        dashboard_url: None,
        shard: None,
        merged: None,
    })
}

/// Reads the first bytes of a file to tell whether it could be k6 output.
pub fn looks_like_k6(path: &Path) -> bool {
    let Ok(mut f) = open(path) else { return false };
    let mut head = [0u8; 64];
    let n = f.read(&mut head).unwrap_or(0);
    String::from_utf8_lossy(&head[..n]).contains("\"type\"")
}

/// The run's figures so far, for the live export, from points as they arrive.
struct Live {
    names: Vec<String>,
    methods: Vec<String>,
    total: MetricsSet,
    interval: MetricsSet,
    checks: Vec<(String, [u64; 2])>,
    vus: u64,
    vus_max: u64,
}

impl Live {
    fn new() -> Live {
        Live {
            names: Vec::new(),
            methods: Vec::new(),
            total: MetricsSet::new(0, 0, false),
            interval: MetricsSet::new(0, 0, false),
            checks: Vec::new(),
            vus: 0,
            vus_max: 0,
        }
    }

    fn point(&mut self, metric: &str, d: PointData) {
        let tags = d.tags.unwrap_or_default();
        if outside_load(&tags) {
            return;
        }
        let v = d.value.unwrap_or(0.0);
        match metric {
            "http_req_duration" => {
                let name = request_name(&tags);
                let i = match self.names.iter().position(|n| *n == name) {
                    Some(i) => i,
                    None => {
                        self.names.push(name);
                        self.methods
                            .push(tags.get("method").cloned().unwrap_or_default());
                        self.interval.add_request();
                        self.total.add_request()
                    }
                };
                let status: u16 = tags.get("status").and_then(|s| s.parse().ok()).unwrap_or(0);
                let error = tags
                    .get("error")
                    .map(String::as_str)
                    .unwrap_or("no response");
                let http2 = tags.get("proto").is_some_and(|p| p.starts_with("HTTP/2"));
                for set in [&mut self.total, &mut self.interval] {
                    let sample = if status == 0 {
                        Sample::Failed { error }
                    } else {
                        Sample::Response {
                            status,
                            latency_us: us(v),
                            late_us: 0,
                            http2,
                        }
                    };
                    set.record_request(i, sample, 0, std::iter::empty());
                }
            }
            "checks" => {
                let name = tags.get("check").cloned().unwrap_or_default();
                let k = usize::from(v <= 0.0);
                match self.checks.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, c)) => c[k] += 1,
                    None => {
                        let mut c = [0, 0];
                        c[k] = 1;
                        self.checks.push((name, c));
                    }
                }
            }
            "iterations" => self.total.iterations += v as u64,
            "dropped_iterations" => self.total.dropped_iterations += v as u64,
            "data_sent" => self.total.bytes_sent += v as u64,
            "data_received" => self.total.bytes_received += v as u64,
            "vus" => {
                self.vus = v as u64;
                self.vus_max = self.vus_max.max(self.vus);
            }
            _ => {}
        }
    }

    fn render(&self) -> String {
        // k6's checks belong to no request: they go out by their own names.
        let ranges = vec![0..0; self.names.len()];
        export::render(&Snapshot {
            total: &self.total,
            interval: &self.interval,
            names: &self.names,
            methods: &self.methods,
            check_ranges: &ranges,
            free_checks: &self.checks,
            vus: self.vus,
            vus_max: self.vus_max,
        })
    }
}

/// Reads k6's JSON lines as k6 writes them (from a FIFO), keeps them gzipped
/// in `keep` for [`read`], and pushes the run's figures every few seconds and
/// at the end, as a native run does.
pub fn relay(fifo: &Path, keep: &Path, exporter: &Exporter) -> Result<()> {
    use std::io::Write;
    // Blocks until k6 opens its output (or the caller releases it).
    let input = std::fs::File::open(fifo)
        .with_context(|| format!("cannot read k6's output from {}", fifo.display()))?;
    let file =
        std::fs::File::create(keep).with_context(|| format!("cannot write {}", keep.display()))?;
    let mut out =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    let mut live = Live::new();
    let mut last = std::time::Instant::now();
    for line in BufReader::new(input).lines() {
        let line = line?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        if let Ok(l) = serde_json::from_str::<Line>(&line) {
            if let (true, Some(d)) = (l.kind == "Point", l.data) {
                live.point(&l.metric, d);
            }
        }
        if last.elapsed().as_secs() >= PUSH_EVERY_S {
            exporter.push(live.render());
            live.interval.reset();
            last = std::time::Instant::now();
        }
    }
    out.finish()?.flush()?;
    if !live.names.is_empty() {
        exporter.push_final(live.render());
    }
    Ok(())
}
