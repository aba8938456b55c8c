//! What a split run's results hold: a shard's place and its measurements
//! (every histogram whole, HDR V2 + deflate, every counter, for the run and
//! for each second, so that merging shards gives exactly what one generator
//! would have recorded), and how a merged result was put together.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::metrics::{
    decode_histogram, encode_histogram, new_histogram, MetricsSet, RequestMetrics,
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PackedRequest {
    pub count: u64,
    pub failed: u64,
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncorrected: Option<String>,
    pub statuses: Vec<(u16, u64)>,
    pub http2: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PackedSet {
    pub requests: Vec<PackedRequest>,
    pub checks: Vec<[u64; 2]>,
    pub iterations: u64,
    pub iteration_duration: String,
    pub connecting: String,
    pub tls_handshaking: String,
    pub dropped_iterations: u64,
    pub interrupted_iterations: u64,
    pub errors: BTreeMap<String, u64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// One second of a shard, counted from the shared start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PackedWindow {
    pub t: u64,
    pub vus: u64,
    pub set: PackedSet,
}

impl PackedSet {
    pub fn pack(s: &MetricsSet) -> PackedSet {
        PackedSet {
            requests: s
                .requests
                .iter()
                .map(|r| PackedRequest {
                    count: r.count,
                    failed: r.failed,
                    duration: encode_histogram(&r.duration),
                    uncorrected: r.uncorrected.as_ref().map(encode_histogram),
                    statuses: r.statuses.clone(),
                    http2: r.http2,
                })
                .collect(),
            checks: s.checks.clone(),
            iterations: s.iterations,
            iteration_duration: encode_histogram(&s.iteration_duration),
            connecting: encode_histogram(&s.connecting),
            tls_handshaking: encode_histogram(&s.tls_handshaking),
            dropped_iterations: s.dropped_iterations,
            interrupted_iterations: s.interrupted_iterations,
            errors: s.errors.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
        }
    }

    /// The set back, every histogram checked to have the settings this
    /// build records with (else adding them would not be exact).
    pub fn unpack(&self) -> Result<MetricsSet> {
        let open = self.requests.iter().any(|r| r.uncorrected.is_some());
        let mut s = MetricsSet::new(self.requests.len(), self.checks.len(), open);
        for (r, p) in s.requests.iter_mut().zip(&self.requests) {
            *r = RequestMetrics {
                count: p.count,
                failed: p.failed,
                duration: histogram(&p.duration)?,
                uncorrected: p.uncorrected.as_deref().map(histogram).transpose()?,
                statuses: p.statuses.clone(),
                http2: p.http2,
            };
        }
        s.checks = self.checks.clone();
        s.iterations = self.iterations;
        s.iteration_duration = histogram(&self.iteration_duration)?;
        s.connecting = histogram(&self.connecting)?;
        s.tls_handshaking = histogram(&self.tls_handshaking)?;
        s.dropped_iterations = self.dropped_iterations;
        s.interrupted_iterations = self.interrupted_iterations;
        s.errors = self.errors.iter().map(|(k, v)| (k.clone(), *v)).collect();
        s.bytes_sent = self.bytes_sent;
        s.bytes_received = self.bytes_received;
        Ok(s)
    }
}

/// A histogram of a shard, refused unless its range and precision are the
/// ones every shard of this build records with.
fn histogram(text: &str) -> Result<Histogram<u64>> {
    let h = decode_histogram(text)?;
    let want = new_histogram();
    let (got, exp) = (
        (h.low(), h.high(), h.sigfig()),
        (want.low(), want.high(), want.sigfig()),
    );
    if got != exp {
        bail!(
            "a histogram records {}..{} µs with {} significant digits, this build {}..{} with {}: \
             merging them would not be exact (merge shards made by the same build)",
            got.0,
            got.1,
            got.2,
            exp.0,
            exp.1,
            exp.2
        );
    }
    // Decoding may size the histogram to its data; the merge adds into ours.
    let mut out = new_histogram();
    out.add(&h).expect("same bounds");
    Ok(out)
}

/// What a shard adds to its result: its place and its whole measurements.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardPart {
    /// 0-based, of `count`.
    pub index: usize,
    pub count: usize,
    /// k6's spelling: `1/3:2/3` of `0,1/3,2/3,1`.
    pub segment: String,
    pub sequence: String,
    /// The agreed start of the load on the coordinator's clock (RFC 3339,
    /// ms), when a coordinator set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// The coordinator's clock minus this shard's, as measured before the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<f64>,
    pub total: PackedSet,
    pub windows: Vec<PackedWindow>,
}

/// How a merged result was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MergeInfo {
    /// Shards in the split.
    pub count: usize,
    pub shards: Vec<MergedShard>,
    /// Shards of the sequence with no result, or whose run was cut short.
    pub missing: Vec<usize>,
    /// False when a shard is missing: the figures then undercount the load.
    pub complete: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MergedShard {
    pub index: usize,
    pub run: String,
    pub host: String,
    pub requests: u64,
    /// The shard's own verdict on the thresholds: information only.
    pub thresholds_ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Sample;

    #[test]
    fn a_set_comes_back_whole() {
        let mut s = MetricsSet::new(2, 1, true);
        for (i, us) in [120u64, 450, 9_000, 31_000, 1_200_000].iter().enumerate() {
            let sample = Sample::Response {
                status: if i == 2 { 500 } else { 200 },
                latency_us: *us,
                late_us: 7,
                http2: false,
            };
            s.record_request(i % 2, sample, 0, [i != 3]);
        }
        s.record_connection(300, Some(900));
        s.error("connection refused");
        s.iterations = 5;
        s.bytes_sent = 1234;
        let back = PackedSet::pack(&s).unpack().unwrap();
        assert_eq!(PackedSet::pack(&back), PackedSet::pack(&s));
        assert_eq!(back.requests[0].duration, s.requests[0].duration);
        assert_eq!(back.requests[1].uncorrected, s.requests[1].uncorrected);
    }

    #[test]
    fn other_histogram_settings_are_refused() {
        let mut s = MetricsSet::new(1, 0, false);
        s.requests[0].duration = Histogram::new_with_bounds(1, 60_000_000, 2).unwrap();
        s.requests[0].duration.record(5).unwrap();
        let e = match PackedSet::pack(&s).unpack() {
            Ok(_) => panic!("a 2-digit histogram was taken as exact"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("significant digits") && e.contains("not be exact"),
            "{e}"
        );
    }
}
