//! k6 scripts through the harness: `loadtest run -s script.js` runs the real
//! k6 with a JSON output and turns it into a result file like a native run's.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use super::plan::{RunPlan, RunReport};
use crate::exit::{self, Classify, Failure};
use crate::files::write_atomic;
use crate::k6;
use crate::results::{self, k6::K6Meta, result_path, RunResult};

/// k6 exit codes that mean the script or its options could not be used.
const SCRIPT_ERRORS: [i32; 2] = [104, 107];

pub fn meta(
    run: &str,
    script: &Path,
    name: &str,
    target: &str,
    sha: String,
    usage: (f64, u64),
) -> K6Meta {
    let dir = script
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let host = results::host_info();
    K6Meta {
        run: run.to_string(),
        scenario: name.to_string(),
        scenario_file: script.display().to_string(),
        scenario_sha256: sha,
        target: target.to_string(),
        git: results::git_info(dir),
        loadgen: results::LoadGen {
            workers: 0,
            cpu_seconds: (usage.0 * 100.0).round() / 100.0,
            cpu_saturation: 0.0,
            max_rss_kb: usage.1,
        },
        host,
        options: serde_json::json!({"engine": "k6"}),
    }
}

/// Writes the result, its summary and report; when `announce`, prints like a
/// native run and adds the history line (an A/B trial does neither).
pub fn save(
    result: &RunResult,
    out: &Path,
    html: bool,
    announce: bool,
) -> Result<PathBuf, Failure> {
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow!("cannot create output folder {}: {e}", out.display()))
        .usage()?;
    let json = result_path(out, &result.run, &result.scenario, "json");
    let summary = result_path(out, &result.run, &result.scenario, "summary");
    let text = results::summary(result);
    write_atomic(&json, result.to_json().as_bytes()).runtime()?;
    write_atomic(&summary, text.as_bytes()).runtime()?;
    let mut files = vec![json.clone(), summary];
    if html {
        let page = result_path(out, &result.run, &result.scenario, "html");
        match crate::report::html::run_report(result, None) {
            Ok(p) => {
                write_atomic(&page, p.as_bytes()).runtime()?;
                files.push(page);
            }
            Err(e) => crate::errln!("warning: no HTML report: {e:#}"),
        }
    }
    if !announce {
        return Ok(json);
    }
    crate::outln!("{text}");
    crate::outln!("  results: {}", files[0].display());
    for f in &files[1..] {
        crate::outln!("           {}", f.display());
    }
    if let Err(e) = results::history::append(out, result, &json) {
        crate::errln!("warning: could not append to the run history: {e:#}");
    }
    Ok(json)
}

/// Refuses to overwrite another run's or scenario's file (as native runs do).
pub fn check_free(json: &Path, run: &str, scenario: &str) -> Result<(), Failure> {
    if let Ok(old) = RunResult::load(json) {
        if old.run != run || old.scenario != scenario {
            return Err(Failure::Usage(anyhow!(
                "{} holds the result of run `{}` of scenario `{}`; choose another run name",
                json.display(),
                old.run,
                old.scenario
            )));
        }
    }
    Ok(())
}

