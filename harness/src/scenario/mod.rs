//! Scenario files: one TOML file per workload, validated completely before any
//! request is sent. Every error names `file:line:column`.

pub mod checks;
pub mod data;
pub mod options;
pub mod template;
pub mod thresholds;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;
use serde_json_path::JsonPath;
use sha2::{Digest, Sha256};

pub use crate::executor::raw::Stage;
use crate::files::locate::{Locator, Seg};
use checks::Check;
pub use options::{Executor, Options};
use template::{Templates, Text};
use thresholds::Threshold;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    description: Option<String>,
    #[serde(default)]
    options: crate::executor::raw::RawOptions,
    #[serde(default)]
    setup: Vec<RawStep>,
    #[serde(default)]
    steps: Vec<RawStep>,
    #[serde(default)]
    teardown: Vec<RawStep>,
    #[serde(default)]
    thresholds: BTreeMap<String, Vec<RawThreshold>>,
    data: Option<data::RawData>,
    #[serde(default)]
    populate: Vec<RawPopulate>,
    #[serde(default)]
    ab: RawAb,
}

/// `[ab]`: how `loadtest ab` and `loadtest calibrate` shape one trial.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAb {
    duration: Option<String>,
    warmup: Option<String>,
}

/// One A/B trial's shape; `None` leaves the choice to the command's default.
#[derive(Debug, Clone, Default)]
pub struct AbOptions {
    /// The measured part of a trial (the executor's duration is replaced).
    pub duration: Option<std::time::Duration>,
    /// Load before the measured part, not recorded.
    pub warmup: Option<std::time::Duration>,
}

/// A `[[populate]]` entry: a request (as a step) sent once per item before the run.
/// The request fields repeat `RawStep`'s: serde's `flatten` would lose `deny_unknown_fields`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPopulate {
    name: Option<String>,
    method: Option<String>,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    json: Option<toml::Value>,
    body: Option<String>,
    content_type: Option<String>,
    #[serde(default)]
    extract: BTreeMap<String, String>,
    items: Option<toml::Value>,
    items_file: Option<String>,
    concurrency: Option<u32>,
    retries: Option<u32>,
    backoff: Option<String>,
    backoff_max: Option<String>,
    error_budget: Option<u32>,
    output: Option<String>,
    unprocessed: Option<String>,
}

/// What a `[[populate]]` entry creates one of per item.
#[derive(Debug, Clone)]
pub enum Items {
    Count(u64),
    List(Vec<serde_json::Value>),
    /// Rows of a CSV or JSON file.
    File(PathBuf),
}

