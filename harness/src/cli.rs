//! Command-line flags and sub-commands; nothing else.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub const EXIT_CODES: &str = "Exit codes:
  0   ok: the run completed and every threshold held
  1   runtime error: setup failed, files could not be written, or the run was interrupted (Ctrl-C)
  2   usage, config or scenario error, found before any request was sent
  98  a gate regressed against the baseline (`loadtest compare`, `loadtest bench --compare`)
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
    /// Compare a run with its baseline; writes <current-run>_<scenario>.diff next to the current result
    #[command(after_help = COMPARE_HELP)]
    Compare(CompareCmd),
    /// Show the trend of key metrics across the runs of a scenario (from <dir>/history.jsonl)
    History {
        /// Scenario name
        #[arg(short, long)]
        scenario: String,
        /// Folder holding history.jsonl
        #[arg(short, long, default_value = "benchmark")]
        dir: PathBuf,
        /// Only the last N runs
        #[arg(long)]
        last: Option<usize>,
    },
    /// The full cycle: down -v, up (fresh database, app from the checkout), migrate, run, save, compare
    #[command(after_help = EXIT_CODES)]
    Bench(BenchCmd),
    /// Bring the compose stack up through the Docker Engine (build, create, start, wait healthy)
    Up {
        #[command(flatten)]
        stack: crate::stack_cmd::StackArgs,
        /// Take the project down (-v) first, for a fresh database
        #[arg(long)]
        fresh: bool,
        /// Keep the containers of a failed up for debugging
        #[arg(long)]
        keep_on_failure: bool,
        /// How long services may take to become healthy
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        timeout: std::time::Duration,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove the project's containers, network and volumes (like `docker compose down -v`)
    Down {
        #[command(flatten)]
        stack: crate::stack_cmd::StackArgs,
        /// Also remove the images the project builds (services with `build:`), like compose's --rmi local
        #[arg(long)]
        rmi: bool,
    },
    /// List the project's services: state, health, published ports
    Ps {
        #[command(flatten)]
        stack: crate::stack_cmd::StackArgs,
    },
    /// List the local stand-in images (Postgres, Debian base, Prometheus, Pushgateway); --build makes the missing ones
    ///
    /// Stand-ins are made where no registry is reachable: a Debian root file system by mmdebstrap, turned into
    /// an image by the Engine. Their tags get `-<suffix>` when LOADTEST_STANDIN_SUFFIX is set, so a run can
    /// build them anew without touching the ones the machine keeps.
    Images {
        /// Build the missing ones (in parallel, one progress line each; the raw log goes to a file)
        #[arg(long, conflicts_with = "remove")]
        build: bool,
        /// Remove the stand-in images (of the current suffix)
        #[arg(long)]
        remove: bool,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Create data through the API: the [[populate]] entries of a scenario or data file
    Populate {
        /// Scenario name or path to a .toml file with [[populate]] entries
        #[arg(short, long)]
        scenario: String,
        /// Base URL of the service
        #[arg(short, long, env = "LOADTEST_TARGET")]
        target: String,
        #[arg(long, default_value = "scenarios", env = "LOADTEST_SCENARIOS_DIR")]
        scenarios_dir: PathBuf,
        /// No progress bar
        #[arg(short, long)]
        quiet: bool,
    },
    /// The database: state, prepare (template), reset, restore (snapshot), seed, reset-bench
    Db(crate::db_cmd::DbArgs),
    /// Apply the sqlx migrations to the stack's database
    Migrate {
        /// Postgres URL (default: the stack's published database)
        #[arg(
            long,
            env = "LOADTEST_DATABASE_URL",
            default_value = "postgres://demo:demo@127.0.0.1:5433/demo"
        )]
        database_url: String,
        /// Folder of <version>_<name>.sql files
        #[arg(long, default_value = "demo/migrations")]
        migrations: PathBuf,
    },
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

pub const COMPARE_HELP: &str = "BASE and CURRENT are result files, or run names resolved as <dir>/<run>_<scenario>.json.

