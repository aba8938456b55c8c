//! Counters and HDR histograms. Each worker thread records into its own
//! [`MetricsSet`] without locks; the controller merges them once a second.

pub mod export;
pub mod server;
pub mod window;

use std::collections::HashMap;

use anyhow::{anyhow, Result};
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::scenario::thresholds::{Agg, Metric, Threshold};

/// Highest trackable latency: one hour, in microseconds.
pub const HIST_MAX_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds (1 µs .. 1 h, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("static histogram bounds are valid")
}

/// HDR V2 + deflate, base64: compact and readable by every HdrHistogram port.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("serialising into a Vec cannot fail");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

pub fn decode_histogram(s: &str) -> Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| anyhow!("histogram is not valid base64: {e}"))?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow!("histogram cannot be decoded: {e:?}"))?;
    Ok(h)
}

/// Figures of one request name (one step).
#[derive(Clone)]
pub struct RequestMetrics {
    pub count: u64,
    pub failed: u64,
    /// Latency of requests that got a response; corrected for coordinated
    /// omission under arrival-rate executors.
    pub duration: Histogram<u64>,
    /// The plain send-to-last-byte latency, kept under arrival-rate executors.
    pub uncorrected: Option<Histogram<u64>>,
    pub statuses: Vec<(u16, u64)>,
    /// Responses over HTTP/2 (the rest came over HTTP/1.x).
    pub http2: u64,
}

impl RequestMetrics {
    fn new(open_model: bool) -> Self {
        RequestMetrics {
            count: 0,
            failed: 0,
            duration: new_histogram(),
            uncorrected: open_model.then(new_histogram),
            statuses: Vec::new(),
            http2: 0,
        }
    }

    /// The protocol the responses came over, when there were any.
    pub fn protocol(&self) -> Option<&'static str> {
        let responses: u64 = self.statuses.iter().map(|(_, n)| n).sum();
        match (responses, self.http2) {
            (0, _) => None,
            (_, 0) => Some("HTTP/1.1"),
            (r, h) if r == h => Some("HTTP/2"),
            _ => Some("HTTP/1.1 and HTTP/2"),
        }
    }

    pub fn add_status(&mut self, status: u16) {
        match self.statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.statuses.push((status, 1)),
        }
    }

    fn merge(&mut self, o: &RequestMetrics) {
        self.count += o.count;
        self.failed += o.failed;
        self.http2 += o.http2;
        self.duration
            .add(&o.duration)
            .expect("same histogram bounds");
        if let (Some(a), Some(b)) = (&mut self.uncorrected, &o.uncorrected) {
            a.add(b).expect("same histogram bounds");
        }
        for (s, n) in &o.statuses {
            match self.statuses.iter_mut().find(|(x, _)| x == s) {
                Some((_, m)) => *m += n,
                None => self.statuses.push((*s, *n)),
            }
        }
    }
}

/// Everything recorded during a window of time (or the whole run).
#[derive(Clone)]
pub struct MetricsSet {
    pub requests: Vec<RequestMetrics>,
    /// `[passes, fails]` per check, in scenario order.
    pub checks: Vec<[u64; 2]>,
    pub iterations: u64,
    pub iteration_duration: Histogram<u64>,
    /// Opening a TCP connection (µs), for the requests that opened one.
    pub connecting: Histogram<u64>,
    /// The TLS handshake after it (µs), https only.
    pub tls_handshaking: Histogram<u64>,
    pub dropped_iterations: u64,
    pub interrupted_iterations: u64,
    /// Failure reasons (network errors, timeouts, template errors) and their counts.
    pub errors: HashMap<String, u64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// Distinct error texts kept per set; more are counted under [`OTHER_ERRORS`].
pub const MAX_ERROR_GROUPS: usize = 100;
pub const OTHER_ERRORS: &str = "other errors (more than 100 kinds; the first 100 are listed)";

/// How one request went, as the engine saw it.
pub enum Sample<'a> {
    /// A response arrived: its status, the time from writing the request to
    /// the last body byte, and how late the request started against its
    /// schedule (open model; 0 otherwise).
    Response {
        status: u16,
        latency_us: u64,
        late_us: u64,
        http2: bool,
    },
    /// No response: the reason, as grouped in the result's errors.
    Failed { error: &'a str },
}

impl MetricsSet {
    /// An empty set shaped for a scenario's load steps and checks.
    pub fn for_scenario(sc: &crate::scenario::Scenario) -> Self {
        Self::new(
            sc.steps.len(),
            sc.check_count(),
            sc.options.executor.is_open_model(),
        )
    }

