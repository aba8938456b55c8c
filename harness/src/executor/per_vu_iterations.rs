//! `per-vu-iterations`: each VU runs a fixed number of iterations, bounded by `max_duration`.

use std::rc::Rc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Runner;
use serde_json::json;

use super::{Executor, Spec};
use crate::duration;
use super::raw::{dur, OptError, RawOptions};

/// Each of `vus` VUs runs `iterations` iterations, within `max_duration`.
#[derive(Clone, Debug, PartialEq)]
pub struct PerVuIterations {
    pub vus: u32,
    pub iterations: u64,
    pub max_duration: Duration,
}

impl Spec for PerVuIterations {
    const NAME: &'static str = "per-vu-iterations";
    const KEYS: &'static [&'static str] = &["vus", "iterations", "max_duration"];

    fn parse(raw: &RawOptions) -> Result<Self, OptError> {
        Ok(PerVuIterations {
            vus: raw.vus.unwrap_or(1),
            iterations: raw.iterations.unwrap_or(1),
            max_duration: dur("max_duration", &raw.max_duration)?
                .unwrap_or(Duration::from_secs(600)),
        })
    }

    fn to_json(&self) -> serde_json::Value {
        json!({"vus": self.vus, "iterations": self.iterations,
               "max_duration": duration::format(self.max_duration)})
    }

    fn max_vus(&self) -> u32 {
        self.vus
    }

    /// An upper bound: the VUs may finish their iterations sooner.
    fn planned_duration(&self) -> Duration {
        self.max_duration
    }

    fn with_overrides(
        mut self,
        vus: Option<u32>,
        dur: Option<Duration>,
        notes: &mut Vec<String>,
    ) -> Result<Executor, String> {
        if let Some(n) = vus {
            self.vus = n;
            notes.push(format!("vus = {n} (--vus)"));
        }
        if let Some(x) = dur {
            self.max_duration = x;
            notes.push(format!(
                "max_duration = {} (--duration)",
                duration::format(x)
            ));
        }
        Ok(Executor::PerVuIterations(self))
    }

    async fn run<R: Runner>(&self, w: &Rc<R>, graceful: Duration) {
        run(w, self.vus, self.iterations, self.max_duration, graceful).await
    }
}


pub async fn run<R: Runner>(
    w: &Rc<R>,
    vus: u32,
    iterations: u64,
    max_duration: Duration,
    graceful: Duration,
) {
    let end = w.t0() + max_duration;
    let mut set = JoinSet::new();
    for idx in w.share(vus as u64) {
        let w = w.clone();
        set.spawn_local(async move {
            let mut vu = w.new_vu(idx);
            w.active().set(w.active().get() + 1);
            for _ in 0..iterations {
                if Instant::now() >= end {
                    break;
                }
                w.iteration(&mut vu, None).await;
            }
            w.active().set(w.active().get() - 1);
        });
    }
    super::wait_all(w.as_ref(), set, end + graceful).await;
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::Duration;

    use super::super::fake::{paused, Fake};

    #[test]
    fn every_vu_runs_its_iterations_back_to_back() {
        let ms = Duration::from_millis;
        let f = paused(|| async {
            let f = Rc::new(Fake::new(0, 1, ms(100)));
            super::run(&f, 3, 4, Duration::from_secs(10), ms(0)).await;
            f
        });
        for vu in 0..3 {
            assert_eq!(f.of_vu(vu), vec![0, 100, 200, 300]);
        }
        assert_eq!(f.interrupted.get(), 0);
    }

    #[test]
    fn max_duration_bounds_the_iterations() {
        let ms = Duration::from_millis;
        let f = paused(|| async {
            let f = Rc::new(Fake::new(0, 1, ms(400)));
            super::run(&f, 1, 10, ms(1000), ms(1000)).await;
            f
        });
        assert_eq!(f.of_vu(0), vec![0, 400, 800]);
    }
}
