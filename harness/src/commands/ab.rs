//! `loadtest ab`: the pre-merge check. A = the service built from a git ref,
//! B = the working tree; both served at once on one stack, measured in
//! alternating trials (randomized ABBA/BAAB blocks, the database reset before
//! each), judged on the paired trials, more blocks added while undecided.
//! `loadtest calibrate` runs the same trials with B against itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::anyhow;

use crate::ab::{self, git, render, AbResult, AbSettings, JudgeSettings, Outcome, Side, SideInfo};
use crate::compare::GateConfig;
use crate::config::{read_dotenv, Config};
use crate::db::reset::{self, Strategy};
use crate::exit::{self, Classify, Failure};
use crate::files::write_atomic;
use crate::results::{self, RunResult};
use crate::scenario;
use crate::stack::compose::{self, PortSpec, Project, ServiceSpec};
use crate::stack::docker::DockerClient;
use crate::stack::progress::Progress;
use crate::stack::up;

use super::compare::Format;
use super::run::{self, RunPlan};

/// Exit code when the trials could not decide (neither regressed nor shown
/// within the tolerances).
pub use crate::exit::UNDECIDED;

pub const AB_HELP: &str = "A is the service built from --base (default: the commit of benchmark/baseline_<scenario>.json
when git has it, else the merge-base with the default branch); B is the working tree, uncommitted changes
included. Both run at once on one stack, each on its own port, in new containers every block. Trials come in
randomized ABBA/BAAB blocks (by default the two trials of a pair run at the same time: --mode duet),
the database reset from its template before each, a warm-up before each that is not measured. Every gated metric
(config/regression.toml) is judged on the paired trials: a bootstrap interval of the B/A ratio and an exact
sign-flip permutation test; it regressed when significant (p < alpha) and the whole interval lies beyond its
tolerance. While neither shown worse nor within the tolerances, blocks are added up to --max-trials/--budget.
With benchmark/calibration_<scenario>.json (`loadtest calibrate`) the tolerances follow the measured noise.

Exit codes:
  0   no gate is worse beyond its tolerance
  1   runtime error or interrupted (Ctrl-C); the trials so far are written
  2   usage error, a ref that does not exist or does not build (nothing is left running)
  97  undecided: the trials ran out before a verdict (the report says the smallest detectable change)
  98  at least one gate regressed";

#[derive(clap::Args, Debug, Clone)]
pub struct TrialArgs {
    /// Scenario name or path (default: LOADTEST_SCENARIO, else health)
    #[arg(short, long)]
    pub scenario: Option<String>,
    /// Measured length of one trial (default: the scenario's [ab] duration, else 15s)
    #[arg(long, value_parser = super::parse_duration)]
    pub duration: Option<Duration>,
    /// Unmeasured load before each trial (default: the scenario's [ab] warmup, else 5s)
    #[arg(long, value_parser = super::parse_duration)]
    pub warmup: Option<Duration>,
    /// Seed of the block order (default: from the clock; recorded in the result)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Settings file
    #[arg(long, default_value_os_t = crate::config::default_path())]
    pub config: PathBuf,
    #[arg(long, default_value = ".env")]
    pub env_file: PathBuf,
    /// Take the stack down afterwards (default: leave it up)
    #[arg(long)]
    pub down: bool,
    /// No progress lines
    #[arg(short, long)]
    pub quiet: bool,
    /// How the sides share the machine: `duet` loads A and B at the same time (interference
    /// hits both alike), `alternate` runs one trial at a time
    #[arg(long, value_enum, default_value = "duet")]
    pub mode: Mode,
    /// Serve a live page (default 127.0.0.1:5665; PORT or HOST:PORT): trials as they complete,
    /// A beside B, the verdict so far, a Stop button
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    pub web: Option<String>,
    /// NAME=VALUE for a k6 script's __ENV (repeatable), as `k6 run -e`
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = super::run::parse_env_pair)]
    pub env: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Duet,
    Alternate,
}

