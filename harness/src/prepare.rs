//! The state before a run: the stack fresh or reused, the database reset,
//! the data seeded; and the snapshot put back after a run. Used by `run`, the
//! full cycle (`bench`) and the reset benchmark.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::anyhow;

use crate::config::{Config, Seeding};
use crate::db::reset::{self, DbSettings, Phase, Snapshot, Strategy};
use crate::exit::{Classify, Failure};
use crate::results::StackInfo;
use crate::stack::compose;
use crate::stack::docker::DockerClient;
use crate::stack::progress::Progress;
use crate::stack::up::{self, UpOptions};

/// Refuses early (exit 2) when the settings cannot allow a strategy.
pub fn check_strategy(db: &DbSettings, strategy: Strategy) -> Result<(), Failure> {
    strategy.check(db).usage()
}

/// The database step before a run of its own (`run --reset`): a reset now, or
/// a snapshot taken now that [`restore_after_run`] puts back.
pub async fn reset_before_run(
    db: &DbSettings,
    strategy: Strategy,
    quiet: bool,
) -> Result<Option<Snapshot>, Failure> {
    check_strategy(db, strategy)?;
    match strategy.phase() {
        Phase::AroundRun => {
            let (snap, t) = reset::take_snapshot(db).await.runtime()?;
            say(
                quiet,
                &format!(
                    "snapshot: `{}` copied to `{}` in {} ms; it is put back after the run",
                    snap.database,
                    snap.copy,
                    t.as_millis()
                ),
            );
            Ok(Some(snap))
        }
        Phase::Never => Ok(None),
        Phase::Stack => Err(Failure::Usage(anyhow!(
            "`--reset {}` rebuilds the whole stack: that is `loadtest bench` (or `loadtest up --fresh`)",
            strategy.name()
        ))),
        Phase::BeforeRun => {
            let msg = reset::reset(db, strategy).await.runtime()?;
            say(quiet, &msg);
            Ok(None)
        }
    }
}

