//! Paired trials: the statistics of an A/B comparison whose unit of
//! observation is the trial, not the second. A block holds one trial of each
//! side run back to back (or the mean of an ABBA block's two per side), so
//! what moves both sides together (the machine, the hour) cancels in the
//! block's ratio B/A.
//!
//! The decision is sequential: `Worse`/`Better` when the change is significant
//! and its whole interval lies beyond the tolerance, `NotWorse` when the
//! interval's worse end stays inside the tolerance (a gate asks one-sided
//! "not slower"), and `Undecided` otherwise: more blocks may decide.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// One block's value of a metric on each side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair {
    pub a: f64,
    pub b: f64,
}

/// How one paired metric stands against its tolerance (recorded in A/B results).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// B is worse than A by more than the tolerance.
    Worse,
    /// B is better than A by more than the tolerance.
    Better,
    /// B is not worse than A by more than the tolerance (it may be better).
    NotWorse,
    /// Neither yet: more blocks may decide.
    Undecided,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    /// Blocks judged.
    pub n: usize,
    /// B/A - 1 from the geometric mean of the blocks' ratios; for an
    /// additive metric (rates in points), the mean difference B - A.
    pub change: f64,
    /// Bootstrap interval of `change` (confidence 1 - alpha).
    pub low: f64,
    pub high: f64,
    /// Two-sided p-value of a sign-flip permutation test on the log-ratios
    /// (exact up to 16 blocks).
    pub p: f64,
    /// The smallest change these blocks could detect (significance alpha,
    /// power 80%), from the observed spread of the ratios.
    pub detectable: f64,
    pub decision: Decision,
}

/// How a metric's change is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Relative: B/A - 1 (latencies, throughput); `tolerance` 0.05 = 5%.
    Ratio,
    /// Absolute: B - A (rates in percentage points); `tolerance` in the same unit.
    Points,
}

