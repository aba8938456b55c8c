//! Shards on Kubernetes, rendered for the user's `kubectl apply` (this tool
//! reaches no cluster): a ConfigMap with the scenario, a coordinator Pod
//! (`loadtest distribute --on external`: it starts no shard, it waits for
//! them, starts them together and merges), a headless Service naming it, and
//! an Indexed Job whose pods are the shards (`JOB_COMPLETION_INDEX`), never
//! retried (`backoffLimitPerIndex: 0`, restartPolicy Never). Typed through
//! k8s-openapi (Kubernetes 1.33).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ObjectFieldSelector, Pod, PodSpec, PodTemplateSpec, Service, ServicePort,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The coordinator's port inside the cluster.
pub const PORT: i32 = 7070;

pub struct Render<'a> {
    pub name: String,
    pub namespace: String,
    pub image: String,
    pub scenario: &'a Path,
    pub shards: usize,
    pub target: Option<String>,
    pub run_name: String,
    pub vus: Option<u32>,
    pub duration: Option<std::time::Duration>,
    pub allow_partial: bool,
}

fn meta(r: &Render<'_>, name: &str, role: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(r.namespace.clone()),
        labels: Some(labels(r, role)),
        ..Default::default()
    }
}

fn labels(r: &Render<'_>, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "loadtest".to_string()),
        ("app.kubernetes.io/instance".to_string(), r.name.clone()),
        ("loadtest.io/role".to_string(), role.to_string()),
    ])
}

fn scenario_volume(r: &Render<'_>) -> (Volume, VolumeMount) {
    (
        Volume {
            name: "scenario".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: r.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        VolumeMount {
            name: "scenario".into(),
            mount_path: "/scenario".into(),
            read_only: Some(true),
            ..Default::default()
        },
    )
}

fn load_args(r: &Render<'_>) -> Vec<String> {
    super::load_flags(r.vus, r.duration)
}

/// The four objects, in the order they are applied.
pub struct Manifests {
    pub config_map: ConfigMap,
    pub service: Service,
    pub coordinator: Pod,
    pub job: Job,
}

pub fn manifests(r: &Render<'_>) -> Result<Manifests> {
    let text = std::fs::read_to_string(r.scenario)
        .with_context(|| format!("cannot read {}", r.scenario.display()))?;
    let file = r
        .scenario
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario.toml".into());
    let n = r.shards;
    let coordinator = format!("{}-coordinator", r.name);
    let config_map = ConfigMap {
        metadata: meta(r, &r.name, "scenario"),
        data: Some(BTreeMap::from([(file.clone(), text)])),
        ..Default::default()
    };
    // Headless: the shards reach the coordinator Pod by this name.
    let service = Service {
        metadata: meta(r, &coordinator, "coordinator"),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(labels(r, "coordinator")),
            ports: Some(vec![ServicePort {
                name: Some("shards".into()),
                port: PORT,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (volume, mount) = scenario_volume(r);
    let mut coord_args = vec![
        "distribute".to_string(),
        "-s".into(),
        format!("/scenario/{file}"),
        "--shards".into(),
        n.to_string(),
        "--on".into(),
        "external".into(),
        "--listen".into(),
        format!("0.0.0.0:{PORT}"),
        "-r".into(),
        r.run_name.clone(),
        "-o".into(),
        "/results".into(),
    ];
    coord_args.extend(load_args(r));
    if r.allow_partial {
        coord_args.push("--allow-partial".into());
    }
    let coordinator_pod = Pod {
        metadata: meta(r, &coordinator, "coordinator"),
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            containers: vec![Container {
                name: "coordinator".into(),
                image: Some(r.image.clone()),
                args: Some(coord_args),
                ports: Some(vec![ContainerPort {
                    container_port: PORT,
                    name: Some("shards".into()),
                    ..Default::default()
                }]),
                volume_mounts: Some(vec![
                    mount.clone(),
                    VolumeMount {
                        name: "results".into(),
                        mount_path: "/results".into(),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }],
            volumes: Some(vec![
                volume.clone(),
                Volume {
                    name: "results".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut shard_args = vec![
        "run".to_string(),
        "-s".into(),
        format!("/scenario/{file}"),
        // Kubernetes expands $(VAR) from the container's env.
        "--shard".into(),
        format!("$(LOADTEST_SHARD_INDEX)/{n}"),
        "--coordinator".into(),
        format!("{coordinator}.{}.svc:{PORT}", r.namespace),
        "-r".into(),
        format!("{}-shard", r.run_name),
        "-o".into(),
        "/tmp/out".into(),
        "--no-html".into(),
        "-q".into(),
    ];
    shard_args.extend(load_args(r));
    let mut env = vec![EnvVar {
        name: "LOADTEST_SHARD_INDEX".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                    .into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }];
    if let Some(t) = &r.target {
        env.push(EnvVar {
            name: "LOADTEST_TARGET".into(),
            value: Some(t.clone()),
            ..Default::default()
        });
    }
    let job = Job {
        metadata: meta(r, &format!("{}-shards", r.name), "shard"),
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(n as i32),
            parallelism: Some(n as i32),
            // A failed shard is never run again: the merge names it.
            backoff_limit_per_index: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(r, "shard")),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "shard".into(),
                        image: Some(r.image.clone()),
                        args: Some(shard_args),
                        env: Some(env),
                        volume_mounts: Some(vec![mount]),
                        ..Default::default()
                    }],
                    volumes: Some(vec![volume]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(Manifests {
        config_map,
        service,
        coordinator: coordinator_pod,
        job,
    })
}

/// Writes one YAML file per object into `dir`; returns their paths.
pub fn write(dir: &Path, m: &Manifests) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let docs: [(&str, serde_json::Value); 4] = [
        ("01-configmap.yaml", serde_json::to_value(&m.config_map)?),
        ("02-service.yaml", serde_json::to_value(&m.service)?),
        ("03-coordinator.yaml", serde_json::to_value(&m.coordinator)?),
        ("04-job.yaml", serde_json::to_value(&m.job)?),
    ];
    let mut out = Vec::new();
    for (name, v) in docs {
        let p = dir.join(name);
        let text = serde_norway::to_string(&v)?;
        crate::files::write_atomic(&p, text.as_bytes())?;
        out.push(p);
    }
    Ok(out)
}
