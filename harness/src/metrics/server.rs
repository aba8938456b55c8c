//! The server-side view of a run: the service's own latency histogram, read
//! from Prometheus over the run window and set next to what the client
//! measured for the same route. Where the client sees much more than the
//! service reports, time is spent where the service's telemetry cannot see it:
//! the network, queues before the handler, or code outside the timed middleware.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The demo's latency histogram as scraped by the stack's Prometheus.
pub const DEFAULT_SELECTOR: &str = r#"http_request_duration_seconds_bucket{job="demo"}"#;
/// A gap is called large when, even against the top of the server's p95 bucket,
/// the client's p95 is this many ms higher...
pub const LARGE_GAP_MS: f64 = 5.0;
/// ...and that is at least this share of the client's p95.
pub const LARGE_GAP_SHARE: f64 = 0.25;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerView {
    /// The Prometheus queried and the query, so the figures can be reproduced.
    pub prometheus: String,
    pub query: String,
    pub window_s: u64,
    pub routes: Vec<RouteView>,
    /// Client requests no server route matched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmatched: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteView {
    pub method: String,
    pub route: String,
    /// The scenario's requests that hit this route.
    pub requests: Vec<String>,
    pub client_count: u64,
    /// Requests the service counted on this route in the window (all clients).
    pub server_count: u64,
    /// Send-to-last-byte p95 (without the open-model schedule correction).
    pub client_p95_ms: f64,
    /// Interpolated inside the bucket that holds it, as histogram_quantile does.
    pub server_p95_ms: f64,
    /// The bounds of that bucket; `None` above the highest finite bucket.
    pub server_p95_bucket_ms: (f64, Option<f64>),
    pub gap_ms: f64,
    pub large_gap: bool,
}

/// One load request of the scenario, as the view needs it.
pub struct ClientRequest<'a> {
    pub name: &'a str,
    pub method: &'a str,
    /// The path as written (may hold `{{ ... }}`).
    pub path: &'a str,
    pub latency_us: &'a Histogram<u64>,
}

/// `host:port` and path prefix of an `http://` URL.
pub fn split_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("`{}` must start with http://", crate::redact::userinfo(url)))?;
    let (hostport, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if hostport.is_empty() {
        bail!("`{}` has no host", crate::redact::userinfo(url));
    }
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    Ok((hostport, prefix.to_string()))
}

/// Percent-encodes a query-string value.
pub fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// How long one Prometheus API call may take, all of it.
const API_DEADLINE: Duration = Duration::from_secs(10);
/// The largest answer read from Prometheus.
const API_MAX_BYTES: usize = 16 << 20;

/// GET on the Prometheus HTTP API. HTTP/1.0 keeps the answer unchunked.
pub fn api_get(base: &str, path: &str, params: &[(&str, String)]) -> Result<serde_json::Value> {
    let (hostport, prefix) = split_url(base)?;
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let addr = hostport
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow!("{hostport} resolves to no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {prefix}{path}?{} HTTP/1.0\r\nHost: {hostport}\r\n\r\n",
        query.join("&")
    )?;
    // A whole-answer deadline and a size cap: a server that trickles or
    // floods must not hold the end of a run hostage.
    let deadline = std::time::Instant::now() + API_DEADLINE;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            bail!(
                "{hostport} did not answer within {} s",
                API_DEADLINE.as_secs()
            );
        }
        s.set_read_timeout(Some(left))?;
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                bail!(
                    "{hostport} did not answer within {} s",
                    API_DEADLINE.as_secs()
                )
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > API_MAX_BYTES {
            bail!("{hostport} answered more than {} MiB", API_MAX_BYTES >> 20);
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP answer from {hostport}"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    let v: serde_json::Value = serde_json::from_str(body)
        .with_context(|| format!("{hostport} answered {status} without JSON"))?;
    if v["status"] != "success" {
        bail!(
            "Prometheus answered {status}: {}",
            v["error"].as_str().unwrap_or(body)
        );
    }
    Ok(v)
}

/// Cumulative `(upper bound, count)` buckets -> (quantile, bucket lower, bucket upper).
/// The same linear interpolation as PromQL's histogram_quantile.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<(f64, f64, Option<f64>)> {
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total = b.last().filter(|l| l.0.is_infinite())?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lo, mut below) = (0.0, 0.0);
    for &(le, count) in &b {
        if count >= rank {
            if le.is_infinite() {
                // Beyond the highest finite bound: all that is known is "above lo".
                return Some((lo, lo, None));
            }
            let inside = count - below;
            let v = if inside > 0.0 {
                lo + (le - lo) * (rank - below) / inside
            } else {
                le
            };
            return Some((v, lo, Some(le)));
        }
        lo = le;
        below = count;
    }
    None
}

