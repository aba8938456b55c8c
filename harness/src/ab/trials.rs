//! The A/B trials: both sides served at once on one stack, measured in
//! alternating trials (randomized ABBA/BAAB blocks, the database reset before
//! each), judged on the paired trials, more blocks added while undecided.
//! `loadtest ab` runs A (a git ref) against B (the working tree);
//! `loadtest calibrate` runs B against itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::git;
use crate::compare::ab::{
    self as verdict, AbResult, AbSettings, JudgeSettings, Kind, Outcome, Side, SideInfo,
};
use crate::config::{read_dotenv, Config};
use crate::db::reset::{self, Strategy};
use crate::exit::{self, Classify, Failure};
use crate::files::write_atomic;
use crate::results::{self, RunResult};
use crate::scenario;
use crate::stack::compose::{Project, ServiceSpec};

/// How the two sides share the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A and B loaded at the same time: interference hits both alike.
    Duet,
    /// One trial at a time.
    Alternate,
}

/// What a command gives its trials (from its flags).
pub struct Options {
    /// Scenario name or path (None: the settings' scenario).
    pub scenario: Option<String>,
    pub duration: Option<Duration>,
    pub warmup: Option<Duration>,
    pub seed: Option<u64>,
    pub config: PathBuf,
    pub env_file: PathBuf,
    pub down: bool,
    pub quiet: bool,
    pub mode: Mode,
    /// The live page's address as given (`--web`).
    pub web: Option<String>,
    /// `-e NAME=VALUE` for a k6 script's __ENV.
    pub env: Vec<(String, String)>,
}

