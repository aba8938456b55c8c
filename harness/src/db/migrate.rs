//! Runs sqlx migrations (a folder of `<version>_<name>.sql` files) and reports
//! how many ran and how long they took.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::Row;

#[derive(Debug)]
pub struct MigrateReport {
    pub applied: usize,
    pub total: usize,
    pub elapsed: Duration,
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
        .connect(url)
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

/// The URL without its password, for messages: `user:password@` and a
/// `password=` query parameter (libpq's other way to give it) both masked.
pub fn redact(url: &str) -> String {
    let masked = match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    };
    match masked.split_once('?') {
        Some((base, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
        None => masked,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://demo:secret@db:5432/demo"),
            "postgres://demo:***@db:5432/demo"
        );
        assert_eq!(super::redact("postgres://db/demo"), "postgres://db/demo");
        assert_eq!(
            super::redact("postgres://db/demo?sslmode=disable&password=hunter2"),
            "postgres://db/demo?sslmode=disable&password=***"
        );
    }
}