#[derive(clap::Args, Debug)]
pub struct AbCmd {
    /// Git ref of A, the base (a branch, tag or commit)
    #[arg(long)]
    pub base: Option<String>,
    #[command(flatten)]
    pub t: TrialArgs,
    /// Trials before the first verdict (rounded up to blocks of 4)
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(4..=400))]
    pub trials: u32,
    /// Most trials while undecided (rounded up to blocks of 4)
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(4..=400))]
    pub max_trials: u32,
    /// Most wall time for the trials; no block is started that would end past it
    #[arg(long, default_value = "10m", value_parser = super::parse_duration)]
    pub budget: Duration,
    /// What to print
    #[arg(short, long, value_enum, default_value = "text")]
    pub format: Format,
    /// Tolerances and gates (default: config/regression.toml)
    #[arg(long, default_value = "config/regression.toml")]
    pub gates: PathBuf,
    /// Calibration to set tolerances from (default: benchmark/calibration_<scenario>.json when present)
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Use the configured tolerances even when a calibration exists
    #[arg(long)]
    pub no_calibration: bool,
    /// Also write the printed report to this file
    #[arg(long)]
    pub report: Option<PathBuf>,
}

impl AbCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        if self.max_trials < self.trials {
            return Err(Failure::Usage(anyhow!(
                "--max-trials {} is below --trials {}",
                self.max_trials,
                self.trials
            )));
        }
        let ctx = Context::load(&self.t)?;
        let gates = GateConfig::load(&self.gates, false).usage()?;
        let calibration = if self.no_calibration {
            None
        } else {
            let path = self.calibration.clone().unwrap_or_else(|| {
                results::result_path(&ctx.cfg.results, "calibration", &ctx.scenario, "json")
            });
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let c: AbResult = serde_json::from_str(&text).map_err(|e| {
                        Failure::Usage(anyhow!("{}: not a calibration file: {e}", path.display()))
                    })?;
                    if c.kind != ab::Kind::Calibration || c.scenario != ctx.scenario {
                        return Err(Failure::Usage(anyhow!(
                            "{}: holds a {} of scenario `{}`, not a calibration of `{}`",
                            path.display(),
                            c.kind.name(),
                            c.scenario,
                            ctx.scenario
                        )));
                    }
                    Some((path, c.noise))
                }
                Err(_) if self.calibration.is_none() => None,
                Err(e) => {
                    return Err(Failure::Usage(anyhow!(
                        "cannot read {}: {e}",
                        path.display()
                    )))
                }
            }
        };

        // The two sources, both resolved before anything is built.
        let (head_sha, dirty) = git::head(&ctx.repo).usage()?;
        let head_commit = if dirty {
            format!("{head_sha}-dirty")
        } else {
            head_sha.clone()
        };
        let (base_ref, base_sha) = match &self.base {
            Some(r) => (r.clone(), git::resolve(&ctx.repo, r).usage()?),
            None => default_base(&ctx)?,
        };
        ctx.say(&format!(
            "ab: A = {} ({base_ref}), B = {} (working tree)",
            render::short(&base_sha),
            render::short(&head_commit)
        ));
        let head = ctx.build_head(&head_commit)?;
        let base = ctx.build_base(&base_ref, &base_sha)?;

        let settings = AbSettings {
            // 0 for a k6 script: its trial is the script as written.
            trial_s: if ctx.script {
                0.0
            } else {
                ctx.duration.as_secs_f64()
            },
            warmup_s: ctx.warmup.as_secs_f64(),
            min_trials: round_blocks(self.trials),
            max_trials: round_blocks(self.max_trials),
            budget_s: self.budget.as_secs_f64(),
            alpha: gates.alpha(),
            seed: ctx.seed,
            apps: ctx.apps_text(),
            tolerances: match &calibration {
                Some((p, _)) => format!("calibrated ({})", p.display()),
                None => format!("configured ({})", self.gates.display()),
            },
        };
        let out_path = results::result_path(
            &ctx.cfg.results,
            &format!("ab_{}", ctx.scenario),
            &format!(
                "{}_{}",
                render::short(&base_sha),
                render::short(&head_commit)
            ),
            "json",
        );
        let judge = JudgeSettings {
            gates: &gates,
            scenario: &ctx.scenario,
            alpha: gates.alpha(),
            noise: calibration.as_ref().map(|(_, n)| n),
            max_pairs: round_blocks(self.max_trials) / 2,
        };
        let result = ctx.trials(
            SideInfo {
                reference: base_ref,
                ..base
            },
            head,
            settings,
            &judge,
            &out_path,
            ab::Kind::Ab,
        )?;
        let printed = match self.format {
            Format::Text => render::text(&result),
            Format::Markdown => render::markdown(&result),
            Format::Junit => render::junit(&result),
            Format::Json => result.to_json(),
        };
        crate::outln!("{printed}");
        if let Some(p) = &self.report {
            write_atomic(p, printed.as_bytes()).runtime()?;
        }
        ctx.say(&format!("ab: every trial is in {}", out_path.display()));
        Ok(result.exit_code)
    }
}