    /// Passes and fails of the checks in `range` (a step's, or all).
    pub fn check_totals(&self, range: std::ops::Range<usize>) -> (u64, u64) {
        self.checks[range]
            .iter()
            .fold((0, 0), |(p, f), c| (p + c[0], f + c[1]))
    }

    /// One more request name, for sources that learn their names as they go
    /// (a k6 run's output); its index.
    pub fn add_request(&mut self) -> usize {
        self.requests.push(RequestMetrics::new(false));
        self.requests.len() - 1
    }

    pub fn new(requests: usize, checks: usize, open_model: bool) -> Self {
        MetricsSet {
            requests: (0..requests)
                .map(|_| RequestMetrics::new(open_model))
                .collect(),
            checks: vec![[0, 0]; checks],
            iterations: 0,
            iteration_duration: new_histogram(),
            connecting: new_histogram(),
            tls_handshaking: new_histogram(),
            dropped_iterations: 0,
            interrupted_iterations: 0,
            errors: HashMap::new(),
            bytes_sent: 0,
            bytes_received: 0,
        }
    }

    /// Empties the set, keeping its allocations: the engine hands sets back
    /// and forth every second, and a run of hours must not allocate (and
    /// fragment) megabytes of histograms each time.
    pub fn reset(&mut self) {
        // Clearing writes every count: an empty histogram is left alone, so
        // that the pages it never used stay out of memory.
        fn clear(h: &mut Histogram<u64>) {
            if !h.is_empty() {
                h.reset();
            }
        }
        for r in &mut self.requests {
            r.count = 0;
            r.failed = 0;
            clear(&mut r.duration);
            if let Some(h) = &mut r.uncorrected {
                clear(h);
            }
            r.statuses.clear();
            r.http2 = 0;
        }
        self.checks.fill([0, 0]);
        self.iterations = 0;
        clear(&mut self.iteration_duration);
        clear(&mut self.connecting);
        clear(&mut self.tls_handshaking);
        self.dropped_iterations = 0;
        self.interrupted_iterations = 0;
        self.errors.clear();
        self.bytes_sent = 0;
        self.bytes_received = 0;
    }

    pub fn merge(&mut self, o: &MetricsSet) {
        for (a, b) in self.requests.iter_mut().zip(&o.requests) {
            a.merge(b);
        }
        for (a, b) in self.checks.iter_mut().zip(&o.checks) {
            a[0] += b[0];
            a[1] += b[1];
        }
        self.iterations += o.iterations;
        self.iteration_duration
            .add(&o.iteration_duration)
            .expect("same histogram bounds");
        self.connecting
            .add(&o.connecting)
            .expect("same histogram bounds");
        self.tls_handshaking
            .add(&o.tls_handshaking)
            .expect("same histogram bounds");
        self.dropped_iterations += o.dropped_iterations;
        self.interrupted_iterations += o.interrupted_iterations;
        for (k, v) in &o.errors {
            self.add_errors(k, *v);
        }
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
    }

    /// Records one request of load step `step`: its outcome, then the
    /// outcome of each of its checks (indices from `first_check` on).
    pub fn record_request(
        &mut self,
        step: usize,
        sample: Sample<'_>,
        first_check: usize,
        checks: impl IntoIterator<Item = bool>,
    ) {
        let rm = &mut self.requests[step];
        rm.count += 1;
        match sample {
            Sample::Response {
                status,
                latency_us,
                late_us,
                http2,
            } => {
                rm.add_status(status);
                rm.http2 += u64::from(http2);
                if status >= 400 {
                    rm.failed += 1;
                }
                match &mut rm.uncorrected {
                    // Open model: a late start is latency the user would see.
                    Some(h) => {
                        h.saturating_record(latency_us.max(1));
                        rm.duration.saturating_record((latency_us + late_us).max(1));
                    }
                    None => rm.duration.saturating_record(latency_us.max(1)),
                }
            }
            Sample::Failed { error } => {
                rm.failed += 1;
                self.error(error);
            }
        }
        for (c, ok) in checks.into_iter().enumerate() {
            self.checks[first_check + c][usize::from(!ok)] += 1;
        }
    }

