//! `loadtest scenarios`: the scenarios of a folder (TOML files and k6
//! scripts, and the k6 folder of loadtest.toml), with their descriptions.

use std::path::PathBuf;

use crate::exit::{self, Classify, Failure};
use crate::scenario;

#[derive(clap::Args, Debug)]
pub struct ScenariosCmd {
    /// Folder of the scenarios (default: [paths] scenarios of loadtest.toml, else scenarios)
    #[arg(long, env = "LOADTEST_SCENARIOS_DIR")]
    pub scenarios_dir: Option<PathBuf>,
    /// Names only, one a line (for scripts)
    #[arg(long)]
    pub names: bool,
}

impl ScenariosCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let vars = crate::config::read_dotenv(std::path::Path::new(".env"))?;
        let cfg = crate::config::Config::load(&crate::config::default_path(), &vars).usage()?;
        let dir = self.scenarios_dir.clone().unwrap_or(cfg.scenarios.clone());
        let mut names = scenario::list(&dir);
        // The team's k6 folder too, unless a TOML scenario has the name.
        if cfg.k6_dir != dir {
            for n in scenario::list(&cfg.k6_dir) {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        names.sort();
        for name in names {
            if self.names {
                crate::outln!("{name}");
                continue;
            }
            let path = dir.join(format!("{name}.toml"));
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
