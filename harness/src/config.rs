//! `config/loadtest.toml`, with the precedence flags > environment > `.env` > file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde::Deserialize;

use crate::db::migrate::{Migrations, Tool};
use crate::db::reset::{DbSettings, EmptyWith, Strategy};
use crate::db::DbIdentity;
use crate::files::locate::{Locator, Seg};
use crate::stack::compose::{Project, Vars};
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
    #[serde(default)]
    k6: RawK6,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawK6 {
    dir: Option<String>,
    mount: Option<String>,
}

/// One file or several, in `-f` order.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
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
    observe: Option<bool>,
    push_url: Option<String>,
    prometheus_url: Option<String>,
    server_metric: Option<String>,
    grafana_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStack {
    project: Option<String>,
    compose_file: Option<OneOrMany>,
    app_service: Option<String>,
    services: Option<Vec<String>>,
    wait_timeout: Option<String>,
    profiles: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    url: Option<String>,
    health: Option<String>,
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
    migrate: Option<String>,
    migrate_command: Option<String>,
    migrate_service: Option<String>,
    seed: Option<String>,
    seed_file: Option<String>,
    seed_command: Option<String>,
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
    /// The first compose file (the project's folder is its folder).
    pub compose_file: PathBuf,
    /// Every compose file, in `-f` order.
    pub compose_files: Vec<PathBuf>,
    /// The service under test (`[stack] app_service`, LOADTEST_APP_SERVICE).
    pub app_service: Option<String>,
    /// The services to start (with their dependencies); None: all but load generators.
    pub services: Option<Vec<String>>,
    /// Whether the target URL was set (else it may come from the app service's port).
    pub target_given: bool,
    /// The app's health path, when the team gave one.
    pub health_path: Option<String>,
    pub wait_timeout: Duration,
    pub target: String,
    pub database_url: String,
    /// How migrations run, and from where.
    pub migrate: Migrations,
    pub scenarios: PathBuf,
    pub results: PathBuf,
    /// Default run name and scenario (`.env` carries them).
    pub run_name: String,
    pub scenario: String,
    /// Pushgateway for live metrics; `None` turns export off.
    pub push_url: Option<String>,
    /// With no push_url: run the harness's own Pushgateway and Prometheus
    /// beside the stack (`[metrics] observe`, default true).
    pub observe: bool,
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
    /// How the database is seeded after migrations.
    pub seed: Seeding,
    /// The team's k6 folder and where its compose file mounts it (`/scripts`).
    pub k6_dir: PathBuf,
    pub k6_mount: String,
    /// `loadtest ab`: the command that builds what the app image copies
    /// (run in the checkout and in the base's worktree; empty: none).
    pub ab_build: String,
    /// `loadtest ab`: the compose service whose image differs between A and B.
    pub ab_service: String,
}

/// How the database gets its data after the migrations (`[database] seed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeding {
    /// The generated data of a data file (`data`, COPY).
    Generated(PathBuf),
    /// A SQL file, run in one transaction.
    Sql(PathBuf),
    /// A command on the host with DATABASE_URL set.
    Command(String),
    /// Nothing (or the team's k6 `setup()` makes what it needs).
    None,
}

