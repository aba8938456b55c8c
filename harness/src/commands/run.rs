//! `loadtest run`: the orchestration of one run, from scenario file to result
//! files: set-up (scenario, target, data, database step), the run phases
//! (populate, setup, load trials, teardown), then the result files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;

use crate::engine::{self, client::Target, LoadOutput};
use crate::exit::{self, Classify, Failure};
use crate::files::write_atomic;
use crate::prepare;
use crate::report::links;
use crate::results::{self, assemble, history, result_path, RunResult, TrialResult};
use crate::scenario::{self, Scenario};

pub use super::plan::{RunPlan, RunReport, TlsArgs, ViewArgs};

#[derive(clap::Args, Debug)]
pub struct RunCmd {
    /// Scenario name (<scenarios-dir>/NAME.toml, else a k6 script NAME.js there or in k6/) or a
    /// path to a .toml file or a k6 script (.js, run by k6)
    #[arg(short, long)]
    pub scenario: String,
    /// NAME=VALUE for a k6 script's __ENV (as k6's -e); BASE_URL is the target
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// Base URL of the system under test, e.g. http://127.0.0.1:8080 (default: [target] url of
    /// loadtest.toml, else the app service's published port)
    #[arg(short, long, env = "LOADTEST_TARGET")]
    pub target: Option<String>,
    /// Number of VUs; overrides the scenario's executor where it applies (as k6's --vus)
    #[arg(long)]
    pub vus: Option<u32>,
    /// Duration such as 30s or 1m30s; overrides the scenario's executor where it applies
    #[arg(long, value_parser = super::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Run name: the prefix of the result files
    #[arg(short, long, default_value = "baseline")]
    pub run_name: String,
    /// Folder for the result files
    #[arg(short, long, default_value = "benchmark")]
    pub out: PathBuf,
    /// Folder holding the scenario files (default: [paths] scenarios of loadtest.toml, else scenarios;
    /// k6 scripts are also looked for in its [k6] dir)
    #[arg(long, env = "LOADTEST_SCENARIOS_DIR")]
    pub scenarios_dir: Option<PathBuf>,
    /// No live progress line
    #[arg(short, long)]
    pub quiet: bool,
    /// Push live metrics to this Prometheus Pushgateway every 5 s and at the end
    #[arg(long, env = "LOADTEST_PUSH_URL")]
    pub push_url: Option<String>,
    /// Prometheus with the service's own metrics: adds the server-side view (server vs client p95 per route)
    #[arg(long, env = "LOADTEST_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Bucket series of the service's latency histogram (needs `route` and `method` labels)
    #[arg(long, env = "LOADTEST_SERVER_METRIC", default_value = crate::metrics::server::DEFAULT_SELECTOR)]
    pub server_metric: String,
    /// Grafana base URL: the "Load test" dashboard link for the run is printed (with --push-url)
    #[arg(long, env = "LOADTEST_GRAFANA_URL")]
    pub grafana_url: Option<String>,
    /// Database step: template, truncate or delete before the run; snapshot = copy before, restore after
    /// (the database and its settings come from [database] of --config)
    #[arg(long, value_enum)]
    pub reset: Option<crate::db::reset::Strategy>,
    /// Database for --reset (default: [database] url of --config)
    #[arg(long, env = "LOADTEST_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Settings file read for --reset
    #[arg(long, default_value_os_t = crate::config::default_path())]
    pub config: PathBuf,
    /// Run the load phase N times (after one setup) and keep every trial's figures;
    /// `loadtest compare` then judges between-trial variance (use 5 or more)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Also write Locust's CSV files: PREFIX_stats.csv and PREFIX_failures.csv at the end,
    /// PREFIX_stats_history.csv every second during the run (e.g. --csv benchmark/run1)
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<PathBuf>,
    #[command(flatten)]
    pub view: ViewArgs,
}