/// The verdict so far, for the live page.
fn verdict_event(r: &AbResult) -> serde_json::Value {
    let metrics: Vec<serde_json::Value> = r
        .metrics
        .iter()
        .map(|m| {
            serde_json::json!({"scope": m.scope, "metric": m.metric, "gate": m.gate,
                               "decision": m.decision, "sentence": render::sentence(m)})
        })
        .collect();
    serde_json::json!({"outcome": format!("{:?}", r.outcome).to_lowercase(), "metrics": metrics})
}

fn round_blocks(n: u32) -> usize {
    (n as usize).div_ceil(4) * 4
}

/// A: the commit of the stored baseline when git has it, else the merge-base
/// with the default branch.
fn default_base(ctx: &Context) -> Result<(String, String), Failure> {
    let baseline = results::result_path(&ctx.cfg.results, "baseline", &ctx.scenario, "json");
    if let Ok(r) = RunResult::load(&baseline) {
        if let Some(c) = r.git.as_ref().map(|g| g.commit.clone()) {
            let c = c.trim_end_matches("-dirty").to_string();
            if git::has_commit(&ctx.repo, &c) {
                return Ok((format!("baseline commit ({})", baseline.display()), c));
            }
        }
    }
    let (name, sha) = git::merge_base_default(&ctx.repo).usage()?;
    Ok((format!("merge-base with {name}"), sha))
}

/// What both commands share: settings, scenario, the trial shape.
pub struct Context {
    pub cfg: Config,
    pub project: Project,
    pub repo: PathBuf,
    pub scenario_path: PathBuf,
    pub scenario: String,
    pub duration: Duration,
    pub warmup: Duration,
    pub seed: u64,
    pub quiet: bool,
    pub down: bool,
    pub duet: bool,
    /// The scenario is a k6 script: trials run it as written.
    pub script: bool,
    pub service: ServiceSpec,
    /// The live page's address (`--web`).
    pub web: Option<String>,
    /// The compose name of the service under test (the one A and B replace).
    pub service_name: String,
    /// `-e NAME=VALUE` for a k6 script's __ENV.
    pub script_env: Vec<(String, String)>,
    /// Held while this process owns the project's A/B apps and database.
    _lock: std::fs::File,
}

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

/// One A/B run per project at a time: two would remove each other's app
/// containers and race on the database copies.
fn lock_project(project: &str) -> Result<std::fs::File, Failure> {
    use std::os::fd::AsRawFd;
    let path = crate::stack::progress::file_for(&format!("ab-{project}"), "lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            Failure::Runtime(anyhow!("cannot open the lock file {}: {e}", path.display()))
        })?;
    // SAFETY: flock on a descriptor we own; released when the file closes.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(Failure::Usage(anyhow!(
            "another `loadtest ab` or `loadtest calibrate` is running on project `{project}` (lock {}); wait for it, or give this one its own project and ports (LOADTEST_PROJECT, LOADTEST_APP_PORT, LOADTEST_DB_PORT)",
            path.display()
        )));
    }
    Ok(file)
}

