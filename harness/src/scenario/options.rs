//! Executor settings (k6's names and semantics) and the run-wide options.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::duration;

/// `[options]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOptions {
    pub executor: Option<String>,
    pub vus: Option<u32>,
    pub duration: Option<String>,
    pub start_vus: Option<u32>,
    pub stages: Option<Vec<RawStage>>,
    pub iterations: Option<u64>,
    pub max_duration: Option<String>,
    pub rate: Option<f64>,
    pub start_rate: Option<f64>,
    pub time_unit: Option<String>,
    pub pre_allocated_vus: Option<u32>,
    pub max_vus: Option<u32>,
    pub graceful_stop: Option<String>,
    pub think_time: Option<String>,
    pub timeout: Option<String>,
    pub tls_ca_file: Option<String>,
    pub insecure_skip_tls_verify: Option<bool>,
    pub tls_client_cert: Option<String>,
    pub tls_client_key: Option<String>,
    pub http_version: Option<String>,
    pub hosts: Option<std::collections::BTreeMap<String, String>>,
    pub max_redirects: Option<u32>,
    pub decompress: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub duration: String,
    pub target: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Executor {
    ConstantVus {
        vus: u32,
        duration: Duration,
    },
    RampingVus {
        start_vus: u32,
        stages: Vec<Stage>,
    },
    PerVuIterations {
        vus: u32,
        iterations: u64,
        max_duration: Duration,
    },
    ConstantArrivalRate {
        rate: f64,
        time_unit: Duration,
        duration: Duration,
        pre_allocated_vus: u32,
        max_vus: u32,
    },
    RampingArrivalRate {
        start_rate: f64,
        time_unit: Duration,
        stages: Vec<Stage>,
        pre_allocated_vus: u32,
        max_vus: u32,
    },
}

pub const EXECUTORS: &[&str] = &[
    "constant-vus",
    "ramping-vus",
    "per-vu-iterations",
    "constant-arrival-rate",
    "ramping-arrival-rate",
];

/// k6's default number of redirects followed.
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;

/// Settings that apply whatever the executor.
const COMMON: &[&str] = &[
    "executor",
    "graceful_stop",
    "think_time",
    "timeout",
    "tls_ca_file",
    "insecure_skip_tls_verify",
    "tls_client_cert",
    "tls_client_key",
    "http_version",
    "hosts",
    "max_redirects",
    "decompress",
];

fn allowed(executor: &str) -> &'static [&'static str] {
    match executor {
        "constant-vus" => &["vus", "duration"],
        "ramping-vus" => &["start_vus", "stages"],
        "per-vu-iterations" => &["vus", "iterations", "max_duration"],
        "constant-arrival-rate" => &[
            "rate",
            "time_unit",
            "duration",
            "pre_allocated_vus",
            "max_vus",
        ],
        "ramping-arrival-rate" => &[
            "start_rate",
            "time_unit",
            "stages",
            "pre_allocated_vus",
            "max_vus",
        ],
        _ => &[],
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub executor: Executor,
    /// How long iterations still running at the end may take before they are cut.
    pub graceful_stop: Duration,
    /// Uniform random pause after each iteration, `(min, max)`.
    pub think_time: Option<(Duration, Duration)>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// For https targets; paths as written (relative to the scenario file).
    pub tls: TlsSettings,
    pub http_version: HttpVersion,
    /// k6's `hosts`: a host name's address, instead of asking DNS.
    pub hosts: std::collections::BTreeMap<String, std::net::SocketAddr>,
    /// Redirects followed per request (k6's `maxRedirects`, default 10; 0: none).
    pub max_redirects: u32,
    /// Ask for gzip/deflate bodies and decode them for checks and extraction.
    pub decompress: bool,
}

/// `hosts` values: `IP` (the target's port kept: port 0 here) or `IP:port`.
fn host_addr(v: &str) -> Option<std::net::SocketAddr> {
    v.parse().ok().or_else(|| {
        v.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| std::net::SocketAddr::new(ip, 0))
    })
}

/// `http_version`: what the client speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/2 when an https server offers it (ALPN), else HTTP/1.1.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    One,
    /// HTTP/2 only: by ALPN on https, with prior knowledge (h2c) on http.
    Two,
}

/// How an https target is trusted and how the client proves who it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsSettings {
    /// Extra trusted roots (PEM), beside the system's.
    pub ca_file: Option<std::path::PathBuf>,
    /// Accept any server certificate (self-signed test environments).
    pub insecure_skip_verify: bool,
    /// Client certificate chain and key (PEM) for mutual TLS.
    pub client_cert: Option<std::path::PathBuf>,
    pub client_key: Option<std::path::PathBuf>,
}