    /// A new connection: how long the TCP connect and the TLS handshake took.
    pub fn record_connection(&mut self, connect_us: u64, tls_us: Option<u64>) {
        self.connecting.saturating_record(connect_us.max(1));
        if let Some(t) = tls_us {
            self.tls_handshaking.saturating_record(t.max(1));
        }
    }

    pub fn error(&mut self, reason: &str) {
        self.add_errors(reason, 1);
    }

    fn add_errors(&mut self, reason: &str, n: u64) {
        if let Some(c) = self.errors.get_mut(reason) {
            *c += n;
        } else if self.errors.len() >= MAX_ERROR_GROUPS {
            // A bounded map whatever the errors hold: past the cap, one group.
            *self.errors.entry(OTHER_ERRORS.to_string()).or_default() += n;
        } else {
            self.errors.insert(reason.to_string(), n);
        }
    }

    pub fn total_requests(&self) -> u64 {
        self.requests.iter().map(|r| r.count).sum()
    }

    pub fn total_failed(&self) -> u64 {
        self.requests.iter().map(|r| r.failed).sum()
    }

    /// All request latencies in one histogram.
    pub fn all_durations(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for r in &self.requests {
            h.add(&r.duration).expect("same histogram bounds");
        }
        h
    }

    pub fn all_uncorrected(&self) -> Option<Histogram<u64>> {
        let mut h = new_histogram();
        for r in &self.requests {
            h.add(r.uncorrected.as_ref()?)
                .expect("same histogram bounds");
        }
        Some(h)
    }
}

/// Latency figures in milliseconds.
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Aggregate of a histogram in milliseconds; `None` when it is empty.
pub fn trend_value(h: &Histogram<u64>, agg: Agg) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    Some(match agg {
        Agg::Avg => h.mean() / 1000.0,
        Agg::Min => ms(h.min()),
        Agg::Med => ms(h.value_at_quantile(0.5)),
        Agg::Max => ms(h.max()),
        Agg::P(p) => ms(h.value_at_quantile(p / 100.0)),
        _ => return None,
    })
}

