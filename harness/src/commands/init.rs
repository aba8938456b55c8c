//! `loadtest init`: reads a team's repository (compose file, app service,
//! database, migrations, seed, k6 folder) and writes a commented
//! `loadtest.toml`, printing what it assumed. Never overwrites a file.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::exit::{self, Classify, Failure};

#[derive(clap::Args, Debug)]
pub struct InitCmd {
    /// Compose file to use (repeatable, in -f order; default: the first of compose.yaml,
    /// docker-compose.yml, ... here or one folder below)
    #[arg(long = "compose", value_name = "FILE")]
    pub compose: Vec<PathBuf>,
    /// Also write ./loadtest.sh, the familiar `-r -s -c -a` entry point, calling this binary
    #[arg(long)]
    pub script: bool,
    /// Variables for interpolating the compose file
    #[arg(long, default_value = ".env")]
    pub env_file: PathBuf,
}

const SCRIPT: &str = include_str!("init-loadtest.sh");

fn refuse_existing(path: &Path) -> Result<(), Failure> {
    if path.exists() {
        return Err(Failure::Usage(anyhow!(
            "{} already exists; `loadtest init` never overwrites a file: edit it, or remove it and run init again",
            path.display()
        )));
    }
    Ok(())
}

impl InitCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let toml = Path::new("loadtest.toml");
        refuse_existing(toml)?;
        let sh = Path::new("loadtest.sh");
        if self.script {
            refuse_existing(sh)?;
        }
        let vars = crate::config::read_dotenv(&self.env_file)?;
        let found = crate::detect::detect(Path::new("."), &self.compose, &vars).usage()?;
        let text = crate::detect::render(&found);
        crate::files::write_atomic(toml, text.as_bytes()).runtime()?;
        crate::outln!("wrote loadtest.toml:");
        let files: Vec<String> = found
            .compose_files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        crate::outln!("  compose file   {}", files.join(", "));
        crate::outln!(
            "  app service    {}{}",
            found.app_service,
            found
                .app_port
                .map(|p| format!(" (published on {p})"))
                .unwrap_or_default()
        );
        crate::outln!(
            "  health         {}",
            found.health.as_deref().unwrap_or("(none found)")
        );
        crate::outln!(
            "  database       {}",
            found
                .db_url
                .as_deref()
                .map(crate::db::redact)
                .unwrap_or_else(|| "(none found)".into())
        );
        let tool = found.migrate.map(|t| t.name()).unwrap_or("none");
        let from = found
            .migrations
            .as_ref()
            .map(|m| format!(" ({})", m.display()))
            .or(found
                .migrate_service
                .as_ref()
                .map(|s| format!(" (service {s})")))
            .unwrap_or_default();
        crate::outln!("  migrations     {tool}{from}");
        crate::outln!(
            "  seed           {}",
            found
                .seed_file
                .as_ref()
                .map(|s| format!("sql ({})", s.display()))
                .unwrap_or_else(|| "none".into())
        );
        crate::outln!(
            "  k6 scripts     {}",
            found
                .k6_dir
                .as_ref()
                .map(|d| format!(
                    "{} (mounted at {})",
                    d.display(),
                    found.k6_mount.as_deref().unwrap_or("/scripts")
                ))
                .unwrap_or_else(|| "(no folder found)".into())
        );
        if !found.notes.is_empty() {
            crate::outln!("check:");
            for n in &found.notes {
                crate::outln!("  - {n}");
            }
        }
        if self.script {
            crate::files::write_atomic(sh, SCRIPT.as_bytes()).runtime()?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(sh, std::fs::Permissions::from_mode(0o755)).runtime()?;
            crate::outln!("wrote loadtest.sh (./loadtest.sh -h)");
        }
        crate::outln!(
            "next: loadtest bench -s <script or scenario>, then loadtest ab --base <branch> -s <the same>"
        );
        Ok(exit::OK)
    }
}
