//! The result model: what a run measured, serialised as
//! `<out>/<run>_<scenario>.json` (versioned) with a text summary beside it.
//! Compare and report read this model; they never re-run anything.

pub mod assemble;
pub mod history;
pub mod k6;
pub mod locust;
pub mod shard;
mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::metrics;
use crate::scenario::thresholds::Agg;

pub use summary::render as summary;

/// Bumped whenever a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    pub schema_version: u32,
    pub run: String,
    pub scenario: String,
    pub scenario_file: String,
    pub scenario_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub target: String,
    /// Executor settings after flags were applied.
    pub options: serde_json::Value,
    /// What `--vus`/`--duration` changed, if anything.
    #[serde(default)]
    pub overrides: Vec<String>,
    pub git: Option<GitInfo>,
    /// RFC 3339 start time of the load phase.
    pub started_at: String,
    pub duration_s: f64,
    /// Stopped by Ctrl-C before the planned end.
    pub interrupted: bool,
    /// The `abort_on_fail` threshold that stopped the run, if any.
    #[serde(default)]
    pub aborted_by: Option<String>,
    pub host: HostInfo,
    pub loadgen: LoadGen,
    pub metrics: Metrics,
    /// Per request name (the step's `name`).
    pub requests: BTreeMap<String, RequestResult>,
    pub errors: Vec<ErrorCount>,
    pub thresholds: Vec<ThresholdResult>,
    /// Checks not tied to one request (a k6 script's `check()` calls).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    pub timeline: Vec<TimelineEntry>,
    /// One entry per trial when run with `--repeat N` (N > 1); empty otherwise.
    #[serde(default)]
    pub trials: Vec<TrialResult>,
    /// The stack the run was measured on, when `loadtest bench` brought it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<StackInfo>,
    /// The service's own latency per route over the run window, from Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<crate::metrics::server::ServerView>,
    /// The Grafana dashboard showing this run (when live metrics were pushed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
    /// A shard's place in a split run and its whole measurements (`--shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<shard::ShardPart>,
    /// How a merged result was put together from its shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<shard::MergeInfo>,
}

/// What `loadtest bench` did to the stack before the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StackInfo {
    pub project: String,
    pub compose_file: String,
    /// Service -> image id it ran (the app's reflects the checkout).
    pub images: BTreeMap<String, String>,
    pub down_s: f64,
    pub up_s: f64,
    pub migrations_applied: usize,
    pub migrate_s: f64,
    /// Generated rows loaded after the migrations, and how long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeded_rows: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_s: Option<f64>,
    /// How the database was put back before the run when the stack was not recreated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GitInfo {
    pub commit: String,
    pub dirty: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostInfo {
    pub hostname: String,
    pub cores: usize,
    pub kernel: String,
    pub os: String,
}