/// What a threshold observes, given the run's totals so far.
/// `names` are the request names in step order; `checks_of` maps a step to its checks.
pub fn observe(
    t: &Threshold,
    m: &MetricsSet,
    names: &[String],
    check_ranges: &[std::ops::Range<usize>],
    elapsed_secs: f64,
    vus_max: u64,
) -> Option<f64> {
    let idx = t
        .name
        .as_ref()
        .and_then(|n| names.iter().position(|x| x == n));
    if t.name.is_some() && idx.is_none() {
        return None;
    }
    let per_sec = |c: u64| {
        if elapsed_secs > 0.0 {
            c as f64 / elapsed_secs
        } else {
            0.0
        }
    };
    let counter = |c: u64| match t.agg {
        Agg::Rate => Some(per_sec(c)),
        _ => Some(c as f64),
    };
    match t.metric {
        Metric::HttpReqDuration => match idx {
            Some(i) => trend_value(&m.requests[i].duration, t.agg),
            None => trend_value(&m.all_durations(), t.agg),
        },
        Metric::IterationDuration => trend_value(&m.iteration_duration, t.agg),
        Metric::HttpReqFailed => {
            let (count, failed) = match idx {
                Some(i) => (m.requests[i].count, m.requests[i].failed),
                None => (m.total_requests(), m.total_failed()),
            };
            (count > 0).then(|| failed as f64 / count as f64)
        }
        Metric::Checks => {
            let range = match idx {
                Some(i) => check_ranges[i].clone(),
                None => 0..m.checks.len(),
            };
            let (p, f) = m.checks[range]
                .iter()
                .fold((0u64, 0u64), |(p, f), c| (p + c[0], f + c[1]));
            (p + f > 0).then(|| p as f64 / (p + f) as f64)
        }
        Metric::HttpReqs => counter(match idx {
            Some(i) => m.requests[i].count,
            None => m.total_requests(),
        }),
        Metric::Iterations => counter(m.iterations),
        Metric::DroppedIterations => counter(m.dropped_iterations),
        Metric::DataSent => counter(m.bytes_sent),
        Metric::DataReceived => counter(m.bytes_received),
        Metric::VusMax => Some(vus_max as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_per_worker_histograms_is_exact() {
        let mut whole = new_histogram();
        let mut parts = [new_histogram(), new_histogram(), new_histogram()];
        let mut x: u64 = 12345;
        for i in 0..30_000u64 {
            // A cheap deterministic spread of values from 1 µs to ~10 s.
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = 1 + (x >> 40) % 10_000_000;
            whole.record(v).unwrap();
            parts[(i % 3) as usize].record(v).unwrap();
        }
        let mut merged = new_histogram();
        for p in &parts {
            merged.add(p).unwrap();
        }
        assert_eq!(merged.len(), whole.len());
        for q in [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            assert_eq!(merged.value_at_quantile(q), whole.value_at_quantile(q));
        }
        assert_eq!(merged, whole);
    }

    #[test]
    fn a_reset_set_records_like_a_new_one() {
        let fill = |s: &mut MetricsSet| {
            s.record_request(
                1,
                Sample::Response {
                    status: 201,
                    latency_us: 1500,
                    late_us: 20,
                    http2: true,
                },
                1,
                [true, false],
            );
            s.record_request(0, Sample::Failed { error: "refused" }, 0, [false]);
            s.iterations += 2;
            s.dropped_iterations += 1;
            s.interrupted_iterations += 1;
            s.bytes_sent += 10;
            s.bytes_received += 20;
            s.iteration_duration.record(3000).unwrap();
            s.connecting.record(40).unwrap();
            s.tls_handshaking.record(90).unwrap();
        };
        let mut used = MetricsSet::new(2, 3, true);
        fill(&mut used);
        fill(&mut used);
        used.reset();
        let mut fresh = MetricsSet::new(2, 3, true);
        // Emptied: merging it into a fresh set leaves that set empty.
        let mut target = MetricsSet::new(2, 3, true);
        target.merge(&used);
        assert_eq!(target.total_requests(), 0);
        assert!(target.errors.is_empty() && target.iteration_duration.is_empty());
        // And what it records afterwards equals what a new set records.
        fill(&mut used);
        fill(&mut fresh);
        for (a, b) in used.requests.iter().zip(&fresh.requests) {
            assert_eq!((a.count, a.failed, a.http2), (b.count, b.failed, b.http2));
            assert_eq!(a.duration, b.duration);
            assert_eq!(a.uncorrected, b.uncorrected);
            assert_eq!(a.statuses, b.statuses);
        }
        assert_eq!(used.checks, fresh.checks);
        assert_eq!(used.errors, fresh.errors);
        assert_eq!(
            (
                used.iterations,
                used.dropped_iterations,
                used.interrupted_iterations
            ),
            (
                fresh.iterations,
                fresh.dropped_iterations,
                fresh.interrupted_iterations
            )
        );
        assert_eq!((used.bytes_sent, used.bytes_received), (10, 20));
        assert_eq!(used.iteration_duration, fresh.iteration_duration);
        assert_eq!(used.connecting, fresh.connecting);
        assert_eq!(used.tls_handshaking, fresh.tls_handshaking);
    }

    #[test]
    fn histogram_encoding_round_trips() {
        let mut h = new_histogram();
        for v in [1, 10, 100, 1000, 10_000, 3_000_000] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back, h);
        assert!(decode_histogram("not base64!").is_err());
    }

    #[test]
    fn sets_merge_counts_and_errors() {
        let mut a = MetricsSet::new(1, 2, false);
        let mut b = MetricsSet::new(1, 2, false);
        a.requests[0].count = 2;
        a.requests[0].add_status(200);
        b.requests[0].count = 3;
        b.requests[0].failed = 1;
        b.requests[0].add_status(200);
        b.requests[0].add_status(500);
        b.checks[1] = [4, 1];
        b.error("connection refused (127.0.0.1:9)");
        a.merge(&b);
        assert_eq!(a.total_requests(), 5);
        assert_eq!(a.total_failed(), 1);
        assert_eq!(a.checks[1], [4, 1]);
        assert_eq!(a.requests[0].statuses, vec![(200, 2), (500, 1)]);
        assert_eq!(a.errors["connection refused (127.0.0.1:9)"], 1);
    }
}
