//! Putting the database back to a known state between runs.
//!
//! One file per strategy (`template.rs`, `truncate.rs`, `delete.rs`,
//! `snapshot.rs`; `recreate` is the stack's down/up), the settings and names
//! in `settings.rs`, the server-side steps they share in `pg.rs`. What a
//! strategy is and when it acts is answered here, by exhaustive matches on
//! [`Strategy`]: a new strategy is a variant, its file, and the compiler
//! pointing at each question it must answer.
//!
//! The service's connection pool survives all of them: its connections to a
//! dropped database are closed by the server and sqlx replaces closed
//! connections when it next hands one out (it pings before each acquire).

mod delete;
mod pg;
mod settings;
mod snapshot;
mod template;
mod truncate;

use anyhow::{bail, Result};
use serde::Deserialize;

pub use delete::delete;
pub use settings::{derived_name, DbSettings};
pub use snapshot::{pending_snapshot, restore_snapshot, take_snapshot, Snapshot};
pub use template::{from_template, prepare_next, save_template, template_exists};
pub use truncate::{empty_tables, EmptyWith, AUTO_DELETE_BELOW_BYTES};

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

/// When a strategy acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The whole stack goes down and up again (`loadtest bench`).
    Stack,
    /// Before the run: the database is put back, then the load starts.
    BeforeRun,
    /// Around the run: taken before it, put back after it.
    AroundRun,
    /// Never: the database is left as it is.
    Never,
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

    pub fn phase(self) -> Phase {
        match self {
            Strategy::Recreate => Phase::Stack,
            Strategy::Template | Strategy::Truncate | Strategy::Delete => Phase::BeforeRun,
            Strategy::Snapshot => Phase::AroundRun,
            Strategy::None => Phase::Never,
        }
    }

    /// Whether the prepared database is kept as a template after the stack
    /// is made (and made again when a migration was added).
    pub fn keeps_template(self) -> bool {
        match self {
            Strategy::Template => true,
            Strategy::Recreate
            | Strategy::Truncate
            | Strategy::Delete
            | Strategy::Snapshot
            | Strategy::None => false,
        }
    }

    /// What it does to the database as a whole, when it does (for the
    /// disposable mark): None where it touches only what the user lists.
    pub fn whole_database(self) -> Option<&'static str> {
        match self {
            Strategy::Truncate => Some("emptied"),
            Strategy::Recreate | Strategy::Template | Strategy::Snapshot => {
                Some("replaced as a whole")
            }
            Strategy::Delete | Strategy::None => None,
        }
    }

    /// Refuses settings the strategy cannot work with, before anything runs.
    pub fn check(self, db: &DbSettings) -> Result<()> {
        db.require_disposable(self)?;
        match self {
            Strategy::Delete if db.delete.is_empty() => bail!(
                "the `delete` reset has no statements: list them, in order, as `delete = [\"DELETE FROM ... WHERE ...\", ...]` under [database] in config/loadtest.toml"
            ),
            Strategy::Recreate
            | Strategy::Template
            | Strategy::Truncate
            | Strategy::Delete
            | Strategy::Snapshot
            | Strategy::None => Ok(()),
        }
    }
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
                match with {
                    EmptyWith::Delete => "DELETE",
                    EmptyWith::Truncate | EmptyWith::Auto => "TRUNCATE",
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
