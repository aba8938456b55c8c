//! What a run is given and what it comes to, shared by `run`, the full cycle,
//! A/B trials and k6 scripts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::results::StackInfo;
use crate::scenario::Scenario;

/// Everything one run needs, from `loadtest run` or the full cycle.
pub struct RunPlan {
    pub scenario: String,
    /// --ca-cert / --insecure-skip-tls-verify (over the scenario's options).
    pub tls: TlsArgs,
    pub scenarios_dir: PathBuf,
    pub target: String,
    pub vus: Option<u32>,
    pub duration: Option<Duration>,
    pub run_name: String,
    pub out: PathBuf,
    pub quiet: bool,
    /// Run the load phase this many times (trials) and keep each trial's figures.
    pub repeat: u32,
    /// Recorded in the result when the stack was brought up for this run.
    pub stack: Option<StackInfo>,
    /// Pushgateway for live metrics.
    pub push_url: Option<String>,
    /// Prometheus holding the service's own metrics (the server-side view).
    pub prometheus_url: Option<String>,
    /// Bucket series of the service's latency histogram, with `route` and `method` labels.
    pub server_metric: String,
    /// Grafana base URL, for the dashboard link printed at the end.
    pub grafana_url: Option<String>,
    /// Database reset before the run (snapshot: taken before, restored after).
    pub db_reset: Option<(crate::db::reset::Strategy, crate::db::reset::DbSettings)>,
    /// One trial of `loadtest ab`: result files only; no summary printed, no history line.
    pub trial: bool,
    /// Locust's CSV files: `<prefix>_stats.csv`, `_stats_history.csv`, `_failures.csv`.
    pub csv: Option<PathBuf>,
    /// Serve the live page on this address during the run.
    pub web: Option<String>,
    /// Write `<run>_<scenario>.html` beside the result.
    pub html: bool,
    /// Ends the run as Ctrl-C does when cancelled (the A/B command's live page).
    pub stop: Option<tokio_util::sync::CancellationToken>,
    /// `-e NAME=VALUE` for a k6 script's `__ENV`.
    pub script_env: Vec<(String, String)>,
    /// Where the team's compose file mounts its k6 folder (`/scripts`) and
    /// that folder here: files a script's handleSummary writes under the
    /// mount land in the folder, as they would in the team's k6 container.
    pub k6_mount: Option<(String, PathBuf)>,
    /// k6's `hosts` for this run (an A/B trial points the app's name at its
    /// side); None: every service of the stack at its address.
    pub k6_hosts: Option<std::collections::BTreeMap<String, String>>,
    /// This run is one shard of a split run (`--shard`, `--execution-segment`).
    pub shard: Option<ShardPlan>,
}

/// One shard of a split run: its stripe of the load, and the coordinator it
/// starts with and hands its result to (a distributed run), if any.
#[derive(Clone, Debug)]
pub struct ShardPlan {
    pub stripe: crate::executor::segment::Stripe,
    pub coordinator: Option<String>,
}

/// How an https target is trusted, from the command line; over the scenario's
/// `tls_ca_file` / `insecure_skip_tls_verify`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Trust the CA certificates in this PEM file too (https targets)
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate (self-signed test environments only)
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
}

impl TlsArgs {
    /// The settings for a run of the scenario at `path`.
    pub fn settings(&self, sc: &Scenario, path: &Path) -> crate::engine::tls::TlsSettings {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut s = sc.options.tls.clone().relative_to(dir);
        if let Some(ca) = &self.ca_cert {
            s.ca_file = Some(ca.clone());
        }
        s.insecure_skip_verify |= self.insecure_skip_tls_verify;
        s
    }
}

/// Result of `loadtest run`: the exit code and where the files went.
pub struct RunReport {
    pub code: u8,
    pub json: PathBuf,
    /// Every file written: the result, its summary and report, Locust's CSV.
    pub files: Vec<PathBuf>,
    /// What the run came to, in a sentence (the live page shows it).
    pub message: String,
}
