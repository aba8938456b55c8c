//! `[[populate]]`: creating data through the service's own API before a run.
//! One request per item, a few at a time; 5xx, 429 and connection errors are
//! retried with exponential backoff and full jitter; after `error_budget`
//! items failed, nothing new is started. Items that failed or never ran are
//! listed in the `unprocessed` file (JSON lines), so they can be retried.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use minijinja::Value;
use serde_json::json;

use crate::engine::client::Target;
use crate::engine::vu::{self, Shared, Vu};
use crate::scenario::{Items, Populate, Scenario};

#[derive(Debug)]
pub struct PopulateReport {
    pub name: String,
    pub created: usize,
    pub failed: usize,
    pub not_tried: usize,
    pub retries: u64,
    pub elapsed: Duration,
    pub output: Option<PathBuf>,
    /// Written only when something failed or never ran.
    pub unprocessed: Option<PathBuf>,
    pub stopped_by_budget: bool,
}

/// Exponential backoff with full jitter: uniform in [0, min(max, base * 2^attempt)].
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let cap = base
        .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
        .min(max);
    Duration::from_secs_f64(cap.as_secs_f64() * fastrand::f64())
}

fn items(p: &Populate) -> Result<Vec<serde_json::Value>> {
    Ok(match &p.items {
        Items::Count(n) => (0..*n).map(|i| json!(i)).collect(),
        Items::List(v) => v.clone(),
        Items::File(f) => crate::scenario::data::read_rows(f)
            .with_context(|| format!("items_file {}", f.display()))?,
    })
}

enum Outcome {
    Created(BTreeMap<String, String>),
    Failed(String),
}

