//! `truncate`: every table but the kept ones (the migrations table) emptied in
//! one statement, or by DELETE with triggers off where that is faster.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Deserialize;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

use super::pg::exec;
use super::{DbSettings, Strategy};
use crate::db::{connect, ident, literal, state};

/// How `truncate` empties tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EmptyWith {
    /// DELETE below 1 MiB of table data (faster there), TRUNCATE above
    Auto,
    Truncate,
    Delete,
}

/// Below this much table data, DELETE with triggers off beats TRUNCATE (which
/// pays a fixed cost per table for new files); measured by `loadtest db
/// reset-bench` (bench/results/reset.md). Judged by size on disk because row
/// statistics are missing right after a copy or a COPY.
pub const AUTO_DELETE_BELOW_BYTES: i64 = 1 << 20;

/// User tables minus the kept ones, as quoted `schema.table`.
async fn tables_to_empty(conn: &mut PgConnection, keep: &[String]) -> Result<Vec<String>> {
    let all = state::tables(conn).await?;
    Ok(all
        .into_iter()
        .filter(|(schema, table)| {
            !keep
                .iter()
                .any(|k| k == table || *k == format!("{schema}.{table}"))
        })
        .map(|(schema, table)| format!("{}.{}", ident(&schema), ident(&table)))
        .collect())
}

/// Empties every table but the kept ones; returns the time and the method used.
pub async fn empty_tables(s: &DbSettings, with: EmptyWith) -> Result<(Duration, EmptyWith)> {
    s.require_disposable(Strategy::Truncate)?;
    let t0 = Instant::now();
    let mut c = connect(&s.url).await?;
    let tables = tables_to_empty(&mut c, &s.keep).await?;
    if tables.is_empty() {
        return Ok((t0.elapsed(), with));
    }
    let with = match with {
        EmptyWith::Auto => {
            let list: Vec<String> = tables.iter().map(|t| literal(t)).collect();
            let q = format!(
                "SELECT coalesce(sum(pg_relation_size(x::regclass)), 0)::bigint \
                 FROM unnest(ARRAY[{}]) x",
                list.join(",")
            );
            let bytes: i64 = sqlx::query_scalar(AssertSqlSafe(q))
                .fetch_one(&mut c)
                .await?;
            if bytes < AUTO_DELETE_BELOW_BYTES {
                EmptyWith::Delete
            } else {
                EmptyWith::Truncate
            }
        }
        w => w,
    };
    let sql = match with {
        EmptyWith::Delete => {
            // Triggers (foreign-key checks included) off: order does not matter and nothing cascades.
            let mut sql = String::from("BEGIN; SET LOCAL session_replication_role = replica;");
            for t in &tables {
                sql.push_str(&format!(" DELETE FROM {t};"));
            }
            for seq in owned_sequences(&mut c, &tables).await? {
                sql.push_str(&format!(" ALTER SEQUENCE {seq} RESTART;"));
            }
            sql.push_str(" COMMIT;");
            sql
        }
        _ => format!(
            "TRUNCATE TABLE {} RESTART IDENTITY CASCADE",
            tables.join(", ")
        ),
    };
    exec(&mut c, &sql).await?;
    c.close().await.ok();
    Ok((t0.elapsed(), with))
}

/// Sequences owned by the tables (serial and identity columns).
async fn owned_sequences(c: &mut PgConnection, tables: &[String]) -> Result<Vec<String>> {
    let list: Vec<String> = tables.iter().map(|t| literal(t)).collect();
    let q = format!(
        "SELECT s.oid::regclass::text FROM pg_class s \
         JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i') \
         WHERE s.relkind = 'S' AND d.refobjid IN (SELECT x::regclass FROM unnest(ARRAY[{}]) x)",
        list.join(",")
    );
    Ok(sqlx::query(AssertSqlSafe(q))
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect())
}