/// Puts back the snapshot taken before a run.
pub async fn restore_after_run(snap: &Snapshot, quiet: bool) -> anyhow::Result<()> {
    let t = reset::restore_snapshot(snap).await?;
    say(
        quiet,
        &format!(
            "snapshot: `{}` restored in {} ms",
            snap.database,
            t.as_millis()
        ),
    );
    Ok(())
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
    let docker = DockerClient::connect().await.runtime()?;
    let t = Instant::now();
    let removed = docker
        .down(&project.name, Some(&project.working_dir))
        .await
        .runtime()?;
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
    let report = up::up(&docker, project, &opts, &progress).await.runtime()?;
    say(
        quiet,
        &format!(
            "up: {} services healthy in {:.1}s",
            report.images.len(),
            report.elapsed.as_secs_f64()
        ),
    );
    let prepared = async {
        learn_addresses(&docker, project).await?;
        if let Some(app) = &cfg.app_service {
            let healthchecked = project
                .service(app)
                .is_some_and(|s| s.healthcheck.is_some());
            if !healthchecked {
                probe_health(cfg, app, quiet).await?;
            }
        }
        let m = migrate(&docker, project, cfg, quiet).await?;
        let mut seeded = None;
        if let Seeding::Sql(file) = &cfg.seed {
            let r = crate::db::seed::load_sql(&cfg.database_url, file).await?;
            say(
                quiet,
                &format!(
                    "seed: {} in {:.2}s (one transaction)",
                    file.display(),
                    r.elapsed.as_secs_f64()
                ),
            );
            seeded = Some(r);
        }
        if let Seeding::Command(command) = &cfg.seed {
            let t = Instant::now();
            crate::db::host_command("seed_command", command, &cfg.database_url).await?;
            say(
                quiet,
                &format!("seed: `{command}` in {:.2}s", t.elapsed().as_secs_f64()),
            );
        }
        if let Seeding::Generated(data) = &cfg.seed {
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
                let _ = docker.down(&project.name, Some(&project.working_dir)).await;
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

/// Records where each service of the stack is reached, so URLs that name a
/// service (`db`, `router-server`) work from this process.
async fn learn_addresses(docker: &DockerClient, project: &compose::Project) -> anyhow::Result<()> {
    let addresses = docker
        .service_addresses(&project.name, &project.network_name())
        .await?;
    crate::resolve::set(addresses);
    Ok(())
}

/// For commands that use a stack already up (`db`, `migrate`, `run`):
/// learns where its services are, so a database URL naming a service works.
/// Best effort: without Docker or a stack, URLs stay as they are.
pub async fn learn_running(cfg: &Config, vars: &crate::stack::compose::Vars) {
    let mut cfg = cfg.clone();
    let Ok(project) = cfg.project(vars, &[]) else {
        return;
    };
    if let Ok(docker) = DockerClient::connect().await {
        let _ = learn_addresses(&docker, &project).await;
    }
}

/// Waits for the app's health path to answer (an app service without a
/// healthcheck of its own, e.g. one that migrates itself at start).
async fn probe_health(cfg: &Config, app: &str, quiet: bool) -> anyhow::Result<()> {
    let path = cfg.health_path.as_deref().unwrap_or("/");
    let base = crate::resolve::url(&cfg.target);
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let t = Instant::now();
    let mut last = String::new();
    while t.elapsed() < cfg.wait_timeout {
        match crate::stack::probe::get_status(&url).await {
            Ok(code) if code < 500 => {
                say(
                    quiet,
                    &format!(
                        "health: service `{app}` answered {code} at {path} after {:.1}s",
                        t.elapsed().as_secs_f64()
                    ),
                );
                return Ok(());
            }
            Ok(code) => last = format!("HTTP {code}"),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    Err(anyhow!(
        "service `{app}` did not answer at {url} within {}s (last: {last}); it has no healthcheck, so the \
         harness probes [target] health (set it to the app's health path)",
        cfg.wait_timeout.as_secs()
    ))
}

/// The migrations by the configured tool, reported on one line.
async fn migrate(
    docker: &DockerClient,
    project: &compose::Project,
    cfg: &Config,
    quiet: bool,
) -> anyhow::Result<crate::db::migrate::MigrateReport> {
    use crate::db::migrate::{MigrateReport, Tool};
    let started = Instant::now();
    let (report, how) = match cfg.migrate.tool {
        Tool::Service => {
            let svc = &cfg.migrate.run;
            match project.jobs.iter().find(|j| &j.name == svc) {
                Some(job) => {
                    let (code, logs) = docker.run_job(project, job, cfg.wait_timeout).await?;
                    if code != 0 {
                        return Err(anyhow!(
                            "migrate_service `{svc}` ({}) exited {code}; its last output:\n  {}",
                            project.config_file.display(),
                            logs.trim_end().replace('\n', "\n  ")
                        ));
                    }
                    let r = MigrateReport {
                        applied: 1,
                        total: 1,
                        elapsed: started.elapsed(),
                    };
                    (r, format!("service `{svc}` ran once and exited 0"))
                }
                None => (
                    cfg.migrate.apply(&cfg.database_url).await?,
                    format!("service `{svc}` completed before the services that wait for it"),
                ),
            }
        }
        Tool::App => (
            cfg.migrate.apply(&cfg.database_url).await?,
            "by the app at its start (it is up)".to_string(),
        ),
        Tool::None => (
            cfg.migrate.apply(&cfg.database_url).await?,
            "none configured".to_string(),
        ),
        Tool::Command => {
            let r = cfg.migrate.apply(&cfg.database_url).await?;
            (r, format!("`{}` exited 0", cfg.migrate.run))
        }
        Tool::Sqlx | Tool::Diesel => {
            let r = cfg.migrate.apply(&cfg.database_url).await?;
            let how = format!(
                "{} of {} applied ({}, {})",
                r.applied,
                r.total,
                cfg.migrate.tool.name(),
                cfg.migrate.dir.display()
            );
            (r, how)
        }
    };
    say(
        quiet,
        &format!("migrate: {how} in {:.2}s", started.elapsed().as_secs_f64()),
    );
    Ok(report)
}

/// Whether every service of the project runs (and is healthy where it has a check).
async fn stack_is_up(project: &compose::Project) -> Result<bool, Failure> {
    let docker = DockerClient::connect().await.runtime()?;
    let rows = docker.ps(&project.name).await.runtime()?;
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
pub async fn prepare_stack(
    project: &compose::Project,
    cfg: &Config,
    strategy: Strategy,
    keep_on_failure: bool,
    quiet: bool,
) -> Result<StackInfo, Failure> {
    let reuse = strategy.phase() != Phase::Stack
        && stack_is_up(project).await?
        && (!strategy.keeps_template() || reset::template_exists(&cfg.db).await.unwrap_or(false));
    if !reuse {
        let mut info = fresh_stack(project, cfg, keep_on_failure, quiet).await?;
        if strategy.keeps_template() {
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
    let msg = match strategy.phase() {
        // Taken right before the load by the run itself, and put back after it.
        Phase::AroundRun | Phase::Never | Phase::Stack => {
            format!("{}: stack reused", strategy.name())
        }
        Phase::BeforeRun => reset::reset(&cfg.db, strategy).await.runtime()?,
    };
    say(
        quiet,
        &format!("{msg} (the running stack is reused: the app is not rebuilt)"),
    );
    let docker = DockerClient::connect().await.runtime()?;
    learn_addresses(&docker, project).await.runtime()?;
    // A migration added since the template was saved must not be silently missing.
    let m = if cfg.migrate.idempotent() {
        cfg.migrate.apply(&cfg.database_url).await.runtime()?
    } else {
        crate::db::migrate::MigrateReport {
            applied: 0,
            total: 0,
            elapsed: std::time::Duration::ZERO,
        }
    };
    if m.applied > 0 && strategy.keeps_template() {
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