/// How hard the load generator itself worked: a saturated generator
/// under-reports the server's capacity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadGen {
    pub workers: usize,
    pub cpu_seconds: f64,
    /// CPU time over wall time over cores: 1.0 means every core was busy.
    pub cpu_saturation: f64,
    pub max_rss_kb: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Counter {
    pub count: u64,
    pub rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RateStat {
    pub rate: f64,
    pub passes: u64,
    pub fails: u64,
}

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trend {
    pub count: u64,
    pub min: f64,
    pub avg: f64,
    pub med: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Trend {
    pub fn from_histogram(h: &hdrhistogram::Histogram<u64>) -> Trend {
        let v = |a| metrics::trend_value(h, a).unwrap_or(0.0);
        Trend {
            count: h.len(),
            min: v(Agg::Min),
            avg: round3(v(Agg::Avg)),
            med: v(Agg::Med),
            p90: v(Agg::P(90.0)),
            p95: v(Agg::P(95.0)),
            p99: v(Agg::P(99.0)),
            p999: v(Agg::P(99.9)),
            max: v(Agg::Max),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub http_reqs: Counter,
    /// `passes` are failed requests, as in k6 (the rate of failure).
    pub http_req_failed: RateStat,
    pub http_req_duration: Trend,
    /// Present under arrival-rate executors: latency not corrected for coordinated omission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_req_duration_uncorrected: Option<Trend>,
    pub iteration_duration: Trend,
    /// Opening a TCP connection, for the requests that opened one (k6 counts
    /// every request, a reused connection as 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_req_connecting: Option<Trend>,
    /// The TLS handshake of those connections (https targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_req_tls_handshaking: Option<Trend>,
    pub checks: RateStat,
    pub iterations: Counter,
    pub dropped_iterations: Counter,
    pub interrupted_iterations: u64,
    pub vus_max: u64,
    pub data_sent: Counter,
    pub data_received: Counter,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckResult {
    pub name: String,
    pub passes: u64,
    pub fails: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestResult {
    /// Position of the step in the scenario.
    pub index: usize,
    pub method: String,
    pub http_reqs: Counter,
    pub http_req_failed: RateStat,
    pub http_req_duration: Trend,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_req_duration_uncorrected: Option<Trend>,
    /// HDR histogram of `http_req_duration` in µs (V2 + deflate, base64).
    pub histogram: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram_uncorrected: Option<String>,
    pub status_codes: BTreeMap<String, u64>,
    /// `HTTP/1.1`, `HTTP/2`, or both when a run saw both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    pub checks: Vec<CheckResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorCount {
    pub error: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThresholdResult {
    pub metric: String,
    pub expression: String,
    /// The observed value; `None` when the metric saw no data.
    pub value: Option<f64>,
    pub ok: bool,
    pub abort_on_fail: bool,
}

pub use crate::metrics::window::{RequestWindow, Window as TimelineEntry};

/// Key figures of one trial (under `--repeat`), overall and per request name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrialResult {
    pub trial: u32,
    pub duration_s: f64,
    pub interrupted: bool,
    pub overall: Figures,
    pub requests: BTreeMap<String, Figures>,
}

/// The figures `compare` judges, for one trial or one request name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Figures {
    pub requests: u64,
    pub failures: u64,
    pub checks_passes: u64,
    pub checks_fails: u64,
    pub rps: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Figures {
    pub fn new(
        h: &hdrhistogram::Histogram<u64>,
        requests: u64,
        failures: u64,
        checks: (u64, u64),
        secs: f64,
    ) -> Figures {
        let t = Trend::from_histogram(h);
        Figures {
            requests,
            failures,
            checks_passes: checks.0,
            checks_fails: checks.1,
            rps: if secs > 0.0 {
                round3(requests as f64 / secs)
            } else {
                0.0
            },
            mean: t.avg,
            p50: t.med,
            p90: t.p90,
            p95: t.p95,
            p99: t.p99,
            max: t.max,
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn counter(count: u64, secs: f64) -> Counter {
    Counter {
        count,
        rate: if secs > 0.0 {
            round3(count as f64 / secs)
        } else {
            0.0
        },
    }
}

pub fn rate_stat(passes: u64, fails: u64) -> RateStat {
    let n = passes + fails;
    RateStat {
        rate: if n > 0 { passes as f64 / n as f64 } else { 0.0 },
        passes,
        fails,
    }
}

/// The git commit of the working directory, if it is a checkout.
pub fn git_info(dir: &Path) -> Option<GitInfo> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dirty = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    Some(GitInfo { commit, dirty })
}

pub fn host_info() -> HostInfo {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    HostInfo {
        hostname: read("/proc/sys/kernel/hostname"),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        kernel: read("/proc/sys/kernel/osrelease"),
        os: std::env::consts::OS.to_string(),
    }
}

/// Starts the peak-memory count again from the current RSS (Linux's
/// `clear_refs` 5), so the peak reported for a run is the generator's during
/// the load, not what building images or seeding took before it.
pub fn reset_peak_memory() {
    if let Some(kb) = peak_rss_kb() {
        PEAK_BEFORE_KB.fetch_max(kb, std::sync::atomic::Ordering::Relaxed);
    }
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The highest peak seen before any reset: the stack work's.
static PEAK_BEFORE_KB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The peak RSS of the whole process so far (KiB), across resets: what the
/// stack work (image builds, migrations, seeding) and the load took at most.
pub fn whole_peak_rss_kb() -> u64 {
    let now = peak_rss_kb().unwrap_or_else(|| process_usage().1);
    now.max(PEAK_BEFORE_KB.load(std::sync::atomic::Ordering::Relaxed))
}

/// The peak RSS since the last [`reset_peak_memory`] (VmHWM), in KiB.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds of this process so far, and its peak RSS (KiB) since the
/// last [`reset_peak_memory`] (since the start where that is not available).
pub fn process_usage() -> (f64, u64) {
    // SAFETY: getrusage fills the struct we pass and touches nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0;
    if !ok {
        return (0.0, 0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let peak = peak_rss_kb().unwrap_or(ru.ru_maxrss as u64);
    (secs(ru.ru_utime) + secs(ru.ru_stime), peak)
}

/// `<out>/<run>_<scenario>.<ext>`
pub fn result_path(out: &Path, run: &str, scenario: &str, ext: &str) -> PathBuf {
    out.join(format!("{run}_{scenario}.{ext}"))
}

/// Run and scenario names become parts of file names (`<run>_<scenario>.json`):
/// letters, digits, '-', '_' and '.', not only dots, at most 100 characters.
/// Names read back from result files are held to the same rule.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 100
        || name.chars().all(|c| c == '.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        bail!(
            "{what} `{}` may only hold letters, digits, '-', '_' and '.' (not only dots, at most 100 \
             characters): it becomes part of file names",
            name.chars().take(120).collect::<String>()
        );
    }
    Ok(())
}

impl RunResult {
    /// The thresholds that did not hold, as `metric: expression`.
    pub fn crossed_thresholds(&self) -> Vec<String> {
        self.thresholds
            .iter()
            .filter(|t| !t.ok)
            .map(|t| format!("{}: {}", t.metric, t.expression))
            .collect()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("results serialise")
    }

    /// Reads a result file, refusing schema versions this build does not know.
    pub fn load(path: &Path) -> Result<RunResult> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read result file {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        match v.get("schema_version").and_then(|s| s.as_u64()) {
            Some(n) if n == SCHEMA_VERSION as u64 => {}
            Some(n) => bail!(
                "{}: schema_version {n} is not supported (this build reads {SCHEMA_VERSION})",
                path.display()
            ),
            None => bail!(
                "{}: not a loadtest result (no schema_version)",
                path.display()
            ),
        }
        serde_json::from_value(v).with_context(|| format!("{}: malformed result", path.display()))
    }

    /// The request's latency histogram, decoded.
    pub fn histogram(&self, request: &str) -> Result<hdrhistogram::Histogram<u64>> {
        let r = self
            .requests
            .get(request)
            .ok_or_else(|| anyhow!("no request named `{request}` in this result"))?;
        metrics::decode_histogram(&r.histogram)
    }
}

#[cfg(test)]
mod peak_tests {
    #[test]
    fn the_peak_memory_starts_again_after_a_reset() {
        // 256 MiB written (so resident), then returned to the system.
        let big = vec![1u8; 256 << 20];
        let before = super::process_usage().1;
        assert!(big.iter().step_by(4096).all(|&b| b == 1));
        drop(big);
        super::reset_peak_memory();
        let after = super::process_usage().1;
        assert!(before >= 256 * 1024, "{before} KiB");
        assert!(
            after + 200 * 1024 < before,
            "{after} KiB after the reset, {before} before"
        );
        // The whole process's peak still holds what came before the reset
        // (within the kernel's per-thread RSS counting, a few hundred KiB).
        let whole = super::whole_peak_rss_kb();
        assert!(whole + 4096 >= before, "{whole} KiB, {before} before");
    }
}
