//! `config/regression.toml`: tolerances and gates, per scenario, per request
//! name and per metric. Most specific wins: request > scenario > file > built-in.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Result};
use serde::Deserialize;

use super::MetricKind;
use crate::files::locate::{Locator, Seg};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scope {
    #[serde(default)]
    tolerance: BTreeMap<String, f64>,
    gates: Option<Vec<String>>,
    min_change_ms: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioScope {
    #[serde(default)]
    tolerance: BTreeMap<String, f64>,
    gates: Option<Vec<String>>,
    min_change_ms: Option<f64>,
    #[serde(default)]
    requests: BTreeMap<String, Scope>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    alpha: Option<f64>,
    confidence: Option<f64>,
    min_change_ms: Option<f64>,
    #[serde(default)]
    tolerance: BTreeMap<String, f64>,
    gates: Option<Vec<String>>,
    #[serde(default)]
    scenarios: BTreeMap<String, ScenarioScope>,
}

#[derive(Debug, Default)]
pub struct GateConfig {
    raw: RawConfig,
    /// Where it came from, for messages.
    pub source: Option<String>,
}

pub const DEFAULT_MIN_CHANGE_MS: f64 = 0.1;

/// Metrics that fail the check by default; the others are informational.
pub const DEFAULT_GATES: &[MetricKind] = &[
    MetricKind::Rps,
    MetricKind::P50,
    MetricKind::P90,
    MetricKind::P95,
    MetricKind::P99,
    MetricKind::ErrorRate,
    MetricKind::ChecksRate,
];

impl GateConfig {
    /// Reads the file; a missing default file means built-in settings.
    pub fn load(path: &Path, required: bool) -> Result<GateConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(GateConfig::default())
            }
            Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
        };
        let loc = Locator::new(path, &text);
        let raw: RawConfig = loc.deserialize()?;
        let check_metrics =
            |tol: &BTreeMap<String, f64>, gates: &Option<Vec<String>>, at: &[Seg]| -> Result<()> {
                for (k, v) in tol {
                    let mut p = at.to_vec();
                    p.push(Seg::Key("tolerance"));
                    p.push(Seg::Key(k.as_str()));
                    MetricKind::parse(k).map_err(|e| anyhow!("{}: {e}", loc.at(&p)))?;
                    if !v.is_finite() || *v < 0.0 {
                        return Err(anyhow!("{}: a tolerance must be a number >= 0", loc.at(&p)));
                    }
                }
                for g in gates.iter().flatten() {
                    let mut p = at.to_vec();
                    p.push(Seg::Key("gates"));
                    MetricKind::parse(g).map_err(|e| anyhow!("{}: {e}", loc.at(&p)))?;
                }
                Ok(())
            };
        check_metrics(&raw.tolerance, &raw.gates, &[])?;
        for (name, sc) in &raw.scenarios {
            let at = [Seg::Key("scenarios"), Seg::Key(name.as_str())];
            check_metrics(&sc.tolerance, &sc.gates, &at)?;
            for (req, scope) in &sc.requests {
                let at = [
                    Seg::Key("scenarios"),
                    Seg::Key(name.as_str()),
                    Seg::Key("requests"),
                    Seg::Key(req.as_str()),
                ];
                check_metrics(&scope.tolerance, &scope.gates, &at)?;
            }
        }
        if let Some(a) = raw.alpha {
            if !(a > 0.0 && a < 0.5) {
                return Err(anyhow!(
                    "{}: alpha must lie between 0 and 0.5",
                    loc.at(&[Seg::Key("alpha")])
                ));
            }
        }
        if let Some(c) = raw.confidence {
            if !(c > 0.5 && c < 1.0) {
                return Err(anyhow!(
                    "{}: confidence must lie between 0.5 and 1",
                    loc.at(&[Seg::Key("confidence")])
                ));
            }
        }
        Ok(GateConfig {
            raw,
            source: Some(path.display().to_string()),
        })
    }

    pub fn alpha(&self) -> f64 {
        self.raw.alpha.unwrap_or(0.05)
    }

    pub fn confidence(&self) -> f64 {
        self.raw.confidence.unwrap_or(0.95)
    }

    /// Tolerance of a metric (percent, or percentage points for rates).
    pub fn tolerance(&self, scenario: &str, request: Option<&str>, m: MetricKind) -> f64 {
        let key = m.key();
        let sc = self.raw.scenarios.get(scenario);
        request
            .and_then(|r| sc?.requests.get(r)?.tolerance.get(key).copied())
            .or_else(|| sc.and_then(|s| s.tolerance.get(key).copied()))
            .or_else(|| self.raw.tolerance.get(key).copied())
            .unwrap_or_else(|| m.default_tolerance())
    }

    /// Smallest latency change (ms) that can count as a regression or an
    /// improvement: below it, differences are the machine's noise, whatever
    /// their relative size.
    pub fn min_change_ms(&self, scenario: &str, request: Option<&str>) -> f64 {
        let sc = self.raw.scenarios.get(scenario);
        request
            .and_then(|r| sc?.requests.get(r)?.min_change_ms)
            .or_else(|| sc.and_then(|s| s.min_change_ms))
            .or(self.raw.min_change_ms)
            .unwrap_or(DEFAULT_MIN_CHANGE_MS)
    }

    /// Whether a regression of this metric fails the check.
    pub fn is_gate(&self, scenario: &str, request: Option<&str>, m: MetricKind) -> bool {
        let sc = self.raw.scenarios.get(scenario);
        let list = request
            .and_then(|r| sc?.requests.get(r)?.gates.as_ref())
            .or_else(|| sc.and_then(|s| s.gates.as_ref()))
            .or(self.raw.gates.as_ref());
        match list {
            Some(l) => l.iter().any(|g| g == m.key()),
            None => DEFAULT_GATES.contains(&m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("regression.toml");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    #[test]
    fn most_specific_setting_wins() {
        let (_d, p) = write(
            r#"
[tolerance]
p95 = 7
[scenarios.checkout]
tolerance = { p95 = 8 }
gates = ["p95"]
[scenarios.checkout.requests."pay"]
tolerance = { p95 = 20 }
gates = ["p99"]
"#,
        );
        let c = GateConfig::load(&p, true).unwrap();
        assert_eq!(c.tolerance("other", None, MetricKind::P95), 7.0);
        assert_eq!(c.tolerance("checkout", None, MetricKind::P95), 8.0);
        assert_eq!(c.tolerance("checkout", Some("pay"), MetricKind::P95), 20.0);
        assert_eq!(c.tolerance("checkout", Some("pay"), MetricKind::P99), 10.0);
        assert!(c.is_gate("checkout", None, MetricKind::P95));
        assert!(!c.is_gate("checkout", None, MetricKind::Rps));
        assert!(c.is_gate("checkout", Some("pay"), MetricKind::P99));
        assert!(!c.is_gate("checkout", Some("pay"), MetricKind::P95));
        assert!(c.is_gate("other", None, MetricKind::Rps));
        assert!(!c.is_gate("other", None, MetricKind::Max));
    }

    #[test]
    fn the_shipped_config_holds_the_defaults() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/regression.toml");
        let c = GateConfig::load(&p, true).unwrap();
        for m in MetricKind::ALL {
            assert_eq!(c.tolerance("any", None, m), m.default_tolerance(), "{m:?}");
            assert_eq!(
                c.is_gate("any", None, m),
                DEFAULT_GATES.contains(&m),
                "{m:?}"
            );
        }
        assert_eq!(c.alpha(), 0.05);
        assert_eq!(c.min_change_ms("any", None), DEFAULT_MIN_CHANGE_MS);
    }

    #[test]
    fn bad_metric_names_point_at_the_file() {
        let (_d, p) = write("[tolerance]\np95 = 7\np42 = 1\n");
        let e = GateConfig::load(&p, true).unwrap_err().to_string();
        assert!(
            e.contains("regression.toml:3:7") && e.contains("unknown metric `p42`"),
            "{e}"
        );
        let (_d, p) = write("[tolerances]\np95 = 7\n");
        assert!(GateConfig::load(&p, true)
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
        assert!(GateConfig::load(Path::new("/nonexistent/x.toml"), false).is_ok());
        assert!(GateConfig::load(Path::new("/nonexistent/x.toml"), true).is_err());
    }
}
