//! `loadtest images`: the local stand-in images, listed, built or removed.

use crate::exit::{self, Classify, Failure};
use crate::stack::docker::DockerClient;
use crate::stack::images;
use crate::stack::progress::Progress;

#[derive(clap::Args, Debug)]
pub struct ImagesCmd {
    /// Build the missing ones (in parallel, one progress line each; the raw log goes to a file)
    #[arg(long, conflicts_with = "remove")]
    pub build: bool,
    /// Remove the stand-in images (of the current suffix)
    #[arg(long)]
    pub remove: bool,
    #[arg(short, long)]
    pub quiet: bool,
}

impl ImagesCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let rt = super::runtime()?;
        rt.block_on(async {
            let docker = DockerClient::connect().await.runtime()?;
            if self.remove {
                for s in images::STAND_INS {
                    let tag = s.tag();
                    let what = if docker.remove_image(&tag).await.runtime()? {
                        "removed"
                    } else {
                        "absent"
                    };
                    crate::outln!("{tag:<28} {what}");
                }
                return Ok(exit::OK);
            }
            let progress = Progress::new(self.quiet);
            let mut missing = Vec::new();
            for s in images::STAND_INS {
                let tag = s.tag();
                match docker.image_id(&tag).await {
                    Some(id) => crate::outln!("{tag:<28} present {}", &id[..19.min(id.len())]),
                    None if self.build => missing.push(s),
                    None => crate::outln!("{tag:<28} missing (loadtest images --build makes it)"),
                }
            }
            // The missing ones at once, each on its own progress line.
            let built = futures_util::future::join_all(
                missing
                    .iter()
                    .map(|s| images::build_stand_in(&docker, s, &progress)),
            )
            .await;
            let mut first_error = None;
            for (s, r) in missing.iter().zip(built) {
                match r {
                    Ok(id) => crate::outln!("{:<28} built   {}", s.tag(), &id[..19.min(id.len())]),
                    Err(e) => {
                        crate::outln!("{:<28} FAILED", s.tag());
                        first_error.get_or_insert(e);
                    }
                }
            }
            match first_error {
                Some(e) => Err(Failure::Runtime(e)),
                None => Ok(exit::OK),
            }
        })
    }
}
