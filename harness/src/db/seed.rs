//! Generated test data for the demo's schema, bulk-loaded with COPY.
//!
//! `config/data.toml` gives the volumes (merchants, customers per merchant,
//! payments per customer over the last D days, the card mix); the same file
//! and seed always give the same rows. Each merchant gets an API key; the
//! keys are written to an identities CSV that scenarios feed to their VUs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::Connection;

use crate::files::locate::{Locator, Seg};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFile {
    /// Default seed; `--seed` overrides it.
    #[serde(default)]
    pub seed: u64,
    /// Payments are spread uniformly over the `days` before `until`.
    pub days: u32,
    /// `YYYY-MM-DD` or RFC 3339; default: today, 00:00 UTC.
    pub until: Option<String>,
    pub merchants: Merchants,
    pub customers: Customers,
    pub payments: Payments,
    /// Card number -> share of payments. The decline card makes `failed` payments.
    pub cards: BTreeMap<String, f64>,
    /// Where the merchants' ids and API keys go (CSV), relative to the working directory.
    pub identities: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Merchants {
    pub count: u32,
    #[serde(default = "default_prefix")]
    pub name_prefix: String,
}

fn default_prefix() -> String {
    "seed merchant".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customers {
    pub per_merchant: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payments {
    pub per_customer: u32,
    #[serde(default = "default_min")]
    pub amount_min: i64,
    #[serde(default = "default_max")]
    pub amount_max: i64,
    #[serde(default = "default_currencies")]
    pub currencies: Vec<String>,
}

fn default_min() -> i64 {
    100
}
fn default_max() -> i64 {
    100_000
}
fn default_currencies() -> Vec<String> {
    vec!["USD".into()]
}

/// The demo's card that always declines.
pub const DECLINE_CARD: &str = "4000000000000002";

/// The same check as the demo's (a separate crate the harness does not depend on).
fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// A validated data description.
pub struct Plan {
    pub file: PathBuf,
    pub data: DataFile,
    pub until: chrono::DateTime<chrono::Utc>,
    /// Cumulative card shares, for drawing.
    cards: Vec<(String, f64)>,
}

impl Plan {
    pub fn merchants(&self) -> u64 {
        self.data.merchants.count as u64
    }
    pub fn customers(&self) -> u64 {
        self.merchants() * self.data.customers.per_merchant as u64
    }
    pub fn payments(&self) -> u64 {
        self.customers() * self.data.payments.per_customer as u64
    }
    pub fn rows(&self) -> u64 {
        2 * self.merchants() + self.payments()
    }
}

/// Reads and validates a data file; every error names file:line:col and the fix.
pub fn load(path: &Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read data file {}", path.display()))?;
    let loc = Locator::new(path, &text);
    let data: DataFile = loc.deserialize()?;
    let at = |p: &[Seg]| loc.at(p);
    let positive = |v: u64, p: &[Seg], what: &str| -> Result<()> {
        if v == 0 {
            bail!("{}: {what} must be at least 1", at(p));
        }
        Ok(())
    };
    positive(data.days as u64, &[Seg::Key("days")], "days")?;
    if data.days > MAX_DAYS {
        bail!(
            "{}: days = {} is more than {MAX_DAYS} (100 years of payments)",
            at(&[Seg::Key("days")]),
            data.days
        );
    }
    positive(
        data.merchants.count as u64,
        &[Seg::Key("merchants"), Seg::Key("count")],
        "merchants.count",
    )?;
    positive(
        data.customers.per_merchant as u64,
        &[Seg::Key("customers"), Seg::Key("per_merchant")],
        "customers.per_merchant",
    )?;
    positive(
        data.payments.per_customer as u64,
        &[Seg::Key("payments"), Seg::Key("per_customer")],
        "payments.per_customer",
    )?;
    let p = &data.payments;
    if p.amount_min < 1 || p.amount_max < p.amount_min {
        bail!(
            "{}: amounts must satisfy 1 <= amount_min <= amount_max (got {}..{})",
            at(&[Seg::Key("payments"), Seg::Key("amount_min")]),
            p.amount_min,
            p.amount_max
        );
    }
    if p.currencies.is_empty() {
        bail!(
            "{}: give at least one currency, e.g. [\"USD\", \"EUR\"]",
            at(&[Seg::Key("payments"), Seg::Key("currencies")])
        );
    }
    for (i, c) in p.currencies.iter().enumerate() {
        if c.len() != 3 || !c.chars().all(|x| x.is_ascii_uppercase()) {
            bail!(
                "{}: currency `{c}` is not a three-letter upper-case code such as USD",
                at(&[Seg::Key("payments"), Seg::Key("currencies"), Seg::Index(i)])
            );
        }
    }
    if data.cards.is_empty() {
        bail!(
            "{}: [cards] needs at least one card number with its share, e.g. \"4242424242424242\" = 1.0",
            loc.at(&[])
        );
    }
    let mut total = 0.0;
    let mut cards = Vec::new();
    for (number, share) in &data.cards {
        let here = at(&[Seg::Key("cards"), Seg::Key(number)]);
        if !(12..=19).contains(&number.len()) || !luhn(number) {
            bail!("{here}: `{number}` is not a valid card number (12-19 digits passing the Luhn check)");
        }
        if !(*share > 0.0 && *share <= 1.0) {
            bail!("{here}: the share of card {number} must be in (0, 1], got {share}");
        }
        total += share;
        cards.push((number.clone(), total));
    }
    if (total - 1.0).abs() > 1e-6 {
        bail!(
            "{}: the card shares add up to {total}, not 1",
            at(&[Seg::Key("cards")])
        );
    }
    let until = match &data.until {
        None => chrono::Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc(),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| d.to_utc())
            .or_else(|_| {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
            })
            .map_err(|_| {
                anyhow!(
                    "{}: until `{s}` is neither YYYY-MM-DD nor an RFC 3339 time",
                    at(&[Seg::Key("until")])
                )
            })?,
    };
    Ok(Plan {
        file: path.to_path_buf(),
        data,
        until,
        cards,
    })
}

/// One merchant's identity, as written to the identities file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub merchant_id: String,
    pub api_key: String,
    pub merchant_name: String,
}

/// The merchants and their keys for a seed (deterministic).
pub fn identities(plan: &Plan, seed: u64) -> Vec<Identity> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x6b65_7973);
    (0..plan.merchants())
        .map(|m| Identity {
            merchant_id: format!("mer_seed_{m:05}"),
            api_key: format!("key_seed_{:016x}{:016x}", rng.u64(..), rng.u64(..)),
            merchant_name: format!("{} {m}", plan.data.merchants.name_prefix),
        })
        .collect()
}

