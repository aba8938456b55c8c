//! One run, from its plan to its result files: set-up (scenario, target,
//! data, database step), the run phases (populate, setup, load trials,
//! teardown), then the result files. `loadtest run`, the full cycle and
//! every A/B trial come through here.

pub mod k6;
mod phase;
pub mod plan;

use std::sync::Arc;

use anyhow::anyhow;

use crate::engine::{self, client::Target};
use crate::exit::{self, Classify, Failure};
use crate::prepare;
use crate::results::{self, result_path, RunResult};
use crate::scenario::{self, Scenario};

pub use plan::{RunPlan, RunReport, TlsArgs};

/// The one async runtime a command runs on. A current-thread runtime is
/// enough: the load engine runs its own worker threads, and everything else
/// a command awaits (the Engine API, Postgres, HTTP) is I/O.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .runtime()
}

pub fn execute(args: RunPlan) -> Result<RunReport, Failure> {
    results::check_name("run name", &args.run_name).usage()?;
    let path = scenario::resolve(&args.scenario, &args.scenarios_dir).usage()?;
    if scenario::is_script(&path) {
        return k6::run_script(&args, &path);
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
    if let Some(shard) = &args.shard {
        if args.repeat > 1 {
            return Err(Failure::Usage(anyhow!(
                "--repeat and --shard do not go together: a shard's result is one run, merged with the other shards'"
            )));
        }
        sc.stripe = shard.stripe.clone();
    }
    let sc = Arc::new(sc);

    let rt = runtime()?;
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
    let outcome = phase::run_phase(
        &args,
        sc,
        &path,
        target,
        overrides,
        &rt,
        phase::Feeds {
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