impl Context {
    pub fn load(t: &TrialArgs) -> Result<Context, Failure> {
        let vars = read_dotenv(&t.env_file)?;
        let mut cfg = Config::load(&t.config, &vars).usage()?;
        let name = t.scenario.clone().unwrap_or(cfg.scenario.clone());
        let scenario_path = scenario::resolve_in(&name, &cfg.scenarios, &cfg.k6_dir).usage()?;
        // A k6 script: each trial is one k6 run of the script as written (its own stages or
        // scenarios: k6's --duration would replace them by looping VUs), no separate warm-up.
        let script = scenario::is_script(&scenario_path);
        let (scenario_name, ab_duration, ab_warmup) = if script {
            if t.duration.is_some() || t.warmup.is_some() {
                return Err(Failure::Usage(anyhow!(
                    "{}: a k6 script's trial is the script as written: set its length in its options, not with --duration/--warmup",
                    scenario_path.display()
                )));
            }
            crate::k6::find().usage()?;
            (
                crate::k6::script_name(&scenario_path),
                Some(Duration::from_secs(1)),
                Some(Duration::ZERO),
            )
        } else {
            let sc = scenario::load(&scenario_path).usage()?;
            if sc.steps.is_empty() {
                return Err(Failure::Usage(anyhow!(
                    "{}: no [[steps]] to measure",
                    scenario_path.display()
                )));
            }
            (sc.name.clone(), sc.ab.duration, sc.ab.warmup)
        };
        let duration = t
            .duration
            .or(ab_duration)
            .unwrap_or(Duration::from_secs(15));
        let warmup = t.warmup.or(ab_warmup).unwrap_or(Duration::from_secs(5));
        if duration < Duration::from_secs(1) || duration > Duration::from_secs(3600) {
            return Err(Failure::Usage(anyhow!(
                "a trial must last between 1s and 1h (was {})",
                crate::duration::format(duration)
            )));
        }
        if warmup > Duration::from_secs(3600) {
            return Err(Failure::Usage(anyhow!("a warm-up of more than 1h")));
        }
        let project = cfg.project(&vars, &[]).usage()?;
        let service = project.service(&cfg.ab_service).cloned().ok_or_else(|| {
            Failure::Usage(anyhow!(
                "{}: no service `{}` to compare ([ab] service in {})",
                project.config_file.display(),
                cfg.ab_service,
                t.config.display()
            ))
        })?;
        if service.build.is_none() {
            return Err(Failure::Usage(anyhow!(
                "{}: service `{}` has no `build:`; A and B are built from their sources",
                project.config_file.display(),
                service.name
            )));
        }
        if !service.ports.iter().any(|p| p.protocol == "tcp") {
            return Err(Failure::Usage(anyhow!(
                "{}: service `{}` publishes no TCP port to send the load to",
                project.config_file.display(),
                service.name
            )));
        }
        // The disposable mark is checked before anything is built.
        crate::prepare::check_strategy(&cfg.db, Strategy::Template)?;
        let repo = git::toplevel(Path::new(".")).usage()?;
        let lock = lock_project(&project.name)?;
        let seed = t.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
        Ok(Context {
            cfg,
            project,
            repo,
            scenario_path,
            scenario: scenario_name,
            duration,
            warmup,
            seed,
            quiet: t.quiet,
            web: t
                .web
                .as_deref()
                .map(crate::view::live::parse_addr)
                .transpose()
                .usage()?,
            down: t.down,
            duet: t.mode == Mode::Duet,
            script,
            service_name: service.name.clone(),
            service,
            script_env: t.env.clone(),
            _lock: lock,
        })
    }

