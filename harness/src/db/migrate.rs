//! Runs sqlx migrations (a folder of `<version>_<name>.sql` files) and reports
//! how many ran and how long they took.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::Row;

/// How the team's migrations run (`[database] migrate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    /// sqlx's folder of `<version>_<name>.sql` files (`migrations`)
    Sqlx,
    /// diesel's `<version>_<name>/up.sql` folders (`migrations`), recorded in diesel's own table
    Diesel,
    /// a command on the host (`migrate_command`), with DATABASE_URL set; exit 0 is success
    Command,
    /// a one-off run of a compose service (`migrate_service`); exit 0 is success
    Service,
    /// the app migrates itself at start: its health is the sign
    App,
    /// no migrations
    None,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Sqlx => "sqlx",
            Tool::Diesel => "diesel",
            Tool::Command => "command",
            Tool::Service => "service",
            Tool::App => "app",
            Tool::None => "none",
        }
    }

    /// The table that records applied migrations (kept by `truncate`).
    pub fn table(self) -> Option<&'static str> {
        match self {
            Tool::Sqlx => Some("_sqlx_migrations"),
            Tool::Diesel => Some("__diesel_schema_migrations"),
            _ => None,
        }
    }
}

/// The migration settings of a stack.
#[derive(Debug, Clone)]
pub struct Migrations {
    pub tool: Tool,
    /// The folder (sqlx, diesel).
    pub dir: std::path::PathBuf,
    /// The host command (`command`) or the compose service (`service`).
    pub run: String,
}

impl Migrations {
    /// Applies what runs from this process (sqlx, diesel, a host command);
    /// `service`, `app` and `none` report nothing applied (the stack does them).
    pub async fn apply(&self, url: &str) -> Result<MigrateReport> {
        match self.tool {
            Tool::Sqlx => run(url, &self.dir).await,
            Tool::Diesel => super::diesel::run(url, &self.dir).await,
            Tool::Command => {
                let started = Instant::now();
                super::host_command("migrate_command", &self.run, url).await?;
                Ok(MigrateReport {
                    applied: 1,
                    total: 1,
                    elapsed: started.elapsed(),
                })
            }
            Tool::Service | Tool::App | Tool::None => Ok(MigrateReport {
                applied: 0,
                total: 0,
                elapsed: Duration::ZERO,
            }),
        }
    }

    /// Whether running the migrations again on a reused stack is cheap and
    /// safe (a folder whose applied versions are recorded).
    pub fn idempotent(&self) -> bool {
        matches!(self.tool, Tool::Sqlx | Tool::Diesel)
    }
}

async fn applied_count(pool: &sqlx::PgPool) -> usize {
    sqlx::query("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map(|r| r.get::<i64, _>(0) as usize)
        .unwrap_or(0)
}

/// Applies pending migrations. A failure names the migration and the database's error.
pub async fn run(url: &str, dir: &Path) -> Result<MigrateReport> {
    let started = Instant::now();
    let migrator = Migrator::new(dir)
        .await
        .with_context(|| format!("cannot read migrations from {}", dir.display()))?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&crate::resolve::url(url))
        .await
        .with_context(|| format!("cannot connect to the database at {}", redact(url)))?;
    let before = applied_count(&pool).await;
    if let Err(e) = migrator.run(&pool).await {
        pool.close().await;
        return Err(match e {
            MigrateError::ExecuteMigration(err, version) => {
                let name = migrator
                    .iter()
                    .find(|m| m.version == version)
                    .map(|m| m.description.to_string())
                    .unwrap_or_default();
                anyhow!(
                    "migration {version} ({name}) in {} failed: {err}",
                    dir.display()
                )
            }
            other => anyhow!("migrations in {} failed: {other}", dir.display()),
        });
    }
    let after = applied_count(&pool).await;
    pool.close().await;
    Ok(MigrateReport {
        applied: after.saturating_sub(before),
        total: migrator.iter().count(),
        elapsed: started.elapsed(),
    })
}

pub use super::{redact, MigrateReport};
