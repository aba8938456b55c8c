//! Where the resets act: the database, the names of the databases the
//! harness makes beside it, and the disposable mark that allows them.

use anyhow::{bail, Result};

use super::{EmptyWith, Strategy};
use crate::db::{database_name, redact, DbIdentity};

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
        let Some(done) = strategy.whole_database() else {
            return Ok(());
        };
        if self.is_disposable() {
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
            done
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
