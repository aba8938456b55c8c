//! `loadtest init`'s reading of a team's repository: which compose file, which
//! service is the app, its port and health path, the database and its URL,
//! the migration tool, a seed file and the k6 folder. Pure: it reads files and
//! returns what it found and what it assumed; writing is the command's job.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::db::migrate::Tool;
use crate::stack::compose::{self, MountSource, Project, ServiceSpec, Vars};

/// What `init` found, with a note per guess for the user to check.
#[derive(Debug, Default)]
pub struct Found {
    pub project: String,
    pub compose_files: Vec<PathBuf>,
    pub app_service: String,
    pub app_port: Option<u16>,
    pub health: Option<String>,
    pub db_service: Option<String>,
    pub db_url: Option<String>,
    pub migrate: Option<Tool>,
    pub migrations: Option<PathBuf>,
    pub migrate_service: Option<String>,
    pub seed_file: Option<PathBuf>,
    pub k6_dir: Option<PathBuf>,
    pub k6_mount: Option<String>,
    pub generators: Vec<String>,
    pub rust: bool,
    /// What was assumed and should be checked, one line each.
    pub notes: Vec<String>,
}

const COMPOSE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// Compose files in the folder or one level below it (e.g. `loadtest/`), root first.
pub fn compose_candidates(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    let mut subs: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| PathBuf::from(e.file_name()))
        .filter(|n| !n.to_string_lossy().starts_with('.') && n.as_os_str() != "target")
        .collect();
    subs.sort();
    dirs.extend(subs);
    for d in dirs {
        for n in COMPOSE_NAMES {
            let p = d.join(n);
            if root.join(&p).is_file() {
                found.push(p);
            }
        }
    }
    found
}

/// The path of a URL in a healthcheck test, e.g. `/health` from
/// `curl --fail http://router-server:8080/health`.
fn health_path(s: &ServiceSpec) -> Option<String> {
    let test = s.healthcheck.as_ref()?.test.join(" ");
    let at = test.find("http://").or_else(|| test.find("https://"))?;
    let url: String = test[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
        .collect();
    let after = url.split_once("://")?.1;
    Some(match after.find('/') {
        Some(i) => after[i..].to_string(),
        None => "/".to_string(),
    })
}

fn mentions_migrations(s: &ServiceSpec) -> bool {
    let words = [s.command.clone(), s.entrypoint.clone()]
        .into_iter()
        .flatten()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    words.contains("migrat")
}

/// The app: a service built from the checkout (not a load generator),
/// preferring one that publishes a port and has a healthcheck.
fn pick_app(p: &Project, generators: &[String]) -> Option<(String, Vec<String>)> {
    let mut built: Vec<&ServiceSpec> = p
        .services
        .iter()
        .filter(|s| s.build.is_some() && !generators.contains(&s.name))
        .collect();
    if built.is_empty() {
        built = p
            .services
            .iter()
            .filter(|s| !generators.contains(&s.name) && !s.ports.is_empty())
            .collect();
    }
    built.sort_by_key(|s| {
        (
            s.ports.iter().all(|p| p.host_port.is_none()),
            s.healthcheck.is_none(),
        )
    });
    let first = built.first()?.name.clone();
    let others = built[1..].iter().map(|s| s.name.clone()).collect();
    Some((first, others))
}

/// Folders of a migration tool's layout near the root: `migrations/`, `db/migrations/`.
fn migration_folder(root: &Path) -> Option<(Tool, PathBuf)> {
    for rel in ["migrations", "db/migrations", "database/migrations"] {
        let dir = root.join(rel);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        if entries.iter().any(|e| e.join("up.sql").is_file()) {
            return Some((Tool::Diesel, PathBuf::from(rel)));
        }
        let sqlx = entries.iter().any(|e| {
            let n = e
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            n.ends_with(".sql") && n.chars().next().is_some_and(|c| c.is_ascii_digit())
        });
        if sqlx {
            return Some((Tool::Sqlx, PathBuf::from(rel)));
        }
    }
    None
}

/// A seed SQL file: `seed.sql`, `seeds.sql` or `*seed*.sql` within three levels.
fn seed_file(root: &Path) -> Option<PathBuf> {
    let mut todo = vec![(PathBuf::new(), 0)];
    let mut found: Vec<PathBuf> = Vec::new();
    while let Some((rel, depth)) = todo.pop() {
        for e in std::fs::read_dir(root.join(&rel))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            let path = rel.join(&name);
            if e.path().is_dir() && depth < 3 {
                todo.push((path, depth + 1));
            } else if name.ends_with(".sql") && name.to_lowercase().contains("seed") {
                found.push(path);
            }
        }
    }
    found.sort_by_key(|p| (p.components().count(), p.clone()));
    found.into_iter().next()
}

