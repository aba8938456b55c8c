//! `loadtest history`: the trend of key metrics across runs of one scenario,
//! with a text sparkline and the runs where the level shifted (change points).

use std::fmt::Write;

use crate::results::history::HistoryLine;

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

pub fn sparkline(values: &[f64]) -> String {
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        });
    values
        .iter()
        .map(|v| {
            if hi > lo {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize]
            } else {
                BARS[3]
            }
        })
        .collect()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn mad(v: &[f64]) -> f64 {
    let m = median(v);
    let dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    median(&dev)
}

/// Indices where the level shifts: the mean of up to `w` runs from there differs
/// from the mean of up to `w` runs before by more than `min_rel` (relative)
/// and by more than 3 median absolute deviations, keeping the strongest shift
/// of each neighbourhood. Needs two runs on each side.
pub fn change_points(values: &[f64], min_rel: f64, w: usize) -> Vec<usize> {
    let n = values.len();
    let mut scores = vec![0.0; n];
    for i in 2..n.saturating_sub(1) {
        let before = &values[i.saturating_sub(w)..i];
        let after = &values[i..(i + w).min(n)];
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (mb, ma) = (mean(before), mean(after));
        let shift = (ma - mb).abs();
        let noise = 3.0 * mad(before).max(mad(after));
        let scale = mb.abs().max(1e-12);
        if shift / scale > min_rel && shift > noise {
            scores[i] = shift / scale;
        }
    }
    (0..n)
        .filter(|&i| {
            scores[i] > 0.0
                && (i.saturating_sub(2)..(i + 3).min(n))
                    .all(|j| j == i || scores[j] < scores[i] || (scores[j] == scores[i] && j > i))
        })
        .collect()
}

pub fn render(scenario: &str, lines: &[HistoryLine]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "history of {scenario}: {} runs", lines.len());
    let series: [(&str, Vec<f64>, f64); 4] = [
        ("req/s", lines.iter().map(|l| l.rps).collect(), 0.05),
        ("p50", lines.iter().map(|l| l.p50).collect(), 0.05),
        ("p95", lines.iter().map(|l| l.p95).collect(), 0.05),
        ("p99", lines.iter().map(|l| l.p99).collect(), 0.10),
    ];
    let mut marks = vec![Vec::new(); lines.len()];
    for (name, values, tol) in &series {
        for i in change_points(values, *tol, 5) {
            marks[i].push(*name);
        }
    }
    let _ = writeln!(
        o,
        "\n  {:>3}  {:<16} {:<14} {:<16} {:>10} {:>8} {:>8} {:>8} {:>7}  change point",
        "#", "run", "commit", "time", "req/s", "p50", "p95", "p99", "errors"
    );
    for (i, l) in lines.iter().enumerate() {
        let commit = match &l.commit {
            Some(c) if l.dirty => format!("{c}-dirty"),
            Some(c) => c.clone(),
            None => "-".into(),
        };
        let mut flags = String::new();
        if l.interrupted {
            flags.push_str("(interrupted) ");
        }
        if !marks[i].is_empty() {
            flags.push_str(&format!("* {}", marks[i].join(", ")));
        }
        let _ = writeln!(
            o,
            "  {:>3}  {:<16} {:<14} {:<16} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>6.2}%  {}",
            i + 1,
            l.run,
            commit,
            l.time.get(..16).unwrap_or(&l.time).replace('T', " "),
            l.rps,
            l.p50,
            l.p95,
            l.p99,
            l.error_rate * 100.0,
            flags
        );
    }
    let _ = writeln!(o, "\n  trend (oldest to newest)");
    for (name, values, _) in &series {
        let _ = writeln!(o, "    {name:<6} {}", sparkline(values));
    }
    let _ = writeln!(
        o,
        "\n  * marks a run where the level shifted: the mean of up to 5 runs from there differs from the mean of\n    the 5 before by more than the tolerance (5%, 10% for p99) and by more than 3 median absolute deviations."
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_spans_the_range() {
        assert_eq!(sparkline(&[1.0, 2.0, 3.0]), "▁▅█");
        assert_eq!(sparkline(&[5.0, 5.0]), "▄▄");
    }

    #[test]
    fn finds_a_level_shift_and_ignores_noise() {
        let noisy = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 10.1, 10.0];
        assert!(change_points(&noisy, 0.05, 5).is_empty());
        let shifted = [10.0, 10.2, 9.9, 10.1, 12.0, 12.1, 11.9, 12.2];
        assert_eq!(change_points(&shifted, 0.05, 5), vec![4]);
    }
}
