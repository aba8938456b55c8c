//! The run phases of one run: populate, setup, the load trials, teardown,
//! then the result files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;

use crate::engine::{self, client::Target, LoadOutput};
use crate::exit::{self, Classify, Failure};
use crate::files::write_atomic;
use crate::report::links;
use crate::results::{self, assemble, history, result_path, TrialResult};
use crate::scenario::Scenario;

use super::RunPlan;
use super::RunReport;

/// What goes into the load phase besides the scenario (data rows) and what it
/// writes as it runs (Locust's history file).
pub(super) struct Feeds<'a> {
    pub feed: Option<Arc<crate::scenario::data::Feed>>,
    pub history: Option<results::locust::History>,
    pub csv_prefix: Option<PathBuf>,
    pub live: Option<&'a crate::view::live::Live>,
}

pub(super) fn run_phase(
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

    // A shard of a distributed run meets its coordinator and starts its load
    // at the instant agreed with the other shards.
    let meeting = match args
        .shard
        .as_ref()
        .and_then(|s| Some((s, s.coordinator.as_ref()?)))
    {
        Some((shard, addr)) => {
            let (seg, seq) = shard.stripe.k6_flags();
            let (m, at) = rt
                .block_on(crate::shard::coordinate::Meeting::join(
                    addr,
                    shard.stripe.index,
                    shard.stripe.count(),
                    &seq,
                    &sc.sha256,
                ))
                .runtime()?;
            if !args.quiet {
                crate::errln!(
                    "shard {seg} of {seq}: clock {:+.1} ms off the coordinator's; starting with the others",
                    m.offset_ms
                );
            }
            rt.block_on(crate::shard::coordinate::sleep_until(at));
            Some((m, at))
        }
        None => None,
    };
    let mut shard_sink = args.shard.as_ref().map(|_| ShardSink::default());
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
        if let Some(s) = shard_sink.as_mut() {
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
        &target.url,
        overrides,
        started_at,
        &out,
    );
    result.trials = trials;
    result.stack = args.stack.clone();
    if let (Some(shard), Some(sink)) = (&args.shard, shard_sink) {
        let (segment, sequence) = shard.stripe.k6_flags();
        result.shard = Some(crate::results::shard::ShardPart {
            index: shard.stripe.index,
            count: shard.stripe.count(),
            segment,
            sequence,
            start_at: meeting.as_ref().map(|(m, _)| {
                chrono::DateTime::<chrono::Utc>::from(m.start_at)
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            }),
            clock_offset_ms: meeting.as_ref().map(|(m, _)| m.offset_ms),
            total: crate::results::shard::PackedSet::pack(&out.total),
            windows: sink.windows,
        });
    }
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
        match crate::report::html::run_report(&result, None) {
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
    if let Some((m, _)) = meeting {
        // The coordinator merges: it gets the whole result over the network.
        if let Err(e) = rt.block_on(m.hand_in(Ok(&result))) {
            crate::errln!("warning: the result could not be handed to the coordinator: {e:#}");
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
        let crossed = result.crossed_thresholds();
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

/// Keeps every second of a shard whole, for the exact merge.
#[derive(Default)]
struct ShardSink {
    windows: Vec<crate::results::shard::PackedWindow>,
}

impl engine::WindowSink for ShardSink {
    fn window(
        &mut self,
        second: u64,
        vus: u64,
        window: &crate::metrics::MetricsSet,
        _total: &crate::metrics::MetricsSet,
    ) {
        self.windows.push(crate::results::shard::PackedWindow {
            t: second,
            vus,
            set: crate::results::shard::PackedSet::pack(window),
        });
    }
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