impl TlsSettings {
    /// Relative paths taken from `dir` (the scenario file's folder).
    pub fn relative_to(mut self, dir: &std::path::Path) -> TlsSettings {
        for p in [
            &mut self.ca_file,
            &mut self.client_cert,
            &mut self.client_key,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        self
    }
}

/// An option error: the key it concerns (inside `[options]`) and the message.
pub type OptError = (Vec<String>, String);

fn err(path: &[&str], msg: impl Into<String>) -> OptError {
    (path.iter().map(|s| s.to_string()).collect(), msg.into())
}

fn dur(key: &str, v: &Option<String>) -> Result<Option<Duration>, OptError> {
    v.as_deref()
        .map(|s| duration::parse(s).map_err(|e| err(&[key], e)))
        .transpose()
}

fn stages(raw: &Option<Vec<RawStage>>) -> Result<Vec<Stage>, OptError> {
    let raw = raw
        .as_ref()
        .ok_or_else(|| err(&["executor"], "this executor needs `stages`"))?;
    if raw.is_empty() {
        return Err(err(&["stages"], "`stages` needs at least one stage"));
    }
    raw.iter()
        .enumerate()
        .map(|(i, s)| {
            if s.target < 0.0 || !s.target.is_finite() {
                return Err(err(
                    &["stages"],
                    format!("stage {}: target must be >= 0", i + 1),
                ));
            }
            Ok(Stage {
                duration: duration::parse(&s.duration)
                    .map_err(|e| err(&["stages"], format!("stage {}: {e}", i + 1)))?,
                target: s.target,
            })
        })
        .collect()
}

fn need<T: Copy>(v: Option<T>, key: &str, executor: &str) -> Result<T, OptError> {
    v.ok_or_else(|| err(&["executor"], format!("{executor} needs `{key}`")))
}

impl Options {
    /// Validates `[options]`; errors name the key they concern.
    pub fn from_raw(raw: &RawOptions, present: &[String]) -> Result<Options, OptError> {
        let name = raw.executor.as_deref().unwrap_or("constant-vus");
        if !EXECUTORS.contains(&name) {
            return Err(err(
                &["executor"],
                format!(
                    "unknown executor `{name}` (known: {})",
                    EXECUTORS.join(", ")
                ),
            ));
        }
        for key in present {
            if !COMMON.contains(&key.as_str()) && !allowed(name).contains(&key.as_str()) {
                return Err(err(
                    &[key.as_str()],
                    format!(
                        "`{key}` does not apply to executor {name} (it takes: {})",
                        allowed(name).join(", ")
                    ),
                ));
            }
        }
        let time_unit = dur("time_unit", &raw.time_unit)?.unwrap_or(Duration::from_secs(1));
        if time_unit.is_zero() {
            return Err(err(&["time_unit"], "time_unit must be above zero"));
        }
        let executor = match name {
            "constant-vus" => Executor::ConstantVus {
                vus: raw.vus.unwrap_or(1),
                duration: need(dur("duration", &raw.duration)?, "duration", name)?,
            },
            "ramping-vus" => Executor::RampingVus {
                start_vus: raw.start_vus.unwrap_or(1),
                stages: stages(&raw.stages)?,
            },
            "per-vu-iterations" => Executor::PerVuIterations {
                vus: raw.vus.unwrap_or(1),
                iterations: raw.iterations.unwrap_or(1),
                max_duration: dur("max_duration", &raw.max_duration)?
                    .unwrap_or(Duration::from_secs(600)),
            },
            "constant-arrival-rate" => {
                let pre = need(raw.pre_allocated_vus, "pre_allocated_vus", name)?;
                let rate = need(raw.rate, "rate", name)?;
                if rate <= 0.0 || !rate.is_finite() {
                    return Err(err(&["rate"], "rate must be above zero"));
                }
                Executor::ConstantArrivalRate {
                    rate,
                    time_unit,
                    duration: need(dur("duration", &raw.duration)?, "duration", name)?,
                    pre_allocated_vus: pre,
                    max_vus: raw.max_vus.unwrap_or(pre).max(pre),
                }
            }
            _ => {
                let pre = need(raw.pre_allocated_vus, "pre_allocated_vus", name)?;
                Executor::RampingArrivalRate {
                    start_rate: raw.start_rate.unwrap_or(0.0).max(0.0),
                    time_unit,
                    stages: stages(&raw.stages)?,
                    pre_allocated_vus: pre,
                    max_vus: raw.max_vus.unwrap_or(pre).max(pre),
                }
            }
        };
        let think_time = match raw.think_time.as_deref() {
            None => None,
            Some(s) => Some(parse_think_time(s).map_err(|e| err(&["think_time"], e))?),
        };
        let options = Options {
            executor,
            graceful_stop: dur("graceful_stop", &raw.graceful_stop)?
                .unwrap_or(Duration::from_secs(30)),
            think_time,
            timeout: dur("timeout", &raw.timeout)?.unwrap_or(Duration::from_secs(60)),
            max_redirects: raw.max_redirects.unwrap_or(DEFAULT_MAX_REDIRECTS),
            decompress: raw.decompress.unwrap_or(false),
            http_version: match raw.http_version.as_deref() {
                None | Some("auto") => HttpVersion::Auto,
                Some("1.1") => HttpVersion::One,
                Some("2") => HttpVersion::Two,
                Some(other) => {
                    return Err(err(
                        &["http_version"],
                        format!("http_version `{other}`: use \"auto\", \"1.1\" or \"2\""),
                    ))
                }
            },
            hosts: raw
                .hosts
                .iter()
                .flatten()
                .map(|(name, v)| {
                    host_addr(v)
                        .map(|a| (name.to_ascii_lowercase(), a))
                        .ok_or_else(|| {
                            err(
                                &["hosts", name],
                                format!("`{v}` is not an IP address or IP:port"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
            tls: TlsSettings {
                ca_file: raw.tls_ca_file.as_ref().map(Into::into),
                insecure_skip_verify: raw.insecure_skip_tls_verify.unwrap_or(false),
                client_cert: raw.tls_client_cert.as_ref().map(Into::into),
                client_key: raw.tls_client_key.as_ref().map(Into::into),
            },
        };
        if options.executor.max_vus() == 0 {
            return Err(err(
                &["executor"],
                "the executor would never run a VU (all VU counts are 0)",
            ));
        }
        options.executor.check_capacity()?;
        Ok(options)
    }
}

/// `1s..5s` (uniform between) or `2s` (fixed).
pub fn parse_think_time(s: &str) -> Result<(Duration, Duration), String> {
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (duration::parse(a)?, duration::parse(b)?);
            if a > b {
                return Err(format!(
                    "think_time `{s}`: the lower bound exceeds the upper one"
                ));
            }
            Ok((a, b))
        }
        None => {
            let d = duration::parse(s)?;
            Ok((d, d))
        }
    }
}

fn stages_total(stages: &[Stage]) -> Duration {
    stages.iter().map(|s| s.duration).sum()
}

/// The most iterations per second an arrival-rate executor may schedule: far
/// above what one machine sends, far below a schedule that only spins.
pub const MAX_RATE_PER_S: f64 = 1_000_000.0;

/// The most VUs a run may hold: each keeps a connection (a file descriptor)
/// and its buffers, so at most 50,000 and within the open-file limit.
pub fn vu_limit() -> (u64, String) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    let nofile = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 {
        r.rlim_cur
    } else {
        u64::MAX
    };
    let by_files = nofile.saturating_sub(100);
    if by_files < 50_000 {
        (
            by_files,
            format!("one connection per VU and the open-file limit is {nofile} (ulimit -n)"),
        )
    } else {
        (50_000, "each VU holds a connection and its buffers".into())
    }
}

impl Executor {
    /// Refuses, before anything is sent, VU counts and rates past what the
    /// machine can hold (they used to exhaust memory or spin).
    pub fn check_capacity(&self) -> Result<(), OptError> {
        let (limit, why) = vu_limit();
        let vus = match self {
            Executor::RampingVus { start_vus, stages } => stages
                .iter()
                .map(|s| s.target)
                .fold(*start_vus as f64, f64::max),
            _ => self.max_vus() as f64,
        };
        if vus > limit as f64 {
            let key = match self {
                Executor::RampingVus { .. } => "stages",
                Executor::ConstantArrivalRate { .. } | Executor::RampingArrivalRate { .. } => {
                    "max_vus"
                }
                _ => "vus",
            };
            return Err(err(
                &[key],
                format!("{vus} VUs is more than this machine can hold: at most {limit} ({why})"),
            ));
        }
        let per_s = |rate: f64, unit: Duration| rate / unit.as_secs_f64();
        let (key, rate) = match self {
            Executor::ConstantArrivalRate {
                rate, time_unit, ..
            } => ("rate", per_s(*rate, *time_unit)),
            Executor::RampingArrivalRate {
                start_rate,
                time_unit,
                stages,
                ..
            } => (
                "stages",
                stages
                    .iter()
                    .map(|s| per_s(s.target, *time_unit))
                    .fold(per_s(*start_rate, *time_unit), f64::max),
            ),
            _ => return Ok(()),
        };
        if rate > MAX_RATE_PER_S {
            return Err(err(
                &[key],
                format!(
                    "{rate} iterations/s is more than one machine can schedule: at most {MAX_RATE_PER_S}/s"
                ),
            ));
        }
        Ok(())
    }

    pub fn name(&self) -> &'static str {
        match self {
            Executor::ConstantVus { .. } => "constant-vus",
            Executor::RampingVus { .. } => "ramping-vus",
            Executor::PerVuIterations { .. } => "per-vu-iterations",
            Executor::ConstantArrivalRate { .. } => "constant-arrival-rate",
            Executor::RampingArrivalRate { .. } => "ramping-arrival-rate",
        }
    }

    /// How long the load phase is planned to last (an upper bound for
    /// per-vu-iterations), not counting the graceful stop.
    pub fn planned_duration(&self) -> Duration {
        match self {
            Executor::ConstantVus { duration, .. } => *duration,
            Executor::RampingVus { stages, .. } => stages_total(stages),
            Executor::PerVuIterations { max_duration, .. } => *max_duration,
            Executor::ConstantArrivalRate { duration, .. } => *duration,
            Executor::RampingArrivalRate { stages, .. } => stages_total(stages),
        }
    }

    /// The most VUs this executor may run at once.
    pub fn max_vus(&self) -> u32 {
        match self {
            Executor::ConstantVus { vus, .. } | Executor::PerVuIterations { vus, .. } => *vus,
            Executor::RampingVus { start_vus, stages } => stages
                .iter()
                .map(|s| s.target.ceil() as u32)
                .fold(*start_vus, u32::max),
            Executor::ConstantArrivalRate { max_vus, .. }
            | Executor::RampingArrivalRate { max_vus, .. } => *max_vus,
        }
    }

    /// Whether latency is corrected for coordinated omission (open model).
    pub fn is_open_model(&self) -> bool {
        matches!(
            self,
            Executor::ConstantArrivalRate { .. } | Executor::RampingArrivalRate { .. }
        )
    }

    /// The settings as recorded in result files.
    pub fn to_json(&self) -> serde_json::Value {
        let stages_json = |stages: &[Stage]| -> serde_json::Value {
            stages
                .iter()
                .map(|s| json!({"duration": duration::format(s.duration), "target": s.target}))
                .collect()
        };
        match self {
            Executor::ConstantVus { vus, duration: d } => {
                json!({"executor": self.name(), "vus": vus, "duration": duration::format(*d)})
            }
            Executor::RampingVus { start_vus, stages } => {
                json!({"executor": self.name(), "start_vus": start_vus, "stages": stages_json(stages)})
            }
            Executor::PerVuIterations {
                vus,
                iterations,
                max_duration,
            } => json!({
                "executor": self.name(), "vus": vus, "iterations": iterations,
                "max_duration": duration::format(*max_duration)
            }),
            Executor::ConstantArrivalRate {
                rate,
                time_unit,
                duration: d,
                pre_allocated_vus,
                max_vus,
            } => json!({
                "executor": self.name(), "rate": rate, "time_unit": duration::format(*time_unit),
                "duration": duration::format(*d), "pre_allocated_vus": pre_allocated_vus, "max_vus": max_vus
            }),
            Executor::RampingArrivalRate {
                start_rate,
                time_unit,
                stages,
                pre_allocated_vus,
                max_vus,
            } => json!({
                "executor": self.name(), "start_rate": start_rate, "time_unit": duration::format(*time_unit),
                "stages": stages_json(stages), "pre_allocated_vus": pre_allocated_vus, "max_vus": max_vus
            }),
        }
    }
}

impl Options {
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = self.executor.to_json();
        let m = v.as_object_mut().expect("executor json is an object");
        m.insert(
            "graceful_stop".into(),
            json!(duration::format(self.graceful_stop)),
        );
        m.insert("timeout".into(), json!(duration::format(self.timeout)));
        if let Some((a, b)) = self.think_time {
            m.insert(
                "think_time".into(),
                json!(format!("{}..{}", duration::format(a), duration::format(b))),
            );
        }
        v
    }

    /// Applies `--vus` / `--duration` where they make sense for the executor,
    /// as k6's command-line shortcuts do. Returns notes on what changed.
    pub fn apply_overrides(
        &mut self,
        vus: Option<u32>,
        dur: Option<Duration>,
    ) -> Result<Vec<String>, String> {
        if vus.is_none() && dur.is_none() {
            return Ok(vec![]);
        }
        let mut notes = vec![];
        match &mut self.executor {
            Executor::ConstantVus {
                vus: v,
                duration: d,
            } => {
                if let Some(n) = vus {
                    *v = n;
                    notes.push(format!("vus = {n} (--vus)"));
                }
                if let Some(x) = dur {
                    *d = x;
                    notes.push(format!("duration = {} (--duration)", duration::format(x)));
                }
            }
            Executor::RampingVus { .. } => {
                // k6's shortcut: --vus/--duration replace the stages with a constant load.
                let n = vus.unwrap_or_else(|| self.executor.max_vus());
                let d = dur.unwrap_or_else(|| self.executor.planned_duration());
                self.executor = Executor::ConstantVus {
                    vus: n,
                    duration: d,
                };
                notes.push(format!(
                    "ramping-vus stages replaced by constant-vus: {n} VUs for {} (--vus/--duration)",
                    duration::format(d)
                ));
            }
            Executor::PerVuIterations {
                vus: v,
                max_duration,
                ..
            } => {
                if let Some(n) = vus {
                    *v = n;
                    notes.push(format!("vus = {n} (--vus)"));
                }
                if let Some(x) = dur {
                    *max_duration = x;
                    notes.push(format!(
                        "max_duration = {} (--duration)",
                        duration::format(x)
                    ));
                }
            }
            Executor::ConstantArrivalRate { duration: d, .. } => {
                if vus.is_some() {
                    return Err("--vus does not apply to constant-arrival-rate: the rate drives the load; set pre_allocated_vus/max_vus in the scenario".into());
                }
                if let Some(x) = dur {
                    *d = x;
                    notes.push(format!("duration = {} (--duration)", duration::format(x)));
                }
            }
            Executor::RampingArrivalRate { .. } => {
                return Err("--vus/--duration do not apply to ramping-arrival-rate: edit its stages in the scenario".into());
            }
        }
        if self.executor.max_vus() == 0 {
            return Err("--vus must be at least 1".into());
        }
        self.executor.check_capacity().map_err(|(_, m)| m)?;
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(executor: &str) -> RawOptions {
        RawOptions {
            executor: Some(executor.into()),
            ..Default::default()
        }
    }

    #[test]
    fn k6_defaults_apply() {
        let mut r = raw("constant-arrival-rate");
        r.rate = Some(10.0);
        r.duration = Some("5s".into());
        r.pre_allocated_vus = Some(4);
        let o = Options::from_raw(&r, &[]).unwrap();
        assert_eq!(
            o.executor,
            Executor::ConstantArrivalRate {
                rate: 10.0,
                time_unit: Duration::from_secs(1),
                duration: Duration::from_secs(5),
                pre_allocated_vus: 4,
                max_vus: 4
            }
        );
        assert_eq!(o.graceful_stop, Duration::from_secs(30));
    }

    #[test]
    fn inapplicable_and_missing_settings_are_errors() {
        let r = raw("constant-vus");
        assert!(Options::from_raw(&r, &["stages".into()])
            .unwrap_err()
            .1
            .contains("does not apply"));
        assert!(Options::from_raw(&r, &[])
            .unwrap_err()
            .1
            .contains("needs `duration`"));
        assert!(Options::from_raw(&raw("warp"), &[])
            .unwrap_err()
            .1
            .contains("unknown executor"));
    }

    #[test]
    fn overrides_follow_k6_shortcuts() {
        let mut r = raw("ramping-vus");
        r.stages = Some(vec![RawStage {
            duration: "10s".into(),
            target: 25.0,
        }]);
        let mut o = Options::from_raw(&r, &[]).unwrap();
        o.apply_overrides(Some(32), Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(
            o.executor,
            Executor::ConstantVus {
                vus: 32,
                duration: Duration::from_secs(5)
            }
        );
    }

    #[test]
    fn think_time_ranges() {
        assert_eq!(
            parse_think_time("1s..5s").unwrap(),
            (Duration::from_secs(1), Duration::from_secs(5))
        );
        assert_eq!(
            parse_think_time("2s").unwrap(),
            (Duration::from_secs(2), Duration::from_secs(2))
        );
        assert!(parse_think_time("5s..1s").is_err());
    }
}
