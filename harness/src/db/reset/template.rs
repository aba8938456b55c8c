//! `template`: the prepared database (migrated, seeded) is copied once into a
//! template; a reset builds a fresh copy beside the live database and swaps it
//! in by rename, so the service sees the database missing for milliseconds only.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use sqlx::postgres::PgConnection;
use sqlx::Connection;

use super::pg::{
    admin, copy_clause, copy_live, drop_own, exec, exists, mark, owner_of, swap_in, MARK,
};
use super::{derived_name, DbSettings, Strategy};
use crate::db::{ident, literal};

/// Keeps the prepared database as the template later `template` resets copy.
pub async fn save_template(s: &DbSettings) -> Result<Duration> {
    let t0 = Instant::now();
    let (db, tpl) = (s.database()?, s.template_name()?);
    let mut a = admin(s).await?;
    // A copy made from the old template must not be swapped in later.
    drop_own(&mut a, &s.incoming_name()?).await?;
    drop_own(&mut a, &tpl).await?;
    copy_live(&mut a, &db, &tpl).await?;
    mark(&mut a, &tpl, &format!("template of {db}")).await?;
    // Nobody connects to the template, so copies from it never wait.
    exec(
        &mut a,
        &format!(
            "ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
            ident(&tpl)
        ),
    )
    .await?;
    a.close().await.ok();
    Ok(t0.elapsed())
}

pub async fn template_exists(s: &DbSettings) -> Result<bool> {
    let mut a = admin(s).await?;
    let found = exists(&mut a, &s.template_name()?).await?;
    a.close().await.ok();
    Ok(found)
}

/// The comment a copy of the template carries while it waits to be swapped in.
fn ready_mark(tpl: &str) -> String {
    format!("{MARK}: ready copy of {tpl}")
}

/// Copies the template into the `incoming` database, marked ready.
async fn copy_template(a: &mut PgConnection, s: &DbSettings) -> Result<()> {
    let (db, tpl) = (s.database()?, s.template_name()?);
    let incoming = s.incoming_name()?;
    if !exists(a, &tpl).await? {
        bail!(
            "no template `{tpl}` for database `{db}`: prepare it once after migrating and seeding with `loadtest db prepare`"
        );
    }
    let owner = owner_of(a, &db)
        .await
        .unwrap_or_else(|_| "CURRENT_USER".into());
    let owner = if owner == "CURRENT_USER" {
        owner
    } else {
        ident(&owner)
    };
    let clause = copy_clause(a).await?;
    drop_own(a, &incoming).await?;
    exec(
        a,
        &format!(
            "CREATE DATABASE {} TEMPLATE {} OWNER {owner}{clause}",
            ident(&incoming),
            ident(&tpl)
        ),
    )
    .await?;
    exec(
        a,
        &format!(
            "COMMENT ON DATABASE {} IS {}",
            ident(&incoming),
            literal(&ready_mark(&tpl))
        ),
    )
    .await
}

/// The comment of a live database renamed aside by a fast swap, waiting to be dropped.
fn retired_mark(db: &str) -> String {
    format!("{MARK}: retired copy of {db}")
}

/// Name of the live database once set aside by a fast swap.
fn retired_name(s: &DbSettings) -> Result<String> {
    Ok(derived_name(&s.database()?, "loadtest_retired"))
}

async fn comment_of(a: &mut PgConnection, name: &str) -> Result<Option<String>> {
    let c: Option<Option<String>> = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
    )
    .bind(name)
    .fetch_optional(&mut *a)
    .await?;
    Ok(c.flatten())
}

/// Drops the database a fast swap set aside (only one it marked itself).
async fn drop_retired(a: &mut PgConnection, s: &DbSettings) -> Result<()> {
    let (db, old) = (s.database()?, retired_name(s)?);
    if comment_of(a, &old).await?.as_deref() == Some(retired_mark(&db).as_str()) {
        exec(a, &format!("DROP DATABASE {} WITH (FORCE)", ident(&old))).await?;
    }
    Ok(())
}

/// Copies the template now so that the next [`from_template`] is only two
/// renames; also drops the database the last swap set aside. Meant to run
/// while something else happens (an A/B trial's warm-up), off the path
/// that waits for the reset.
pub async fn prepare_next(s: &DbSettings) -> Result<Duration> {
    s.require_disposable(Strategy::Template)?;
    let t0 = Instant::now();
    let mut a = admin(s).await?;
    drop_retired(&mut a, s).await?;
    copy_template(&mut a, s).await?;
    a.close().await.ok();
    Ok(t0.elapsed())
}

/// Sets the live database aside and renames the ready copy into its place.
/// Postgres itself waits in steps of 100 ms for closing sessions before a
/// rename or drop; polling every 2 ms keeps the swap short.
async fn fast_swap(a: &mut PgConnection, s: &DbSettings) -> Result<()> {
    let (db, incoming, old) = (s.database()?, s.incoming_name()?, retired_name(s)?);
    drop_retired(a, s).await?;
    if exists(a, &db).await? {
        exec(
            a,
            &format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", ident(&db)),
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()) t",
            )
            .bind(&db)
            .fetch_one(&mut *a)
            .await?;
            if left == 0 {
                // A session leaves the activity view a moment before it
                // leaves the process list that RENAME checks (and then
                // waits on in steps of 100 ms).
                tokio::time::sleep(Duration::from_millis(5)).await;
                break;
            }
            if Instant::now() > deadline {
                bail!("sessions on `{db}` did not close within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        exec(
            a,
            &format!("ALTER DATABASE {} RENAME TO {}", ident(&db), ident(&old)),
        )
        .await?;
        exec(
            a,
            &format!(
                "COMMENT ON DATABASE {} IS {}",
                ident(&old),
                literal(&retired_mark(&db))
            ),
        )
        .await?;
    }
    exec(
        a,
        &format!(
            "ALTER DATABASE {} RENAME TO {}",
            ident(&incoming),
            ident(&db)
        ),
    )
    .await
}

/// A fresh copy of the template in place of the live database: two renames
/// when [`prepare_next`] made the copy, else copy and swap.
pub async fn from_template(s: &DbSettings) -> Result<Duration> {
    s.require_disposable(Strategy::Template)?;
    let t0 = Instant::now();
    let (db, tpl) = (s.database()?, s.template_name()?);
    let incoming = s.incoming_name()?;
    let mut a = admin(s).await?;
    if comment_of(&mut a, &incoming).await?.as_deref() == Some(ready_mark(&tpl).as_str()) {
        fast_swap(&mut a, s).await?;
    } else {
        copy_template(&mut a, s).await?;
        swap_in(&mut a, &db, &incoming).await?;
    }
    mark(&mut a, &db, &format!("copy of {tpl}")).await?;
    a.close().await.ok();
    Ok(t0.elapsed())
}
