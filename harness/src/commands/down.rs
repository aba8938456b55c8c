//! `loadtest down`: the project's containers, network and volumes removed by label.

use super::stack::StackArgs;
use crate::exit::{self, Classify, Failure};
use crate::stack::docker::DockerClient;

#[derive(clap::Args, Debug)]
pub struct DownCmd {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Also remove the images the project builds (services with `build:`, and their `ab-` tags from
    /// `loadtest ab`), like compose's --rmi local
    #[arg(long)]
    pub rmi: bool,
}

impl DownCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        // Which images the project builds is in the compose file: read it only when asked.
        let (name, built, owner) = if self.rmi {
            let p = self.stack.load_project()?;
            let built: Vec<String> = p
                .services
                .iter()
                .filter(|s| s.build.is_some())
                .map(|s| s.image.clone())
                .collect();
            (p.name, built, Some(p.working_dir))
        } else {
            (self.stack.project_name()?, Vec::new(), self.stack.owner())
        };
        let rt = super::runtime()?;
        rt.block_on(async {
            let docker = DockerClient::connect().await.runtime()?;
            let mut removed = docker.down(&name, owner.as_deref()).await.runtime()?;
            let mut images = built.clone();
            // The A/B images (`loadtest ab`) are built from the same service.
            for image in &built {
                let repo = image.split(':').next().unwrap_or(image);
                images.extend(docker.tags_with_prefix(repo, "ab-").await.runtime()?);
            }
            for image in images {
                if docker.remove_image(&image).await.runtime()? {
                    removed.push(format!("image {image}"));
                }
            }
            if removed.is_empty() {
                crate::outln!("project {name}: nothing to remove");
            } else {
                crate::outln!("project {name}: removed {}", removed.join(", "));
            }
            Ok(exit::OK)
        })
    }
}
