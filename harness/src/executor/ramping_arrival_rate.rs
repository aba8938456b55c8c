//! `ramping-arrival-rate`: the start rate moves linearly to each stage's target.

use std::rc::Rc;
use std::time::Duration;

use super::Runner;
use super::raw::Stage;
use serde_json::json;

use super::{Executor, Spec};
use crate::duration;
use super::raw::{need, stages, stages_json, stages_total, time_unit, OptError, RawOptions};

/// From `start_rate`, the arrival rate (per `time_unit`) moves linearly to
/// each stage's target (open model), on VUs taken from a pool.
#[derive(Clone, Debug, PartialEq)]
pub struct RampingArrivalRate {
    pub start_rate: f64,
    pub time_unit: Duration,
    pub stages: Vec<Stage>,
    pub pre_allocated_vus: u32,
    pub max_vus: u32,
}

impl Spec for RampingArrivalRate {
    const NAME: &'static str = "ramping-arrival-rate";
    const KEYS: &'static [&'static str] = &[
        "start_rate",
        "time_unit",
        "stages",
        "pre_allocated_vus",
        "max_vus",
    ];
    const OPEN_MODEL: bool = true;

    fn parse(raw: &RawOptions) -> Result<Self, OptError> {
        let pre = need(raw.pre_allocated_vus, "pre_allocated_vus", Self::NAME)?;
        Ok(RampingArrivalRate {
            start_rate: raw.start_rate.unwrap_or(0.0).max(0.0),
            time_unit: time_unit(raw)?,
            stages: stages(&raw.stages)?,
            pre_allocated_vus: pre,
            max_vus: raw.max_vus.unwrap_or(pre).max(pre),
        })
    }

    fn to_json(&self) -> serde_json::Value {
        json!({"start_rate": self.start_rate, "time_unit": duration::format(self.time_unit),
               "stages": stages_json(&self.stages),
               "pre_allocated_vus": self.pre_allocated_vus, "max_vus": self.max_vus})
    }

    fn max_vus(&self) -> u32 {
        self.max_vus
    }

    fn vus_demand(&self) -> (&'static str, f64) {
        ("max_vus", self.max_vus as f64)
    }

    fn peak_rate(&self) -> Option<(&'static str, f64)> {
        let per_s = |rate: f64| rate / self.time_unit.as_secs_f64();
        let most = self
            .stages
            .iter()
            .map(|s| per_s(s.target))
            .fold(per_s(self.start_rate), f64::max);
        Some(("stages", most))
    }

    fn planned_duration(&self) -> Duration {
        stages_total(&self.stages)
    }

    fn with_overrides(
        self,
        _vus: Option<u32>,
        _dur: Option<Duration>,
        _notes: &mut Vec<String>,
    ) -> Result<Executor, String> {
        Err("--vus/--duration do not apply to ramping-arrival-rate: edit its stages in the scenario".into())
    }

    async fn run<R: Runner>(&self, w: &Rc<R>, graceful: Duration) {
        run(
            w,
            self.start_rate,
            self.time_unit,
            &self.stages,
            self.pre_allocated_vus,
            self.max_vus,
            graceful,
        )
        .await
    }
}


/// Start offsets (seconds) of iterations 0, 1, 2, ...: iteration `k` starts when
/// the integral of the rate reaches `k`.
pub struct Schedule {
    /// `(duration s, rate at start /s, rate at end /s)` per stage.
    segments: Vec<(f64, f64, f64)>,
    /// The next iteration the iterator yields.
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
        Schedule { segments, k: 0 }
    }

    /// Start of iteration `k` in seconds, `None` past the last stage.
    pub fn start_of(&self, k: u64) -> Option<f64> {
        let c = k as f64;
        let (mut seg_start, mut seg_count) = (0.0, 0.0);
        for &(d, a, b) in &self.segments {
            let total = (a + b) / 2.0 * d;
            let need = c - seg_count;
            if need < total || (need == 0.0 && total == 0.0 && a > 0.0) {
                // Solve a*t + (b-a)/(2d)*t^2 = need for t in [0, d].
                let slope = (b - a) / d;
                let t = if slope.abs() < 1e-12 {
                    need / a
                } else {
                    (-a + (a * a + 2.0 * slope * need).max(0.0).sqrt()) / slope
                };
                return Some(seg_start + t.clamp(0.0, d));
            }
            seg_start += d;
            seg_count += total;
        }
        None
    }

    /// Iterations due by `t` seconds: the integral of the rate up to `t`.
    fn integral(&self, t: f64) -> f64 {
        let (mut seg_start, mut sum) = (0.0, 0.0);
        for &(d, a, b) in &self.segments {
            if t < seg_start + d {
                let x = (t - seg_start).max(0.0);
                return sum + a * x + (b - a) / d * x * x / 2.0;
            }
            sum += (a + b) / 2.0 * d;
            seg_start += d;
        }
        sum
    }
}

impl Iterator for Schedule {
    type Item = f64;
    fn next(&mut self) -> Option<f64> {
        let t = self.start_of(self.k)?;
        self.k += 1;
        Some(t)
    }
}

impl super::arrival::Plan for Schedule {
    fn offset(&self, k: u64) -> Option<Duration> {
        self.start_of(k).map(Duration::from_secs_f64)
    }
    fn estimate_before(&self, t: Duration) -> u64 {
        self.integral(t.as_secs_f64()).ceil().max(0.0) as u64
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
    let plan = Schedule::new(start_rate, time_unit, stages);
    super::arrival::run(w, &plan, end, pre_allocated, max_vus, graceful).await
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
