//! Putting the database back to a known state between runs.
//!
//! - `template`: the prepared database (migrated, seeded) is copied once into a
//!   template; a reset builds a fresh copy beside the live database and swaps it
//!   in by rename, so the service sees the database missing for milliseconds only.
//! - `truncate`: every table but the kept ones (the migrations table) emptied in
//!   one statement, or by DELETE with triggers off where that is faster.
//! - `delete`: the user's ordered DELETE statements in one transaction with
//!   triggers off, for databases that hold data to keep.
//! - `snapshot`: a copy taken before a run and renamed back after it, for an
//!   environment the harness did not create; only on a database marked disposable.
//!
//! The service's connection pool survives all of them: its connections to a
//! dropped database are closed by the server and sqlx replaces closed
//! connections when it next hands one out (it pings before each acquire).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

use super::{admin_url, connect, database_name, ident, literal, redact, DbIdentity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// down -v / up of the whole stack (loadtest bench only)
    Recreate,
    /// fresh copy of the prepared database from its template
    Template,
    /// empty every table but the kept ones
    Truncate,
    /// the configured DELETE statements, one transaction, triggers off
    Delete,
    /// copy before the run, put back after it (disposable databases only)
    Snapshot,
    /// leave the database as it is
    None,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Recreate => "recreate",
            Strategy::Template => "template",
            Strategy::Truncate => "truncate",
            Strategy::Delete => "delete",
            Strategy::Snapshot => "snapshot",
            Strategy::None => "none",
        }
    }
}

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

#[derive(Debug, Clone)]
pub struct DbSettings {
    pub url: String,
    /// The databases that may be replaced or emptied as a whole: the one the
    /// settings file marks `disposable = true` (its own `url`), and those
    /// named in LOADTEST_DB_DISPOSABLE. The mark never follows a URL given
    /// elsewhere (a flag, LOADTEST_DATABASE_URL).
    pub disposable: Vec<DbIdentity>,
    /// Template name; default `<database>_loadtest_template`.
    pub template: Option<String>,
    /// Ordered statements of the `delete` strategy.
    pub delete: Vec<String>,
    /// Tables `truncate` leaves alone (name or schema.name).
    pub keep: Vec<String>,
    pub empty_with: EmptyWith,
}

impl DbSettings {
    pub fn database(&self) -> Result<String> {
        database_name(&self.url)
    }

    pub fn template_name(&self) -> Result<String> {
        let db = self.database()?;
        match &self.template {
            Some(t) if *t == db => bail!(
                "[database] template = \"{t}\" names the database itself; the template must be a database \
                 of its own (leave `template` out for `{}`)",
                derived_name(&db, "template")
            ),
            Some(t) if t.len() > PG_NAME_MAX => bail!(
                "[database] template = \"{t}\" is longer than Postgres's {PG_NAME_MAX}-byte limit for names"
            ),
            Some(t) => Ok(t.clone()),
            None => Ok(derived_name(&db, "template")),
        }
    }

    pub fn snapshot_name(&self) -> Result<String> {
        Ok(derived_name(&self.database()?, "snapshot"))
    }

    /// The copy a `template` reset builds before swapping it in.
    pub fn incoming_name(&self) -> Result<String> {
        Ok(derived_name(&self.database()?, "incoming"))
    }

    /// Whether the database of `url` is marked disposable.
    pub fn is_disposable(&self) -> bool {
        DbIdentity::of_url(&self.url).is_ok_and(|id| self.disposable.contains(&id))
    }

    /// Strategies that replace or empty the whole database need the database
    /// itself (host, port, name) to be marked disposable.
    pub fn require_disposable(&self, strategy: Strategy) -> Result<()> {
        if matches!(strategy, Strategy::Delete | Strategy::None) || self.is_disposable() {
            return Ok(());
        }
        let id = DbIdentity::of_url(&self.url)?;
        let marked = if self.disposable.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = self.disposable.iter().map(|d| d.to_string()).collect();
            format!(
                " (the disposable mark covers {} only; it does not follow a URL given by flag or LOADTEST_DATABASE_URL)",
                list.join(", ")
            )
        };
        bail!(
            "refusing the `{}` reset: database `{}` at {} is not marked disposable{marked}; it would be {}. \
             Mark it only if nobody else uses it, never a shared staging database: `disposable = true` under \
             [database] in config/loadtest.toml marks the database of that file's own `url`; \
             LOADTEST_DB_DISPOSABLE={id} marks this one. `delete` with targeted statements is the strategy for \
             databases that hold data to keep",
            strategy.name(),
            self.database()?,
            redact(&self.url),
            match strategy {
                Strategy::Truncate => "emptied",
                _ => "replaced as a whole",
            }
        )
    }
}

/// Postgres keeps at most this many bytes of a name (it cuts longer ones).
const PG_NAME_MAX: usize = 63;

