//! `loadtest bench`: the full cycle. down -v -> up (fresh database, app image
//! from the checkout) -> migrate -> run -> save -> compare when asked -> leave
//! the stack up for viewing, or take it down with --down.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::anyhow;

use crate::compare_cmd::{self, CompareArgs, Format};
use crate::config::Config;
use crate::db::reset::{self, Strategy};
use crate::exit::{self, Classify, Failure};
use crate::results::{result_path, StackInfo};
use crate::run::{self, RunArgs};
use crate::scenario;
use crate::stack::compose;
use crate::stack::engine::Engine;
use crate::stack::progress::Progress;
use crate::stack::up::{self, UpOptions};
use crate::stack_cmd::read_dotenv;

pub struct BenchArgs {
    pub config: PathBuf,
    pub env_file: PathBuf,
    pub scenario: Option<String>,
    pub run_name: Option<String>,
    pub compare: bool,
    pub down: bool,
    pub keep_on_failure: bool,
    pub vus: Option<u32>,
    pub duration: Option<Duration>,
    pub repeat: u32,
    pub quiet: bool,
    /// Compose profiles enabled on top of the configured ones.
    pub profiles: Vec<String>,
    /// Database reset before the run (default: [database] reset).
    pub reset: Option<Strategy>,
}

fn say(quiet: bool, msg: &str) {
    if !quiet {
        crate::errln!("{msg}");
    }
}