    /// How the trials shared the machine, for the result file.
    pub fn apps_text(&self) -> String {
        if self.duet {
            "duet: both apps up, one port each, A and B loaded at the same time".into()
        } else {
            "alternate: both apps up, one port each, one trial at a time".into()
        }
    }

    pub fn say(&self, msg: &str) {
        if !self.quiet {
            crate::errln!("{msg}");
        }
    }

    fn image_tag(&self, label: &str) -> String {
        let base = self.service.image.split(':').next().unwrap_or("app");
        format!("{base}:ab-{label}")
    }

    /// Builds the working tree (the build command, then the image).
    pub fn build_head(&self, commit: &str) -> Result<SideInfo, Failure> {
        let log = crate::stack::progress::file_for("ab-build-head", "log");
        self.say(&format!(
            "build B: `{}` in the working tree",
            self.cfg.ab_build
        ));
        git::build(&self.repo, &self.cfg.ab_build, &log)
            .map_err(|e| Failure::Usage(anyhow!("the working tree does not build: {e:#}")))?;
        let tag = self.image_tag(&format!("head-{}", render::short(commit)));
        let id = self
            .image(&tag, None)
            .map_err(|e| Failure::Usage(anyhow!("the working tree's image does not build: {e}")))?;
        Ok(SideInfo {
            reference: "working tree".into(),
            commit: commit.to_string(),
            image: tag,
            image_id: id,
        })
    }

    /// Builds a commit in the kept worktree (the build command, then the image).
    pub fn build_base(&self, reference: &str, sha: &str) -> Result<SideInfo, Failure> {
        let wt = git::base_worktree(&self.repo);
        self.say(&format!(
            "build A: {} in {} (kept between runs, so later builds are quick)",
            render::short(sha),
            wt.display()
        ));
        let named = |e: anyhow::Error| {
            Failure::Usage(anyhow!(
                "the base `{reference}` ({}) does not build: {e:#}",
                render::short(sha)
            ))
        };
        git::worktree(&self.repo, &wt, sha).map_err(named)?;
        let log = crate::stack::progress::file_for("ab-build-base", "log");
        git::build(&wt, &self.cfg.ab_build, &log).map_err(named)?;
        let tag = self.image_tag(&format!("base-{}", render::short(sha)));
        let id = self.image(&tag, Some(&wt)).map_err(named)?;
        Ok(SideInfo {
            reference: reference.to_string(),
            commit: sha.to_string(),
            image: tag,
            image_id: id,
        })
    }

    /// Builds the service's image as `tag`, from the checkout or from the
    /// same place inside another source tree.
    fn image(&self, tag: &str, tree: Option<&Path>) -> anyhow::Result<String> {
        let mut svc = self.service.clone();
        svc.image = tag.to_string();
        if let (Some(tree), Some(b)) = (tree, svc.build.as_mut()) {
            let rel = b.context.strip_prefix(&self.repo).map_err(|_| {
                anyhow!(
                    "the build context {} lies outside the repository {}",
                    b.context.display(),
                    self.repo.display()
                )
            })?;
            b.context = tree.join(rel);
        }
        let rt = super::runtime().map_err(|e| anyhow!("{e}"))?;
        rt.block_on(async {
            let docker = DockerClient::connect().await?;
            let progress = Progress::new(self.quiet);
            up::ensure_image(&docker, &self.project, &svc, &progress)
                .await
                .map(|r| r.id)
        })
    }