impl RunCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        // The settings give what the flags leave out: the target, the scenario
        // folders, the k6 mount; a stack that is up is reached by service name.
        // Flags are checked before the settings and the scenario are read.
        let web = self.view.web_addr()?;
        let vars = crate::config::read_dotenv(Path::new(".env"))?;
        let loaded = crate::config::Config::load(&self.config, &vars);
        let needs_cfg = self.target.is_none();
        if needs_cfg && !self.config.is_file() {
            return Err(Failure::Usage(anyhow!(
                "no target: give --target URL (-t), or run where a loadtest.toml names one ([target] url, or [stack] app_service)"
            )));
        }
        let mut cfg = match loaded {
            Ok(c) => Some(c),
            Err(e) if needs_cfg => return Err(Failure::Usage(e)),
            Err(_) => None,
        };
        let mut target = self.target.clone();
        if let Some(c) = cfg.as_mut() {
            if c.project(&vars, &[]).is_ok() {
                super::runtime()?.block_on(crate::prepare::learn_running(c, &vars));
            }
            if target.is_none() {
                target = Some(crate::resolve::url(&c.target));
            }
        }
        let target = target.unwrap_or_default();
        let scenarios_dir = self
            .scenarios_dir
            .clone()
            .or(cfg.as_ref().map(|c| c.scenarios.clone()))
            .unwrap_or_else(|| PathBuf::from("scenarios"));
        let k6_dir = match &cfg {
            Some(c) if c.k6_dir.is_dir() => c.k6_dir.clone(),
            _ => std::env::var_os("LOADTEST_K6_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| scenarios_dir.parent().unwrap_or(Path::new(".")).join("k6")),
        };
        let scenario = scenario::resolve_in(&self.scenario, &scenarios_dir, &k6_dir)
            .usage()?
            .display()
            .to_string();
        let k6_mount = cfg
            .as_ref()
            .filter(|c| c.k6_dir.is_dir())
            .map(|c| (c.k6_mount.clone(), c.k6_dir.clone()));
        let db_reset = match self.reset {
            None => None,
            Some(strategy) => {
                let vars = crate::config::read_dotenv(Path::new(".env"))?;
                let cfg = crate::config::Config::load(&self.config, &vars).usage()?;
                super::runtime()?.block_on(crate::prepare::learn_running(&cfg, &vars));
                let mut db = cfg.db;
                if let Some(u) = &self.database_url {
                    db.url = u.clone();
                }
                Some((strategy, db))
            }
        };
        let report = execute(RunPlan {
            tls: self.tls.clone(),
            db_reset,
            scenario,
            scenarios_dir,
            target,
            vus: self.vus,
            duration: self.duration,
            run_name: self.run_name.clone(),
            out: self.out.clone(),
            quiet: self.quiet,
            repeat: self.repeat,
            stack: None,
            push_url: self.push_url.clone(),
            prometheus_url: self.prometheus_url.clone().filter(|u| !u.is_empty()),
            server_metric: self.server_metric.clone(),
            grafana_url: self.grafana_url.clone().filter(|u| !u.is_empty()),
            trial: false,
            csv: self.csv.clone(),
            web,
            html: !self.view.no_html,
            stop: None,
            script_env: self.env.clone(),
            k6_mount,
            k6_hosts: None,
        })?;
        Ok(report.code)
    }
}

