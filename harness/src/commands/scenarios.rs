//! `loadtest scenarios`: the scenarios of a folder, with their descriptions.

use std::path::PathBuf;

use crate::exit::{self, Failure};
use crate::scenario;

#[derive(clap::Args, Debug)]
pub struct ScenariosCmd {
    #[arg(long, default_value = "scenarios", env = "LOADTEST_SCENARIOS_DIR")]
    pub scenarios_dir: PathBuf,
}

impl ScenariosCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        for name in scenario::list(&self.scenarios_dir) {
            let path = self.scenarios_dir.join(format!("{name}.toml"));
            if !path.is_file() {
                crate::outln!("{name:<28} k6 script ({name}.js)");
                continue;
            }
            match scenario::load(&path) {
                Ok(sc) => crate::outln!("{name:<28} {}", sc.description.unwrap_or_default()),
                Err(e) => crate::outln!("{name:<28} INVALID: {e}"),
            }
        }
        Ok(exit::OK)
    }
}