/// Reads the repository at `root` (the folder loadtest.toml will be written in).
pub fn detect(root: &Path, compose_files: &[PathBuf], vars: &Vars) -> Result<Found> {
    let files: Vec<PathBuf> = if compose_files.is_empty() {
        match compose_candidates(root).into_iter().next() {
            Some(f) => vec![f],
            None => bail!(
                "no compose file in {} or one folder below (looked for {}); give one with --compose FILE",
                root.display(),
                COMPOSE_NAMES.join(", ")
            ),
        }
    } else {
        compose_files.to_vec()
    };
    let abs: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
    let p = compose::load_files(&abs, Some("init"), vars, &[])?;
    let mut f = Found {
        compose_files: files.clone(),
        ..Default::default()
    };
    f.project = compose::project_name(
        &root
            .canonicalize()
            .ok()
            .and_then(|r| r.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| "app".into()),
    )?;
    f.generators = p.load_generators();
    let Some((app, others)) = pick_app(&p, &f.generators) else {
        bail!(
            "{}: no service is built from the checkout or publishes a port; name the app with \
             [stack] app_service in a loadtest.toml of your own",
            files[0].display()
        );
    };
    if !others.is_empty() {
        f.notes.push(format!(
            "app_service: `{app}` (also built here: {}); change it if the service under test is another",
            others.join(", ")
        ));
    }
    let svc = p.service(&app).cloned().unwrap_or_else(|| unreachable!());
    f.app_service = app.clone();
    f.app_port = svc.ports.iter().find_map(|p| p.host_port);
    if f.app_port.is_none() {
        f.notes.push(format!(
            "`{app}` publishes no port: the load goes to it on the stack's network (its container address)"
        ));
    }
    f.health = health_path(&svc);
    if f.health.is_none() && svc.healthcheck.is_none() {
        f.notes.push(format!(
            "`{app}` has no healthcheck: set [target] health to its health path (the harness waits for it to answer)"
        ));
    }
    // The database: a Postgres service, reached by its name on the stack's network.
    if let Some(db) = p.services.iter().find(|s| s.image.contains("postgres")) {
        let env = |k: &str| {
            db.environment
                .iter()
                .find_map(|e| e.strip_prefix(&format!("{k}=")).map(String::from))
        };
        let user = env("POSTGRES_USER").unwrap_or_else(|| "postgres".into());
        let password = env("POSTGRES_PASSWORD").unwrap_or_default();
        let name = env("POSTGRES_DB").unwrap_or_else(|| user.clone());
        let port = db
            .ports
            .iter()
            .find(|p| p.container_port == 5432)
            .map(|p| p.container_port)
            .unwrap_or(5432);
        f.db_url = Some(format!(
            "postgres://{user}:{password}@{}:{port}/{name}",
            db.name
        ));
        f.db_service = Some(db.name.clone());
    } else {
        f.notes.push(
            "no Postgres service found: migrations, seeding and resets are off until [database] url is set"
                .into(),
        );
    }
    // Migrations: the app itself, a migration service, or a folder of a known tool.
    let migrate_svc = p
        .services
        .iter()
        .find(|s| s.name != app && s.name.to_lowercase().contains("migrat"));
    let folder = migration_folder(root);
    if mentions_migrations(&svc) {
        f.migrate = Some(Tool::App);
        f.notes.push(format!(
            "migrate = \"app\": `{app}`'s command runs the migrations at start; the harness waits for its health"
        ));
    } else if let Some(m) = migrate_svc {
        f.migrate = Some(Tool::Service);
        f.migrate_service = Some(m.name.clone());
    } else if let Some((tool, dir)) = folder {
        f.migrate = Some(tool);
        f.migrations = Some(dir);
    } else {
        f.migrate = Some(Tool::None);
        f.notes.push(
            "no migrations found: set [database] migrate (sqlx, diesel, command, service, app) if the schema needs them"
                .into(),
        );
    }
    f.seed_file = seed_file(root);
    // The k6 folder: where a k6 service of the file mounts it, else a k6/ folder.
    let compose_dir = abs[0].parent().unwrap_or(root).to_path_buf();
    for g in p.services.iter().filter(|s| f.generators.contains(&s.name)) {
        for m in &g.mounts {
            if let MountSource::Bind(src) = &m.source {
                let rel = pathdiff(src, root).or_else(|| pathdiff(src, &compose_dir));
                if let Some(rel) = rel {
                    f.k6_dir = Some(rel);
                    f.k6_mount = Some(m.target.clone());
                }
            }
        }
    }
    if f.k6_dir.is_none() {
        for rel in ["k6", "loadtest/k6", "load-tests", "tests/k6"] {
            if root.join(rel).is_dir() {
                f.k6_dir = Some(PathBuf::from(rel));
                break;
            }
        }
    }
    f.rust = root.join("Cargo.toml").is_file();
    Ok(f)
}

