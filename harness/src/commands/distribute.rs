//! `loadtest distribute`: one scenario split across N shards run by an
//! engine (local processes here; Swarm and Kubernetes beside), started on
//! one instant by this process as their coordinator, their results handed
//! back over the network and merged exactly.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::anyhow;

use crate::exit::{Classify, Failure};
use crate::results::{self, RunResult};
use crate::shard::coordinate::{ClockCheck, Coordinator, Expect, Outcomes};
use crate::shard::{merge, swarm, Stripe};

pub const DISTRIBUTE_HELP: &str =
    "Every shard runs `loadtest run --shard i/N` of the same scenario file: its stripe of the VUs,
iterations and arrivals (k6's execution segments), so the shards add up exactly to the whole.
This process is their coordinator: each shard checks in and has its clock measured; a clock
further off than --clock-tolerance is refused before any load; then every shard starts its load
on the same instant (the next whole second after --lead). Results come back over the network and
are merged as `loadtest merge` does: thresholds judged on the merged data.
A shard that fails is never run again: the merged result is marked incomplete, names it, exits 1.

Exit codes:
  0   every shard ran; every threshold held on the merged data
  1   a shard failed or was cut short (result written, marked incomplete), or no shard could start
  2   usage or scenario error, before anything ran
  99  a threshold is crossed on the merged data";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum On {
    /// Shards as processes on this machine
    Processes,
    /// Shards as the tasks of a replicated job on the Docker Swarm this Engine manages
    Swarm,
    /// Manifests for Kubernetes (an Indexed Job, a coordinator Pod and its headless Service, a
    /// ConfigMap), written to --render DIR for your `kubectl apply`
    Kubernetes,
    /// Start no shard: wait for N shards started elsewhere (`run --shard i/N --coordinator`),
    /// start them together, merge (the Kubernetes coordinator Pod runs this)
    External,
}

#[derive(clap::Args, Debug)]
pub struct DistributeCmd {
    /// Scenario name (<scenarios-dir>/NAME.toml) or path to its .toml file
    #[arg(short, long)]
    pub scenario: String,
    /// How many shards to split the load into
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub shards: u32,
    /// What runs the shards
    #[arg(long, value_enum, default_value = "processes")]
    pub on: On,
    /// Base URL of the service under test (every shard's)
    #[arg(short, long, env = "LOADTEST_TARGET")]
    pub target: Option<String>,
    /// Override the scenario's VUs (the whole run's; each shard runs its share)
    #[arg(long)]
    pub vus: Option<u32>,
    /// Override the scenario's duration
    #[arg(long, value_parser = super::parse_duration)]
    pub duration: Option<Duration>,
    #[arg(short, long, default_value = "baseline")]
    pub run_name: String,
    /// Results folder: the merged <run>_<scenario>.json; each shard's under shards/
    #[arg(short, long, default_value = "benchmark")]
    pub out: PathBuf,
    #[arg(long, env = "LOADTEST_SCENARIOS_DIR", default_value = "scenarios")]
    pub scenarios_dir: PathBuf,
    /// Merge what came back when shards failed: a labelled partial result, judged as it is
    #[arg(long)]
    pub allow_partial: bool,
    /// Refuse a shard whose clock is further off the coordinator's than this
    #[arg(long, default_value = "50ms", value_parser = super::parse_duration)]
    pub clock_tolerance: Duration,
    /// Time from the last shard's check-in to the start (rounded up to a whole second)
    #[arg(long, default_value = "1s", value_parser = super::parse_duration)]
    pub lead: Duration,
    /// Address the coordinator listens on for its shards (swarm tasks run on the host's network:
    /// on several nodes, listen on 0.0.0.0:PORT; they dial the manager's node address)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: String,
    /// The image the swarm runs shards from; default: one built from this binary on the Debian
    /// stand-in base (on several nodes, push it to your registry and name it here)
    #[arg(long)]
    pub image: Option<String>,
    /// --on kubernetes: the folder the manifests are written to
    #[arg(long, value_name = "DIR")]
    pub render: Option<PathBuf>,
    /// --on kubernetes: the namespace of every object
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[arg(short, long)]
    pub quiet: bool,
}

