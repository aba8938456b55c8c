//! What a database holds, table by table: row count and a checksum of every
//! row, so "restored exactly" can be checked rather than assumed.

use anyhow::{Context, Result};
use serde::Serialize;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Row};

use super::ident;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableState {
    pub table: String,
    pub rows: i64,
    /// md5 over the md5 of every row's text form, in sorted order: independent of physical order.
    pub checksum: String,
}

/// User tables (not system schemas), as `schema.table`, sorted.
pub async fn tables(conn: &mut PgConnection) -> Result<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT schemaname::text, tablename::text FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .context("listing tables")?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub async fn snapshot(conn: &mut PgConnection) -> Result<Vec<TableState>> {
    let mut out = Vec::new();
    for (schema, table) in tables(conn).await? {
        let q = format!(
            "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') \
             FROM (SELECT md5(t::text) AS h FROM {}.{} t) s",
            ident(&schema),
            ident(&table)
        );
        let r = sqlx::query(AssertSqlSafe(q))
            .fetch_one(&mut *conn)
            .await
            .with_context(|| format!("reading {schema}.{table}"))?;
        out.push(TableState {
            table: format!("{schema}.{table}"),
            rows: r.get(0),
            checksum: r.get(1),
        });
    }
    Ok(out)
}