/// The longest span of generated payments.
const MAX_DAYS: u32 = 36_500;

/// Appends the payments of merchant `m`, customers `c0..c1` as CSV rows.
fn payment_rows(plan: &Plan, rng: &mut fastrand::Rng, m: u64, next_id: &mut u64, out: &mut String) {
    let p = &plan.data.payments;
    let span_s = plan.data.days as i64 * 86_400;
    let per_customer = p.per_customer as u64;
    for c in 0..plan.data.customers.per_merchant as u64 {
        for _ in 0..per_customer {
            let id = *next_id;
            *next_id += 1;
            let draw = rng.f64();
            let card = plan
                .cards
                .iter()
                .find(|(_, cum)| draw < *cum)
                .unwrap_or_else(|| plan.cards.last().expect("validated non-empty"));
            let status = if card.0 == DECLINE_CARD {
                "failed"
            } else {
                "succeeded"
            };
            let amount = rng.i64(p.amount_min..=p.amount_max);
            let currency = &p.currencies[rng.usize(..p.currencies.len())];
            let at = plan.until - chrono::Duration::seconds(rng.i64(0..span_s));
            let at = at.format("%Y-%m-%d %H:%M:%S+00");
            let last4 = &card.0[card.0.len() - 4..];
            let _ = writeln!(
                out,
                "pay_seed_{id:09},mer_seed_{m:05},{status},{amount},{currency},cus_{m:05}_{c:05},cus_{m:05}_{c:05}@example.com,automatic,card,{last4},{at},{at}"
            );
        }
    }
}

