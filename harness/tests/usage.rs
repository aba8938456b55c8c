//! What the A/B trials read besides timings, on real containers of the
//! local Docker Engine: a container's CPU, memory and network (its cgroup
//! files and the Engine's stats), and Postgres's per-statement counts.

use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StartContainerOptions,
};
use loadtest::db::statements;
use loadtest::stack::docker::DockerClient;
use loadtest::stack::images;
use loadtest::stack::progress::Progress;
use loadtest::stack::usage::{self, Source, Usage};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The Engine, and a stand-in image built when missing.
async fn engine_with(image: &str) -> (DockerClient, &'static images::StandIn) {
    let docker = DockerClient::connect().await.unwrap();
    let s = images::stand_in(image).unwrap();
    images::build_stand_in(&docker, s, &Progress::new(true))
        .await
        .unwrap();
    (docker, s)
}

#[test]
fn a_busy_containers_cpu_memory_and_network_are_read() {
    runtime().block_on(async {
        let (docker, base) = engine_with("loadtest/debian:bookworm").await;
        let name = format!("loadtest-usage-test-{}", std::process::id());
        let opts = CreateContainerOptionsBuilder::new().name(&name).build();
        // Busy for a bounded 20 s at most: the test reads it well before.
        let body = ContainerCreateBody {
            image: Some(base.tag()),
            cmd: Some(vec![
                "sh".into(),
                "-c".into(),
                "end=$(($(date +%s)+20)); while [ $(date +%s) -lt $end ]; do :; done".into(),
            ]),
            ..Default::default()
        };
        docker.api.create_container(Some(opts), body).await.unwrap();
        let outcome = async {
            docker
                .api
                .start_container(&name, None::<StartContainerOptions>)
                .await?;
            let files = usage::source(&docker, &name).await?;
            assert!(
                matches!(files, Source::Files { .. }),
                "the Engine runs here: its cgroup files are read ({files:?})"
            );
            let t = Instant::now();
            let r0 = usage::read(&docker, &files).await?;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let r1 = usage::read(&docker, &files).await?;
            let wall = t.elapsed().as_secs_f64();
            let u = Usage::between(&r0, &r1);
            let cores = std::thread::available_parallelism().unwrap().get() as f64;
            // A busy loop used CPU, and never more than the machine has.
            assert!(u.cpu_s > 0.0, "{u:?}");
            assert!(u.cpu_s <= wall * cores + 0.01, "{u:?} in {wall} s");
            assert!(u.mem_mb > 0.0, "{u:?}");
            // The Engine's stats of the same container agree with the files:
            // read after them, they count at least as much CPU.
            let engine = usage::read(&docker, &Source::Engine(name.clone())).await?;
            assert!(engine.cpu_ns >= r1.cpu_ns, "{engine:?} vs {r1:?}");
            assert!(engine.mem_bytes > 0, "{engine:?}");
            anyhow::Ok(())
        }
        .await;
        let rm = RemoveContainerOptionsBuilder::new().force(true).build();
        let _ = docker.api.remove_container(&name, Some(rm)).await;
        outcome.unwrap();
    });
}

/// A Postgres stand-in on a free port of 127.0.0.1, with extra server
/// settings; returns its name and URL once it accepts connections.
async fn postgres(docker: &DockerClient, tag: &str, settings: &[&str]) -> (String, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = format!("loadtest-statements-test-{}-{port}", std::process::id());
    let mut cmd = vec!["postgres".to_string()];
    for s in settings {
        cmd.extend(["-c".to_string(), s.to_string()]);
    }
    let body = ContainerCreateBody {
        image: Some(tag.to_string()),
        env: Some(vec![
            "POSTGRES_USER=t".into(),
            "POSTGRES_PASSWORD=t".into(),
            "POSTGRES_DB=t".into(),
        ]),
        cmd: Some(cmd),
        host_config: Some(HostConfig {
            port_bindings: Some(std::collections::HashMap::from([(
                "5432/tcp".to_string(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(port.to_string()),
                }]),
            )])),
            ..Default::default()
        }),
        exposed_ports: Some(vec!["5432/tcp".to_string()]),
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::new().name(&name).build();
    docker.api.create_container(Some(opts), body).await.unwrap();
    docker
        .api
        .start_container(&name, None::<StartContainerOptions>)
        .await
        .unwrap();
    let url = format!("postgres://t:t@127.0.0.1:{port}/t");
    // Bounded: 120 tries of half a second.
    for _ in 0..120 {
        if loadtest::db::connect(&url).await.is_ok() {
            return (name, url);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (name, url)
}

#[test]
fn statements_are_counted_where_the_library_is_loaded_and_explained_where_not() {
    runtime().block_on(async {
        let (docker, pg) = engine_with("loadtest/postgres:15").await;
        let (plain, plain_url) = postgres(&docker, &pg.tag(), &[]).await;
        let (with, with_url) = postgres(
            &docker,
            &pg.tag(),
            &["shared_preload_libraries=pg_stat_statements"],
        )
        .await;
        let outcome = async {
            // A plain Postgres: no statistics, and the reason says how to get them.
            let why = statements::enable(&plain_url, true).await.unwrap_err();
            assert!(why.contains("not loaded"), "{why}");
            assert!(
                why.contains("shared_preload_libraries=pg_stat_statements"),
                "{why}"
            );
            // Preloaded: the extension is created, counts start again at reset.
            statements::enable(&with_url, true)
                .await
                .map_err(anyhow::Error::msg)?;
            let mut c = loadtest::db::connect(&with_url).await?;
            sqlx::query("SELECT pg_sleep(0.001)")
                .execute(&mut c)
                .await?;
            statements::reset(&with_url).await?;
            for _ in 0..5 {
                sqlx::query("SELECT pg_sleep($1)")
                    .bind(0.001f64)
                    .execute(&mut c)
                    .await?;
            }
            let got = statements::read(&with_url).await?;
            let sleep = got
                .iter()
                .find(|s| s.query.contains("pg_sleep"))
                .unwrap_or_else(|| panic!("{got:?}"));
            assert_eq!(sleep.calls, 5, "{got:?}");
            assert!(sleep.total_ms >= 5.0, "{sleep:?}");
            assert!(
                !got.iter().any(|s| s.query.contains("pg_stat_statements")),
                "the harness's own reading is left out: {got:?}"
            );
            anyhow::Ok(())
        }
        .await;
        let rm = RemoveContainerOptionsBuilder::new().force(true).build();
        for n in [&plain, &with] {
            let _ = docker.api.remove_container(n, Some(rm.clone())).await;
        }
        outcome.unwrap();
    });
}
