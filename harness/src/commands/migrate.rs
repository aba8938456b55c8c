//! `loadtest migrate`: the sqlx migrations, with a count and a time.

use std::path::PathBuf;

use crate::exit::{self, Classify, Failure};

#[derive(clap::Args, Debug)]
pub struct MigrateCmd {
    /// Postgres URL (default: the stack's published database)
    #[arg(
        long,
        env = "LOADTEST_DATABASE_URL",
        default_value = "postgres://demo:demo@127.0.0.1:5433/demo"
    )]
    pub database_url: String,
    /// Folder of <version>_<name>.sql files
    #[arg(long, default_value = "demo/migrations")]
    pub migrations: PathBuf,
}

impl MigrateCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let rt = super::runtime()?;
        let r = rt
            .block_on(crate::db::migrate::run(
                &self.database_url,
                &self.migrations,
            ))
            .runtime()?;
        crate::outln!(
            "migrations: {} applied ({} in {}) in {:.2}s",
            r.applied,
            r.total,
            self.migrations.display(),
            r.elapsed.as_secs_f64()
        );
        Ok(exit::OK)
    }
}
