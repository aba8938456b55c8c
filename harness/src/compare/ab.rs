//! The A/B verdict, pure: the schedule (randomized ABBA/BAAB blocks), each
//! trial's figures, the sequential verdict over paired trials and the rule
//! that says whether to run another block. The unit of observation is the
//! trial: the seconds inside one trial move together and are never counted
//! as samples. `ab/` runs the trials this judges.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::GateConfig;
use super::metric::{headline, MetricKind};
use super::paired::{self, Decision, Pair, Scale};
use super::stats::Change;
use crate::results::RunResult;

/// Which build a trial ran against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    A,
    B,
}

/// Blocks of four trials, each ABBA or BAAB at random: a steady drift of the
/// machine then weighs on both sides alike, and the order within a block
/// cannot favour one side.
pub fn schedule(blocks: usize, rng: &mut fastrand::Rng) -> Vec<Side> {
    let mut out = Vec::with_capacity(blocks * 4);
    for _ in 0..blocks {
        let (x, y) = if rng.bool() {
            (Side::A, Side::B)
        } else {
            (Side::B, Side::A)
        };
        out.extend([x, y, y, x]);
    }
    out
}

/// The scope of a figure: every request together, or one request name.
pub const ALL_REQUESTS: &str = "all requests";

/// One trial as recorded in the A/B result file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trial {
    pub index: usize,
    pub side: Side,
    pub started_at: String,
    pub duration_s: f64,
    /// Time the database reset before this trial took.
    pub reset_ms: u64,
    pub requests: u64,
    /// Scope (`all requests` or a request name) -> metric key -> value, as
    /// the result file reports it (ms, req/s, rates in percent).
    pub values: BTreeMap<String, BTreeMap<String, f64>>,
    /// What the side's containers used during the measured run: service ->
    /// figure (`cpu_us_per_request`, `net_bytes_per_request`, `mem_mb`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub usage: BTreeMap<String, BTreeMap<String, f64>>,
}

/// The figures of one trial's result.
pub fn values_of(r: &RunResult) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut scopes: Vec<(String, Option<&str>)> = vec![(ALL_REQUESTS.to_string(), None)];
    // A single request adds nothing beside the total.
    if r.requests.len() > 1 {
        scopes.extend(r.requests.keys().map(|n| (n.clone(), Some(n.as_str()))));
    }
    scopes
        .into_iter()
        .map(|(name, scope)| {
            let m = MetricKind::ALL
                .iter()
                .filter_map(|&k| headline(r, scope, k).map(|v| (k.key().to_string(), v)))
                .collect();
            (name, m)
        })
        .collect()
}

/// Trials paired two by two: each half of a block holds one A and one B.
pub fn pairs(trials: &[Trial], scope: &str, metric: &str) -> Vec<Pair> {
    pairs_of(trials, |t| {
        t.values.get(scope).and_then(|m| m.get(metric)).copied()
    })
}

/// The blocks' pairs of any figure of a trial.
fn pairs_of(trials: &[Trial], get: impl Fn(&Trial) -> Option<f64>) -> Vec<Pair> {
    trials
        .chunks_exact(2)
        .filter_map(|two| {
            let (x, y) = (get(&two[0])?, get(&two[1])?);
            match (two[0].side, two[1].side) {
                (Side::A, Side::B) => Some(Pair { a: x, b: y }),
                (Side::B, Side::A) => Some(Pair { a: y, b: x }),
                _ => None,
            }
        })
        .collect()
}

/// Where a tolerance came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToleranceSource {
    /// config/regression.toml (or the built-in default).
    Configured,
    /// The measured noise of `loadtest calibrate`.
    Calibrated,
    /// Raised to the latency floor (`min_change_ms`).
    Floor,
}