/// Judges the blocks of one metric; `higher_is_worse` says which direction
/// is a regression.
pub fn judge(
    pairs: &[Pair],
    scale: Scale,
    higher_is_worse: bool,
    tolerance: f64,
    alpha: f64,
    seed: u64,
) -> Option<Judgement> {
    let d: Vec<f64> = match scale {
        Scale::Ratio => pairs
            .iter()
            .filter(|p| p.a > 0.0 && p.b > 0.0 && p.a.is_finite() && p.b.is_finite())
            .map(|p| (p.b / p.a).ln())
            .collect(),
        Scale::Points => pairs
            .iter()
            .filter(|p| p.a.is_finite() && p.b.is_finite())
            .map(|p| p.b - p.a)
            .collect(),
    };
    // Back from the judged scale to the reported one.
    let out = |x: f64| match scale {
        Scale::Ratio => x.exp() - 1.0,
        Scale::Points => x,
    };
    let n = d.len();
    if n < 2 {
        return None;
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    let (lo, hi) = bootstrap_mean(&d, alpha, seed);
    let p = sign_flip_p(&d, seed);
    let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
        .map(|t| t.inverse_cdf(1.0 - alpha / 2.0))
        .unwrap_or(f64::INFINITY);
    let z80 = Normal::new(0.0, 1.0)
        .map(|z| z.inverse_cdf(0.8))
        .unwrap_or(0.84);
    let detectable = out((t + z80) * sd / (n as f64).sqrt());

    let bound = match scale {
        Scale::Ratio => (1.0 + tolerance).ln(),
        Scale::Points => tolerance,
    };
    // Worse means a positive log-ratio when higher is worse, negative otherwise.
    let (worse_lo, worse_hi) = if higher_is_worse {
        (lo, hi)
    } else {
        (-hi, -lo)
    };
    let decision = if p < alpha && worse_lo > bound {
        Decision::Worse
    } else if p < alpha && worse_hi < -bound {
        Decision::Better
    } else if worse_hi < bound {
        Decision::NotWorse
    } else {
        Decision::Undecided
    };
    Some(Judgement {
        n,
        change: out(mean),
        low: out(lo),
        high: out(hi),
        p,
        detectable,
        decision,
    })
}

/// Percentile bootstrap interval of the mean, resampling blocks.
fn bootstrap_mean(d: &[f64], alpha: f64, seed: u64) -> (f64, f64) {
    const ROUNDS: usize = 4000;
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = d.len();
    let mut means: Vec<f64> = (0..ROUNDS)
        .map(|_| (0..n).map(|_| d[rng.usize(..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(|a, b| a.total_cmp(b));
    (
        super::stats::quantile(&means, alpha / 2.0),
        super::stats::quantile(&means, 1.0 - alpha / 2.0),
    )
}

/// Two-sided p of the mean log-ratio under "no change" (each block's sign is
/// then a coin flip): every sign pattern up to 16 blocks, a random 20,000
/// beyond. The smallest possible value with n blocks is 2 / 2^n.
fn sign_flip_p(d: &[f64], seed: u64) -> f64 {
    let n = d.len();
    let observed = d.iter().sum::<f64>().abs();
    // Ties at the observed value count as extreme (a little slack for rounding).
    let extreme = |s: f64| s.abs() >= observed - 1e-12;
    if n <= 16 {
        let total = 1u64 << n;
        let hits = (0..total)
            .filter(|mask| {
                let s: f64 = d
                    .iter()
                    .enumerate()
                    .map(|(i, x)| if mask >> i & 1 == 1 { -x } else { *x })
                    .sum();
                extreme(s)
            })
            .count();
        return hits as f64 / total as f64;
    }
    const DRAWS: usize = 20_000;
    let mut rng = fastrand::Rng::with_seed(seed);
    let hits = (0..DRAWS)
        .filter(|_| {
            let s: f64 = d.iter().map(|x| if rng.bool() { -x } else { *x }).sum();
            extreme(s)
        })
        .count();
    (hits as f64 + 1.0) / (DRAWS as f64 + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks whose common factor drifts a lot while B/A stays `ratio`, with
    /// a small per-block wobble.
    fn drifting(n: usize, ratio: f64, wobble: f64, seed: u64) -> Vec<Pair> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n)
            .map(|i| {
                // The machine's speed moves by up to 35% between blocks.
                let level = 1000.0 * (1.0 + 0.35 * ((i as f64) * 1.3).sin());
                let w = 1.0 + wobble * (rng.f64() * 2.0 - 1.0);
                Pair {
                    a: level,
                    b: level * ratio * w,
                }
            })
            .collect()
    }

    #[test]
    fn identical_sides_under_drift_are_the_same() {
        let j = judge(
            &drifting(12, 1.0, 0.02, 1),
            Scale::Ratio,
            true,
            0.05,
            0.05,
            7,
        )
        .unwrap();
        assert_eq!(j.decision, Decision::NotWorse, "{j:?}");
        assert!(j.p > 0.05, "{j:?}");
        assert!(j.detectable < 0.05, "{j:?}");
    }

    #[test]
    fn a_clear_slowdown_is_worse_and_its_size_is_estimated() {
        // p95 15% higher in every block.
        let j = judge(
            &drifting(8, 1.15, 0.02, 2),
            Scale::Ratio,
            true,
            0.05,
            0.05,
            7,
        )
        .unwrap();
        assert_eq!(j.decision, Decision::Worse, "{j:?}");
        assert!((j.change - 0.15).abs() < 0.02, "{j:?}");
        assert!(j.low > 0.05 && j.high > j.change, "{j:?}");
        // Throughput 15% lower is worse too (lower is worse).
        let j = judge(
            &drifting(8, 0.85, 0.02, 3),
            Scale::Ratio,
            false,
            0.05,
            0.05,
            7,
        )
        .unwrap();
        assert_eq!(j.decision, Decision::Worse, "{j:?}");
        let j = judge(
            &drifting(8, 1.15, 0.02, 3),
            Scale::Ratio,
            false,
            0.05,
            0.05,
            7,
        )
        .unwrap();
        assert_eq!(j.decision, Decision::Better, "{j:?}");
    }

    #[test]
    fn few_noisy_blocks_stay_undecided() {
        // Three blocks cannot reach p < 0.05 whatever they hold (2/2^3 = 0.25).
        let j = judge(
            &drifting(3, 1.3, 0.02, 4),
            Scale::Ratio,
            true,
            0.05,
            0.05,
            7,
        )
        .unwrap();
        assert_eq!(j.decision, Decision::Undecided, "{j:?}");
        assert!((j.p - 0.25).abs() < 1e-9, "{j:?}");
        // A noisy ratio near the tolerance: neither shown beyond nor within it.
        let j = judge(
            &drifting(6, 1.05, 0.15, 5),
            Scale::Ratio,
            true,
            0.05,
            0.05,
            7,
        )
        .unwrap();
        assert_eq!(j.decision, Decision::Undecided, "{j:?}");
        assert!(j.detectable > 0.05, "{j:?}");
    }

    #[test]
    fn rates_are_judged_in_points() {
        // Error rate 0% on A, 2 points higher on B in every block.
        let pairs: Vec<Pair> = (0..8)
            .map(|i| Pair {
                a: 0.0,
                b: 2.0 + 0.1 * (i % 3) as f64,
            })
            .collect();
        let j = judge(&pairs, Scale::Points, true, 0.5, 0.05, 7).unwrap();
        assert_eq!(j.decision, Decision::Worse, "{j:?}");
        assert!((j.change - 2.1).abs() < 0.1, "{j:?}");
        // No errors on either side: nothing to see, and not worse.
        let zero = vec![Pair { a: 0.0, b: 0.0 }; 6];
        let j = judge(&zero, Scale::Points, true, 0.5, 0.05, 7).unwrap();
        assert_eq!(j.decision, Decision::NotWorse, "{j:?}");
    }

    #[test]
    fn sign_flip_test_is_exact_for_small_n() {
        // All four positive: 2 of 16 patterns are as extreme.
        assert!((sign_flip_p(&[0.1, 0.2, 0.3, 0.4], 1) - 0.125).abs() < 1e-12);
        assert_eq!(sign_flip_p(&[0.0, 0.0], 1), 1.0);
        assert!(judge(
            &[Pair { a: 1.0, b: 1.0 }],
            Scale::Ratio,
            true,
            0.05,
            0.05,
            1
        )
        .is_none());
    }
}
