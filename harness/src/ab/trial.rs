//! One trial: a warm-up and a measured run against each side's container,
//! both at once in duet mode.

use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;

use super::trials::Context;
use crate::compare::ab::Side;
use crate::db::statements::{self, Statement};
use crate::exit::{self, Classify, Failure};
use crate::results::RunResult;
use crate::runner::{self, RunPlan};
use crate::stack::docker::DockerClient;
use crate::stack::usage::{self, Reading, Source, Usage};

/// The folders of a team's k6 suite, made empty under `to`, so files a
/// trial's handleSummary writes (`/scripts/benchmark/...`) land in the trial's
/// scratch folder instead of the team's (bounded: 3 levels, 200 folders).
fn mirror_folders(from: &Path, to: &Path) {
    let mut todo = vec![(from.to_path_buf(), to.to_path_buf(), 0)];
    let mut made = 0;
    while let Some((src, dst, depth)) = todo.pop() {
        if std::fs::create_dir_all(&dst).is_err() || depth >= 3 {
            continue;
        }
        for e in std::fs::read_dir(&src).into_iter().flatten().flatten() {
            if e.path().is_dir() && made < 200 {
                made += 1;
                todo.push((e.path(), dst.join(e.file_name()), depth + 1));
            }
        }
    }
}

/// One side's measured run, what its container used meanwhile, and (one
/// trial at a time only) what the database ran for it.
pub(super) struct Measured {
    pub run: RunResult,
    pub usage: Option<Usage>,
    pub statements: Option<Vec<Statement>>,
}

impl Context {
    /// A warm-up and one measured trial per target (all at once when more
    /// than one); `None` when interrupted.
    pub(super) fn one_trial(
        &self,
        targets: &[(Side, &str)],
        scratch: &Path,
        i: usize,
        copy: std::thread::JoinHandle<anyhow::Result<Duration>>,
        stop: Option<&tokio_util::sync::CancellationToken>,
        probe: &Probe,
    ) -> Result<Option<Vec<Measured>>, Failure> {
        // A team's script calls the app by its service name: in a trial that
        // name (with its port) means this side's container.
        let files = scratch.join("k6-files");
        let mount = (self.script && self.cfg.k6_dir.is_dir()).then(|| {
            mirror_folders(&self.cfg.k6_dir, &files);
            (self.cfg.k6_mount.clone(), files.clone())
        });
        let hosts_for = |url: &str| {
            let mut hosts = crate::resolve::all();
            let app = &self.service_name;
            hosts.remove(app);
            if let (Ok(u), Some(p)) = (url::Url::parse(url), self.service.ports.first()) {
                hosts.insert(
                    format!("{app}:{}", p.container_port),
                    format!(
                        "{}:{}",
                        u.host_str().unwrap_or("127.0.0.1"),
                        u.port().unwrap_or(80)
                    ),
                );
            }
            hosts
        };
        let plan = |url: &str, duration: Duration, name: String| RunPlan {
            tls: Default::default(),
            scenario: self.scenario_path.display().to_string(),
            scenarios_dir: self.cfg.scenarios.clone(),
            target: url.to_string(),
            vus: None,
            duration: (!self.script).then_some(duration),
            run_name: name,
            out: scratch.to_path_buf(),
            quiet: true,
            repeat: 1,
            stack: None,
            push_url: None,
            prometheus_url: None,
            server_metric: self.cfg.server_metric.clone(),
            grafana_url: None,
            db_reset: None,
            trial: true,
            csv: None,
            web: None,
            html: false,
            stop: stop.cloned(),
            script_env: self.script_env.clone(),
            k6_mount: mount.clone(),
            k6_hosts: Some(hosts_for(url)),
            shard: None,
        };
        let all = |duration: Duration, what: &str| -> Result<Vec<runner::RunReport>, Failure> {
            std::thread::scope(|sc| {
                let handles: Vec<_> = targets
                    .iter()
                    .map(|(side, url)| {
                        let p = plan(url, duration, format!("{what}-{i}-{side:?}"));
                        sc.spawn(move || runner::execute(p))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Failure::Runtime(anyhow!("a trial's thread failed")))
                        })
                    })
                    .collect()
            })
        };
        // Stopped from the live page: a run cut short in its setup is an interruption, not a failure.
        let stopped = || stop.is_some_and(|t| t.is_cancelled());
        if !self.warmup.is_zero() {
            let w = match all(self.warmup, "warmup") {
                Err(_) if stopped() => return Ok(None),
                w => w?,
            };
            if w.iter().any(|r| r.code == exit::RUNTIME) {
                return Ok(None);
            }
        }
        match copy.join() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => self.say(&format!(
                "warning: the next database copy could not be prepared ({e:#}); the next reset copies it"
            )),
            Err(_) => self.say("warning: the database copy thread failed"),
        }
        let mut out = Vec::new();
        // Each side's container, read just around the measured run.
        let containers: Vec<String> = targets
            .iter()
            .map(|(side, _)| {
                self.project.container_name(match side {
                    Side::A => "ab-a",
                    Side::B => "ab-b",
                })
            })
            .collect();
        let before = probe.read_all(&containers);
        let db = probe.statements_start();
        let measured = match all(self.duration, "trial") {
            Err(_) if stopped() => return Ok(None),
            m => m?,
        };
        let used = probe.used_since(before);
        let ran = db.then(|| probe.statements_read()).flatten();
        for (m, u) in measured.into_iter().zip(used) {
            let r = RunResult::load(&m.json).runtime()?;
            if m.code == exit::RUNTIME || r.interrupted {
                return Ok(None);
            }
            out.push(Measured {
                run: r,
                usage: u,
                statements: ran.clone(),
            });
        }
        Ok(Some(out))
    }
}

