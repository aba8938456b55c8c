use std::process::ExitCode;

use clap::Parser;

use loadtest::cli::{Cli, Command};
use loadtest::exit::{self, Classify, Failure};
use loadtest::{bench_cmd, compare_cmd, run, scenario, stack_cmd};

fn main() -> ExitCode {
    loadtest::output::install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            loadtest::errln!("error: {f}");
            ExitCode::from(f.code())
        }
    }
}

fn dispatch(cmd: Command) -> Result<u8, Failure> {
    match cmd {
        Command::Run(r) => {
            let db_reset = match r.reset {
                None => None,
                Some(strategy) => {
                    let vars = stack_cmd::read_dotenv(std::path::Path::new(".env"))?;
                    let cfg = loadtest::config::Config::load(&r.config, &vars).usage()?;
                    let mut db = cfg.db;
                    if let Some(u) = &r.database_url {
                        db.url = u.clone();
                    }
                    Some((strategy, db))
                }
            };
            let report = run::execute(run::RunArgs {
                db_reset,
                scenario: r.scenario,
                scenarios_dir: r.scenarios_dir,
                target: r.target,
                vus: r.vus,
                duration: r.duration,
                run_name: r.run_name,
                out: r.out,
                quiet: r.quiet,
                repeat: r.repeat,
                stack: None,
                push_url: r.push_url,
                prometheus_url: r.prometheus_url.filter(|u| !u.is_empty()),
                server_metric: r.server_metric,
                grafana_url: r.grafana_url.filter(|u| !u.is_empty()),
            })?;
            Ok(report.code)
        }
        Command::Compare(c) => compare_cmd::execute(compare_cmd::CompareArgs {
            base: c.base,
            current: c.current,
            scenario: c.scenario,
            dir: c.dir,
            format: c.format,
            config: c.config,
            allow_mismatch: c.allow_mismatch,
            report: c.report,
        }),
        Command::History {
            scenario: s,
            dir,
            last,
        } => compare_cmd::history(&s, &dir, last),
        Command::Bench(b) => bench_cmd::execute(bench_cmd::BenchArgs {
            config: b.config,
            env_file: b.env_file,
            scenario: b.scenario,
            run_name: b.run_name,
            compare: b.compare,
            down: b.down,
            keep_on_failure: b.keep_on_failure,
            vus: b.vus,
            duration: b.duration,
            repeat: b.repeat,
            quiet: b.quiet,
            profiles: b.profiles,
            reset: b.reset,
        }),
        Command::Up {
            stack,
            fresh,
            keep_on_failure,
            timeout,
            quiet,
        } => stack_cmd::up_cmd(&stack, fresh, keep_on_failure, timeout, quiet),
        Command::Db(d) => loadtest::db_cmd::execute(d),
        Command::Populate {
            scenario: s,
            target,
            scenarios_dir,
            quiet,
        } => {
            let path = scenario::resolve(&s, &scenarios_dir).usage()?;
            let sc = std::sync::Arc::new(scenario::load(&path).usage()?);
            if sc.populate.is_empty() {
                return Err(Failure::Usage(anyhow::anyhow!(
                    "{}: no [[populate]] entries",
                    path.display()
                )));
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .runtime()?;
            let target = std::sync::Arc::new(
                rt.block_on(loadtest::engine::client::Target::resolve(&target))
                    .usage()?,
            );
            let mut base = std::collections::BTreeMap::new();
            base.insert("env".to_string(), loadtest::engine::env_value());
            rt.block_on(loadtest::populate::run_all(&sc, &target, &base, !quiet))
                .runtime()?;
            Ok(exit::OK)
        }
        Command::Down { stack, rmi } => stack_cmd::down_cmd(&stack, rmi),
        Command::Migrate {
            database_url,
            migrations,
        } => stack_cmd::migrate_cmd(&database_url, &migrations),
        Command::Ps { stack } => stack_cmd::ps_cmd(&stack),
        Command::Images {
            build,
            remove,
            quiet,
        } => stack_cmd::images_cmd(build, remove, quiet),
        Command::Validate {
            scenario: s,
            scenarios_dir,
        } => {
            let path = scenario::resolve(&s, &scenarios_dir).usage()?;
            let sc = scenario::load(&path).usage()?;
            loadtest::outln!(
                "{}: ok ({}, {} setup / {} load / {} teardown steps, {} thresholds)",
                path.display(),
                sc.options.executor.name(),
                sc.setup.len(),
                sc.steps.len(),
                sc.teardown.len(),
                sc.thresholds.len()
            );
            Ok(exit::OK)
        }
        Command::Scenarios { scenarios_dir } => {
            for name in scenario::list(&scenarios_dir) {
                let path = scenarios_dir.join(format!("{name}.toml"));
                match scenario::load(&path) {
                    Ok(sc) => loadtest::outln!("{name:<28} {}", sc.description.unwrap_or_default()),
                    Err(e) => loadtest::outln!("{name:<28} INVALID: {e}"),
                }
            }
            Ok(exit::OK)
        }
    }
}
