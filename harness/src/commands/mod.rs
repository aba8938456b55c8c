//! The command layer: one file per sub-command, each owning its clap
//! arguments and the work of that command. This is the only layer that knows
//! the whole pipeline; the stage folders below never import from here.

pub mod ab;
pub mod calibrate;
pub mod compare;
pub mod cycle;
pub mod dashboard;
pub mod db;
pub mod distribute;
pub mod down;
pub mod history;
pub mod images;
pub mod import;
pub mod init;
pub mod merge;
pub mod migrate;
pub mod populate;
pub mod ps;
pub mod report;
pub mod reset_bench;
pub mod run;
pub mod scenarios;
pub mod stack;
pub mod up;
pub mod validate;

use clap::{Parser, Subcommand};

use crate::exit::{Classify, Failure};

pub const EXIT_CODES: &str = "Exit codes:
  0   ok: the run completed and every threshold held
  1   runtime error: setup failed, files could not be written, or the run was interrupted (Ctrl-C)
  2   usage, config or scenario error, found before any request was sent
  97  undecided: `loadtest ab` ran out of trials before a verdict
  98  a gate regressed against the baseline (`loadtest compare`, `loadtest bench --compare`, `loadtest ab`)
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
    /// Write a commented loadtest.toml for this repository: compose file, app service, database,
    /// migrations, seed and k6 folder, as found here (never overwrites)
    Init(init::InitCmd),
    /// Run a scenario against a target and write <out>/<run>_<scenario>.json and .summary
    #[command(after_help = EXIT_CODES)]
    Run(run::RunCmd),
    /// Compare a run with its baseline; writes <current-run>_<scenario>.diff next to the current result
    #[command(after_help = compare::COMPARE_HELP)]
    Compare(compare::CompareCmd),
    /// A/B check before a merge: the service from a git ref (A) against the working tree (B), in interleaved trials
    #[command(after_help = ab::AB_HELP)]
    Ab(ab::AbCmd),
    /// Measure the noise between trials (A/A on the working tree) for `ab` and `compare` tolerances
    #[command(after_help = calibrate::CALIBRATE_HELP)]
    Calibrate(calibrate::CalibrateCmd),
    /// Write one self-contained HTML report of a result (a baseline overlaid) or of an A/B result
    #[command(after_help = report::REPORT_HELP)]
    Report(report::ReportCmd),
    /// Turn a result made elsewhere into a result file: `loadtest import k6 FILE`
    Import(import::ImportCmd),
    /// Show the trend of key metrics across the runs of a scenario (from <dir>/history.jsonl)
    History(history::HistoryCmd),
    /// The full cycle: down -v, up (fresh database, app from the checkout), migrate, run, save, compare
    #[command(after_help = EXIT_CODES)]
    Bench(cycle::CycleCmd),
    /// Bring the compose stack up through the Docker Engine (build, create, start, wait healthy)
    Up(up::UpCmd),
    /// Remove the project's containers, network and volumes (like `docker compose down -v`)
    Down(down::DownCmd),
    /// List the project's services: state, health, published ports
    Ps(ps::PsCmd),
    /// List the local stand-in images (Postgres, Debian base, Prometheus, Pushgateway); --build makes the missing ones
    ///
    /// Stand-ins are made where no registry is reachable: a Debian root file system by mmdebstrap, turned into
    /// an image by the Engine. Their tags get `-<suffix>` when LOADTEST_STANDIN_SUFFIX is set, so a run can
    /// build them anew without touching the ones the machine keeps.
    Images(images::ImagesCmd),
    /// Create data through the API: the [[populate]] entries of a scenario or data file
    Populate(populate::PopulateCmd),
    /// The database: state, prepare (template), reset, restore (snapshot), seed, reset-bench
    Db(db::DbArgs),
    /// Apply the migrations to the stack's database ([database] migrate: sqlx, diesel, command, service, app, none)
    Migrate(migrate::MigrateCmd),
    /// Check a scenario file without sending anything
    #[command(after_help = EXIT_CODES)]
    Validate(validate::ValidateCmd),
    /// List the scenarios in the scenarios folder
    Scenarios(scenarios::ScenariosCmd),
    /// Write the Grafana dashboard and its provisioning files (carried in the binary) for your Grafana
    Dashboard(dashboard::DashboardCmd),
    /// Split one scenario across N shards (processes), start them together, merge their results
    #[command(after_help = distribute::DISTRIBUTE_HELP)]
    Distribute(distribute::DistributeCmd),
    /// Add up the results of a split run's shards (`run --shard i/N`) into one exact result
    #[command(after_help = merge::MERGE_HELP)]
    Merge(merge::MergeCmd),
}

/// Runs one sub-command; the exit code on success.
pub fn dispatch(cmd: Command) -> Result<u8, Failure> {
    match cmd {
        Command::Init(c) => c.execute(),
        Command::Dashboard(c) => c.execute(),
        Command::Merge(c) => c.execute(),
        Command::Distribute(c) => c.execute(),
        Command::Run(c) => c.execute(),
        Command::Compare(c) => c.execute(),
        Command::Ab(c) => c.execute(),
        Command::Calibrate(c) => c.execute(),
        Command::Report(c) => c.execute(),
        Command::Import(c) => c.execute(),
        Command::History(c) => c.execute(),
        Command::Bench(c) => c.execute(),
        Command::Up(c) => c.execute(),
        Command::Down(c) => c.execute(),
        Command::Ps(c) => c.execute(),
        Command::Images(c) => c.execute(),
        Command::Populate(c) => c.execute(),
        Command::Db(c) => c.execute(),
        Command::Migrate(c) => c.execute(),
        Command::Validate(c) => c.execute(),
        Command::Scenarios(c) => c.execute(),
    }
}

pub use crate::runner::runtime;

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(s)
}

/// `--web [ADDR]` and `--no-html`, shared by `run` and the full cycle.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ViewArgs {
    /// Serve a live page during the run (default 127.0.0.1:5665; PORT or HOST:PORT): charts,
    /// thresholds, errors, a Stop button, the result files to download at the end
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    pub web: Option<String>,
    /// Do not write the HTML report <run>_<scenario>.html beside the result
    #[arg(long)]
    pub no_html: bool,
}

impl ViewArgs {
    /// The live page's address, checked.
    pub fn web_addr(&self) -> Result<Option<String>, Failure> {
        self.web
            .as_deref()
            .map(crate::view::live::parse_addr)
            .transpose()
            .usage()
    }
}
