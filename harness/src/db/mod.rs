//! The database under test: migrations, reset strategies, state checksums and
//! generated data (COPY). The reset benchmark that times them is a command
//! (`commands/reset_bench.rs`).

pub mod diesel;
pub mod migrate;
pub mod reset;
pub mod seed;
pub mod state;
pub mod statements;

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::ConnectOptions;

/// The one redactor, under the name the database code uses.
pub use crate::redact::userinfo as redact;

/// What a migration step did: how many ran, of how many, in how long.
#[derive(Debug)]
pub struct MigrateReport {
    pub applied: usize,
    pub total: usize,
    pub elapsed: Duration,
}

/// Runs a team's command on the host (`sh -c`, in the current folder) with
/// DATABASE_URL set to the stack's database; a failure shows the command's
/// last output lines and its exit code. `setting` names where it came from.
pub async fn host_command(setting: &str, command: &str, url: &str) -> Result<String> {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("DATABASE_URL", crate::resolve::url(url))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("{setting}: cannot start `sh -c {command}`"))?;
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{setting} `{command}` failed ({}):\n  {}",
            out.status,
            tail.join("\n  ")
        );
    }
    Ok(text)
}

/// Connects one session (no pool: every operation here is sequential).
pub async fn connect(url: &str) -> Result<PgConnection> {
    // A service name of the stack (`db`) is reached at its container's address.
    let opts: PgConnectOptions = crate::resolve::url(url)
        .parse()
        .with_context(|| format!("`{}` is not a Postgres URL", redact(url)))?;
    tokio::time::timeout(Duration::from_secs(10), opts.connect())
        .await
        .map_err(|_| anyhow!("connecting to {} timed out after 10 s", redact(url)))?
        .with_context(|| format!("cannot connect to the database at {}", redact(url)))
}

/// Which database a URL reaches: server host, port and database name. The
/// `disposable` mark belongs to one of these, never to whatever URL is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbIdentity {
    pub host: String,
    pub port: u16,
    pub name: String,
}

impl DbIdentity {
    pub fn of_url(url: &str) -> Result<DbIdentity> {
        let opts: PgConnectOptions = url
            .parse()
            .with_context(|| format!("`{}` is not a Postgres URL", redact(url)))?;
        Ok(DbIdentity {
            host: opts.get_host().to_string(),
            port: opts.get_port(),
            name: database_name(url)?,
        })
    }

    /// `host:port/name`, as written in LOADTEST_DB_DISPOSABLE.
    pub fn parse(text: &str) -> Result<DbIdentity> {
        let bad = || {
            anyhow!(
                "`{text}` does not name a database as host:port/name (e.g. 127.0.0.1:5433/demo)"
            )
        };
        let (server, name) = text.trim().split_once('/').ok_or_else(bad)?;
        let (host, port) = server.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || name.is_empty() {
            return Err(bad());
        }
        Ok(DbIdentity {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for DbIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.host, self.port, self.name)
    }
}

/// The database a URL names.
pub fn database_name(url: &str) -> Result<String> {
    let opts: PgConnectOptions = url
        .parse()
        .with_context(|| format!("`{}` is not a Postgres URL", redact(url)))?;
    match opts.get_database() {
        Some(d) if !d.is_empty() => Ok(d.to_string()),
        _ => bail!("{} names no database", redact(url)),
    }
}

/// The same server and credentials, on the maintenance database `postgres`:
/// a database cannot be dropped or copied from a session inside it.
pub fn admin_url(url: &str) -> Result<String> {
    let name = database_name(url)?;
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let Some(stem) = base.strip_suffix(&name) else {
        bail!("cannot find the database name in {}", redact(url));
    };
    Ok(match query {
        Some(q) => format!("{stem}postgres?{q}"),
        None => format!("{stem}postgres"),
    })
}

/// `"name"` with inner quotes doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with inner quotes doubled.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_url_keeps_server_and_options() {
        assert_eq!(
            admin_url("postgres://u:p@h:5433/demo").unwrap(),
            "postgres://u:p@h:5433/postgres"
        );
        assert_eq!(
            admin_url("postgres://u:p@h/demo?sslmode=disable").unwrap(),
            "postgres://u:p@h/postgres?sslmode=disable"
        );
        assert!(admin_url("postgres://u:p@h:5433").is_err());
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