/// down -v, up, migrate, and seed when a data file is configured: the
/// `recreate` reset. Leaves nothing half-up unless asked to keep it.
pub async fn fresh_stack(
    project: &compose::Project,
    cfg: &Config,
    keep_on_failure: bool,
    quiet: bool,
) -> Result<StackInfo, Failure> {
    let engine = Engine::connect().await.runtime()?;
    let t = Instant::now();
    let removed = engine.down(&project.name).await.runtime()?;
    let down_s = t.elapsed().as_secs_f64();
    say(
        quiet,
        &format!(
            "down -v: project {}: removed {} objects in {down_s:.1}s",
            project.name,
            removed.len()
        ),
    );
    let progress = Progress::new(quiet);
    let opts = UpOptions {
        timeout: cfg.wait_timeout,
        keep_on_failure,
    };
    let report = up::up(&engine, project, &opts, &progress).await.runtime()?;
    say(
        quiet,
        &format!(
            "up: {} services healthy in {:.1}s",
            report.images.len(),
            report.elapsed.as_secs_f64()
        ),
    );
    let prepared = async {
        let m = crate::db::migrate::run(&cfg.database_url, &cfg.migrations).await?;
        say(
            quiet,
            &format!(
                "migrate: {} of {} applied in {:.2}s",
                m.applied,
                m.total,
                m.elapsed.as_secs_f64()
            ),
        );
        let mut seeded = None;
        if let Some(data) = &cfg.data {
            let plan = crate::db::seed::load(data)?;
            let ids = plan.data.identities.clone().map(PathBuf::from);
            let r = crate::db::seed::load_into(
                &cfg.database_url,
                &plan,
                plan.data.seed,
                ids.as_deref(),
                !quiet,
            )
            .await?;
            say(
                quiet,
                &format!(
                    "seed: {} rows from {} in {:.2}s ({:.0} rows/s)",
                    r.rows,
                    data.display(),
                    r.elapsed.as_secs_f64(),
                    r.rows_per_s()
                ),
            );
            seeded = Some(r);
        }
        Ok::<_, anyhow::Error>((m, seeded))
    }
    .await;
    let (migrated, seeded) = match prepared {
        Ok(x) => x,
        Err(e) => {
            let kept = if keep_on_failure {
                "the stack was kept for debugging".to_string()
            } else {
                let _ = engine.down(&project.name).await;
                "the stack was removed".to_string()
            };
            return Err(Failure::Runtime(e.context(kept)));
        }
    };
    Ok(StackInfo {
        project: project.name.clone(),
        compose_file: project.config_file.display().to_string(),
        images: report.images,
        down_s: (down_s * 1000.0).round() / 1000.0,
        up_s: (report.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        migrations_applied: migrated.applied,
        migrate_s: (migrated.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        seeded_rows: seeded.as_ref().map(|r| r.rows),
        seed_s: seeded.map(|r| (r.elapsed.as_secs_f64() * 1000.0).round() / 1000.0),
        reset: None,
    })
}

/// Whether every service of the project runs (and is healthy where it has a check).
async fn stack_is_up(project: &compose::Project) -> Result<bool, Failure> {
    let engine = Engine::connect().await.runtime()?;
    let rows = engine.ps(&project.name).await.runtime()?;
    Ok(project.services.iter().all(|svc| {
        rows.iter().any(|r| {
            r.service == svc.name
                && r.state == "running"
                && (svc.healthcheck.is_none() || r.health == "healthy")
        })
    }))
}

/// The stack and database the run starts from. `recreate` (or a stack that is
/// not up, or a missing template) goes through down -v / up / migrate / seed;
/// the other strategies reuse the running stack and only reset the database.
async fn prepare_stack(
    project: &compose::Project,
    cfg: &Config,
    strategy: Strategy,
    keep_on_failure: bool,
    quiet: bool,
) -> Result<StackInfo, Failure> {
    let reuse = strategy != Strategy::Recreate
        && stack_is_up(project).await?
        && (strategy != Strategy::Template
            || reset::template_exists(&cfg.db).await.unwrap_or(false));
    if !reuse {
        let mut info = fresh_stack(project, cfg, keep_on_failure, quiet).await?;
        if strategy == Strategy::Template {
            let t = reset::save_template(&cfg.db).await.runtime()?;
            say(
                quiet,
                &format!("template: prepared state saved in {} ms", t.as_millis()),
            );
            info.reset = Some(format!(
                "recreate, then template saved ({})",
                strategy.name()
            ));
        }
        return Ok(info);
    }
    let t = Instant::now();
    let msg = match strategy {
        // Taken right before the load by the run itself, and put back after it.
        Strategy::Snapshot | Strategy::None => format!("{}: stack reused", strategy.name()),
        s => reset::reset(&cfg.db, s).await.runtime()?,
    };
    say(
        quiet,
        &format!("{msg} (the running stack is reused: the app is not rebuilt)"),
    );
    // A migration added since the template was saved must not be silently missing.
    let m = crate::db::migrate::run(&cfg.database_url, &cfg.migrations)
        .await
        .runtime()?;
    if m.applied > 0 && strategy == Strategy::Template {
        reset::save_template(&cfg.db).await.runtime()?;
        say(
            quiet,
            &format!(
                "migrate: {} new migrations applied; template saved again",
                m.applied
            ),
        );
    }
    Ok(StackInfo {
        project: project.name.clone(),
        compose_file: project.config_file.display().to_string(),
        images: Default::default(),
        down_s: 0.0,
        up_s: 0.0,
        migrations_applied: m.applied,
        migrate_s: (m.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        seeded_rows: None,
        seed_s: None,
        reset: Some(format!("{msg} in {} ms", t.elapsed().as_millis())),
    })
}

pub fn execute(a: BenchArgs) -> Result<u8, Failure> {
    let vars = read_dotenv(&a.env_file)?;
    let cfg = Config::load(&a.config, &vars).usage()?;
    let scenario_name = a.scenario.clone().unwrap_or(cfg.scenario.clone());
    let run_name = a.run_name.clone().unwrap_or(cfg.run_name.clone());
    // Everything that can be checked without Docker is checked first.
    let path = scenario::resolve(&scenario_name, &cfg.scenarios).usage()?;
    let sc = scenario::load(&path).usage()?;
    let baseline = result_path(&cfg.results, "baseline", &sc.name, "json");
    if a.compare {
        if run_name == "baseline" {
            return Err(Failure::Usage(anyhow!(
                "--compare judges a run against the baseline: give it another run name (-r), e.g. the commit"
            )));
        }
        if !baseline.is_file() {
            return Err(Failure::Usage(anyhow!(
                "no baseline for scenario `{}`: {} is missing; record one first with `loadtest bench -s {}` (run name baseline)",
                sc.name,
                baseline.display(),
                sc.name
            )));
        }
    }
    let mut profiles = cfg.profiles.clone();
    profiles.extend(a.profiles.iter().cloned());
    let project = compose::load(&cfg.compose_file, Some(&cfg.project), &vars, &profiles).usage()?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .runtime()?;
    let quiet = a.quiet;
    let strategy = a.reset.unwrap_or(cfg.reset);
    crate::db_cmd::check_strategy(&cfg.db, strategy)?;
    let stack = rt.block_on(prepare_stack(
        &project,
        &cfg,
        strategy,
        a.keep_on_failure,
        quiet,
    ))?;

    let report = run::execute(RunArgs {
        scenario: path.display().to_string(),
        scenarios_dir: cfg.scenarios.clone(),
        target: cfg.target.clone(),
        vus: a.vus,
        duration: a.duration,
        run_name: run_name.clone(),
        out: cfg.results.clone(),
        quiet: a.quiet,
        repeat: a.repeat,
        stack: Some(stack),
        push_url: cfg.push_url.clone(),
        prometheus_url: cfg.prometheus_url.clone(),
        server_metric: cfg.server_metric.clone(),
        grafana_url: cfg.grafana_url.clone(),
        db_reset: (strategy == Strategy::Snapshot).then(|| (strategy, cfg.db.clone())),
    });
    let finish = |code: u8| -> Result<u8, Failure> {
        if a.down {
            rt.block_on(async {
                let engine = Engine::connect().await.runtime()?;
                engine.down(&project.name).await.runtime()
            })?;
            say(
                quiet,
                &format!("stack: project {} taken down (--down)", project.name),
            );
        } else {
            say(
                quiet,
                &format!(
                    "stack: project {} left up for viewing at {}; `loadtest down -p {}` removes it",
                    project.name, cfg.target, project.name
                ),
            );
        }
        Ok(code)
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            finish(e.code())?;
            return Err(e);
        }
    };
    let mut code = report.code;
    if a.compare {
        let c = compare_cmd::execute(CompareArgs {
            base: baseline.display().to_string(),
            current: report.json.display().to_string(),
            scenario: None,
            dir: cfg.results.clone(),
            format: Format::Text,
            config: None,
            allow_mismatch: false,
            report: None,
        });
        code = match c {
            Ok(exit::REGRESSED) => exit::REGRESSED,
            Ok(_) => code,
            Err(e) => {
                crate::errln!("error: {e}");
                e.code()
            }
        };
    }
    finish(code)
}
