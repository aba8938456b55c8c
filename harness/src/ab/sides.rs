//! The two sides of the trials: building each side's image (B from the
//! working tree, A in a kept worktree of its commit) and their containers,
//! new for every block.

use std::path::Path;
use std::time::Instant;

use anyhow::anyhow;

use super::git;
use super::trials::{Context, Plan};
use crate::compare::ab::{AbResult, SideInfo};
use crate::db::reset::Strategy;
use crate::exit::{Classify, Failure};
use crate::stack::compose::{self, PortSpec, ServiceSpec};
use crate::stack::docker::DockerClient;
use crate::stack::progress::Progress;
use crate::stack::up;

impl Context {
    fn image_tag(&self, label: &str) -> String {
        let base = self.service.image.split(':').next().unwrap_or("app");
        format!("{base}:ab-{label}")
    }

    /// Builds the working tree (the build command, then the image).
    pub fn build_head(&self, commit: &str) -> Result<SideInfo, Failure> {
        let log = crate::stack::progress::file_for("ab-build-head", "log");
        self.say(&format!(
            "build B: `{}` in the working tree",
            self.cfg.ab_build
        ));
        git::build(&self.repo, &self.cfg.ab_build, &log)
            .map_err(|e| Failure::Usage(anyhow!("the working tree does not build: {e:#}")))?;
        let tag = self.image_tag(&format!("head-{}", crate::report::ab::short(commit)));
        let id = self
            .image(&tag, None)
            .map_err(|e| Failure::Usage(anyhow!("the working tree's image does not build: {e}")))?;
        Ok(SideInfo {
            reference: "working tree".into(),
            commit: commit.to_string(),
            image: tag,
            image_id: id,
        })
    }

    /// Builds a commit in the kept worktree (the build command, then the image).
    pub fn build_base(&self, reference: &str, sha: &str) -> Result<SideInfo, Failure> {
        let wt = git::base_worktree(&self.repo);
        self.say(&format!(
            "build A: {} in {} (kept between runs, so later builds are quick)",
            crate::report::ab::short(sha),
            wt.display()
        ));
        let named = |e: anyhow::Error| {
            Failure::Usage(anyhow!(
                "the base `{reference}` ({}) does not build: {e:#}",
                crate::report::ab::short(sha)
            ))
        };
        git::worktree(&self.repo, &wt, sha).map_err(named)?;
        let t = Instant::now();
        match git::seed_build_cache(&self.repo, &wt) {
            Ok(true) => self.say(&format!(
                "build A: the checkout's compiled dependencies copied in {:.1}s (only the workspace's crates are compiled again)",
                t.elapsed().as_secs_f64()
            )),
            Ok(false) => {}
            Err(e) => self.say(&format!(
                "warning: the checkout's compiled dependencies were not copied ({e:#}); A builds from scratch"
            )),
        }
        let log = crate::stack::progress::file_for("ab-build-base", "log");
        git::build(&wt, &self.cfg.ab_build, &log).map_err(named)?;
        let tag = self.image_tag(&format!("base-{}", crate::report::ab::short(sha)));
        let id = self.image(&tag, Some(&wt)).map_err(named)?;
        Ok(SideInfo {
            reference: reference.to_string(),
            commit: sha.to_string(),
            image: tag,
            image_id: id,
        })
    }

    /// Builds the service's image as `tag`, from the checkout or from the
    /// same place inside another source tree.
    fn image(&self, tag: &str, tree: Option<&Path>) -> anyhow::Result<String> {
        let mut svc = self.service.clone();
        svc.image = tag.to_string();
        if let (Some(tree), Some(b)) = (tree, svc.build.as_mut()) {
            let rel = b.context.strip_prefix(&self.repo).map_err(|_| {
                anyhow!(
                    "the build context {} lies outside the repository {}",
                    b.context.display(),
                    self.repo.display()
                )
            })?;
            b.context = tree.join(rel);
        }
        let rt = crate::runner::runtime().map_err(|e| anyhow!("{e}"))?;
        rt.block_on(async {
            let docker = DockerClient::connect().await?;
            let progress = Progress::new(self.quiet);
            up::ensure_image(&docker, &self.project, &svc, &progress)
                .await
                .map(|r| r.id)
        })
    }

