//! `loadtest db reset-bench`, the reset benchmark: every reset strategy timed on the running stack
//! at given data sizes, median of several rounds, as a markdown table.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::Config;
use crate::db::reset::{self, DbSettings, EmptyWith};
use crate::db::seed;
use crate::exit::{self, Classify, Failure};

/// The seeded rows, as the `delete` strategy would find test data.
const SEEDED: [&str; 3] = [
    "DELETE FROM payments WHERE merchant_id LIKE 'mer\\_seed\\_%'",
    "DELETE FROM api_keys WHERE merchant_id LIKE 'mer\\_seed\\_%'",
    "DELETE FROM merchants WHERE merchant_id LIKE 'mer\\_seed\\_%'",
];

/// Payments a typical short run writes (a few seconds at ~1k payments/s).
const RUN_PAYMENTS: u32 = 2000;

/// Writes what a short payment run leaves behind: a merchant of its own and its payments.
async fn write_run(db: &DbSettings) -> Result<()> {
    let mut c = crate::db::connect(&db.url).await?;
    let id = format!("mer_run_{}", fastrand::u64(..));
    sqlx::query("INSERT INTO merchants (merchant_id, merchant_name) VALUES ($1, 'loadtest-bench')")
        .bind(&id)
        .execute(&mut c)
        .await?;
    sqlx::query(
        "INSERT INTO payments (payment_id, merchant_id, status, amount, currency) \
         SELECT $1 || '_' || g, $1, 'succeeded', 100 + g, 'USD' FROM generate_series(1, $2) g",
    )
    .bind(&id)
    .bind(RUN_PAYMENTS as i32)
    .execute(&mut c)
    .await?;
    Ok(())
}

/// Scales the plan to about `payments` payments, keeping its merchants.
fn scale(plan: &mut seed::Plan, payments: u64) {
    let merchants = plan.merchants().max(1);
    let per_merchant = payments.div_ceil(merchants).max(1);
    let customers = (plan.data.customers.per_merchant as u64).clamp(1, per_merchant);
    plan.data.customers.per_merchant = customers as u32;
    plan.data.payments.per_customer = per_merchant.div_ceil(customers) as u32;
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        ms(v[n / 2])
    } else {
        (ms(v[n / 2 - 1]) + ms(v[n / 2])) / 2.0
    }
}

struct Column {
    payments: u64,
    rows: u64,
    seed_rate: f64,
    db_mb: f64,
    template_save_ms: f64,
    cells: Vec<(String, f64)>,
}

async fn db_size_mb(db: &DbSettings) -> Result<f64> {
    let mut c = crate::db::connect(&db.url).await?;
    let b: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut c)
        .await?;
    Ok(b as f64 / 1_048_576.0)
}

