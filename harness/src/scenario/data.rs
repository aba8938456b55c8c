//! Per-VU data: rows of a CSV (with a header) or JSON file (array of objects)
//! handed to VUs under one variable, e.g. the merchants and API keys the
//! seeder wrote, so each simulated user acts as its own account.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{anyhow, bail, Context, Result};
use minijinja::Value;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawData {
    pub file: String,
    pub mode: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// VU n always uses row n; more VUs than rows is an error.
    PerVu,
    /// Each iteration takes the next row, across all VUs.
    RoundRobin,
    /// Each iteration takes a row at random.
    Random,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::PerVu => "per-vu",
            Mode::RoundRobin => "round-robin",
            Mode::Random => "random",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DataSpec {
    /// As written; read relative to the working directory.
    pub file: PathBuf,
    pub mode: Mode,
    /// The variable the row is available under in templates.
    pub name: String,
}

impl DataSpec {
    pub fn from_raw(raw: &RawData) -> Result<DataSpec, (&'static str, String)> {
        let mode = match raw.mode.as_deref().unwrap_or("round-robin") {
            "per-vu" => Mode::PerVu,
            "round-robin" => Mode::RoundRobin,
            "random" => Mode::Random,
            other => {
                return Err((
                    "mode",
                    format!("mode `{other}` is not one of per-vu, round-robin, random"),
                ))
            }
        };
        let name = raw.name.clone().unwrap_or_else(|| "data".into());
        let ident = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident || super::template::BUILTIN_VARS.contains(&name.as_str()) {
            return Err((
                "name",
                format!(
                    "`{name}` cannot name the data variable: use letters, digits and _, not {}",
                    super::template::BUILTIN_VARS.join(", ")
                ),
            ));
        }
        if raw.file.is_empty() {
            return Err(("file", "give the CSV or JSON file of rows".into()));
        }
        Ok(DataSpec {
            file: PathBuf::from(&raw.file),
            mode,
            name,
        })
    }
}

/// The rows, shared by every VU.
pub struct Feed {
    pub spec: DataSpec,
    rows: Vec<Value>,
    next: AtomicUsize,
}

impl Feed {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row for VU `vu` (1-based) in this iteration.
    pub fn pick(&self, vu: u64) -> Value {
        let n = self.rows.len();
        let i = match self.spec.mode {
            Mode::PerVu => (vu.saturating_sub(1) as usize) % n,
            Mode::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n,
            Mode::Random => fastrand::usize(..n),
        };
        self.rows[i].clone()
    }
}

pub fn read_rows(path: &Path) -> Result<Vec<serde_json::Value>> {
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        let text = std::fs::read_to_string(path)?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| anyhow!("line {}: {e}", e.line()))?;
        let serde_json::Value::Array(items) = v else {
            bail!("a JSON data file holds an array of objects");
        };
        for (i, it) in items.iter().enumerate() {
            if !it.is_object() {
                bail!("item {i} is not an object");
            }
        }
        return Ok(items);
    }
    let mut r = csv::Reader::from_path(path)?;
    let headers = r.headers()?.clone();
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| match e.position() {
            Some(p) => anyhow!("line {}: {e}", p.line()),
            None => anyhow!(e),
        })?;
        let obj: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .zip(rec.iter())
            .map(|(h, v)| (h.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        rows.push(serde_json::Value::Object(obj));
    }
    Ok(rows)
}

/// Reads the rows and checks them against the run's VUs, before anything is sent.
pub fn load(spec: &DataSpec, scenario: &Path, max_vus: u32) -> Result<Feed> {
    let rows = read_rows(&spec.file).with_context(|| {
        format!(
            "{}: [data] file {}",
            scenario.display(),
            spec.file.display()
        )
    })?;
    if rows.is_empty() {
        bail!(
            "{}: [data] file {} holds no rows",
            scenario.display(),
            spec.file.display()
        );
    }
    if spec.mode == Mode::PerVu && (max_vus as usize) > rows.len() {
        bail!(
            "{}: [data] mode = \"per-vu\" needs a row per VU, but {} has {} rows for up to {max_vus} VUs: \
             lower the VUs (--vus) or provide more rows (e.g. more merchants in config/data.toml)",
            scenario.display(),
            spec.file.display(),
            rows.len()
        );
    }
    Ok(Feed {
        spec: spec.clone(),
        rows: rows
            .iter()
            .map(|r| Value::from(minijinja::value::Serde(r)))
            .collect(),
        next: AtomicUsize::new(0),
    })
}
