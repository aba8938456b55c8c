//! `up`: images (built, pulled, or local stand-ins), then network, volumes and
//! containers in dependency order, independent services in parallel, then the
//! health waits. A failure removes what was made unless asked to keep it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;

use super::compose::{Condition, Project, ServiceSpec};
use super::docker::DockerClient;
use super::progress::Progress;
use super::{context, images};

pub struct UpOptions {
    /// How long a service may take to become ready.
    pub timeout: Duration,
    /// Leave the containers of a failed `up` for debugging.
    pub keep_on_failure: bool,
}

#[derive(Debug)]
pub struct UpReport {
    /// Service -> image id it runs.
    pub images: BTreeMap<String, String>,
    pub elapsed: Duration,
}

/// An image ready to run: the reference to create containers from, and its id.
pub struct Ready {
    pub image: String,
    pub id: String,
}

/// Makes sure a service's image exists: builds `build:` services (every time,
/// so the image reflects the checkout; the Engine's cache keeps it quick),
/// pulls, or, when the pull fails, makes and uses the local stand-in.
pub async fn ensure_image(
    docker: &DockerClient,
    p: &Project,
    s: &ServiceSpec,
    progress: &Progress,
) -> Result<Ready> {
    match ensure_image_id(docker, p, s, progress).await {
        Ok(id) => Ok(Ready {
            image: s.image.clone(),
            id,
        }),
        Err(e) => match images::stand_in_for(&s.image) {
            // The pull's own line said which stand-in replaces it.
            Some(si) if s.build.is_none() => {
                let id = images::build_stand_in(docker, si, progress).await?;
                Ok(Ready {
                    image: si.tag(),
                    id,
                })
            }
            _ => Err(e),
        },
    }
}

