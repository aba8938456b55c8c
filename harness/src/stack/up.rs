//! `up`: images (built, pulled, or local stand-ins), then network, volumes and
//! containers in dependency order, independent services in parallel, then the
//! health waits. A failure removes what was made unless asked to keep it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bollard::query_parameters::{CreateImageOptions, InspectContainerOptions};
use futures_util::StreamExt;

use super::compose::{Condition, Project, ServiceSpec};
use super::engine::Engine;
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
    engine: &Engine,
    p: &Project,
    s: &ServiceSpec,
    log: &mut dyn FnMut(&str),
) -> Result<Ready> {
    match ensure_image_id(engine, p, s, log).await {
        Ok(id) => Ok(Ready {
            image: s.image.clone(),
            id,
        }),
        Err(e) => match images::stand_in_for(&s.image) {
            Some(si) if s.build.is_none() => {
                log(&format!(
                    "service `{}`: {} cannot be pulled; using the local stand-in {}\n",
                    s.name, s.image, si.image
                ));
                let id = match engine.image_id(si.image).await {
                    Some(id) => id,
                    None => images::build_stand_in(engine, si, log).await?,
                };
                Ok(Ready {
                    image: si.image.to_string(),
                    id,
                })
            }
            _ => Err(e),
        },
    }
}

async fn ensure_image_id(
    engine: &Engine,
    p: &Project,
    s: &ServiceSpec,
    log: &mut dyn FnMut(&str),
) -> Result<String> {
    if let Some(b) = &s.build {
        let df_path = b.context.join(&b.dockerfile);
        let dockerfile = std::fs::read_to_string(&df_path)
            .with_context(|| format!("service `{}`: cannot read {}", s.name, df_path.display()))?;
        for base in images::stand_in_bases(&dockerfile) {
            if engine.image_id(base.image).await.is_none() {
                images::build_stand_in(engine, base, log).await?;
            }
        }
        let ctx = context::tar_context(&b.context, &[])?;
        log(&format!(
            "building {} for service `{}` from {}\n",
            s.image,
            s.name,
            b.context.display()
        ));
        let args: HashMap<String, String> = b.args.clone().into_iter().collect();
        return engine
            .build(&s.image, ctx, &b.dockerfile, args, log)
            .await
            .map_err(|e| anyhow!("service `{}` ({}): {e}", s.name, p.config_file.display()));
    }
    if let Some(id) = engine.image_id(&s.image).await {
        return Ok(id);
    }
    if let Some(si) = images::stand_in(&s.image) {
        return images::build_stand_in(engine, si, log).await;
    }
    log(&format!("pulling {}\n", s.image));
    let pull = async {
        let mut st = engine.docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(s.image.clone()),
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(item) = st.next().await {
            item?;
        }
        Ok::<_, bollard::errors::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(30), pull).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => bail!(
            "service `{}`: image {} is not present and cannot be pulled ({e}); without a registry, point the \
             service's image variable in the compose file at a local image (`loadtest images` lists the stand-ins), \
             or leave out the profile that enables the service",
            s.name,
            s.image
        ),
        Err(_) => bail!("service `{}`: pulling image {} took over 30 s; is a registry reachable?", s.name, s.image),
    }
    engine.image_id(&s.image).await.ok_or_else(|| {
        anyhow!(
            "service `{}`: image {} missing after the pull",
            s.name,
            s.image
        )
    })
}

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

/// Waits until a service's container exists (its own task may still be creating it).
async fn wait_created(engine: &Engine, name: &str, deadline: Instant) -> Result<()> {
    loop {
        match engine
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(_) => return Ok(()),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => bail!("container {name} was never created: {e}"),
        }
    }
}

async fn run_service(
    engine: &Engine,
    p: &Project,
    s: &ServiceSpec,
    timeout: Duration,
    failed: &tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    for (dep, cond) in &s.depends_on {
        if *failed.borrow() {
            bail!("not started: another service failed");
        }
        wait_created(engine, &p.container_name(dep), deadline).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        engine
            .wait_for(p, dep, cond, left)
            .await
            .map_err(|e| anyhow!("service `{}` waits for `{dep}`: {e}", s.name))?;
    }
    engine.start_service(p, s).await?;
    Ok(())
}

/// Brings the project up. The project must not have containers yet.
pub async fn up(
    engine: &Engine,
    p: &Project,
    opts: &UpOptions,
    log: &mut dyn FnMut(&str),
) -> Result<UpReport> {
    let started = Instant::now();
    let existing = engine.ps(&p.name).await?;
    if !existing.is_empty() {
        bail!(
            "project `{}` already has {} container(s); run `loadtest down` first (or `loadtest up --fresh`)",
            p.name,
            existing.len()
        );
    }
    p.start_order()?;
    let mut images = BTreeMap::new();
    // Services may end up on a stand-in image: run from a copy that says so.
    let mut owned = p.clone();
    for i in 0..owned.services.len() {
        let ready = ensure_image(engine, &owned, &owned.services[i], log).await?;
        images.insert(owned.services[i].name.clone(), ready.id);
        owned.services[i].image = ready.image;
    }
    let p = &owned;
    check_ports(p)?;
    let result = async {
        engine.create_shared(p).await?;
        let (fail_tx, fail_rx) = tokio::sync::watch::channel(false);
        let tasks = p.services.iter().map(|s| {
            let rx = fail_rx.clone();
            let tx = &fail_tx;
            async move {
                let r = run_service(engine, p, s, opts.timeout, &rx).await;
                if r.is_err() {
                    let _ = tx.send(true);
                }
                r
            }
        });
        let results = futures_util::future::join_all(tasks).await;
        // The first real failure, not the "another service failed" echoes.
        let mut errors: Vec<anyhow::Error> = results.into_iter().filter_map(|r| r.err()).collect();
        errors.sort_by_key(|e| e.to_string().contains("another service failed"));
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        // Every service with a healthcheck must be healthy before the load starts.
        for s in p.services.iter().filter(|s| s.healthcheck.is_some()) {
            let left = (started + opts.timeout)
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1));
            engine
                .wait_for(p, &s.name, &Condition::Healthy, left)
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
        let removed = engine.down(&p.name).await.unwrap_or_default();
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
