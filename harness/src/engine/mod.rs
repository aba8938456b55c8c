//! The load engine: worker threads run VUs; the controller (this module)
//! merges their per-second reports into a timeline and the run's totals,
//! shows progress, and stops the run on Ctrl-C or an `abort_on_fail` threshold.
//! It knows nothing of Docker or of result files.

pub mod client;
pub mod error;
mod spool;
pub mod tls;
pub mod vu;
pub mod worker;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use minijinja::Value;
use tokio::sync::{mpsc, watch};

use crate::metrics::window::Window;
use crate::metrics::{self, MetricsSet};
use crate::scenario::{Scenario, Step};
use client::Target;
pub use error::Error;
use error::OnceProblem;
use vu::{Prepared, Shared, Vu};
use worker::{Report, Worker};

/// Told of every second as it completes (the window) and of the run so far
/// (the total), e.g. to write files while the run goes on.
pub trait WindowSink {
    fn window(&mut self, second: u64, vus: u64, window: &MetricsSet, total: &MetricsSet);
}

/// What a run hangs on the load phase: live metrics, per-second sinks (files,
/// the live page) and a stop signal besides Ctrl-C (the page's Stop button).
#[derive(Default)]
pub struct Hooks<'a> {
    pub exporter: Option<&'a metrics::export::Exporter>,
    pub sinks: Vec<&'a mut dyn WindowSink>,
    pub stop: Option<tokio_util::sync::CancellationToken>,
}

/// What the load phase produced.
pub struct LoadOutput {
    pub total: MetricsSet,
    pub timeline: Vec<Window>,
    pub duration: Duration,
    pub interrupted: bool,
    /// The threshold that stopped the run early, if one did.
    pub aborted_by: Option<String>,
    pub vus_max: u64,
    pub workers: usize,
}

/// The process environment as the `env` template variable.
pub fn env_value() -> Value {
    let vars: BTreeMap<String, String> = std::env::vars().collect();
    Value::from(minijinja::value::Serde(&vars))
}

/// Runs setup or teardown steps once, in order, on one connection.
/// Returns the variables the steps extracted; the first failure stops it.
pub async fn run_once(
    scenario: &Arc<Scenario>,
    target: &Arc<Target>,
    section: &str,
    steps: &[Step],
    base_vars: BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Value>, Error> {
    let prepared: Vec<Prepared> = vu::prepare(steps, target, scenario.options.decompress)?;
    let sh = Shared {
        scenario: scenario.clone(),
        target: target.clone(),
        prepared: Vec::new(),
        base_vars,
        feed: None,
    };
    let mut vu = Vu::new(0, target.clone(), Default::default());
    for (step, prep) in steps.iter().zip(&prepared) {
        let failed = |problem| Error::Once {
            section: section.to_string(),
            step: step.name.clone(),
            problem,
        };
        let req = vu
            .build(&sh, step, prep)
            .map_err(|e| failed(OnceProblem::Build(Box::new(e))))?;
        let (res, _) = vu
            .exchange(&sh, step, prep, req, client::BODY_KEEP_MAX)
            .await;
        let resp = res.map_err(|e| failed(OnceProblem::Send(Box::new(e))))?;
        let status = resp.parts.status.as_u16();
        let json: Option<serde_json::Value> = serde_json::from_slice(&resp.body).ok();
        let body = || -> String {
            String::from_utf8_lossy(&resp.body)
                .chars()
                .take(300)
                .collect()
        };
        for check in &step.checks {
            if !check.passes(status, &resp.parts.headers, &resp.body, json.as_ref()) {
                return Err(failed(OnceProblem::Check {
                    check: check.name.clone(),
                    status,
                    body: body(),
                }));
            }
        }
        let missing = vu.extract(step, json.as_ref());
        if let Some(var) = missing.first() {
            return Err(failed(OnceProblem::Extract {
                var: var.clone(),
                status,
                body: body(),
            }));
        }
    }
    Ok(vu.vars().clone())
}

/// Progress line on a terminal; silent otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    planned: Duration,
}

