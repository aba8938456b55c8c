//! `loadtest up | down | ps | images`: the stack commands.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;

use crate::exit::{self, Classify, Failure};
use crate::stack::compose::{self, Project, Vars};
use crate::stack::engine::Engine;
use crate::stack::progress::Progress;
use crate::stack::{images, interpolate, up};

#[derive(clap::Args, Debug, Clone)]
pub struct StackArgs {
    /// Compose file
    #[arg(
        short = 'f',
        long = "file",
        default_value = "compose/docker-compose.yml",
        env = "LOADTEST_COMPOSE_FILE"
    )]
    pub file: PathBuf,
    /// Project name (default: stack.project of config/loadtest.toml, else loadtest)
    #[arg(short = 'p', long = "project", env = "LOADTEST_PROJECT")]
    pub project: Option<String>,
    /// Variables for interpolation, under the process environment
    #[arg(long, default_value = ".env")]
    pub env_file: PathBuf,
    /// Enable services under this compose profile, e.g. grafana (repeatable, or comma-separated in LOADTEST_PROFILES)
    #[arg(long = "profile", env = "LOADTEST_PROFILES", value_delimiter = ',')]
    pub profiles: Vec<String>,
}

pub fn read_dotenv(path: &Path) -> Result<Vars, Failure> {
    let dotenv = match std::fs::read_to_string(path) {
        Ok(t) => interpolate::parse_dotenv(&t)
            .map_err(|e| Failure::Usage(anyhow!("{}: {e}", path.display())))?,
        Err(_) => Default::default(),
    };
    Ok(Vars { dotenv })
}

pub fn load_project(a: &StackArgs) -> Result<Project, Failure> {
    let vars = read_dotenv(&a.env_file)?;
    // Without -p, the project of config/loadtest.toml, as `loadtest bench` uses.
    let project = match &a.project {
        Some(p) => p.clone(),
        None => {
            crate::config::Config::load(Path::new("config/loadtest.toml"), &vars)
                .usage()?
                .project
        }
    };
    compose::load(&a.file, Some(&project), &vars, &a.profiles).usage()
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .runtime()
}

pub fn up_cmd(
    a: &StackArgs,
    fresh: bool,
    keep: bool,
    timeout: Duration,
    quiet: bool,
) -> Result<u8, Failure> {
    let p = load_project(a)?;
    let rt = runtime()?;
    rt.block_on(async {
        let engine = Engine::connect().await.runtime()?;
        if fresh {
            let removed = engine.down(&p.name).await.runtime()?;
            if !quiet && !removed.is_empty() {
                crate::errln!("down: removed {}", removed.join(", "));
            }
        }
        let progress = Progress::new(quiet);
        let report = up::up(
            &engine,
            &p,
            &up::UpOptions {
                timeout,
                keep_on_failure: keep,
            },
            &progress,
        )
        .await
        .runtime()?;
        crate::outln!(
            "project {} is up in {:.1}s",
            p.name,
            report.elapsed.as_secs_f64()
        );
        print_ps(&engine, &p.name).await?;
        Ok(exit::OK)
    })
}

/// The project named by -p, else by the compose file (only read when needed).
fn project_name(a: &StackArgs) -> Result<String, Failure> {
    match &a.project {
        Some(n) => Ok(n.clone()),
        None => Ok(load_project(a)?.name),
    }
}

pub fn down_cmd(a: &StackArgs, rmi: bool) -> Result<u8, Failure> {
    // Which images the project builds is in the compose file: read it only when asked.
    let (name, built) = if rmi {
        let p = load_project(a)?;
        let built: Vec<String> = p
            .services
            .iter()
            .filter(|s| s.build.is_some())
            .map(|s| s.image.clone())
            .collect();
        (p.name, built)
    } else {
        (project_name(a)?, Vec::new())
    };
    let rt = runtime()?;
    rt.block_on(async {
        let engine = Engine::connect().await.runtime()?;
        let mut removed = engine.down(&name).await.runtime()?;
        for image in built {
            if engine.remove_image(&image).await.runtime()? {
                removed.push(format!("image {image}"));
            }
        }
        if removed.is_empty() {
            crate::outln!("project {name}: nothing to remove");
        } else {
            crate::outln!("project {name}: removed {}", removed.join(", "));
        }
        Ok(exit::OK)
    })
}

async fn print_ps(engine: &Engine, project: &str) -> Result<(), Failure> {
    let rows = engine.ps(project).await.runtime()?;
    crate::outln!(
        "{:<12} {:<28} {:<10} {:<10} ports",
        "service",
        "container",
        "state",
        "health"
    );
    for r in rows {
        crate::outln!(
            "{:<12} {:<28} {:<10} {:<10} {}",
            r.service,
            r.container,
            r.state,
            r.health,
            r.ports
        );
    }
    Ok(())
}

pub fn ps_cmd(a: &StackArgs) -> Result<u8, Failure> {
    let name = project_name(a)?;
    let rt = runtime()?;
    rt.block_on(async {
        let engine = Engine::connect().await.runtime()?;
        print_ps(&engine, &name).await?;
        Ok(exit::OK)
    })
}

/// Lists the stand-in images and builds the missing ones when asked.
pub fn images_cmd(build: bool, remove: bool, quiet: bool) -> Result<u8, Failure> {
    let rt = runtime()?;
    rt.block_on(async {
        let engine = Engine::connect().await.runtime()?;
        if remove {
            for s in images::STAND_INS {
                let tag = s.tag();
                let what = if engine.remove_image(&tag).await.runtime()? {
                    "removed"
                } else {
                    "absent"
                };
                crate::outln!("{tag:<28} {what}");
            }
            return Ok(exit::OK);
        }
        let progress = Progress::new(quiet);
        let mut missing = Vec::new();
        for s in images::STAND_INS {
            let tag = s.tag();
            match engine.image_id(&tag).await {
                Some(id) => crate::outln!("{tag:<28} present {}", &id[..19.min(id.len())]),
                None if build => missing.push(s),
                None => crate::outln!("{tag:<28} missing (loadtest images --build makes it)"),
            }
        }
        // The missing ones at once, each on its own progress line.
        let built = futures_util::future::join_all(
            missing
                .iter()
                .map(|s| images::build_stand_in(&engine, s, &progress)),
        )
        .await;
        let mut first_error = None;
        for (s, r) in missing.iter().zip(built) {
            match r {
                Ok(id) => crate::outln!("{:<28} built   {}", s.tag(), &id[..19.min(id.len())]),
                Err(e) => {
                    crate::outln!("{:<28} FAILED", s.tag());
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(Failure::Runtime(e)),
            None => Ok(exit::OK),
        }
    })
}

/// `loadtest migrate`.
pub fn migrate_cmd(url: &str, dir: &Path) -> Result<u8, Failure> {
    let rt = runtime()?;
    let r = rt.block_on(crate::db::migrate::run(url, dir)).runtime()?;
    crate::outln!(
        "migrations: {} applied ({} in {}) in {:.2}s",
        r.applied,
        r.total,
        dir.display(),
        r.elapsed.as_secs_f64()
    );
    Ok(exit::OK)
}