impl DistributeCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        results::check_name("run name", &self.run_name).usage()?;
        let (path, mut sc) = super::merge::load_scenario(&self.scenario, &self.scenarios_dir)?;
        // Each shard applies the overrides itself; here they size the wait.
        sc.options
            .apply_overrides(self.vus, self.duration)
            .map_err(|e| Failure::Usage(anyhow!("{e}")))?;
        let n = self.shards as usize;
        if self.on == On::Kubernetes {
            return self.render_kubernetes(&path, n);
        }
        if self.render.is_some() {
            return Err(Failure::Usage(anyhow!("--render is for --on kubernetes")));
        }
        let (_, sequence) = Stripe::equal(0, n)
            .map_err(|e| Failure::Usage(anyhow!(e)))?
            .k6_flags();
        let shard_dir = self.out.join("shards");
        std::fs::create_dir_all(&shard_dir)
            .map_err(|e| Failure::Usage(anyhow!("cannot create {}: {e}", shard_dir.display())))?;
        let rt = super::runtime()?;
        let coord = rt.block_on(Coordinator::bind(&self.listen)).usage()?;
        let want = Expect {
            count: n,
            sequence: sequence.clone(),
            scenario_sha256: sc.sha256.clone(),
            tolerance: self.clock_tolerance,
            lead: self.lead,
            // Shards started elsewhere (pods being scheduled) may take longer.
            gather: Duration::from_secs(if self.on == On::External { 900 } else { 120 }),
        };
        let planned = sc.options.executor.planned_duration()
            + sc.options.graceful_stop
            + Duration::from_secs(120);
        let quiet = self.quiet;
        let announce = move |at: std::time::SystemTime, clocks: &[ClockCheck]| {
            if !quiet {
                let worst = clocks.iter().map(|c| c.offset_ms.abs()).fold(0.0, f64::max);
                crate::errln!(
                    "every shard checked in (clocks within {worst:.1} ms); load starts at {}",
                    chrono::DateTime::<chrono::Utc>::from(at).format("%H:%M:%S%.3f")
                );
            }
        };
        let (outcomes, logs) = match self.on {
            On::Processes => self.on_processes(&rt, coord, &path, want, planned, announce)?,
            On::Swarm => (
                self.on_swarm(&rt, coord, &path, want, planned, announce)?,
                None,
            ),
            On::External => {
                if !self.quiet {
                    crate::errln!(
                        "waiting for {n} shards on port {} (`loadtest run --shard i/{n} --coordinator HOST:{}`)",
                        coord.port(),
                        coord.port()
                    );
                }
                let o = rt
                    .block_on(coord.run(want, planned, announce))
                    .map_err(Failure::Runtime)?;
                (o, None)
            }
            On::Kubernetes => unreachable!("rendered above"),
        };
        let mut got: Vec<(String, RunResult)> = Vec::new();
        for (i, o) in outcomes {
            match o {
                Ok(r) => got.push((format!("shard {i}"), r)),
                Err(why) => {
                    let log = logs
                        .as_ref()
                        .and_then(|d| {
                            std::fs::read_to_string(d.path().join(format!("{i}.log"))).ok()
                        })
                        .unwrap_or_default();
                    crate::errln!("shard {i} failed: {why}{}", last_lines(&log));
                }
            }
        }
        if got.is_empty() {
            return Err(Failure::Runtime(anyhow!(
                "no shard sent a result: nothing to merge"
            )));
        }
        let merged = merge::merge(&sc, &got, &self.run_name, self.allow_partial).runtime()?;
        let out = results::result_path(&self.out, &self.run_name, &sc.name, "json");
        super::merge::finish(&merged, &out, self.allow_partial, self.quiet)
    }
}

impl DistributeCmd {
    /// Writes the Kubernetes manifests; applying them is the user's.
    fn render_kubernetes(&self, path: &std::path::Path, n: usize) -> Result<u8, Failure> {
        let Some(dir) = &self.render else {
            return Err(Failure::Usage(anyhow!(
                "--on kubernetes writes manifests (this tool reaches no cluster): give --render DIR, then `kubectl apply -f DIR`"
            )));
        };
        let Some(image) = &self.image else {
            return Err(Failure::Usage(anyhow!(
                "--on kubernetes needs --image: an image of this loadtest binary your cluster can pull \
                 (`loadtest distribute --on swarm` builds loadtest/harness:<hash> locally; tag and push it)"
            )));
        };
        let name = format!(
            "loadtest-{}",
            self.run_name.to_lowercase().replace(['_', '.'], "-")
        );
        let m = crate::shard::kubernetes::manifests(&crate::shard::kubernetes::Render {
            name: name.clone(),
            namespace: self.namespace.clone(),
            image: image.clone(),
            scenario: path,
            shards: n,
            target: self.target.clone(),
            run_name: self.run_name.clone(),
            vus: self.vus,
            duration: self.duration,
            allow_partial: self.allow_partial,
        })
        .usage()?;
        let files = crate::shard::kubernetes::write(dir, &m).runtime()?;
        if !self.quiet {
            for f in &files {
                crate::outln!("wrote {}", f.display());
            }
            crate::outln!(
                "apply: kubectl apply -f {dir}\nresult: kubectl logs -n {ns} {name}-coordinator (the merged summary; the JSON is in its /results)",
                dir = dir.display(),
                ns = self.namespace
            );
        }
        Ok(crate::exit::OK)
    }

