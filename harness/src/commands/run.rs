//! `loadtest run`: the orchestration of one run, from scenario file to result
//! files: set-up (scenario, target, data, database step), the run phases
//! (populate, setup, load trials, teardown), then the result files.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::exit::{Classify, Failure};
use crate::scenario::{self};

pub use crate::runner::execute;
pub use crate::runner::plan::{RunPlan, RunReport, ShardPlan, TlsArgs};

/// `--web [ADDR]` and `--no-html`, shared by `run` and the full cycle.
pub use super::ViewArgs;

#[derive(clap::Args, Debug)]
pub struct RunCmd {
    /// Scenario name (<scenarios-dir>/NAME.toml, else a k6 script NAME.js there or in k6/) or a
    /// path to a .toml file or a k6 script (.js, run by k6)
    #[arg(short, long)]
    pub scenario: String,
    /// NAME=VALUE for a k6 script's __ENV (as k6's -e); BASE_URL is the target
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// Base URL of the system under test, e.g. http://127.0.0.1:8080 (default: [target] url of
    /// loadtest.toml, else the app service's published port)
    #[arg(short, long, env = "LOADTEST_TARGET")]
    pub target: Option<String>,
    /// Number of VUs; overrides the scenario's executor where it applies (as k6's --vus)
    #[arg(long)]
    pub vus: Option<u32>,
    /// Duration such as 30s or 1m30s; overrides the scenario's executor where it applies
    #[arg(long, value_parser = super::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Run name: the prefix of the result files
    #[arg(short, long, default_value = "baseline")]
    pub run_name: String,
    /// Folder for the result files
    #[arg(short, long, default_value = "benchmark")]
    pub out: PathBuf,
    /// Folder holding the scenario files (default: [paths] scenarios of loadtest.toml, else scenarios;
    /// k6 scripts are also looked for in its [k6] dir)
    #[arg(long, env = "LOADTEST_SCENARIOS_DIR")]
    pub scenarios_dir: Option<PathBuf>,
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
    #[arg(long, default_value_os_t = crate::config::default_path())]
    pub config: PathBuf,
    /// Run the load phase N times (after one setup) and keep every trial's figures;
    /// `loadtest compare` then judges between-trial variance (use 5 or more)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Also write Locust's CSV files: PREFIX_stats.csv and PREFIX_failures.csv at the end,
    /// PREFIX_stats_history.csv every second during the run (e.g. --csv benchmark/run1)
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<PathBuf>,
    #[command(flatten)]
    pub view: ViewArgs,
    /// Run one shard of a split test: i/N, shards numbered from 0 (0/3, 1/3, 2/3). The shard runs
    /// its stripe of the VUs, iterations and arrivals; `loadtest merge` adds the shards' results up
    #[arg(
        long,
        value_name = "i/N",
        env = "LOADTEST_SHARD",
        conflicts_with = "execution_segment"
    )]
    pub shard: Option<String>,
    /// k6's form of --shard: this generator's segment (1/3:2/3, 25%:50%, 0.5)
    #[arg(long, value_name = "FROM:TO")]
    pub execution_segment: Option<String>,
    /// k6's form: every generator's segment boundaries (0,1/3,2/3,1); default: the segment's own
    #[arg(long, value_name = "LIST", requires = "execution_segment")]
    pub execution_segment_sequence: Option<String>,
    /// Start together with the other shards and hand the result to the coordinator at HOST:PORT
    /// (`loadtest distribute` sets it)
    #[arg(long, value_name = "HOST:PORT", env = "LOADTEST_COORDINATOR")]
    pub coordinator: Option<String>,
}