    /// Brings the stack up with its database template, starts one app
    /// container per side and runs the trials; the app containers are
    /// removed on every path.
    pub(super) fn trials_served(
        &self,
        plan: Plan,
        live: Option<&crate::view::live::Live>,
    ) -> Result<AbResult, Failure> {
        let rt = crate::runner::runtime()?;
        rt.block_on(crate::prepare::prepare_stack(
            &self.project,
            &self.cfg,
            Strategy::Template,
            false,
            self.quiet,
        ))?;
        let docker = rt.block_on(DockerClient::connect()).runtime()?;
        let names = [self.side_service("ab-a"), self.side_service("ab-b")];
        let cleanup = || {
            rt.block_on(async {
                for s in &names {
                    if let Err(e) = docker
                        .remove_container(&self.project.container_name(&s.name))
                        .await
                    {
                        crate::errln!("warning: {e}");
                    }
                }
            });
        };
        let images = [plan.base.image.clone(), plan.head.image.clone()];
        // Fresh containers for every block, created in random order: what
        // sets one container apart from the other (its start, where its
        // threads and memory landed) must not stay with one side.
        let restart = |b_first: bool| {
            rt.block_on(self.start_apps(&docker, &names, [&images[0], &images[1]], b_first))
        };
        let urls = match restart(false) {
            Ok(u) => u,
            Err(e) => {
                cleanup();
                return Err(Failure::Runtime(e));
            }
        };
        self.say(&format!(
            "apps: A at {}, B at {} (new containers for every block)",
            urls[0], urls[1]
        ));
        let r = self.trial_loop(&rt, urls, &restart, plan, live);
        cleanup();
        if self.down {
            rt.block_on(docker.down(&self.project.name, Some(&self.project.working_dir)))
                .runtime()?;
            self.say(&format!(
                "stack: project {} taken down (--down)",
                self.project.name
            ));
        } else {
            self.say(&format!(
                "stack: project {} left up; `loadtest down -p {}` removes it",
                self.project.name, self.project.name
            ));
        }
        r
    }

    /// The service as one side's container: its own name and image, and its
    /// port published on a free port of 127.0.0.1.
    fn side_service(&self, name: &str) -> ServiceSpec {
        let mut s = self.service.clone();
        s.name = name.to_string();
        s.build = None;
        s.depends_on.clear();
        let private = s
            .ports
            .iter()
            .find(|p| p.protocol == "tcp")
            .map(|p| p.container_port)
            .unwrap_or(8080);
        s.ports = vec![PortSpec {
            host_ip: "127.0.0.1".into(),
            host_port: None,
            container_port: private,
            protocol: "tcp".into(),
        }];
        s
    }

    async fn start_apps(
        &self,
        docker: &DockerClient,
        specs: &[ServiceSpec; 2],
        images: [&String; 2],
        b_first: bool,
    ) -> anyhow::Result<[String; 2]> {
        let mut urls = [String::new(), String::new()];
        let order = if b_first { [1, 0] } else { [0, 1] };
        for i in order {
            let mut s = specs[i].clone();
            s.image = images[i].clone();
            let name = self.project.container_name(&s.name);
            docker.remove_container(&name).await?;
            let t = Instant::now();
            docker.start_service(&self.project, &s).await?;
            docker
                .wait_for(
                    &self.project,
                    &s.name,
                    &compose::Condition::Healthy,
                    t,
                    self.cfg.wait_timeout,
                )
                .await?;
            let port = docker
                .published_port(&name, s.ports[0].container_port)
                .await?;
            urls[i] = format!("http://127.0.0.1:{port}");
        }
        Ok(urls)
    }
}