async fn measure(db: &DbSettings, plan_path: &Path, payments: u64, rounds: u32) -> Result<Column> {
    let mut plan = seed::load(plan_path)?;
    scale(&mut plan, payments);
    reset::empty_tables(db, EmptyWith::Truncate)
        .await
        .context("emptying the database before seeding")?;
    let r = seed::load_into(&db.url, &plan, plan.data.seed, None, false).await?;
    let template_save = reset::save_template(db).await?;
    let db_mb = db_size_mb(db).await?;
    let mut seeded = db.clone();
    seeded.delete = SEEDED.iter().map(|s| s.to_string()).collect();
    let progress = |what: &str, round: u32| {
        crate::err!(
            "\r  {} payments: {what} {}/{rounds}          ",
            r.payments,
            round + 1
        );
    };
    // Each strategy in turn, every round starting from what a run leaves behind.
    let mut tpl = vec![];
    for round in 0..rounds {
        progress("template", round);
        write_run(db).await?;
        tpl.push(reset::from_template(db).await?);
    }
    // As `loadtest ab` does: the next copy is made during the trial's
    // warm-up, so the reset the trial waits for is two renames.
    let (mut ahead, mut ahead_copy) = (vec![], vec![]);
    for round in 0..rounds {
        progress("template, copy prepared ahead", round);
        ahead_copy.push(reset::prepare_next(db).await?);
        write_run(db).await?;
        ahead.push(reset::from_template(db).await?);
    }
    // The same with the app's pool connected: the swap must first see those
    // sessions gone.
    let mut ahead_busy = vec![];
    for round in 0..rounds {
        progress("template, copy prepared ahead, 10 sessions open", round);
        reset::prepare_next(db).await?;
        write_run(db).await?;
        let mut sessions = Vec::new();
        for _ in 0..10 {
            sessions.push(crate::db::connect(&db.url).await?);
        }
        ahead_busy.push(reset::from_template(db).await?);
        drop(sessions);
    }
    let (mut trunc, mut del_all) = (vec![], vec![]);
    for round in 0..rounds {
        progress("truncate", round);
        write_run(db).await?;
        trunc.push(reset::empty_tables(db, EmptyWith::Truncate).await?.0);
        reset::from_template(db).await?;
        write_run(db).await?;
        del_all.push(reset::empty_tables(db, EmptyWith::Delete).await?.0);
        reset::from_template(db).await?;
    }
    let (mut del_run, mut del_seeded) = (vec![], vec![]);
    for round in 0..rounds {
        progress("delete", round);
        if !db.delete.is_empty() {
            write_run(db).await?;
            del_run.push(reset::delete(db).await?.0);
        }
        del_seeded.push(reset::delete(&seeded).await?.0);
        reset::from_template(db).await?;
    }
    let (mut take, mut restore) = (vec![], vec![]);
    for round in 0..rounds {
        progress("snapshot", round);
        let (snap, t) = reset::take_snapshot(db).await?;
        take.push(t);
        write_run(db).await?;
        restore.push(reset::restore_snapshot(&snap).await?);
    }
    crate::errln!();
    let mut cells = vec![
        ("template: fresh copy swapped in".to_string(), median(tpl)),
        (
            "template: copy prepared ahead (as `ab` does), then renamed in".to_string(),
            median(ahead),
        ),
        (
            "template: copy prepared ahead, 10 sessions open (an app's pool)".to_string(),
            median(ahead_busy),
        ),
        (
            "template: the copy prepared ahead (off the waiting path)".to_string(),
            median(ahead_copy),
        ),
        (
            "truncate: TRUNCATE ... RESTART IDENTITY (one statement)".into(),
            median(trunc),
        ),
        (
            "truncate: DELETE every table, triggers off".into(),
            median(del_all),
        ),
    ];
    if !del_run.is_empty() {
        cells.push((
            format!(
                "delete: the {} configured statements (a run's {RUN_PAYMENTS} payments), triggers off",
                db.delete.len()
            ),
            median(del_run),
        ));
    }
    cells.extend([
        (
            "delete: all seeded rows, 3 ordered statements, triggers off".to_string(),
            median(del_seeded),
        ),
        ("snapshot: take (copy before the run)".into(), median(take)),
        ("snapshot: restore (rename back)".into(), median(restore)),
    ]);
    Ok(Column {
        payments: r.payments,
        rows: r.rows,
        seed_rate: r.rows_per_s(),
        db_mb,
        template_save_ms: template_save.as_secs_f64() * 1000.0,
        cells,
    })
}

