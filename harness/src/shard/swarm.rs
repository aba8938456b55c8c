//! Shards as the tasks of a Docker Swarm replicated job, through the Engine
//! API: an image of this very binary (on the Debian stand-in base: no
//! registry needed on one node), the scenario as a Swarm config, one job with
//! `MaxConcurrent = TotalCompletions = N`, restart condition none, each task's
//! shard from its slot. Results come back to the coordinator over the
//! network; the service and config are removed at the end whatever happened.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use bollard::models::{
    ConfigSpec, NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicatedJob, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecConfigs,
    TaskSpecContainerSpecFile1, TaskSpecPlacement, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{ListNodesOptions, ListTasksOptions};
use sha2::{Digest, Sha256};

use crate::stack::docker::DockerClient;
use crate::stack::progress::Progress;

/// The label every object of a distributed run carries.
pub const LABEL_RUN: &str = "io.loadtest.distribute";

/// What the swarm runs.
pub struct Job<'a> {
    pub name: String,
    pub image: String,
    pub scenario: &'a Path,
    pub shards: usize,
    /// The coordinator as the tasks reach it (HOST:PORT).
    pub coordinator: String,
    pub target: Option<String>,
    pub run_name: String,
    pub vus: Option<u32>,
    pub duration: Option<Duration>,
}

/// The swarm this Engine belongs to: refused unless it is an active manager.
pub async fn check_manager(docker: &DockerClient) -> Result<(String, usize)> {
    let info = docker
        .api
        .info()
        .await
        .context("cannot ask the Engine about its swarm")?;
    let swarm = info.swarm.unwrap_or_default();
    let state = swarm
        .local_node_state
        .map(|s| s.to_string())
        .unwrap_or_default();
    if state != "active" || swarm.control_available != Some(true) {
        bail!(
            "this Docker Engine is not a swarm manager (swarm state: {}): run `docker swarm init` \
             (one node: `docker swarm init --advertise-addr 127.0.0.1`) or point DOCKER_HOST at a manager",
            if state.is_empty() { "unknown" } else { &state }
        );
    }
    let nodes = docker
        .api
        .list_nodes(None::<ListNodesOptions>)
        .await
        .context("cannot list the swarm's nodes")?;
    let ready = nodes
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.state.as_ref())
                .is_some_and(|s| s.to_string() == "ready")
        })
        .count();
    Ok((
        swarm.node_addr.unwrap_or_else(|| "127.0.0.1".into()),
        ready.max(1),
    ))
}

/// An image holding this binary, tagged by its content so that a binary is
/// built into an image once.
pub async fn harness_image(docker: &DockerClient, quiet: bool) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find this program's own file")?;
    let mut hasher = Sha256::new();
    let mut f =
        std::fs::File::open(&exe).with_context(|| format!("cannot read {}", exe.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let tag = format!("loadtest/harness:{}", &hex::encode(hasher.finalize())[..16]);
    if docker.image_id(&tag).await.is_some() {
        return Ok(tag);
    }
    let progress = Progress::new(quiet);
    let base = crate::stack::images::stand_in("loadtest/debian:bookworm")
        .expect("the Debian stand-in is known");
    crate::stack::images::build_stand_in(docker, base, &progress).await?;
    let task = progress.task(&tag, "image of this loadtest binary");
    let dockerfile = format!(
        "FROM {}\nCOPY loadtest /usr/local/bin/loadtest\nWORKDIR /work\nENTRYPOINT [\"loadtest\"]\n",
        base.tag()
    );
    let context = {
        let mut b = tar::Builder::new(crate::stack::context::scratch_file()?);
        let mut h = tar::Header::new_gnu();
        h.set_size(dockerfile.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "Dockerfile", dockerfile.as_bytes())?;
        // A plain entry: a sparse one (as tar makes of some binaries) is
        // refused by the Engine.
        let bin = std::fs::File::open(&exe)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(bin.metadata()?.len());
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, "loadtest", bin)?;
        crate::stack::context::rewound(b.into_inner()?)?
    };
    let built = docker
        .build(&tag, context, "Dockerfile", HashMap::new(), &mut |_| {})
        .await;
    match built {
        Ok(_) => {
            task.done("built");
            // Images of earlier builds of the binary are not needed again.
            if let Ok(old) = docker.tags_with_prefix("loadtest/harness", "").await {
                for t in old.iter().filter(|t| **t != tag) {
                    let _ = docker.remove_image(t).await;
                }
            }
            Ok(tag)
        }
        Err(e) => {
            task.failed("failed");
            Err(e)
        }
    }
}

