//! `loadtest history`: the trend of key metrics across the runs of a scenario.

use std::path::PathBuf;

use anyhow::anyhow;

use crate::exit::{self, Classify, Failure};
use crate::{report, results};

#[derive(clap::Args, Debug)]
pub struct HistoryCmd {
    /// Scenario name
    #[arg(short, long)]
    pub scenario: String,
    /// Folder holding history.jsonl
    #[arg(short, long, default_value = "benchmark")]
    pub dir: PathBuf,
    /// Only the last N runs
    #[arg(long)]
    pub last: Option<usize>,
}

impl HistoryCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        let (mut lines, problems) = results::history::read(&self.dir, &self.scenario).usage()?;
        for p in &problems {
            crate::errln!("warning: {p}");
        }
        if lines.is_empty() {
            return Err(Failure::Usage(anyhow!(
                "{} has no runs of scenario `{}`",
                self.dir.join(results::history::FILE).display(),
                self.scenario
            )));
        }
        if let Some(n) = self.last {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        crate::out!("{}", report::history::render(&self.scenario, &lines));
        Ok(exit::OK)
    }
}