/// One metric's verdict over the trials so far.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricOutcome {
    pub scope: String,
    pub metric: String,
    pub gate: bool,
    /// Pairs judged.
    pub pairs: usize,
    /// Relative change B/A - 1 (fraction), or points for rates.
    pub change: f64,
    pub low: f64,
    pub high: f64,
    pub p: f64,
    /// The smallest change these pairs could detect (80% power).
    pub detectable: f64,
    /// Fraction, or points for rates.
    pub tolerance: f64,
    pub tolerance_source: ToleranceSource,
    pub decision: Decision,
    /// Medians over the trials of each side, in the metric's unit.
    pub median_a: f64,
    pub median_b: f64,
}

impl MetricOutcome {
    pub fn kind(&self) -> Option<MetricKind> {
        MetricKind::parse(&self.metric).ok()
    }
}

/// What a run of trials is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A against B: stops as soon as a verdict is reached.
    Ab,
    /// A/A to measure the noise: runs its planned trials.
    Calibration,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ab => "ab",
            Kind::Calibration => "calibration",
        }
    }
}

/// What the trial loop does once a block of four trials is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// A verdict: no more trials.
    Stop,
    /// Still undecided and the trial count and time budget allow: one more block.
    MoreBlock,
    /// Go on with the trials already planned (none left: the loop ends).
    Continue,
}

/// The stopping rule, after `done` trials taking `wall_s` seconds: an A/B
/// stops at its first verdict; while undecided it adds a block when another
/// one fits under `max_trials` and, at the pace so far, under the budget. A
/// calibration runs its planned trials.
pub fn next_step(
    done: usize,
    outcome: Outcome,
    wall_s: f64,
    settings: &AbSettings,
    kind: Kind,
) -> NextStep {
    if kind == Kind::Ab && outcome != Outcome::Undecided {
        return NextStep::Stop;
    }
    let per_trial = wall_s / done.max(1) as f64;
    let fits = done + 4 <= settings.max_trials && wall_s + 4.0 * per_trial <= settings.budget_s;
    if fits && (kind == Kind::Ab || done < settings.min_trials) {
        NextStep::MoreBlock
    } else {
        NextStep::Continue
    }
}

/// The verdict of the whole comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No gate is worse beyond its tolerance.
    Pass,
    /// At least one gate is worse beyond its tolerance, significantly.
    Regressed,
    /// Neither shown yet; the trials ran out.
    Undecided,
}

/// One side of a comparison: the source it was built from and its image.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SideInfo {
    /// The git ref as given (`HEAD` plus the working tree for B).
    pub reference: String,
    /// The commit, with `-dirty` when uncommitted changes were built.
    pub commit: String,
    pub image: String,
    pub image_id: String,
}

/// How the trials were run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AbSettings {
    pub trial_s: f64,
    pub warmup_s: f64,
    pub min_trials: usize,
    pub max_trials: usize,
    pub budget_s: f64,
    pub alpha: f64,
    pub seed: u64,
    /// How A and B were served: both apps up, each on its own port.
    pub apps: String,
    /// `configured` (config/regression.toml) or the calibration file used.
    pub tolerances: String,
}

/// `benchmark/ab_<scenario>_<base>_<head>.json` (and the calibration file):
/// every trial, and the verdict over them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AbResult {
    pub schema_version: u32,
    /// `ab` or `calibration`.
    pub kind: Kind,
    pub scenario: String,
    pub base: SideInfo,
    pub head: SideInfo,
    pub settings: AbSettings,
    pub started_at: String,
    pub wall_s: f64,
    pub trials: Vec<Trial>,
    pub metrics: Vec<MetricOutcome>,
    pub outcome: Outcome,
    pub exit_code: u8,
    /// Stopped by Ctrl-C.
    #[serde(default)]
    pub interrupted: bool,
    /// Calibration only: one pair's spread per scope and metric.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub noise: Noise,
    /// Where B differs from A beyond noise (resource use per request),
    /// largest first; they explain, they never change the exit code.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Every figure that was judged for findings, as `service figure`.
    #[serde(default)]
    pub examined: Vec<String>,
    /// Why the database's side is missing, when it is (and how to get it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// A figure of the stack's resource use that moved between A and B beyond
