//! Live export: every few seconds (and once at the end) the run's metrics go to
//! a Prometheus Pushgateway, under k6's remote-write names so existing k6
//! dashboards keep working. A dedicated thread does the blocking HTTP PUT; the
//! controller only hands it a rendered body and never waits. A failure is
//! warned about once and never slows or fails the run.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use prometheus::{Encoder, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

use super::MetricsSet;

/// Seconds between pushes.
pub const PUSH_EVERY_S: u64 = 5;

pub struct Exporter {
    tx: Option<SyncSender<String>>,
    handle: Option<JoinHandle<()>>,
}

/// One grouping label of the Pushgateway path: plain when the value is safe
/// in a URL path, else in the gateway's base64url form (`name@base64/...`),
/// so that no byte of a name (a `/`, CR/LF) can change the request.
fn label(name: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain {
        format!("{name}/{value}")
    } else {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.as_bytes());
        // An empty value is spelled `=` in the base64 form.
        format!(
            "{name}@base64/{}",
            if b64.is_empty() { "=".into() } else { b64 }
        )
    }
}

/// `http://host:port` and the group path for this run.
fn target(url: &str, run: &str, scenario: &str) -> Result<(String, String, String)> {
    let (hostport, prefix) =
        super::server::split_url(url).map_err(|e| anyhow!("--push-url: {e}"))?;
    let path = format!(
        "{prefix}/metrics/job/loadtest/{}/{}",
        label("run", run),
        label("scenario", scenario)
    );
    Ok((hostport, path, crate::redact::userinfo(url)))
}

