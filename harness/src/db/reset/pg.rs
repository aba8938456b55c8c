//! What every strategy does on the server: create, mark, copy, swap and drop
//! databases, only ever dropping one the harness made.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use sqlx::postgres::PgConnection;
use sqlx::AssertSqlSafe;

use super::DbSettings;
use crate::db::{admin_url, connect, ident, literal};

/// The comment the harness puts on every database it creates (template,
/// snapshot, incoming copy), and checks before it drops one.
pub(super) const MARK: &str = "created by loadtest";

pub(super) async fn mark(admin: &mut PgConnection, name: &str, what: &str) -> Result<()> {
    exec(
        admin,
        &format!(
            "COMMENT ON DATABASE {} IS {}",
            ident(name),
            literal(&format!("{MARK}: {what}"))
        ),
    )
    .await
}

/// Drops `name` if it exists, only when the harness created it.
pub(super) async fn drop_own(admin: &mut PgConnection, name: &str) -> Result<()> {
    let comment: Option<Option<String>> = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
    )
    .bind(name)
    .fetch_optional(&mut *admin)
    .await?;
    match comment {
        None => Ok(()),
        Some(Some(c)) if c.starts_with(MARK) => {
            exec(
                admin,
                &format!("ALTER DATABASE {} WITH IS_TEMPLATE false", ident(name)),
            )
            .await?;
            exec(admin, &format!("DROP DATABASE {} WITH (FORCE)", ident(name))).await
        }
        Some(_) => bail!(
            "refusing to drop database `{name}`: the harness did not create it (it carries no \"{MARK}\" \
             comment). Choose another name (`template` under [database]), or drop it yourself if it is a \
             leftover you are sure of"
        ),
    }
}

pub(super) async fn exists(admin: &mut PgConnection, name: &str) -> Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut *admin)
        .await?
        .is_some())
}

pub(super) async fn exec(conn: &mut PgConnection, sql: &str) -> Result<()> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .with_context(|| format!("`{sql}` failed"))?;
    Ok(())
}

/// `STRATEGY FILE_COPY` where the server has it (15+): it copies the files
/// instead of WAL-logging every block, several times faster for a seeded database.
pub(super) async fn copy_clause(admin: &mut PgConnection) -> Result<&'static str> {
    let v: String = sqlx::query_scalar("SHOW server_version_num")
        .fetch_one(&mut *admin)
        .await?;
    Ok(if v.parse::<u32>().unwrap_or(0) >= 150000 {
        " STRATEGY FILE_COPY"
    } else {
        ""
    })
}

pub(super) async fn owner_of(admin: &mut PgConnection, db: &str) -> Result<String> {
    sqlx::query_scalar("SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1")
        .bind(db)
        .fetch_optional(&mut *admin)
        .await?
        .ok_or_else(|| anyhow!("database `{db}` does not exist"))
}

/// CREATE DATABASE `to` TEMPLATE `from`, where `from` is a live database: new
/// connections to it are refused and existing ones closed for the moment of the copy.
pub(super) async fn copy_live(admin: &mut PgConnection, from: &str, to: &str) -> Result<()> {
    let owner = owner_of(admin, from).await?;
    let clause = copy_clause(admin).await?;
    exec(
        admin,
        &format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            ident(from)
        ),
    )
    .await?;
    let copied = async {
        let mut last = None;
        // Terminated sessions take a moment to leave; CREATE fails while any remain.
        for _ in 0..50 {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(from)
            .execute(&mut *admin)
            .await?;
            let sql = format!(
                "CREATE DATABASE {} TEMPLATE {} OWNER {}{clause}",
                ident(to),
                ident(from),
                ident(&owner)
            );
            match sqlx::raw_sql(AssertSqlSafe(sql.clone()))
                .execute(&mut *admin)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.to_string().contains("being accessed by other users") => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(anyhow!(e).context(format!("copying `{from}` to `{to}`"))),
            }
        }
        Err(anyhow!(
            "copying `{from}` to `{to}`: sessions kept connecting to `{from}`: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ))
    }
    .await;
    let reopened = exec(
        admin,
        &format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", ident(from)),
    )
    .await;
    copied.and(reopened)
}

/// A connection to the server's maintenance database, for the steps on databases.
pub(super) async fn admin(s: &DbSettings) -> Result<PgConnection> {
    connect(&admin_url(&s.url)?).await
}

/// Replaces database `db` by database `by` (renamed into its place).
pub(super) async fn swap_in(a: &mut PgConnection, db: &str, by: &str) -> Result<()> {
    exec(
        a,
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(db)),
    )
    .await?;
    exec(
        a,
        &format!("ALTER DATABASE {} RENAME TO {}", ident(by), ident(db)),
    )
    .await
}