Each metric (req/s, p50, p90, p95, p99, max, mean, error rate, checks rate), per request name and overall,
gets a change with a bootstrap confidence interval and a Mann-Whitney U p-value, computed from the runs'
one-second windows (or from their trials with `run --repeat N`). A metric regresses only when the change is
significant and the whole interval lies beyond its tolerance. Tolerances and gates: config/regression.toml.

Exit codes:
  0   no gate regressed
  2   unusable input: missing or corrupt file, unknown schema_version, runs not comparable
  98  at least one gate regressed";

#[derive(clap::Args, Debug)]
pub struct CompareCmd {
    /// The baseline: a result file or a run name (e.g. baseline)
    pub base: String,
    /// The run to judge: a result file or a run name (e.g. a commit hash)
    pub current: String,
    /// Scenario name, to resolve run names
    #[arg(short, long)]
    pub scenario: Option<String>,
    /// Folder of the result files when run names are given
    #[arg(short, long, default_value = "benchmark")]
    pub dir: PathBuf,
    /// What to print
    #[arg(short, long, value_enum, default_value = "text")]
    pub format: crate::compare_cmd::Format,
    /// Tolerances and gates (default: config/regression.toml if present)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Judge even when scenario file, executor settings or thresholds differ
    #[arg(long)]
    pub allow_mismatch: bool,
    /// Also write the printed report to this file
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct BenchCmd {
    /// Scenario name or path (default: LOADTEST_SCENARIO, else health)
    #[arg(short, long)]
    pub scenario: Option<String>,
    /// Run name (default: LOADTEST_RUN_NAME, else baseline)
    #[arg(short, long)]
    pub run_name: Option<String>,
    /// Compare with benchmark/baseline_<scenario>.json afterwards (exit 98 on a regression)
    #[arg(short, long)]
    pub compare: bool,
    /// Take the stack down after the run (default: leave it up for viewing)
    #[arg(long)]
    pub down: bool,
    /// Keep the containers when bringing the stack up fails
    #[arg(long)]
    pub keep_on_failure: bool,
    #[arg(long)]
    pub vus: Option<u32>,
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Settings file
    #[arg(long, default_value = "config/loadtest.toml")]
    pub config: PathBuf,
    #[arg(long, default_value = ".env")]
    pub env_file: PathBuf,
    #[arg(short, long)]
    pub quiet: bool,
    /// Enable services under this compose profile too, e.g. grafana (repeatable; adds to LOADTEST_PROFILES)
    #[arg(long = "profile")]
    pub profiles: Vec<String>,
    /// Database reset before the run (default: [database] reset, recreate). All but recreate
    /// reuse a running stack (the app is not rebuilt)
    #[arg(long, value_enum)]
    pub reset: Option<crate::db::reset::Strategy>,
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
    /// Push live metrics to this Prometheus Pushgateway every 5 s and at the end
    #[arg(long, env = "LOADTEST_PUSH_URL")]
    pub push_url: Option<String>,
    /// Prometheus with the service's own metrics: adds the server-side view (server vs client p95 per route)
    #[arg(long, env = "LOADTEST_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Bucket series of the service's latency histogram (needs `route` and `method` labels)
    #[arg(long, env = "LOADTEST_SERVER_METRIC", default_value = crate::metrics::server::DEFAULT_SELECTOR)]
    pub server_metric: String,
    /// Grafana base URL: the "Load test" dashboard link for the run is printed (with --push-url)
    #[arg(long, env = "LOADTEST_GRAFANA_URL")]
    pub grafana_url: Option<String>,
    /// Database step: template, truncate or delete before the run; snapshot = copy before, restore after
    /// (the database and its settings come from [database] of --config)
    #[arg(long, value_enum)]
    pub reset: Option<crate::db::reset::Strategy>,
    /// Database for --reset (default: [database] url of --config)
    #[arg(long, env = "LOADTEST_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Settings file read for --reset
    #[arg(long, default_value = "config/loadtest.toml")]
    pub config: PathBuf,
    /// Run the load phase N times (after one setup) and keep every trial's figures;
    /// `loadtest compare` then judges between-trial variance (use 5 or more)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(s)
}
