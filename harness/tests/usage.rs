//! A container's CPU, memory and network as the A/B trials read them: from
//! its cgroup files and from the Engine's stats, on a real container of the
//! local Docker Engine.

use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StartContainerOptions,
};
use loadtest::stack::docker::DockerClient;
use loadtest::stack::images;
use loadtest::stack::progress::Progress;
use loadtest::stack::usage::{self, Source, Usage};

#[test]
fn a_busy_containers_cpu_memory_and_network_are_read() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let docker = DockerClient::connect().await.unwrap();
        let base = images::stand_in("loadtest/debian:bookworm").unwrap();
        images::build_stand_in(&docker, base, &Progress::new(true))
            .await
            .unwrap();
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
