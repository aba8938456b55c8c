//! `loadtest up`: build, create, start in dependency order, wait healthy.

use std::time::Duration;

use super::stack::StackArgs;
use crate::exit::{self, Classify, Failure};
use crate::stack::docker::DockerClient;
use crate::stack::progress::Progress;
use crate::stack::up;

#[derive(clap::Args, Debug)]
pub struct UpCmd {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Take the project down (-v) first, for a fresh database
    #[arg(long)]
    pub fresh: bool,
    /// Keep the containers of a failed up for debugging
    #[arg(long)]
    pub keep_on_failure: bool,
    /// How long each service may take to become healthy, counted from its container's start
    #[arg(long, default_value = "120s", value_parser = super::parse_duration)]
    pub timeout: Duration,
    #[arg(short, long)]
    pub quiet: bool,
}

impl UpCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let p = self.stack.load_project()?;
        let rt = super::runtime()?;
        rt.block_on(async {
            let docker = DockerClient::connect().await.runtime()?;
            if self.fresh {
                let removed = docker.down(&p.name, Some(&p.working_dir)).await.runtime()?;
                if !self.quiet && !removed.is_empty() {
                    crate::errln!("down: removed {}", removed.join(", "));
                }
            }
            let progress = Progress::new(self.quiet);
            let report = up::up(
                &docker,
                &p,
                &up::UpOptions {
                    timeout: self.timeout,
                    keep_on_failure: self.keep_on_failure,
                },
                &progress,
            )
            .await
            .runtime()?;
            crate::outln!(
                "project {} is up in {:.1}s",
                p.name,
                report.elapsed.as_secs_f64()
            );
            super::ps::print_ps(&docker, &p.name).await?;
            Ok(exit::OK)
        })
    }
}