pub fn run(
    cfg: &Config,
    db: &DbSettings,
    plan_path: &Path,
    sizes: &[u64],
    rounds: u32,
    recreate: bool,
    out: &Path,
) -> Result<u8, Failure> {
    let rt = super::runtime()?;
    let mut columns = Vec::new();
    for &n in sizes {
        let mut col = rt.block_on(measure(db, plan_path, n, rounds)).runtime()?;
        if recreate {
            let vars = crate::config::read_dotenv(Path::new(".env"))?;
            let mut c = cfg.clone();
            let project = c.project(&vars, &[]).usage()?;
            let mut plan = seed::load(plan_path).usage()?;
            scale(&mut plan, n);
            // The recreated stack is seeded to the same size from a scaled copy of the data file.
            let scaled = tempfile::NamedTempFile::new().runtime()?;
            std::fs::write(scaled.path(), scaled_toml(plan_path, &plan).runtime()?).runtime()?;
            c.data = Some(scaled.path().to_path_buf());
            c.seed = crate::config::Seeding::Generated(scaled.path().to_path_buf());
            let t = Instant::now();
            rt.block_on(crate::prepare::fresh_stack(&project, &c, false, true))?;
            col.cells.push((
                "recreate: down -v, up, migrate, seed (1 round)".into(),
                t.elapsed().as_secs_f64() * 1000.0,
            ));
            rt.block_on(reset::save_template(db)).runtime()?;
        }
        columns.push(col);
    }
    let table = render(&columns, rounds);
    crate::outln!("{table}");
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).runtime()?;
    }
    crate::files::write_atomic(out, table.as_bytes()).runtime()?;
    crate::outln!("written to {}", out.display());
    Ok(exit::OK)
}

/// The data file with the scaled volumes (the bench's own copy).
fn scaled_toml(path: &Path, plan: &seed::Plan) -> Result<String> {
    let text = std::fs::read_to_string(path)?;
    let mut doc: toml_edit::DocumentMut = text.parse()?;
    doc["customers"]["per_merchant"] = toml_edit::value(plan.data.customers.per_merchant as i64);
    doc["payments"]["per_customer"] = toml_edit::value(plan.data.payments.per_customer as i64);
    doc.remove("identities");
    Ok(doc.to_string())
}

fn render(cols: &[Column], rounds: u32) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Database reset strategies\n\n`loadtest db reset-bench --rows {} --rounds {rounds}` on {}: \
         median milliseconds of {rounds} rounds (the demo schema: merchants, api_keys, payments). \
         Each measured reset (but `delete: all seeded rows`) follows what a short run leaves behind \
         ({RUN_PAYMENTS} payments of a merchant of its own); copies (template, snapshot take) first wait \
         for Postgres's checkpoint of those writes.\n",
        cols.iter()
            .map(|c| c.payments.to_string())
            .collect::<Vec<_>>()
            .join(","),
        chrono::Utc::now().format("%Y-%m-%d")
    );
    let _ = write!(o, "| strategy |");
    for c in cols {
        let _ = write!(o, " {} payments (ms) |", c.payments);
    }
    let _ = write!(o, "\n|---|");
    for _ in cols {
        let _ = write!(o, "---:|");
    }
    o.push('\n');
    let names: Vec<&String> =
        cols.iter()
            .flat_map(|c| c.cells.iter().map(|x| &x.0))
            .fold(Vec::new(), |mut v, n| {
                if !v.contains(&n) {
                    v.push(n);
                }
                v
            });
    for name in names {
        let _ = write!(o, "| {name} |");
        for c in cols {
            match c.cells.iter().find(|x| &x.0 == name) {
                Some((_, v)) => {
                    let _ = write!(o, " {v:.1} |");
                }
                None => {
                    let _ = write!(o, " - |");
                }
            }
        }
        o.push('\n');
    }
    let _ = writeln!(o);
    for c in cols {
        let find = |prefix: &str| {
            c.cells
                .iter()
                .find(|x| x.0.starts_with(prefix))
                .map(|x| x.1)
        };
        if let (Some(t), Some(r)) = (find("template"), find("recreate")) {
            let _ = writeln!(
                o,
                "- {} payments: template / recreate = {:.3} ({:.0}x faster to a fresh prepared database).",
                c.payments,
                t / r,
                r / t
            );
        }
    }
    for c in cols {
        let _ = writeln!(
            o,
            "- {} payments: {} rows seeded with COPY at {:.0} rows/s; database {:.1} MB; template saved once in {:.0} ms.",
            c.payments, c.rows, c.seed_rate, c.db_mb, c.template_save_ms
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        let d = Duration::from_millis;
        assert_eq!(median(vec![d(5), d(1), d(3)]), 3.0);
        assert_eq!(median(vec![d(4), d(1), d(3), d(2)]), 2.5);
    }
}