pub struct Populate {
    pub step: Step,
    pub items: Items,
    pub concurrency: u32,
    pub retries: u32,
    pub backoff: std::time::Duration,
    pub backoff_max: std::time::Duration,
    pub error_budget: u32,
    pub output: Option<PathBuf>,
    pub unprocessed: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Option<String>,
    method: Option<String>,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    json: Option<toml::Value>,
    body: Option<String>,
    content_type: Option<String>,
    #[serde(default)]
    extract: BTreeMap<String, String>,
    #[serde(default)]
    checks: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawThreshold {
    Expr(String),
    Full(FullThreshold),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FullThreshold {
    threshold: String,
    #[serde(default)]
    abort_on_fail: bool,
    delay_abort_eval: Option<String>,
}

/// A JSON body whose string leaves may be templates.
#[derive(Debug, Clone)]
pub enum JsonTpl {
    Value(serde_json::Value),
    Text(Text),
    Array(Vec<JsonTpl>),
    Object(Vec<(String, JsonTpl)>),
}

#[derive(Debug, Clone)]
pub enum Body {
    None,
    /// Fixed bytes, encoded once at load time.
    Static(Bytes),
    Json(JsonTpl),
    Text(Text),
}

#[derive(Debug)]
pub struct Step {
    pub name: String,
    pub method: Method,
    pub path: Text,
    pub headers: Vec<(HeaderName, Text)>,
    pub body: Body,
    pub content_type: Option<HeaderValue>,
    pub extract: Vec<(String, JsonPath)>,
    pub checks: Vec<Check>,
    /// Index of this step's first check in the scenario-wide check list.
    pub first_check: usize,
    /// Whether the response body must be parsed as JSON.
    pub needs_json: bool,
    /// Whether anything reads the body (JSON, `body_contains`); when not, the
    /// engine reads it to the end without holding it.
    pub needs_body: bool,
}

impl Step {
    /// This step's checks in the scenario-wide check list.
    pub fn check_range(&self) -> std::ops::Range<usize> {
        self.first_check..self.first_check + self.checks.len()
    }
}

/// The most items one [[populate]] entry creates.
pub const MAX_POPULATE_ITEMS: i64 = 10_000_000;

pub struct Scenario {
    /// The file stem: `payment-confirm` for `scenarios/payment-confirm.toml`.
    pub name: String,
    pub file: PathBuf,
    pub sha256: String,
    pub description: Option<String>,
    pub options: Options,
    pub setup: Vec<Step>,
    pub steps: Vec<Step>,
    pub teardown: Vec<Step>,
    pub thresholds: Vec<Threshold>,
    pub templates: Templates,
    /// Rows fed to VUs (`[data]`), read when the run starts.
    pub data: Option<data::DataSpec>,
    /// Items created through the API before the run (`[[populate]]`).
    pub populate: Vec<Populate>,
    /// `[ab]`: the trial shape of `loadtest ab`.
    pub ab: AbOptions,
    /// The share of the load this generator runs (`--shard`): the whole by default.
    pub stripe: crate::executor::segment::Stripe,
}

impl Scenario {
    /// Each load step's range of check indices.
    pub fn check_ranges(&self) -> Vec<std::ops::Range<usize>> {
        self.steps.iter().map(Step::check_range).collect()
    }

    /// Number of checks across the load steps.
    pub fn check_count(&self) -> usize {
        self.steps.iter().map(|s| s.checks.len()).sum()
    }
}

/// Finds a scenario by name (`scenarios/NAME.toml`, else a k6 script
/// `scenarios/NAME.js` or `k6/NAME.js`) or path.
pub fn resolve(arg: &str, dir: &Path) -> Result<PathBuf> {
    // The folder of a team's k6 suite: LOADTEST_K6_DIR, else `k6/` beside the scenarios folder.
    let k6_dir = std::env::var_os("LOADTEST_K6_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.parent().unwrap_or(Path::new(".")).join("k6"));
    resolve_in(arg, dir, &k6_dir)
}

/// When a name is both a TOML scenario and a k6 script, which one runs (the
/// TOML) and how to pick the script instead; None when the name is not shared.
pub fn shadowed(arg: &str, dir: &Path, k6_dir: &Path) -> Option<String> {
    if arg.contains('/') || arg.ends_with(".toml") || arg.ends_with(".js") {
        return None;
    }
    let toml = dir.join(format!("{arg}.toml"));
    let script = [
        dir.join(format!("{arg}.js")),
        k6_dir.join(format!("{arg}.js")),
    ]
    .into_iter()
    .find(|p| p.is_file())?;
    toml.is_file().then(|| {
        format!(
            "scenario `{arg}`: {} runs; the k6 script {} has the same name: give `-s {}` to run it instead",
            toml.display(),
            script.display(),
            script.display()
        )
    })
}

/// Like [`resolve`], with the k6 folder given.
pub fn resolve_in(arg: &str, dir: &Path, k6_dir: &Path) -> Result<PathBuf> {
    let as_path = Path::new(arg);
    if arg.ends_with(".toml") || arg.ends_with(".js") || arg.contains('/') {
        if as_path.is_file() {
            return Ok(as_path.to_path_buf());
        }
        bail!("scenario file {} does not exist", as_path.display());
    }
    let candidates = [
        dir.join(format!("{arg}.toml")),
        dir.join(format!("{arg}.js")),
        k6_dir.join(format!("{arg}.js")),
    ];
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(found.clone());
    }
    let available = list(dir);
    if available.is_empty() {
        bail!(
            "unknown scenario `{arg}`: {} holds no scenario files (*.toml, *.js)",
            dir.display()
        );
    }
    bail!(
        "unknown scenario `{arg}` (looked for {}); available: {}",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        available.join(", ")
    )
}

/// Whether a scenario file is a k6 script.
pub fn is_script(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "js")
}

/// Scenario names found in a folder (TOML scenarios and k6 scripts), sorted.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let ext = p.extension()?;
            (ext == "toml" || ext == "js").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Reads, parses and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario> {
    let source = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("cannot read scenario {}: {e}", path.display()))?;
    parse(path, &source)
}

