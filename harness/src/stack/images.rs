//! Local stand-ins for images that cannot be pulled: a Debian root file system
//! made with mmdebstrap, wrapped into an image by the Engine's build endpoint
//! (`FROM scratch` + `ADD rootfs.tar /`), once per machine.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::engine::Engine;

/// A stand-in the harness knows how to make.
pub struct StandIn {
    pub image: &'static str,
    /// Debian packages on top of `minbase`.
    pub packages: &'static [&'static str],
    /// Dockerfile lines after `FROM scratch` / `ADD rootfs.tar /`.
    pub dockerfile_tail: &'static str,
    /// Extra executable files in the build context.
    pub files: &'static [(&'static str, &'static str)],
}

const PG_ENTRYPOINT: &str = include_str!("postgres-entrypoint.sh");

pub const STAND_INS: &[StandIn] = &[
    StandIn {
        image: "loadtest/debian:bookworm",
        packages: &["ca-certificates"],
        dockerfile_tail: "ENV LANG=C.UTF-8\nCMD [\"/bin/bash\"]\n",
        files: &[],
    },
    StandIn {
        image: "loadtest/postgres:15",
        packages: &["postgresql-15"],
        dockerfile_tail: "COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n\
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PGDATA=/var/lib/postgresql/data LANG=C.UTF-8\n\
EXPOSE 5432\nSTOPSIGNAL SIGINT\n\
ENTRYPOINT [\"/usr/local/bin/docker-entrypoint.sh\"]\nCMD [\"postgres\"]\n",
        files: &[("docker-entrypoint.sh", PG_ENTRYPOINT)],
    },
    StandIn {
        image: "loadtest/prometheus:2.42",
        packages: &["prometheus", "wget"],
        dockerfile_tail: "RUN mkdir -p /prometheus /etc/prometheus\n\
EXPOSE 9090\n\
ENTRYPOINT [\"/usr/bin/prometheus\"]\n\
CMD [\"--config.file=/etc/prometheus/prometheus.yml\", \"--storage.tsdb.path=/prometheus\", \"--web.enable-lifecycle\"]\n",
        files: &[],
    },
    StandIn {
        image: "loadtest/pushgateway:1.5",
        packages: &["prometheus-pushgateway", "wget"],
        dockerfile_tail: "EXPOSE 9091\nENTRYPOINT [\"/usr/bin/prometheus-pushgateway\"]\n",
        files: &[],
    },
];

pub fn stand_in(image: &str) -> Option<&'static StandIn> {
    STAND_INS.iter().find(|s| s.image == image)
}

/// The stand-in that can replace an official image that cannot be pulled.
pub fn stand_in_for(image: &str) -> Option<&'static StandIn> {
    let repo = image.split(':').next().unwrap_or(image);
    let repo = repo
        .trim_start_matches("docker.io/")
        .trim_start_matches("library/");
    match repo {
        "postgres" => stand_in("loadtest/postgres:15"),
        "debian" => stand_in("loadtest/debian:bookworm"),
        "prom/prometheus" => stand_in("loadtest/prometheus:2.42"),
        "prom/pushgateway" => stand_in("loadtest/pushgateway:1.5"),
        _ => None,
    }
}

/// Makes a stand-in image: mmdebstrap, then a build from scratch. Returns the image id.
pub async fn build_stand_in(
    engine: &Engine,
    s: &StandIn,
    log: &mut dyn FnMut(&str),
) -> Result<String> {
    if which("mmdebstrap").is_none() {
        bail!(
            "image {} is missing and no registry is reachable; building its local stand-in needs mmdebstrap \
             (apt-get install mmdebstrap), or set the image variable to one you can pull",
            s.image
        );
    }
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let rootfs = dir.path().join("rootfs.tar");
    log(&format!(
        "building stand-in {} with mmdebstrap (minbase + {})\n",
        s.image,
        s.packages.join(", ")
    ));
    let mut cmd = tokio::process::Command::new("mmdebstrap");
    cmd.args(["--variant=minbase", "--quiet", "--mode=auto"])
        .arg(format!("--include={}", s.packages.join(",")))
        // Documentation and translations are dead weight in a container.
        .args([
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
        ])
        .arg("bookworm")
        .arg(&rootfs);
    let out = cmd.output().await.context("cannot run mmdebstrap")?;
    if !out.status.success() {
        bail!(
            "mmdebstrap failed for {}:\n{}",
            s.image,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let context = stand_in_context(s, &rootfs)?;
    engine
        .build(s.image, context, "Dockerfile", HashMap::new(), log)
        .await
}

fn stand_in_context(s: &StandIn, rootfs: &Path) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.sparse(false);
    let dockerfile = format!("FROM scratch\nADD rootfs.tar /\n{}", s.dockerfile_tail);
    let mut add = |name: &str, data: &[u8], mode: u32| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_cksum();
        b.append_data(&mut h, name, data)?;
        Ok(())
    };
    add("Dockerfile", dockerfile.as_bytes(), 0o644)?;
    for (name, content) in s.files {
        add(name, content.as_bytes(), 0o755)?;
    }
    b.append_path_with_name(rootfs, "rootfs.tar")
        .map_err(|e| anyhow!("cannot add the root file system to the build context: {e}"))?;
    Ok(b.into_inner()?)
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.is_file())
    })
}

/// The stand-in base images a Dockerfile builds `FROM`.
pub fn stand_in_bases(dockerfile: &str) -> Vec<&'static StandIn> {
    dockerfile
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next()) {
                (Some(k), Some(img)) if k.eq_ignore_ascii_case("FROM") => stand_in(img),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_stand_in_bases() {
        let df = "FROM loadtest/debian:bookworm AS base\nRUN true\nFROM scratch\n";
        let b: Vec<&str> = stand_in_bases(df).iter().map(|s| s.image).collect();
        assert_eq!(b, vec!["loadtest/debian:bookworm"]);
        assert!(stand_in("postgres:16").is_none());
        assert_eq!(
            stand_in_for("postgres:16").unwrap().image,
            "loadtest/postgres:15"
        );
        assert_eq!(
            stand_in_for("docker.io/library/postgres").unwrap().image,
            "loadtest/postgres:15"
        );
        assert!(stand_in_for("grafana/grafana").is_none());
    }
}