/// `path` relative to `base` when it lies inside it (both made absolute).
fn pathdiff(path: &Path, base: &Path) -> Option<PathBuf> {
    let clean = |p: &Path| -> PathBuf {
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                c => out.push(c),
            }
        }
        out
    };
    let base = clean(&base.canonicalize().ok()?);
    clean(path).strip_prefix(&base).ok().map(Path::to_path_buf)
}

/// The commented `loadtest.toml` for what was found.
pub fn render(f: &Found) -> String {
    let q = |s: &str| toml_edit::Value::from(s).to_string().trim().to_string();
    let mut o = String::new();
    o.push_str("# Written by `loadtest init`; read its notes, check the values, then run\n");
    o.push_str(
        "#   loadtest bench -s <script>     and later     loadtest ab --base main -s <script>\n",
    );
    o.push_str("# Paths are relative to this file's folder. Precedence: flags > environment > .env > this file.\n\n");
    o.push_str("[stack]\n");
    o.push_str(&format!("project = {}\n", q(&f.project)));
    let files: Vec<String> = f
        .compose_files
        .iter()
        .map(|p| q(&p.display().to_string()))
        .collect();
    if files.len() == 1 {
        o.push_str(&format!(
            "compose_file = {}   # read as it is, never edited\n",
            files[0]
        ));
    } else {
        o.push_str(&format!(
            "compose_file = [{}]   # in -f order\n",
            files.join(", ")
        ));
    }
    o.push_str(&format!(
        "app_service = {}   # built from the checkout; `ab` compares two builds of it\n",
        q(&f.app_service)
    ));
    if !f.generators.is_empty() {
        o.push_str(&format!(
            "# Not started: {} (the harness runs k6 itself). List what to start with\n# services = [...] (their dependencies come too).\n",
            f.generators.join(", ")
        ));
    }
    o.push_str("\n[target]\n");
    match f.app_port {
        Some(port) => o.push_str(&format!(
            "# url = \"http://127.0.0.1:{port}\"   # default: the app's published port\n"
        )),
        None => o.push_str(
            "# url = \"http://<app>:<port>\"   # default: the app on the stack's network\n",
        ),
    }
    match &f.health {
        Some(h) => o.push_str(&format!("health = {}   # from its healthcheck\n", q(h))),
        None => o.push_str("# health = \"/health\"   # probed when the app has no healthcheck\n"),
    }
    o.push_str("\n[database]\n");
    match &f.db_url {
        Some(u) => {
            o.push_str(&format!(
                "url = {}   # service `{}`, reached on the stack's network\n",
                q(u),
                f.db_service.clone().unwrap_or_default()
            ));
            o.push_str("disposable = true   # the stack's own database: `down -v` and resets may replace it\n");
        }
        None => o.push_str("# url = \"postgres://user:password@db:5432/name\"\n"),
    }
    let tool = f.migrate.unwrap_or(Tool::None);
    o.push_str(&format!(
        "migrate = {}   # sqlx, diesel, command, service, app or none\n",
        q(tool.name())
    ));
    if let Some(m) = &f.migrations {
        o.push_str(&format!("migrations = {}\n", q(&m.display().to_string())));
    }
    if let Some(s) = &f.migrate_service {
        o.push_str(&format!(
            "migrate_service = {}   # run once; exit 0 is success\n",
            q(s)
        ));
    }
    if tool.table().is_some() {
        o.push_str(&format!(
            "keep = [{}]   # tables a `truncate` reset leaves alone\n",
            q(tool.table().unwrap_or_default())
        ));
    }
    match &f.seed_file {
        Some(s) => {
            o.push_str("seed = \"sql\"   # generated, sql, command or none\n");
            o.push_str(&format!(
                "seed_file = {}   # run in one transaction after the migrations\n",
                q(&s.display().to_string())
            ));
        }
        None => o.push_str(
            "seed = \"none\"   # generated, sql (seed_file), command (seed_command) or none\n",
        ),
    }
    o.push_str("reset = \"recreate\"   # between runs: recreate, template, truncate, delete, snapshot, none\n");
    if let Some(dir) = &f.k6_dir {
        o.push_str("\n[k6]\n");
        o.push_str(&format!(
            "dir = {}   # `-s NAME` finds NAME.js here\n",
            q(&dir.display().to_string())
        ));
        o.push_str(&format!(
            "mount = {}   # files a script writes under it land in dir\n",
            q(f.k6_mount.as_deref().unwrap_or("/scripts"))
        ));
    }
    o.push_str("\n[metrics]\n# The harness's own Pushgateway and Prometheus run beside the stack (project <project>-observe);\n# Prometheus also scrapes the app's /metrics. push_url = \"http://...\" uses one of yours instead.\nobserve = true\n");
    o.push_str("\n[ab]\n");
    if f.rust {
        o.push_str("# A command run in the checkout and in the base's worktree before the image builds,\n# when the Dockerfile copies a binary built outside it (e.g. \"cargo build --release\").\n");
    } else {
        o.push_str("# A command run before the image builds, when the Dockerfile copies something built outside it.\n");
    }
    o.push_str("build = \"\"\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_paths_come_from_http_healthchecks() {
        let mut s = ServiceSpec {
            name: "app".into(),
            image: "x".into(),
            build: None,
            environment: vec![],
            ports: vec![],
            mounts: vec![],
            healthcheck: None,
            depends_on: vec![],
            command: None,
            entrypoint: None,
        };
        assert_eq!(health_path(&s), None);
        s.healthcheck = Some(crate::stack::compose::Health {
            test: vec![
                "CMD-SHELL".into(),
                "curl --fail http://router-server:8080/health".into(),
            ],
            interval_ns: 0,
            timeout_ns: 0,
            retries: 1,
            start_period_ns: 0,
        });
        assert_eq!(health_path(&s).as_deref(), Some("/health"));
        s.healthcheck.as_mut().unwrap().test = vec![
            "CMD".into(),
            "wget".into(),
            "-qO-".into(),
            "http://127.0.0.1:9090".into(),
        ];
        assert_eq!(health_path(&s).as_deref(), Some("/"));
    }
}
