//! `loadtest db ...`: state, prepare, reset, restore, seed, reset-bench.

use std::path::PathBuf;

use crate::config::read_dotenv;
use crate::config::Config;
use crate::db::reset::{self, DbSettings, EmptyWith, Phase, Strategy};
use crate::db::{seed, state};
use crate::exit::{self, Classify, Failure};

#[derive(clap::Args, Debug)]
pub struct DbArgs {
    /// Settings file ([database] holds url, reset, disposable, template, delete, keep, data)
    #[arg(long, default_value_os_t = crate::config::default_path(), global = true)]
    pub config: PathBuf,
    #[arg(long, default_value = ".env", global = true)]
    pub env_file: PathBuf,
    /// Postgres URL (default: [database] url of the settings, LOADTEST_DATABASE_URL)
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum DbCommand {
    /// Rows and a checksum of every table (to see that a reset restored exactly)
    State {
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// Keep the database as it is now (migrated, seeded) as the template of `template` resets
    Prepare,
    /// Put the database back now with a strategy (default: [database] reset)
    Reset {
        #[arg(long, value_enum)]
        strategy: Option<Strategy>,
        /// How `truncate` empties tables
        #[arg(long, value_enum)]
        empty_with: Option<EmptyWith>,
    },
    /// Put back the snapshot an interrupted or failed run left behind
    Restore,
    /// Generate the data described in a data file and bulk-load it with COPY
    Seed {
        /// Data description (default: [database] data, else config/data.toml)
        #[arg(long)]
        data: Option<PathBuf>,
        /// Seed of the generator (default: the file's `seed`)
        #[arg(long)]
        seed: Option<u64>,
        /// Write the merchants' ids and API keys here (default: the file's `identities`)
        #[arg(long)]
        identities: Option<PathBuf>,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Time every reset strategy on the running stack at given data sizes; writes a table
    ResetBench {
        /// Payment rows to seed before measuring (comma-separated sizes)
        #[arg(long, value_delimiter = ',', default_value = "1000,100000")]
        rows: Vec<u64>,
        /// Rounds per strategy and size; the table shows the median
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
        rounds: u32,
        /// Data description to scale (default: [database] data, else config/data.toml)
        #[arg(long)]
        data: Option<PathBuf>,
        /// Also time `recreate` (stack down -v, up, migrate, seed) once per size
        #[arg(long)]
        recreate: bool,
        /// Markdown table
        #[arg(long, default_value = "bench/results/reset.md")]
        out: PathBuf,
    },
}

pub fn settings(a: &DbArgs) -> Result<(Config, DbSettings), Failure> {
    let vars = read_dotenv(&a.env_file)?;
    let cfg = Config::load(&a.config, &vars).usage()?;
    let mut db = cfg.db.clone();
    if let Some(u) = &a.database_url {
        db.url = u.clone();
    }
    db.database().usage()?;
    Ok((cfg, db))
}

fn data_path(cfg: &Config, given: &Option<PathBuf>) -> PathBuf {
    given
        .clone()
        .or(cfg.data.clone())
        .unwrap_or_else(|| PathBuf::from("config/data.toml"))
}

impl DbArgs {
    pub fn execute(self) -> Result<u8, Failure> {
        execute(self)
    }
}

fn execute(a: DbArgs) -> Result<u8, Failure> {
    let (cfg, mut db) = settings(&a)?;
    let rt = super::runtime()?;
    rt.block_on(crate::prepare::learn_running(
        &cfg,
        &read_dotenv(&a.env_file)?,
    ));
    match a.command {
        DbCommand::State { json } => {
            let states = rt
                .block_on(async {
                    let mut c = crate::db::connect(&db.url).await?;
                    state::snapshot(&mut c).await
                })
                .runtime()?;
            if json {
                crate::outln!(
                    "{}",
                    serde_json::to_string_pretty(&states).expect("serialisable")
                );
            } else {
                crate::outln!("{:<36} {:>10}  checksum", "table", "rows");
                for s in states {
                    crate::outln!("{:<36} {:>10}  {}", s.table, s.rows, s.checksum);
                }
            }
            Ok(exit::OK)
        }
        DbCommand::Prepare => {
            db.require_disposable(Strategy::Template).usage()?;
            db.template_name().usage()?;
            let t = rt.block_on(reset::save_template(&db)).runtime()?;
            crate::outln!(
                "template `{}` saved from `{}` in {} ms; `loadtest db reset --strategy template` copies it back",
                db.template_name().usage()?,
                db.database().usage()?,
                t.as_millis()
            );
            Ok(exit::OK)
        }
        DbCommand::Reset {
            strategy,
            empty_with,
        } => {
            let strategy = strategy.unwrap_or(cfg.reset);
            if let Some(w) = empty_with {
                db.empty_with = w;
            }
            strategy.check(&db).usage()?;
            match strategy.phase() {
                // reset() says what to use instead.
                Phase::Stack | Phase::AroundRun => {
                    return Err(Failure::Usage(
                        rt.block_on(reset::reset(&db, strategy)).unwrap_err(),
                    ));
                }
                Phase::BeforeRun | Phase::Never => {}
            }
            let msg = rt.block_on(reset::reset(&db, strategy)).runtime()?;
            crate::outln!("{msg}");
            Ok(exit::OK)
        }
        DbCommand::Restore => {
            let snap = rt.block_on(reset::pending_snapshot(&db)).runtime()?;
            match snap {
                None => {
                    crate::outln!(
                        "no snapshot of `{}` is waiting: nothing to restore",
                        db.database().usage()?
                    );
                    Ok(exit::OK)
                }
                Some(s) => {
                    let t = rt.block_on(reset::restore_snapshot(&s)).runtime()?;
                    crate::outln!(
                        "`{}` restored from `{}` in {} ms",
                        s.database,
                        s.copy,
                        t.as_millis()
                    );
                    Ok(exit::OK)
                }
            }
        }
        DbCommand::Seed {
            data,
            seed: seed_value,
            identities,
            quiet,
        } => {
            let path = data_path(&cfg, &data);
            let plan = seed::load(&path).usage()?;
            let s = seed_value.unwrap_or(plan.data.seed);
            let ids = identities.or(plan.data.identities.clone().map(PathBuf::from));
            let r = rt
                .block_on(seed::load_into(&db.url, &plan, s, ids.as_deref(), !quiet))
                .runtime()?;
            print_seed(&r, s);
            Ok(exit::OK)
        }
        DbCommand::ResetBench {
            rows,
            rounds,
            data,
            recreate,
            out,
        } => {
            db.require_disposable(Strategy::Truncate).usage()?;
            let plan_path = data_path(&cfg, &data);
            seed::load(&plan_path).usage()?;
            super::reset_bench::run(&cfg, &db, &plan_path, &rows, rounds, recreate, &out)
        }
    }
}

pub fn print_seed(r: &seed::SeedReport, seed_value: u64) {
    crate::outln!(
        "seeded {} merchants and {} payments ({} rows) in {:.2}s: {:.0} rows/s (seed {seed_value}{}){}",
        r.merchants,
        r.payments,
        r.rows,
        r.elapsed.as_secs_f64(),
        r.rows_per_s(),
        if r.fk_checks_skipped {
            ", foreign-key triggers skipped: the rows are consistent by construction"
        } else {
            ""
        },
        match &r.identities {
            Some(p) => format!("; identities in {}", p.display()),
            None => String::new(),
        }
    );
}