/// Reads the sides' containers around a trial (CPU, memory, network). A
/// container that cannot be read leaves its trial without usage: the
/// findings then skip that figure, the verdict is unchanged.
pub(super) struct Probe<'a> {
    pub rt: &'a tokio::runtime::Runtime,
    pub docker: Option<&'a DockerClient>,
    /// The database whose statements are counted per trial (one side at a
    /// time, pg_stat_statements available); None: not counted.
    pub statements: Option<&'a str>,
}

impl Probe<'_> {
    /// Starts the statement counts of this trial; false when not counted
    /// (or the counts could not be started: the trial then has none).
    fn statements_start(&self) -> bool {
        let Some(url) = self.statements else {
            return false;
        };
        // The trial's database is a fresh copy of the template: the extension
        // is made in it before the counts start.
        self.rt.block_on(async {
            statements::enable(url, true).await.is_ok() && statements::reset(url).await.is_ok()
        })
    }

    fn statements_read(&self) -> Option<Vec<Statement>> {
        let url = self.statements?;
        self.rt.block_on(statements::read(url)).ok()
    }

    fn read_all(&self, containers: &[String]) -> Vec<Option<(Source, Reading)>> {
        let Some(docker) = self.docker else {
            return vec![None; containers.len()];
        };
        self.rt.block_on(async {
            let mut out = Vec::new();
            for c in containers {
                let r = async {
                    let s = usage::source(docker, c).await?;
                    let r = usage::read(docker, &s).await?;
                    anyhow::Ok((s, r))
                }
                .await;
                out.push(r.ok());
            }
            out
        })
    }

    fn used_since(&self, before: Vec<Option<(Source, Reading)>>) -> Vec<Option<Usage>> {
        let Some(docker) = self.docker else {
            return vec![None; before.len()];
        };
        self.rt.block_on(async {
            let mut out = Vec::new();
            for b in before {
                out.push(match b {
                    Some((s, r0)) => usage::read(docker, &s)
                        .await
                        .ok()
                        .map(|r1| Usage::between(&r0, &r1)),
                    None => None,
                });
            }
            out
        })
    }
}
