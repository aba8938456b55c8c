//! Statistics behind the verdicts: a percentile bootstrap interval for the
//! change of a statistic, and the Mann-Whitney U rank test (statrs).

use statrs::stats_tests::mannwhitneyu::{mannwhitneyu, MannWhitneyUMethod};
use statrs::stats_tests::Alternative;

/// Observations of one metric in one run: plain values (a latency or a
/// throughput per window or per trial), or `(numerator, denominator)` pairs
/// for rates, pooled as `sum(num) / sum(den)`.
#[derive(Clone, Debug, PartialEq)]
pub enum Samples {
    Values(Vec<f64>),
    Ratios(Vec<(f64, f64)>),
}

impl Samples {
    pub fn len(&self) -> usize {
        match self {
            Samples::Values(v) => v.len(),
            Samples::Ratios(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The run's statistic: the mean of the values, or the pooled rate.
    pub fn statistic(&self) -> Option<f64> {
        match self {
            Samples::Values(v) if !v.is_empty() => Some(v.iter().sum::<f64>() / v.len() as f64),
            Samples::Ratios(v) => {
                let (n, d) = v.iter().fold((0.0, 0.0), |(n, d), (a, b)| (n + a, d + b));
                (d > 0.0).then(|| n / d)
            }
            _ => None,
        }
    }

    /// Each observation as one number, for the rank test.
    pub fn points(&self) -> Vec<f64> {
        match self {
            Samples::Values(v) => v.clone(),
            Samples::Ratios(v) => v
                .iter()
                .filter(|(_, d)| *d > 0.0)
                .map(|(n, d)| n / d)
                .collect(),
        }
    }

    fn resample(&self, rng: &mut fastrand::Rng) -> Samples {
        match self {
            Samples::Values(v) => {
                Samples::Values((0..v.len()).map(|_| v[rng.usize(..v.len())]).collect())
            }
            Samples::Ratios(v) => {
                Samples::Ratios((0..v.len()).map(|_| v[rng.usize(..v.len())]).collect())
            }
        }
    }
}

/// How a change is expressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Relative, in percent of the baseline.
    Percent,
    /// Absolute, in percentage points (for rates in 0..1).
    Points,
}

impl Change {
    pub fn of(self, base: f64, cur: f64) -> Option<f64> {
        match self {
            Change::Percent => (base > 0.0).then(|| (cur / base - 1.0) * 100.0),
            Change::Points => Some((cur - base) * 100.0),
        }
    }
}

/// Percentile bootstrap interval of the change from `base` to `cur`, resampling
/// each run's observations independently. Deterministic for a given seed.
pub fn bootstrap_interval(
    base: &Samples,
    cur: &Samples,
    change: Change,
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<(f64, f64)> {
    if base.is_empty() || cur.is_empty() {
        return None;
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut changes: Vec<f64> = (0..resamples)
        .filter_map(|_| {
            let b = base.resample(&mut rng).statistic()?;
            let c = cur.resample(&mut rng).statistic()?;
            change.of(b, c)
        })
        .collect();
    if changes.len() < resamples / 2 {
        return None;
    }
    changes.sort_by(|a, b| a.total_cmp(b));
    let tail = (1.0 - confidence) / 2.0;
    Some((quantile(&changes, tail), quantile(&changes, 1.0 - tail)))
}

/// Linear-interpolated quantile of sorted data.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Two-sided Mann-Whitney U test; `(U of x, p-value)`.
pub fn rank_test(x: &[f64], y: &[f64]) -> Option<(f64, f64)> {
    if x.is_empty() || y.is_empty() {
        return None;
    }
    // All values equal: no evidence of any difference.
    if x.iter().chain(y).all(|v| *v == x[0]) {
        return Some(((x.len() * y.len()) as f64 / 2.0, 1.0));
    }
    // The normal approximation with continuity correction, always: statrs
    // 0.19's exact method returns P(U < u) instead of P(U >= u) when the first
    // sample is not the longer one (a p-value of 1 for fully separated samples).
    mannwhitneyu(
        x,
        y,
        MannWhitneyUMethod::AsymptoticInclContinuityCorrection,
        Alternative::TwoSided,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers from scipy.stats.mannwhitneyu(x, y, alternative='two-sided',
    // method='asymptotic') (scipy 1.x, continuity correction on).
    #[test]
    fn rank_test_matches_known_answers() {
        let x: Vec<f64> = (1..=10).map(f64::from).collect();
        let y: Vec<f64> = (6..=15).map(f64::from).collect();
        let (u, p) = rank_test(&x, &y).unwrap();
        assert_eq!(u, 12.5);
        assert!((p - 0.005075392315273923).abs() < 1e-9, "{p}");

        let (u, p) = rank_test(&[19.0, 22.0, 16.0, 29.0, 24.0], &[20.0, 11.0, 17.0, 12.0]).unwrap();
        assert_eq!(u, 17.0);
        assert!((p - 0.11134688653314041).abs() < 1e-9, "{p}");

        let (u, p) = rank_test(&[1.1, 2.2, 3.3, 4.4], &[5.5, 6.6, 7.7, 8.8]).unwrap();
        assert_eq!(u, 0.0);
        assert!((p - 0.03038282197657749).abs() < 1e-9, "{p}");

        assert_eq!(rank_test(&[3.0, 3.0], &[3.0, 3.0, 3.0]).unwrap().1, 1.0);
    }

    #[test]
    fn bootstrap_interval_is_reproducible_and_covers_the_shift() {
        let base = Samples::Values((0..40).map(|i| 10.0 + (i % 5) as f64 * 0.1).collect());
        let cur = Samples::Values((0..40).map(|i| 11.0 + (i % 5) as f64 * 0.1).collect());
        let a = bootstrap_interval(&base, &cur, Change::Percent, 2000, 0.95, 42).unwrap();
        let b = bootstrap_interval(&base, &cur, Change::Percent, 2000, 0.95, 42).unwrap();
        assert_eq!(a, b);
        // The true change is +1.0/10.2 = +9.80%.
        assert!(a.0 < 9.80 && a.1 > 9.80, "{a:?}");
        // Known answer for this seed (guards against silent changes of method).
        assert!(
            (a.0 - 9.175).abs() < 0.001 && (a.1 - 10.455).abs() < 0.001,
            "{a:?}"
        );
    }

    #[test]
    fn pooled_rates_and_points() {
        let base = Samples::Ratios(vec![(0.0, 100.0), (1.0, 100.0)]);
        let cur = Samples::Ratios(vec![(5.0, 100.0), (5.0, 100.0)]);
        assert_eq!(base.statistic(), Some(0.005));
        assert_eq!(
            Change::Points
                .of(0.005, 0.05)
                .map(|x| (x * 100.0).round() / 100.0),
            Some(4.5)
        );
        let ci = bootstrap_interval(&base, &cur, Change::Points, 500, 0.95, 1).unwrap();
        assert!(ci.0 >= 4.0 && ci.1 <= 5.0, "{ci:?}");
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.5), 2.0);
    }
}
