//! `delete`: the user's ordered DELETE statements in one transaction with
//! triggers off, for databases that hold data to keep.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sqlx::{AssertSqlSafe, Connection};

use super::DbSettings;
use crate::db::connect;

/// Runs the configured DELETE statements in order, in one transaction with triggers off.
/// Returns the time and the rows each statement removed.
pub async fn delete(s: &DbSettings) -> Result<(Duration, Vec<u64>)> {
    if s.delete.is_empty() {
        bail!(
            "the `delete` reset has no statements: list them, in order, as `delete = [\"DELETE FROM ... WHERE ...\", ...]` under [database] in config/loadtest.toml"
        );
    }
    let t0 = Instant::now();
    let mut c = connect(&s.url).await?;
    let mut tx = c.begin().await?;
    sqlx::raw_sql("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .context("turning triggers off (needs a superuser or the table owners' rights)")?;
    let mut counts = Vec::new();
    for (i, stmt) in s.delete.iter().enumerate() {
        let r = sqlx::raw_sql(AssertSqlSafe(stmt.clone()))
            .execute(&mut *tx)
            .await
            .with_context(|| {
                format!(
                    "delete statement {} of {} failed (nothing was deleted): `{stmt}`",
                    i + 1,
                    s.delete.len()
                )
            })?;
        counts.push(r.rows_affected());
    }
    tx.commit().await?;
    c.close().await.ok();
    Ok((t0.elapsed(), counts))
}
