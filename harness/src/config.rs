//! `config/loadtest.toml`, with the precedence flags > environment > `.env` > file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde::Deserialize;

use crate::db::reset::{DbSettings, EmptyWith, Strategy};
use crate::db::DbIdentity;
use crate::files::locate::{Locator, Seg};
use crate::stack::compose::Vars;
use crate::stack::interpolate::{interpolate, Lookup};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    stack: RawStack,
    #[serde(default)]
    target: RawTarget,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    paths: RawPaths,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    ab: RawAb,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAb {
    build: Option<String>,
    service: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    push_url: Option<String>,
    prometheus_url: Option<String>,
    server_metric: Option<String>,
    grafana_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStack {
    project: Option<String>,
    compose_file: Option<String>,
    wait_timeout: Option<String>,
    profiles: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
    migrations: Option<String>,
    reset: Option<String>,
    disposable: Option<bool>,
    template: Option<String>,
    delete: Option<Vec<String>>,
    keep: Option<Vec<String>>,
    empty_with: Option<String>,
    data: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    scenarios: Option<String>,
    results: Option<String>,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub project: String,
    pub compose_file: PathBuf,
    pub wait_timeout: Duration,
    pub target: String,
    pub database_url: String,
    pub migrations: PathBuf,
    pub scenarios: PathBuf,
    pub results: PathBuf,
    /// Default run name and scenario (`.env` carries them).
    pub run_name: String,
    pub scenario: String,
    /// Pushgateway for live metrics; `None` turns export off.
    pub push_url: Option<String>,
    pub prometheus_url: Option<String>,
    /// The service's latency histogram buckets, for the server-side view.
    pub server_metric: String,
    pub grafana_url: Option<String>,
    /// Compose profiles to enable (e.g. `grafana`).
    pub profiles: Vec<String>,
    /// Reset strategy between runs and the database settings it needs.
    pub reset: Strategy,
    pub db: DbSettings,
    /// Generated data loaded after migrations (`None`: no seeding).
    pub data: Option<PathBuf>,
    /// `loadtest ab`: the command that builds what the app image copies
    /// (run in the checkout and in the base's worktree; empty: none).
    pub ab_build: String,
    /// `loadtest ab`: the compose service whose image differs between A and B.
    pub ab_service: String,
}

impl Config {
    /// Reads the file (optional when missing) and applies environment and `.env`.
    pub fn load(path: &Path, vars: &Vars) -> Result<Config> {
        let raw: Raw = match std::fs::read_to_string(path) {
            Ok(text) => Locator::new(path, &text).deserialize()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Raw::default(),
            Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
        };
        // Environment, then .env, then the file, then the built-in default.
        let pick = |var: &str, file: Option<&String>, default: &str| -> Result<String> {
            match vars.get(var) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => {
                    let v = file.map(String::as_str).unwrap_or(default);
                    interpolate(v, vars).map_err(|e| anyhow!("{}: {e}", path.display()))
                }
            }
        };
        let timeout = pick(
            "LOADTEST_WAIT_TIMEOUT",
            raw.stack.wait_timeout.as_ref(),
            "180s",
        )?;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let loc = Locator::new(path, &text);
        let choice = |var: &str, file: &Option<String>, default: &str| -> String {
            match vars.get(var) {
                Some(v) if !v.is_empty() => v,
                _ => file.clone().unwrap_or_else(|| default.to_string()),
            }
        };
        let reset_name = choice("LOADTEST_DB_RESET", &raw.database.reset, "recreate");
        let reset = parse_enum::<Strategy>(&reset_name).map_err(|e| {
            anyhow!(
                "{}: reset: {e}",
                loc.at(&[Seg::Key("database"), Seg::Key("reset")])
            )
        })?;
        let empty_name = choice("LOADTEST_DB_EMPTY_WITH", &raw.database.empty_with, "auto");
        let empty_with = parse_enum::<EmptyWith>(&empty_name).map_err(|e| {
            anyhow!(
                "{}: empty_with: {e}",
                loc.at(&[Seg::Key("database"), Seg::Key("empty_with")])
            )
        })?;
        let database_url = pick(
            "LOADTEST_DATABASE_URL",
            raw.database.url.as_ref(),
            "postgres://demo:demo@127.0.0.1:5433/demo",
        )?;
        // The mark belongs to the database this file names, never to a URL
        // that overrides it; LOADTEST_DB_DISPOSABLE names others one by one.
        let declared = match raw.database.url.as_ref() {
            Some(u) => interpolate(u, vars)
                .map_err(|e| anyhow!("{}: database.url: {e}", path.display()))?,
            None => "postgres://demo:demo@127.0.0.1:5433/demo".to_string(),
        };
        let declared_id = || {
            DbIdentity::of_url(&declared)
                .map_err(|e| anyhow!("{}: {e}", loc.at(&[Seg::Key("database"), Seg::Key("url")])))
        };
        let mut disposable = Vec::new();
        match vars.get("LOADTEST_DB_DISPOSABLE").as_deref() {
            Some("true" | "1" | "yes") => disposable.push(declared_id()?),
            Some("false" | "0" | "no") => {}
            Some(list) => {
                for item in list.split(',').filter(|i| !i.trim().is_empty()) {
                    disposable.push(DbIdentity::parse(item).map_err(|e| {
                        anyhow!(
                            "LOADTEST_DB_DISPOSABLE: {e}; or use true/false for the database of {}",
                            path.display()
                        )
                    })?);
                }
            }
            None if raw.database.disposable.unwrap_or(false) => disposable.push(declared_id()?),
            None => {}
        }
        let data = pick("LOADTEST_DATA", raw.database.data.as_ref(), "")?;
        Ok(Config {
            ab_build: pick(
                "LOADTEST_AB_BUILD",
                raw.ab.build.as_ref(),
                "cargo build --release -p demo",
            )?,
            ab_service: pick("LOADTEST_AB_SERVICE", raw.ab.service.as_ref(), "app")?,
            reset,
            db: DbSettings {
                url: database_url.clone(),
                disposable,
                template: raw.database.template.clone(),
                delete: raw.database.delete.clone().unwrap_or_default(),
                keep: raw
                    .database
                    .keep
                    .clone()
                    .unwrap_or_else(|| vec!["_sqlx_migrations".into()]),
                empty_with,
            },
            data: Some(PathBuf::from(data)).filter(|d| !d.as_os_str().is_empty()),
            project: pick("LOADTEST_PROJECT", raw.stack.project.as_ref(), "loadtest")?,
            compose_file: pick(
                "LOADTEST_COMPOSE_FILE",
                raw.stack.compose_file.as_ref(),
                "compose/docker-compose.yml",
            )?
            .into(),
            wait_timeout: crate::duration::parse(&timeout)
                .map_err(|e| anyhow!("{}: stack.wait_timeout: {e}", path.display()))?,
            target: pick(
                "LOADTEST_TARGET",
                raw.target.url.as_ref(),
                "http://127.0.0.1:8080",
            )?,
            database_url,
            migrations: pick(
                "LOADTEST_MIGRATIONS",
                raw.database.migrations.as_ref(),
                "demo/migrations",
            )?
            .into(),
            scenarios: pick(
                "LOADTEST_SCENARIOS_DIR",
                raw.paths.scenarios.as_ref(),
                "scenarios",
            )?
            .into(),
            results: pick(
                "LOADTEST_RESULTS_DIR",
                raw.paths.results.as_ref(),
                "benchmark",
            )?
            .into(),
            run_name: pick("LOADTEST_RUN_NAME", None, "baseline")?,
            scenario: pick("LOADTEST_SCENARIO", None, "health")?,
            push_url: Some(pick(
                "LOADTEST_PUSH_URL",
                raw.metrics.push_url.as_ref(),
                "",
            )?)
            .filter(|u| !u.is_empty()),
            prometheus_url: Some(pick(
                "LOADTEST_PROMETHEUS_URL",
                raw.metrics.prometheus_url.as_ref(),
                "",
            )?)
            .filter(|u| !u.is_empty()),
            server_metric: pick(
                "LOADTEST_SERVER_METRIC",
                raw.metrics.server_metric.as_ref(),
                crate::metrics::server::DEFAULT_SELECTOR,
            )?,
            grafana_url: Some(pick(
                "LOADTEST_GRAFANA_URL",
                raw.metrics.grafana_url.as_ref(),
                "",
            )?)
            .filter(|u| !u.is_empty()),
            profiles: match vars.get("LOADTEST_PROFILES") {
                Some(v) => v
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect(),
                None => raw.stack.profiles.clone().unwrap_or_default(),
            },
        })
    }
}

