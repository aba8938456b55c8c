//! `loadtest run`: the orchestration of one run, from scenario file to result files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;

use crate::engine::{self, client::Target, LoadOutput};
use crate::exit::{self, Classify, Failure};
use crate::metrics::{self, encode_histogram};
use crate::results::{self, history, *};
use crate::scenario::{self, Scenario};

pub struct RunArgs {
    pub scenario: String,
    pub scenarios_dir: PathBuf,
    pub target: String,
    pub vus: Option<u32>,
    pub duration: Option<Duration>,
    pub run_name: String,
    pub out: PathBuf,
    pub quiet: bool,
    /// Run the load phase this many times (trials) and keep each trial's figures.
    pub repeat: u32,
    /// Recorded in the result when the stack was brought up for this run.
    pub stack: Option<StackInfo>,
    /// Pushgateway for live metrics.
    pub push_url: Option<String>,
    /// Prometheus holding the service's own metrics (the server-side view).
    pub prometheus_url: Option<String>,
    /// Bucket series of the service's latency histogram, with `route` and `method` labels.
    pub server_metric: String,
    /// Grafana base URL, for the dashboard link printed at the end.
    pub grafana_url: Option<String>,
    /// Database reset before the run (snapshot: taken before, restored after).
    pub db_reset: Option<(crate::db::reset::Strategy, crate::db::reset::DbSettings)>,
}

/// Result of `loadtest run`: the exit code and where the files went.
pub struct RunReport {
    pub code: u8,
    pub json: PathBuf,
    pub summary: PathBuf,
}

fn check_run_name(name: &str) -> Result<(), Failure> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Failure::Usage(anyhow!(
            "run name `{name}` may only hold letters, digits, '-', '_' and '.' (it becomes part of file names)"
        )));
    }
    Ok(())
}

