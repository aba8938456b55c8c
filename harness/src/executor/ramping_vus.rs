//! `ramping-vus`: the number of active VUs follows the stages linearly.
//! VU `i` (0-based) is active while the planned count exceeds `i`; a VU that
//! falls outside finishes its iteration first (graceful ramp-down).

use std::rc::Rc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::Runner;
use super::raw::Stage;
use serde_json::json;

use super::constant_vus::ConstantVus;
use super::{Executor, Spec};
use crate::duration;
use super::raw::{stages, stages_json, stages_total, OptError, RawOptions};

/// From `start_vus`, the VU count moves linearly to each stage's target.
#[derive(Clone, Debug, PartialEq)]
pub struct RampingVus {
    pub start_vus: u32,
    pub stages: Vec<Stage>,
}

impl Spec for RampingVus {
    const NAME: &'static str = "ramping-vus";
    const KEYS: &'static [&'static str] = &["start_vus", "stages"];

    fn parse(raw: &RawOptions) -> Result<Self, OptError> {
        Ok(RampingVus {
            start_vus: raw.start_vus.unwrap_or(1),
            stages: stages(&raw.stages)?,
        })
    }

    fn to_json(&self) -> serde_json::Value {
        json!({"start_vus": self.start_vus, "stages": stages_json(&self.stages)})
    }

    fn max_vus(&self) -> u32 {
        self.stages
            .iter()
            .map(|s| s.target.ceil() as u32)
            .fold(self.start_vus, u32::max)
    }

    fn vus_demand(&self) -> (&'static str, f64) {
        let most = self
            .stages
            .iter()
            .map(|s| s.target)
            .fold(self.start_vus as f64, f64::max);
        ("stages", most)
    }

    fn planned_duration(&self) -> Duration {
        stages_total(&self.stages)
    }

    fn with_overrides(
        self,
        vus: Option<u32>,
        dur: Option<Duration>,
        notes: &mut Vec<String>,
    ) -> Result<Executor, String> {
        // k6's shortcut: --vus/--duration replace the stages with a constant load.
        let n = vus.unwrap_or_else(|| self.max_vus());
        let d = dur.unwrap_or_else(|| self.planned_duration());
        notes.push(format!(
            "ramping-vus stages replaced by constant-vus: {n} VUs for {} (--vus/--duration)",
            duration::format(d)
        ));
        Ok(Executor::ConstantVus(ConstantVus {
            vus: n,
            duration: d,
        }))
    }

    async fn run<R: Runner>(&self, w: &Rc<R>, graceful: Duration) {
        run(w, self.start_vus, &self.stages, self.max_vus(), graceful).await
    }
}


/// Planned VU count at `t` seconds (linear within each stage).
pub fn target_at(start: f64, stages: &[Stage], t: f64) -> f64 {
    let mut from = start;
    let mut at = 0.0;
    for s in stages {
        let d = s.duration.as_secs_f64();
        if t < at + d {
            return from + (s.target - from) * (t - at) / d;
        }
        at += d;
        from = s.target;
    }
    from
}

/// Earliest time `>= t` at which VU `i` is active, if any before the end.
pub fn next_active(start: f64, stages: &[Stage], i: u64, t: f64) -> Option<f64> {
    let need = i as f64 + 1.0;
    let mut from = start;
    let mut at = 0.0;
    for s in stages {
        let d = s.duration.as_secs_f64();
        let end = at + d;
        if end > t {
            let s_at = t.max(at);
            let value = from + (s.target - from) * (s_at - at) / d;
            if value >= need {
                return Some(s_at);
            }
            if s.target >= need && s.target > from {
                let x = at + (need - from) / (s.target - from) * d;
                if x < end {
                    return Some(s_at.max(x));
                }
            }
        }
        at = end;
        from = s.target;
    }
    None
}

pub async fn run<R: Runner>(
    w: &Rc<R>,
    start_vus: u32,
    stages: &[Stage],
    max_vus: u32,
    graceful: Duration,
) {
    let total: Duration = stages.iter().map(|s| s.duration).sum();
    let end = w.t0() + total;
    let max = max_vus as u64;
    let mut set = JoinSet::new();
    for idx in w.share(max) {
        let w = w.clone();
        let stages = stages.to_vec();
        let start = start_vus as f64;
        set.spawn_local(async move {
            let mut vu = None;
            loop {
                let t = w.t0().elapsed().as_secs_f64();
                if t >= total.as_secs_f64() {
                    break;
                }
                if target_at(start, &stages, t) >= idx as f64 + 1.0 {
                    let v = vu.get_or_insert_with(|| w.new_vu(idx));
                    w.active().set(w.active().get() + 1);
                    w.iteration(v, None).await;
                    w.active().set(w.active().get() - 1);
                } else {
                    match next_active(start, &stages, idx, t) {
                        // Sleep at least 1 ms so rounding cannot spin.
                        Some(at) => {
                            let wake = w.t0() + Duration::from_secs_f64(at.max(t + 0.001));
                            tokio::time::sleep_until(wake).await
                        }
                        None => break,
                    }
                }
            }
        });
    }
    super::wait_all(w.as_ref(), set, end + graceful).await;
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
    fn target_follows_stages() {
        let s = [st(10, 20.0), st(10, 20.0), st(10, 0.0)];
        assert_eq!(target_at(0.0, &s, 0.0), 0.0);
        assert_eq!(target_at(0.0, &s, 5.0), 10.0);
        assert_eq!(target_at(0.0, &s, 15.0), 20.0);
        assert_eq!(target_at(0.0, &s, 25.0), 10.0);
    }

    #[test]
    fn activation_times() {
        let s = [st(10, 20.0), st(10, 0.0)];
        // VU 9 needs 10 planned VUs: reached at t=5.
        assert_eq!(next_active(0.0, &s, 9, 0.0), Some(5.0));
        assert_eq!(next_active(0.0, &s, 9, 7.0), Some(7.0));
        // VU 25 never becomes active.
        assert_eq!(next_active(0.0, &s, 25, 0.0), None);
        // After the peak, VU 19 is active only around t=10 and never later.
        assert_eq!(next_active(0.0, &s, 19, 12.0), None);
    }

    #[test]
    fn vus_join_as_the_planned_count_passes_them() {
        use super::super::fake::{paused, Fake};
        use std::rc::Rc;
        let ms = Duration::from_millis;
        let stages = [
            Stage {
                duration: Duration::from_secs(1),
                target: 4.0,
            },
            Stage {
                duration: Duration::from_secs(1),
                target: 4.0,
            },
        ];
        let f = paused(|| async {
            let f = Rc::new(Fake::new(0, 1, ms(250)));
            super::run(&f, 0, &stages, 4, ms(1000)).await;
            f
        });
        // VU i joins when the ramp reaches i + 1 (every 250 ms) and loops until 2 s.
        assert_eq!(f.of_vu(0), vec![250, 500, 750, 1000, 1250, 1500, 1750]);
        assert_eq!(f.of_vu(1), vec![500, 750, 1000, 1250, 1500, 1750]);
        assert_eq!(f.of_vu(2), vec![750, 1000, 1250, 1500, 1750]);
        assert_eq!(f.of_vu(3), vec![1000, 1250, 1500, 1750]);
        assert_eq!(f.interrupted.get(), 0);
    }
}
