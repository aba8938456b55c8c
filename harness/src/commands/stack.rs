//! What the stack commands (up, down, ps) share: which compose file and project.

use std::path::{Path, PathBuf};

use crate::config::{read_dotenv, Config};
use crate::exit::{Classify, Failure};
use crate::stack::compose::{self, Project};

#[derive(clap::Args, Debug, Clone)]
pub struct StackArgs {
    /// Compose file (repeatable, in order; default: [stack] compose_file of loadtest.toml, else
    /// compose/docker-compose.yml)
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    /// Project name (default: stack.project of loadtest.toml, else loadtest)
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
        // The settings `loadtest bench` uses; flags and -f override them.
        let mut cfg = Config::load(&crate::config::default_path(), &vars).usage()?;
        if let Some(p) = &self.project {
            cfg.project = p.clone();
        }
        if !self.files.is_empty() {
            cfg.compose_files = self.files.clone();
            cfg.compose_file = self.files[0].clone();
            // Another file: its own services, not the settings' selection.
            cfg.services = None;
            cfg.app_service = None;
        }
        cfg.project(&vars, &self.profiles).usage()
    }

    /// The first compose file these flags name.
    fn file(&self) -> PathBuf {
        match self.files.first() {
            Some(f) => f.clone(),
            None => read_dotenv(&self.env_file)
                .ok()
                .and_then(|vars| Config::load(&crate::config::default_path(), &vars).ok())
                .map(|c| c.compose_file)
                .unwrap_or_else(|| PathBuf::from("compose/docker-compose.yml")),
        }
    }

    /// The folder of this checkout's compose file, as its containers record
    /// it; None when the file is not here (then any checkout's may go).
    pub fn owner(&self) -> Option<PathBuf> {
        let file = self.file();
        file.parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .and_then(|d| d.canonicalize().ok())
            .filter(|_| file.is_file())
    }

    /// The project named by -p, else by the compose file (only read when needed).
    pub fn project_name(&self) -> Result<String, Failure> {
        match &self.project {
            Some(n) => compose::project_name(n).usage(),
            None => Ok(self.load_project()?.name),
        }
    }
}