/// Parses and validates scenario text; `path` is used for error positions and the name.
pub fn parse(path: &Path, source: &str) -> Result<Scenario> {
    let loc = Locator::new(path, source);
    let raw: RawScenario = loc.deserialize()?;
    let fail = |segs: &[Seg], msg: String| anyhow!("{}: {msg}", loc.at(segs));

    let present: Vec<String> = {
        let doc = toml_edit::Document::parse(source.to_string()).ok();
        doc.and_then(|d| {
            d.as_table()
                .get("options")
                .and_then(|o| o.as_table_like())
                .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
        })
        .unwrap_or_default()
    };
    // A populate-only file has no load to shape: a single iteration stands in.
    let populate_only = raw.steps.is_empty() && present.is_empty();
    let (raw_options, present) = if populate_only {
        let o: crate::executor::raw::RawOptions =
            toml::from_str("executor = \"per-vu-iterations\"\nvus = 1\niterations = 1\n")
                .expect("static options");
        (
            o,
            vec!["executor".into(), "vus".into(), "iterations".into()],
        )
    } else {
        (raw.options, present)
    };
    let options = Options::from_raw(&raw_options, &present).map_err(|(key, msg)| {
        let mut segs = vec![Seg::Key("options")];
        segs.extend(key.iter().map(|k| Seg::Key(k.as_str())));
        fail(&segs, msg)
    })?;

    if raw.steps.is_empty() && raw.populate.is_empty() {
        bail!(
            "{}: the scenario has no [[steps]]: add at least one request to run under load",
            path.display()
        );
    }

    let mut templates = Templates::new();
    let mut known: BTreeSet<String> = template::BUILTIN_VARS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let compile = |section: &'static str,
                   raws: &[RawStep],
                   known: &mut BTreeSet<String>,
                   templates: &mut Templates,
                   scoped: bool|
     -> Result<Vec<Step>> {
        let outer = known.clone();
        let mut out = Vec::new();
        let mut first_check = 0;
        for (i, rs) in raws.iter().enumerate() {
            let step = compile_step(section, i, rs, &loc, templates, known, first_check)?;
            first_check += step.checks.len();
            for (k, _) in &step.extract {
                known.insert(k.clone());
            }
            out.push(step);
        }
        if scoped {
            *known = outer;
        }
        Ok(out)
    };
    let populate = compile_populate(&raw.populate, &loc, &mut templates)?;
    let data = raw
        .data
        .as_ref()
        .map(|d| {
            data::DataSpec::from_raw(d)
                .map_err(|(key, msg)| fail(&[Seg::Key("data"), Seg::Key(key)], msg))
        })
        .transpose()?;
    let setup = compile("setup", &raw.setup, &mut known, &mut templates, false)?;
    // The data row is there for the load steps only (setup and teardown run once, outside VUs).
    let mut step_known = known.clone();
    if let Some(d) = &data {
        step_known.insert(d.name.clone());
    }
    let steps = compile("steps", &raw.steps, &mut step_known, &mut templates, true)?;
    let teardown = compile("teardown", &raw.teardown, &mut known, &mut templates, true)?;

    let mut seen = BTreeSet::new();
    for (i, s) in steps.iter().enumerate() {
        if !seen.insert(s.name.clone()) {
            return Err(fail(
                &[Seg::Key("steps"), Seg::Index(i), Seg::Key("name")],
                format!(
                    "two steps are named `{}`: request names must be unique, they key the results",
                    s.name
                ),
            ));
        }
    }

    let mut thresholds = Vec::new();
    for (key, list) in &raw.thresholds {
        let at = [Seg::Key("thresholds"), Seg::Key(key.as_str())];
        let (metric, name) = thresholds::parse_key(key).map_err(|m| fail(&at, m))?;
        if let Some(n) = &name {
            if !seen.contains(n) {
                let names: Vec<&str> = seen.iter().map(String::as_str).collect();
                return Err(fail(
                    &at,
                    format!(
                        "`{key}`: no step is named `{n}` (steps: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
        for (j, rt) in list.iter().enumerate() {
            let at_expr = [
                Seg::Key("thresholds"),
                Seg::Key(key.as_str()),
                Seg::Index(j),
            ];
            let (expr, abort_on_fail, delay) = match rt {
                RawThreshold::Expr(e) => (e.clone(), false, None),
                RawThreshold::Full(f) => (
                    f.threshold.clone(),
                    f.abort_on_fail,
                    f.delay_abort_eval.clone(),
                ),
            };
            let (agg, op, limit) =
                thresholds::parse_expression(metric, &expr).map_err(|m| fail(&at_expr, m))?;
            let delay_abort_eval = match delay {
                Some(d) => crate::duration::parse(&d).map_err(|m| fail(&at_expr, m))?,
                None => std::time::Duration::ZERO,
            };
            thresholds.push(Threshold {
                key: key.clone(),
                metric,
                name: name.clone(),
                expression: expr.trim().to_string(),
                agg,
                op,
                limit,
                abort_on_fail,
                delay_abort_eval,
            });
        }
    }

    let ab_duration = |key: &'static str, v: &Option<String>| {
        v.as_deref()
            .map(|t| {
                crate::duration::parse(t)
                    .and_then(|d| {
                        if d.is_zero() && key == "duration" {
                            Err("a trial must last longer than 0s".to_string())
                        } else {
                            Ok(d)
                        }
                    })
                    .map_err(|e| fail(&[Seg::Key("ab"), Seg::Key(key)], e))
            })
            .transpose()
    };
    let ab = AbOptions {
        duration: ab_duration("duration", &raw.ab.duration)?,
        warmup: ab_duration("warmup", &raw.ab.warmup)?,
    };

    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("scenario")
        .to_string();
    Ok(Scenario {
        ab,
        name,
        file: path.to_path_buf(),
        sha256: hex::encode(Sha256::digest(source.as_bytes())),
        description: raw.description,
        options,
        setup,
        steps,
        teardown,
        thresholds,
        templates,
        data,
        populate,
        stripe: crate::executor::segment::Stripe::whole(),
    })
}

fn compile_populate(
    raws: &[RawPopulate],
    loc: &Locator,
    templates: &mut Templates,
) -> Result<Vec<Populate>> {
    let mut known: BTreeSet<String> = template::BUILTIN_VARS
        .iter()
        .map(|s| s.to_string())
        .collect();
    known.extend(["item".to_string(), "index".to_string()]);
    let mut out = Vec::new();
    for (i, rp) in raws.iter().enumerate() {
        let at = |key: &'static str| loc.at(&[Seg::Key("populate"), Seg::Index(i), Seg::Key(key)]);
        let rs = RawStep {
            name: rp.name.clone(),
            method: rp.method.clone().or(Some("POST".into())),
            path: rp.path.clone(),
            headers: rp.headers.clone(),
            json: rp.json.clone(),
            body: rp.body.clone(),
            content_type: rp.content_type.clone(),
            extract: rp.extract.clone(),
            checks: toml::Table::new(),
        };
        let step = compile_step("populate", i, &rs, loc, templates, &known, 0)?;
        let items = match (&rp.items, &rp.items_file) {
            (Some(toml::Value::Integer(n)), None) if *n > MAX_POPULATE_ITEMS => bail!(
                "{}: at most {MAX_POPULATE_ITEMS} items per [[populate]] entry (found {n})",
                at("items")
            ),
            (Some(toml::Value::Integer(n)), None) if *n > 0 => Items::Count(*n as u64),
            (Some(toml::Value::Array(a)), None) if !a.is_empty() => Items::List(
                a.iter()
                    .map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
                    .collect(),
            ),
            (None, Some(f)) => Items::File(PathBuf::from(f)),
            _ => bail!(
                "{}: give the items as a count (items = 100), a non-empty list (items = [\"a\", \"b\"]) or a file (items_file = \"rows.csv\"), one of them",
                at("items")
            ),
        };
        let dur = |key: &'static str, v: &Option<String>, default: &str| {
            crate::duration::parse(v.as_deref().unwrap_or(default))
                .map_err(|e| anyhow!("{}: {e}", at(key)))
        };
        let concurrency = rp.concurrency.unwrap_or(4);
        if !(1..=1000).contains(&concurrency) {
            bail!("{}: concurrency must be 1..=1000", at("concurrency"));
        }
        let unprocessed = rp
            .unprocessed
            .clone()
            .unwrap_or_else(|| format!("benchmark/unprocessed-{}.jsonl", slug(&step.name)));
        out.push(Populate {
            items,
            concurrency,
            retries: rp.retries.unwrap_or(4),
            backoff: dur("backoff", &rp.backoff, "100ms")?,
            backoff_max: dur("backoff_max", &rp.backoff_max, "5s")?,
            error_budget: rp.error_budget.unwrap_or(5).max(1),
            output: rp.output.clone().map(PathBuf::from),
            unprocessed: PathBuf::from(unprocessed),
            step,
        });
    }
    Ok(out)
}

/// A file-name-safe form of a step name.
fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn compile_step(
    section: &'static str,
    i: usize,
    rs: &RawStep,
    loc: &Locator,
    templates: &mut Templates,
    known: &BTreeSet<String>,
    first_check: usize,
) -> Result<Step> {
    let here = |key: &'static str| [Seg::Key(section), Seg::Index(i), Seg::Key(key)];
    let method_src = rs.method.as_deref().unwrap_or("GET");
    let method = Method::from_bytes(method_src.to_ascii_uppercase().as_bytes()).map_err(|_| {
        anyhow!(
            "{}: `{method_src}` is not an HTTP method",
            loc.at(&here("method"))
        )
    })?;
    let name = rs
        .name
        .clone()
        .unwrap_or_else(|| format!("{} {}", method, rs.path));
    let label = format!("{section}[{i}] `{name}`");
    let fail = |segs: &[Seg], msg: String| anyhow!("{}: {label}: {msg}", loc.at(segs));

    // Compiles one text and checks that every variable it reads exists by then.
    let mut text = |tname: String, src: &str, segs: &[Seg]| -> Result<Text> {
        let t = templates
            .add(&tname, src)
            .map_err(|m| fail(segs, format!("template error: {m}")))?;
        let mut unknown: Vec<String> = templates
            .variables(&t)
            .into_iter()
            .filter(|v| !known.contains(v))
            .collect();
        unknown.sort();
        if let Some(v) = unknown.first() {
            let avail: Vec<&str> = known.iter().map(String::as_str).collect();
            return Err(fail(
                segs,
                format!(
                    "template uses unknown variable `{v}` (available here: {}; extract it in an earlier step or in [[setup]])",
                    avail.join(", ")
                ),
            ));
        }
        Ok(t)
    };

    if !rs.path.starts_with('/') && !rs.path.starts_with("{{") {
        return Err(fail(
            &here("path"),
            format!("path `{}` must start with /", rs.path),
        ));
    }
    let path = text(format!("{section}[{i}].path"), &rs.path, &here("path"))?;

    let mut headers = Vec::new();
    for (k, v) in &rs.headers {
        let segs = [
            Seg::Key(section),
            Seg::Index(i),
            Seg::Key("headers"),
            Seg::Key(k.as_str()),
        ];
        let hn = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| fail(&segs, format!("`{k}` is not a valid header name")))?;
        let t = text(format!("{section}[{i}].headers.{k}"), v, &segs)?;
        if let Text::Static(s) = &t {
            HeaderValue::from_str(s)
                .map_err(|_| fail(&segs, format!("`{s}` is not a valid header value")))?;
        }
        headers.push((hn, t));
    }

    if rs.json.is_some() && rs.body.is_some() {
        return Err(fail(
            &here("body"),
            "use either `json` or `body`, not both".into(),
        ));
    }
    let mut content_type = rs
        .content_type
        .as_deref()
        .map(|c| {
            HeaderValue::from_str(c).map_err(|_| {
                fail(
                    &here("content_type"),
                    format!("`{c}` is not a valid content type"),
                )
            })
        })
        .transpose()?;
    let body = if let Some(j) = &rs.json {
        content_type.get_or_insert(HeaderValue::from_static("application/json"));
        let tpl = json_template(j, &format!("{section}[{i}].json"), &mut |n, s| {
            text(n, s, &here("json"))
        })?;
        match tpl {
            JsonTpl::Value(v) => Body::Static(Bytes::from(serde_json::to_vec(&v)?)),
            other => Body::Json(other),
        }
    } else if let Some(b) = &rs.body {
        content_type.get_or_insert(HeaderValue::from_static("text/plain; charset=utf-8"));
        match text(format!("{section}[{i}].body"), b, &here("body"))? {
            Text::Static(s) => Body::Static(Bytes::from(s)),
            t => Body::Text(t),
        }
    } else {
        Body::None
    };

    let mut extract = Vec::new();
    for (var, p) in &rs.extract {
        let segs = [
            Seg::Key(section),
            Seg::Index(i),
            Seg::Key("extract"),
            Seg::Key(var.as_str()),
        ];
        if template::BUILTIN_VARS.contains(&var.as_str())
            || template::FUNCTIONS.contains(&var.as_str())
        {
            return Err(fail(
                &segs,
                format!("`{var}` is a reserved name; pick another variable name"),
            ));
        }
        if var.is_empty()
            || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || var.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(fail(
                &segs,
                format!("`{var}` is not a valid variable name (letters, digits, _)"),
            ));
        }
        let jp = checks::compile_path(p).map_err(|m| fail(&segs, m.to_string()))?;
        extract.push((var.clone(), jp));
    }

    let mut check_list = Vec::new();
    for (k, v) in &rs.checks {
        let segs = [
            Seg::Key(section),
            Seg::Index(i),
            Seg::Key("checks"),
            Seg::Key(k.as_str()),
        ];
        check_list.push(Check::parse(k, v).map_err(|m| fail(&segs, m.to_string()))?);
    }
    let needs_json = !extract.is_empty() || check_list.iter().any(Check::needs_json);
    let needs_body = needs_json || check_list.iter().any(Check::needs_body);
    Ok(Step {
        name,
        method,
        path,
        headers,
        body,
        content_type,
        extract,
        checks: check_list,
        first_check,
        needs_json,
        needs_body,
    })
}

/// Turns a TOML value into a JSON body, compiling string leaves that hold templates.
fn json_template(
    v: &toml::Value,
    name: &str,
    text: &mut dyn FnMut(String, &str) -> Result<Text>,
) -> Result<JsonTpl> {
    Ok(match v {
        toml::Value::String(s) => match text(name.to_string(), s)? {
            Text::Static(s) => JsonTpl::Value(serde_json::Value::String(s)),
            t => JsonTpl::Text(t),
        },
        toml::Value::Array(items) => {
            let parts = items
                .iter()
                .enumerate()
                .map(|(i, x)| json_template(x, &format!("{name}[{i}]"), text))
                .collect::<Result<Vec<_>>>()?;
            if parts.iter().all(|p| matches!(p, JsonTpl::Value(_))) {
                JsonTpl::Value(serde_json::Value::Array(
                    parts
                        .into_iter()
                        .map(|p| match p {
                            JsonTpl::Value(v) => v,
                            _ => unreachable!(),
                        })
                        .collect(),
                ))
            } else {
                JsonTpl::Array(parts)
            }
        }
        toml::Value::Table(t) => {
            let parts = t
                .iter()
                .map(|(k, x)| Ok((k.clone(), json_template(x, &format!("{name}.{k}"), text)?)))
                .collect::<Result<Vec<_>>>()?;
            if parts.iter().all(|(_, p)| matches!(p, JsonTpl::Value(_))) {
                let map = parts
                    .into_iter()
                    .map(|(k, p)| match p {
                        JsonTpl::Value(v) => (k, v),
                        _ => unreachable!(),
                    })
                    .collect();
                JsonTpl::Value(serde_json::Value::Object(map))
            } else {
                JsonTpl::Object(parts)
            }
        }
        other => JsonTpl::Value(serde_json::to_value(other)?),
    })
}

#[cfg(test)]
mod tests;
