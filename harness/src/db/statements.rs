//! What the database did during a trial, per normalised statement, from
//! Postgres's `pg_stat_statements` (shipped with Postgres; the library has
//! to be preloaded). Reset when a trial starts, read when it ends.

use anyhow::{Context, Result};
use sqlx::{Connection, Row};

use super::connect;

/// How to switch the statistics on, for a report that has none.
pub const HOW_TO_ENABLE: &str = "start Postgres with `-c shared_preload_libraries=pg_stat_statements` (in compose: \
`command: [\"postgres\", \"-c\", \"shared_preload_libraries=pg_stat_statements\"]` on the database service); \
the harness creates the extension itself";

/// One normalised statement's totals since the last reset.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// Postgres's normalised text (constants as `$1`).
    pub query: String,
    pub calls: u64,
    pub total_ms: f64,
    pub rows: u64,
    pub shared_hit: u64,
    pub shared_read: u64,
}

/// Whether the statistics can be read on the database of `url`: the
/// library preloaded, then (with `create`) the extension created in the
/// database when missing. Err(reason) says why not, and how to enable it.
pub async fn enable(url: &str, create: bool) -> Result<(), String> {
    let run = async {
        let mut c = connect(url).await?;
        let loaded: String = sqlx::query_scalar("SHOW shared_preload_libraries")
            .fetch_one(&mut c)
            .await?;
        if !loaded.split(',').any(|l| l.trim() == "pg_stat_statements") {
            c.close().await.ok();
            return Ok(Some(format!(
                "pg_stat_statements is not loaded (shared_preload_libraries = '{loaded}'): {HOW_TO_ENABLE}"
            )));
        }
        if create {
            sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .execute(&mut c)
                .await
                .context("creating the pg_stat_statements extension")?;
        }
        c.close().await.ok();
        anyhow::Ok(None)
    };
    match run.await {
        Ok(None) => Ok(()),
        Ok(Some(why)) => Err(why),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// Starts the counts again (all databases of the server).
pub async fn reset(url: &str) -> Result<()> {
    let mut c = connect(url).await?;
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(&mut c)
        .await
        .context("resetting pg_stat_statements")?;
    c.close().await.ok();
    Ok(())
}

/// Every statement run on the database of `url` since the last reset, the
/// harness's own reading and resetting left out.
pub async fn read(url: &str) -> Result<Vec<Statement>> {
    let mut c = connect(url).await?;
    let rows = sqlx::query(
        "SELECT query, calls::bigint, total_exec_time::float8, rows::bigint, \
                shared_blks_hit::bigint, shared_blks_read::bigint \
         FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND query NOT LIKE '%pg_stat_statements%'",
    )
    .fetch_all(&mut c)
    .await
    .context("reading pg_stat_statements")?;
    c.close().await.ok();
    Ok(rows
        .iter()
        .map(|r| Statement {
            query: r.get::<String, _>(0),
            calls: r.get::<i64, _>(1).max(0) as u64,
            total_ms: r.get::<f64, _>(2),
            rows: r.get::<i64, _>(3).max(0) as u64,
            shared_hit: r.get::<i64, _>(4).max(0) as u64,
            shared_read: r.get::<i64, _>(5).max(0) as u64,
        })
        .collect())
}

/// A statement as a report names it: one line, at most `max` characters.
pub fn short_text(query: &str, max: usize) -> String {
    let one: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= max {
        return one;
    }
    let cut: String = one.chars().take(max.saturating_sub(3)).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    #[test]
    fn statements_are_named_on_one_line() {
        assert_eq!(
            super::short_text("SELECT a\n  FROM t\n WHERE id = $1", 80),
            "SELECT a FROM t WHERE id = $1"
        );
        assert_eq!(super::short_text("SELECT 1234567890", 10), "SELECT ...");
    }
}
