//! Local stand-ins for images that cannot be pulled: a Debian root file system
//! made with mmdebstrap, wrapped into an image by the Engine's build endpoint
//! (`FROM scratch` + `ADD rootfs.tar /`), once per machine.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::docker::DockerClient;
use super::progress::Progress;

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
    // Python with the Postgres driver and curl: the base of examples/router,
    // a service that is not ours in style (Debian's python3 is 3.11).
    StandIn {
        image: "loadtest/python:3.11",
        packages: &["python3", "python3-psycopg2", "curl", "ca-certificates"],
        dockerfile_tail: "ENV LANG=C.UTF-8 PYTHONUNBUFFERED=1\nCMD [\"python3\"]\n",
        files: &[],
    },
    StandIn {
        image: "loadtest/redis:7",
        packages: &["redis-server"],
        dockerfile_tail: "EXPOSE 6379\n\
ENTRYPOINT [\"/usr/bin/redis-server\", \"--bind\", \"0.0.0.0\", \"--protected-mode\", \"no\", \"--save\", \"\"]\n",
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

/// The stand-in named `image`, by its default name or by its tag in this process.
pub fn stand_in(image: &str) -> Option<&'static StandIn> {
    STAND_INS
        .iter()
        .find(|s| s.image == image || s.tag() == image)
}

/// The Dockerfile with every `FROM <stand-in>` naming the tag this process
/// uses, or None when nothing changes (no suffix set).
pub fn retag_dockerfile(dockerfile: &str) -> Option<String> {
    let mut changed = false;
    let lines: Vec<String> = dockerfile
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            if let (Some(k), Some(img)) = (w.next(), w.next()) {
                if k.eq_ignore_ascii_case("FROM") {
                    if let Some(si) = stand_in(img) {
                        let tag = si.tag();
                        if tag != img {
                            changed = true;
                            return l.replacen(img, &tag, 1);
                        }
                    }
                }
            }
            l.to_string()
        })
        .collect();
    changed.then(|| lines.join("\n") + "\n")
}

/// The stand-in that can replace an official image that cannot be pulled.
pub fn stand_in_for(image: &str) -> Option<&'static StandIn> {
    let repo = image.split(':').next().unwrap_or(image);
    let repo = repo
        .trim_start_matches("docker.io/")
        .trim_start_matches("library/");
    match repo {
        "postgres" => stand_in("loadtest/postgres:15"),
        "redis" => stand_in("loadtest/redis:7"),
        "debian" => stand_in("loadtest/debian:bookworm"),
        "prom/prometheus" => stand_in("loadtest/prometheus:2.42"),
        "prom/pushgateway" => stand_in("loadtest/pushgateway:1.5"),
        _ => None,
    }
}

/// The variable that gives every stand-in tag a suffix, so a run can build
/// them anew without touching the ones this machine keeps (CI's first-run check).
pub const SUFFIX_VAR: &str = "LOADTEST_STANDIN_SUFFIX";

impl StandIn {
    /// The tag this process uses: the default name, with `-<suffix>` appended
    /// to its tag when LOADTEST_STANDIN_SUFFIX is set.
    pub fn tag(&self) -> String {
        match std::env::var(SUFFIX_VAR) {
            Ok(sfx) if !sfx.is_empty() => format!("{}-{sfx}", self.image),
            _ => self.image.to_string(),
        }
    }
}

/// Holds an exclusive lock on a file while a stand-in is built, so that
/// parallel `loadtest` processes (a test suite) build each image once.
struct BuildLock(#[allow(dead_code)] std::fs::File);

async fn lock(tag: &str, progress: &Progress) -> Result<BuildLock> {
    use std::os::fd::AsRawFd;
    let path = super::progress::file_for(tag, "lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(BuildLock(file));
    }
    let waiting = progress.task(tag, "waiting: another loadtest is building it");
    let file = tokio::task::spawn_blocking(move || {
        // SAFETY: as above; this call blocks until the other builder is done.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        (r, file)
    })
    .await
    .map_err(|e| anyhow!("waiting for the lock on {}: {e}", path.display()))?;
    if file.0 != 0 {
        bail!(
            "cannot lock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    waiting.done("built by another process");
    Ok(BuildLock(file.1))
}

/// Makes a stand-in image unless it exists: mmdebstrap, then a build from
/// scratch, on a progress line of its own. Returns the image id.
pub async fn build_stand_in(
    docker: &DockerClient,
    s: &StandIn,
    progress: &Progress,
) -> Result<String> {
    let tag = s.tag();
    if let Some(id) = docker.image_id(&tag).await {
        return Ok(id);
    }
    if which("mmdebstrap").is_none() {
        bail!(
            "image {tag} is missing and no registry is reachable; building its local stand-in needs mmdebstrap: \
             run ./loadtest.sh once (it installs it), or `apt-get install mmdebstrap` as root; \
             with a registry, set the image variable (e.g. LOADTEST_POSTGRES_IMAGE) to an image you can pull"
        );
    }
    let _lock = lock(&tag, progress).await?;
    // Another process may have built it while this one waited.
    if let Some(id) = docker.image_id(&tag).await {
        return Ok(id);
    }
    let task = progress.task(
        &tag,
        &format!("mmdebstrap: minbase + {}", s.packages.join(", ")),
    );
    let result = async {
        let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
        let rootfs = dir.path().join("rootfs.tar");
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
        task.log(&String::from_utf8_lossy(&out.stdout));
        task.log(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            bail!(
                "mmdebstrap failed for {tag} ({}):\n{}",
                out.status,
                last_lines(&String::from_utf8_lossy(&out.stderr), 20)
            );
        }
        task.step("image build");
        let context = stand_in_context(s, &rootfs)?;
        docker
            .build(&tag, context, "Dockerfile", HashMap::new(), &mut |l| {
                task.log(l)
            })
            .await
    }
    .await;
    match result {
        Ok(id) => {
            task.done("built");
            Ok(id)
        }
        Err(e) => {
            task.failed("failed");
            Err(e.context(format!(
                "building the stand-in {tag} failed (full log: {})",
                task.log_file().display()
            )))
        }
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The stand-in's context (its Dockerfile, files and root file system) in a
/// temporary file: the root file system is hundreds of megabytes.
fn stand_in_context(s: &StandIn, rootfs: &Path) -> Result<std::fs::File> {
    let mut b = tar::Builder::new(super::context::scratch_file()?);
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
    super::context::rewound(b.into_inner()?)
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
