//! `loadtest populate`: create the [[populate]] items of a scenario through the API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;

use crate::engine::client::Target;
use crate::exit::{self, Classify, Failure};
use crate::scenario;

#[derive(clap::Args, Debug)]
pub struct PopulateCmd {
    /// Scenario name or path to a .toml file with [[populate]] entries
    #[arg(short, long)]
    pub scenario: String,
    /// Base URL of the service
    #[arg(short, long, env = "LOADTEST_TARGET")]
    pub target: String,
    #[arg(long, default_value = "scenarios", env = "LOADTEST_SCENARIOS_DIR")]
    pub scenarios_dir: PathBuf,
    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub tls: super::run::TlsArgs,
}

impl PopulateCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let path = scenario::resolve(&self.scenario, &self.scenarios_dir).usage()?;
        let sc = Arc::new(scenario::load(&path).usage()?);
        if sc.populate.is_empty() {
            return Err(Failure::Usage(anyhow!(
                "{}: no [[populate]] entries",
                path.display()
            )));
        }
        let rt = super::runtime()?;
        let tls = self.tls.settings(&sc, &path);
        let target = Arc::new(
            rt.block_on(Target::resolve(
                &self.target,
                &tls,
                sc.options.http_version,
                &sc.options.hosts,
            ))
            .usage()?,
        );
        let mut base = BTreeMap::new();
        base.insert("env".to_string(), crate::engine::env_value());
        rt.block_on(crate::populate::run_all(&sc, &target, &base, !self.quiet))
            .runtime()?;
        Ok(exit::OK)
    }
}