/// `<db>_loadtest_<role>`, or, where that passes Postgres's limit, a cut of
/// the name with a hash of the whole (so two long names never meet).
pub fn derived_name(db: &str, role: &str) -> String {
    let full = format!("{db}_loadtest_{role}");
    if full.len() <= PG_NAME_MAX {
        return full;
    }
    use sha2::{Digest, Sha256};
    let hash = hex::encode(&Sha256::digest(db.as_bytes())[..4]);
    let tail = format!("_{hash}_lt_{role}");
    let mut cut = PG_NAME_MAX - tail.len();
    while !db.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{tail}", &db[..cut])
}

/// The comment the harness puts on every database it creates (template,
/// snapshot, incoming copy), and checks before it drops one.
const MARK: &str = "created by loadtest";

async fn mark(admin: &mut PgConnection, name: &str, what: &str) -> Result<()> {
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
async fn drop_own(admin: &mut PgConnection, name: &str) -> Result<()> {
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

async fn exists(admin: &mut PgConnection, name: &str) -> Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut *admin)
        .await?
        .is_some())
}

async fn exec(conn: &mut PgConnection, sql: &str) -> Result<()> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .with_context(|| format!("`{sql}` failed"))?;
    Ok(())
}

/// `STRATEGY FILE_COPY` where the server has it (15+): it copies the files
/// instead of WAL-logging every block, several times faster for a seeded database.
async fn copy_clause(admin: &mut PgConnection) -> Result<&'static str> {
    let v: String = sqlx::query_scalar("SHOW server_version_num")
        .fetch_one(&mut *admin)
        .await?;
    Ok(if v.parse::<u32>().unwrap_or(0) >= 150000 {
        " STRATEGY FILE_COPY"
    } else {
        ""
    })
}

async fn owner_of(admin: &mut PgConnection, db: &str) -> Result<String> {
    sqlx::query_scalar("SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1")
        .bind(db)
        .fetch_optional(&mut *admin)
        .await?
        .ok_or_else(|| anyhow!("database `{db}` does not exist"))
}

