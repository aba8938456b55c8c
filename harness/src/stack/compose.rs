//! The compose file as the harness understands it: parsed with
//! docker-compose-types (norway YAML backend), interpolated, and reduced to a
//! project model with a start order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use docker_compose_types as dc;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::interpolate::{interpolate, Lookup};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PortSpec {
    pub host_ip: String,
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum MountSource {
    /// A named volume of the project (`<project>_<name>`).
    Volume(String),
    /// A host path (absolute after resolution).
    Bind(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mount {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Health {
    /// Engine form: `["CMD-SHELL", "..."]` or `["CMD", ...]`.
    pub test: Vec<String>,
    pub interval_ns: i64,
    pub timeout_ns: i64,
    pub retries: i64,
    pub start_period_ns: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BuildSpec {
    pub context: PathBuf,
    pub dockerfile: String,
    pub args: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceSpec {
    pub name: String,
    /// Image to run; for `build:` services, the tag the build produces.
    pub image: String,
    pub build: Option<BuildSpec>,
    pub environment: Vec<String>,
    pub ports: Vec<PortSpec>,
    pub mounts: Vec<Mount>,
    pub healthcheck: Option<Health>,
    pub depends_on: Vec<(String, Condition)>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
}

impl ServiceSpec {
    /// Compose's `config-hash` label: changes whenever the service's configuration does.
    pub fn config_hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("service spec serialises");
        hex::encode(Sha256::digest(&json))
    }
}

#[derive(Clone, Debug)]
pub struct Project {
    pub name: String,
    pub working_dir: PathBuf,
    pub config_file: PathBuf,
    /// Active services in file order.
    pub services: Vec<ServiceSpec>,
    /// Named volumes, without the project prefix.
    pub volumes: Vec<String>,
    /// Services not started with the others but run once to their end by
    /// the harness (a migration service), like `docker compose run --rm`.
    pub jobs: Vec<ServiceSpec>,
    /// Another project's network this one joins instead of making its own
    /// (the harness's observability services beside a team's stack).
    pub external_network: Option<String>,
}

impl Project {
    pub fn network_name(&self) -> String {
        match &self.external_network {
            Some(n) => n.clone(),
            None => format!("{}_default", self.name),
        }
    }

    pub fn volume_name(&self, v: &str) -> String {
        format!("{}_{v}", self.name)
    }

    pub fn container_name(&self, service: &str) -> String {
        format!("{}-{service}-1", self.name)
    }

    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Keeps only the named services and what they depend on (transitively),
    /// as `docker compose up a b` starts them. A name that is no service of
    /// the file is an error that lists the services there are.
    pub fn only(&mut self, names: &[String]) -> Result<()> {
        let mut keep: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = names.to_vec();
        while let Some(n) = todo.pop() {
            let Some(s) = self.service(&n) else {
                let have: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
                bail!(
                    "{}: there is no service `{n}` (services: {})",
                    self.config_file.display(),
                    have.join(", ")
                );
            };
            if keep.insert(n.clone()) {
                todo.extend(s.depends_on.iter().map(|(d, _)| d.clone()));
            }
        }
        self.services.retain(|s| keep.contains(&s.name));
        Ok(())
    }

    /// Services that run a load generator of their own (a `k6` service of a
    /// team's file): the harness runs k6 itself, so these are not started
    /// unless named.
    pub fn load_generators(&self) -> Vec<String> {
        self.services
            .iter()
            .filter(|s| {
                let repo = s.image.rsplit('/').next().unwrap_or("");
                s.name == "k6" || repo == "k6" || repo.starts_with("k6:")
            })
            .map(|s| s.name.clone())
            .collect()
    }

    /// Services grouped in waves: every service's dependencies are in earlier waves.
    pub fn start_order(&self) -> Result<Vec<Vec<String>>> {
        let names: BTreeSet<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        let mut pending: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for s in &self.services {
            let mut deps = BTreeSet::new();
            for (d, _) in &s.depends_on {
                if !names.contains(d.as_str()) {
                    bail!(
                        "{}: service `{}` depends on `{d}`, which is not a service of this file (services: {})",
                        self.config_file.display(),
                        s.name,
                        names.iter().copied().collect::<Vec<_>>().join(", ")
                    );
                }
                deps.insert(d.as_str());
            }
            pending.insert(s.name.as_str(), deps);
        }
        let mut waves = Vec::new();
        let mut done: BTreeSet<&str> = BTreeSet::new();
        while !pending.is_empty() {
            let ready: Vec<&str> = pending
                .iter()
                .filter(|(_, deps)| deps.iter().all(|d| done.contains(d)))
                .map(|(n, _)| *n)
                .collect();
            if ready.is_empty() {
                let cycle: Vec<&str> = pending.keys().copied().collect();
                bail!(
                    "{}: depends_on forms a cycle among: {}",
                    self.config_file.display(),
                    cycle.join(", ")
                );
            }
            for r in &ready {
                pending.remove(r);
                done.insert(r);
            }
            waves.push(ready.into_iter().map(str::to_string).collect());
        }
        Ok(waves)
    }
}

/// Variables from the process environment first, then `.env`.
pub struct Vars {
    pub dotenv: HashMap<String, String>,
}

impl Lookup for Vars {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.dotenv.get(name).cloned())
    }
}

fn interpolate_tree(v: &mut serde_norway::Value, vars: &dyn Lookup, path: &str) -> Result<()> {
    match v {
        serde_norway::Value::String(s) => {
            *s = interpolate(s, vars).map_err(|e| anyhow!("{path}: {e}"))?;
        }
        serde_norway::Value::Sequence(items) => {
            for (i, x) in items.iter_mut().enumerate() {
                interpolate_tree(x, vars, &format!("{path}[{i}]"))?;
            }
        }
        serde_norway::Value::Mapping(m) => {
            for (k, x) in m.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                let p = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                interpolate_tree(x, vars, &p)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn yaml_error(file: &Path, e: &serde_norway::Error) -> anyhow::Error {
    match e.location() {
        Some(l) => anyhow!("{}:{}:{}: {e}", file.display(), l.line(), l.column()),
        None => anyhow!("{}: {e}", file.display()),
    }
}

/// Compose duration strings (`10s`, `1m30s`) in nanoseconds.
fn nanos(v: &Option<String>, what: &str, default: i64) -> Result<i64> {
    match v {
        None => Ok(default),
        Some(s) => crate::duration::parse(s)
            .map(|d| d.as_nanos() as i64)
            .map_err(|e| anyhow!("{what}: {e}")),
    }
}

fn parse_port(s: &str) -> Result<PortSpec> {
    let (spec, protocol) = match s.split_once('/') {
        Some((a, p)) => (a, p.to_string()),
        None => (s, "tcp".to_string()),
    };
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let num = |x: &str| -> Result<u16> {
        x.parse()
            .map_err(|_| anyhow!("port `{s}`: `{x}` is not a port number"))
    };
    let (host_ip, host_port, container) = match parts.as_slice() {
        [c] => (String::new(), None, num(c)?),
        [c, h] => (String::new(), Some(num(h)?), num(c)?),
        [c, h, ip] => (
            ip.to_string(),
            if h.is_empty() { None } else { Some(num(h)?) },
            num(c)?,
        ),
        _ => bail!("port `{s}` is not HOST_IP:HOST:CONTAINER"),
    };
    Ok(PortSpec {
        host_ip,
        host_port,
        container_port: container,
        protocol,
    })
}

fn command(c: &Option<dc::Command>) -> Option<Vec<String>> {
    c.as_ref().map(|c| match c {
        dc::Command::Simple(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        dc::Command::Args(a) => a.clone(),
    })
}

/// A project name as compose keeps it: lowercase, only letters, digits, '-'
/// and '_'. Every command normalises `-p` the same way, so `up -p MyProj` and
/// `down -p MyProj` mean one project.
pub fn project_name(given: &str) -> Result<String> {
    let name: String = given
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if name.is_empty() {
        bail!(
            "the project name `{given}` is empty after removing characters compose does not allow"
        );
    }
    Ok(name)
}

/// Reads, interpolates and checks a compose file. `project` overrides the name.
pub fn load(
    file: &Path,
    project: Option<&str>,
    vars: &dyn Lookup,
    profiles: &[String],
) -> Result<Project> {
    load_files(&[file.to_path_buf()], project, vars, profiles)
}

/// Merges a later file into an earlier one as `docker compose -f a -f b`
/// does for the parts that matter here: mappings merge key by key, a later
/// scalar or sequence replaces the earlier one (`ports`, `volumes` and
/// `environment` lists included, a simplification of compose's own rules).
fn merge_tree(base: &mut serde_norway::Value, over: serde_norway::Value) {
    match (base, over) {
        (serde_norway::Value::Mapping(b), serde_norway::Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge_tree(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Reads several compose files in `-f` order (the first one's folder is the
/// project's), interpolates and merges them, and checks the result. The
/// files themselves are only read, never written.
pub fn load_files(
    files: &[PathBuf],
    project: Option<&str>,
    vars: &dyn Lookup,
    profiles: &[String],
) -> Result<Project> {
    let file = files
        .first()
        .ok_or_else(|| anyhow!("no compose file given"))?
        .as_path();
    let mut merged: Option<serde_norway::Value> = None;
    let mut texts = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read compose file {}", f.display()))?;
        let mut tree: serde_norway::Value =
            serde_norway::from_str(&text).map_err(|e| yaml_error(f, &e))?;
        interpolate_tree(&mut tree, vars, "").map_err(|e| anyhow!("{}: {e}", f.display()))?;
        match merged.as_mut() {
            None => merged = Some(tree),
            Some(m) => merge_tree(m, tree),
        }
        texts.push((f, text));
    }
    let tree = merged.unwrap_or(serde_norway::Value::Null);
    let compose: dc::Compose = match serde_norway::from_value(tree) {
        Ok(c) => c,
        // Parse each raw text again for an error with a position.
        Err(e) => {
            for (f, text) in &texts {
                if let Err(located) = serde_norway::from_str::<dc::Compose>(text) {
                    return Err(yaml_error(f, &located));
                }
            }
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            return Err(anyhow!("{}: {e}", names.join(" + ")));
        }
    };
    let working_dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .with_context(|| format!("cannot resolve the folder of {}", file.display()))?;
    let name = project
        .map(str::to_string)
        .or(compose.name.clone())
        .unwrap_or_else(|| {
            working_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("loadtest")
                .to_string()
        });
    let name = project_name(&name)?;
    let volumes: Vec<String> = compose.volumes.0.keys().cloned().collect();

    let mut services = Vec::new();
    for (sname, svc) in &compose.services.0 {
        let svc = svc.clone().unwrap_or_default();
        if !svc.profiles.is_empty() && !svc.profiles.iter().any(|p| profiles.contains(p)) {
            continue;
        }
        let ctx = |m: String| anyhow!("{}: service `{sname}`: {m}", file.display());
        let build = svc.build_.as_ref().map(|b| {
            let (context, dockerfile, args) = match b {
                dc::BuildStep::Simple(c) => (c.clone(), None, BTreeMap::new()),
                dc::BuildStep::Advanced(a) => {
                    let args = match &a.args {
                        Some(dc::BuildArgs::KvPair(m)) => {
                            m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                        }
                        Some(dc::BuildArgs::List(l)) => l
                            .iter()
                            .filter_map(|x| {
                                x.split_once('=')
                                    .map(|(k, v)| (k.to_string(), v.to_string()))
                            })
                            .collect(),
                        _ => BTreeMap::new(),
                    };
                    (a.context.clone(), a.dockerfile.clone(), args)
                }
            };
            BuildSpec {
                context: working_dir.join(context),
                dockerfile: dockerfile.unwrap_or_else(|| "Dockerfile".into()),
                args,
            }
        });
        let image = match (&svc.image, &build) {
            (Some(i), _) => i.clone(),
            (None, Some(_)) => format!("{name}-{sname}"),
            (None, None) => return Err(ctx("needs `image` or `build`".into())),
        };
        // `env_file:` first, so `environment:` wins as in compose.
        let mut from_files: Vec<String> = Vec::new();
        let env_files = match &svc.env_file {
            Some(dc::StringOrList::Simple(f)) => vec![f.clone()],
            Some(dc::StringOrList::List(l)) => l.clone(),
            None => Vec::new(),
        };
        for f in env_files {
            let path = working_dir.join(&f);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ctx(format!(
                    "env_file `{f}`: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            let parsed = super::interpolate::parse_dotenv(&text)
                .map_err(|e| ctx(format!("env_file {}: {e}", path.display())))?;
            let mut pairs: Vec<_> = parsed.into_iter().collect();
            pairs.sort();
            from_files.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
        }
        let environment: Vec<String> = match &svc.environment {
            dc::Environment::List(l) => l
                .iter()
                .filter_map(|e| match e.split_once('=') {
                    Some(_) => Some(e.clone()),
                    None => vars.get(e).map(|v| format!("{e}={v}")),
                })
                .collect(),
            dc::Environment::KvPair(m) => m
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_ref().map(|v| v.to_string()).unwrap_or_default()
                    )
                })
                .collect(),
        };
        let environment: Vec<String> = {
            let set: BTreeSet<&str> = environment
                .iter()
                .filter_map(|e| e.split_once('=').map(|(k, _)| k))
                .collect();
            from_files
                .iter()
                .filter(|e| e.split_once('=').is_some_and(|(k, _)| !set.contains(k)))
                .cloned()
                .chain(environment.iter().cloned())
                .collect()
        };
        let ports = match &svc.ports {
            dc::Ports::Short(l) => l
                .iter()
                .map(|p| parse_port(p))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| ctx(e.to_string()))?,
            dc::Ports::Long(l) => l
                .iter()
                .map(|p| {
                    let host_port = match &p.published {
                        Some(dc::PublishedPort::Single(n)) => Some(*n),
                        Some(dc::PublishedPort::Range(r)) => Some(
                            r.parse()
                                .map_err(|_| ctx(format!("port range `{r}` is not supported")))?,
                        ),
                        None => None,
                    };
                    Ok(PortSpec {
                        host_ip: p.host_ip.clone().unwrap_or_default(),
                        host_port,
                        container_port: p.target,
                        protocol: p.protocol.clone().unwrap_or_else(|| "tcp".into()),
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let mut mounts = Vec::new();
        for v in &svc.volumes {
            let (source, target, read_only) = match v {
                dc::Volumes::Simple(s) => {
                    let parts: Vec<&str> = s.split(':').collect();
                    match parts.as_slice() {
                        [src, dst] => (src.to_string(), dst.to_string(), false),
                        [src, dst, mode] => (src.to_string(), dst.to_string(), *mode == "ro"),
                        _ => return Err(ctx(format!("volume `{s}`: expected SOURCE:TARGET[:ro]"))),
                    }
                }
                dc::Volumes::Advanced(a) => (
                    a.source.clone().unwrap_or_default(),
                    a.target.clone(),
                    a.read_only,
                ),
            };
            let source =
                if source.starts_with('.') || source.starts_with('/') || source.starts_with('~') {
                    MountSource::Bind(working_dir.join(source))
                } else {
                    if !volumes.contains(&source) {
                        return Err(ctx(format!(
                            "volume `{source}` is not declared under the top-level `volumes:`"
                        )));
                    }
                    MountSource::Volume(source)
                };
            mounts.push(Mount {
                source,
                target,
                read_only,
            });
        }
        let healthcheck = match &svc.healthcheck {
            Some(h) if !h.disable => {
                let test = match &h.test {
                    Some(dc::HealthcheckTest::Single(s)) => {
                        vec!["CMD-SHELL".to_string(), s.clone()]
                    }
                    Some(dc::HealthcheckTest::Multiple(v)) => v.clone(),
                    None => return Err(ctx("healthcheck without `test`".into())),
                };
                Some(Health {
                    test,
                    interval_ns: nanos(&h.interval, "healthcheck interval", 30_000_000_000)
                        .map_err(|e| ctx(e.to_string()))?,
                    timeout_ns: nanos(&h.timeout, "healthcheck timeout", 30_000_000_000)
                        .map_err(|e| ctx(e.to_string()))?,
                    retries: if h.retries > 0 { h.retries } else { 3 },
                    start_period_ns: nanos(&h.start_period, "healthcheck start_period", 0)
                        .map_err(|e| ctx(e.to_string()))?,
                })
            }
            _ => None,
        };
        let depends_on = match &svc.depends_on {
            dc::DependsOnOptions::Simple(l) => {
                l.iter().map(|d| (d.clone(), Condition::Started)).collect()
            }
            dc::DependsOnOptions::Conditional(m) => m
                .iter()
                .map(|(d, c)| {
                    let cond = match c.condition.as_str() {
                        "service_started" => Condition::Started,
                        "service_healthy" => Condition::Healthy,
                        "service_completed_successfully" => Condition::CompletedSuccessfully,
                        other => {
                            return Err(ctx(format!(
                                "depends_on `{d}`: unknown condition `{other}`"
                            )))
                        }
                    };
                    Ok((d.clone(), cond))
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let entrypoint = svc.entrypoint.as_ref().map(|e| match e {
            dc::Entrypoint::Simple(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            dc::Entrypoint::List(l) => l.clone(),
        });
        services.push(ServiceSpec {
            name: sname.clone(),
            image,
            build,
            environment,
            ports,
            mounts,
            healthcheck,
            depends_on,
            command: command(&svc.command),
            entrypoint,
        });
    }
    let project = Project {
        name,
        working_dir,
        config_file: file.canonicalize().unwrap_or_else(|_| file.to_path_buf()),
        services,
        volumes,
        jobs: Vec::new(),
        external_network: None,
    };
    // Dependencies of a service left out by a profile are ignored, as compose does.
    project.start_order()?;
    Ok(project)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("docker-compose.yml");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars {
            dotenv: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    const STACK: &str = r#"
name: demo
services:
  db:
    image: ${LT_TEST_PG_IMAGE:-postgres:16}
    environment:
      POSTGRES_PASSWORD: secret
    ports: ["127.0.0.1:${LT_TEST_DB_PORT:-5432}:5432"]
    volumes: ["dbdata:/var/lib/postgresql/data"]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U postgres"]
      interval: 1s
      retries: 30
  app:
    build: { context: ., dockerfile: app.Dockerfile }
    depends_on:
      db: { condition: service_healthy }
    ports: ["127.0.0.1:8080:8080"]
  grafana:
    image: grafana/grafana
    profiles: ["grafana"]
volumes:
  dbdata: {}
"#;

    #[test]
    fn loads_interpolates_and_orders() {
        let (_d, p) = write(STACK);
        let pr = load(&p, None, &vars(&[("LT_TEST_DB_PORT", "15432")]), &[]).unwrap();
        assert_eq!(pr.name, "demo");
        assert_eq!(pr.services.len(), 2, "grafana is behind a profile");
        let db = pr.service("db").unwrap();
        assert_eq!(db.image, "postgres:16");
        assert_eq!(
            db.ports[0],
            PortSpec {
                host_ip: "127.0.0.1".into(),
                host_port: Some(15432),
                container_port: 5432,
                protocol: "tcp".into()
            }
        );
        assert_eq!(db.mounts[0].source, MountSource::Volume("dbdata".into()));
        assert_eq!(db.healthcheck.as_ref().unwrap().interval_ns, 1_000_000_000);
        let app = pr.service("app").unwrap();
        assert_eq!(app.image, "demo-app");
        assert_eq!(app.build.as_ref().unwrap().dockerfile, "app.Dockerfile");
        assert_eq!(app.depends_on, vec![("db".to_string(), Condition::Healthy)]);
        assert_eq!(
            pr.start_order().unwrap(),
            vec![vec!["db".to_string()], vec!["app".to_string()]]
        );
        assert_eq!(pr.network_name(), "demo_default");
        assert_eq!(pr.container_name("db"), "demo-db-1");
        let with = load(&p, Some("other"), &vars(&[]), &["grafana".into()]).unwrap();
        assert_eq!(with.services.len(), 3);
        assert_eq!(with.name, "other");
    }

    #[test]
    fn bad_files_are_reported_with_positions() {
        let (_d, p) = write("services:\n  db:\n    image: [unclosed\n");
        let e = load(&p, None, &vars(&[]), &[]).unwrap_err().to_string();
        assert!(e.contains("docker-compose.yml:4:1:"), "{e}");
        let (_d, p) = write("services:\n  app:\n    image: x\n    depends_on: [ghost]\n");
        let e = load(&p, None, &vars(&[]), &[]).unwrap_err().to_string();
        assert!(e.contains("depends on `ghost`"), "{e}");
        let (_d, p) = write("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n");
        let e = load(&p, None, &vars(&[]), &[]).unwrap_err().to_string();
        assert!(e.contains("cycle among: a, b"), "{e}");
        let (_d, p) = write("services:\n  a:\n    image: ${NEEDED:?set NEEDED in .env}\n");
        let e = load(&p, None, &vars(&[]), &[]).unwrap_err().to_string();
        assert!(
            e.contains("services.a.image: required variable NEEDED is not set: set NEEDED in .env"),
            "{e}"
        );
        let (_d, p) = write("services:\n  a:\n    imag: x\n");
        let e = load(&p, None, &vars(&[]), &[]).unwrap_err().to_string();
        assert!(
            e.contains("docker-compose.yml:3:5:") && e.contains("unknown attribute \"imag\""),
            "{e}"
        );
    }

    #[test]
    fn ports_in_short_form() {
        assert_eq!(parse_port("8080").unwrap().host_port, None);
        assert_eq!(parse_port("8080:80").unwrap().host_port, Some(8080));
        let p = parse_port("127.0.0.1::80/udp").unwrap();
        assert_eq!(
            (
                p.host_ip.as_str(),
                p.host_port,
                p.container_port,
                p.protocol.as_str()
            ),
            ("127.0.0.1", None, 80, "udp")
        );
        assert!(parse_port("x:80").is_err());
    }
}
