//! `loadtest bench`: the full cycle. down -v -> up (fresh database, app image
//! from the checkout) -> migrate -> run -> save -> compare when asked -> leave
//! the stack up for viewing, or take it down with --down.

use std::path::PathBuf;

use anyhow::anyhow;

use super::compare::CompareCmd;
use super::run::{self, RunPlan};
use crate::config::{read_dotenv, Config};
use crate::db::reset::Phase;
use crate::exit::{self, Classify, Failure};
use crate::prepare;
use crate::report::Format;
use crate::results::result_path;
use crate::scenario;

use crate::stack::docker::DockerClient;

fn say(quiet: bool, msg: &str) {
    if !quiet {
        crate::errln!("{msg}");
    }
}

#[derive(clap::Args, Debug)]
pub struct CycleCmd {
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
    #[arg(long, value_parser = super::parse_duration)]
    pub duration: Option<std::time::Duration>,
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Also write Locust's CSV files (PREFIX_stats.csv, PREFIX_stats_history.csv, PREFIX_failures.csv)
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub view: super::run::ViewArgs,
    /// Settings file
    #[arg(long, default_value_os_t = crate::config::default_path())]
    pub config: PathBuf,
    #[arg(long, default_value = ".env")]
    pub env_file: PathBuf,
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME=VALUE for a k6 script's __ENV (repeatable), as `k6 run -e`
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = super::run::parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// Enable services under this compose profile too, e.g. grafana (repeatable; adds to LOADTEST_PROFILES)
    #[arg(long = "profile")]
    pub profiles: Vec<String>,
    /// Database reset before the run (default: [database] reset, recreate). All but recreate
    /// reuse a running stack (the app is not rebuilt)
    #[arg(long, value_enum)]
    pub reset: Option<crate::db::reset::Strategy>,
}

impl CycleCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        cycle(self)
    }
}

