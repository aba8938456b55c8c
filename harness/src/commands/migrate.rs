//! `loadtest migrate`: the migrations of loadtest.toml ([database] migrate:
//! sqlx or diesel folders, or a host command), with a count and a time.

use std::path::PathBuf;

use anyhow::anyhow;

use crate::config::{read_dotenv, Config};
use crate::db::migrate::Tool;
use crate::exit::{self, Classify, Failure};

#[derive(clap::Args, Debug)]
pub struct MigrateCmd {
    /// Postgres URL (default: [database] url of the settings; a service name of the stack works)
    #[arg(long, env = "LOADTEST_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The migrations folder (default: [database] migrations of the settings)
    #[arg(long)]
    pub migrations: Option<PathBuf>,
    /// Settings file
    #[arg(long, default_value_os_t = crate::config::default_path())]
    pub config: PathBuf,
    #[arg(long, default_value = ".env")]
    pub env_file: PathBuf,
}

impl MigrateCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let vars = read_dotenv(&self.env_file)?;
        let cfg = Config::load(&self.config, &vars).usage()?;
        let mut m = cfg.migrate.clone();
        if let Some(dir) = &self.migrations {
            m.dir = dir.clone();
        }
        if matches!(m.tool, Tool::Service | Tool::App | Tool::None) {
            return Err(Failure::Usage(anyhow!(
                "[database] migrate = \"{}\" in {}: the stack runs these migrations (`loadtest bench` or `loadtest up`)",
                m.tool.name(),
                self.config.display()
            )));
        }
        let url = self
            .database_url
            .clone()
            .unwrap_or(cfg.database_url.clone());
        let rt = super::runtime()?;
        rt.block_on(crate::prepare::learn_running(&cfg, &vars));
        let r = rt.block_on(m.apply(&url)).runtime()?;
        crate::outln!(
            "migrations: {} applied ({} {} in {}) in {:.2}s",
            r.applied,
            r.total,
            m.tool.name(),
            m.dir.display(),
            r.elapsed.as_secs_f64()
        );
        Ok(exit::OK)
    }
}
