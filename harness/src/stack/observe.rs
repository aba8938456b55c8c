//! The harness's own Pushgateway and Prometheus beside a team's stack that
//! has none: a project of the harness's (`<project>-observe`) whose two
//! services join the stack's network, so Prometheus scrapes the Pushgateway
//! (the run's live series) and the app's `/metrics` by the app's service
//! name. Their ports are published on 127.0.0.1 at free ports.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::compose::{Health, Mount, MountSource, PortSpec, Project, ServiceSpec};
use super::docker::DockerClient;
use super::progress::Progress;
use super::up::{self, UpOptions};

/// Where the two services answer once up.
pub struct Observed {
    pub project: String,
    pub push_url: String,
    pub prometheus_url: String,
}

fn service(name: &str, image: &str, port: u16, ready: &str) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        image: image.into(),
        build: None,
        environment: Vec::new(),
        ports: vec![PortSpec {
            host_ip: "127.0.0.1".into(),
            host_port: None,
            container_port: port,
            protocol: "tcp".into(),
        }],
        mounts: Vec::new(),
        healthcheck: Some(Health {
            test: vec![
                "CMD".into(),
                "wget".into(),
                "-qO-".into(),
                format!("http://127.0.0.1:{port}{ready}"),
            ],
            interval_ns: 1_000_000_000,
            timeout_ns: 3_000_000_000,
            retries: 60,
            start_period_ns: 0,
        }),
        depends_on: Vec::new(),
        command: None,
        entrypoint: None,
    }
}

/// The project's name for a team's stack.
pub fn project_name(stack: &Project) -> String {
    name_for(&stack.name)
}

pub use super::docker::observe_name as name_for;

/// The observability project beside `stack`; `app` is the service (and its
/// port) Prometheus scrapes at `/metrics`.
pub fn project(stack: &Project, app: Option<(&str, u16)>) -> Result<Project> {
    let dir = std::env::temp_dir()
        .join("loadtest-observe")
        .join(&stack.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut scrape = String::from(
        "  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: [\"pushgateway:9091\"]\n",
    );
    if let Some((name, port)) = app {
        scrape.push_str(&format!(
            "  - job_name: {name}\n    static_configs:\n      - targets: [\"{name}:{port}\"]\n"
        ));
    }
    let config: PathBuf = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "# Written by loadtest for project {}: the run's live series and the app's own metrics.\n\
             global:\n  scrape_interval: 1s\n  evaluation_interval: 5s\nscrape_configs:\n{scrape}",
            stack.name
        ),
    )
    .with_context(|| format!("cannot write {}", config.display()))?;
    let push = service("pushgateway", "prom/pushgateway:v1.9.0", 9091, "/-/ready");
    let mut prom = service("prometheus", "prom/prometheus:v2.53.0", 9090, "/-/ready");
    prom.mounts.push(Mount {
        source: MountSource::Bind(config),
        target: "/etc/prometheus/prometheus.yml".into(),
        read_only: true,
    });
    prom.depends_on
        .push(("pushgateway".into(), super::compose::Condition::Started));
    Ok(Project {
        name: project_name(stack),
        working_dir: stack.working_dir.clone(),
        config_file: stack.config_file.clone(),
        services: vec![push, prom],
        volumes: Vec::new(),
        jobs: Vec::new(),
        external_network: Some(stack.network_name()),
    })
}

/// Takes the project down (if any) and brings it up fresh beside `stack`.
pub async fn start(
    docker: &DockerClient,
    stack: &Project,
    app: Option<(&str, u16)>,
    timeout: std::time::Duration,
    quiet: bool,
) -> Result<Observed> {
    let p = project(stack, app)?;
    docker.down(&p.name, Some(&p.working_dir)).await?;
    let opts = UpOptions {
        timeout,
        keep_on_failure: false,
    };
    up::up(docker, &p, &opts, &Progress::new(quiet)).await?;
    let port = |svc: &str, private: u16| {
        let name = p.container_name(svc);
        async move { docker.published_port(&name, private).await }
    };
    Ok(Observed {
        project: p.name.clone(),
        push_url: format!("http://127.0.0.1:{}", port("pushgateway", 9091).await?),
        prometheus_url: format!("http://127.0.0.1:{}", port("prometheus", 9090).await?),
    })
}
