//! `ramping-arrival-rate`: the start rate moves linearly to each stage's target.

use std::rc::Rc;
use std::time::Duration;

use super::Runner;
use crate::scenario::Stage;

/// Start offsets (seconds) of iterations 0, 1, 2, ...: iteration `k` starts when
/// the integral of the rate reaches `k`.
pub struct Schedule {
    /// `(duration s, rate at start /s, rate at end /s)` per stage.
    segments: Vec<(f64, f64, f64)>,
    seg: usize,
    seg_start: f64,
    seg_count: f64,
    k: u64,
}

impl Schedule {
    pub fn new(start_rate: f64, time_unit: Duration, stages: &[Stage]) -> Schedule {
        let tu = time_unit.as_secs_f64();
        let mut from = start_rate / tu;
        let segments = stages
            .iter()
            .map(|s| {
                let to = s.target / tu;
                let seg = (s.duration.as_secs_f64(), from, to);
                from = to;
                seg
            })
            .collect();
        Schedule {
            segments,
            seg: 0,
            seg_start: 0.0,
            seg_count: 0.0,
            k: 0,
        }
    }
}

impl Iterator for Schedule {
    type Item = f64;
    fn next(&mut self) -> Option<f64> {
        let c = self.k as f64;
        while let Some(&(d, a, b)) = self.segments.get(self.seg) {
            let total = (a + b) / 2.0 * d;
            let need = c - self.seg_count;
            if need < total || (need == 0.0 && total == 0.0 && a > 0.0) {
                // Solve a*t + (b-a)/(2d)*t^2 = need for t in [0, d].
                let slope = (b - a) / d;
                let t = if slope.abs() < 1e-12 {
                    need / a
                } else {
                    (-a + (a * a + 2.0 * slope * need).max(0.0).sqrt()) / slope
                };
                self.k += 1;
                return Some(self.seg_start + t.clamp(0.0, d));
            }
            self.seg_start += d;
            self.seg_count += total;
            self.seg += 1;
        }
        None
    }
}

pub async fn run<R: Runner>(
    w: &Rc<R>,
    start_rate: f64,
    time_unit: Duration,
    stages: &[Stage],
    pre_allocated: u32,
    max_vus: u32,
    graceful: Duration,
) {
    let end: Duration = stages.iter().map(|s| s.duration).sum();
    let offsets = Schedule::new(start_rate, time_unit, stages)
        .skip(w.index())
        .step_by(w.count())
        .map(Duration::from_secs_f64);
    super::arrival::run(w, offsets, end, pre_allocated, max_vus, graceful).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(d: u64, t: f64) -> Stage {
        Stage {
            duration: Duration::from_secs(d),
            target: t,
        }
    }

    #[test]
    fn constant_segment_is_evenly_spaced() {
        let s: Vec<f64> = Schedule::new(10.0, Duration::from_secs(1), &[st(1, 10.0)]).collect();
        assert_eq!(s.len(), 10);
        assert!((s[1] - 0.1).abs() < 1e-9 && (s[9] - 0.9).abs() < 1e-9);
    }

    #[test]
    fn ramp_counts_match_the_integral() {
        // 0 -> 100/s over 10 s: 500 iterations, then 100/s for 5 s: 500 more.
        let n = Schedule::new(0.0, Duration::from_secs(1), &[st(10, 100.0), st(5, 100.0)]).count();
        assert!((999..=1001).contains(&n), "{n}");
        let first_half = Schedule::new(0.0, Duration::from_secs(1), &[st(10, 100.0)])
            .filter(|t| *t < 5.0)
            .count();
        // A quarter of the ramp's iterations fall in its first half.
        assert!((124..=126).contains(&first_half), "{first_half}");
    }

    #[test]
    fn a_worker_starts_iterations_on_the_integral_of_the_rate() {
        use super::super::fake::{paused, Fake};
        use std::rc::Rc;
        let ms = Duration::from_millis;
        // 0 -> 20/s over 1 s: 10 iterations, the k-th when 10 t^2 reaches k.
        let f = paused(|| async {
            let f = Rc::new(Fake::new(0, 1, ms(1)));
            super::run(
                &f,
                0.0,
                Duration::from_secs(1),
                &[st(1, 20.0)],
                10,
                10,
                ms(0),
            )
            .await;
            f
        });
        let starts: Vec<u64> = f.starts.borrow().iter().map(|s| s.at_ms).collect();
        let want: Vec<u64> = (0..10)
            .map(|k| ((k as f64 / 10.0).sqrt() * 1000.0).ceil() as u64)
            .collect();
        assert_eq!(starts, want);
        assert_eq!(f.dropped.get(), 0);
    }
}