async fn ensure_image_id(
    docker: &DockerClient,
    p: &Project,
    s: &ServiceSpec,
    progress: &Progress,
) -> Result<String> {
    if let Some(b) = &s.build {
        let df_path = b.context.join(&b.dockerfile);
        let dockerfile = std::fs::read_to_string(&df_path)
            .with_context(|| format!("service `{}`: cannot read {}", s.name, df_path.display()))?;
        for base in images::stand_in_bases(&dockerfile) {
            images::build_stand_in(docker, base, progress).await?;
        }
        // With suffixed stand-in tags the build starts FROM those: a copy of
        // the Dockerfile that names them travels in the context.
        let retagged = images::retag_dockerfile(&dockerfile);
        let (ctx, dockerfile_name) = match &retagged {
            Some(text) => (
                context::tar_context(&b.context, &[(RETAGGED_DOCKERFILE, text.as_bytes())])?,
                RETAGGED_DOCKERFILE.to_string(),
            ),
            None => (context::tar_context(&b.context, &[])?, b.dockerfile.clone()),
        };
        let task = progress.task(&s.image, &format!("build from {}", b.context.display()));
        let args: HashMap<String, String> = b.args.clone().into_iter().collect();
        return match docker
            .build(&s.image, ctx, &dockerfile_name, args, &mut |l| task.log(l))
            .await
        {
            Ok(id) => {
                task.done(&format!("built for service `{}`", s.name));
                Ok(id)
            }
            Err(e) => {
                task.failed("build failed");
                Err(anyhow!(
                    "service `{}` ({}): {e}\n(full build log: {})",
                    s.name,
                    p.config_file.display(),
                    task.log_file().display()
                ))
            }
        };
    }
    if let Some(id) = docker.image_id(&s.image).await {
        return Ok(id);
    }
    if let Some(si) = images::stand_in(&s.image) {
        return images::build_stand_in(docker, si, progress).await;
    }
    let task = progress.task(&s.image, "pull");
    let pull = async {
        let mut st = docker.api.create_image(
            Some(CreateImageOptions {
                from_image: Some(s.image.clone()),
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(item) = st.next().await {
            let info = item?;
            if let Some(status) = info.status {
                task.log(&format!("{status}\n"));
            }
        }
        Ok::<_, bollard::errors::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(30), pull).await {
        Ok(Ok(())) => task.done("pulled"),
        Ok(Err(e)) => {
            match images::stand_in_for(&s.image).filter(|_| s.build.is_none()) {
                Some(si) => task.failed(&format!(
                    "cannot be pulled: service `{}` uses the local stand-in {}",
                    s.name,
                    si.tag()
                )),
                None => task.failed("cannot be pulled"),
            }
            bail!(
                "service `{}`: image {} is not present and cannot be pulled ({e}); without a registry, point the \
                 service's image variable in the compose file at a local image (`loadtest images` lists the stand-ins), \
                 or leave out the profile that enables the service",
                s.name,
                s.image
            )
        }
        Err(_) => {
            task.failed("pull timed out");
            bail!(
                "service `{}`: pulling image {} took over 30 s; is a registry reachable?",
                s.name,
                s.image
            )
        }
    }
    docker.image_id(&s.image).await.ok_or_else(|| {
        anyhow!(
            "service `{}`: image {} missing after the pull",
            s.name,
            s.image
        )
    })
}

/// The name of the Dockerfile copy whose `FROM` lines name suffixed stand-in tags.
const RETAGGED_DOCKERFILE: &str = ".loadtest-standin.Dockerfile";

/// Fails early, naming the port and service, when a published port is taken.
fn check_ports(p: &Project) -> Result<()> {
    for s in &p.services {
        for port in &s.ports {
            let Some(hp) = port.host_port else { continue };
            if port.protocol != "tcp" {
                continue;
            }
            let ip = if port.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                &port.host_ip
            };
            if let Err(e) = std::net::TcpListener::bind((ip, hp)) {
                bail!(
                    "service `{}`: host port {ip}:{hp} is already in use ({e}); stop what listens there or change the port in {}",
                    s.name,
                    p.config_file.display()
                );
            }
        }
    }
    Ok(())
}

/// When each service's container started, shared by the services' tasks so
/// that a dependant's wait counts from its dependency's start.
#[derive(Default, Clone)]
struct Starts {
    at: HashMap<String, Instant>,
    failed: bool,
}

async fn run_service(
    docker: &DockerClient,
    p: &Project,
    s: &ServiceSpec,
    timeout: Duration,
    starts: &tokio::sync::watch::Sender<Starts>,
) -> Result<Instant> {
    for (dep, cond) in &s.depends_on {
        let mut rx = starts.subscribe();
        let since = {
            let st = rx
                .wait_for(|v| v.failed || v.at.contains_key(dep))
                .await
                .map_err(|_| anyhow!("not started: `up` was abandoned"))?;
            if st.failed {
                bail!("not started: another service failed");
            }
            st.at[dep]
        };
        docker
            .wait_for(p, dep, cond, since, timeout)
            .await
            .map_err(|e| anyhow!("service `{}` waits for `{dep}`: {e}", s.name))?;
    }
    docker.start_service(p, s).await?;
    Ok(Instant::now())
}

/// Brings the project up. The project must not have containers yet.
pub async fn up(
    docker: &DockerClient,
    p: &Project,
    opts: &UpOptions,
    progress: &Progress,
) -> Result<UpReport> {
    let started = Instant::now();
    let existing = docker.ps(&p.name).await?;
    if !existing.is_empty() {
        bail!(
            "project `{}` already has {} container(s); run `loadtest down` first (or `loadtest up --fresh`)",
            p.name,
            existing.len()
        );
    }
    p.start_order()?;
    let mut images = BTreeMap::new();
    // Every image at once, as compose does; each has its own progress line.
    let readies = futures_util::future::join_all(
        p.services
            .iter()
            .map(|s| ensure_image(docker, p, s, progress)),
    )
    .await;
    // Services may end up on a stand-in image: run from a copy that says so.
    let mut owned = p.clone();
    for (svc, ready) in owned.services.iter_mut().zip(readies) {
        let ready = ready?;
        images.insert(svc.name.clone(), ready.id);
        svc.image = ready.image;
    }
    let p = &owned;
    check_ports(p)?;
    let result = async {
        docker.create_shared(p).await?;
        let (starts, _) = tokio::sync::watch::channel(Starts::default());
        let tasks = p.services.iter().map(|s| {
            let starts = &starts;
            async move {
                let r = run_service(docker, p, s, opts.timeout, starts).await;
                starts.send_modify(|v| match &r {
                    Ok(at) => {
                        v.at.insert(s.name.clone(), *at);
                    }
                    Err(_) => v.failed = true,
                });
                r
            }
        });
        let results = futures_util::future::join_all(tasks).await;
        // The first real failure, not the "another service failed" echoes.
        let mut errors: Vec<anyhow::Error> = Vec::new();
        for r in results {
            if let Err(e) = r {
                errors.push(e);
            }
        }
        errors.sort_by_key(|e| e.to_string().contains("another service failed"));
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        // Every service with a healthcheck must be healthy before the load
        // starts, each within the timeout counted from its own start (image
        // builds before it do not eat into it).
        let at = starts.borrow().at.clone();
        for s in p.services.iter().filter(|s| s.healthcheck.is_some()) {
            let since = at.get(&s.name).copied().unwrap_or_else(Instant::now);
            docker
                .wait_for(p, &s.name, &Condition::Healthy, since, opts.timeout)
                .await?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = result {
        if opts.keep_on_failure {
            return Err(e.context(format!(
                "the containers of project `{}` were kept for debugging (loadtest down removes them)",
                p.name
            )));
        }
        let removed = docker
            .down(&p.name, Some(&p.working_dir))
            .await
            .unwrap_or_default();
        return Err(e.context(format!(
            "up failed; removed what it had made ({} objects); pass --keep-on-failure to keep them",
            removed.len()
        )));
    }
    Ok(UpReport {
        images,
        elapsed: started.elapsed(),
    })
}