/// noise: the same paired blocks, interval and test as the latency verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub service: String,
    /// `cpu_us_per_request`, `net_bytes_per_request` or `mem_mb`.
    pub figure: String,
    pub median_a: f64,
    pub median_b: f64,
    /// B/A - 1 and its interval.
    pub change: f64,
    pub low: f64,
    pub high: f64,
    pub p: f64,
    pub pairs: usize,
}

/// A finding counts only when its whole interval lies beyond this change:
/// smaller moves of resource use explain nothing a reviewer acts on.
pub const FINDING_MIN_CHANGE: f64 = 0.05;

/// Figures compared as differences (B - A) rather than ratios: counts per
/// request that may be zero on one side (a statement only B runs), and the
/// database time they take, in ms. A difference counts beyond 0.05 of its unit.
pub fn is_additive(figure: &str) -> bool {
    matches!(
        figure,
        "calls_per_request" | "ms_per_request" | "queries_per_request" | "db_ms_per_request"
    )
}

/// What the trials' pairs are too few to show, if anything: the sign-flip
/// test's smallest p over n pairs is 2/2^n, so below 6 pairs no finding can
/// reach alpha 0.05, and a container's figures (alpha shared by the ratio
/// figures) need more.
pub fn findings_reach(r: &AbResult) -> Option<String> {
    if r.examined.is_empty() {
        return None;
    }
    let pairs = r.trials.len() / 2;
    let smallest = 2.0 / 2f64.powi(pairs as i32);
    let alpha = r.settings.alpha;
    let ratios = r
        .examined
        .iter()
        .filter(|e| e.rsplit(' ').next().is_some_and(|f| !is_additive(f)))
        .count();
    // Trials come in blocks of four: the pairs needed, as whole blocks.
    let needed = |level: f64| {
        let pairs = (1..=64).find(|n| 2.0 / 2f64.powi(*n) < level).unwrap_or(64) as usize;
        pairs.div_ceil(2) * 2
    };
    if smallest >= alpha {
        Some(format!(
            "{pairs} pairs cannot show a finding (the smallest p they give is {smallest:.3}); {} trials or more can",
            2 * needed(alpha)
        ))
    } else if ratios > 0 && smallest >= alpha / ratios as f64 {
        let level = alpha / ratios as f64;
        Some(format!(
            "{pairs} pairs cannot name a container's figure (smallest p {smallest:.3}, needed below {level:.3}: alpha shared by {ratios}); {} trials or more can",
            2 * needed(level)
        ))
    } else {
        None
    }
}