impl RunCmd {
    /// `--shard i/N` or k6's segment flags, with the coordinator if any.
    fn shard_plan(&self) -> Result<Option<ShardPlan>, Failure> {
        let stripe = match (&self.shard, &self.execution_segment) {
            (Some(s), _) => {
                let s = swarm_slot(s);
                parse_shard(&s).map_err(|e| Failure::Usage(anyhow!("--shard {s}: {e}")))?
            }
            (None, Some(seg)) => crate::executor::segment::Stripe::parse(
                seg,
                self.execution_segment_sequence.as_deref(),
            )
            .map_err(|e| Failure::Usage(anyhow!("--execution-segment {seg}: {e}")))?,
            (None, None) if self.coordinator.is_some() => {
                return Err(Failure::Usage(anyhow!(
                    "--coordinator is for a shard: give --shard i/N too"
                )))
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(ShardPlan {
            stripe,
            coordinator: self.coordinator.clone(),
        }))
    }

    pub fn execute(&self) -> Result<u8, Failure> {
        // The settings give what the flags leave out: the target, the scenario
        // folders, the k6 mount; a stack that is up is reached by service name.
        // Flags are checked before the settings and the scenario are read.
        let web = self.view.web_addr()?;
        let vars = crate::config::read_dotenv(Path::new(".env"))?;
        let loaded = crate::config::Config::load(&self.config, &vars);
        let needs_cfg = self.target.is_none();
        if needs_cfg && !self.config.is_file() {
            return Err(Failure::Usage(anyhow!(
                "no target: give --target URL (-t), or run where a loadtest.toml names one ([target] url, or [stack] app_service)"
            )));
        }
        let mut cfg = match loaded {
            Ok(c) => Some(c),
            Err(e) if needs_cfg => return Err(Failure::Usage(e)),
            Err(_) => None,
        };
        let mut target = self.target.clone();
        if let Some(c) = cfg.as_mut() {
            if c.project(&vars, &[]).is_ok() {
                super::runtime()?.block_on(crate::prepare::learn_running(c, &vars));
            }
            if target.is_none() {
                target = Some(crate::resolve::url(&c.target));
            }
        }
        let target = target.unwrap_or_default();
        let scenarios_dir = self
            .scenarios_dir
            .clone()
            .or(cfg.as_ref().map(|c| c.scenarios.clone()))
            .unwrap_or_else(|| PathBuf::from("scenarios"));
        let k6_dir = match &cfg {
            Some(c) if c.k6_dir.is_dir() => c.k6_dir.clone(),
            _ => std::env::var_os("LOADTEST_K6_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| scenarios_dir.parent().unwrap_or(Path::new(".")).join("k6")),
        };
        let scenario = scenario::resolve_in(&self.scenario, &scenarios_dir, &k6_dir)
            .usage()?
            .display()
            .to_string();
        let k6_mount = cfg
            .as_ref()
            .filter(|c| c.k6_dir.is_dir())
            .map(|c| (c.k6_mount.clone(), c.k6_dir.clone()));
        let db_reset = match self.reset {
            None => None,
            Some(strategy) => {
                let vars = crate::config::read_dotenv(Path::new(".env"))?;
                let cfg = crate::config::Config::load(&self.config, &vars).usage()?;
                super::runtime()?.block_on(crate::prepare::learn_running(&cfg, &vars));
                let mut db = cfg.db;
                if let Some(u) = &self.database_url {
                    db.url = u.clone();
                }
                Some((strategy, db))
            }
        };
        let report = execute(RunPlan {
            tls: self.tls.clone(),
            db_reset,
            scenario,
            scenarios_dir,
            target,
            vus: self.vus,
            duration: self.duration,
            run_name: self.run_name.clone(),
            out: self.out.clone(),
            quiet: self.quiet,
            repeat: self.repeat,
            stack: None,
            push_url: self.push_url.clone(),
            prometheus_url: self.prometheus_url.clone().filter(|u| !u.is_empty()),
            server_metric: self.server_metric.clone(),
            grafana_url: self.grafana_url.clone().filter(|u| !u.is_empty()),
            trial: false,
            csv: self.csv.clone(),
            web,
            html: !self.view.no_html,
            stop: None,
            script_env: self.env.clone(),
            k6_mount,
            k6_hosts: None,
            shard: self.shard_plan()?,
        })?;
        Ok(report.code)
    }
}

/// A task of `distribute --on swarm` gets `{{.Task.Slot}}/N`; a replicated
/// job's slots run from 0, and the swarm renders slot 0 as the node's id
/// instead of `0`. Only inside such a task (LOADTEST_SWARM_JOB set) is a
/// non-number taken as slot 0.
fn swarm_slot(s: &str) -> String {
    match s.split_once('/') {
        Some((i, n))
            if std::env::var_os("LOADTEST_SWARM_JOB").is_some() && i.parse::<usize>().is_err() =>
        {
            format!("0/{n}")
        }
        _ => s.to_string(),
    }
}

/// `i/N`: shard i (0-based) of N equal shards.
pub fn parse_shard(s: &str) -> Result<crate::executor::segment::Stripe, String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| "expected i/N, e.g. 0/3 (shards are numbered from 0)".to_string())?;
    let i: usize = i
        .trim()
        .parse()
        .map_err(|_| format!("`{i}` is not a shard number"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a number of shards"))?;
    if n > 1000 {
        return Err(format!("{n} shards: at most 1000"));
    }
    crate::executor::segment::Stripe::equal(i, n)
}

pub fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}`: expected NAME=VALUE")),
    }
}