/// CREATE DATABASE `to` TEMPLATE `from`, where `from` is a live database: new
/// connections to it are refused and existing ones closed for the moment of the copy.
async fn copy_live(admin: &mut PgConnection, from: &str, to: &str) -> Result<()> {
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

async fn admin(s: &DbSettings) -> Result<PgConnection> {
    connect(&admin_url(&s.url)?).await
}

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

/// Replaces database `db` by database `by` (renamed into its place).
async fn swap_in(a: &mut PgConnection, db: &str, by: &str) -> Result<()> {
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

/// User tables minus the kept ones, as quoted `schema.table`.
async fn tables_to_empty(conn: &mut PgConnection, keep: &[String]) -> Result<Vec<String>> {
    let all = super::state::tables(conn).await?;
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

/// A copy of the database taken before a run, put back after it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub database: String,
    pub copy: String,
    pub admin_url: String,
}

impl Snapshot {
    /// The commands that put the snapshot back by hand.
    pub fn manual_restore(&self) -> String {
        format!(
            "psql \"{}\" -c 'DROP DATABASE IF EXISTS {} WITH (FORCE)' -c 'ALTER DATABASE {} RENAME TO {}'",
            redact(&self.admin_url),
            ident(&self.database),
            ident(&self.copy),
            ident(&self.database)
        )
    }
}

pub async fn take_snapshot(s: &DbSettings) -> Result<(Snapshot, Duration)> {
    s.require_disposable(Strategy::Snapshot)?;
    let t0 = Instant::now();
    let snap = Snapshot {
        database: s.database()?,
        copy: s.snapshot_name()?,
        admin_url: admin_url(&s.url)?,
    };
    let mut a = admin(s).await?;
    if exists(&mut a, &snap.copy).await? {
        bail!(
            "a snapshot `{}` of `{}` from an earlier run is still there (its restore failed or was cut off): \
             put it back with `loadtest db restore`, or drop it if the current state is the one to keep",
            snap.copy,
            snap.database
        );
    }
    copy_live(&mut a, &snap.database, &snap.copy).await?;
    mark(
        &mut a,
        &snap.copy,
        &format!("snapshot of {}", snap.database),
    )
    .await?;
    a.close().await.ok();
    Ok((snap, t0.elapsed()))
}

/// Puts the snapshot back. On failure the snapshot is kept and the error says
/// how to restore by hand.
pub async fn restore_snapshot(snap: &Snapshot) -> Result<Duration> {
    let t0 = Instant::now();
    let r = async {
        let mut a = connect(&snap.admin_url).await?;
        if !exists(&mut a, &snap.copy).await? {
            bail!("the snapshot `{}` is gone", snap.copy);
        }
        swap_in(&mut a, &snap.database, &snap.copy).await?;
        a.close().await.ok();
        Ok(())
    }
    .await;
    r.map_err(|e| {
        e.context(format!(
            "restoring `{}` from its snapshot failed; the snapshot `{}` is kept. Restore by hand with:\n  {}",
            snap.database,
            snap.copy,
            snap.manual_restore()
        ))
    })?;
    Ok(t0.elapsed())
}

/// The snapshot left by an earlier run, if any (for `loadtest db restore`).
pub async fn pending_snapshot(s: &DbSettings) -> Result<Option<Snapshot>> {
    let snap = Snapshot {
        database: s.database()?,
        copy: s.snapshot_name()?,
        admin_url: admin_url(&s.url)?,
    };
    let mut a = admin(s).await?;
    let found = exists(&mut a, &snap.copy).await?;
    a.close().await.ok();
    Ok(found.then_some(snap))
}

/// Applies a strategy that acts before a run (template, truncate, delete).
/// Returns a one-line account of what was done.
pub async fn reset(s: &DbSettings, strategy: Strategy) -> Result<String> {
    s.require_disposable(strategy)?;
    match strategy {
        Strategy::Template => {
            let t = from_template(s).await?;
            Ok(format!(
                "reset (template): `{}` copied from `{}` in {} ms",
                s.database()?,
                s.template_name()?,
                t.as_millis()
            ))
        }
        Strategy::Truncate => {
            let (t, with) = empty_tables(s, s.empty_with).await?;
            Ok(format!(
                "reset (truncate, by {}): tables of `{}` emptied in {} ms",
                if with == EmptyWith::Delete {
                    "DELETE"
                } else {
                    "TRUNCATE"
                },
                s.database()?,
                t.as_millis()
            ))
        }
        Strategy::Delete => {
            let (t, counts) = delete(s).await?;
            Ok(format!(
                "reset (delete): {} statements removed {} rows in {} ms",
                counts.len(),
                counts.iter().sum::<u64>(),
                t.as_millis()
            ))
        }
        Strategy::None => Ok("reset: none".into()),
        Strategy::Recreate => bail!(
            "`recreate` takes the whole stack down and up again: it is what `loadtest bench` does (and `loadtest up --fresh`)"
        ),
        Strategy::Snapshot => bail!(
            "`snapshot` wraps a run (taken before, restored after): use it with `loadtest run --reset snapshot` or `loadtest bench --reset snapshot`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_restore_keeps_the_snapshot_and_says_how_to_restore() {
        // Nothing listens on port 1: the restore fails before touching anything.
        let snap = Snapshot {
            database: "shop".into(),
            copy: "shop_loadtest_snapshot".into(),
            admin_url: "postgres://u:secret@127.0.0.1:1/postgres".into(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = format!("{:#}", rt.block_on(restore_snapshot(&snap)).unwrap_err());
        assert!(
            e.contains("the snapshot `shop_loadtest_snapshot` is kept"),
            "{e}"
        );
        assert!(
            e.contains(
                "psql \"postgres://u:***@127.0.0.1:1/postgres\" -c 'DROP DATABASE IF EXISTS \"shop\" WITH (FORCE)' -c 'ALTER DATABASE \"shop_loadtest_snapshot\" RENAME TO \"shop\"'"
            ),
            "{e}"
        );
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn derived_names_fit_postgres_and_stay_apart() {
        assert_eq!(derived_name("demo", "template"), "demo_loadtest_template");
        let a = "a_database_name_that_is_quite_long_for_any_real_project_x";
        let b = "a_database_name_that_is_quite_long_for_any_real_project_y";
        for role in ["template", "snapshot", "incoming"] {
            let (da, db) = (derived_name(a, role), derived_name(b, role));
            assert!(da.len() <= 63 && db.len() <= 63, "{da} {db}");
            assert_ne!(da, db);
            assert!(da.ends_with(role), "{da}");
        }
        // Multi-byte characters are never cut in half.
        let wide = "数据库".repeat(8);
        assert!(derived_name(&wide, "snapshot").len() <= 63);
    }

    #[test]
    fn only_targeted_deletes_run_on_a_database_not_marked_disposable() {
        let s = DbSettings {
            url: "postgres://u:p@h/shop".into(),
            disposable: vec![],
            template: None,
            delete: vec![],
            keep: vec![],
            empty_with: EmptyWith::Auto,
        };
        for st in [Strategy::Template, Strategy::Truncate, Strategy::Snapshot] {
            let e = s.require_disposable(st).unwrap_err().to_string();
            assert!(
                e.contains("not marked disposable") && e.contains("`shop`"),
                "{e}"
            );
        }
        assert!(s.require_disposable(Strategy::Delete).is_ok());
        assert_eq!(s.template_name().unwrap(), "shop_loadtest_template");
    }
}
