//! The run-wide options of `[options]`; the executor's own settings are read
//! by its file in `executor/`.

use std::time::Duration;

use serde_json::json;

use crate::duration;
use crate::executor;
use crate::executor::raw::{dur, err, OptError, RawOptions};
pub use crate::executor::Executor;

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

impl Options {
    /// Validates `[options]`; errors name the key they concern.
    pub fn from_raw(raw: &RawOptions, present: &[String]) -> Result<Options, OptError> {
        let name = raw.executor.as_deref().unwrap_or("constant-vus");
        let Some(keys) = executor::keys(name) else {
            return Err(err(
                &["executor"],
                format!(
                    "unknown executor `{name}` (known: {})",
                    executor::NAMES.join(", ")
                ),
            ));
        };
        for key in present {
            if !COMMON.contains(&key.as_str()) && !keys.contains(&key.as_str()) {
                return Err(err(
                    &[key.as_str()],
                    format!(
                        "`{key}` does not apply to executor {name} (it takes: {})",
                        keys.join(", ")
                    ),
                ));
            }
        }
        let executor = executor::parse(name, raw)?;
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
        self.executor = self.executor.clone().with_overrides(vus, dur, &mut notes)?;
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
            Executor::ConstantArrivalRate(executor::ConstantArrivalRate {
                rate: 10.0,
                time_unit: Duration::from_secs(1),
                duration: Duration::from_secs(5),
                pre_allocated_vus: 4,
                max_vus: 4
            })
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
        r.stages = Some(vec![crate::executor::raw::RawStage {
            duration: "10s".into(),
            target: 25.0,
        }]);
        let mut o = Options::from_raw(&r, &[]).unwrap();
        o.apply_overrides(Some(32), Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(
            o.executor,
            Executor::ConstantVus(executor::ConstantVus {
                vus: 32,
                duration: Duration::from_secs(5)
            })
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
