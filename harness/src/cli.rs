//! Command-line flags and sub-commands; nothing else.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub const EXIT_CODES: &str = "Exit codes:
  0   ok: the run completed and every threshold held
  1   runtime error: setup failed, files could not be written, or the run was interrupted (Ctrl-C)
  2   usage, config or scenario error, found before any request was sent
  98  regressed against the baseline (reserved for `loadtest compare`)
  99  one or more thresholds were crossed";

#[derive(Parser, Debug)]
#[command(
    name = "loadtest",
    version,
    about = "Run declarative HTTP load scenarios and record comparable results",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scenario against a target and write <out>/<run>_<scenario>.json and .summary
    #[command(after_help = EXIT_CODES)]
    Run(RunCmd),
    /// Check a scenario file without sending anything
    #[command(after_help = EXIT_CODES)]
    Validate {
        /// Scenario name (looked up as <scenarios-dir>/NAME.toml) or path to a .toml file
        #[arg(short, long)]
        scenario: String,
        /// Folder holding the scenario files
        #[arg(long, default_value = "scenarios", env = "LOADTEST_SCENARIOS_DIR")]
        scenarios_dir: PathBuf,
    },
    /// List the scenarios in the scenarios folder
    Scenarios {
        #[arg(long, default_value = "scenarios", env = "LOADTEST_SCENARIOS_DIR")]
        scenarios_dir: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
pub struct RunCmd {
    /// Scenario name (looked up as <scenarios-dir>/NAME.toml) or path to a .toml file
    #[arg(short, long)]
    pub scenario: String,
    /// Base URL of the system under test, e.g. http://127.0.0.1:8080
    #[arg(short, long, env = "LOADTEST_TARGET")]
    pub target: String,
    /// Number of VUs; overrides the scenario's executor where it applies (as k6's --vus)
    #[arg(long)]
    pub vus: Option<u32>,
    /// Duration such as 30s or 1m30s; overrides the scenario's executor where it applies
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Run name: the prefix of the result files
    #[arg(short, long, default_value = "baseline")]
    pub run_name: String,
    /// Folder for the result files
    #[arg(short, long, default_value = "benchmark")]
    pub out: PathBuf,
    /// Folder holding the scenario files
    #[arg(long, default_value = "scenarios", env = "LOADTEST_SCENARIOS_DIR")]
    pub scenarios_dir: PathBuf,
    /// No live progress line
    #[arg(short, long)]
    pub quiet: bool,
    /// Run the load phase N times (after one setup) and keep every trial's figures;
    /// `loadtest compare` then judges between-trial variance (use 5 or more)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(s)
}
