//! `loadtest import k6 FILE`: a k6 JSON output made elsewhere, turned into a
//! result file like a native run's.

use std::path::PathBuf;

use anyhow::anyhow;

use crate::exit::{self, Classify, Failure};
use crate::k6;
use crate::results::{self, result_path};
use crate::runner::k6::{check_free, meta, save};

#[derive(clap::Subcommand, Debug)]
pub enum ImportWhat {
    /// A k6 JSON output (`k6 run --out json=FILE`, gzipped or not) made elsewhere
    K6(ImportK6),
}

#[derive(clap::Args, Debug)]
pub struct ImportCmd {
    #[command(subcommand)]
    pub what: ImportWhat,
}

#[derive(clap::Args, Debug)]
pub struct ImportK6 {
    /// The k6 JSON output
    pub file: PathBuf,
    /// k6's `--summary-export` file of the same run: thresholds as k6 evaluated them
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Scenario name of the result (default: the file name up to its first dot)
    #[arg(short, long)]
    pub scenario: Option<String>,
    /// The script that ran, for scenario_sha256 over it and its local imports
    #[arg(long)]
    pub script: Option<PathBuf>,
    /// Run name: the prefix of the result files
    #[arg(short, long, default_value = "imported")]
    pub run_name: String,
    /// Folder for the result files
    #[arg(short, long, default_value = "benchmark")]
    pub out: PathBuf,
    /// The target the run measured, as recorded in the result
    #[arg(short, long, default_value = "")]
    pub target: String,
}

impl ImportCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let ImportWhat::K6(a) = &self.what;
        results::check_name("run name", &a.run_name).usage()?;
        let name = a.scenario.clone().unwrap_or_else(|| {
            a.file
                .file_name()
                .map(|f| {
                    f.to_string_lossy()
                        .split('.')
                        .next()
                        .unwrap_or("k6")
                        .to_string()
                })
                .unwrap_or_else(|| "k6".into())
        });
        results::check_name("scenario name", &name).usage()?;
        if !a.file.is_file() {
            return Err(Failure::Usage(anyhow!(
                "{} does not exist",
                a.file.display()
            )));
        }
        let sha = match &a.script {
            Some(s) => k6::sha256_with_imports(s).usage()?,
            None => String::new(),
        };
        let json = result_path(&a.out, &a.run_name, &name, "json");
        check_free(&json, &a.run_name, &name)?;
        let script = a.script.clone().unwrap_or_else(|| a.file.clone());
        let result = results::k6::read(
            &a.file,
            a.summary.as_deref(),
            meta(&a.run_name, &script, &name, &a.target, sha, (0.0, 0)),
        )
        .usage()?;
        save(&result, &a.out, true, true)?;
        Ok(if result.thresholds.iter().any(|t| !t.ok) {
            exit::THRESHOLDS
        } else {
            exit::OK
        })
    }
}