async fn one(
    vu: &mut Vu,
    sh: &Shared,
    p: &Populate,
    index: usize,
    item: &serde_json::Value,
    retries: &AtomicU32,
) -> Outcome {
    vu.set_var("item", Value::from(minijinja::value::Serde(item)));
    vu.set_var("index", Value::from(index));
    let prep = &sh.prepared[0];
    let mut attempt = 0;
    loop {
        let req = match vu.build(sh, &p.step, prep) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let (res, _) = vu
            .exchange(sh, &p.step, prep, req, crate::engine::client::BODY_KEEP_MAX)
            .await;
        let (retryable, reason) = match res {
            Ok(resp) => {
                let status = resp.parts.status.as_u16();
                if resp.parts.status.is_success() {
                    let json: Option<serde_json::Value> = serde_json::from_slice(&resp.body).ok();
                    let missing = vu.extract(&p.step, json.as_ref());
                    if !missing.is_empty() {
                        return Outcome::Failed(format!(
                            "status {status} but no {} in the response",
                            missing.join(", ")
                        ));
                    }
                    let got = p
                        .step
                        .extract
                        .iter()
                        .map(|(k, _)| {
                            let v = vu.vars().get(k).map(|v| match v.as_str() {
                                Some(s) => s.to_string(),
                                None => v.to_string(),
                            });
                            (k.clone(), v.unwrap_or_default())
                        })
                        .collect();
                    return Outcome::Created(got);
                }
                let body = String::from_utf8_lossy(&resp.body);
                let body: String = body.chars().take(200).collect();
                (
                    status == 429 || status >= 500,
                    format!("status {status}: {body}"),
                )
            }
            Err(e) => (true, e.to_string()),
        };
        if !retryable || attempt >= p.retries {
            let tries = attempt + 1;
            return Outcome::Failed(format!(
                "{reason} (after {tries} attempt{})",
                if tries == 1 { "" } else { "s" }
            ));
        }
        retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff(p.backoff, p.backoff_max, attempt)).await;
        attempt += 1;
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn item_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs one `[[populate]]` entry.
pub async fn run_one(
    sc: &Arc<Scenario>,
    target: &Arc<Target>,
    base_vars: &BTreeMap<String, Value>,
    pi: usize,
    show_progress: bool,
) -> Result<PopulateReport> {
    let t0 = Instant::now();
    let p = &sc.populate[pi];
    let all = items(p)?;
    let total = all.len();
    let prepared = vu::prepare(std::slice::from_ref(&p.step), target, sc.options.decompress)
        .map_err(|e| anyhow::anyhow!("populate `{}`: {e}", p.step.name))?;
    let sh = Arc::new(Shared {
        scenario: sc.clone(),
        target: target.clone(),
        prepared,
        base_vars: base_vars.clone(),
        feed: None,
    });
    let queue: Arc<Mutex<VecDeque<(usize, serde_json::Value)>>> =
        Arc::new(Mutex::new(all.into_iter().enumerate().collect()));
    let failures = Arc::new(AtomicU32::new(0));
    let retries = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let bar = if show_progress {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("populate {prefix} {bar:30} {pos}/{len} {msg}")
                .expect("static template"),
        );
        b.set_prefix(p.step.name.clone());
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let local = tokio::task::LocalSet::new();
    for w in 0..p.concurrency.min(total.max(1) as u32) {
        let (sh, queue, failures, retries, stop, created, failed, bar) = (
            sh.clone(),
            queue.clone(),
            failures.clone(),
            retries.clone(),
            stop.clone(),
            created.clone(),
            failed.clone(),
            bar.clone(),
        );
        let sc = sc.clone();
        local.spawn_local(async move {
            let p = &sc.populate[pi];
            let mut vu = Vu::new(w as u64 + 1, sh.target.clone(), Default::default());
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Some((index, item)) = queue.lock().expect("queue lock").pop_front() else {
                    break;
                };
                match one(&mut vu, &sh, p, index, &item, &retries).await {
                    Outcome::Created(vals) => {
                        created.lock().expect("lock").push((index, item, vals));
                    }
                    Outcome::Failed(reason) => {
                        failed.lock().expect("lock").push((index, item, reason));
                        let n = failures.fetch_add(1, Ordering::Relaxed) + 1;
                        bar.set_message(format!("{n} failed"));
                        if n >= p.error_budget {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
                bar.inc(1);
            }
        });
    }
    local.await;
    bar.finish_and_clear();

    let mut created = std::mem::take(&mut *created.lock().expect("lock"));
    created.sort_by_key(|c| c.0);
    let mut failed = std::mem::take(&mut *failed.lock().expect("lock"));
    failed.sort_by_key(|f| f.0);
    let rest: Vec<(usize, serde_json::Value)> = queue.lock().expect("lock").drain(..).collect();

    if let Some(out) = &p.output {
        let names: Vec<&String> = p.step.extract.iter().map(|(k, _)| k).collect();
        let mut text = String::from("item");
        for n in &names {
            text.push(',');
            text.push_str(&csv_field(n));
        }
        text.push('\n');
        for (_, item, vals) in &created {
            text.push_str(&csv_field(&item_text(item)));
            for n in &names {
                text.push(',');
                text.push_str(&csv_field(vals.get(*n).map(String::as_str).unwrap_or("")));
            }
            text.push('\n');
        }
        write(out, &text)?;
    }
    let unprocessed = if failed.is_empty() && rest.is_empty() {
        None
    } else {
        let mut text = String::new();
        for (index, item, reason) in &failed {
            let _ = writeln!(
                text,
                "{}",
                json!({"index": index, "item": item, "error": reason})
            );
        }
        for (index, item) in &rest {
            let _ = writeln!(
                text,
                "{}",
                json!({"index": index, "item": item, "error": "not tried: the error budget was spent"})
            );
        }
        write(&p.unprocessed, &text)?;
        Some(p.unprocessed.clone())
    };
    Ok(PopulateReport {
        name: p.step.name.clone(),
        created: created.len(),
        failed: failed.len(),
        not_tried: rest.len(),
        retries: retries.load(Ordering::Relaxed) as u64,
        elapsed: t0.elapsed(),
        output: p.output.clone(),
        unprocessed,
        stopped_by_budget: stop.load(Ordering::Relaxed),
    })
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    crate::files::write_atomic(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Runs every `[[populate]]` entry in order; stops at the first that spent its error budget.
pub async fn run_all(
    sc: &Arc<Scenario>,
    target: &Arc<Target>,
    base_vars: &BTreeMap<String, Value>,
    show_progress: bool,
) -> Result<Vec<PopulateReport>> {
    let mut reports = Vec::new();
    for (pi, p) in sc.populate.iter().enumerate() {
        let r = run_one(sc, target, base_vars, pi, show_progress).await?;
        let line = summary(&r);
        crate::errln!("{line}");
        let spent = r.stopped_by_budget;
        reports.push(r);
        if spent {
            bail!(
                "populate `{}` stopped: its error budget ({}) was spent; the items not created are listed in {}",
                p.step.name,
                p.error_budget,
                p.unprocessed.display()
            );
        }
    }
    Ok(reports)
}

pub fn summary(r: &PopulateReport) -> String {
    let mut s = format!(
        "populate `{}`: {} created, {} failed, {} not tried, {} retries, in {:.2}s",
        r.name,
        r.created,
        r.failed,
        r.not_tried,
        r.retries,
        r.elapsed.as_secs_f64()
    );
    if let Some(o) = &r.output {
        let _ = write!(s, "; created items in {}", o.display());
    }
    if let Some(u) = &r.unprocessed {
        let _ = write!(s, "; unprocessed items in {}", u.display());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_its_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for attempt in 0..30 {
            let cap = (base * 2u32.pow(attempt.min(10))).min(max);
            for _ in 0..50 {
                assert!(backoff(base, max, attempt) <= cap);
            }
        }
        // Jitter: not every draw is the same.
        let draws: std::collections::BTreeSet<u128> =
            (0..20).map(|_| backoff(base, max, 3).as_nanos()).collect();
        assert!(draws.len() > 1);
    }
}