/// Creates the scenario's config and the job; returns the config's id.
pub async fn start(docker: &DockerClient, job: &Job<'_>, one_per_node: bool) -> Result<String> {
    let text = std::fs::read(job.scenario)
        .with_context(|| format!("cannot read {}", job.scenario.display()))?;
    if text.len() > 500 * 1024 {
        bail!(
            "{} is {} KB: a Swarm config holds at most 500 KB",
            job.scenario.display(),
            text.len() / 1024
        );
    }
    let labels = HashMap::from([(LABEL_RUN.to_string(), job.name.clone())]);
    let config = docker
        .api
        .create_config(ConfigSpec {
            name: Some(job.name.clone()),
            labels: Some(labels.clone()),
            data: Some(base64::engine::general_purpose::STANDARD.encode(&text)),
            ..Default::default()
        })
        .await
        .context("cannot create the scenario's Swarm config")?
        .id;
    let file = job
        .scenario
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario.toml".into());
    let n = job.shards;
    let mut args = vec![
        "run".to_string(),
        "-s".into(),
        format!("/scenario/{file}"),
        "-r".into(),
        format!("{}-shard", job.run_name),
        "-o".into(),
        "/work/out".into(),
        "--no-html".into(),
        "-q".into(),
    ];
    args.extend(super::load_flags(job.vus, job.duration));
    let mut env = vec![
        // Each task's slot (0-based for a replicated job) is its shard.
        format!("LOADTEST_SHARD={{{{.Task.Slot}}}}/{n}"),
        // Slot 0 of a job is rendered as the node's id: the task says so.
        format!("LOADTEST_SWARM_JOB={}", job.name),
        format!("LOADTEST_COORDINATOR={}", job.coordinator),
    ];
    if let Some(t) = &job.target {
        env.push(format!("LOADTEST_TARGET={t}"));
    }
    let spec = ServiceSpec {
        name: Some(job.name.clone()),
        labels: Some(labels),
        mode: Some(ServiceSpecMode {
            // The API runs one task at a time unless told otherwise.
            replicated_job: Some(ServiceSpecModeReplicatedJob {
                max_concurrent: Some(n as i64),
                total_completions: Some(n as i64),
            }),
            ..Default::default()
        }),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(job.image.clone()),
                args: Some(args),
                env: Some(env),
                configs: Some(vec![TaskSpecContainerSpecConfigs {
                    file: Some(TaskSpecContainerSpecFile1 {
                        name: Some(format!("/scenario/{file}")),
                        uid: Some("0".into()),
                        gid: Some("0".into()),
                        mode: Some(0o444),
                    }),
                    config_id: Some(config.clone()),
                    config_name: Some(job.name.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            // A shard is never run again behind the user's back.
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            placement: one_per_node.then(|| TaskSpecPlacement {
                max_replicas: Some(1),
                ..Default::default()
            }),
            // The host's network: the tasks reach the coordinator and a
            // target on the node's own addresses.
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some("host".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Err(e) = docker.api.create_service(spec, None).await {
        let _ = docker.api.delete_config(&config).await;
        bail!("cannot create the swarm job {}: {e}", job.name);
    }
    Ok(config)
}

/// Watches the job's tasks until `started` is set: a task the swarm could
/// not run (no such image, no node fits) fails the run before any load.
pub async fn watch_before_start(
    docker: &DockerClient,
    name: &str,
    started: Arc<AtomicBool>,
) -> anyhow::Error {
    let filters = HashMap::from([("service".to_string(), vec![name.to_string()])]);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if started.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        let Ok(tasks) = docker
            .api
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters.clone()),
            }))
            .await
        else {
            continue;
        };
        for t in tasks {
            let st = t.status.unwrap_or_default();
            if matches!(st.state, Some(TaskState::FAILED | TaskState::REJECTED)) {
                return anyhow!(
                    "a task of {name} (slot {}) could not run: {}",
                    t.slot.unwrap_or_default(),
                    st.err.or(st.message).unwrap_or_default()
                );
            }
        }
    }
}

/// The job's tasks as the swarm reports them: (slot, state, error).
pub async fn tasks(docker: &DockerClient, name: &str) -> Vec<(i64, String, String)> {
    let filters = HashMap::from([("service".to_string(), vec![name.to_string()])]);
    docker
        .api
        .list_tasks(Some(ListTasksOptions {
            filters: Some(filters),
        }))
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let st = t.status.unwrap_or_default();
            (
                t.slot.unwrap_or_default(),
                st.state.map(|s| s.to_string()).unwrap_or_default(),
                st.err.unwrap_or_default(),
            )
        })
        .collect()
}

/// Removes the job and its config (what is already gone is fine).
pub async fn remove(docker: &DockerClient, name: &str, config: Option<&str>) -> Result<()> {
    let service = docker.api.delete_service(name).await;
    if let Some(c) = config {
        // The config is in use until the service's tasks are gone.
        for _ in 0..40 {
            match docker.api.delete_config(c).await {
                Ok(()) => break,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
    match service {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(anyhow!("cannot remove the swarm job {name}: {e}")),
    }
}