#[derive(Debug)]
pub struct SeedReport {
    pub merchants: u64,
    pub payments: u64,
    pub rows: u64,
    pub elapsed: Duration,
    pub identities: Option<PathBuf>,
    /// Whether foreign-key triggers were skipped during the load (the role allowed it).
    pub fk_checks_skipped: bool,
}

impl SeedReport {
    pub fn rows_per_s(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Writes the identities CSV (temp file + rename: never half-written).
pub fn write_identities(path: &Path, ids: &[Identity]) -> Result<()> {
    // The csv writer quotes what needs it: a name_prefix with a comma or a
    // quote must not shift the columns that [data] reads back.
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["merchant_id", "api_key", "merchant_name"])?;
    for i in ids {
        w.write_record([&i.merchant_id, &i.api_key, &i.merchant_name])?;
    }
    let text = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write the identities: {e}"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::files::write_atomic(path, &text)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Generates and COPYs everything in one transaction: a failure leaves the database as it was.
pub async fn load_into(
    url: &str,
    plan: &Plan,
    seed: u64,
    identities_path: Option<&Path>,
    progress: bool,
) -> Result<SeedReport> {
    let t0 = Instant::now();
    let ids = identities(plan, seed);
    let mut conn = super::connect(url).await?;
    let taken: i64 = sqlx::query_scalar("SELECT count(*) FROM merchants WHERE merchant_id = $1")
        .bind(&ids[0].merchant_id)
        .fetch_one(&mut conn)
        .await
        .context("reading merchants (are the migrations applied? `loadtest migrate`)")?;
    if taken > 0 {
        bail!(
            "the database already holds generated data (merchant {} exists): reset it first (`loadtest db reset`), then seed",
            ids[0].merchant_id
        );
    }
    let bar = if progress {
        let b = indicatif::ProgressBar::new(plan.rows());
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "seeding {bar:30} {pos}/{len} rows ({per_sec}, eta {eta})",
            )
            .expect("static template"),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut tx = conn.begin().await?;
    // The generated rows are consistent by construction: foreign-key triggers are skipped where
    // the role may (superuser or owner with the right), and the commit need not wait for the disk.
    let mut skipped_checks = false;
    sqlx::raw_sql("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    if sqlx::raw_sql("SAVEPOINT fk; SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .is_ok()
    {
        skipped_checks = true;
    } else {
        sqlx::raw_sql("ROLLBACK TO SAVEPOINT fk")
            .execute(&mut *tx)
            .await?;
    }
    let mut csv = String::new();
    for i in &ids {
        let _ = writeln!(
            csv,
            "{},\"{}\"",
            i.merchant_id,
            i.merchant_name.replace('"', "\"\"")
        );
    }
    let mut copy = tx
        .copy_in_raw("COPY merchants (merchant_id, merchant_name) FROM STDIN WITH (FORMAT csv)")
        .await?;
    copy.send(csv.as_bytes()).await?;
    copy.finish().await.context("COPY merchants")?;
    csv.clear();
    for i in &ids {
        let hash = hex::encode(Sha256::digest(i.api_key.as_bytes()));
        let _ = writeln!(csv, "{hash},{}", i.merchant_id);
    }
    let mut copy = tx
        .copy_in_raw("COPY api_keys (key_hash, merchant_id) FROM STDIN WITH (FORMAT csv)")
        .await?;
    copy.send(csv.as_bytes()).await?;
    copy.finish().await.context("COPY api_keys")?;
    bar.inc(2 * ids.len() as u64);

    let mut copy = tx
        .copy_in_raw(
            "COPY payments (payment_id, merchant_id, status, amount, currency, customer_id, email, \
             capture_method, payment_method, card_last4, created_at, updated_at) FROM STDIN WITH (FORMAT csv)",
        )
        .await?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut next_id = 0u64;
    let mut sent = 0u64;
    for m in 0..plan.merchants() {
        csv.clear();
        payment_rows(plan, &mut rng, m, &mut next_id, &mut csv);
        copy.send(csv.as_bytes()).await?;
        bar.inc(next_id - sent);
        sent = next_id;
    }
    copy.finish().await.context("COPY payments")?;
    tx.commit().await?;
    conn.close().await.ok();
    bar.finish_and_clear();
    if let Some(p) = identities_path {
        write_identities(p, &ids)?;
    }
    Ok(SeedReport {
        merchants: plan.merchants(),
        payments: plan.payments(),
        rows: plan.rows(),
        elapsed: t0.elapsed(),
        identities: identities_path.map(Path::to_path_buf),
        fk_checks_skipped: skipped_checks,
    })
}

/// A team's seed SQL file, run in one transaction: all of it or nothing.
/// A failure names the file and the database's error.
pub async fn load_sql(url: &str, file: &Path) -> Result<SeedReport> {
    use sqlx::Connection;
    let started = std::time::Instant::now();
    let sql = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the seed file {}", file.display()))?;
    let mut conn = super::connect(url).await?;
    let mut tx = conn.begin().await?;
    let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *tx)
        .await
        .map_err(|e| anyhow::anyhow!("{} failed (nothing of it was kept): {e}", file.display()))?;
    tx.commit().await?;
    let _ = conn.close().await;
    Ok(SeedReport {
        merchants: 0,
        payments: 0,
        rows: done.rows_affected(),
        elapsed: started.elapsed(),
        identities: None,
        fk_checks_skipped: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Plan> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("data.toml");
        std::fs::write(&p, text).unwrap();
        load(&p)
    }

    const OK: &str = "days = 30\nuntil = \"2026-11-01\"\n[merchants]\ncount = 2\n[customers]\nper_merchant = 3\n[payments]\nper_customer = 4\ncurrencies = [\"USD\", \"EUR\"]\n[cards]\n\"4242424242424242\" = 0.75\n\"4000000000000002\" = 0.25\n";

    #[test]
    fn same_seed_same_rows_other_seed_other_rows() {
        let p = plan(OK).unwrap();
        assert_eq!((p.merchants(), p.customers(), p.payments()), (2, 6, 24));
        let gen = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            let (mut id, mut out) = (0, String::new());
            for m in 0..p.merchants() {
                payment_rows(&p, &mut rng, m, &mut id, &mut out);
            }
            out
        };
        assert_eq!(gen(7), gen(7));
        assert_ne!(gen(7), gen(8));
        assert_eq!(identities(&p, 7), identities(&p, 7));
        let rows = gen(7);
        assert_eq!(rows.lines().count(), 24);
        assert!(
            rows.contains(",failed,") && rows.contains(",succeeded,"),
            "{rows}"
        );
        // Every payment lies in the 30 days before `until`.
        for l in rows.lines() {
            let at = l.split(',').nth(10).unwrap();
            assert!(("2026-10-02".."2026-11-01").contains(&at), "{at}");
        }
    }

    #[test]
    fn bad_files_name_the_spot_and_the_fix() {
        let e = plan(&OK.replace("count = 2", "count = 0"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("data.toml:4:") && e.contains("at least 1"),
            "{e}"
        );
        let e = plan(&OK.replace("0.25", "0.5")).err().unwrap().to_string();
        assert!(e.contains("add up to 1.25"), "{e}");
        let e = plan(&OK.replace("4242424242424242", "4242424242424241"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("Luhn") && e.contains("data.toml:11:"), "{e}");
        let e = plan(&OK.replace("\"EUR\"", "\"euro\""))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`euro`") && e.contains("data.toml:9:"), "{e}");
        let e = plan(&OK.replace("days = 30", "dayz = 30"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("dayz"), "{e}");
        let e = plan(&OK.replace("2026-11-01", "yesterday"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("YYYY-MM-DD"), "{e}");
    }

    #[test]
    fn identities_with_commas_and_quotes_keep_their_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.csv");
        let ids = vec![Identity {
            merchant_id: "mer_1".into(),
            api_key: "key_1".into(),
            merchant_name: "Shop, \"the\" best".into(),
        }];
        write_identities(&path, &ids).unwrap();
        let mut r = csv::Reader::from_path(&path).unwrap();
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].len(), 3);
        assert_eq!(&rows[0][2], "Shop, \"the\" best");
    }
}