pub fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}`: expected NAME=VALUE")),
    }
}

pub fn execute(args: RunPlan) -> Result<RunReport, Failure> {
    results::check_name("run name", &args.run_name).usage()?;
    let path = scenario::resolve(&args.scenario, &args.scenarios_dir).usage()?;
    if scenario::is_script(&path) {
        return super::k6::run_script(&args, &path);
    }
    let mut sc: Scenario = scenario::load(&path).usage()?;
    if sc.steps.is_empty() {
        return Err(Failure::Usage(anyhow!(
            "{}: no [[steps]] to run under load (only [[populate]]): `loadtest populate -s {}` creates its items",
            path.display(),
            args.scenario
        )));
    }
    let overrides = sc
        .options
        .apply_overrides(args.vus, args.duration)
        .map_err(|e| Failure::Usage(anyhow!("{e}")))?;
    let sc = Arc::new(sc);

    let rt = super::runtime()?;
    let tls = args.tls.settings(&sc, &path);
    let target = Arc::new(
        rt.block_on(Target::resolve(
            &args.target,
            &tls,
            sc.options.http_version,
            &sc.options.hosts,
        ))
        .usage()?,
    );
    // Paths must form valid URIs with this target before anything is sent.
    for steps in [&sc.setup, &sc.steps, &sc.teardown] {
        engine::vu::prepare(steps, &target, sc.options.decompress)
            .map_err(|e| Failure::Usage(anyhow!("{}: {e}", path.display())))?;
    }
    // `-r a_b -s c` and `-r a -s b_c` name the same file: never overwrite
    // another run's result.
    let json = result_path(&args.out, &args.run_name, &sc.name, "json");
    if let Ok(old) = RunResult::load(&json) {
        if old.run != args.run_name || old.scenario != sc.name {
            return Err(Failure::Usage(anyhow!(
                "{} holds the result of run `{}` of scenario `{}`; run `{}` of `{}` would overwrite it: choose another run name",
                json.display(),
                old.run,
                old.scenario,
                args.run_name,
                sc.name
            )));
        }
    }
    std::fs::create_dir_all(&args.out).map_err(|e| {
        Failure::Usage(anyhow!(
            "cannot create output folder {}: {e}",
            args.out.display()
        ))
    })?;
    for note in &overrides {
        if !args.quiet {
            crate::errln!("note: {note}");
        }
    }

    // Data rows are checked against the VUs before anything is sent or reset.
    let feed = sc
        .data
        .as_ref()
        .map(|d| crate::scenario::data::load(d, &path, sc.options.executor.max_vus()).map(Arc::new))
        .transpose()
        .usage()?;

    // The live page offers Locust's CSV files too: without --csv they are written to a
    // temporary folder and only handed to the page.
    let page_csv = match (&args.web, &args.csv) {
        (Some(_), None) => Some(tempfile::tempdir().runtime()?),
        _ => None,
    };
    let csv_prefix = args.csv.clone().or_else(|| {
        page_csv
            .as_ref()
            .map(|d| d.path().join(format!("{}_{}", args.run_name, sc.name)))
    });
    // Locust's history file is opened before anything is sent: a bad prefix costs nothing.
    let history = csv_prefix
        .as_ref()
        .map(|prefix| {
            let steps = sc
                .steps
                .iter()
                .map(|s| (s.method.to_string(), s.name.clone()))
                .collect();
            results::locust::History::create(prefix, steps)
        })
        .transpose()
        .usage()?;

    let live = match &args.web {
        Some(addr) => {
            let hello = crate::view::live::hello(&sc, &args.run_name, &args.target, args.repeat);
            let live = crate::view::live::Live::start(addr, hello).usage()?;
            crate::errln!("live page: {}", live.url());
            Some(live)
        }
        None => None,
    };

    // The database step: a reset before the run, or a snapshot put back after it whatever happens.
    let snapshot = match &args.db_reset {
        Some((strategy, db)) => {
            rt.block_on(prepare::reset_before_run(db, *strategy, args.quiet))?
        }
        None => None,
    };
    let outcome = run_phase(
        &args,
        sc,
        &path,
        target,
        overrides,
        &rt,
        Feeds {
            feed,
            history,
            csv_prefix,
            live: live.as_ref(),
        },
    );
    let outcome = match snapshot {
        None => outcome,
        Some(snap) => restored(&rt, &snap, args.quiet, outcome),
    };
    if let Some(live) = live {
        say_goodbye(live, &outcome);
    }
    outcome
}

/// The live page's last event: how the run ended and its files.
fn say_goodbye(live: crate::view::live::Live, outcome: &Result<RunReport, Failure>) {
    let (data, files) = match outcome {
        Ok(r) => {
            let files = r
                .files
                .iter()
                .filter_map(|p| {
                    let name = p.file_name()?.to_string_lossy().to_string();
                    // The HTML report is not offered: it is the page's own figures, offline.
                    (!name.ends_with(".html"))
                        .then(|| std::fs::read(p).ok().map(|b| (name, b)))
                        .flatten()
                })
                .collect();
            (
                serde_json::json!({"code": r.code, "interrupted": r.code == exit::RUNTIME, "message": r.message}),
                files,
            )
        }
        Err(f) => (
            serde_json::json!({"code": f.code(), "interrupted": false, "message": format!("Failed: {f}.")}),
            Vec::new(),
        ),
    };
    live.finish(data, files);
}

/// Puts the snapshot back after the run, whatever its outcome.
fn restored(
    rt: &tokio::runtime::Runtime,
    snap: &crate::db::reset::Snapshot,
    quiet: bool,
    outcome: Result<RunReport, Failure>,
) -> Result<RunReport, Failure> {
    match rt.block_on(prepare::restore_after_run(snap, quiet)) {
        Ok(()) => outcome,
        Err(e) => {
            // The run's own outcome still stands; the restore failure must not go unseen.
            crate::errln!("error: {e:#}");
            match outcome {
                Ok(_) => Err(Failure::Runtime(anyhow!(
                    "the run finished but its database could not be restored (see above)"
                ))),
                err => err,
            }
        }
    }
}

/// What goes into the load phase besides the scenario (data rows) and what it
/// writes as it runs (Locust's history file).
struct Feeds<'a> {
    feed: Option<Arc<crate::scenario::data::Feed>>,
    history: Option<results::locust::History>,
    csv_prefix: Option<PathBuf>,
    live: Option<&'a crate::view::live::Live>,
}

fn run_phase(
    args: &RunPlan,
    sc: Arc<Scenario>,
    path: &Path,
    target: Arc<Target>,
    overrides: Vec<String>,
    rt: &tokio::runtime::Runtime,
    feeds: Feeds,
) -> Result<RunReport, Failure> {
    let Feeds {
        feed,
        mut history,
        csv_prefix,
        live,
    } = feeds;
    let stop = args.stop.clone().or_else(|| live.map(|l| l.stop_token()));
    let exporter = args
        .push_url
        .as_deref()
        .map(|u| crate::metrics::export::Exporter::start(u, &args.run_name, &sc.name))
        .transpose()
        .usage()?;
    let env = engine::env_value();
    let mut base: BTreeMap<String, minijinja::Value> = BTreeMap::new();
    base.insert("env".into(), env.clone());
    if !sc.populate.is_empty() {
        until_interrupted(
            rt,
            stop.as_ref(),
            "populate",
            crate::populate::run_all(&sc, &target, &base, !args.quiet),
        )?
        .runtime()?;
    }
    let setup_vars = until_interrupted(
        rt,
        stop.as_ref(),
        "setup",
        engine::run_once(&sc, &target, "setup", &sc.setup, base.clone()),
    )?
    .map_err(|e| Failure::Runtime(anyhow!("{}: {e}", path.display())))?;
    let mut vars = base.clone();
    vars.extend(setup_vars);

    let started_at = chrono::Utc::now();
    // The generator's CPU is counted from here: a full cycle's stack work and seeding are not load.
    let cpu_before = results::process_usage().0;
    // The same for memory: the peak reported is the generator's during the load.
    results::reset_peak_memory();
    let repeat = args.repeat.max(1);
    let mut outs = Vec::new();
    let mut live_sink = live.map(|l| crate::view::live::LiveSink::new(l, sc.clone()));
    for trial in 0..repeat {
        if repeat > 1 && !args.quiet {
            crate::errln!("trial {}/{repeat}", trial + 1);
        }
        let mut sinks: Vec<&mut dyn engine::WindowSink> = Vec::new();
        if let Some(h) = history.as_mut() {
            sinks.push(h);
        }
        if let Some(s) = live_sink.as_mut() {
            sinks.push(s);
        }
        let hooks = engine::Hooks {
            exporter: exporter.as_ref(),
            sinks,
            stop: stop.clone(),
        };
        let mut out = rt
            .block_on(engine::run_load(
                sc.clone(),
                target.clone(),
                vars.clone(),
                !args.quiet,
                feed.clone(),
                hooks,
            ))
            .map_err(|e| Failure::Runtime(anyhow!(e)))?;
        for e in &mut out.timeline {
            e.trial = trial;
        }
        let stop = out.interrupted || out.aborted_by.is_some();
        outs.push(out);
        if stop {
            break;
        }
    }
    let trials: Vec<TrialResult> = if repeat > 1 {
        outs.iter()
            .enumerate()
            .map(|(i, o)| assemble::trial_result(i as u32, &sc, o))
            .collect()
    } else {
        Vec::new()
    };
    let out = assemble::combine(&sc, outs);
    let ended_at = chrono::Utc::now();
    let pushed = exporter.is_some();
    if let Some(x) = exporter {
        x.finish();
    }

    if !out.interrupted && !sc.teardown.is_empty() {
        let teardown = until_interrupted(
            rt,
            stop.as_ref(),
            "teardown",
            engine::run_once(&sc, &target, "teardown", &sc.teardown, vars),
        );
        match teardown {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => crate::errln!("warning: {e}"),
            Err(e) => crate::errln!("warning: {e}; the results are written"),
        }
    }

    let mut result = assemble::build_result(
        &sc,
        path,
        &args.run_name,
        &target,
        overrides,
        started_at,
        &out,
    );
    result.trials = trials;
    result.stack = args.stack.clone();
    let lg = &mut result.loadgen;
    lg.cpu_seconds = ((lg.cpu_seconds - cpu_before).max(0.0) * 100.0).round() / 100.0;
    if result.duration_s > 0.0 {
        let cores = result.host.cores.max(1) as f64;
        lg.cpu_saturation =
            ((lg.cpu_seconds / result.duration_s / cores) * 1000.0).round() / 1000.0;
    }
    if let Some(prom) = &args.prometheus_url {
        result.server = server_view(&sc, &out, prom, &args.server_metric, started_at, ended_at);
    }
    if let (true, Some(g)) = (pushed, &args.grafana_url) {
        result.dashboard_url = Some(links::dashboard_url(
            g,
            &args.run_name,
            &sc.name,
            started_at,
            ended_at,
        ));
    }
    let json = result_path(&args.out, &args.run_name, &sc.name, "json");
    let summary_path = result_path(&args.out, &args.run_name, &sc.name, "summary");
    let text = results::summary(&result);
    write_atomic(&json, result.to_json().as_bytes()).runtime()?;
    write_atomic(&summary_path, text.as_bytes()).runtime()?;
    let mut files = vec![json.clone(), summary_path.clone()];
    if args.html && !args.trial {
        let html = result_path(&args.out, &args.run_name, &sc.name, "html");
        match crate::view::report::run_report(&result, None) {
            Ok(page) => match write_atomic(&html, page.as_bytes()) {
                Ok(()) => files.push(html),
                Err(e) => crate::errln!("warning: {e:#}"),
            },
            Err(e) => crate::errln!("warning: no HTML report: {e:#}"),
        }
    }
    let mut csv_files = Vec::new();
    if let (Some(prefix), Some(h)) = (&csv_prefix, &history) {
        if let Some(e) = &h.failed {
            crate::errln!("warning: {} stopped being written: {e}", h.path.display());
        }
        csv_files.push(h.path.clone());
        match results::locust::write_final(prefix, &result) {
            Ok(files) => csv_files.extend(files),
            Err(e) => crate::errln!("warning: Locust CSV files: {e:#}"),
        }
    }
    if args.trial {
        return Ok(RunReport {
            code: if out.interrupted {
                exit::RUNTIME
            } else {
                exit::OK
            },
            json,
            files,
            message: String::new(),
        });
    }
    crate::outln!("{text}");
    crate::outln!("  results: {}", json.display());
    // Files only the live page was given (no --csv) are not listed.
    let listed = files
        .iter()
        .skip(1)
        .chain(csv_files.iter().filter(|_| args.csv.is_some()));
    for f in listed {
        crate::outln!("           {}", f.display());
    }
    files.extend(csv_files);
    if let Some(u) = &result.dashboard_url {
        let up = args.grafana_url.as_deref().is_some_and(links::reachable);
        crate::outln!(
            "  dashboard: {u}{}",
            if up {
                ""
            } else {
                "\n             (Grafana is not running: `loadtest up --profile grafana` starts it where its image can be pulled)"
            }
        );
    }
    if let Err(e) = history::append(&args.out, &result, &json) {
        crate::errln!("warning: could not append to the run history: {e:#}");
    }

    let (code, message) = if out.interrupted {
        crate::errln!("interrupted: partial results were written, marked \"interrupted\": true");
        (
            exit::RUNTIME,
            "Stopped before its planned end: the results so far were written, marked interrupted."
                .to_string(),
        )
    } else if result.thresholds.iter().any(|t| !t.ok) {
        let crossed: Vec<String> = result
            .thresholds
            .iter()
            .filter(|t| !t.ok)
            .map(|t| format!("{}: {}", t.metric, t.expression))
            .collect();
        crate::errln!("thresholds crossed: {}", crossed.join("; "));
        (
            exit::THRESHOLDS,
            format!("Finished; thresholds crossed: {}.", crossed.join("; ")),
        )
    } else {
        (exit::OK, "Finished: every threshold held.".to_string())
    };
    Ok(RunReport {
        code,
        json,
        files,
        message,
    })
}

/// Runs a phase outside the load (populate, setup, teardown) so that Ctrl-C
/// ends it like any failure: the caller then cleans up (a snapshot is put
/// back) and exits 1, instead of the process dying with the database changed.
fn until_interrupted<T>(
    rt: &tokio::runtime::Runtime,
    stop: Option<&tokio_util::sync::CancellationToken>,
    phase: &str,
    work: impl std::future::Future<Output = T>,
) -> Result<T, Failure> {
    let pressed = async {
        match stop {
            Some(t) => t.cancelled().await,
            None => std::future::pending().await,
        }
    };
    rt.block_on(async {
        tokio::select! {
            r = work => Ok(r),
            _ = tokio::signal::ctrl_c() => Err(Failure::Runtime(anyhow!(
                "interrupted (Ctrl-C) during {phase}"
            ))),
            _ = pressed => Err(Failure::Runtime(anyhow!(
                "stopped from the live page during {phase}"
            ))),
        }
    })
}

/// Seconds Prometheus needs after the run to scrape the service's last requests
/// (config/prometheus.yml scrapes every second).
const SCRAPE_GRACE: Duration = Duration::from_millis(2500);

/// The server-side view, or `None` with one warning when Prometheus cannot give it.
fn server_view(
    sc: &Scenario,
    out: &LoadOutput,
    prometheus: &str,
    selector: &str,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
) -> Option<crate::metrics::server::ServerView> {
    use crate::metrics::server::{query_view, ClientRequest};
    let paths: Vec<String> = sc
        .steps
        .iter()
        .map(|s| sc.templates.source(&s.path))
        .collect();
    let methods: Vec<String> = sc.steps.iter().map(|s| s.method.to_string()).collect();
    let clients: Vec<ClientRequest> = sc
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let r = &out.total.requests[i];
            ClientRequest {
                name: &s.name,
                method: &methods[i],
                path: &paths[i],
                // Without the open-model correction: the service cannot see schedule lateness.
                latency_us: r.uncorrected.as_ref().unwrap_or(&r.duration),
            }
        })
        .collect();
    let since = chrono::Utc::now() - end;
    if let Some(wait) = SCRAPE_GRACE.checked_sub(since.to_std().unwrap_or_default()) {
        std::thread::sleep(wait);
    }
    let at = end + chrono::Duration::from_std(SCRAPE_GRACE).unwrap_or_default();
    match query_view(prometheus, selector, start, at, &clients) {
        Ok(v) => Some(v),
        Err(e) => {
            crate::errln!(
                "warning: no server-side view: cannot query Prometheus at {prometheus}: {e:#} (the run's own results are complete)"
            );
            None
        }
    }
}