    /// Shards as child processes of this one; their stderr kept for errors.
    fn on_processes(
        &self,
        rt: &tokio::runtime::Runtime,
        coord: Coordinator,
        path: &std::path::Path,
        want: Expect,
        planned: Duration,
        announce: impl FnMut(std::time::SystemTime, &[ClockCheck]),
    ) -> Result<(Outcomes, Option<tempfile::TempDir>), Failure> {
        let n = want.count;
        let addr = format!("127.0.0.1:{}", coord.port());
        let shard_dir = self.out.join("shards");
        let logs = tempfile::tempdir().runtime()?;
        let mut children: Vec<(usize, Child)> = Vec::new();
        let exe = std::env::current_exe().runtime()?;
        for i in 0..n {
            let log = std::fs::File::create(logs.path().join(format!("{i}.log"))).runtime()?;
            let mut cmd = Command::new(&exe);
            cmd.arg("run")
                .arg("-s")
                .arg(path)
                .arg("--shard")
                .arg(format!("{i}/{n}"))
                .arg("--coordinator")
                .arg(&addr)
                .arg("-r")
                .arg(merge::shard_run_name(&self.run_name, i))
                .arg("-o")
                .arg(&shard_dir)
                .arg("--no-html")
                .arg("-q")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            if let Some(t) = &self.target {
                cmd.arg("-t").arg(t);
            }
            cmd.args(crate::shard::load_flags(self.vus, self.duration));
            match cmd.spawn() {
                Ok(c) => children.push((i, c)),
                Err(e) => {
                    stop_all(&mut children);
                    return Err(Failure::Runtime(anyhow!("cannot start shard {i}: {e}")));
                }
            }
        }
        if !self.quiet {
            crate::errln!("{n} shards started as processes; coordinator on {addr}");
        }
        let outcomes = match rt.block_on(coord.run(want, planned, announce)) {
            Ok(o) => o,
            Err(e) => {
                stop_all(&mut children);
                return Err(Failure::Runtime(anyhow!("{e:#}{}", tails(logs.path(), n))));
            }
        };
        // Shards that sent their result are finishing; any other is stopped.
        for (_, c) in children.iter_mut() {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        stop_all(&mut children);
        Ok((outcomes, Some(logs)))
    }

    /// Shards as a replicated job on the swarm; the job and its config are
    /// removed at the end, after a failure or Ctrl-C too.
    fn on_swarm(
        &self,
        rt: &tokio::runtime::Runtime,
        coord: Coordinator,
        path: &std::path::Path,
        want: Expect,
        planned: Duration,
        mut announce: impl FnMut(std::time::SystemTime, &[ClockCheck]),
    ) -> Result<Outcomes, Failure> {
        rt.block_on(async {
            let docker = crate::stack::docker::DockerClient::connect().await.runtime()?;
            let (node_addr, nodes) = swarm::check_manager(&docker).await.usage()?;
            let image = match &self.image {
                Some(i) => i.clone(),
                None => swarm::harness_image(&docker, self.quiet).await.runtime()?,
            };
            let host = match self.listen.rsplit_once(':') {
                Some(("0.0.0.0" | "[::]", _)) => node_addr,
                Some((h, _)) => h.to_string(),
                None => node_addr,
            };
            let n = want.count;
            let name = format!(
                "loadtest-{}-{}",
                self.run_name.to_lowercase().replace(['_', '.'], "-"),
                &uuid::Uuid::new_v4().simple().to_string()[..6]
            );
            let job = swarm::Job {
                name: name.clone(),
                image,
                scenario: path,
                shards: n,
                coordinator: format!("{host}:{}", coord.port()),
                target: self.target.clone(),
                run_name: self.run_name.clone(),
                vus: self.vus,
                duration: self.duration,
            };
            let one_per_node = nodes >= n;
            let config = swarm::start(&docker, &job, one_per_node).await.runtime()?;
            if !self.quiet {
                crate::errln!(
                    "swarm job {name}: {n} shards on {nodes} node(s){}; coordinator on {}",
                    if one_per_node { ", one per node" } else { "" },
                    job.coordinator
                );
            }
            let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = started.clone();
            let run = coord.run(want, planned, move |at, clocks| {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
                announce(at, clocks)
            });
            let outcome = tokio::select! {
                r = run => r,
                e = swarm::watch_before_start(&docker, &name, started) => Err(e),
                _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted (Ctrl-C): the swarm job is removed")),
            };
            let states = swarm::tasks(&docker, &name).await;
            let removed = swarm::remove(&docker, &name, Some(&config)).await;
            if let Err(e) = &removed {
                crate::errln!("warning: {e:#}");
            }
            let mut outcomes = outcome.map_err(Failure::Runtime)?;
            // What the swarm says of a shard that sent nothing.
            for (slot, state, err) in states {
                if let Some(Err(why)) = outcomes.get_mut(&(slot as usize)) {
                    if !err.is_empty() || state != "complete" {
                        why.push_str(&format!(" (swarm task: {state}{}{err})", if err.is_empty() { "" } else { ", " }));
                    }
                }
            }
            Ok(outcomes)
        })
    }
}

fn stop_all(children: &mut [(usize, Child)]) {
    for (_, c) in children.iter_mut() {
        if c.try_wait().ok().flatten().is_none() {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}

fn last_lines(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!("\n    {}", tail.join("\n    "))
    }
}

/// The last lines each shard wrote, for a run that never started.
fn tails(dir: &std::path::Path, n: usize) -> String {
    (0..n)
        .filter_map(|i| {
            let log = std::fs::read_to_string(dir.join(format!("{i}.log"))).ok()?;
            let t = last_lines(&log);
            (!t.is_empty()).then(|| format!("\n  shard {i}:{t}"))
        })
        .collect()
}