/// The resource figures of the trials judged pair by pair: what moved beyond
/// noise, and every figure examined. Ratio figures (a container's CPU,
/// network, memory) share alpha among themselves (Bonferroni) and count
/// beyond 5%; additive ones (per-statement calls and time) are each judged at
/// alpha and count beyond 0.05 of their unit, which an A/A pair of the same
/// code does not cross. Statements first, then the database in all, then
/// containers, each by the size of the change.
pub fn findings(trials: &[Trial], alpha: f64) -> (Vec<Finding>, Vec<String>) {
    let mut keys: Vec<(String, String)> = trials
        .iter()
        .flat_map(|t| {
            t.usage
                .iter()
                .flat_map(|(svc, figs)| figs.keys().map(move |f| (svc.clone(), f.clone())))
        })
        .collect();
    keys.sort();
    keys.dedup();
    let ratios = keys.iter().filter(|(_, f)| !is_additive(f)).count();
    let mut out = Vec::new();
    for (i, (svc, fig)) in keys.iter().enumerate() {
        let additive = is_additive(fig);
        // A statement a trial's counts do not hold ran 0 times in it (when
        // the database was counted in that trial at all).
        let ps = pairs_of(trials, |t| {
            match t.usage.get(svc).and_then(|m| m.get(fig)) {
                Some(v) => Some(*v),
                None if additive && t.usage.contains_key("db") => Some(0.0),
                None => None,
            }
        });
        let (scale, level) = if additive {
            (Scale::Points, alpha)
        } else {
            (Scale::Ratio, alpha / ratios.max(1) as f64)
        };
        let seed = 0xf1d_u64 ^ i as u64;
        let Some(j) = paired::judge(&ps, scale, true, FINDING_MIN_CHANGE, level, seed) else {
            continue;
        };
        if matches!(j.decision, Decision::Worse | Decision::Better) {
            out.push(Finding {
                service: svc.clone(),
                figure: fig.clone(),
                median_a: median(ps.iter().map(|p| p.a).collect()),
                median_b: median(ps.iter().map(|p| p.b).collect()),
                change: j.change,
                low: j.low,
                high: j.high,
                p: j.p,
                pairs: j.n,
            });
        }
    }
    // A named statement says most; then the database in all, then containers.
    let rank = |f: &Finding| match (f.service.starts_with("db: "), is_additive(&f.figure)) {
        (true, _) => 0,
        (false, true) => 1,
        (false, false) => 2,
    };
    out.sort_by(|x, y| {
        rank(x)
            .cmp(&rank(y))
            .then(y.change.abs().total_cmp(&x.change.abs()))
    });
    let examined = keys.iter().map(|(s, f)| format!("{s} {f}")).collect();
    (out, examined)
}

impl AbResult {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("A/B result serialises")
    }
}

/// Measured noise per scope and metric: the standard deviation of one
/// pair's log-ratio (or point difference for rates), from `loadtest calibrate`.
pub type Noise = BTreeMap<String, BTreeMap<String, f64>>;

/// Settings of the judgement.
pub struct JudgeSettings<'a> {
    pub gates: &'a GateConfig,
    pub scenario: &'a str,
    /// Significance per look. Looks are few and every one also needs the
    /// whole interval beyond the tolerance, which keeps repeated looks honest
    /// (measured by bench/verdict.sh).
    pub alpha: f64,
    /// From calibration: tolerances follow the measured noise.
    pub noise: Option<&'a Noise>,
    /// The most pairs the comparison may run (`--max-trials` / 2).
    pub max_pairs: usize,
}

/// The smallest change `pairs` pairs detect (alpha, power 80%) when one
/// pair's judged value varies with standard deviation `sd`, in judged units.
pub fn detectable(sd: f64, pairs: usize, alpha: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
    let n = pairs.max(2) as f64;
    let t = StudentsT::new(0.0, 1.0, n - 1.0)
        .map(|t| t.inverse_cdf(1.0 - alpha / 2.0))
        .unwrap_or(f64::INFINITY);
    let z = Normal::new(0.0, 1.0)
        .map(|z| z.inverse_cdf(0.8))
        .unwrap_or(0.84);
    (t + z) * sd / n.sqrt()
}

