//! Docker Engine calls through bollard: `down -v`, `up` (build, networks,
//! volumes, containers in dependency order, health waits) and `ps`. Names and
//! labels follow docker compose's conventions so that `docker-compose -p P ps`
//! and `down -v` see the same world.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, NetworkCreateRequest,
    NetworkingConfig, PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, InspectContainerOptions, ListContainersOptions,
    ListNetworksOptions, ListVolumesOptions, LogsOptions, RemoveContainerOptions,
    RemoveImageOptions, RemoveVolumeOptions, StartContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::compose::{Condition, MountSource, Project, ServiceSpec};

pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_WORKING_DIR: &str = "com.docker.compose.project.working_dir";
/// Written on every object so compose's version checks accept them.
const COMPOSE_VERSION: &str = "1.29.2";

/// The Docker Engine API, through bollard.
pub struct DockerClient {
    pub api: Docker,
}

/// Where the Engine is expected, for error messages.
fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

impl DockerClient {
    /// Connects (DOCKER_HOST or the local socket) and checks the Engine answers.
    pub async fn connect() -> Result<DockerClient> {
        let addr = engine_address();
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| anyhow!("cannot use the Docker Engine at {addr} (DOCKER_HOST): {e}"))?;
        let docker = docker.with_timeout(Duration::from_secs(600));
        match tokio::time::timeout(Duration::from_secs(10), docker.version()).await {
            Ok(Ok(_)) => Ok(DockerClient { api: docker }),
            Ok(Err(e)) => Err(anyhow!(
                "the Docker Engine at {addr} does not answer: {e}; is the daemon running, and is DOCKER_HOST right?"
            )),
            Err(_) => Err(anyhow!("the Docker Engine at {addr} did not answer within 10 s")),
        }
    }

    fn project_filter(project: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_PROJECT}={project}")],
        )])
    }

    async fn project_containers(
        &self,
        project: &str,
    ) -> Result<Vec<bollard::models::ContainerSummary>> {
        Ok(self
            .api
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(Self::project_filter(project)),
                ..Default::default()
            }))
            .await?)
    }

    /// Like `docker compose down -v`: removes the project's containers (killed,
    /// the data is discarded), network and volumes. Returns what was removed.
    /// Removes the project's containers, network and volumes. With `owner`
    /// (the compose file's folder of this checkout), a project whose
    /// containers were made from another folder is refused, untouched: two
    /// checkouts or CI jobs on the same project name never take each other down.
    pub async fn down(&self, project: &str, owner: Option<&Path>) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let containers = self.project_containers(project).await?;
        if let Some(owner) = owner {
            let ours = owner.display().to_string();
            // A folder that no longer exists (a moved or deleted checkout) owns nothing.
            let other = containers.iter().find_map(|c| {
                let dir = c.labels.as_ref()?.get(LABEL_WORKING_DIR)?;
                (*dir != ours && Path::new(dir).exists()).then(|| dir.clone())
            });
            if let Some(dir) = other {
                bail!(
                    "project `{project}` belongs to another checkout ({dir}); nothing of it was touched. \
                     Give this one its own name (-p NAME or LOADTEST_PROJECT), or take the other down from there"
                );
            }
        }
        // The harness's observability services joined this project's
        // network: they go with it, or the network could not be removed.
        let mut containers = containers;
        containers.extend(self.project_containers(&observe_name(project)).await?);
        let removals = containers.iter().filter_map(|c| {
            let id = c.id.clone()?;
            let name = c
                .names
                .as_ref()
                .and_then(|n| n.first().cloned())
                .unwrap_or_else(|| id.clone());
            Some(async move {
                let r = self
                    .api
                    .remove_container(
                        &id,
                        Some(RemoveContainerOptions {
                            force: true,
                            v: true,
                            ..Default::default()
                        }),
                    )
                    .await;
                (name.trim_start_matches('/').to_string(), r)
            })
        });
        for (name, r) in futures_util::future::join_all(removals).await {
            match r {
                Ok(()) => removed.push(format!("container {name}")),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => return Err(anyhow!("cannot remove container {name}: {e}")),
            }
        }
        let networks = self
            .api
            .list_networks(Some(ListNetworksOptions {
                filters: Some(Self::project_filter(project)),
            }))
            .await?;
        for n in networks {
            let name = n.name.unwrap_or_default();
            self.api
                .remove_network(&name)
                .await
                .with_context(|| format!("cannot remove network {name}"))?;
            removed.push(format!("network {name}"));
        }
        let volumes = self
            .api
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(Self::project_filter(project)),
            }))
            .await?;
        for v in volumes.volumes.unwrap_or_default() {
            self.api
                .remove_volume(&v.name, Some(RemoveVolumeOptions { force: true }))
                .await
                .with_context(|| format!("cannot remove volume {}", v.name))?;
            removed.push(format!("volume {}", v.name));
        }
        Ok(removed)
    }

    pub async fn image_id(&self, image: &str) -> Option<String> {
        self.api.inspect_image(image).await.ok().and_then(|i| i.id)
    }

    /// Removes an image by name; false when there was none.
    pub async fn remove_image(&self, image: &str) -> Result<bool> {
        match self
            .api
            .remove_image(image, None::<RemoveImageOptions>, None)
            .await
        {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(anyhow!("cannot remove image {image}: {e}")),
        }
    }

    /// Builds an image from a tar context, streamed from its file in chunks;
    /// returns the image id. Build output goes to `log`.
    pub async fn build(
        &self,
        tag: &str,
        context: std::fs::File,
        dockerfile: &str,
        args: HashMap<String, String>,
        log: &mut dyn FnMut(&str),
    ) -> Result<String> {
        let opts = BuildImageOptions {
            dockerfile: dockerfile.to_string(),
            t: Some(tag.to_string()),
            rm: true,
            forcerm: true,
            buildargs: Some(args),
            ..Default::default()
        };
        let body = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(context));
        let mut stream = self
            .api
            .build_image(opts, None, Some(bollard::body_try_stream(body)));
        let mut last = Vec::new();
        while let Some(item) = stream.next().await {
            let info =
                item.map_err(|e| anyhow!("building {tag} failed: {e}\n{}", last.join("")))?;
            if let Some(s) = info.stream {
                log(&s);
                last.push(s);
                if last.len() > 20 {
                    last.remove(0);
                }
            }
            if let Some(e) = info.error_detail.and_then(|d| d.message) {
                bail!("building {tag} failed: {e}\n{}", last.join(""));
            }
        }
        self.image_id(tag)
            .await
            .ok_or_else(|| anyhow!("the build of {tag} finished but the image is missing"))
    }

    fn labels(p: &Project, extra: &[(&str, String)]) -> HashMap<String, String> {
        let mut m = HashMap::from([
            (LABEL_PROJECT.to_string(), p.name.clone()),
            (
                "com.docker.compose.version".to_string(),
                COMPOSE_VERSION.to_string(),
            ),
        ]);
        for (k, v) in extra {
            m.insert(k.to_string(), v.clone());
        }
        m
    }

    /// Creates the project's default network and named volumes.
    pub async fn create_shared(&self, p: &Project) -> Result<()> {
        if p.external_network.is_none() {
            self.create_network(p).await?;
        }
        for v in &p.volumes {
            self.api
                .create_volume(VolumeCreateRequest {
                    name: Some(p.volume_name(v)),
                    labels: Some(Self::labels(p, &[("com.docker.compose.volume", v.clone())])),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("cannot create volume {}", p.volume_name(v)))?;
        }
        Ok(())
    }

    async fn create_network(&self, p: &Project) -> Result<()> {
        self.api
            .create_network(NetworkCreateRequest {
                name: p.network_name(),
                driver: Some("bridge".into()),
                labels: Some(Self::labels(
                    p,
                    &[("com.docker.compose.network", "default".into())],
                )),
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot create network {}", p.network_name()))?;
        Ok(())
    }

    /// Creates and starts one service's container.
    pub async fn start_service(&self, p: &Project, s: &ServiceSpec) -> Result<String> {
        let name = p.container_name(&s.name);
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        let mut exposed = Vec::new();
        for port in &s.ports {
            let key = format!("{}/{}", port.container_port, port.protocol);
            exposed.push(key.clone());
            bindings
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: Some(port.host_ip.clone()),
                    host_port: Some(port.host_port.map(|p| p.to_string()).unwrap_or_default()),
                });
        }
        let binds: Vec<String> = s
            .mounts
            .iter()
            .map(|m| {
                let src = match &m.source {
                    MountSource::Volume(v) => p.volume_name(v),
                    MountSource::Bind(path) => path.display().to_string(),
                };
                format!("{src}:{}{}", m.target, if m.read_only { ":ro" } else { "" })
            })
            .collect();
        let labels = Self::labels(
            p,
            &[
                (LABEL_SERVICE, s.name.clone()),
                ("com.docker.compose.container-number", "1".into()),
                ("com.docker.compose.oneoff", "False".into()),
                ("com.docker.compose.config-hash", s.config_hash()),
                (LABEL_WORKING_DIR, p.working_dir.display().to_string()),
                (
                    "com.docker.compose.project.config_files",
                    p.config_file.display().to_string(),
                ),
            ],
        );
        let body = ContainerCreateBody {
            image: Some(s.image.clone()),
            env: Some(s.environment.clone()),
            cmd: s.command.clone(),
            entrypoint: s.entrypoint.clone(),
            labels: Some(labels),
            exposed_ports: Some(exposed),
            healthcheck: s.healthcheck.as_ref().map(|h| HealthConfig {
                test: Some(h.test.clone()),
                interval: Some(h.interval_ns),
                timeout: Some(h.timeout_ns),
                retries: Some(h.retries),
                start_period: Some(h.start_period_ns),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                binds: Some(binds),
                port_bindings: Some(bindings),
                network_mode: Some(p.network_name()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    p.network_name(),
                    EndpointSettings {
                        aliases: Some(vec![s.name.clone(), name.clone()]),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let created = self
            .api
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| anyhow!("service `{}`: cannot create container {name}: {e}", s.name))?;
        self.api
            .start_container(&created.id, None::<StartContainerOptions>)
            .await
            .map_err(|e| {
                let msg = e.to_string();
                if msg.contains("address already in use") || msg.contains("port is already allocated") {
                    let ports: Vec<String> = s.ports.iter().filter_map(|p| p.host_port.map(|h| format!("{}:{h}", if p.host_ip.is_empty() { "0.0.0.0" } else { &p.host_ip }))).collect();
                    anyhow!("service `{}`: a published port is already taken ({}); stop what uses it or change the port", s.name, ports.join(", "))
                } else {
                    anyhow!("service `{}`: cannot start container {name}: {msg}", s.name)
                }
            })?;
        Ok(created.id)
    }

    /// Tags of `repo` whose tag starts with `prefix` (e.g. the `ab-` images
    /// `loadtest ab` builds).
    pub async fn tags_with_prefix(&self, repo: &str, prefix: &str) -> Result<Vec<String>> {
        let filters = HashMap::from([("reference".to_string(), vec![format!("{repo}:{prefix}*")])]);
        let images = self
            .api
            .list_images(Some(bollard::query_parameters::ListImagesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| anyhow!("cannot list images: {e}"))?;
        Ok(images
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter(|t| t.starts_with(&format!("{repo}:{prefix}")))
            .collect())
    }

    /// Removes one container (stopped first, its anonymous volumes with it);
    /// a container that is not there is no error.
    pub async fn remove_container(&self, name: &str) -> Result<()> {
        match self
            .api
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(anyhow!("cannot remove container {name}: {e}")),
        }
    }

    /// The host port a container's `private` TCP port is published on.
    pub async fn published_port(&self, name: &str, private: u16) -> Result<u16> {
        let info = self
            .api
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .with_context(|| format!("cannot inspect container {name}"))?;
        info.network_settings
            .and_then(|n| n.ports)
            .and_then(|p| p.get(&format!("{private}/tcp")).cloned().flatten())
            .and_then(|b| b.into_iter().find_map(|b| b.host_port?.parse().ok()))
            .ok_or_else(|| anyhow!("container {name} publishes no port for {private}/tcp"))
    }

    /// The last `n` log lines of a container.
    pub async fn last_logs(&self, container: &str, n: usize) -> String {
        let mut s = self.api.logs(
            container,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                tail: n.to_string(),
                ..Default::default()
            }),
        );
        let mut out = String::new();
        while let Some(Ok(chunk)) = s.next().await {
            out.push_str(&chunk.to_string());
        }
        out
    }

    /// Waits until a service satisfies a `depends_on` condition, at most
    /// `timeout` after `since` (the moment its container started).
    pub async fn wait_for(
        &self,
        p: &Project,
        service: &str,
        cond: &Condition,
        since: Instant,
        timeout: Duration,
    ) -> Result<()> {
        let name = p.container_name(service);
        let deadline = since + timeout;
        loop {
            let info = self
                .api
                .inspect_container(&name, None::<InspectContainerOptions>)
                .await
                .with_context(|| format!("service `{service}`: container {name} disappeared"))?;
            let state = info.state.unwrap_or_default();
            let running = state.running.unwrap_or(false);
            let exit = state.exit_code.unwrap_or(0);
            let health = state.health.and_then(|h| h.status);
            use bollard::models::HealthStatusEnum as H;
            let done = match cond {
                Condition::Started => true,
                Condition::Healthy => match health {
                    Some(H::HEALTHY) => true,
                    Some(H::UNHEALTHY) => {
                        bail!(
                            "service `{service}` is unhealthy; last log lines of {name}:\n{}",
                            self.last_logs(&name, 20).await
                        )
                    }
                    None | Some(H::NONE) | Some(H::EMPTY) => running,
                    _ => false,
                },
                Condition::CompletedSuccessfully => {
                    if !running
                        && state
                            .finished_at
                            .as_deref()
                            .is_some_and(|f| !f.starts_with("0001"))
                    {
                        if exit != 0 {
                            bail!(
                                "service `{service}` exited with code {exit}; last log lines of {name}:\n{}",
                                self.last_logs(&name, 20).await
                            );
                        }
                        true
                    } else {
                        false
                    }
                }
            };
            if done {
                return Ok(());
            }
            if !running && *cond != Condition::CompletedSuccessfully {
                bail!(
                    "service `{service}` stopped (exit code {exit}) before it was ready; last log lines of {name}:\n{}",
                    self.last_logs(&name, 20).await
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "service `{service}` was not {} within {}s of its start; last log lines of {name}:\n{}",
                    match cond {
                        Condition::Healthy => "healthy",
                        Condition::Started => "started",
                        Condition::CompletedSuccessfully => "finished",
                    },
                    timeout.as_secs(),
                    self.last_logs(&name, 20).await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs a service once to its end, like `docker compose run --rm`: the
    /// container is removed afterwards whatever happens. Returns the exit code
    /// and the last lines of its output.
    pub async fn run_job(
        &self,
        p: &Project,
        s: &ServiceSpec,
        timeout: Duration,
    ) -> Result<(i64, String)> {
        let name = p.container_name(&s.name);
        self.remove_container(&name).await?;
        let outcome = async {
            self.start_service(p, s).await?;
            let mut wait = self.api.wait_container(
                &name,
                None::<bollard::query_parameters::WaitContainerOptions>,
            );
            let code = match tokio::time::timeout(timeout, wait.next()).await {
                Err(_) => bail!(
                    "service `{}` did not finish within {}s",
                    s.name,
                    timeout.as_secs()
                ),
                Ok(Some(Ok(r))) => r.status_code,
                Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError {
                    code, ..
                }))) => code,
                Ok(Some(Err(e))) => bail!("waiting for service `{}`: {e}", s.name),
                Ok(None) => bail!(
                    "waiting for service `{}`: the Engine closed the stream",
                    s.name
                ),
            };
            Ok((code, self.last_logs(&name, 30).await))
        }
        .await;
        let _ = self.remove_container(&name).await;
        outcome
    }

    /// Each running service's address on the project's network, so names
    /// that only resolve inside the stack can be reached from this process.
    pub async fn service_addresses(
        &self,
        project: &str,
        network: &str,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        let mut out = std::collections::BTreeMap::new();
        for c in self.project_containers(project).await? {
            let service = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_SERVICE).cloned())
                .unwrap_or_default();
            let ip = c
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|n| n.get(network).and_then(|e| e.ip_address.clone()))
                .filter(|ip| !ip.is_empty());
            if let (false, Some(ip)) = (service.is_empty(), ip) {
                out.insert(service, ip);
            }
        }
        Ok(out)
    }

    /// Services of the project: `(service, container, state, health, ports)`.
    pub async fn ps(&self, project: &str) -> Result<Vec<PsRow>> {
        let containers = self.project_containers(project).await?;
        let mut rows: Vec<PsRow> = containers
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                let status = c.status.unwrap_or_default();
                let health = if status.contains("(healthy)") {
                    "healthy"
                } else if status.contains("(unhealthy)") {
                    "unhealthy"
                } else if status.contains("(health: starting)") {
                    "starting"
                } else {
                    "-"
                };
                let mut ports: Vec<String> = c
                    .ports
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|p| {
                        Some(format!(
                            "{}:{}->{}",
                            p.ip.clone().unwrap_or_default(),
                            p.public_port?,
                            p.private_port
                        ))
                    })
                    .collect();
                ports.sort();
                ports.dedup();
                PsRow {
                    service: labels.get(LABEL_SERVICE).cloned().unwrap_or_default(),
                    container: c
                        .names
                        .and_then(|n| n.first().cloned())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    health: health.to_string(),
                    ports: ports.join(", "),
                }
            })
            .collect();
        rows.sort_by(|a, b| a.service.cmp(&b.service));
        Ok(rows)
    }
}

#[derive(Debug, Clone)]
pub struct PsRow {
    pub service: String,
    pub container: String,
    pub state: String,
    pub health: String,
    pub ports: String,
}

/// The name of the harness's observability project beside the project
/// named `stack` (removed with it).
pub fn observe_name(stack: &str) -> String {
    format!("{stack}-observe")
}
