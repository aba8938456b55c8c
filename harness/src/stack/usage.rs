//! What a container has used so far: CPU time, memory, network bytes. Read
//! from the container's cgroup files where the Engine runs on this machine
//! (one small file read per figure, exact to the nanosecond), else from the
//! Engine's one-shot stats. Two readings around a trial give its usage.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use bollard::query_parameters::{InspectContainerOptions, StatsOptionsBuilder};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::docker::DockerClient;

/// Counters of one container at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reading {
    /// CPU time since the container started, nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use now, bytes.
    pub mem_bytes: u64,
    /// Bytes received and sent on all its interfaces since it started.
    pub net_rx: u64,
    pub net_tx: u64,
}

/// What a container used between two readings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_s: f64,
    /// Memory in use at the end, MB.
    pub mem_mb: f64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

impl Usage {
    pub fn between(before: &Reading, after: &Reading) -> Usage {
        Usage {
            cpu_s: after.cpu_ns.saturating_sub(before.cpu_ns) as f64 / 1e9,
            mem_mb: after.mem_bytes as f64 / (1024.0 * 1024.0),
            net_rx_bytes: after.net_rx.saturating_sub(before.net_rx),
            net_tx_bytes: after.net_tx.saturating_sub(before.net_tx),
        }
    }
}

/// Where a container's counters are read.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// cgroup v1 (`cpuacct/docker/<id>`, `memory/docker/<id>`) or v2 folders
    /// of the container, and its first process's network counters.
    Files {
        cpu: PathBuf,
        memory: PathBuf,
        pid: u32,
    },
    /// The Engine's stats endpoint (an Engine on another machine).
    Engine(String),
}

/// Finds how to read the container `name`'s counters.
pub async fn source(docker: &DockerClient, name: &str) -> Result<Source> {
    let info = docker
        .api
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .with_context(|| format!("cannot inspect container {name}"))?;
    let id = info.id.unwrap_or_default();
    let pid = info
        .state
        .and_then(|s| s.pid)
        .filter(|p| *p > 0)
        .map(|p| p as u32);
    match (pid, cgroup_files(Path::new("/sys/fs/cgroup"), &id)) {
        (Some(pid), Some((cpu, memory))) => Ok(Source::Files { cpu, memory, pid }),
        _ => Ok(Source::Engine(name.to_string())),
    }
}

/// The CPU and memory files of container `id` under `root`: cgroup v1
/// (`cpuacct.usage`, `memory.usage_in_bytes`) or v2 (`cpu.stat`,
/// `memory.current`), with the cgroupfs or the systemd driver's layout.
fn cgroup_files(root: &Path, id: &str) -> Option<(PathBuf, PathBuf)> {
    if id.is_empty() {
        return None;
    }
    let v1 = (
        root.join("cpuacct/docker").join(id).join("cpuacct.usage"),
        root.join("memory/docker")
            .join(id)
            .join("memory.usage_in_bytes"),
    );
    let v1_systemd = (
        root.join(format!(
            "cpuacct/system.slice/docker-{id}.scope/cpuacct.usage"
        )),
        root.join(format!(
            "memory/system.slice/docker-{id}.scope/memory.usage_in_bytes"
        )),
    );
    let v2 = |dir: PathBuf| (dir.join("cpu.stat"), dir.join("memory.current"));
    [
        v1,
        v1_systemd,
        v2(root.join("docker").join(id)),
        v2(root.join(format!("system.slice/docker-{id}.scope"))),
    ]
    .into_iter()
    .find(|(cpu, mem)| cpu.is_file() && mem.is_file())
}

/// The counters now.
pub async fn read(docker: &DockerClient, source: &Source) -> Result<Reading> {
    match source {
        Source::Files { cpu, memory, pid } => {
            let cpu_ns = cpu_ns(&std::fs::read_to_string(cpu)?)
                .ok_or_else(|| anyhow!("{}: no CPU usage in it", cpu.display()))?;
            let mem_bytes = std::fs::read_to_string(memory)?.trim().parse()?;
            let (net_rx, net_tx) = std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
                .map(|t| net_bytes(&t))
                .unwrap_or((0, 0));
            Ok(Reading {
                cpu_ns,
                mem_bytes,
                net_rx,
                net_tx,
            })
        }
        Source::Engine(name) => {
            let opts = StatsOptionsBuilder::new()
                .stream(false)
                .one_shot(true)
                .build();
            let s = docker
                .api
                .stats(name, Some(opts))
                .next()
                .await
                .ok_or_else(|| anyhow!("no stats for container {name}"))?
                .with_context(|| format!("cannot read the stats of container {name}"))?;
            let (net_rx, net_tx) = s.networks.iter().flatten().fold((0, 0), |(r, t), (_, n)| {
                (r + n.rx_bytes.unwrap_or(0), t + n.tx_bytes.unwrap_or(0))
            });
            Ok(Reading {
                cpu_ns: s
                    .cpu_stats
                    .and_then(|c| c.cpu_usage)
                    .and_then(|u| u.total_usage)
                    .unwrap_or(0),
                mem_bytes: s.memory_stats.and_then(|m| m.usage).unwrap_or(0),
                net_rx,
                net_tx,
            })
        }
    }
}

/// CPU nanoseconds from `cpuacct.usage` (a number) or `cpu.stat`
/// (`usage_usec N`).
fn cpu_ns(text: &str) -> Option<u64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Some(n);
    }
    t.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|us| us * 1000)
}

/// Received and sent bytes over every interface but loopback, from
/// `/proc/<pid>/net/dev`.
fn net_bytes(text: &str) -> (u64, u64) {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            if name.trim() == "lo" {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((*f.first()?, *f.get(8)?))
        })
        .fold((0, 0), |(r, t), (a, b)| (r + a, t + b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_from_either_cgroup_version() {
        assert_eq!(cpu_ns("14032975796\n"), Some(14_032_975_796));
        assert_eq!(
            cpu_ns("usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n"),
            Some(2_500_000)
        );
        assert_eq!(cpu_ns("nothing"), None);
    }

    #[test]
    fn network_bytes_leave_out_loopback() {
        let t = "Inter-|   Receive                                                |  Transmit\n \
                 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                 lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
                 eth0:    5000      40    0    0    0     0          0         0     7000      50    0    0    0     0       0          0\n";
        assert_eq!(net_bytes(t), (5000, 7000));
    }

    #[test]
    fn usage_between_two_readings() {
        let a = Reading {
            cpu_ns: 1_000_000_000,
            mem_bytes: 0,
            net_rx: 10,
            net_tx: 20,
        };
        let b = Reading {
            cpu_ns: 3_500_000_000,
            mem_bytes: 64 << 20,
            net_rx: 110,
            net_tx: 220,
        };
        let u = Usage::between(&a, &b);
        assert_eq!(u.cpu_s, 2.5);
        assert_eq!(u.mem_mb, 64.0);
        assert_eq!((u.net_rx_bytes, u.net_tx_bytes), (100, 200));
    }
}
