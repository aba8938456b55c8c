//! `constant-vus`: a fixed number of VUs loop over iterations for a duration.

use std::rc::Rc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Runner;
use serde_json::json;

use super::{Executor, Spec};
use crate::duration;
use super::raw::{dur, need, OptError, RawOptions};

/// `vus` VUs loop over the steps for `duration`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstantVus {
    pub vus: u32,
    pub duration: Duration,
}

impl Spec for ConstantVus {
    const NAME: &'static str = "constant-vus";
    const KEYS: &'static [&'static str] = &["vus", "duration"];

    fn parse(raw: &RawOptions) -> Result<Self, OptError> {
        Ok(ConstantVus {
            vus: raw.vus.unwrap_or(1),
            duration: need(dur("duration", &raw.duration)?, "duration", Self::NAME)?,
        })
    }

    fn to_json(&self) -> serde_json::Value {
        json!({"vus": self.vus, "duration": duration::format(self.duration)})
    }

    fn max_vus(&self) -> u32 {
        self.vus
    }

    fn planned_duration(&self) -> Duration {
        self.duration
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
            self.duration = x;
            notes.push(format!("duration = {} (--duration)", duration::format(x)));
        }
        Ok(Executor::ConstantVus(self))
    }

    async fn run<R: Runner>(&self, w: &Rc<R>, graceful: Duration) {
        run(w, self.vus, self.duration, graceful).await
    }
}


pub async fn run<R: Runner>(w: &Rc<R>, vus: u32, duration: Duration, graceful: Duration) {
    let end = w.t0() + duration;
    let mut set = JoinSet::new();
    for idx in w.share(vus as u64) {
        let w = w.clone();
        set.spawn_local(async move {
            let mut vu = w.new_vu(idx);
            w.active().set(w.active().get() + 1);
            while Instant::now() < end {
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
    fn each_vu_loops_until_the_duration_ends() {
        let ms = Duration::from_millis;
        let f = paused(|| async {
            let f = Rc::new(Fake::new(0, 1, ms(300)));
            super::run(&f, 2, ms(1000), ms(1000)).await;
            f
        });
        // An iteration that starts before the end runs to completion (graceful stop).
        assert_eq!(f.of_vu(0), vec![0, 300, 600, 900]);
        assert_eq!(f.of_vu(1), vec![0, 300, 600, 900]);
        assert_eq!(f.interrupted.get(), 0);
        assert_eq!(f.active.get(), 0);
    }

    #[test]
    fn iterations_past_the_graceful_stop_are_interrupted() {
        let ms = Duration::from_millis;
        let f = paused(|| async {
            let f = Rc::new(Fake::new(0, 1, ms(300)));
            super::run(&f, 2, ms(1000), ms(0)).await;
            f
        });
        assert_eq!(f.starts.borrow().len(), 8);
        // Both VUs were inside the iteration that began at 900 ms.
        assert_eq!(f.interrupted.get(), 2);
    }

    #[test]
    fn a_worker_runs_its_round_robin_share_of_the_vus() {
        let ms = Duration::from_millis;
        let f = paused(|| async {
            let f = Rc::new(Fake::new(1, 2, ms(500)));
            super::run(&f, 5, ms(1000), ms(1000)).await;
            f
        });
        let mut vus: Vec<u64> = f.starts.borrow().iter().map(|s| s.vu).collect();
        vus.dedup();
        vus.sort();
        vus.dedup();
        assert_eq!(vus, vec![1, 3]);
        assert_eq!(f.vus.get(), 2);
    }

    #[test]
    fn shards_and_workers_hold_every_vu_once() {
        let ms = Duration::from_millis;
        for shards in 1..=5usize {
            let mut vus = Vec::new();
            for s in 0..shards {
                for w in 0..2 {
                    let f = paused(|| async {
                        let mut f = Fake::new(w, 2, ms(500));
                        f.stripe = crate::executor::segment::Stripe::equal(s, shards).unwrap();
                        let f = Rc::new(f);
                        super::run(&f, 7, ms(1000), ms(1000)).await;
                        f
                    });
                    let mut mine: Vec<u64> = f.starts.borrow().iter().map(|s| s.vu).collect();
                    mine.sort_unstable();
                    mine.dedup();
                    vus.extend(mine);
                }
            }
            vus.sort_unstable();
            assert_eq!(vus, (0..7).collect::<Vec<u64>>(), "{shards} shards");
        }
    }
}