fn cycle(a: &CycleCmd) -> Result<u8, Failure> {
    let vars = read_dotenv(&a.env_file)?;
    let mut cfg = Config::load(&a.config, &vars).usage()?;
    let scenario_name = a.scenario.clone().unwrap_or(cfg.scenario.clone());
    let run_name = a.run_name.clone().unwrap_or(cfg.run_name.clone());
    // Before down/up: a bad name must not cost a stack cycle.
    crate::results::check_name("run name", &run_name).usage()?;
    // Everything that can be checked without Docker is checked first.
    let path = scenario::resolve_in(&scenario_name, &cfg.scenarios, &cfg.k6_dir).usage()?;
    if let Some(note) = scenario::shadowed(&scenario_name, &cfg.scenarios, &cfg.k6_dir) {
        say(a.quiet, &format!("note: {note}"));
    }
    let sc_name = if scenario::is_script(&path) {
        crate::k6::script_name(&path)
    } else {
        scenario::load(&path).usage()?.name
    };
    let baseline = result_path(&cfg.results, "baseline", &sc_name, "json");
    if a.compare {
        if run_name == "baseline" {
            return Err(Failure::Usage(anyhow!(
                "--compare judges a run against the baseline: give it another run name (-r), e.g. the commit"
            )));
        }
        if !baseline.is_file() {
            return Err(Failure::Usage(anyhow!(
                "no baseline for scenario `{}`: {} is missing; record one first with `loadtest bench -s {}` (run name baseline)",
                sc_name,
                baseline.display(),
                sc_name
            )));
        }
    }
    let project = cfg.project(&vars, &a.profiles).usage()?;
    // A script calling a host that is no service of the stack fails before
    // the stack is touched.
    if scenario::is_script(&path) {
        let names = project
            .services
            .iter()
            .chain(&project.jobs)
            .map(|s| (s.name.clone(), String::new()))
            .collect();
        crate::k6::check_hosts(&path, &names).usage()?;
    }

    let web = a.view.web_addr()?;
    let rt = super::runtime()?;
    let quiet = a.quiet;
    let strategy = a.reset.unwrap_or(cfg.reset);
    prepare::check_strategy(&cfg.db, strategy)?;
    let stack = rt.block_on(prepare::prepare_stack(
        &project,
        &cfg,
        strategy,
        a.keep_on_failure,
        quiet,
    ))?;

    // A stack without a Pushgateway of its own gets the harness's, beside it.
    let has_own = project.service("pushgateway").is_some();
    let observed = if cfg.push_url.is_none() && cfg.observe && !has_own {
        let app = cfg.app_service.as_deref().and_then(|a| {
            let port = project.service(a)?.ports.first()?.container_port;
            Some((a, port))
        });
        let o = rt
            .block_on(async {
                let docker = DockerClient::connect().await?;
                crate::stack::observe::start(&docker, &project, app, cfg.wait_timeout, quiet).await
            })
            .map_err(|e| e.context("the harness's Pushgateway and Prometheus beside the stack"))
            .runtime()?;
        say(
            quiet,
            &format!(
                "observe: live metrics to {} (Prometheus {}, project {})",
                o.push_url, o.prometheus_url, o.project
            ),
        );
        cfg.push_url = Some(o.push_url.clone());
        Some(o)
    } else {
        None
    };
    let report = run::execute(RunPlan {
        tls: Default::default(),
        scenario: path.display().to_string(),
        scenarios_dir: cfg.scenarios.clone(),
        // A target named by service (not published) is reached at its address.
        target: crate::resolve::url(&cfg.target),
        vus: a.vus,
        duration: a.duration,
        run_name: run_name.clone(),
        out: cfg.results.clone(),
        quiet: a.quiet,
        repeat: a.repeat,
        stack: Some(stack),
        push_url: cfg.push_url.clone(),
        prometheus_url: cfg.prometheus_url.clone(),
        server_metric: cfg.server_metric.clone(),
        grafana_url: cfg.grafana_url.clone(),
        db_reset: (strategy.phase() == Phase::AroundRun).then(|| (strategy, cfg.db.clone())),
        trial: false,
        csv: a.csv.clone(),
        web,
        html: !a.view.no_html,
        stop: None,
        script_env: a.env.clone(),
        k6_mount: cfg
            .k6_dir
            .is_dir()
            .then(|| (cfg.k6_mount.clone(), cfg.k6_dir.clone())),
        k6_hosts: None,
        shard: None,
    });
    let finish = |code: u8| -> Result<u8, Failure> {
        if a.down {
            rt.block_on(async {
                let docker = DockerClient::connect().await.runtime()?;
                if let Some(o) = &observed {
                    docker
                        .down(&o.project, Some(&project.working_dir))
                        .await
                        .runtime()?;
                }
                docker
                    .down(&project.name, Some(&project.working_dir))
                    .await
                    .runtime()
            })?;
            say(
                quiet,
                &format!("stack: project {} taken down (--down)", project.name),
            );
        } else {
            say(
                quiet,
                &format!(
                    "stack: project {} left up for viewing at {}; `loadtest down -p {}` removes it{}",
                    project.name,
                    cfg.target,
                    project.name,
                    observed
                        .as_ref()
                        .map(|o| format!(
                            " (and `loadtest down -p {}` its Prometheus at {})",
                            o.project, o.prometheus_url
                        ))
                        .unwrap_or_default()
                ),
            );
        }
        Ok(code)
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            finish(e.code())?;
            return Err(e);
        }
    };
    say(
        quiet,
        &format!(
            "harness: peak RSS {} MB over the whole cycle (stack, images, database, load); the load generator's own during the load is in the summary",
            crate::results::whole_peak_rss_kb().div_ceil(1024)
        ),
    );
    let mut code = report.code;
    if a.compare {
        let c = CompareCmd {
            base: baseline.display().to_string(),
            current: report.json.display().to_string(),
            scenario: None,
            dir: cfg.results.clone(),
            format: Format::Text,
            config: None,
            allow_mismatch: false,
            report: None,
        }
        .execute();
        code = match c {
            Ok(exit::REGRESSED) => exit::REGRESSED,
            Ok(_) => code,
            Err(e) => {
                crate::errln!("error: {e}");
                e.code()
            }
        };
    }
    finish(code)
}