/// One series of trials: the two sides, its settings and where it is written.
pub struct Plan<'a> {
    pub base: SideInfo,
    pub head: SideInfo,
    pub settings: AbSettings,
    pub judge: &'a JudgeSettings<'a>,
    pub out: &'a Path,
    pub kind: Kind,
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
    pub fn load(t: &Options) -> Result<Context, Failure> {
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

    /// A: the commit of the stored baseline when git has it, else the
    /// merge-base with the default branch.
    pub fn default_base(&self) -> Result<(String, String), Failure> {
        let baseline = results::result_path(&self.cfg.results, "baseline", &self.scenario, "json");
        if let Ok(r) = RunResult::load(&baseline) {
            if let Some(c) = r.git.as_ref().map(|g| g.commit.clone()) {
                let c = c.trim_end_matches("-dirty").to_string();
                if git::has_commit(&self.repo, &c) {
                    return Ok((format!("baseline commit ({})", baseline.display()), c));
                }
            }
        }
        let (name, sha) = git::merge_base_default(&self.repo).usage()?;
        Ok((format!("merge-base with {name}"), sha))
    }

    /// Brings the stack up with its database template, starts one app
    /// container per side, runs the trials and judges them; the app
    /// containers are removed on every path.
    pub fn trials(&self, plan: Plan) -> Result<AbResult, Failure> {
        let live = match &self.web {
            Some(addr) => {
                let hello = serde_json::json!({
                    "kind": "ab", "scenario": self.scenario,
                    "base": crate::report::ab::short(&plan.base.commit), "head": crate::report::ab::short(&plan.head.commit),
                    "trial_s": plan.settings.trial_s, "min_trials": plan.settings.min_trials,
                    "max_trials": plan.settings.max_trials,
                });
                let live = crate::view::live::Live::start(addr, hello).usage()?;
                crate::errln!("live page: {}", live.url());
                Some(live)
            }
            None => None,
        };
        let out_path = plan.out;
        let r = self.trials_served(plan, live.as_ref());
        if let Some(live) = live {
            let (data, files) = match &r {
                Ok(res) => (
                    serde_json::json!({"code": res.exit_code, "interrupted": res.interrupted,
                                       "message": crate::report::ab::headline(res)}),
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

    pub(super) fn trial_loop(
        &self,
        rt: &tokio::runtime::Runtime,
        mut urls: [String; 2],
        restart: &dyn Fn(bool) -> anyhow::Result<[String; 2]>,
        plan: Plan,
        live: Option<&crate::view::live::Live>,
    ) -> Result<AbResult, Failure> {
        let Plan {
            base,
            head,
            settings,
            judge,
            out: out_path,
            kind,
        } = plan;
        // Without the Engine's counters the trials still run: no findings.
        let docker = rt
            .block_on(crate::stack::docker::DockerClient::connect())
            .ok();
        // The database's side: per statement, one side at a time only (in
        // duet both sides' queries reach one database at once, so the
        // extension is only looked for, not created).
        let enabled = crate::db::statements::enable(&self.cfg.db.url, !self.duet);
        let database = match rt.block_on(enabled) {
            Err(why) => Some(format!("database: no per-statement figures: {why}")),
            Ok(()) if self.duet => Some(
                "database: per-statement figures need --mode alternate (in duet both sides' queries reach one database at once)"
                    .to_string(),
            ),
            Ok(()) => None,
        };
        let statements_url = database.is_none().then_some(self.cfg.db.url.as_str());
        let scratch = tempfile::tempdir().runtime()?;
        let stop = live.map(|l| l.stop_token());
        let mut rng = fastrand::Rng::with_seed(settings.seed);
        let mut plan = verdict::schedule(settings.min_trials / 4, &mut rng);
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
            exit_code: exit::UNDECIDED,
            interrupted: false,
            noise: Default::default(),
            findings: Vec::new(),
            examined: Vec::new(),
            database,
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
            let probe = super::trial::Probe {
                rt,
                docker: docker.as_ref(),
                statements: statements_url,
            };
            let measured =
                self.one_trial(&targets, scratch.path(), i, copy, stop.as_ref(), &probe)?;
            let Some(runs) = measured else {
                result.interrupted = true;
                break;
            };
            for (k, m) in runs.iter().enumerate() {
                let r = &m.run;
                let side = step[k];
                let requests = r.metrics.http_reqs.count;
                let mut usage: BTreeMap<String, BTreeMap<String, f64>> = m
                    .usage
                    .as_ref()
                    .filter(|_| requests > 0)
                    .map(|u| per_request(u, requests))
                    .into_iter()
                    .map(|figs| ("app".to_string(), figs))
                    .collect();
                if let Some(st) = m.statements.as_ref().filter(|_| requests > 0) {
                    usage.extend(statement_figures(st, requests));
                }
                let values = verdict::values_of(r);
                let all = values.get(verdict::ALL_REQUESTS);
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
                result.trials.push(verdict::Trial {
                    index: i + k,
                    side,
                    started_at: started.clone(),
                    duration_s: r.duration_s,
                    reset_ms,
                    requests,
                    values,
                    usage,
                });
            }
            i += step.len();
            result.wall_s = t0.elapsed().as_secs_f64();
            if i % 4 == 0 && i >= result.settings.min_trials {
                result.metrics = verdict::judge(&result.trials, judge);
                result.outcome = verdict::outcome(&result.metrics);
                (result.findings, result.examined) =
                    verdict::findings(&result.trials, result.settings.alpha);
                if let Some(l) = live {
                    l.send("verdict", &verdict_event(&result));
                }
                match verdict::next_step(i, result.outcome, result.wall_s, &result.settings, kind) {
                    verdict::NextStep::Stop => break,
                    verdict::NextStep::Continue => {}
                    verdict::NextStep::MoreBlock => {
                        if !self.quiet {
                            let open: Vec<String> = result
                                .metrics
                                .iter()
                                .filter(|m| {
                                    m.gate
                                        && m.decision == crate::compare::paired::Decision::Undecided
                                })
                                .map(|m| format!("{} {}", m.scope, m.metric))
                                .collect();
                            crate::errln!(
                                "  undecided after {i} trials ({}): one more block",
                                open.join(", ")
                            );
                        }
                        plan.extend(verdict::schedule(1, &mut rng));
                    }
                }
            }
            write_atomic(out_path, result.to_json().as_bytes()).runtime()?;
        }
        result.wall_s = t0.elapsed().as_secs_f64();
        result.metrics = verdict::judge(&result.trials, judge);
        result.outcome = verdict::outcome(&result.metrics);
        (result.findings, result.examined) =
            verdict::findings(&result.trials, result.settings.alpha);
        result.exit_code = if result.interrupted {
            exit::RUNTIME
        } else {
            match result.outcome {
                Outcome::Pass => exit::OK,
                Outcome::Regressed => exit::REGRESSED,
                Outcome::Undecided => exit::UNDECIDED,
            }
        };
        if kind == Kind::Calibration {
            result.noise = verdict::noise(&result.trials);
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
}

/// The verdict so far, for the live page.
fn verdict_event(r: &AbResult) -> serde_json::Value {
    let metrics: Vec<serde_json::Value> = r
        .metrics
        .iter()
        .map(|m| {
            serde_json::json!({"scope": m.scope, "metric": m.metric, "gate": m.gate,
                               "decision": m.decision, "sentence": crate::report::ab::sentence(m)})
        })
        .collect();
    let findings: Vec<String> = r.findings.iter().map(crate::report::ab::finding).collect();
    serde_json::json!({"outcome": format!("{:?}", r.outcome).to_lowercase(), "metrics": metrics,
                       "where": {"findings": findings, "examined": r.examined,
                                 "database": r.database,
                                 "reach": crate::compare::ab::findings_reach(r)}})
}

/// A side's container use in one trial, per request where that is the unit.
fn per_request(u: &crate::stack::usage::Usage, requests: u64) -> BTreeMap<String, f64> {
    let n = requests as f64;
    BTreeMap::from([
        ("cpu_us_per_request".to_string(), u.cpu_s * 1e6 / n),
        (
            "net_bytes_per_request".to_string(),
            (u.net_rx_bytes + u.net_tx_bytes) as f64 / n,
        ),
        ("mem_mb".to_string(), u.mem_mb),
    ])
}

/// The database's work in one trial, per request: in all (`db`: queries and
/// execution time) and per normalised statement (`db: <statement>`: calls
/// and time), so that a statement only one side runs is named.
fn statement_figures(
    st: &[crate::db::statements::Statement],
    requests: u64,
) -> BTreeMap<String, BTreeMap<String, f64>> {
    let n = requests as f64;
    let mut out = BTreeMap::new();
    let calls: u64 = st.iter().map(|s| s.calls).sum();
    let ms: f64 = st.iter().map(|s| s.total_ms).sum();
    out.insert(
        "db".to_string(),
        BTreeMap::from([
            ("queries_per_request".to_string(), calls as f64 / n),
            ("db_ms_per_request".to_string(), ms / n),
        ]),
    );
    for s in st {
        let key = format!("db: {}", crate::db::statements::short_text(&s.query, 100));
        let figs: &mut BTreeMap<String, f64> = out.entry(key).or_default();
        *figs.entry("calls_per_request".to_string()).or_default() += s.calls as f64 / n;
        *figs.entry("ms_per_request".to_string()).or_default() += s.total_ms / n;
    }
    out
}