/// Tolerance in judged units (fraction or points) and where it came from.
fn tolerance(
    s: &JudgeSettings,
    scope: &str,
    m: MetricKind,
    median_a: f64,
) -> (f64, ToleranceSource) {
    let request = (scope != ALL_REQUESTS).then_some(scope);
    let configured = s.gates.tolerance(s.scenario, request, m);
    let points = m.change() == Change::Points;
    let mut tol = if points {
        configured
    } else {
        configured / 100.0
    };
    let mut source = ToleranceSource::Configured;
    if let Some(sd) = s
        .noise
        .and_then(|n| n.get(scope))
        .and_then(|m2| m2.get(m.key()))
    {
        // The smallest change the whole budget of pairs detects: a
        // tolerance below it could neither be shown crossed nor kept, so
        // the measured noise raises a configured tolerance up to it. It
        // never lowers one: calibration runs in another hour than the
        // comparison, and an A/A study with tolerances at the detectable
        // change ended undecided 5 times in 6 and flagged one.
        let d = detectable(*sd, s.max_pairs, s.alpha);
        let measured = if points { d } else { d.exp_m1() };
        if measured > tol {
            tol = measured;
            source = ToleranceSource::Calibrated;
        }
    }
    if !points && m != MetricKind::Rps && median_a > 0.0 {
        let floor = s.gates.min_change_ms(s.scenario, request) / median_a;
        if floor > tol {
            tol = floor;
            source = ToleranceSource::Floor;
        }
    }
    (tol, source)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Judges every scope and metric over the complete pairs so far.
pub fn judge(trials: &[Trial], s: &JudgeSettings) -> Vec<MetricOutcome> {
    let Some(first) = trials.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (si, (scope, metrics)) in first.values.iter().enumerate() {
        for (mi, &m) in MetricKind::ALL.iter().enumerate() {
            if !metrics.contains_key(m.key()) {
                continue;
            }
            let ps = pairs(trials, scope, m.key());
            let median_a = median(ps.iter().map(|p| p.a).collect());
            let median_b = median(ps.iter().map(|p| p.b).collect());
            let scale = if m.change() == Change::Points {
                Scale::Points
            } else {
                Scale::Ratio
            };
            let (tol, source) = tolerance(s, scope, m, median_a);
            let seed = 0xab_u64 ^ ((si as u64) << 8) ^ mi as u64;
            let Some(j) = paired::judge(&ps, scale, m.higher_is_worse(), tol, s.alpha, seed) else {
                continue;
            };
            let request = (scope != ALL_REQUESTS).then_some(scope.as_str());
            out.push(MetricOutcome {
                scope: scope.clone(),
                metric: m.key().to_string(),
                gate: s.gates.is_gate(s.scenario, request, m),
                pairs: j.n,
                change: j.change,
                low: j.low,
                high: j.high,
                p: j.p,
                detectable: j.detectable,
                tolerance: tol,
                tolerance_source: source,
                decision: j.decision,
                median_a,
                median_b,
            });
        }
    }
    out
}

/// The comparison's outcome from its metrics' decisions.
pub fn outcome(metrics: &[MetricOutcome]) -> Outcome {
    let gates: Vec<&MetricOutcome> = metrics.iter().filter(|m| m.gate).collect();
    if gates.iter().any(|m| m.decision == Decision::Worse) {
        Outcome::Regressed
    } else if !gates.is_empty()
        && gates
            .iter()
            .all(|m| matches!(m.decision, Decision::NotWorse | Decision::Better))
    {
        Outcome::Pass
    } else {
        Outcome::Undecided
    }
}

/// The spread of one pair per scope and metric, for calibration: the
/// standard deviation of the log-ratio (points for rates).
pub fn noise(trials: &[Trial]) -> Noise {
    let Some(first) = trials.first() else {
        return Noise::new();
    };
    let mut out = Noise::new();
    for (scope, metrics) in &first.values {
        let mut per = BTreeMap::new();
        for &m in MetricKind::ALL.iter() {
            if !metrics.contains_key(m.key()) {
                continue;
            }
            let d: Vec<f64> = pairs(trials, scope, m.key())
                .into_iter()
                .filter_map(|p| match m.change() {
                    Change::Points => Some(p.b - p.a),
                    _ if p.a > 0.0 && p.b > 0.0 => Some((p.b / p.a).ln()),
                    _ => None,
                })
                .collect();
            if d.len() < 2 {
                continue;
            }
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            let sd =
                (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (d.len() - 1) as f64).sqrt();
            per.insert(m.key().to_string(), sd);
        }
        out.insert(scope.clone(), per);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(i: usize, side: Side, p95: f64, rps: f64) -> Trial {
        let mut m = BTreeMap::new();
        m.insert("p95".to_string(), p95);
        m.insert("rps".to_string(), rps);
        m.insert("error_rate".to_string(), 0.0);
        Trial {
            index: i,
            side,
            started_at: String::new(),
            duration_s: 10.0,
            reset_ms: 0,
            requests: 1000,
            values: BTreeMap::from([(ALL_REQUESTS.to_string(), m)]),
            usage: BTreeMap::new(),
        }
    }

    /// Trials whose app uses `cpu_b` times A's CPU per request on B, with
    /// the machine drifting and 3% noise; memory and network unchanged.
    fn usage_trials(cpu_b: f64, seed: u64) -> Vec<Trial> {
        let mut rng = fastrand::Rng::with_seed(seed);
        trials(4, 1.0, seed)
            .into_iter()
            .map(|mut t| {
                let level = 1.0 + 0.3 * (t.index as f64 / 5.0).sin();
                let mut noise = || 1.0 + 0.03 * (rng.f64() - 0.5);
                let f = if t.side == Side::B { cpu_b } else { 1.0 };
                let figs = BTreeMap::from([
                    ("cpu_us_per_request".to_string(), 50.0 * level * f * noise()),
                    ("net_bytes_per_request".to_string(), 900.0 * noise()),
                    ("mem_mb".to_string(), 40.0 * noise()),
                ]);
                t.usage.insert("app".into(), figs);
                t
            })
            .collect()
    }

    #[test]
    fn a_statement_only_b_runs_is_named_with_its_calls_per_request() {
        let with_db = |extra: bool, seed: u64| {
            let mut rng = fastrand::Rng::with_seed(seed);
            trials(4, 1.0, seed)
                .into_iter()
                .map(|mut t| {
                    let mut jitter = || 1.0 + 0.03 * (rng.f64() - 0.5);
                    let queries = if extra && t.side == Side::B { 3.0 } else { 2.0 };
                    t.usage.insert(
                        "db".into(),
                        BTreeMap::from([
                            ("queries_per_request".to_string(), queries),
                            ("db_ms_per_request".to_string(), 0.4 * jitter()),
                        ]),
                    );
                    t.usage.insert(
                        "db: SELECT merchant_id FROM api_keys WHERE key_hash = $1".into(),
                        BTreeMap::from([
                            ("calls_per_request".to_string(), 2.0),
                            ("ms_per_request".to_string(), 0.4 * jitter()),
                        ]),
                    );
                    if extra && t.side == Side::B {
                        t.usage.insert(
                            "db: SELECT pg_sleep($1)".into(),
                            BTreeMap::from([
                                ("calls_per_request".to_string(), 1.0),
                                ("ms_per_request".to_string(), 1.05 * jitter()),
                            ]),
                        );
                    }
                    t
                })
                .collect::<Vec<_>>()
        };
        let (found, _) = findings(&with_db(true, 5), 0.05);
        let calls = found
            .iter()
            .find(|f| f.service == "db: SELECT pg_sleep($1)" && f.figure == "calls_per_request")
            .unwrap_or_else(|| panic!("{found:?}"));
        assert_eq!((calls.median_a, calls.median_b), (0.0, 1.0));
        assert!((calls.change - 1.0).abs() < 1e-9, "{calls:?}");
        // Statements come first in the list.
        assert!(
            crate::compare::ab::is_additive(&found[0].figure),
            "{found:?}"
        );
        // A/A: the same statements on both sides name nothing.
        for seed in 0..20 {
            assert!(findings(&with_db(false, seed), 0.05).0.is_empty());
        }
    }

    #[test]
    fn findings_name_what_moved_and_stay_quiet_on_a_and_a() {
        // 16 trials (8 pairs): +40% app CPU per request is found, alone.
        let (found, examined) = findings(&usage_trials(1.4, 3), 0.05);
        assert_eq!(examined.len(), 3, "{examined:?}");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].service.as_str(), found[0].figure.as_str()),
            ("app", "cpu_us_per_request")
        );
        assert!(found[0].low > 0.3 && found[0].high < 0.5, "{found:?}");
        // The same build on both sides: nothing, over many seeds.
        let alarms = (0..50)
            .filter(|&s| !findings(&usage_trials(1.0, s), 0.05).0.is_empty())
            .count();
        assert!(
            alarms <= 2,
            "{alarms} of 50 A/A comparisons named something"
        );
        // +2% is below what a finding is for.
        assert!(findings(&usage_trials(1.02, 7), 0.05).0.is_empty());
    }

    fn trials(n_blocks: usize, slowdown: f64, seed: u64) -> Vec<Trial> {
        let mut rng = fastrand::Rng::with_seed(seed);
        schedule(n_blocks, &mut rng)
            .into_iter()
            .enumerate()
            .map(|(i, side)| {
                // The machine drifts by up to 30% over the blocks.
                let level = 1.0 + 0.3 * (i as f64 / 5.0).sin();
                let noise = 1.0 + 0.02 * (rng.f64() - 0.5);
                let f = if side == Side::B { slowdown } else { 1.0 };
                trial(
                    i,
                    side,
                    30.0 * level * f * noise,
                    1000.0 / (level * f * noise),
                )
            })
            .collect()
    }

    #[test]
    fn blocks_are_abba_or_baab() {
        let mut rng = fastrand::Rng::with_seed(3);
        let s = schedule(20, &mut rng);
        assert_eq!(s.len(), 80);
        let mut kinds = std::collections::BTreeSet::new();
        for b in s.chunks(4) {
            assert_eq!(b[0], b[3]);
            assert_eq!(b[1], b[2]);
            assert_ne!(b[0], b[1]);
            kinds.insert(format!("{:?}", b[0]));
        }
        assert_eq!(kinds.len(), 2, "both orders appear");
    }

    #[test]
    fn pairs_put_a_and_b_in_place_whatever_the_order() {
        let t = vec![
            trial(0, Side::B, 2.0, 1.0),
            trial(1, Side::A, 1.0, 1.0),
            trial(2, Side::A, 3.0, 1.0),
            trial(3, Side::B, 4.0, 1.0),
            trial(4, Side::A, 5.0, 1.0),
        ];
        let p = pairs(&t, ALL_REQUESTS, "p95");
        assert_eq!(p, vec![Pair { a: 1.0, b: 2.0 }, Pair { a: 3.0, b: 4.0 }]);
    }

    fn settings(g: &GateConfig) -> JudgeSettings<'_> {
        JudgeSettings {
            gates: g,
            scenario: "s",
            alpha: 0.05,
            noise: None,
            max_pairs: 16,
        }
    }

    #[test]
    fn a_drifting_machine_with_identical_sides_passes() {
        let g = GateConfig::default();
        let m = judge(&trials(4, 1.0, 1), &settings(&g));
        assert_eq!(outcome(&m), Outcome::Pass, "{m:#?}");
    }

    #[test]
    fn a_slower_b_regresses_and_says_by_how_much() {
        let g = GateConfig::default();
        let m = judge(&trials(4, 1.2, 2), &settings(&g));
        assert_eq!(outcome(&m), Outcome::Regressed, "{m:#?}");
        let p95 = m.iter().find(|m| m.metric == "p95").unwrap();
        assert!((p95.change - 0.2).abs() < 0.02, "{p95:?}");
        let rps = m.iter().find(|m| m.metric == "rps").unwrap();
        assert_eq!(rps.decision, Decision::Worse);
    }

    #[test]
    fn two_blocks_cannot_decide_a_regression() {
        // Four pairs: the sign-flip test cannot go below 2/16.
        let g = GateConfig::default();
        let m = judge(&trials(2, 1.2, 2), &settings(&g));
        assert_eq!(outcome(&m), Outcome::Undecided, "{m:#?}");
    }

    #[test]
    fn calibrated_noise_sets_the_tolerance() {
        let g = GateConfig::default();
        let noise = Noise::from([(
            ALL_REQUESTS.to_string(),
            BTreeMap::from([("p95".to_string(), 0.02)]),
        )]);
        let s = JudgeSettings {
            noise: Some(&noise),
            ..settings(&g)
        };
        let m = judge(&trials(4, 1.0, 1), &s);
        // 16 pairs, sd 2%: (t15 + z80) * 0.02 / 4 = 1.49%, below the configured 5%.
        let p95 = m.iter().find(|m| m.metric == "p95").unwrap();
        assert_eq!(p95.tolerance_source, ToleranceSource::Configured);
        assert!((p95.tolerance - 0.05).abs() < 1e-9, "{p95:?}");
        // sd 10%: 7.7% can be detected, not 5%: the tolerance follows.
        let noisy = Noise::from([(
            ALL_REQUESTS.to_string(),
            BTreeMap::from([("p95".to_string(), 0.10)]),
        )]);
        let s = JudgeSettings {
            noise: Some(&noisy),
            ..settings(&g)
        };
        let m = judge(&trials(4, 1.0, 1), &s);
        let p95 = m.iter().find(|m| m.metric == "p95").unwrap();
        assert_eq!(p95.tolerance_source, ToleranceSource::Calibrated);
        assert!((p95.tolerance - 0.0771).abs() < 0.001, "{p95:?}");
        let rps = m.iter().find(|m| m.metric == "rps").unwrap();
        assert_eq!(rps.tolerance_source, ToleranceSource::Configured);
    }

    fn trial_settings(min: usize, max: usize, budget_s: f64) -> AbSettings {
        AbSettings {
            trial_s: 15.0,
            warmup_s: 5.0,
            min_trials: min,
            max_trials: max,
            budget_s,
            alpha: 0.05,
            seed: 1,
            apps: String::new(),
            tolerances: String::new(),
        }
    }

    #[test]
    fn an_ab_stops_at_its_first_verdict_and_grows_by_blocks_while_undecided() {
        let s = trial_settings(12, 40, 600.0);
        for o in [Outcome::Pass, Outcome::Regressed] {
            assert_eq!(next_step(12, o, 100.0, &s, Kind::Ab), NextStep::Stop);
        }
        assert_eq!(
            next_step(12, Outcome::Undecided, 100.0, &s, Kind::Ab),
            NextStep::MoreBlock
        );
        // The trial cap: 36 + 4 fits in 40, 40 + 4 does not.
        assert_eq!(
            next_step(36, Outcome::Undecided, 300.0, &s, Kind::Ab),
            NextStep::MoreBlock
        );
        assert_eq!(
            next_step(40, Outcome::Undecided, 330.0, &s, Kind::Ab),
            NextStep::Continue
        );
        // The budget, at the pace so far: 12 trials in 480 s is 40 s a trial,
        // so four more would end at 640 s > 600 s.
        assert_eq!(
            next_step(12, Outcome::Undecided, 480.0, &s, Kind::Ab),
            NextStep::Continue
        );
        assert_eq!(
            next_step(12, Outcome::Undecided, 420.0, &s, Kind::Ab),
            NextStep::MoreBlock
        );
    }

    #[test]
    fn a_calibration_runs_its_planned_trials_whatever_the_verdict() {
        let s = trial_settings(12, 40, 600.0);
        for o in [Outcome::Pass, Outcome::Regressed, Outcome::Undecided] {
            assert_eq!(
                next_step(12, o, 100.0, &s, Kind::Calibration),
                NextStep::Continue
            );
        }
        // Below its minimum it would add blocks (the loop judges only from the minimum on).
        assert_eq!(
            next_step(8, Outcome::Undecided, 60.0, &s, Kind::Calibration),
            NextStep::MoreBlock
        );
    }
}
