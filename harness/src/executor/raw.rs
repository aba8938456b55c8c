//! `[options]` as written in a scenario file, and the helpers that read its
//! values with errors naming their key: shared by each executor's own
//! settings (the files beside this one) and the run-wide options
//! (`scenario/options.rs`).

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

/// One stage of a ramping executor: reach `target` over `duration`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

/// An option error: the key it concerns (inside `[options]`) and the message.
pub type OptError = (Vec<String>, String);

pub fn err(path: &[&str], msg: impl Into<String>) -> OptError {
    (path.iter().map(|s| s.to_string()).collect(), msg.into())
}

pub fn dur(key: &str, v: &Option<String>) -> Result<Option<Duration>, OptError> {
    v.as_deref()
        .map(|s| duration::parse(s).map_err(|e| err(&[key], e)))
        .transpose()
}

pub fn stages(raw: &Option<Vec<RawStage>>) -> Result<Vec<Stage>, OptError> {
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

pub fn need<T: Copy>(v: Option<T>, key: &str, executor: &str) -> Result<T, OptError> {
    v.ok_or_else(|| err(&["executor"], format!("{executor} needs `{key}`")))
}

/// `time_unit` of an arrival-rate executor (default 1s), above zero.
pub fn time_unit(raw: &RawOptions) -> Result<Duration, OptError> {
    let t = dur("time_unit", &raw.time_unit)?.unwrap_or(Duration::from_secs(1));
    if t.is_zero() {
        return Err(err(&["time_unit"], "time_unit must be above zero"));
    }
    Ok(t)
}

/// How long a list of stages lasts.
pub fn stages_total(stages: &[Stage]) -> Duration {
    stages.iter().map(|s| s.duration).sum()
}

/// Stages as recorded in result files.
pub fn stages_json(stages: &[Stage]) -> serde_json::Value {
    stages
        .iter()
        .map(|s| json!({"duration": duration::format(s.duration), "target": s.target}))
        .collect()
}