impl Progress {
    fn new(enabled: bool, planned: Duration) -> Progress {
        let bar = (enabled && std::io::stdout().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(
                Some(planned.as_secs().max(1)),
                ProgressDrawTarget::stdout(),
            );
            b.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b
        });
        Progress { bar, planned }
    }

    fn update(&self, elapsed: u64, vus: u64, entry: &Window) {
        if let Some(b) = &self.bar {
            b.set_position(elapsed.min(self.planned.as_secs().max(1)));
            let p95 = entry
                .p95
                .map(|v| format!("{v:.2}ms"))
                .unwrap_or_else(|| "-".into());
            let err = if entry.requests > 0 {
                100.0 * entry.failures as f64 / entry.requests as f64
            } else {
                0.0
            };
            b.set_message(format!(
                "{}s/{}s  VUs {vus}  {:.0} req/s  p95 {p95}  errors {err:.2}%",
                elapsed.min(self.planned.as_secs()),
                self.planned.as_secs(),
                entry.requests as f64
            ));
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A window being assembled from the workers' reports.
struct Pending {
    set: MetricsSet,
    vus: u64,
}

/// Runs the load phase. `base_vars` holds `env` and the setup variables.
pub async fn run_load(
    scenario: Arc<Scenario>,
    target: Arc<Target>,
    base_vars: BTreeMap<String, Value>,
    show_progress: bool,
    feed: Option<Arc<crate::scenario::data::Feed>>,
    hooks: Hooks<'_>,
) -> Result<LoadOutput, Error> {
    let Hooks {
        exporter,
        mut sinks,
        stop,
    } = hooks;
    let prepared = vu::prepare(&scenario.steps, &target, scenario.options.decompress)?;
    let shared = Arc::new(Shared {
        scenario: scenario.clone(),
        target,
        prepared,
        base_vars,
        feed,
    });
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // No more workers than this generator has VUs (a shard has its share):
    // a worker without a VU would drop every arrival dealt to it.
    let vus = scenario
        .stripe
        .count_below(scenario.options.executor.max_vus() as u64);
    let workers = cores.min(vus.max(1) as usize).max(1);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut timeline = spool::Spool::new().map_err(Error::Spool)?;
    let mut spool_failed = None;
    let (stop_tx, stop_rx) = watch::channel(false);
    // A short head start so every worker begins on the same instant.
    let t0 = Instant::now() + Duration::from_millis(20);
    let mut handles = Vec::new();
    // Merged sets go back to their worker, emptied, to be recorded into again.
    let mut recycle = Vec::with_capacity(workers);
    for i in 0..workers {
        let (give_back, recycled) = std::sync::mpsc::channel();
        recycle.push(give_back);
        let w = Worker::new(i, workers, shared.clone(), t0, recycled);
        let (tx, stop) = (tx.clone(), stop_rx.clone());
        let h = std::thread::Builder::new()
            .name(format!("loadtest-worker-{i}"))
            .spawn(move || worker::run(w, tx, stop))
            .map_err(Error::Thread)?;
        handles.push(h);
    }
    drop(tx);

    let names: Vec<String> = scenario.steps.iter().map(|s| s.name.clone()).collect();
    let check_ranges = scenario.check_ranges();
    let steps: Vec<(String, std::ops::Range<usize>)> = names
        .iter()
        .cloned()
        .zip(check_ranges.iter().cloned())
        .collect();
    let progress = Progress::new(show_progress, scenario.options.executor.planned_duration());

    let mut total = MetricsSet::for_scenario(&scenario);
    // The windows since the last push, for per-interval latency.
    let mut interval = MetricsSet::for_scenario(&scenario);
    let methods: Vec<String> = scenario
        .steps
        .iter()
        .map(|s| s.method.to_string())
        .collect();
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    // Emptied per-second sets, reused for the next seconds.
    let mut spare: Vec<MetricsSet> = Vec::new();
    let mut reported: Vec<Option<u64>> = vec![None; workers];
    let mut done = vec![false; workers];
    let mut allocated = vec![0u64; workers];
    let mut vus_max = 0u64;
    let mut interrupted = false;
    let mut aborted_by = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut ctrl_c_seen = false;
    let stop_pressed = async {
        match &stop {
            Some(t) => t.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop_pressed);

    loop {
        let report = tokio::select! {
            r = rx.recv() => r,
            _ = &mut ctrl_c, if !ctrl_c_seen => {
                ctrl_c_seen = true;
                interrupted = true;
                let _ = stop_tx.send(true);
                continue;
            }
            // Stopped from the live page: the same graceful end as Ctrl-C.
            _ = &mut stop_pressed, if !ctrl_c_seen => {
                ctrl_c_seen = true;
                interrupted = true;
                let _ = stop_tx.send(true);
                continue;
            }
        };
        let Some(report) = report else { break };
        match report {
            Report::Window {
                worker,
                second,
                set,
                vus,
                allocated: a,
            } => {
                allocated[worker] = a;
                let p = pending.entry(second).or_insert_with(|| Pending {
                    set: spare
                        .pop()
                        .unwrap_or_else(|| MetricsSet::for_scenario(&scenario)),
                    vus: 0,
                });
                p.set.merge(&set);
                p.vus += vus;
                let mut set = set;
                set.reset();
                // A worker that has finished no longer takes sets.
                let _ = recycle[worker].send(set);
                reported[worker] = Some(reported[worker].map_or(second, |s| s.max(second)));
            }
            Report::Done { worker } => done[worker] = true,
        }
        vus_max = vus_max.max(allocated.iter().sum());
        // A second is complete once every live worker has reported it.
        while let Some(second) = pending.keys().next().copied() {
            let complete =
                (0..workers).all(|w| done[w] || reported[w].is_some_and(|s| s >= second));
            if !complete {
                break;
            }
            let p = pending.remove(&second).expect("present");
            total.merge(&p.set);
            if let Some(x) = exporter {
                interval.merge(&p.set);
                if (second + 1) % metrics::export::PUSH_EVERY_S == 0 {
                    x.push(metrics::export::render(&metrics::export::Snapshot {
                        total: &total,
                        interval: &interval,
                        names: &names,
                        methods: &methods,
                        check_ranges: &check_ranges,
                        free_checks: &[],
                        vus: p.vus,
                        vus_max,
                    }));
                    interval.reset();
                }
            }
            for s in sinks.iter_mut() {
                s.window(second, p.vus, &p.set, &total);
            }
            let entry = Window::from_window(second, &p.set, p.vus, &steps);
            progress.update(second + 1, p.vus, &entry);
            let mut done_set = p.set;
            done_set.reset();
            spare.push(done_set);
            if let Err(e) = timeline.push(entry) {
                // Stop the run: its result could not be written whole.
                spool_failed.get_or_insert(e);
                let _ = stop_tx.send(true);
            }
            if aborted_by.is_none() {
                let elapsed = t0.elapsed().as_secs_f64();
                for t in scenario.thresholds.iter().filter(|t| t.abort_on_fail) {
                    if elapsed < t.delay_abort_eval.as_secs_f64() {
                        continue;
                    }
                    let v = metrics::observe(t, &total, &names, &check_ranges, elapsed, vus_max);
                    if let Some(v) = v {
                        if !t.op.holds(v, t.limit) {
                            aborted_by = Some(t.to_string());
                            let _ = stop_tx.send(true);
                            break;
                        }
                    }
                }
            }
        }
        if done.iter().all(|d| *d) && pending.is_empty() {
            break;
        }
    }
    progress.finish();
    if let Some(x) = exporter {
        x.push_final(metrics::export::render(&metrics::export::Snapshot {
            total: &total,
            interval: &interval,
            names: &names,
            methods: &methods,
            check_ranges: &check_ranges,
            free_checks: &[],
            vus: 0,
            vus_max,
        }));
    }
    // A worker that panicked measured nothing trustworthy: the run fails.
    let mut crashed = None;
    for h in handles {
        if let Err(panic) = h.join() {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "no message".into());
            crashed.get_or_insert(msg);
        }
    }
    if let Some(msg) = crashed {
        return Err(Error::Worker(msg));
    }
    if let Some(e) = spool_failed {
        return Err(Error::Spool(e));
    }
    let duration = t0.elapsed();
    // The last window usually covers less than a second.
    if let Some(last) = timeline.last_mut() {
        last.span_s = (duration.as_secs_f64() - last.t as f64).clamp(0.001, 1.0);
        last.span_s = (last.span_s * 1000.0).round() / 1000.0;
    }
    Ok(LoadOutput {
        total,
        timeline: timeline.finish().map_err(Error::Spool)?,
        duration,
        interrupted,
        aborted_by,
        vus_max,
        workers,
    })
}