/// A clap value-enum from its name, with the accepted names in the error.
pub fn parse_enum<T: clap::ValueEnum>(name: &str) -> Result<T> {
    T::from_str(name, true).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        anyhow!("`{name}` is not one of {}", names.join(", "))
    })
}

/// The variables of a `.env` file (none when it does not exist).
pub fn read_dotenv(path: &Path) -> Result<Vars, crate::exit::Failure> {
    let dotenv = match std::fs::read_to_string(path) {
        Ok(t) => crate::stack::interpolate::parse_dotenv(&t)
            .map_err(|e| crate::exit::Failure::Usage(anyhow!("{}: {e}", path.display())))?,
        Err(_) => Default::default(),
    };
    Ok(Vars { dotenv })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_env_then_dotenv_then_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("loadtest.toml");
        std::fs::write(
            &p,
            "[stack]\nproject = \"from-file\"\n[target]\nurl = \"http://127.0.0.1:${LT_CFG_TEST_PORT:-9}\"\n[paths]\nresults = \"out\"\n",
        )
        .unwrap();
        let vars = Vars {
            dotenv: [
                ("LT_CFG_TEST_PORT", "8181"),
                ("LOADTEST_SCENARIO", "payment-confirm"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        };
        let c = Config::load(&p, &vars).unwrap();
        assert_eq!(c.project, "from-file");
        assert_eq!(c.target, "http://127.0.0.1:8181");
        assert_eq!(c.results, PathBuf::from("out"));
        assert_eq!(c.scenario, "payment-confirm");
        assert_eq!(c.run_name, "baseline");
        std::fs::write(&p, "[stack]\nprojekt = 1\n").unwrap();
        let e = Config::load(&p, &vars).unwrap_err().to_string();
        assert!(
            e.contains("loadtest.toml:2:1") && e.contains("projekt"),
            "{e}"
        );
    }
}
