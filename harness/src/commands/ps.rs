//! `loadtest ps`: the project's services, state, health and published ports.

use super::stack::StackArgs;
use crate::exit::{self, Classify, Failure};
use crate::stack::docker::DockerClient;

#[derive(clap::Args, Debug)]
pub struct PsCmd {
    #[command(flatten)]
    pub stack: StackArgs,
}

impl PsCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let name = self.stack.project_name()?;
        let rt = super::runtime()?;
        rt.block_on(async {
            let docker = DockerClient::connect().await.runtime()?;
            print_ps(&docker, &name).await?;
            Ok(exit::OK)
        })
    }
}

pub async fn print_ps(docker: &DockerClient, project: &str) -> Result<(), Failure> {
    let rows = docker.ps(project).await.runtime()?;
    crate::outln!(
        "{:<12} {:<28} {:<10} {:<10} ports",
        "service",
        "container",
        "state",
        "health"
    );
    for r in rows {
        crate::outln!(
            "{:<12} {:<28} {:<10} {:<10} {}",
            r.service,
            r.container,
            r.state,
            r.health,
            r.ports
        );
    }
    Ok(())
}