    /// Brings the stack up with its database template, starts one app
    /// container per side, runs the trials and judges them; the app
    /// containers are removed on every path.
    pub fn trials(
        &self,
        base: SideInfo,
        head: SideInfo,
        settings: AbSettings,
        judge: &JudgeSettings,
        out_path: &Path,
        kind: ab::Kind,
    ) -> Result<AbResult, Failure> {
        let live = match &self.web {
            Some(addr) => {
                let hello = serde_json::json!({
                    "kind": "ab", "scenario": self.scenario,
                    "base": render::short(&base.commit), "head": render::short(&head.commit),
                    "trial_s": settings.trial_s, "min_trials": settings.min_trials,
                    "max_trials": settings.max_trials,
                });
                let live = crate::view::live::Live::start(addr, hello).usage()?;
                crate::errln!("live page: {}", live.url());
                Some(live)
            }
            None => None,
        };
        let r = self.trials_served(base, head, settings, judge, out_path, kind, live.as_ref());
        if let Some(live) = live {
            let (data, files) = match &r {
                Ok(res) => (
                    serde_json::json!({"code": res.exit_code, "interrupted": res.interrupted,
                                       "message": render::headline(res)}),
                    std::fs::read(out_path)
                        .ok()
                        .and_then(|b| {
                            let name = out_path.file_name()?.to_string_lossy().to_string();
                            Some(vec![(name, b)])
                        })
                        .unwrap_or_default(),
                ),
                Err(f) => (
                    serde_json::json!({"code": f.code(), "interrupted": false, "message": format!("Failed: {f}.")}),
                    Vec::new(),
                ),
            };
            live.finish(data, files);
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn trials_served(
        &self,
        base: SideInfo,
        head: SideInfo,
        settings: AbSettings,
        judge: &JudgeSettings,
        out_path: &Path,
        kind: ab::Kind,
        live: Option<&crate::view::live::Live>,
    ) -> Result<AbResult, Failure> {
        let rt = super::runtime()?;
        rt.block_on(crate::prepare::prepare_stack(
            &self.project,
            &self.cfg,
            Strategy::Template,
            false,
            self.quiet,
        ))?;
        let docker = rt.block_on(DockerClient::connect()).runtime()?;
        let names = [self.side_service("ab-a"), self.side_service("ab-b")];
        let cleanup = || {
            rt.block_on(async {
                for s in &names {
                    if let Err(e) = docker
                        .remove_container(&self.project.container_name(&s.name))
                        .await
                    {
                        crate::errln!("warning: {e}");
                    }
                }
            });
        };
        let images = [base.image.clone(), head.image.clone()];
        // Fresh containers for every block, created in random order: what
        // sets one container apart from the other (its start, where its
        // threads and memory landed) must not stay with one side.
        let restart = |b_first: bool| {
            rt.block_on(self.start_apps(&docker, &names, [&images[0], &images[1]], b_first))
        };
        let urls = match restart(false) {
            Ok(u) => u,
            Err(e) => {
                cleanup();
                return Err(Failure::Runtime(e));
            }
        };
        self.say(&format!(
            "apps: A at {}, B at {} (new containers for every block)",
            urls[0], urls[1]
        ));
        let r = self.trial_loop(
            &rt, urls, &restart, base, head, settings, judge, out_path, kind, live,
        );
        cleanup();
        if self.down {
            rt.block_on(docker.down(&self.project.name, Some(&self.project.working_dir)))
                .runtime()?;
            self.say(&format!(
                "stack: project {} taken down (--down)",
                self.project.name
            ));
        } else {
            self.say(&format!(
                "stack: project {} left up; `loadtest down -p {}` removes it",
                self.project.name, self.project.name
            ));
        }
        r
    }

    /// The service as one side's container: its own name and image, and its
    /// port published on a free port of 127.0.0.1.
    fn side_service(&self, name: &str) -> ServiceSpec {
        let mut s = self.service.clone();
        s.name = name.to_string();
        s.build = None;
        s.depends_on.clear();
        let private = s
            .ports
            .iter()
            .find(|p| p.protocol == "tcp")
            .map(|p| p.container_port)
            .unwrap_or(8080);
        s.ports = vec![PortSpec {
            host_ip: "127.0.0.1".into(),
            host_port: None,
            container_port: private,
            protocol: "tcp".into(),
        }];
        s
    }

    async fn start_apps(
        &self,
        docker: &DockerClient,
        specs: &[ServiceSpec; 2],
        images: [&String; 2],
        b_first: bool,
    ) -> anyhow::Result<[String; 2]> {
        let mut urls = [String::new(), String::new()];
        let order = if b_first { [1, 0] } else { [0, 1] };
        for i in order {
            let mut s = specs[i].clone();
            s.image = images[i].clone();
            let name = self.project.container_name(&s.name);
            docker.remove_container(&name).await?;
            let t = Instant::now();
            docker.start_service(&self.project, &s).await?;
            docker
                .wait_for(
                    &self.project,
                    &s.name,
                    &compose::Condition::Healthy,
                    t,
                    self.cfg.wait_timeout,
                )
                .await?;
            let port = docker
                .published_port(&name, s.ports[0].container_port)
                .await?;
            urls[i] = format!("http://127.0.0.1:{port}");
        }
        Ok(urls)
    }

    #[allow(clippy::too_many_arguments)]
    fn trial_loop(
        &self,
        rt: &tokio::runtime::Runtime,
        mut urls: [String; 2],
        restart: &dyn Fn(bool) -> anyhow::Result<[String; 2]>,
        base: SideInfo,
        head: SideInfo,
        settings: AbSettings,
        judge: &JudgeSettings,
        out_path: &Path,
        kind: ab::Kind,
        live: Option<&crate::view::live::Live>,
    ) -> Result<AbResult, Failure> {
        let scratch = tempfile::tempdir().runtime()?;
        let stop = live.map(|l| l.stop_token());
        let mut rng = fastrand::Rng::with_seed(settings.seed);
        let mut plan = ab::schedule(settings.min_trials / 4, &mut rng);
        let t0 = Instant::now();
        let mut result = AbResult {
            schema_version: 1,
            kind,
            scenario: self.scenario.clone(),
            base,
            head,
            settings,
            started_at: chrono::Utc::now().to_rfc3339(),
            wall_s: 0.0,
            trials: Vec::new(),
            metrics: Vec::new(),
            outcome: Outcome::Undecided,
            exit_code: UNDECIDED,
            interrupted: false,
            noise: Default::default(),
        };
        let mut i = 0;
        while i < plan.len() {
            if i > 0 && i % 4 == 0 {
                urls = restart(rng.bool()).map_err(Failure::Runtime)?;
            }
            // Duet: both sides of a pair at once; otherwise one trial at a time.
            let step: Vec<Side> =
                plan[i..(i + if self.duet { 2 } else { 1 }).min(plan.len())].to_vec();
            let targets: Vec<(Side, &str)> = step
                .iter()
                .map(|&side| (side, urls[if side == Side::A { 0 } else { 1 }].as_str()))
                .collect();
            let started = chrono::Utc::now().to_rfc3339();
            let reset_ms = rt
                .block_on(reset::from_template(&self.cfg.db))
                .runtime()?
                .as_millis() as u64;
            // The next trial's copy is made during this trial's warm-up, so
            // that the next reset is a swap and no copy runs while measuring.
            let db = self.cfg.db.clone();
            let copy = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(reset::prepare_next(&db))
            });
            let measured = self.one_trial(&targets, scratch.path(), i, copy, stop.as_ref())?;
            let Some(runs) = measured else {
                result.interrupted = true;
                break;
            };
            for (k, r) in runs.iter().enumerate() {
                let side = step[k];
                let values = ab::values_of(r);
                let all = values.get(ab::ALL_REQUESTS);
                let get = |key: &str| all.and_then(|m| m.get(key)).copied().unwrap_or(f64::NAN);
                self.say(&format!(
                    "trial {:>2}/{} {:?}: {:.1} req/s, p50 {:.2} ms, p95 {:.2} ms, errors {:.2}% (reset {reset_ms} ms)",
                    i + k + 1,
                    plan.len(),
                    side,
                    get("rps"),
                    get("p50"),
                    get("p95"),
                    get("error_rate"),
                ));
                if let Some(l) = live {
                    l.send(
                        "trial",
                        &serde_json::json!({
                            "index": i + k, "side": format!("{side:?}"),
                            "requests": r.metrics.http_reqs.count, "rps": get("rps"),
                            "p50": get("p50"), "p95": get("p95"), "p99": get("p99"),
                        }),
                    );
                }
                result.trials.push(ab::Trial {
                    index: i + k,
                    side,
                    started_at: started.clone(),
                    duration_s: r.duration_s,
                    reset_ms,
                    requests: r.metrics.http_reqs.count,
                    values,
                });
            }
            i += step.len();
            result.wall_s = t0.elapsed().as_secs_f64();
            if i % 4 == 0 && i >= result.settings.min_trials {
                result.metrics = ab::judge(&result.trials, judge);
                result.outcome = ab::outcome(&result.metrics);
                if let Some(l) = live {
                    l.send("verdict", &verdict_event(&result));
                }
                match ab::next_step(i, result.outcome, result.wall_s, &result.settings, kind) {
                    ab::NextStep::Stop => break,
                    ab::NextStep::Continue => {}
                    ab::NextStep::MoreBlock => {
                        if !self.quiet {
                            let open: Vec<String> = result
                                .metrics
                                .iter()
                                .filter(|m| m.gate && m.decision == "undecided")
                                .map(|m| format!("{} {}", m.scope, m.metric))
                                .collect();
                            crate::errln!(
                                "  undecided after {i} trials ({}): one more block",
                                open.join(", ")
                            );
                        }
                        plan.extend(ab::schedule(1, &mut rng));
                    }
                }
            }
            write_atomic(out_path, result.to_json().as_bytes()).runtime()?;
        }
        result.wall_s = t0.elapsed().as_secs_f64();
        result.metrics = ab::judge(&result.trials, judge);
        result.outcome = ab::outcome(&result.metrics);
        result.exit_code = if result.interrupted {
            exit::RUNTIME
        } else {
            match result.outcome {
                Outcome::Pass => exit::OK,
                Outcome::Regressed => exit::REGRESSED,
                Outcome::Undecided => UNDECIDED,
            }
        };
        if kind == ab::Kind::Calibration {
            result.noise = ab::noise(&result.trials);
            result.exit_code = if result.interrupted {
                exit::RUNTIME
            } else {
                exit::OK
            };
        }
        write_atomic(out_path, result.to_json().as_bytes()).runtime()?;
        if result.interrupted {
            crate::errln!(
                "interrupted after {} trials; they are in {}",
                result.trials.len(),
                out_path.display()
            );
        }
        Ok(result)
    }

    /// A warm-up and one measured trial per target (all at once when more
    /// than one); `None` when interrupted.
    fn one_trial(
        &self,
        targets: &[(Side, &str)],
        scratch: &Path,
        i: usize,
        copy: std::thread::JoinHandle<anyhow::Result<Duration>>,
        stop: Option<&tokio_util::sync::CancellationToken>,
    ) -> Result<Option<Vec<RunResult>>, Failure> {
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
        };
        let all = |duration: Duration, what: &str| -> Result<Vec<run::RunReport>, Failure> {
            std::thread::scope(|sc| {
                let handles: Vec<_> = targets
                    .iter()
                    .map(|(side, url)| {
                        let p = plan(url, duration, format!("{what}-{i}-{side:?}"));
                        sc.spawn(move || run::execute(p))
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
        let measured = match all(self.duration, "trial") {
            Err(_) if stopped() => return Ok(None),
            m => m?,
        };
        for m in measured {
            let r = RunResult::load(&m.json).runtime()?;
            if m.code == exit::RUNTIME || r.interrupted {
                return Ok(None);
            }
            out.push(r);
        }
        Ok(Some(out))
    }
}
