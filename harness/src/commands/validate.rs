//! `loadtest validate`: check a scenario file without sending anything.

use std::path::PathBuf;

use crate::exit::{self, Classify, Failure};
use crate::scenario;

#[derive(clap::Args, Debug)]
pub struct ValidateCmd {
    /// Scenario name (looked up as <scenarios-dir>/NAME.toml) or path to a .toml file
    #[arg(short, long)]
    pub scenario: String,
    /// Folder holding the scenario files
    #[arg(long, default_value = "scenarios", env = "LOADTEST_SCENARIOS_DIR")]
    pub scenarios_dir: PathBuf,
}

impl ValidateCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let path = scenario::resolve(&self.scenario, &self.scenarios_dir).usage()?;
        if scenario::is_script(&path) {
            let what = crate::k6::inspect(&path).usage()?;
            crate::outln!("{}: ok (k6 script; {what})", path.display());
            return Ok(crate::exit::OK);
        }
        let sc = scenario::load(&path).usage()?;
        crate::outln!(
            "{}: ok ({}, {} setup / {} load / {} teardown steps, {} thresholds)",
            path.display(),
            sc.options.executor.name(),
            sc.setup.len(),
            sc.steps.len(),
            sc.teardown.len(),
            sc.thresholds.len()
        );
        Ok(exit::OK)
    }
}
