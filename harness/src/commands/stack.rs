//! What the stack commands (up, down, ps) share: which compose file and project.

use std::path::{Path, PathBuf};

use crate::config::{read_dotenv, Config};
use crate::exit::{Classify, Failure};
use crate::stack::compose::{self, Project};

#[derive(clap::Args, Debug, Clone)]
pub struct StackArgs {
    /// Compose file
    #[arg(
        short = 'f',
        long = "file",
        default_value = "compose/docker-compose.yml",
        env = "LOADTEST_COMPOSE_FILE"
    )]
    pub file: PathBuf,
    /// Project name (default: stack.project of config/loadtest.toml, else loadtest)
    #[arg(short = 'p', long = "project", env = "LOADTEST_PROJECT")]
    pub project: Option<String>,
    /// Variables for interpolation, under the process environment
    #[arg(long, default_value = ".env")]
    pub env_file: PathBuf,
    /// Enable services under this compose profile, e.g. grafana (repeatable, or comma-separated in LOADTEST_PROFILES)
    #[arg(long = "profile", env = "LOADTEST_PROFILES", value_delimiter = ',')]
    pub profiles: Vec<String>,
}

impl StackArgs {
    /// The compose project these flags name.
    pub fn load_project(&self) -> Result<Project, Failure> {
        let vars = read_dotenv(&self.env_file)?;
        // Without -p, the project of config/loadtest.toml, as `loadtest bench` uses.
        let project = match &self.project {
            Some(p) => p.clone(),
            None => {
                Config::load(Path::new("config/loadtest.toml"), &vars)
                    .usage()?
                    .project
            }
        };
        compose::load(&self.file, Some(&project), &vars, &self.profiles).usage()
    }

    /// The folder of this checkout's compose file, as its containers record
    /// it; None when the file is not here (then any checkout's may go).
    pub fn owner(&self) -> Option<PathBuf> {
        self.file
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .and_then(|d| d.canonicalize().ok())
            .filter(|_| self.file.is_file())
    }

    /// The project named by -p, else by the compose file (only read when needed).
    pub fn project_name(&self) -> Result<String, Failure> {
        match &self.project {
            Some(n) => compose::project_name(n).usage(),
            None => Ok(self.load_project()?.name),
        }
    }
}