/// `loadtest run` (and the full cycle) for a k6 script.
pub fn run_script(args: &RunPlan, script: &Path) -> Result<RunReport, Failure> {
    for (set, what) in [
        (args.repeat > 1, "--repeat"),
        (args.csv.is_some(), "--csv"),
        (args.web.is_some(), "--web"),
        (args.db_reset.is_some(), "--reset"),
        (
            args.shard.as_ref().is_some_and(|s| s.coordinator.is_some()),
            "--coordinator (a distributed run)",
        ),
    ] {
        if set {
            return Err(Failure::Usage(anyhow!(
                "{}: {what} is not available for k6 scripts yet (it is for TOML scenarios)",
                script.display()
            )));
        }
    }
    let name = k6::script_name(script);
    results::check_name("scenario name", &name).usage()?;
    let bin = k6::find().usage()?;
    let sha = k6::sha256_with_imports(script)
        .map_err(|e| anyhow!("{}: {e:#}", script.display()))
        .usage()?;
    let json = result_path(&args.out, &args.run_name, &name, "json");
    check_free(&json, &args.run_name, &name)?;
    // The stack's service names, for a script written to run inside its network.
    let hosts = args.k6_hosts.clone().unwrap_or_else(crate::resolve::all);
    k6::check_hosts(script, &hosts).usage()?;
    let tmp = tempfile::tempdir().runtime()?;
    let output = tmp.path().join("k6.json.gz");
    let summary = tmp.path().join("summary.json");
    // With live export, k6 writes into a FIFO this process reads as it comes: the
    // points are pushed every few seconds and kept, gzipped, in `output`.
    let exporter = args
        .push_url
        .as_deref()
        .map(|u| crate::metrics::export::Exporter::start(u, &args.run_name, &name))
        .transpose()
        .usage()?;
    let fifo = tmp.path().join("k6.fifo");
    if exporter.is_some() {
        make_fifo(&fifo).runtime()?;
    }
    let k6_output = if exporter.is_some() { &fifo } else { &output };
    let started_at = chrono::Utc::now();
    // Ctrl-C goes to k6 as well (same process group); this process waits for
    // it to stop and write its output instead of dying first.
    let rt = super::runtime()?;
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = interrupted.clone();
    let _guard = rt.enter();
    let mut sigint =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).runtime()?;
    let watcher = rt.spawn(async move {
        if sigint.recv().await.is_some() {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let outcome = std::thread::scope(|s| {
        let relay = exporter
            .as_ref()
            .map(|x| s.spawn(|| results::k6::relay(&fifo, &output, x)));
        let h = s.spawn(|| {
            k6::run(&k6::Invocation {
                bin: &bin,
                script,
                target: &args.target,
                run: &args.run_name,
                env: &args.script_env,
                vus: args.vus,
                duration: args.duration,
                quiet: args.quiet,
                output: k6_output,
                summary: &summary,
                hosts: &hosts,
                mount: args
                    .k6_mount
                    .as_ref()
                    .map(|(m, d)| (m.as_str(), d.as_path())),
                scratch: tmp.path(),
                segment: args.shard.as_ref().map(|s| s.stripe.k6_flags()),
            })
        });
        // Drive the signal watcher while k6 runs.
        rt.block_on(async {
            while !h.is_finished() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
        let done = h.join();
        if let Some(r) = relay {
            // k6 may end before opening its output (a script error): let the reader go,
            // retrying until it is in its open() to be released (bounded).
            let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !r.is_finished() && std::time::Instant::now() < until {
                release_fifo(&fifo);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            if let Ok(Err(e)) = r.join() {
                crate::errln!("warning: live export: {e:#}");
            }
        }
        done
    })
    .map_err(|_| Failure::Runtime(anyhow!("the k6 thread failed")))?
    .runtime()?;
    watcher.abort();
    let was_interrupted = interrupted.load(std::sync::atomic::Ordering::SeqCst);
    let has_points = output.is_file()
        && std::fs::metadata(&output)
            .map(|m| m.len() > 64)
            .unwrap_or(false);
    if SCRIPT_ERRORS.contains(&outcome.code) && !was_interrupted {
        let why = if outcome.errors.is_empty() {
            format!("k6 exited {}", outcome.code)
        } else {
            outcome.errors.join("\n  ")
        };
        return Err(Failure::Usage(anyhow!(
            "{}: k6 could not run the script:\n  {why}",
            script.display()
        )));
    }
    if !has_points {
        return Err(Failure::Runtime(anyhow!(
            "k6 exited {} without writing data points{}",
            outcome.code,
            if outcome.errors.is_empty() {
                String::new()
            } else {
                format!(":\n  {}", outcome.errors.join("\n  "))
            }
        )));
    }
    let pushed = exporter.is_some();
    if let Some(x) = exporter {
        x.finish();
    }
    let ended_at = chrono::Utc::now();
    let mut result = results::k6::read(
        &output,
        summary.is_file().then_some(summary.as_path()),
        meta(
            &args.run_name,
            script,
            &name,
            &args.target,
            sha,
            (outcome.cpu_seconds, outcome.max_rss_kb),
        ),
    )
    .runtime()?;
    result.interrupted = was_interrupted;
    result.stack = args.stack.clone();
    if let (true, Some(g)) = (pushed, &args.grafana_url) {
        result.dashboard_url = Some(crate::report::links::dashboard_url(
            g,
            &args.run_name,
            &name,
            started_at,
            ended_at,
        ));
    }
    if result.duration_s > 0.0 {
        let cores = result.host.cores.max(1) as f64;
        result.loadgen.cpu_saturation =
            ((outcome.cpu_seconds / result.duration_s / cores) * 1000.0).round() / 1000.0;
    }
    let json = save(&result, &args.out, args.html && !args.trial, !args.trial)?;
    let crossed = outcome.code == k6::THRESHOLDS_CROSSED || result.thresholds.iter().any(|t| !t.ok);
    let (code, message) = if was_interrupted {
        crate::errln!("interrupted: partial results were written, marked \"interrupted\": true");
        (exit::RUNTIME, "Stopped before its planned end.".to_string())
    } else if crossed {
        let list = result.crossed_thresholds();
        crate::errln!("thresholds crossed (k6 exit 99): {}", list.join("; "));
        (
            exit::THRESHOLDS,
            format!("Thresholds crossed: {}.", list.join("; ")),
        )
    } else if outcome.code != 0 {
        return Err(Failure::Runtime(anyhow!(
            "k6 exited {} (results written to {}){}",
            outcome.code,
            json.display(),
            if outcome.errors.is_empty() {
                String::new()
            } else {
                format!(":\n  {}", outcome.errors.join("\n  "))
            }
        )));
    } else {
        (exit::OK, "Finished: every threshold held.".to_string())
    };
    Ok(RunReport {
        code,
        json: json.clone(),
        files: vec![json],
        message,
    })
}

/// A named pipe for k6's output.
fn make_fifo(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: mkfifo reads the NUL-terminated path and touches nothing else.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        anyhow::bail!(
            "cannot make a FIFO at {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Opens the FIFO for writing and closes it, so a reader still waiting for k6 sees the end.
fn release_fifo(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
}