/// The seeders' names, for `[database] seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SeedKind {
    Generated,
    Sql,
    Command,
    None,
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
        let at = |keys: &[&str]| -> String {
            let segs: Vec<Seg> = keys.iter().map(|k| Seg::Key(k)).collect();
            loc.at(&segs)
        };
        let tool_name = choice("LOADTEST_MIGRATE", &raw.database.migrate, "sqlx");
        let tool = parse_enum::<Tool>(&tool_name)
            .map_err(|e| anyhow!("{}: migrate: {e}", at(&["database", "migrate"])))?;
        let migrate_run = match tool {
            Tool::Command => pick(
                "LOADTEST_MIGRATE_COMMAND",
                raw.database.migrate_command.as_ref(),
                "",
            )?,
            Tool::Service => pick(
                "LOADTEST_MIGRATE_SERVICE",
                raw.database.migrate_service.as_ref(),
                "",
            )?,
            _ => String::new(),
        };
        if migrate_run.is_empty() && matches!(tool, Tool::Command | Tool::Service) {
            let key = if tool == Tool::Command {
                "migrate_command"
            } else {
                "migrate_service"
            };
            return Err(anyhow!(
                "{}: `migrate = \"{}\"` needs `{key}` under [database]",
                at(&["database", "migrate"]),
                tool.name()
            ));
        }
        let seed_default = if data.is_empty() { "none" } else { "generated" };
        let seed_name = choice("LOADTEST_SEED", &raw.database.seed, seed_default);
        let seed_kind = parse_enum::<SeedKind>(&seed_name)
            .map_err(|e| anyhow!("{}: seed: {e}", at(&["database", "seed"])))?;
        let need = |v: String, key: &str| -> Result<String> {
            if v.is_empty() {
                Err(anyhow!(
                    "{}: `seed = \"{seed_name}\"` needs `{key}` under [database]",
                    at(&["database", "seed"])
                ))
            } else {
                Ok(v)
            }
        };
        let seed = match seed_kind {
            SeedKind::Generated => Seeding::Generated(need(data.clone(), "data")?.into()),
            SeedKind::Sql => Seeding::Sql(
                need(
                    pick("LOADTEST_SEED_FILE", raw.database.seed_file.as_ref(), "")?,
                    "seed_file",
                )?
                .into(),
            ),
            SeedKind::Command => Seeding::Command(need(
                pick(
                    "LOADTEST_SEED_COMMAND",
                    raw.database.seed_command.as_ref(),
                    "",
                )?,
                "seed_command",
            )?),
            SeedKind::None => Seeding::None,
        };
        let compose_files: Vec<PathBuf> = match vars.get("LOADTEST_COMPOSE_FILE") {
            // Several files in one variable, as COMPOSE_FILE takes them.
            Some(v) if !v.is_empty() => v.split(':').map(PathBuf::from).collect(),
            _ => match &raw.stack.compose_file {
                None => vec!["compose/docker-compose.yml".into()],
                Some(OneOrMany::One(f)) => vec![interpolate(f, vars)
                    .map_err(|e| anyhow!("{}: stack.compose_file: {e}", path.display()))?
                    .into()],
                Some(OneOrMany::Many(l)) => l
                    .iter()
                    .map(|f| interpolate(f, vars).map(PathBuf::from))
                    .collect::<Result<_, _>>()
                    .map_err(|e| anyhow!("{}: stack.compose_file: {e}", path.display()))?,
            },
        };
        if compose_files.is_empty() {
            return Err(anyhow!(
                "{}: compose_file is an empty list",
                at(&["stack", "compose_file"])
            ));
        }
        let app_service = Some(pick(
            "LOADTEST_APP_SERVICE",
            raw.stack.app_service.as_ref(),
            "",
        )?)
        .filter(|s| !s.is_empty());
        let target_given =
            vars.get("LOADTEST_TARGET").is_some_and(|v| !v.is_empty()) || raw.target.url.is_some();
        let keep_default: Vec<String> = tool.table().into_iter().map(String::from).collect();
        Ok(Config {
            compose_file: compose_files[0].clone(),
            compose_files,
            services: raw.stack.services.clone(),
            target_given,
            health_path: raw.target.health.clone(),
            migrate: Migrations {
                tool,
                dir: pick(
                    "LOADTEST_MIGRATIONS",
                    raw.database.migrations.as_ref(),
                    if tool == Tool::Diesel {
                        "migrations"
                    } else {
                        "demo/migrations"
                    },
                )?
                .into(),
                run: migrate_run,
            },
            seed,
            k6_dir: pick("LOADTEST_K6_DIR", raw.k6.dir.as_ref(), "k6")?.into(),
            k6_mount: pick("LOADTEST_K6_MOUNT", raw.k6.mount.as_ref(), "/scripts")?,
            ab_build: pick(
                "LOADTEST_AB_BUILD",
                raw.ab.build.as_ref(),
                "cargo build --release -p demo",
            )?,
            ab_service: pick(
                "LOADTEST_AB_SERVICE",
                raw.ab.service.as_ref(),
                app_service.as_deref().unwrap_or("app"),
            )?,
            app_service,
            reset,
            db: DbSettings {
                url: database_url.clone(),
                disposable,
                template: raw.database.template.clone(),
                delete: raw.database.delete.clone().unwrap_or_default(),
                keep: raw.database.keep.clone().unwrap_or(keep_default),
                empty_with,
            },
            data: Some(PathBuf::from(data)).filter(|d| !d.as_os_str().is_empty()),
            project: pick("LOADTEST_PROJECT", raw.stack.project.as_ref(), "loadtest")?,
            wait_timeout: crate::duration::parse(&timeout)
                .map_err(|e| anyhow!("{}: stack.wait_timeout: {e}", path.display()))?,
            target: pick(
                "LOADTEST_TARGET",
                raw.target.url.as_ref(),
                "http://127.0.0.1:8080",
            )?,
            database_url,
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
            observe: match vars.get("LOADTEST_OBSERVE").as_deref() {
                Some("false" | "0" | "no") => false,
                Some(_) => true,
                None => raw.metrics.observe.unwrap_or(true),
            },
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

impl Config {
    /// The stack these settings name: the compose file(s) read as they are,
    /// reduced to the services the run needs (`[stack] services` and their
    /// dependencies; by default every service but a load generator of the
    /// team's own, since the harness runs k6 itself). Checks the app service
    /// is in the file, and takes the target from its published port when no
    /// URL was given.
    pub fn project(&mut self, vars: &Vars, extra_profiles: &[String]) -> Result<Project> {
        let mut profiles = self.profiles.clone();
        profiles.extend(extra_profiles.iter().cloned());
        let mut project = crate::stack::compose::load_files(
            &self.compose_files,
            Some(&self.project),
            vars,
            &profiles,
        )?;
        let files = self
            .compose_files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let names: Vec<String> = project.services.iter().map(|s| s.name.clone()).collect();
        if let Some(app) = &self.app_service {
            if project.service(app).is_none() {
                return Err(anyhow!(
                    "app_service `{app}` is not a service of {files} (services: {}); set [stack] app_service \
                     in loadtest.toml or LOADTEST_APP_SERVICE to one of them",
                    names.join(", ")
                ));
            }
        }
        let mut wanted: Vec<String> = match &self.services {
            Some(list) => list.clone(),
            None => {
                let generators = project.load_generators();
                names
                    .iter()
                    .filter(|n| !generators.contains(n))
                    .cloned()
                    .collect()
            }
        };
        // A migration service runs once, after the others are up, unless a
        // started service waits for it (then the stack's own order runs it).
        let mut job = None;
        if self.migrate.tool == Tool::Service {
            let svc = &self.migrate.run;
            let spec = project.service(svc).cloned().ok_or_else(|| {
                anyhow!(
                    "migrate_service `{svc}` is not a service of {files} (services: {})",
                    names.join(", ")
                )
            })?;
            let awaited = project
                .services
                .iter()
                .any(|s| wanted.contains(&s.name) && s.depends_on.iter().any(|(d, _)| d == svc));
            if !awaited {
                wanted.retain(|n| n != svc);
                job = Some(spec);
            }
        }
        project.only(&wanted)?;
        project.jobs.extend(job);
        if let (false, Some(app)) = (self.target_given, &self.app_service) {
            let svc = project.service(app).ok_or_else(|| {
                anyhow!("app_service `{app}` is not started: add it to [stack] services")
            })?;
            self.target = match svc.ports.iter().find(|p| p.host_port.is_some()) {
                Some(p) => {
                    let host = match p.host_ip.as_str() {
                        "" | "0.0.0.0" => "127.0.0.1",
                        ip => ip,
                    };
                    format!("http://{host}:{}", p.host_port.unwrap_or_default())
                }
                // Not published: the service's own address on the stack's network.
                None => match svc.ports.first() {
                    Some(p) => format!("http://{app}:{}", p.container_port),
                    None => {
                        return Err(anyhow!(
                            "service `{app}` in {files} publishes no port: set [target] url in loadtest.toml \
                             (e.g. \"http://{app}:8080\": service names are reached on the stack's network)"
                        ))
                    }
                },
            };
        }
        Ok(project)
    }
}

/// The settings file a command reads when none is given: `loadtest.toml` in
/// the current folder (a team's repository), else this repository's
/// `config/loadtest.toml`.
pub fn default_path() -> PathBuf {
    let own = PathBuf::from("loadtest.toml");
    if own.is_file() {
        own
    } else {
        PathBuf::from("config/loadtest.toml")
    }
}

/// Finds the folder the harness works from, as cargo finds `Cargo.toml`: the
/// current folder or the nearest parent holding `loadtest.toml`. Relative
/// paths in the settings, and `.env`, `benchmark/` and the scenario folders,
/// are relative to it. The search stops at a checkout of the harness itself
/// (`config/loadtest.toml`), which works from the current folder as before.
pub fn find_root(start: &Path) -> Option<PathBuf> {
    for d in start.ancestors() {
        if d.join("loadtest.toml").is_file() {
            return Some(d.to_path_buf());
        }
        if d.join("config/loadtest.toml").is_file() {
            return None;
        }
    }
    None
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
