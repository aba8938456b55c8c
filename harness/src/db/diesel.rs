//! Diesel's migration folders, applied the way the diesel CLI applies them, so
//! the team's own `diesel migration run` agrees afterwards: one folder per
//! migration (`<version>_<name>/up.sql`), in version order, each in its own
//! transaction (unless its `metadata.toml` says `run_in_transaction = false`),
//! recorded in `__diesel_schema_migrations` by version (the folder name up to
//! the first `_`, dashes removed).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use sqlx::{AssertSqlSafe, Connection, Row};

use super::MigrateReport;

/// Diesel's own table, created as the CLI creates it.
const SETUP: &str = "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (\
    version VARCHAR(50) PRIMARY KEY NOT NULL, \
    run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)";

/// One migration folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: String,
    pub dir: PathBuf,
    pub in_transaction: bool,
}

/// The migration folders of `dir`, in the order diesel runs them. A folder
/// without `up.sql` is an error naming it (diesel refuses it too).
pub fn list(dir: &Path) -> Result<Vec<Migration>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read diesel migrations from {}", dir.display()))?;
    let mut out = Vec::new();
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || !e.path().is_dir() {
            continue;
        }
        let path = e.path();
        if !path.join("up.sql").is_file() {
            bail!(
                "{}: not a diesel migration (no up.sql); diesel's layout is <version>_<name>/up.sql and down.sql",
                path.display()
            );
        }
        let version = name.split('_').next().unwrap_or("").replace('-', "");
        if version.is_empty() {
            bail!(
                "{}: the folder name has no version before `_`",
                path.display()
            );
        }
        let in_transaction = match std::fs::read_to_string(path.join("metadata.toml")) {
            Ok(text) => {
                let v: toml::Table = toml::from_str(&text)
                    .with_context(|| format!("{}/metadata.toml", path.display()))?;
                v.get("run_in_transaction")
                    .and_then(|b| b.as_bool())
                    .unwrap_or(true)
            }
            Err(_) => true,
        };
        out.push(Migration {
            version,
            dir: path,
            in_transaction,
        });
    }
    out.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(out)
}

/// Applies the migrations diesel's table does not list yet. A failing one is
/// named with the database's error; what it did is rolled back.
pub async fn run(url: &str, dir: &Path) -> Result<MigrateReport> {
    let started = Instant::now();
    let migrations = list(dir)?;
    let mut conn = super::connect(url).await?;
    sqlx::raw_sql(SETUP).execute(&mut conn).await?;
    let done: Vec<String> = sqlx::query("SELECT version FROM __diesel_schema_migrations")
        .fetch_all(&mut conn)
        .await?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    let mut applied = 0;
    for m in migrations.iter().filter(|m| !done.contains(&m.version)) {
        let up = m.dir.join("up.sql");
        let sql = std::fs::read_to_string(&up)
            .with_context(|| format!("cannot read {}", up.display()))?;
        if sql.trim().is_empty() {
            bail!(
                "{}: the migration is empty (diesel refuses it too)",
                up.display()
            );
        }
        let fail = |e: sqlx::Error| anyhow!("{} failed: {e}", up.display());
        let record = sqlx::query("INSERT INTO __diesel_schema_migrations (version) VALUES ($1)")
            .bind(&m.version);
        if m.in_transaction {
            let mut tx = conn.begin().await?;
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            record.execute(&mut *tx).await?;
            tx.commit().await?;
        } else {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .map_err(fail)?;
            record.execute(&mut conn).await?;
        }
        applied += 1;
    }
    let _ = conn.close().await;
    Ok(MigrateReport {
        applied,
        total: migrations.len(),
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_read_in_diesels_order_with_its_versions() {
        let d = tempfile::tempdir().unwrap();
        for (name, meta) in [
            (
                "2024-02-01-120000_add_index",
                Some("run_in_transaction = false\n"),
            ),
            ("00000000000000_diesel_initial_setup", None),
            ("2023-12-31-235959_create_routes", None),
        ] {
            let p = d.path().join(name);
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("up.sql"), "SELECT 1;").unwrap();
            std::fs::write(p.join("down.sql"), "SELECT 1;").unwrap();
            if let Some(m) = meta {
                std::fs::write(p.join("metadata.toml"), m).unwrap();
            }
        }
        std::fs::write(d.path().join("README.md"), "not a migration").unwrap();
        std::fs::create_dir(d.path().join(".keep")).unwrap();
        let l = list(d.path()).unwrap();
        let versions: Vec<&str> = l.iter().map(|m| m.version.as_str()).collect();
        assert_eq!(
            versions,
            ["00000000000000", "20231231235959", "20240201120000"]
        );
        assert_eq!(
            l.iter().map(|m| m.in_transaction).collect::<Vec<_>>(),
            [true, true, false]
        );
        std::fs::create_dir(d.path().join("2025-01-01-000000_broken")).unwrap();
        let e = list(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("2025-01-01-000000_broken") && e.contains("no up.sql"),
            "{e}"
        );
    }
}