pub fn execute(args: RunArgs) -> Result<RunReport, Failure> {
    check_run_name(&args.run_name)?;
    let path = scenario::resolve(&args.scenario, &args.scenarios_dir).usage()?;
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

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .runtime()?;
    let target = Arc::new(rt.block_on(Target::resolve(&args.target)).usage()?);
    // Paths must form valid URIs with this target before anything is sent.
    for steps in [&sc.setup, &sc.steps, &sc.teardown] {
        engine::vu::prepare(steps, &target)
            .map_err(|e| Failure::Usage(anyhow!("{}: {e}", path.display())))?;
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

    // The database step: a reset before the run, or a snapshot put back after it whatever happens.
    use crate::db::reset::{self as dbreset, Strategy};
    let mut snapshot = None;
    if let Some((strategy, db)) = &args.db_reset {
        crate::db_cmd::check_strategy(db, *strategy)?;
        match strategy {
            Strategy::Snapshot => {
                let (snap, t) = rt.block_on(dbreset::take_snapshot(db)).runtime()?;
                if !args.quiet {
                    crate::errln!(
                        "snapshot: `{}` copied to `{}` in {} ms; it is put back after the run",
                        snap.database,
                        snap.copy,
                        t.as_millis()
                    );
                }
                snapshot = Some(snap);
            }
            Strategy::None => {}
            Strategy::Recreate => {
                return Err(Failure::Usage(anyhow!(
                    "`--reset recreate` rebuilds the whole stack: that is `loadtest bench` (or `loadtest up --fresh`)"
                )))
            }
            s => {
                let msg = rt.block_on(dbreset::reset(db, *s)).runtime()?;
                if !args.quiet {
                    crate::errln!("{msg}");
                }
            }
        }
    }
    let outcome = run_phase(&args, sc, &path, target, overrides, &rt, feed);
    let Some(snap) = snapshot else {
        return outcome;
    };
    match rt.block_on(dbreset::restore_snapshot(&snap)) {
        Ok(t) => {
            if !args.quiet {
                crate::errln!(
                    "snapshot: `{}` restored in {} ms",
                    snap.database,
                    t.as_millis()
                );
            }
            outcome
        }
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

fn run_phase(
    args: &RunArgs,
    sc: Arc<Scenario>,
    path: &Path,
    target: Arc<Target>,
    overrides: Vec<String>,
    rt: &tokio::runtime::Runtime,
    feed: Option<Arc<crate::scenario::data::Feed>>,
) -> Result<RunReport, Failure> {
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
        rt.block_on(crate::populate::run_all(&sc, &target, &base, !args.quiet))
            .runtime()?;
    }
    let setup_vars = rt
        .block_on(engine::run_once(
            &sc,
            &target,
            "setup",
            &sc.setup,
            base.clone(),
        ))
        .map_err(|e| Failure::Runtime(anyhow!("{}: {e}", path.display())))?;
    let mut vars = base.clone();
    vars.extend(setup_vars);

    let started_at = chrono::Utc::now();
    let repeat = args.repeat.max(1);
    let mut outs = Vec::new();
    for trial in 0..repeat {
        if repeat > 1 && !args.quiet {
            crate::errln!("trial {}/{repeat}", trial + 1);
        }
        let mut out = rt
            .block_on(engine::run_load(
                sc.clone(),
                target.clone(),
                vars.clone(),
                !args.quiet,
                exporter.as_ref(),
                feed.clone(),
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
            .map(|(i, o)| trial_result(i as u32, &sc, o))
            .collect()
    } else {
        Vec::new()
    };
    let out = combine(&sc, outs);
    let ended_at = chrono::Utc::now();
    let pushed = exporter.is_some();
    if let Some(x) = exporter {
        x.finish();
    }

    if !out.interrupted && !sc.teardown.is_empty() {
        if let Err(e) = rt.block_on(engine::run_once(
            &sc,
            &target,
            "teardown",
            &sc.teardown,
            vars,
        )) {
            crate::errln!("warning: {e}");
        }
    }

    let mut result = build_result(&sc, path, args, &target, overrides, started_at, &out);
    result.trials = trials;
    result.stack = args.stack.clone();
    if let Some(prom) = &args.prometheus_url {
        result.server = server_view(&sc, &out, prom, &args.server_metric, started_at, ended_at);
    }
    if let (true, Some(g)) = (pushed, &args.grafana_url) {
        result.dashboard_url = Some(dashboard_url(
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
    crate::outln!("{text}");
    crate::outln!(
        "  results: {}\n           {}",
        json.display(),
        summary_path.display()
    );
    if let Some(u) = &result.dashboard_url {
        let up = args.grafana_url.as_deref().is_some_and(reachable);
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

    let code = if out.interrupted {
        crate::errln!("interrupted: partial results were written, marked \"interrupted\": true");
        exit::RUNTIME
    } else if result.thresholds.iter().any(|t| !t.ok) {
        let crossed: Vec<String> = result
            .thresholds
            .iter()
            .filter(|t| !t.ok)
            .map(|t| format!("{}: {}", t.metric, t.expression))
            .collect();
        crate::errln!("thresholds crossed: {}", crossed.join("; "));
        exit::THRESHOLDS
    } else {
        exit::OK
    };
    Ok(RunReport {
        code,
        json,
        summary: summary_path,
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

/// Whether something listens at the URL's host and port.
fn reachable(url: &str) -> bool {
    use std::net::{TcpStream, ToSocketAddrs};
    crate::metrics::server::split_url(url)
        .ok()
        .and_then(|(hp, _)| hp.to_socket_addrs().ok()?.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

/// Grafana's "Load test" dashboard over the run's time range, with the run selected.
pub fn dashboard_url(
    grafana: &str,
    run: &str,
    scenario: &str,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
) -> String {
    // A little margin so the first and last pushes are inside the range.
    let from = start.timestamp_millis() - 5_000;
    let to = end.timestamp_millis() + 10_000;
    format!(
        "{}/d/loadtest/load-test?orgId=1&from={from}&to={to}&var-run={run}&var-scenario={scenario}",
        grafana.trim_end_matches('/')
    )
}

/// Merges the trials of a `--repeat` run into one output.
fn combine(sc: &Scenario, outs: Vec<LoadOutput>) -> LoadOutput {
    let mut total = metrics::MetricsSet::new(
        sc.steps.len(),
        sc.check_count(),
        sc.options.executor.is_open_model(),
    );
    let mut combined = LoadOutput {
        total: total.clone(),
        timeline: Vec::new(),
        duration: Duration::ZERO,
        interrupted: false,
        aborted_by: None,
        vus_max: 0,
        workers: 0,
    };
    for o in outs {
        total.merge(&o.total);
        combined.timeline.extend(o.timeline);
        combined.duration += o.duration;
        combined.interrupted |= o.interrupted;
        combined.aborted_by = combined.aborted_by.or(o.aborted_by);
        combined.vus_max = combined.vus_max.max(o.vus_max);
        combined.workers = combined.workers.max(o.workers);
    }
    combined.total = total;
    combined
}

fn checks_of(set: &metrics::MetricsSet, range: std::ops::Range<usize>) -> (u64, u64) {
    set.checks[range]
        .iter()
        .fold((0, 0), |(p, f), c| (p + c[0], f + c[1]))
}

fn trial_result(trial: u32, sc: &Scenario, o: &LoadOutput) -> TrialResult {
    let secs = o.duration.as_secs_f64();
    let t = &o.total;
    let requests = sc
        .steps
        .iter()
        .zip(&t.requests)
        .map(|(step, r)| {
            let checks = checks_of(t, step.first_check..step.first_check + step.checks.len());
            (
                step.name.clone(),
                Figures::new(&r.duration, r.count, r.failed, checks, secs),
            )
        })
        .collect();
    TrialResult {
        trial,
        duration_s: (secs * 1000.0).round() / 1000.0,
        interrupted: o.interrupted,
        overall: Figures::new(
            &t.all_durations(),
            t.total_requests(),
            t.total_failed(),
            checks_of(t, 0..t.checks.len()),
            secs,
        ),
        requests,
    }
}

fn build_result(
    sc: &Scenario,
    path: &Path,
    args: &RunArgs,
    target: &Target,
    overrides: Vec<String>,
    started_at: chrono::DateTime<chrono::Utc>,
    out: &LoadOutput,
) -> RunResult {
    let secs = out.duration.as_secs_f64();
    let t = &out.total;
    let names: Vec<String> = sc.steps.iter().map(|s| s.name.clone()).collect();
    let check_ranges: Vec<_> = sc
        .steps
        .iter()
        .map(|s| s.first_check..s.first_check + s.checks.len())
        .collect();

    let mut requests = BTreeMap::new();
    for (i, step) in sc.steps.iter().enumerate() {
        let rm = &t.requests[i];
        let checks = step
            .checks
            .iter()
            .enumerate()
            .map(|(c, ch)| {
                let [p, f] = t.checks[step.first_check + c];
                CheckResult {
                    name: ch.name.clone(),
                    passes: p,
                    fails: f,
                }
            })
            .collect();
        let mut statuses: Vec<(u16, u64)> = rm.statuses.clone();
        statuses.sort();
        requests.insert(
            step.name.clone(),
            RequestResult {
                index: i,
                method: step.method.to_string(),
                http_reqs: counter(rm.count, secs),
                http_req_failed: rate_stat(rm.failed, rm.count - rm.failed),
                http_req_duration: Trend::from_histogram(&rm.duration),
                http_req_duration_uncorrected: rm.uncorrected.as_ref().map(Trend::from_histogram),
                histogram: encode_histogram(&rm.duration),
                histogram_uncorrected: rm.uncorrected.as_ref().map(encode_histogram),
                status_codes: statuses
                    .into_iter()
                    .map(|(s, n)| (s.to_string(), n))
                    .collect(),
                checks,
            },
        );
    }

    let (passes, fails) = t
        .checks
        .iter()
        .fold((0, 0), |(p, f), c| (p + c[0], f + c[1]));
    let total_reqs = t.total_requests();
    let failed = t.total_failed();
    let metrics = Metrics {
        http_reqs: counter(total_reqs, secs),
        http_req_failed: rate_stat(failed, total_reqs - failed),
        http_req_duration: Trend::from_histogram(&t.all_durations()),
        http_req_duration_uncorrected: t.all_uncorrected().as_ref().map(Trend::from_histogram),
        iteration_duration: Trend::from_histogram(&t.iteration_duration),
        checks: rate_stat(passes, fails),
        iterations: counter(t.iterations, secs),
        dropped_iterations: counter(t.dropped_iterations, secs),
        interrupted_iterations: t.interrupted_iterations,
        vus_max: out.vus_max,
        data_sent: counter(t.bytes_sent, secs),
        data_received: counter(t.bytes_received, secs),
    };

    let thresholds = sc
        .thresholds
        .iter()
        .map(|th| {
            let value = metrics::observe(th, t, &names, &check_ranges, secs, out.vus_max);
            ThresholdResult {
                metric: th.key.clone(),
                expression: th.expression.clone(),
                value,
                // No data cannot prove a threshold holds.
                ok: value.is_some_and(|v| th.op.holds(v, th.limit)),
                abort_on_fail: th.abort_on_fail,
            }
        })
        .collect();

    let mut errors: Vec<ErrorCount> = t
        .errors
        .iter()
        .map(|(e, n)| ErrorCount {
            error: e.clone(),
            count: *n,
        })
        .collect();
    errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.error.cmp(&b.error)));

    let host = host_info();
    let (cpu, rss) = process_usage();
    let scenario_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    RunResult {
        schema_version: SCHEMA_VERSION,
        run: args.run_name.clone(),
        scenario: sc.name.clone(),
        scenario_file: path.display().to_string(),
        scenario_sha256: sc.sha256.clone(),
        description: sc.description.clone(),
        target: target.url.clone(),
        options: sc.options.to_json(),
        overrides,
        git: git_info(scenario_dir),
        started_at: started_at.to_rfc3339(),
        duration_s: (secs * 1000.0).round() / 1000.0,
        interrupted: out.interrupted,
        aborted_by: out.aborted_by.clone(),
        loadgen: LoadGen {
            workers: out.workers,
            cpu_seconds: (cpu * 100.0).round() / 100.0,
            cpu_saturation: if secs > 0.0 {
                ((cpu / secs / host.cores as f64) * 1000.0).round() / 1000.0
            } else {
                0.0
            },
            max_rss_kb: rss,
        },
        host,
        metrics,
        requests,
        errors,
        thresholds,
        timeline: out.timeline.clone(),
        trials: Vec::new(),
        stack: None,
        server: None,
        dashboard_url: None,
    }
}
