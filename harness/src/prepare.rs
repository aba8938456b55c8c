//! The state before a run: the stack fresh or reused, the database reset,
//! the data seeded; and the snapshot put back after a run. Used by `run`, the
//! full cycle (`bench`) and the reset benchmark.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::anyhow;

use crate::config::Config;
use crate::db::reset::{self, DbSettings, Snapshot, Strategy};
use crate::exit::{Classify, Failure};
use crate::results::StackInfo;
use crate::stack::compose;
use crate::stack::docker::DockerClient;
use crate::stack::progress::Progress;
use crate::stack::up::{self, UpOptions};

/// Refuses early (exit 2) when the settings cannot allow a strategy.
pub fn check_strategy(db: &DbSettings, strategy: Strategy) -> Result<(), Failure> {
    db.require_disposable(strategy).usage()?;
    if strategy == Strategy::Delete && db.delete.is_empty() {
        return Err(Failure::Usage(anyhow!(
            "the `delete` reset has no statements: list them, in order, as `delete = [\"DELETE FROM ... WHERE ...\", ...]` under [database] in config/loadtest.toml"
        )));
    }
    Ok(())
}

/// The database step before a run of its own (`run --reset`): a reset now, or
/// a snapshot taken now that [`restore_after_run`] puts back.
pub async fn reset_before_run(
    db: &DbSettings,
    strategy: Strategy,
    quiet: bool,
) -> Result<Option<Snapshot>, Failure> {
    check_strategy(db, strategy)?;
    match strategy {
        Strategy::Snapshot => {
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
        Strategy::None => Ok(None),
        Strategy::Recreate => Err(Failure::Usage(anyhow!(
            "`--reset recreate` rebuilds the whole stack: that is `loadtest bench` (or `loadtest up --fresh`)"
        ))),
        s => {
            let msg = reset::reset(db, s).await.runtime()?;
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