/// Replaces each `{{ ... }}` by a marker so a template segment is recognisable.
fn mask_templates(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        out.push('\u{1}');
        rest = match rest[i..].find("}}") {
            Some(j) => &rest[i + j + 2..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// How well a route template (`/payments/{id}`, `/payments/:id`) fits a client
/// path; `None` when it does not. Literal segments score, so the most specific
/// route wins, as in the service's router.
pub fn route_score(route: &str, client_path: &str) -> Option<usize> {
    let masked = mask_templates(client_path);
    let path = masked.split(['?', '#']).next().unwrap_or("");
    let r: Vec<&str> = route.trim_end_matches('/').split('/').collect();
    let c: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut score = 0;
    for (i, rs) in r.iter().enumerate() {
        let wildcard = rs.starts_with(':') || (rs.starts_with('{') && rs.ends_with('}'));
        if rs.starts_with('*') || rs.starts_with("{*") {
            return (c.len() > i).then_some(score);
        }
        let cs = c.get(i)?;
        if wildcard {
            if cs.is_empty() {
                return None;
            }
        } else if cs == rs {
            score += usize::from(!rs.is_empty());
        } else {
            return None;
        }
    }
    (r.len() == c.len()).then_some(score)
}

/// Builds the view from the buckets Prometheus returned, grouped by (method, route).
pub fn build_view(
    buckets: &BTreeMap<(String, String), Vec<(f64, f64)>>,
    clients: &[ClientRequest],
) -> (Vec<RouteView>, Vec<String>) {
    let mut groups: BTreeMap<(String, String), Vec<&ClientRequest>> = BTreeMap::new();
    let mut unmatched = Vec::new();
    for c in clients {
        let best = buckets
            .keys()
            .filter(|(m, _)| m.eq_ignore_ascii_case(c.method))
            .filter_map(|k| route_score(&k.1, c.path).map(|s| (s, k)))
            .max_by_key(|(s, _)| *s);
        match best {
            Some((_, k)) => groups.entry(k.clone()).or_default().push(c),
            None => unmatched.push(c.name.to_string()),
        }
    }
    let mut routes = Vec::new();
    for ((method, route), cs) in groups {
        let Some((p95, lo, hi)) = quantile(0.95, &buckets[&(method.clone(), route.clone())]) else {
            unmatched.extend(cs.iter().map(|c| c.name.to_string()));
            continue;
        };
        let mut merged = crate::metrics::new_histogram();
        for c in &cs {
            merged.add(c.latency_us).expect("same histogram bounds");
        }
        let client_p95 = merged.value_at_quantile(0.95) as f64 / 1000.0;
        let server_p95 = p95 * 1000.0;
        let hi_ms = hi.map(|h| h * 1000.0);
        // Judged against the top of the bucket: the server figure is only known within it.
        let large_gap = hi_ms.is_some_and(|h| {
            let at_least = client_p95 - h;
            at_least >= LARGE_GAP_MS && at_least >= LARGE_GAP_SHARE * client_p95
        });
        let total = buckets[&(method.clone(), route.clone())]
            .iter()
            .map(|b| b.1)
            .fold(0.0, f64::max);
        routes.push(RouteView {
            requests: cs.iter().map(|c| c.name.to_string()).collect(),
            client_count: merged.len(),
            server_count: total.round() as u64,
            client_p95_ms: round3(client_p95),
            server_p95_ms: round3(server_p95),
            server_p95_bucket_ms: (round3(lo * 1000.0), hi_ms.map(round3)),
            gap_ms: round3(client_p95 - server_p95),
            large_gap,
            method,
            route,
        });
    }
    (routes, unmatched)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Queries Prometheus for the service's latency buckets over `[start, end]`
/// and builds the view. `selector` names the bucket series; it must carry
/// `route` and `method` labels.
pub fn query_view(
    prometheus: &str,
    selector: &str,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
    clients: &[ClientRequest],
) -> Result<ServerView> {
    let window_s = ((end - start).num_milliseconds() as f64 / 1000.0)
        .ceil()
        .max(1.0) as u64;
    let query = format!("sum by (le, route, method) (increase({selector}[{window_s}s]))");
    let at = end.timestamp_millis() as f64 / 1000.0;
    let v = api_get(
        prometheus,
        "/api/v1/query",
        &[("query", query.clone()), ("time", format!("{at:.3}"))],
    )?;
    let mut buckets: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for s in v["data"]["result"].as_array().into_iter().flatten() {
        let m = &s["metric"];
        let (Some(le), Some(route)) = (m["le"].as_str(), m["route"].as_str()) else {
            bail!("the series of `{selector}` have no `le` and `route` labels");
        };
        let method = m["method"].as_str().unwrap_or("GET").to_string();
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::NAN)
        };
        let count: f64 = s["value"][1]
            .as_str()
            .and_then(|x| x.parse().ok())
            .unwrap_or(0.0);
        if le.is_nan() || count.is_nan() {
            continue;
        }
        buckets
            .entry((method, route.to_string()))
            .or_default()
            .push((le, count));
    }
    if buckets.is_empty() {
        bail!(
            "Prometheus at {prometheus} has no samples of {selector} in the run window: is the service scraped (config/prometheus.yml)?"
        );
    }
    let (routes, unmatched) = build_view(&buckets, clients);
    Ok(ServerView {
        prometheus: prometheus.to_string(),
        query,
        window_s,
        routes,
        unmatched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_promql() {
        // 100 requests: 50 under 1 ms, 40 in 1..2.5 ms, 10 in 2.5..5 ms.
        let b = [
            (0.001, 50.0),
            (0.0025, 90.0),
            (0.005, 100.0),
            (f64::INFINITY, 100.0),
        ];
        let (v, lo, hi) = quantile(0.95, &b).unwrap();
        // rank 95 falls half-way into the 2.5..5 ms bucket.
        assert!((v - 0.00375).abs() < 1e-12, "{v}");
        assert_eq!((lo, hi), (0.0025, Some(0.005)));
        let (v, _, _) = quantile(0.5, &b).unwrap();
        assert!((v - 0.001).abs() < 1e-12, "{v}");
        // Beyond the last finite bucket, only its bound is known.
        let b = [(0.001, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(0.95, &b), Some((0.001, 0.001, None)));
        assert_eq!(quantile(0.95, &[(f64::INFINITY, 0.0)]), None);
        assert_eq!(quantile(0.95, &[(0.1, 3.0)]), None, "no +Inf bucket");
    }

    #[test]
    fn routes_match_templated_and_literal_paths() {
        assert_eq!(route_score("/payments", "/payments"), Some(1));
        assert_eq!(
            route_score(
                "/payments/{payment_id}/confirm",
                "/payments/{{ payment.id }}/confirm"
            ),
            Some(2)
        );
        assert_eq!(
            route_score("/payments/:id", "/payments/pay_x?expand=1"),
            Some(1)
        );
        assert_eq!(route_score("/payments/{id}", "/payments"), None);
        assert_eq!(
            route_score("/payments/{id}", "/payments/{{ id }}/confirm"),
            None
        );
        assert_eq!(route_score("/health", "/health/ready"), None);
        assert_eq!(route_score("/files/{*rest}", "/files/a/b"), Some(1));
    }

    #[test]
    fn view_groups_requests_and_flags_only_provable_gaps() {
        let mut fast = crate::metrics::new_histogram();
        let mut slow = crate::metrics::new_histogram();
        for _ in 0..100 {
            fast.record(1_200).unwrap(); // 1.2 ms
            slow.record(30_000).unwrap(); // 30 ms
        }
        let mut buckets = BTreeMap::new();
        // The server saw /health at ~1 ms and /payments under 2.5 ms.
        buckets.insert(
            ("GET".to_string(), "/health".to_string()),
            vec![(0.001, 60.0), (0.0025, 100.0), (f64::INFINITY, 100.0)],
        );
        buckets.insert(
            ("POST".to_string(), "/payments".to_string()),
            vec![(0.001, 10.0), (0.0025, 100.0), (f64::INFINITY, 100.0)],
        );
        let clients = [
            ClientRequest {
                name: "health",
                method: "GET",
                path: "/health",
                latency_us: &fast,
            },
            ClientRequest {
                name: "create",
                method: "POST",
                path: "/payments",
                latency_us: &slow,
            },
            ClientRequest {
                name: "nowhere",
                method: "DELETE",
                path: "/payments",
                latency_us: &fast,
            },
        ];
        let (routes, unmatched) = build_view(&buckets, &clients);
        assert_eq!(unmatched, vec!["nowhere".to_string()]);
        let health = routes.iter().find(|r| r.route == "/health").unwrap();
        assert!(!health.large_gap, "{health:?}");
        assert_eq!(health.server_count, 100);
        let pay = routes.iter().find(|r| r.route == "/payments").unwrap();
        assert_eq!(pay.requests, vec!["create".to_string()]);
        assert!(pay.large_gap, "30 ms against at most 2.5 ms: {pay:?}");
        assert!((pay.client_p95_ms - 30.0).abs() < 0.1, "{pay:?}");
        assert_eq!(pay.server_p95_bucket_ms, (1.0, Some(2.5)));
        assert!(pay.gap_ms > 27.0, "{pay:?}");
    }
}