fn put(hostport: &str, path: &str, body: &str) -> Result<()> {
    let addr = hostport
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow!("{hostport} resolves to no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.set_write_timeout(Some(Duration::from_secs(3)))?;
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    let status = line.split_whitespace().nth(1).unwrap_or("?");
    if !status.starts_with('2') {
        bail!("the Pushgateway answered {status}");
    }
    Ok(())
}

impl Exporter {
    /// Starts the pushing thread. Fails only on a malformed URL.
    pub fn start(url: &str, run: &str, scenario: &str) -> Result<Exporter> {
        let (hostport, path, shown) = target(url, run, scenario)?;
        // One body in flight at most: a slow Pushgateway means skipped pushes, not a slow run.
        let (tx, rx) = sync_channel::<String>(1);
        let handle = std::thread::Builder::new()
            .name("loadtest-export".into())
            .spawn(move || {
                let mut warned = false;
                for body in rx {
                    if let Err(e) = put(&hostport, &path, &body) {
                        if !warned {
                            crate::errln!(
                                "warning: cannot push live metrics to {shown}: {e:#}; the run goes on without them (shown once)"
                            );
                            warned = true;
                        }
                    }
                }
            })?;
        Ok(Exporter {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Hands a body to the pushing thread without waiting; dropped when one is still in flight.
    pub fn push(&self, body: String) {
        if let Some(tx) = &self.tx {
            match tx.try_send(body) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Hands over the last body of a run, waiting for the previous one to be taken.
    pub fn push_final(&self, body: String) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(body);
        }
    }

    /// Waits up to a few seconds for the last push to go out.
    pub fn finish(mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !h.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// What one push reports.
pub struct Snapshot<'a> {
    /// Everything since the start.
    pub total: &'a MetricsSet,
    /// The last interval, for latency percentiles.
    pub interval: &'a MetricsSet,
    pub names: &'a [String],
    pub methods: &'a [String],
    pub check_ranges: &'a [std::ops::Range<usize>],
    /// Checks tied to no request (a k6 script's), by their own name: `[passes, fails]`.
    pub free_checks: &'a [(String, [u64; 2])],
    pub vus: u64,
    pub vus_max: u64,
}

/// Renders the Prometheus text format. Names follow k6's Prometheus remote-write
/// output; durations are in seconds.
pub fn render(s: &Snapshot) -> String {
    let r = Registry::new();
    let counter = |name: &str, help: &str, labels: &[&str]| {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
        r.register(Box::new(c.clone())).expect("registered once");
        c
    };
    let gauge = |name: &str, help: &str, labels: &[&str]| {
        let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
        r.register(Box::new(g.clone())).expect("registered once");
        g
    };
    let reqs = counter(
        "k6_http_reqs_total",
        "HTTP requests",
        &["name", "method", "status"],
    );
    let failed = gauge(
        "k6_http_req_failed_rate",
        "Share of failed requests since the start",
        &["name", "method"],
    );
    let checks = gauge(
        "k6_checks_rate",
        "Share of passed checks since the start",
        &["name"],
    );
    let checks_n = counter("k6_checks_total", "Checks by outcome", &["name", "result"]);
    let trend: Vec<(&str, f64, GaugeVec)> =
        [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)]
            .into_iter()
            .map(|(suffix, q)| {
                (
                    suffix,
                    q,
                    gauge(
                        &format!("k6_http_req_duration_{suffix}"),
                        "Request latency over the last interval, seconds",
                        &["name", "method"],
                    ),
                )
            })
            .collect();
    let avg = gauge(
        "k6_http_req_duration_avg",
        "Mean latency over the last interval, seconds",
        &["name", "method"],
    );
    let max = gauge(
        "k6_http_req_duration_max",
        "Max latency over the last interval, seconds",
        &["name", "method"],
    );
    for (i, name) in s.names.iter().enumerate() {
        let method = s.methods.get(i).map(String::as_str).unwrap_or("GET");
        let t = &s.total.requests[i];
        for (status, n) in &t.statuses {
            reqs.with_label_values(&[name, method, &status.to_string()])
                .inc_by(*n);
        }
        let errors = t.count - t.statuses.iter().map(|(_, n)| n).sum::<u64>();
        if errors > 0 {
            // Requests that got no response.
            reqs.with_label_values(&[name, method, "0"]).inc_by(errors);
        }
        if t.count > 0 {
            failed
                .with_label_values(&[name, method])
                .set(t.failed as f64 / t.count as f64);
        }
        let (p, f) = s.total.check_totals(s.check_ranges[i].clone());
        if p + f > 0 {
            checks
                .with_label_values(&[name])
                .set(p as f64 / (p + f) as f64);
            checks_n.with_label_values(&[name, "pass"]).inc_by(p);
            checks_n.with_label_values(&[name, "fail"]).inc_by(f);
        }
        let h = &s.interval.requests[i].duration;
        if !h.is_empty() {
            for (_, q, g) in &trend {
                g.with_label_values(&[name, method])
                    .set(h.value_at_quantile(*q) as f64 / 1e6);
            }
            avg.with_label_values(&[name, method]).set(h.mean() / 1e6);
            max.with_label_values(&[name, method])
                .set(h.max() as f64 / 1e6);
        }
    }
    for (name, [p, f]) in s.free_checks {
        if p + f > 0 {
            checks
                .with_label_values(&[name])
                .set(*p as f64 / (p + f) as f64);
            checks_n.with_label_values(&[name, "pass"]).inc_by(*p);
            checks_n.with_label_values(&[name, "fail"]).inc_by(*f);
        }
    }
    let plain = |name: &str, help: &str, v: f64| {
        let g = GaugeVec::new(Opts::new(name, help), &[]).expect("valid metric");
        r.register(Box::new(g.clone())).expect("registered once");
        g.with_label_values(&[] as &[&str]).set(v);
    };
    plain("k6_vus", "VUs running", s.vus as f64);
    plain("k6_vus_max", "Most VUs so far", s.vus_max as f64);
    plain(
        "k6_iterations_total",
        "Iterations completed",
        s.total.iterations as f64,
    );
    plain(
        "k6_dropped_iterations_total",
        "Iterations dropped (no free VU)",
        s.total.dropped_iterations as f64,
    );
    plain(
        "k6_data_sent_total",
        "Bytes sent",
        s.total.bytes_sent as f64,
    );
    // Connections opened in the last interval: p95 of their connect and TLS times.
    for (name, help, h) in [
        (
            "k6_http_req_connecting_p95",
            "TCP connect time of new connections over the last interval, seconds",
            &s.interval.connecting,
        ),
        (
            "k6_http_req_tls_handshaking_p95",
            "TLS handshake time of new connections over the last interval, seconds",
            &s.interval.tls_handshaking,
        ),
    ] {
        if !h.is_empty() {
            plain(name, help, h.value_at_quantile(0.95) as f64 / 1e6);
        }
    }
    plain(
        "k6_data_received_total",
        "Bytes received",
        s.total.bytes_received as f64,
    );
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&r.gather(), &mut out)
        .expect("text encoding cannot fail");
    String::from_utf8(out).expect("text format is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_group_paths() {
        let (hp, path, _) = target("http://127.0.0.1:9091", "abc 1", "health").unwrap();
        assert_eq!(hp, "127.0.0.1:9091");
        // A value the path cannot carry as is keeps its exact bytes in base64url
        // (the label the dashboard filters on stays "abc 1", not "abc_1").
        assert_eq!(
            path,
            "/metrics/job/loadtest/run@base64/YWJjIDE/scenario/health"
        );
        let (_, path, _) = target("http://127.0.0.1:9091", "r", "x\r\nX-Evil: 1").unwrap();
        assert!(!path.contains('\r') && !path.contains('\n'), "{path}");
        assert!(
            path.ends_with("/scenario@base64/eA0KWC1FdmlsOiAx"),
            "{path}"
        );
        assert!(target("https://x", "r", "s").is_err());
    }

    #[test]
    fn renders_k6_names_with_labels() {
        let mut total = MetricsSet::new(1, 1, false);
        total.requests[0].count = 3;
        total.requests[0].failed = 1;
        total.requests[0].add_status(200);
        total.requests[0].add_status(200);
        total.requests[0].add_status(500);
        total.checks[0] = [2, 1];
        total.iterations = 3;
        let mut interval = MetricsSet::new(1, 1, false);
        interval.requests[0].duration.record(2000).unwrap();
        let names = vec!["confirm payment".to_string()];
        let methods = vec!["POST".to_string()];
        let ranges: Vec<std::ops::Range<usize>> = std::iter::once(0..1).collect();
        let text = render(&Snapshot {
            free_checks: &[],
            total: &total,
            interval: &interval,
            names: &names,
            methods: &methods,
            check_ranges: &ranges,
            vus: 4,
            vus_max: 5,
        });
        assert!(
            text.contains(
                "k6_http_reqs_total{method=\"POST\",name=\"confirm payment\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "k6_http_reqs_total{method=\"POST\",name=\"confirm payment\",status=\"500\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "k6_http_req_duration_p95{method=\"POST\",name=\"confirm payment\"} 0.002"
            ),
            "{text}"
        );
        assert!(
            text.contains("k6_checks_rate{name=\"confirm payment\"} 0.6666"),
            "{text}"
        );
        assert!(text.contains("k6_vus 4"), "{text}");
        assert!(text.contains("k6_iterations_total 3"), "{text}");
    }
}
